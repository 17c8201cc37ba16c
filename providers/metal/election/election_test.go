package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

var (
	vip  = netip.MustParseAddr("192.0.2.200")
	vip2 = netip.MustParseAddr("192.0.2.201")
	vip6 = netip.MustParseAddr("2001:db8::200")
)

// TestRankGolden pins the ranking to values computed outside Go with
// `{ printf node-1; printf '\0'; printf 192.0.2.200; } | sha256sum` (lowest
// hash first): speakers of different versions
// must agree.
func TestRankGolden(t *testing.T) {
	tests := []struct {
		desc string
		addr netip.Addr
		want []string
	}{
		{desc: "IPv4 address", addr: vip, want: []string{"node-2", "node-3", "node-1"}},
		{desc: "another IPv4 address", addr: vip2, want: []string{"node-2", "node-1", "node-3"}},
		{desc: "IPv6 address", addr: vip6, want: []string{"node-3", "node-2", "node-1"}},
		{desc: "IPv4-mapped IPv6 form ranks as IPv4", addr: netip.AddrFrom16(vip.As16()), want: []string{"node-2", "node-3", "node-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Rank(tc.addr, []string{"node-1", "node-2", "node-3"}); !slices.Equal(got, tc.want) {
				t.Errorf("Rank(%s) = %v, want %v", tc.addr, got, tc.want)
			}
			if got := Rank(tc.addr, []string{"node-3", "node-1", "node-2"}); !slices.Equal(got, tc.want) {
				t.Errorf("Rank(%s) with other input order = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

type nodeOption func(*Node)

func excluded() nodeOption { return func(n *Node) { n.Excluded = true } }
func dead() nodeOption     { return func(n *Node) { n.Live = false } }

func newNode(name string, opts ...nodeOption) Node {
	n := Node{Name: name, Live: true}
	for _, o := range opts {
		o(&n)
	}
	return n
}

type serviceOption func(*Service)

func withAddresses(addrs ...netip.Addr) serviceOption {
	return func(s *Service) { s.Addresses = addrs }
}

// local makes the Service externalTrafficPolicy: Local with ready endpoints
// on nodes.
func local(nodes ...string) serviceOption {
	return func(s *Service) {
		s.Local = true
		s.ReadyNodes = map[string]bool{}
		for _, n := range nodes {
			s.ReadyNodes[n] = true
		}
	}
}

func newService(name string, opts ...serviceOption) Service {
	s := Service{Name: "default/" + name, Addresses: []netip.Addr{vip}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func threeNodes(opts map[string][]nodeOption) []Node {
	var out []Node
	for _, name := range []string{"node-1", "node-2", "node-3"} {
		out = append(out, newNode(name, opts[name]...))
	}
	return out
}

func TestElect(t *testing.T) {
	// For vip the ranking is node-2, node-3, node-1 (TestRankGolden).
	tests := []struct {
		desc     string
		nodes    []Node
		services []Service
		want     map[netip.Addr]string
	}{
		{
			desc:     "first ranked node announces",
			nodes:    threeNodes(nil),
			services: []Service{newService("web")},
			want:     map[netip.Addr]string{vip: "node-2"},
		},
		{
			desc:     "excluded node is passed over",
			nodes:    threeNodes(map[string][]nodeOption{"node-2": {excluded()}}),
			services: []Service{newService("web")},
			want:     map[netip.Addr]string{vip: "node-3"},
		},
		{
			desc:     "node without a live speaker is passed over",
			nodes:    threeNodes(map[string][]nodeOption{"node-3": {dead()}, "node-2": {dead()}}),
			services: []Service{newService("web")},
			want:     map[netip.Addr]string{vip: "node-1"},
		},
		{
			desc:     "no eligible node: address unassigned",
			nodes:    threeNodes(map[string][]nodeOption{"node-1": {dead()}, "node-2": {excluded()}, "node-3": {dead()}}),
			services: []Service{newService("web")},
			want:     map[netip.Addr]string{vip: ""},
		},
		{
			desc:     "Local: only a node with a ready endpoint",
			nodes:    threeNodes(nil),
			services: []Service{newService("web", local("node-1"))},
			want:     map[netip.Addr]string{vip: "node-1"},
		},
		{
			desc:     "Local: ranking among nodes with endpoints",
			nodes:    threeNodes(nil),
			services: []Service{newService("web", local("node-1", "node-3"))},
			want:     map[netip.Addr]string{vip: "node-3"},
		},
		{
			desc:     "Local: endpoint on a dead node does not count",
			nodes:    threeNodes(map[string][]nodeOption{"node-1": {dead()}}),
			services: []Service{newService("web", local("node-1"))},
			want:     map[netip.Addr]string{vip: ""},
		},
		{
			desc:     "Local: no ready endpoint anywhere: not announced",
			nodes:    threeNodes(nil),
			services: []Service{newService("web", local())},
			want:     map[netip.Addr]string{vip: ""},
		},
		{
			desc:  "shared address: one node for all holders",
			nodes: threeNodes(nil),
			services: []Service{
				newService("web"),
				newService("dns"),
			},
			want: map[netip.Addr]string{vip: "node-2"},
		},
		{
			desc:  "shared Local address: node eligible for both Services wins over higher-ranked ones",
			nodes: threeNodes(nil),
			services: []Service{
				newService("web", local("node-1", "node-3")),
				newService("dns", local("node-1", "node-2")),
			},
			want: map[netip.Addr]string{vip: "node-1"},
		},
		{
			desc:  "shared Local address, no node eligible for all: most Services served, then rank",
			nodes: threeNodes(nil),
			services: []Service{
				newService("web", local("node-1")),
				newService("dns", local("node-3")),
			},
			want: map[netip.Addr]string{vip: "node-3"},
		},
		{
			desc:  "shared by Local and Cluster Services, no endpoints: announced for the Cluster one",
			nodes: threeNodes(nil),
			services: []Service{
				newService("web", local()),
				newService("dns"),
			},
			want: map[netip.Addr]string{vip: "node-2"},
		},
		{
			desc:  "shared by Local and Cluster Services: the node with the Local endpoint",
			nodes: threeNodes(nil),
			services: []Service{
				newService("web", local("node-1")),
				newService("dns"),
			},
			want: map[netip.Addr]string{vip: "node-1"},
		},
		{
			desc:     "dual-stack Service: each address ranked on its own",
			nodes:    threeNodes(map[string][]nodeOption{"node-3": {dead()}}),
			services: []Service{newService("web", withAddresses(vip2, vip6))},
			want:     map[netip.Addr]string{vip2: "node-2", vip6: "node-2"},
		},
		{
			desc:     "no nodes",
			services: []Service{newService("web")},
			want:     map[netip.Addr]string{vip: ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := Elect(tc.nodes, tc.services)
			if len(got) != len(tc.want) {
				t.Fatalf("Elect returned %d addresses (%v), want %d", len(got), got, len(tc.want))
			}
			for addr, node := range tc.want {
				if got[addr].Node != node {
					t.Errorf("%s announced by %q, want %q", addr, got[addr].Node, node)
				}
				if len(got[addr].Services) == 0 {
					t.Errorf("%s lists no Services", addr)
				}
			}
			// Every speaker gets its inputs in its own order.
			nodes := slices.Clone(tc.nodes)
			services := slices.Clone(tc.services)
			rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
			rand.Shuffle(len(services), func(i, j int) { services[i], services[j] = services[j], services[i] })
			for addr, a := range Elect(nodes, services) {
				if a.Node != got[addr].Node || !slices.Equal(a.Services, got[addr].Services) {
					t.Errorf("with shuffled input %s -> %+v, want %+v", addr, a, got[addr])
				}
			}
		})
	}
}

func TestElectListsSharingServices(t *testing.T) {
	got := Elect(threeNodes(nil), []Service{newService("web"), newService("dns"), newService("other", withAddresses(vip2))})
	if want := []string{"default/dns", "default/web"}; !slices.Equal(got[vip].Services, want) {
		t.Errorf("Services of %s = %v, want %v", vip, got[vip].Services, want)
	}
}

// TestOnlyTheLostNodesAddressesMove checks the property failover relies on:
// when a node dies only the addresses it announced change hands, and the
// addresses spread over all nodes.
func TestOnlyTheLostNodesAddressesMove(t *testing.T) {
	var nodes []Node
	for i := range 5 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i)))
	}
	var services []Service
	for i := range 500 {
		addr := netip.AddrFrom4([4]byte{198, 51, 100 + byte(i/250), byte(i % 250)})
		services = append(services, newService(fmt.Sprintf("svc-%d", i), withAddresses(addr)))
	}
	before := Elect(nodes, services)
	perNode := map[string]int{}
	for _, a := range before {
		perNode[a.Node]++
	}
	for _, n := range nodes {
		if perNode[n.Name] < 50 {
			t.Errorf("%s announces %d of 500 addresses, want a fair share (>= 50): %v", n.Name, perNode[n.Name], perNode)
		}
	}
	nodes[2].Live = false
	after := Elect(nodes, services)
	for addr, a := range after {
		was := before[addr].Node
		if was != "node-2" && a.Node != was {
			t.Errorf("%s moved from %s to %s although only node-2 died", addr, was, a.Node)
		}
		if a.Node == "node-2" || a.Node == "" {
			t.Errorf("%s assigned to %q after node-2 died", addr, a.Node)
		}
	}
}
