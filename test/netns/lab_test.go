package netns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
)

// TestLabResolvesNeighbor proves the harness builds a working layer-2
// network: an ARP request sent from the client's namespace is answered by the
// node's kernel with the MAC the harness gave the node, and nothing leaks
// into the root namespace (the client's interface exists only in its own).
func TestLabResolvesNeighbor(t *testing.T) {
	RequireRoot(t)
	lab := New(t)
	lan := lab.NewSegment("lan", "192.0.2.0/24", "2001:db8::/64")
	client := lab.NewHost("client")
	node := lab.NewHost("node-1")
	cl := lab.Attach(client, lan, 100)
	nl := lab.Attach(node, lan, 11)

	ifi, err := client.Interface(cl.Name)
	if err != nil {
		t.Fatalf("client interface: %v", err)
	}
	var c *arp.Client
	if err := client.Do(func() error {
		var err error
		c, err = arp.Dial(ifi)
		return err
	}); err != nil {
		t.Fatalf("open ARP socket in client namespace: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	mac, err := c.Resolve(nl.IPv4.Addr())
	if err != nil {
		t.Fatalf("resolve %s: %v", nl.IPv4.Addr(), err)
	}
	if mac.String() != nl.MAC.String() {
		t.Errorf("node answered with MAC %s, want %s", mac, nl.MAC)
	}

	// The kernel's neighbor table in the client namespace does not know the
	// node yet (our raw ARP socket bypasses it); a kernel-originated lookup
	// is tested by the speaker tests.
	if _, ok, err := client.Neighbor(netip.MustParseAddr("192.0.2.250")); err != nil || ok {
		t.Errorf("Neighbor(unused address) = ok %v, err %v; want no entry", ok, err)
	}
}
