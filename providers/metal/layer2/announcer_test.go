package layer2

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	macEth0   = net.HardwareAddr{0x02, 0, 0, 0, 1, 11}
	macEth1   = net.HardwareAddr{0x02, 0, 0, 0, 2, 11}
	macClient = net.HardwareAddr{0x02, 0, 0, 0, 1, 100}
	clientIP  = netip.MustParseAddr("192.0.2.100")
	vip       = netip.MustParseAddr("192.0.2.200")
	vip6      = netip.MustParseAddr("2001:db8::200")
)

// newLink builds a Link fixture.
func newLink(name string, mac net.HardwareAddr, prefixes ...string) Link {
	l := Link{Name: name, Index: len(name), MAC: mac}
	for _, p := range prefixes {
		l.Prefixes = append(l.Prefixes, netip.MustParsePrefix(p))
	}
	return l
}

// twoLinks is a node with eth0 on 192.0.2.0/24 + 2001:db8::/64 and eth1 on
// 198.51.100.0/24.
func twoLinks() *fakeNetwork {
	return newFakeNetwork(
		newLink("eth0", macEth0, "192.0.2.11/24", "2001:db8::11/64", "fe80::11/64"),
		newLink("eth1", macEth1, "198.51.100.11/24"),
	)
}

type announcerOption func(*Config)

func withInterfaces(names ...string) announcerOption {
	return func(c *Config) { c.Interfaces = names }
}

func withSchedule(d ...time.Duration) announcerOption {
	return func(c *Config) { c.GratuitousSchedule = d }
}

func withRegistry(r prometheus.Registerer) announcerOption {
	return func(c *Config) { c.Registerer = r }
}

