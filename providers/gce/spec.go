package gce

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
)

// Annotations the gce provider reads.
const (
	// AnnotationLoadBalancerIP requests a specific regional IPv4 address, like
	// spec.loadBalancerIP (deprecated upstream). If both are set they must
	// agree.
	AnnotationLoadBalancerIP = "gce.extlb.io/load-balancer-ip"
)

// Health-check settings, as cloud-provider-gcp uses them for target pools.
const (
	kubeProxyHealthPort       = 10256
	healthCheckPath           = "/healthz"
	healthCheckIntervalSec    = 8
	healthCheckTimeoutSec     = 1
	healthCheckHealthyCount   = 1
	healthCheckUnhealthyCount = 3
)

// probeRanges are the source ranges of Google's health checkers for
// target-pool load balancers.
var probeRanges = []string{"130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22", "35.191.0.0/16"}

// lbSpec is what one Service asks for, validated.
type lbSpec struct {
	names   resourceNames
	owner   owner
	service string
	// requestedIP is the address asked for, or "" for any.
	requestedIP string
	// requestedIPField names where requestedIP came from, for messages.
	requestedIPField string
	// ports are the Service ports by protocol (TCP, UDP), sorted.
	ports map[v1.Protocol][]int32
	// sourceRanges are the allowed client ranges, normalized and sorted.
	sourceRanges []string
	// local is externalTrafficPolicy: Local; healthPort is then the
	// Service's healthCheckNodePort, else kube-proxy's port.
	local      bool
	healthPort int32
	// affinity is the target pool's sessionAffinity (NONE or CLIENT_IP).
	affinity string
}

// healthCheckName is the health check the target pool should use.
func (s *lbSpec) healthCheckName() string {
	if s.local {
		return s.names.healthCheck
	}
	return s.names.sharedHealthCheck
}

// healthOwner is the owner recorded on the health check and its firewall.
func (s *lbSpec) healthOwner() owner {
	if s.local {
		return s.owner
	}
	return owner{Cluster: s.owner.Cluster}
}

// protocols returns the Service's protocols, sorted.
func (s *lbSpec) protocols() []v1.Protocol {
	var out []v1.Protocol
	for p := range s.ports {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// portRange is the forwarding rule's portRange for a protocol: GCE
// target-pool forwarding rules take one contiguous range; the firewall
// admits only the exact ports.
func (s *lbSpec) portRange(p v1.Protocol) string {
	ports := s.ports[p]
	return fmt.Sprintf("%d-%d", ports[0], ports[len(ports)-1])
}

// specFor validates the Service and returns what it asks for. Every problem
// with the Service is an InputError naming the field; nothing has been
// created when it returns one.
func specFor(cluster string, svc *v1.Service) (*lbSpec, error) {
	if svc.UID == "" {
		return nil, providers.NewInputError("metadata.uid", "the Service has no UID")
	}
	if err := checkAnnotations(svc); err != nil {
		return nil, err
	}
	s := &lbSpec{
		names:    namesFor(cluster, string(svc.UID)),
		owner:    owner{Cluster: cluster, Service: svc.Namespace + "/" + svc.Name},
		service:  svc.Namespace + "/" + svc.Name,
		ports:    map[v1.Protocol][]int32{},
		affinity: "NONE",
	}
	if len(svc.Spec.IPFamilies) > 0 && !slices.Contains(svc.Spec.IPFamilies, v1.IPv4Protocol) {
		return nil, providers.NewInputError("spec.ipFamilies", "GCE target-pool load balancers serve IPv4 only")
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, providers.NewInputError("spec.ports", "a load balancer needs at least one port")
	}
	for i, p := range svc.Spec.Ports {
		switch p.Protocol {
		case v1.ProtocolTCP, v1.ProtocolUDP:
		case "":
			p.Protocol = v1.ProtocolTCP
		default:
			return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].protocol", i),
				"protocol %s is not supported by GCE target-pool load balancers (TCP and UDP are)", p.Protocol)
		}
		if p.Port < 1 || p.Port > 65535 {
			return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].port", i), "port %d is out of range", p.Port)
		}
		if slices.Contains(s.ports[p.Protocol], p.Port) {
			return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].port", i), "port %d/%s is listed twice", p.Port, p.Protocol)
		}
		s.ports[p.Protocol] = append(s.ports[p.Protocol], p.Port)
	}
	for _, ports := range s.ports {
		slices.Sort(ports)
	}

	if err := s.setRequestedIP(svc); err != nil {
		return nil, err
	}
	if err := s.setSourceRanges(svc); err != nil {
		return nil, err
	}

	s.local = svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	s.healthPort = kubeProxyHealthPort
	if s.local {
		if svc.Spec.HealthCheckNodePort < 1 || svc.Spec.HealthCheckNodePort > 65535 {
			return nil, providers.NewInputError("spec.healthCheckNodePort",
				"externalTrafficPolicy: Local needs a healthCheckNodePort, got %d", svc.Spec.HealthCheckNodePort)
		}
		s.healthPort = svc.Spec.HealthCheckNodePort
	}
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		s.affinity = "CLIENT_IP"
	}
	return s, nil
}

func (s *lbSpec) setRequestedIP(svc *v1.Service) error {
	annotation := strings.TrimSpace(svc.Annotations[AnnotationLoadBalancerIP])
	field := "spec.loadBalancerIP"
	ip := strings.TrimSpace(svc.Spec.LoadBalancerIP)
	if annotation != "" {
		if ip != "" && ip != annotation {
			return providers.NewInputError("metadata.annotations["+AnnotationLoadBalancerIP+"]",
				"requests %s but spec.loadBalancerIP requests %s", annotation, ip)
		}
		ip, field = annotation, "metadata.annotations["+AnnotationLoadBalancerIP+"]"
	}
	if ip == "" {
		return nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return providers.NewInputError(field, "%q is not an IPv4 address", ip)
	}
	if addr.IsUnspecified() || addr.IsLoopback() || addr.IsMulticast() || addr.IsPrivate() || addr.IsLinkLocalUnicast() {
		return providers.NewInputError(field, "%s cannot be an external load-balancer address", ip)
	}
	s.requestedIP, s.requestedIPField = addr.String(), field
	return nil
}

func (s *lbSpec) setSourceRanges(svc *v1.Service) error {
	ranges, err := providers.SourceRanges(svc)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if !r.Prefix.Addr().Is4() {
			return providers.NewInputError(r.Field, "%s is not IPv4; GCE target-pool load balancers serve IPv4 only", r.Prefix)
		}
		s.sourceRanges = append(s.sourceRanges, r.Prefix.String())
	}
	if len(s.sourceRanges) == 0 {
		s.sourceRanges = []string{"0.0.0.0/0"}
	}
	sort.Strings(s.sourceRanges)
	return nil
}
