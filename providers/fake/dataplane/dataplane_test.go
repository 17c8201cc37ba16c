package dataplane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/test/loopback"
)

// Addresses: each test has a loopback block of its own (test/loopback):
// backends at .1 and up, the VIP at .2 or above, clients further up.

// sinkServer accepts TCP connections on addr, reads everything, then writes
// the byte count and closes.
func sinkServer(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				_, _ = io.WriteString(c, strconv.FormatInt(n, 10))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func newTestBalancer(t *testing.T, vip string, spec api.LoadBalancerSpec, opts Options) *Balancer {
	t.Helper()
	b, err := New(context.Background(), "test", netip.MustParseAddr(vip), spec, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// pushThrough sends n bytes to addr, half-closes and reads the count back.
func pushThrough(t *testing.T, addr netip.AddrPort, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf[:min(len(buf), n-sent)]); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != strconv.Itoa(n) {
		t.Fatalf("backend counted %s bytes, want %d", reply, n)
	}
}

// TestTCPForwardingUsesSplice checks that forwarded bytes never pass
// through read(2) in the proxy: a balancer that splices reads (almost)
// nothing itself, one that copied in user space would read every byte. A
// user-space relay shows the measurement does see such a copy. Both run in
// a child process, whose read count is theirs alone (see proc_test.go).
func TestTCPForwardingUsesSplice(t *testing.T) {
	const n = 64 << 20
	lo := loopback.Reserve(t)
	backend := sinkServer(t, lo.IP(1)+":0")

	bal := startChild(t, childConfig{Mode: "balancer", Listen: lo.AddrPort(2, 9000), Backend: backend})
	before := bal.readChars(t)
	pushThrough(t, lo.AddrPort(2, 9000), n)
	spliced := bal.readChars(t) - before

	// Control: the same transfer through a relay that copies in user space.
	relay := startChild(t, childConfig{Mode: "relay", Listen: lo.AddrPort(3, 9000), Backend: backend})
	before = relay.readChars(t)
	pushThrough(t, lo.AddrPort(3, 9000), n)
	copied := relay.readChars(t) - before

	t.Logf("read(2) bytes of the proxy for %d MiB: the balancer %d MiB, a user-space relay %d MiB", n>>20, spliced>>20, copied>>20)
	if copied < n*9/10 {
		t.Fatalf("control relay read only %d bytes: rchar cannot tell a copy from a splice here", copied)
	}
	if spliced > n*3/10 {
		t.Errorf("the balancer made %d bytes pass through read(2) for %d forwarded: it copies in user space instead of splicing", spliced, n)
	}
}

func TestUpdateThatCannotListenChangesNothing(t *testing.T) {
	lo := loopback.Reserve(t)
	backend := sinkServer(t, lo.IP(1)+":0")
	spec := api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: lo.IP(1)}},
	}
	b := newTestBalancer(t, lo.IP(2), spec, Options{})
	squatter, err := net.Listen("tcp", lo.AddrPort(2, 9001).String())
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()

	bad := spec
	bad.Ports = []api.Port{{Protocol: api.ProtocolTCP, Port: 9002, BackendPort: 1}, {Protocol: api.ProtocolTCP, Port: 9001, BackendPort: 1}}
	if err := b.Update(bad); err == nil || !strings.Contains(err.Error(), "TCP port 9001") {
		t.Fatalf("Update onto a taken port: %v, want an error naming TCP port 9001", err)
	}
	// The old port still forwards to the old backend port, the new one that
	// could be opened was closed again.
	pushThrough(t, lo.AddrPort(2, 9000), 1024)
	if c, err := net.Dial("tcp", lo.AddrPort(2, 9002).String()); err == nil {
		_ = c.Close()
		t.Errorf("port 9002 of the failed update is listening")
	}
}

func TestCloseEndsForwardedConnections(t *testing.T) {
	lo := loopback.Reserve(t)
	backend := sinkServer(t, lo.IP(1)+":0")
	b, err := New(context.Background(), "test", lo.Addr(2), api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: lo.IP(1)}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", lo.AddrPort(2, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil && strings.Contains(err.Error(), "timeout") {
		t.Errorf("client connection still open after Close: %v", err)
	}
}

func TestUDPFlowsPerClientAndIdleTimeout(t *testing.T) {
	lo := loopback.Reserve(t)
	backend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(lo.AddrPort(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := backend.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			// Reply with the flow's source port so clients can tell flows apart.
			_, _ = backend.WriteToUDPAddrPort([]byte(string(buf[:n])+" via "+strconv.Itoa(int(src.Port()))), src)
		}
	}()
	port := netip.MustParseAddrPort(backend.LocalAddr().String()).Port()
	newBalancer := func(vip byte, idle time.Duration) *Balancer {
		return newTestBalancer(t, lo.IP(vip), api.LoadBalancerSpec{
			Ports:    []api.Port{{Protocol: api.ProtocolUDP, Port: 9053, BackendPort: int(port)}},
			Backends: []api.Backend{{Name: "n", Address: lo.IP(1)}},
		}, Options{UDPIdleTimeout: idle})
	}
	ask := func(c *net.UDPConn, msg string) string {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		r := bufio.NewReader(c)
		buf := make([]byte, 2048)
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("no reply to %q: %v", msg, err)
		}
		return string(buf[:n])
	}
	dial := func(vip byte) *net.UDPConn {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(lo.AddrPort(vip, 9053)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	via := func(r string) string { _, v, _ := strings.Cut(r, " via "); return v }

	// One flow per client, kept between its datagrams: an idle timeout no
	// pause of the test can reach.
	b := newBalancer(2, time.Hour)
	c1, c2 := dial(2), dial(2)
	r1a, r2 := ask(c1, "one"), ask(c2, "two")
	r1b := ask(c1, "one again")
	if !strings.HasPrefix(r1a, "one via ") || !strings.HasPrefix(r2, "two via ") {
		t.Fatalf("replies went to the wrong client: %q, %q", r1a, r2)
	}
	if via(r1a) != via(r1b) || via(r1a) == via(r2) {
		t.Errorf("want one upstream socket per client: c1 %s/%s, c2 %s", via(r1a), via(r1b), via(r2))
	}
	if n := b.udpFlows(); n != 2 {
		t.Errorf("%d flows, want 2", n)
	}

	// A flow idle for the timeout ends; a new packet after expiry starts a
	// new flow and still gets a reply.
	short := newBalancer(3, time.Second)
	c3 := dial(3)
	if r := ask(c3, "first"); !strings.HasPrefix(r, "first via ") {
		t.Fatalf("reply %q", r)
	}
	waitFor(t, "the idle flow to end", func() bool { return short.udpFlows() == 0 })
	if r := ask(c3, "back"); !strings.HasPrefix(r, "back via ") {
		t.Errorf("after idle expiry: %q", r)
	}
}

func (b *Balancer) udpFlows() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.udp {
		l.mu.Lock()
		n += len(l.flows)
		l.mu.Unlock()
	}
	return n
}

