package speaker

import (
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestElectionServices(t *testing.T) {
	metal := providers.ClassFilter{Name: providers.DefaultClass(ProviderName)}
	withDefault := providers.ClassFilter{Name: providers.DefaultClass(ProviderName), Default: true}
	tests := []struct {
		desc   string
		filter providers.ClassFilter
		svc    *v1.Service
		want   []string // addresses; nil = Service not served
	}{
		{desc: "our class with an ingress IP", filter: metal, svc: newService("web"), want: []string{"192.0.2.200"}},
		{desc: "other class", filter: metal, svc: newService("web", fixtures.WithClass("example.com/other"))},
		{desc: "no class without --default-class", filter: metal, svc: newService("web", fixtures.WithoutClass())},
		{desc: "no class with --default-class", filter: withDefault, svc: newService("web", fixtures.WithoutClass()), want: []string{"192.0.2.200"}},
		{desc: "other class with --default-class", filter: withDefault, svc: newService("web", fixtures.WithClass("example.com/other"))},
		{desc: "not type LoadBalancer", filter: metal, svc: newService("web", fixtures.WithType(v1.ServiceTypeNodePort))},
		{desc: "no ingress yet", filter: metal, svc: newService("web", fixtures.WithIngress())},
		{desc: "hostname ingress ignored", filter: metal, svc: newService("web", fixtures.WithIngress(), fixtures.WithHostnameIngress("lb.example.com"))},
		{desc: "dual stack", filter: metal, svc: newService("web", fixtures.WithIngress("192.0.2.200", "2001:db8::200")), want: []string{"192.0.2.200", "2001:db8::200"}},
		{desc: "garbage ingress IP skipped", filter: metal, svc: newService("web", fixtures.WithIngress("not-an-ip", "192.0.2.7")), want: []string{"192.0.2.7"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, byName := electionServices(tc.filter, []*v1.Service{tc.svc}, nil)
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("served %+v, want not served", got)
				}
				return
			}
			if len(got) != 1 || got[0].Name != "default/web" || byName["default/web"] != tc.svc {
				t.Fatalf("got %+v, want default/web", got)
			}
			var addrs []string
			for _, a := range got[0].Addresses {
				addrs = append(addrs, a.String())
			}
			if !slices.Equal(addrs, tc.want) {
				t.Errorf("addresses = %v, want %v", addrs, tc.want)
			}
		})
	}
}

func TestReadyNodesOfLocalServices(t *testing.T) {
	slices := []*discoveryv1.EndpointSlice{
		newSlice("web", "web-a", endpoint{"node-1", true}, endpoint{"node-2", false}),
		newSlice("web", "web-b", endpoint{"node-3", true}),
		newSlice("dns", "dns-a", endpoint{"node-2", true}),
	}
	noReady := newSlice("web", "web-c")
	noReady.Endpoints = append(noReady.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.9"}, NodeName: nil})
	slices = append(slices, noReady)
	got, _ := electionServices(providers.ClassFilter{Name: providers.DefaultClass(ProviderName)},
		[]*v1.Service{newService("web", fixtures.WithLocalPolicy(0)), newService("dns", fixtures.WithIngress("192.0.2.201"))}, slices)
	for _, s := range got {
		switch s.Name {
		case "default/web":
			if !s.Local || len(s.ReadyNodes) != 2 || !s.ReadyNodes["node-1"] || !s.ReadyNodes["node-3"] {
				t.Errorf("web: local=%v ready=%v, want Local with node-1 and node-3", s.Local, s.ReadyNodes)
			}
		case "default/dns":
			if s.Local || s.ReadyNodes != nil {
				t.Errorf("dns (Cluster): local=%v ready=%v, want no endpoint filtering", s.Local, s.ReadyNodes)
			}
		}
	}
}

func TestPeersAndNodes(t *testing.T) {
	nodes := []*v1.Node{
		fixtures.Node("node-1", fixtures.WithInternalIP("192.0.2.11"), fixtures.WithInternalIP("2001:db8::11")),
		fixtures.Node("node-2", excluded(), fixtures.WithInternalIP("192.0.2.12")),
		fixtures.Node("node-3"),
	}
	peers := peerAddresses(nodes, 7947)
	want := map[string]netip.AddrPort{
		"node-1": netip.MustParseAddrPort("192.0.2.11:7947"),
		"node-2": netip.MustParseAddrPort("192.0.2.12:7947"),
	}
	if len(peers) != len(want) || peers["node-1"] != want["node-1"] || peers["node-2"] != want["node-2"] {
		t.Errorf("peers = %v, want %v", peers, want)
	}
	en := electionNodes(nodes, map[string]bool{"node-1": true, "node-2": true})
	if !en[0].Live || en[0].Excluded || !en[1].Excluded || en[2].Live {
		t.Errorf("election nodes = %+v, want node-1 live, node-2 excluded, node-3 not live", en)
	}
}

// TestElectionNodesExcludeWhatTheControllerExcludes: a node the controller
// does not use as a backend announces nothing (before, the speaker looked
// only at the exclude label, and at any value of it).
func TestElectionNodesExcludeWhatTheControllerExcludes(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		node     *v1.Node
		excluded bool
	}{
		{desc: "ordinary", node: fixtures.Node("n")},
		{desc: "exclude label", node: fixtures.Node("n", excluded()), excluded: true},
		{desc: "exclude label false keeps it", node: fixtures.Node("n", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "false"))},
		{desc: "autoscaler deletion taint", node: fixtures.Node("n", fixtures.WithTaint(providers.TaintToBeDeletedByClusterAutoscaler, v1.TaintEffectNoSchedule)), excluded: true},
		{desc: "being deleted", node: fixtures.Node("n", fixtures.WithNodeDeletion()), excluded: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			en := electionNodes([]*v1.Node{tc.node}, map[string]bool{"n": true})
			if en[0].Excluded != tc.excluded {
				t.Errorf("excluded = %v, want %v", en[0].Excluded, tc.excluded)
			}
		})
	}
}
