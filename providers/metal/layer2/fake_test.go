package layer2

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// fakeNetwork is an in-memory Network: tests inject received frames and read
// what the announcer sent.
type fakeNetwork struct {
	links []Link

	mu   sync.Mutex
	arps map[string]*fakeARP
	ndps map[string]*fakeNDP
}

func newFakeNetwork(links ...Link) *fakeNetwork {
	return &fakeNetwork{links: links, arps: map[string]*fakeARP{}, ndps: map[string]*fakeNDP{}}
}

func (n *fakeNetwork) Links() ([]Link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links, nil
}

func (n *fakeNetwork) setLinks(links ...Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links = links
}

func (n *fakeNetwork) ListenARP(link Link) (ARPConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := &fakeARP{in: make(chan *arp.Packet, 16), out: make(chan sentARP, 64), closed: make(chan struct{})}
	n.arps[link.Name] = c
	return c, nil
}

func (n *fakeNetwork) ListenNDP(link Link) (NDPConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := &fakeNDP{in: make(chan receivedNDP, 16), out: make(chan sentNDP, 64), closed: make(chan struct{}), groups: map[netip.Addr]bool{}}
	n.ndps[link.Name] = c
	return c, nil
}

func (n *fakeNetwork) arp(t *testing.T, link string) *fakeARP {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.arps[link]
	if !ok {
		t.Fatalf("no ARP socket was opened on %s", link)
	}
	return c
}

func (n *fakeNetwork) ndp(t *testing.T, link string) *fakeNDP {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.ndps[link]
	if !ok {
		t.Fatalf("no NDP socket was opened on %s", link)
	}
	return c
}

func (n *fakeNetwork) opened() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.arps {
		out = append(out, name+"/arp")
	}
	for name := range n.ndps {
		out = append(out, name+"/ndp")
	}
	return out
}

var errFakeClosed = errors.New("use of closed fake socket")

type sentARP struct {
	p   *arp.Packet
	dst net.HardwareAddr
	// seq numbers the socket's writes from 1, in the order they began.
	seq int64
}

type fakeARP struct {
	in     chan *arp.Packet
	out    chan sentARP
	once   sync.Once
	closed chan struct{}
	writes atomic.Int64 // writes begun so far
}

func (c *fakeARP) Read() (*arp.Packet, *ethernet.Frame, error) {
	select {
	case p := <-c.in:
		return p, &ethernet.Frame{Source: p.SenderHardwareAddr}, nil
	case <-c.closed:
		return nil, nil, errFakeClosed
	}
}

func (c *fakeARP) WriteTo(p *arp.Packet, dst net.HardwareAddr) error {
	select {
	case <-c.closed:
		return errFakeClosed
	default:
	}
	c.out <- sentARP{p: p, dst: dst, seq: c.writes.Add(1)}
	return nil
}

func (c *fakeARP) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeARP) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// next returns the next frame the announcer sent, failing after 5 s: a
// deadline for a frame that is due, long enough for a loaded machine.
func (c *fakeARP) next(t *testing.T) sentARP {
	t.Helper()
	select {
	case s := <-c.out:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("announcer sent no ARP frame within 5s")
		return sentARP{}
	}
}

type receivedNDP struct {
	m   ndp.Message
	src netip.Addr
}

type sentNDP struct {
	m   ndp.Message
	dst netip.Addr
}

type fakeNDP struct {
	in     chan receivedNDP
	out    chan sentNDP
	once   sync.Once
	closed chan struct{}

	mu     sync.Mutex
	groups map[netip.Addr]bool
}

func (c *fakeNDP) ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error) {
	select {
	case r := <-c.in:
		return r.m, nil, r.src, nil
	case <-c.closed:
		return nil, nil, netip.Addr{}, errFakeClosed
	}
}

func (c *fakeNDP) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	select {
	case <-c.closed:
		return errFakeClosed
	default:
	}
	c.out <- sentNDP{m, dst}
	return nil
}

func (c *fakeNDP) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[g] = true
	return nil
}

func (c *fakeNDP) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, g)
	return nil
}

func (c *fakeNDP) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeNDP) inGroup(g netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[g]
}

func (c *fakeNDP) next(t *testing.T) sentNDP {
	t.Helper()
	select {
	case s := <-c.out:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("announcer sent no NDP message within 5s")
		return sentNDP{}
	}
}
