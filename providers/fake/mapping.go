package fake

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/api"
)

// Tags the provider puts on each load balancer.
const (
	tagCluster = "extlb.io/cluster"
	tagService = "extlb.io/service"
)

var notLabelChars = regexp.MustCompile(`[^a-z0-9-]+`)

// loadBalancerName is "<cluster>-<default name>": the cluster name made a
// DNS label and cut to 30 characters, then Kubernetes' default name ("a" and
// the Service UID without dashes, 32 characters). At most 63 characters.
func loadBalancerName(clusterName string, service *v1.Service) string {
	prefix := notLabelChars.ReplaceAllString(strings.ToLower(clusterName), "-")
	prefix = strings.Trim(prefix, "-")
	if len(prefix) > 30 {
		prefix = strings.TrimRight(prefix[:30], "-")
	}
	name := cloudprovider.DefaultLoadBalancerName(service)
	if prefix == "" {
		return name
	}
	return prefix + "-" + name
}

// mapping holds the provider settings that shape every request.
type mapping struct {
	healthCheckInterval time.Duration
}

// spec maps a Service and the cluster's nodes to the fake cloud's request.
// Errors are InputErrors naming the Service field; nothing is sent then.
func (m mapping) spec(clusterName string, service *v1.Service, nodes []*v1.Node) (api.LoadBalancerSpec, error) {
	s := api.LoadBalancerSpec{Tags: map[string]string{
		tagCluster: clusterName,
		tagService: service.Namespace + "/" + service.Name,
	}}
	// The fake provider reads no annotation of its own; one in extlb's
	// namespaces is refused, not ignored.
	if err := (providers.Annotations{}).Check(service); err != nil {
		return s, err
	}
	if service.Spec.LoadBalancerIP != "" {
		return s, providers.NewInputError("spec.loadBalancerIP", "the fake cloud allocates addresses itself and cannot use %q; remove the field", service.Spec.LoadBalancerIP)
	}
	if len(service.Spec.Ports) == 0 {
		return s, providers.NewInputError("spec.ports", "a LoadBalancer Service needs at least one port")
	}
	var firstTCPNodePort int
	for i, p := range service.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		if p.Protocol != v1.ProtocolTCP && p.Protocol != v1.ProtocolUDP {
			return s, providers.NewInputError(field+".protocol", "the fake cloud balances TCP and UDP, not %s", p.Protocol)
		}
		if p.NodePort == 0 {
			return s, providers.NewInputError(field+".nodePort", "not allocated (spec.allocateLoadBalancerNodePorts is false?): the fake cloud forwards to node ports")
		}
		if p.Protocol == v1.ProtocolTCP && firstTCPNodePort == 0 {
			firstTCPNodePort = int(p.NodePort)
		}
		s.Ports = append(s.Ports, api.Port{Name: p.Name, Protocol: string(p.Protocol), Port: int(p.Port), BackendPort: int(p.NodePort)})
	}

	s.Backends = backends(nodes)

	hc := &api.HealthCheck{IntervalMillis: int(m.healthCheckInterval / time.Millisecond)}
	switch {
	case service.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal:
		if service.Spec.HealthCheckNodePort == 0 {
			return s, providers.NewInputError("spec.healthCheckNodePort", "must be set with externalTrafficPolicy Local")
		}
		hc.Type, hc.Port, hc.Path = api.HealthCheckHTTP, int(service.Spec.HealthCheckNodePort), "/healthz"
	case firstTCPNodePort != 0:
		// Cluster policy: every node forwards, so a node is healthy when it
		// accepts connections on the Service's node port.
		hc.Type, hc.Port = api.HealthCheckTCP, firstTCPNodePort
	default:
		// UDP only: no connect check is meaningful.
		hc = &api.HealthCheck{Type: api.HealthCheckNone}
	}
	if hc.TimeoutMillis == 0 && hc.IntervalMillis > 0 && hc.IntervalMillis < api.DefaultHealthCheckTimeoutMillis {
		hc.TimeoutMillis = hc.IntervalMillis
	}
	s.HealthCheck = hc

	ranges, err := providers.SourceRanges(service)
	if err != nil {
		return s, err
	}
	for _, r := range ranges {
		if r.Prefix.Bits() == 0 { // 0.0.0.0/0 or ::/0: everyone
			s.SourceRanges = nil
			break
		}
		s.SourceRanges = append(s.SourceRanges, r.Prefix.String())
	}
	sort.Strings(s.SourceRanges)

	if service.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		timeout := int(v1.DefaultClientIPServiceAffinitySeconds)
		if c := service.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			timeout = int(*c.ClientIP.TimeoutSeconds)
		}
		s.SessionAffinity = &api.SessionAffinity{Type: api.SessionAffinityClientIP, TimeoutSeconds: timeout}
	}
	if err := s.Validate(); err != nil {
		// The checks above should have caught it; name the Service field.
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return s, providers.NewInputError(serviceField(fe.Field), "%s", fe.Reason)
		}
		return s, err
	}
	return s, nil
}

// backends lists each node once, by name, at its first valid InternalIP;
// nodes without one are left out.
func backends(nodes []*v1.Node) []api.Backend {
	var out []api.Backend
	seen := map[string]bool{}
	for _, n := range nodes {
		if n == nil || seen[n.Name] {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != v1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out = append(out, api.Backend{Name: n.Name, Address: ip.String()})
				seen[n.Name] = true
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// serviceField translates a field of the fake cloud's request to the
// Service field it was made from. Ports keep their index (one request port
// per Service port); source ranges are sorted, so only the list is named.
func serviceField(field string) string {
	switch {
	case field == "":
		return "spec"
	case strings.HasPrefix(field, "spec.ports["):
		f := strings.TrimPrefix(field, "spec.")
		f = strings.Replace(f, ".backendPort", ".nodePort", 1)
		return "spec." + f
	case strings.HasPrefix(field, "spec.sourceRanges"):
		return "spec.loadBalancerSourceRanges"
	case strings.HasPrefix(field, "spec.sessionAffinity"):
		return "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
	case strings.HasPrefix(field, "spec.healthCheck"):
		return "spec.healthCheckNodePort"
	}
	return field
}

// status is the Service status for a load balancer. The fake cloud proxies:
// connections reach the nodes from the fake cloud, with the node as
// destination, so the ingress is IPMode Proxy.
func status(lb *api.LoadBalancer) *v1.LoadBalancerStatus {
	if lb == nil || lb.Status.Address == "" {
		return &v1.LoadBalancerStatus{}
	}
	mode := v1.LoadBalancerIPModeProxy
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: lb.Status.Address, IPMode: &mode}}}
}