func newAnnouncer(t *testing.T, n *fakeNetwork, opts ...announcerOption) *Announcer {
	t.Helper()
	cfg := Config{Network: n, GratuitousSchedule: []time.Duration{0}}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func request(sender net.HardwareAddr, senderIP, target netip.Addr) *arp.Packet {
	p, err := arp.NewPacket(arp.OperationRequest, sender, senderIP, ethernet.Broadcast, target)
	if err != nil {
		panic(err)
	}
	return p
}

// probe sends a request for vip that must be answered; any frame the
// announcer sent before that answer is returned, so a test can check that an
// earlier packet produced no reply without waiting on a timer.
func probe(t *testing.T, c *fakeARP) []sentARP {
	t.Helper()
	sentinel := netip.MustParseAddr("192.0.2.99")
	c.in <- request(macClient, sentinel, vip)
	var before []sentARP
	for {
		s := c.next(t)
		if s.p.TargetIP == sentinel {
			return before
		}
		before = append(before, s)
	}
}

func TestAnswersARPRequests(t *testing.T) {
	tests := []struct {
		desc      string
		in        *arp.Packet
		wantReply bool
	}{
		{
			desc:      "request for the announced address is answered with the interface MAC",
			in:        request(macClient, clientIP, vip),
			wantReply: true,
		},
		{
			desc: "request for another address is ignored",
			in:   request(macClient, clientIP, netip.MustParseAddr("192.0.2.201")),
		},
		{
			desc: "own request is ignored",
			in:   request(macEth0, vip, vip),
		},
		{
			desc: "reply is ignored",
			in: func() *arp.Packet {
				p, _ := arp.NewPacket(arp.OperationReply, macClient, clientIP, macEth0, vip)
				return p
			}(),
		},
		{
			desc:      "duplicate address probe (sender 0.0.0.0) is answered",
			in:        request(macClient, netip.IPv4Unspecified(), vip),
			wantReply: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			n := twoLinks()
			a := newAnnouncer(t, n)
			if err := a.SetBalancer("default/web", vip); err != nil {
				t.Fatalf("SetBalancer: %v", err)
			}
			c := n.arp(t, "eth0")
			c.next(t) // the gratuitous announcement
			c.in <- tc.in
			got := probe(t, c)
			if !tc.wantReply {
				if len(got) != 0 {
					t.Fatalf("announcer sent %d frames, want none: %+v", len(got), got[0].p)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("announcer sent %d frames, want 1 reply", len(got))
			}
			r := got[0]
			if r.p.Operation != arp.OperationReply || r.p.SenderIP != vip || r.p.SenderHardwareAddr.String() != macEth0.String() {
				t.Errorf("reply = %v %s is-at %s, want reply %s is-at %s", r.p.Operation, r.p.SenderIP, r.p.SenderHardwareAddr, vip, macEth0)
			}
			if r.p.TargetIP != tc.in.SenderIP || r.dst.String() != macClient.String() {
				t.Errorf("reply sent to %s (%s), want %s (%s)", r.p.TargetIP, r.dst, tc.in.SenderIP, macClient)
			}
		})
	}
}

func TestChoosesInterfaces(t *testing.T) {
	tests := []struct {
		desc       string
		interfaces []string
		links      []Link
		ip         string
		want       []string // sockets opened
		wantErr    string
	}{
		{
			desc: "IPv4 address on the interface whose subnet holds it",
			ip:   "192.0.2.200",
			want: []string{"eth0/arp"},
		},
		{
			desc: "address of the second subnet on the second interface only",
			ip:   "198.51.100.7",
			want: []string{"eth1/arp"},
		},
		{
			desc: "IPv6 address with neighbor discovery",
			ip:   "2001:db8::200",
			want: []string{"eth0/ndp"},
		},
		{
			desc: "interface on the same subnet twice: both",
			links: []Link{
				newLink("eth0", macEth0, "192.0.2.11/24"),
				newLink("vlan5", macEth1, "192.0.2.12/25"),
			},
			ip:   "192.0.2.20",
			want: []string{"eth0/arp", "vlan5/arp"},
		},
		{
			desc:    "address outside every subnet is an error and opens nothing",
			ip:      "203.0.113.5",
			wantErr: "no interface has a subnet holding the address",
		},
		{
			desc: "host route does not count as a subnet",
			links: []Link{
				newLink("kube-ipvs0", macEth1, "203.0.113.5/32"),
			},
			ip:      "203.0.113.5",
			wantErr: "no interface has a subnet holding the address",
		},
		{
			desc:       "configured interface restricts announcing to it",
			interfaces: []string{"eth1"},
			ip:         "192.0.2.200",
			want:       []string{"eth1/arp"},
		},
		{
			desc:       "configured interface with the matching subnet among several",
			interfaces: []string{"eth0", "eth1"},
			ip:         "198.51.100.7",
			want:       []string{"eth1/arp"},
		},
		{
			desc:       "configured interface that does not exist",
			interfaces: []string{"bond0"},
			ip:         "192.0.2.200",
			wantErr:    "none of the configured interfaces [bond0]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			n := twoLinks()
			if tc.links != nil {
				n = newFakeNetwork(tc.links...)
			}
			a := newAnnouncer(t, n, withInterfaces(tc.interfaces...))
			err := a.SetBalancer("default/web", netip.MustParseAddr(tc.ip))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "default/web") {
					t.Fatalf("SetBalancer error = %v, want one naming default/web and containing %q", err, tc.wantErr)
				}
				if len(a.Balancers()) != 0 {
					t.Errorf("after error the announcer holds %v, want nothing", a.Balancers())
				}
			} else if err != nil {
				t.Fatalf("SetBalancer: %v", err)
			}
			got := n.opened()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("sockets opened = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGratuitousARPOnTakeOver(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n, withSchedule(0, 20*time.Millisecond, 40*time.Millisecond))
	start := time.Now()
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}
	c := n.arp(t, "eth0")
	for i := range 3 {
		s := c.next(t)
		p := s.p
		if p.Operation != arp.OperationRequest || p.SenderIP != vip || p.TargetIP != vip ||
			p.SenderHardwareAddr.String() != macEth0.String() || p.TargetHardwareAddr.String() != zeroMAC.String() ||
			s.dst.String() != ethernet.Broadcast.String() {
			t.Errorf("frame %d = %+v to %s, want a broadcast ARP announcement of %s at %s", i, p, s.dst, vip, macEth0)
		}
	}
	if elapsed := time.Since(start); elapsed < 40*time.Millisecond {
		t.Errorf("three announcements after %v, want them spread over the 40ms schedule", elapsed)
	}
	// Setting the same balancer again is not a take-over.
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatalf("SetBalancer again: %v", err)
	}
	if got := probe(t, c); len(got) != 0 {
		t.Errorf("repeated SetBalancer sent %d frames, want none", len(got))
	}
}

func TestDeleteStopsPendingAnnouncements(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n, withSchedule(0, 30*time.Millisecond))
	other := netip.MustParseAddr("192.0.2.201")
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}
	if err := a.SetBalancer("default/other", other); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}
	c := n.arp(t, "eth0")
	c.next(t)
	c.next(t)
	a.DeleteBalancer("default/web")
	// Frames written until now may still be web's second announcement: the
	// test does not know whether 30 ms passed before the delete. After it,
	// only other's second announcement may follow.
	deleted := c.writes.Load()
	for {
		s := c.next(t)
		if s.p.SenderIP == vip && s.seq > deleted {
			t.Errorf("announced %s after its balancer was deleted", s.p.SenderIP)
		}
		if s.p.SenderIP == other {
			break
		}
	}
	c.in <- request(macClient, clientIP, netip.MustParseAddr("192.0.2.201"))
	if r := c.next(t); r.p.Operation != arp.OperationReply {
		t.Errorf("got %+v, want the reply for the remaining balancer", r.p)
	}
}

