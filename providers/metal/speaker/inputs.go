package speaker

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal/election"
)

// ingressAddresses returns the IPs in the Service's status; hostname-only
// entries are ignored.
func ingressAddresses(svc *v1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// readyNodesBySlice maps namespace/service to the nodes that run a ready
// endpoint of it.
func readyNodesBySlice(slices []*discoveryv1.EndpointSlice) map[types.NamespacedName]map[string]bool {
	out := map[types.NamespacedName]map[string]bool{}
	for _, s := range slices {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: svc}
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			if out[key] == nil {
				out[key] = map[string]bool{}
			}
			out[key][*ep.NodeName] = true
		}
	}
	return out
}

// electionServices turns the Services this speaker serves into the
// election's input.
func electionServices(f providers.ClassFilter, svcs []*v1.Service, slices []*discoveryv1.EndpointSlice) ([]election.Service, map[string]*v1.Service) {
	ready := readyNodesBySlice(slices)
	var out []election.Service
	byName := map[string]*v1.Service{}
	for _, svc := range svcs {
		if !f.Serves(svc) {
			continue
		}
		addrs := ingressAddresses(svc)
		if len(addrs) == 0 {
			continue
		}
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		es := election.Service{
			Name:      key.String(),
			Addresses: addrs,
			Local:     svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
		}
		if es.Local {
			es.ReadyNodes = ready[key]
		}
		out = append(out, es)
		byName[es.Name] = svc
	}
	return out, byName
}

// electionNodes turns Nodes into the election's input; live names the nodes
// with a speaker that is heard. A node the controller would not use as a
// backend (providers.NodeExclusion) announces nothing either.
func electionNodes(nodes []*v1.Node, live map[string]bool) []election.Node {
	out := make([]election.Node, 0, len(nodes))
	for _, n := range nodes {
		excluded := providers.NodeExclusion(n) != ""
		out = append(out, election.Node{Name: n.Name, Excluded: excluded, Live: live[n.Name]})
	}
	return out
}

// peerAddresses maps node names to the heartbeat address of their speaker:
// the node's first InternalIP.
func peerAddresses(nodes []*v1.Node, port uint16) map[string]netip.AddrPort {
	out := map[string]netip.AddrPort{}
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != v1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out[n.Name] = netip.AddrPortFrom(ip.Unmap(), port)
				break
			}
		}
	}
	return out
}
