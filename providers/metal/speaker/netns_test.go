package speaker_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/extlb/extlb/test/fixtures"
	"github.com/extlb/extlb/test/netns"
)

var (
	vip  = netip.MustParseAddr("192.0.2.200")
	vip2 = netip.MustParseAddr("192.0.2.201")
	vip6 = netip.MustParseAddr("2001:db8::200")
)

// TestOnlyTheElectedNodeAnswers: for every address exactly one node answers
// the client's ARP requests and neighbor solicitations, the one the election
// picks; an address two Services share is answered once.
func TestOnlyTheElectedNodeAnswers(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t,
		newService("web", fixtures.WithIngress(vip.String(), vip6.String())),
		newService("dns"), // shares 192.0.2.200 with web
		newService("api", fixtures.WithIngress(vip2.String())),
	)
	c.startAll()
	for _, addr := range []netip.Addr{vip, vip2, vip6} {
		want := expectedOwner(addr, nodeNames...)
		c.waitOwner(addr, want, 5*time.Second)
		// Asked again, still one answer: no second node chimes in late.
		if got := c.askAnswered(c.clientLAN, addr, 300*time.Millisecond); !slices.Equal(got, []string{want}) {
			t.Errorf("answers for %s = %v, want only %s", addr, got, want)
		}
		t.Logf("%s is answered by %s only", addr, want)
	}
	c.waitEvent("api", "announcing 192.0.2.201 from node "+expectedOwner(vip2, nodeNames...))
}

// TestCrashFailover: the announcing speaker dies without a word; another
// node takes the address over and the client kernel's neighbor entry
// follows its gratuitous ARP, with no request from the client.
func TestCrashFailover(t *testing.T) {
	netns.RequireRoot(t)
	for _, addr := range []netip.Addr{vip, vip6} {
		t.Run(addr.String(), func(t *testing.T) {
			c := newCluster(t, newService("web", fixtures.WithIngress(addr.String())))
			c.startAll()
			owner := expectedOwner(addr, nodeNames...)
			c.waitOwner(addr, owner, 5*time.Second)
			c.resolveInKernel(addr, owner)

			rest := slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == owner })
			next := expectedOwner(addr, rest...)
			killed := time.Now()
			c.nodes[owner].crash()
			at, err := c.client.WaitNeighbor(addr, c.nodes[next].lan.MAC, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("crash of %s: client's neighbor entry for %s moved to %s after %v", owner, addr, next, at.Sub(killed))
			c.waitOwner(addr, next, 2*time.Second)
			c.waitEvent("web", "from node "+next)
		})
	}
}

// TestGracefulHandOver: a speaker stopped as on SIGTERM leaves first; the
// next node takes over (well before a crash would be noticed) and the
// client's neighbor entry follows.
func TestGracefulHandOver(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, newService("web"))
	c.startAll()
	owner := expectedOwner(vip, nodeNames...)
	c.waitOwner(vip, owner, 5*time.Second)
	c.resolveInKernel(vip, owner)

	rest := slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == owner })
	next := expectedOwner(vip, rest...)
	stopped := time.Now()
	c.nodes[owner].stop()
	at, err := c.client.WaitNeighbor(vip, c.nodes[next].lan.MAC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful stop of %s: neighbor entry moved to %s after %v", owner, next, at.Sub(stopped))
	c.waitOwner(vip, next, 2*time.Second)

	// The stopped node comes back and, ranked first, takes its address back.
	c.start(owner)
	if _, err := c.client.WaitNeighbor(vip, c.nodes[owner].lan.MAC, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitOwner(vip, owner, 2*time.Second)
}

// TestLocalFollowsEndpoints: with externalTrafficPolicy Local only a node
// with a ready endpoint announces, and the address moves with the endpoint.
func TestLocalFollowsEndpoints(t *testing.T) {
	netns.RequireRoot(t)
	ranked := expectedOwner(vip, nodeNames...)
	// Put the endpoint on a node the plain ranking would not pick.
	first := "node-1"
	if ranked == first {
		first = "node-3"
	}
	c := newCluster(t, newService("web", fixtures.WithLocalPolicy(0)), newSlice("web", first))
	c.startAll()
	c.waitOwner(vip, first, 5*time.Second)
	c.resolveInKernel(vip, first)

	second := "node-2"
	if second == first {
		second = "node-3"
	}
	c.updateSlice(newSlice("web", second))
	if _, err := c.client.WaitNeighbor(vip, c.nodes[second].lan.MAC, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitOwner(vip, second, 2*time.Second)

	// No ready endpoint anywhere: nobody answers.
	c.updateSlice(newSlice("web"))
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := c.ask(c.clientLAN, vip, 200*time.Millisecond)
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("answers without any endpoint: %v, want none", got)
		}
	}
}

// TestWrongInterfaceStaysSilent: node-1 announces an address of
// 192.0.2.0/24; on its second interface (198.51.100.0/24), which the client
// also reaches, nobody answers for it.
func TestWrongInterfaceStaysSilent(t *testing.T) {
	netns.RequireRoot(t)
	// An address node-1 wins.
	var addr netip.Addr
	for i := 200; i < 250; i++ {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if expectedOwner(a, nodeNames...) == "node-1" {
			addr = a
			break
		}
	}
	c := newCluster(t, newService("web", fixtures.WithIngress(addr.String())))
	c.startAll()
	c.waitOwner(addr, "node-1", 5*time.Second)
	if got := c.ask(c.client2, addr, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("answers for %s on 198.51.100.0/24: %v, want none", addr, got)
	}
	// Control: the client's socket on that segment does hear node-1.
	if got := c.askAnswered(c.client2, netip.MustParseAddr("198.51.100.11"), 300*time.Millisecond); len(got) != 1 {
		t.Errorf("control: answers for node-1's own 198.51.100.11: %v, want one", got)
	}
}