func TestSharedAddress(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n)
	for _, name := range []string{"default/web", "default/dns"} {
		if err := a.SetBalancer(name, vip); err != nil {
			t.Fatalf("SetBalancer %s: %v", name, err)
		}
	}
	c := n.arp(t, "eth0")
	c.next(t)
	if got := probe(t, c); len(got) != 0 {
		t.Fatalf("second balancer on a shared address sent %d frames, want none", len(got))
	}
	a.DeleteBalancer("default/web")
	c.in <- request(macClient, clientIP, vip)
	if r := c.next(t); r.p.Operation != arp.OperationReply {
		t.Fatalf("after deleting one sharer: got %+v, want a reply", r.p)
	}
	a.DeleteBalancer("default/dns")
	if !c.isClosed() {
		t.Errorf("socket still open after the last balancer was deleted")
	}
}

func TestMovingBalancerToAnotherAddress(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n)
	if err := a.SetBalancer("default/web", netip.MustParseAddr("192.0.2.201")); err != nil {
		t.Fatal(err)
	}
	c := n.arp(t, "eth0")
	c.next(t)
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatal(err)
	}
	c = n.arp(t, "eth0") // the idle socket was closed and a new one opened
	if s := c.next(t); s.p.SenderIP != vip {
		t.Fatalf("announced %s, want %s", s.p.SenderIP, vip)
	}
	c.in <- request(macClient, clientIP, netip.MustParseAddr("192.0.2.201"))
	if got := probe(t, c); len(got) != 0 {
		t.Errorf("old address still answered: %+v", got[0].p)
	}
}

func TestNeighborDiscovery(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n)
	if err := a.SetBalancer("default/web", vip6); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}
	c := n.ndp(t, "eth0")
	group := netip.MustParseAddr("ff02::1:ff00:200")
	if !c.inGroup(group) {
		t.Errorf("not in solicited-node group %s", group)
	}
	checkNA := func(s sentNDP, dst netip.Addr, solicited bool) {
		t.Helper()
		na, ok := s.m.(*ndp.NeighborAdvertisement)
		if !ok {
			t.Fatalf("sent %T, want a neighbor advertisement", s.m)
		}
		if na.TargetAddress != vip6 || !na.Override || na.Solicited != solicited || s.dst != dst {
			t.Errorf("advertisement %+v to %s, want target %s override solicited=%v to %s", na, s.dst, vip6, solicited, dst)
		}
		if len(na.Options) != 1 || na.Options[0].(*ndp.LinkLayerAddress).Addr.String() != macEth0.String() {
			t.Errorf("advertisement options %v, want target link-layer address %s", na.Options, macEth0)
		}
	}
	checkNA(c.next(t), allNodes, false)

	solicitor := netip.MustParseAddr("fe80::100")
	c.in <- receivedNDP{&ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8::201")}, solicitor}
	c.in <- receivedNDP{&ndp.NeighborSolicitation{TargetAddress: vip6}, solicitor}
	checkNA(c.next(t), solicitor, true)
	c.in <- receivedNDP{&ndp.NeighborSolicitation{TargetAddress: vip6}, netip.IPv6Unspecified()}
	checkNA(c.next(t), allNodes, false)

	a.DeleteBalancer("default/web")
	if c.inGroup(group) {
		t.Errorf("still in group %s after delete", group)
	}
	select {
	case <-c.closed:
	default:
		t.Errorf("NDP socket still open after the last address was deleted")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	n := twoLinks()
	a := newAnnouncer(t, n, withSchedule(0, 10*time.Millisecond))
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatal(err)
	}
	c := n.arp(t, "eth0")
	c.next(t)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !c.isClosed() {
		t.Error("socket open after Close")
	}
	if err := a.SetBalancer("default/web", vip); err != ErrClosed {
		t.Errorf("SetBalancer after Close = %v, want ErrClosed", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	n := twoLinks()
	a := newAnnouncer(t, n, withRegistry(reg))
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatal(err)
	}
	if err := a.SetBalancer("default/dns", netip.MustParseAddr("192.0.2.201")); err != nil {
		t.Fatal(err)
	}
	c := n.arp(t, "eth0")
	c.next(t)
	c.next(t)
	c.in <- request(macClient, clientIP, vip)
	c.next(t)
	c.in <- request(macClient, clientIP, netip.MustParseAddr("192.0.2.250")) // not ours
	probe(t, c)

	want := map[string]float64{
		"extlb_speaker_layer2_requests_received_total": 2, // incl. the probe
		"extlb_speaker_layer2_responses_sent_total":    2,
		"extlb_speaker_layer2_gratuitous_sent_total":   2,
		"extlb_speaker_layer2_announced_addresses":     2,
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["interface"] != "eth0" || labels["protocol"] != "arp" {
				t.Errorf("%s has labels %v, want interface=eth0 protocol=arp", f.GetName(), labels)
			}
			got[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
