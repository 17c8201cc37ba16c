package metal

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal/pool"
)

// Field paths used in InputErrors.
var (
	fieldLoadBalancerIPs = annotationField(AnnotationLoadBalancerIPs)
	fieldIPPool          = annotationField(AnnotationIPPool)
	fieldAllowSharedIP   = annotationField(AnnotationAllowSharedIP)
)

const (
	fieldLoadBalancerIP        = "spec.loadBalancerIP"
	fieldExternalTrafficPolicy = "spec.externalTrafficPolicy"
	fieldIPFamilies            = "spec.ipFamilies"
)

func annotationField(name string) string { return "metadata.annotations[" + name + "]" }

// serviceRequest is a Service translated for the allocator, with the field
// its requested addresses came from (for error messages).
type serviceRequest struct {
	pool.Request
	ipsField string
}

// requestFor translates svc into an allocator Request. nsLabels are the
// labels of the Service's namespace. It returns an InputError naming the
// field when an annotation or a source range cannot be understood.
func requestFor(svc *v1.Service, nsLabels map[string]string) (*serviceRequest, error) {
	// Metal does not apply source ranges itself (kube-proxy filters on the
	// nodes), but ranges that cannot be read ask for a restriction nobody
	// can enforce, so the Service cannot be served as written.
	if _, err := providers.SourceRanges(svc); err != nil {
		return nil, err
	}
	if err := supported.Check(svc); err != nil {
		return nil, err
	}
	r := &serviceRequest{Request: pool.Request{
		Namespace:       svc.Namespace,
		Name:            svc.Name,
		ServiceLabels:   svc.Labels,
		NamespaceLabels: nsLabels,
		LocalTraffic:    svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
		Selector:        svc.Spec.Selector,
	}}
	ips, field, err := requestedIPs(svc)
	if err != nil {
		return nil, err
	}
	r.IPs, r.ipsField = ips, field

	if name, ok := svc.Annotations[AnnotationIPPool]; ok {
		r.Pool = strings.TrimSpace(name)
		if r.Pool == "" {
			return nil, providers.NewInputError(fieldIPPool, "must name an IPPool, or be removed")
		}
	}
	if key, ok := svc.Annotations[AnnotationAllowSharedIP]; ok {
		r.SharingKey = strings.TrimSpace(key)
		if r.SharingKey == "" {
			return nil, providers.NewInputError(fieldAllowSharedIP, "must be a non-empty sharing key, or be removed")
		}
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		r.Ports = append(r.Ports, pool.Port{Protocol: string(proto), Port: p.Port})
	}

	r.Policy = pool.SingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		r.Policy = pool.FamilyPolicy(*svc.Spec.IPFamilyPolicy)
	}
	for i, f := range svc.Spec.IPFamilies {
		switch f {
		case v1.IPv4Protocol, v1.IPv6Protocol:
			r.Families = append(r.Families, pool.Family(f))
		default:
			return nil, providers.NewInputError(fmt.Sprintf("%s[%d]", fieldIPFamilies, i), "unknown IP family %q", f)
		}
	}
	if len(r.Families) == 0 {
		// The API server always fills spec.ipFamilies; without it, follow
		// the requested address, else IPv4.
		r.Families = []pool.Family{pool.IPv4}
		if len(r.IPs) > 0 && r.IPs[0].Is6() {
			r.Families = []pool.Family{pool.IPv6}
		}
	}
	return r, nil
}

// requestedIPs reads the annotation, or else the deprecated
// spec.loadBalancerIP, and returns the addresses and the field they came from.
func requestedIPs(svc *v1.Service) ([]netip.Addr, string, error) {
	legacy := strings.TrimSpace(svc.Spec.LoadBalancerIP)
	value, annotated := svc.Annotations[AnnotationLoadBalancerIPs]
	if !annotated {
		if legacy == "" {
			return nil, "", nil
		}
		ip, err := netip.ParseAddr(legacy)
		if err != nil || ip.Zone() != "" || ip.Is4In6() {
			return nil, "", providers.NewInputError(fieldLoadBalancerIP, "%q is not an IP address", legacy)
		}
		return []netip.Addr{ip}, fieldLoadBalancerIP, nil
	}
	var ips []netip.Addr
	for _, s := range strings.Split(value, ",") {
		s = strings.TrimSpace(s)
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" || ip.Is4In6() {
			return nil, "", providers.NewInputError(fieldLoadBalancerIPs, "%q is not an IP address (want a comma-separated list, at most one address per IP family)", s)
		}
		for _, prev := range ips {
			if prev.Is4() == ip.Is4() {
				return nil, "", providers.NewInputError(fieldLoadBalancerIPs, "%s and %s are of the same family; give at most one address per IP family", prev, ip)
			}
		}
		ips = append(ips, ip)
	}
	if legacy != "" {
		if ip, err := netip.ParseAddr(legacy); err != nil || !containsAddr(ips, ip) {
			return nil, "", providers.NewInputError(fieldLoadBalancerIPs, "conflicts with spec.loadBalancerIP %q; set only the annotation", legacy)
		}
	}
	return ips, fieldLoadBalancerIPs, nil
}

func containsAddr(ips []netip.Addr, ip netip.Addr) bool {
	for _, x := range ips {
		if x == ip {
			return true
		}
	}
	return false
}