func TestAffinityPinsUntilTimeoutOrUnhealthy(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPicker()
	p.nowFunc = func() time.Time { return now }
	ts := []*target{{name: "a"}, {name: "b"}, {name: "c"}}
	for _, tg := range ts {
		tg.healthy.Store(true)
	}
	p.set(ts)
	client := netip.MustParseAddr("192.0.2.1")
	const timeout = 10 * time.Second

	first := p.pick(client, timeout, nil)
	for i := range 5 {
		now = now.Add(9 * time.Second) // each use extends the pin
		if got := p.pick(client, timeout, nil); got != first {
			t.Fatalf("pick %d within the timeout: %s, want %s", i, got.name, first.name)
		}
	}
	now = now.Add(11 * time.Second)
	if got := p.pick(client, timeout, nil); got == first {
		t.Errorf("after the timeout the client stayed on %s; round robin should move it", got.name)
	}
	pinned := p.pick(client, timeout, nil)
	pinned.healthy.Store(false)
	if got := p.pick(client, timeout, nil); got == pinned || got == nil {
		t.Errorf("pinned target unhealthy: got %v", got)
	}
}

func TestRoundRobinSpreadsEvenlyOverHealthyTargets(t *testing.T) {
	p := newPicker()
	ts := []*target{{name: "a"}, {name: "b"}, {name: "c"}, {name: "d"}}
	for _, tg := range ts {
		tg.healthy.Store(true)
	}
	ts[1].healthy.Store(false)
	p.set(ts)
	got := map[string]int{}
	for range 300 {
		got[p.pick(netip.Addr{}, 0, nil).name]++
	}
	if got["a"] != 100 || got["c"] != 100 || got["d"] != 100 || got["b"] != 0 {
		t.Errorf("picks %v, want 100 each on a, c, d", got)
	}
	for _, tg := range ts {
		tg.healthy.Store(false)
	}
	if tg := p.pick(netip.Addr{}, 0, nil); tg != nil {
		t.Errorf("no healthy target, picked %s", tg.name)
	}
}

func TestPolicyAllows(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		ranges []string
		client string
		want   bool
	}{
		{"no ranges allow all", nil, "192.0.2.1", true},
		{"inside", []string{"192.0.2.0/24"}, "192.0.2.1", true},
		{"outside", []string{"192.0.2.0/24"}, "198.51.100.1", false},
		{"v4-mapped v6 client", []string{"192.0.2.0/24"}, "::ffff:192.0.2.7", true},
		{"second range", []string{"10.0.0.0/8", "127.203.0.0/16"}, "127.203.1.1", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := &policy{}
			for _, r := range tc.ranges {
				p.sourceRanges = append(p.sourceRanges, netip.MustParsePrefix(r))
			}
			if got := p.allows(netip.MustParseAddr(tc.client)); got != tc.want {
				t.Errorf("allows(%s) = %v, want %v", tc.client, got, tc.want)
			}
		})
	}
}

func (b *Balancer) tcpConns() int {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	return len(b.conns)
}

func TestNarrowedSourceRangesApplyToExistingUDPFlows(t *testing.T) {
	lo := loopback.Reserve(t)
	backend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(lo.AddrPort(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := backend.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = backend.WriteToUDPAddrPort(buf[:n], src)
		}
	}()
	spec := api.LoadBalancerSpec{
		Ports:        []api.Port{{Protocol: api.ProtocolUDP, Port: 9053, BackendPort: int(netip.MustParseAddrPort(backend.LocalAddr().String()).Port())}},
		Backends:     []api.Backend{{Name: "n", Address: lo.IP(1)}},
		SourceRanges: []string{lo.Sub(128, 26).String()},
	}
	b := newTestBalancer(t, lo.IP(2), spec, Options{})
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(lo.AddrPort(129, 0)), net.UDPAddrFromAddrPort(lo.AddrPort(2, 9053)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(wait time.Duration) error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 16)
		_, err := c.Read(buf)
		return err
	}
	if err := ask(2 * time.Second); err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	spec.SourceRanges = []string{lo.Sub(192, 26).String()}
	if err := b.Update(spec); err != nil {
		t.Fatal(err)
	}
	if err := ask(300 * time.Millisecond); err == nil {
		t.Errorf("a flow opened before the source ranges were narrowed still gets replies")
	}
}
