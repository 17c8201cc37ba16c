package layer2_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/extlb/extlb/providers/metal/layer2"
	"github.com/extlb/extlb/test/netns"
)

// lab is a client and two nodes on 192.0.2.0/24 + 2001:db8::/64; the client
// and node-1 also share a second segment, 198.51.100.0/24 + 2001:db8:1::/64.
type lab struct {
	client, node1, node2  *netns.Host
	node1LAN, node2LAN    netns.Link
	clientLAN, clientLAN2 netns.Link
}

func newLab(t *testing.T) *lab {
	l := netns.New(t)
	lan := l.NewSegment("lan", "192.0.2.0/24", "2001:db8::/64")
	lan2 := l.NewSegment("lan2", "198.51.100.0/24", "2001:db8:1::/64")
	x := &lab{client: l.NewHost("client"), node1: l.NewHost("node-1"), node2: l.NewHost("node-2")}
	x.clientLAN = l.Attach(x.client, lan, 100)
	x.clientLAN2 = l.Attach(x.client, lan2, 100)
	x.node1LAN = l.Attach(x.node1, lan, 11)
	l.Attach(x.node1, lan2, 11)
	x.node2LAN = l.Attach(x.node2, lan, 12)
	return x
}

func announcerOn(t *testing.T, h *netns.Host) *layer2.Announcer {
	t.Helper()
	a, err := layer2.New(context.Background(), layer2.Config{Network: h.Layer2Network()})
	if err != nil {
		t.Fatalf("announcer on %s: %v", h.Name, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestRealARPOnTheRightInterface: an announcer in node-1's namespace answers
// real ARP requests for its address on the interface of that subnet, and is
// silent on its other interface, whose segment the client also reaches.
func TestRealARPOnTheRightInterface(t *testing.T) {
	netns.RequireRoot(t)
	x := newLab(t)
	a := announcerOn(t, x.node1)
	vip := netip.MustParseAddr("192.0.2.200")
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}

	c, err := x.client.ARPClient(x.clientLAN.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	macs, err := c.AskUntilAnswered(vip, 300*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(macs) != 1 || macs[0].String() != x.node1LAN.MAC.String() {
		t.Errorf("answers on lan = %v, want exactly node-1's %s", macs, x.node1LAN.MAC)
	}

	c2, err := x.client.ARPClient(x.clientLAN2.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if macs, err := c2.Ask(vip, 300*time.Millisecond); err != nil || len(macs) != 0 {
		t.Errorf("answers on the other segment = %v (err %v), want none", macs, err)
	}
	// The same socket does see answers on lan2: node-1's kernel answers for
	// its own address there.
	if macs, err := c2.AskUntilAnswered(netip.MustParseAddr("198.51.100.11"), 300*time.Millisecond, 5*time.Second); err != nil || len(macs) != 1 {
		t.Errorf("control: answers for node-1's own lan2 address = %v (err %v), want 1", macs, err)
	}
}

// TestRealNDP: the client's neighbor solicitation for an IPv6 address is
// answered by the announcing node, and the client's kernel resolves it too.
func TestRealNDP(t *testing.T) {
	netns.RequireRoot(t)
	x := newLab(t)
	a := announcerOn(t, x.node1)
	vip := netip.MustParseAddr("2001:db8::200")
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatalf("SetBalancer: %v", err)
	}
	c, err := x.client.NDPClient(x.clientLAN.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	macs, err := c.AskUntilAnswered(vip, 300*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(macs) != 1 || macs[0].String() != x.node1LAN.MAC.String() {
		t.Errorf("advertisements = %v, want exactly node-1's %s", macs, x.node1LAN.MAC)
	}
	if err := x.client.SendUDP(vip); err != nil {
		t.Fatal(err)
	}
	if _, err := x.client.WaitNeighbor(vip, x.node1LAN.MAC, 5*time.Second); err != nil {
		t.Error(err)
	}
}

// TestRealTakeOverUpdatesNeighbors: when node-2 takes an address over from
// node-1, its gratuitous ARP / unsolicited advertisement rewrites the entry
// in the client kernel's neighbor table without the client asking.
func TestRealTakeOverUpdatesNeighbors(t *testing.T) {
	netns.RequireRoot(t)
	for _, ip := range []string{"192.0.2.200", "2001:db8::200"} {
		t.Run(ip, func(t *testing.T) {
			x := newLab(t)
			vip := netip.MustParseAddr(ip)
			a1 := announcerOn(t, x.node1)
			if err := a1.SetBalancer("default/web", vip); err != nil {
				t.Fatal(err)
			}
			if err := x.client.SendUDP(vip); err != nil {
				t.Fatal(err)
			}
			if _, err := x.client.WaitNeighbor(vip, x.node1LAN.MAC, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			a1.Close()
			a2 := announcerOn(t, x.node2)
			start := time.Now()
			if err := a2.SetBalancer("default/web", vip); err != nil {
				t.Fatal(err)
			}
			at, err := x.client.WaitNeighbor(vip, x.node2LAN.MAC, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("client's neighbor entry for %s moved to node-2 %v after the take-over", vip, at.Sub(start))
		})
	}
}

// TestRealNDPAnswersUnicastProbes: a client re-checking its cached entry
// (STALE, then traffic) probes the address with unicast solicitations sent
// to the address itself; the announcer answers them and the entry becomes
// REACHABLE again instead of FAILED.
func TestRealNDPAnswersUnicastProbes(t *testing.T) {
	netns.RequireRoot(t)
	x := newLab(t)
	a := announcerOn(t, x.node1)
	vip := netip.MustParseAddr("2001:db8::200")
	if err := a.SetBalancer("default/web", vip); err != nil {
		t.Fatal(err)
	}
	if err := x.client.SendUDP(vip); err != nil {
		t.Fatal(err)
	}
	if _, err := x.client.WaitNeighbor(vip, x.node1LAN.MAC, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Probe at once instead of after the 5 s delay.
	if err := x.client.SetSysctl("net/ipv6/neigh/"+x.clientLAN.Name+"/delay_first_probe_time", "0"); err != nil {
		t.Fatal(err)
	}
	nl := x.client.Netlink()
	if err := nl.NeighSet(&netlink.Neigh{
		LinkIndex: x.clientLAN.Index, Family: netlink.FAMILY_V6, State: netlink.NUD_STALE,
		IP: vip.AsSlice(), HardwareAddr: x.node1LAN.MAC,
	}); err != nil {
		t.Fatalf("make the entry stale: %v", err)
	}
	if err := x.client.SendUDP(vip); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		state := neighborState(t, nl, vip)
		if state == netlink.NUD_REACHABLE {
			return
		}
		if state == netlink.NUD_FAILED || time.Now().After(deadline) {
			t.Fatalf("client's entry for %s is in state %#x (NUD_* bits), want REACHABLE after its unicast probe", vip, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func neighborState(t *testing.T, nl *netlink.Handle, ip netip.Addr) int {
	t.Helper()
	neighs, err := nl.NeighList(0, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a == ip {
			return n.State
		}
	}
	return netlink.NUD_NONE
}
