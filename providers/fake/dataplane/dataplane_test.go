package dataplane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/api"
)

// Addresses: backends in 127.201.30.0/24, VIPs in 127.202.30.0/24.

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

// readChars is the bytes this process has passed through read-like system
// calls (rchar in /proc/self/io). splice(2) does not count there.
func readChars(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
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
// through read(2) in the proxy: with splice, the process's read count grows
// by the bytes the backend reads (once); a user-space copy would read them a
// second time. A user-space relay in the same process shows the measurement
// does see such a copy.
func TestTCPForwardingUsesSplice(t *testing.T) {
	const n = 64 << 20
	backend := sinkServer(t, "127.201.30.1:0")
	b := newTestBalancer(t, "127.202.30.1", api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: "127.201.30.1"}},
	}, Options{})
	vip := netip.AddrPortFrom(b.Address(), 9000)

	before := readChars(t)
	pushThrough(t, vip, n)
	spliced := readChars(t) - before

	// Control: the same transfer through a relay that copies in user space.
	relay, err := net.Listen("tcp", "127.201.30.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	go func() {
		c, err := relay.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", backend.String())
		if err != nil {
			_ = c.Close()
			return
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(struct{ io.Writer }{up}, struct{ io.Reader }{c})
			_ = up.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{up})
		_ = c.(*net.TCPConn).CloseWrite()
		wg.Wait()
		_ = c.Close()
		_ = up.Close()
	}()
	before = readChars(t)
	pushThrough(t, netip.MustParseAddrPort(relay.Addr().String()), n)
	copied := readChars(t) - before

	t.Logf("read(2) bytes for %d MiB: through the balancer %d MiB, through a user-space relay %d MiB", n>>20, spliced>>20, copied>>20)
	if copied < 2*n*9/10 {
		t.Fatalf("control relay read only %d bytes: rchar cannot tell a copy from a splice here", copied)
	}
	if spliced > n*13/10 {
		t.Errorf("the balancer made %d bytes pass through read(2) for %d forwarded: it copies in user space instead of splicing", spliced-int64(n), n)
	}
}

func TestUpdateThatCannotListenChangesNothing(t *testing.T) {
	backend := sinkServer(t, "127.201.30.3:0")
	spec := api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: "127.201.30.3"}},
	}
	b := newTestBalancer(t, "127.202.30.2", spec, Options{})
	squatter, err := net.Listen("tcp", "127.202.30.2:9001")
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
	pushThrough(t, netip.MustParseAddrPort("127.202.30.2:9000"), 1024)
	if c, err := net.Dial("tcp", "127.202.30.2:9002"); err == nil {
		_ = c.Close()
		t.Errorf("port 9002 of the failed update is listening")
	}
}

func TestCloseEndsForwardedConnections(t *testing.T) {
	backend := sinkServer(t, "127.201.30.4:0")
	b, err := New(context.Background(), "test", netip.MustParseAddr("127.202.30.3"), api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: "127.201.30.4"}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", "127.202.30.3:9000")
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
	backend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.201.30.5:0")))
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
	b := newTestBalancer(t, "127.202.30.4", api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolUDP, Port: 9053, BackendPort: int(port)}},
		Backends: []api.Backend{{Name: "n", Address: "127.201.30.5"}},
	}, Options{UDPIdleTimeout: time.Second})

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
	dial := func() *net.UDPConn {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.202.30.4:9053")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	c1, c2 := dial(), dial()
	r1a, r2 := ask(c1, "one"), ask(c2, "two")
	r1b := ask(c1, "one again")
	via := func(r string) string { _, v, _ := strings.Cut(r, " via "); return v }
	if !strings.HasPrefix(r1a, "one via ") || !strings.HasPrefix(r2, "two via ") {
		t.Fatalf("replies went to the wrong client: %q, %q", r1a, r2)
	}
	if via(r1a) != via(r1b) || via(r1a) == via(r2) {
		t.Errorf("want one upstream socket per client: c1 %s/%s, c2 %s", via(r1a), via(r1b), via(r2))
	}
	if n := b.udpFlows(); n != 2 {
		t.Errorf("%d flows, want 2", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for b.udpFlows() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := b.udpFlows(); n != 0 {
		t.Errorf("%d flows left after the idle timeout", n)
	}
	// A new packet after expiry starts a new flow and still gets a reply.
	if r := ask(c1, "back"); !strings.HasPrefix(r, "back via ") || via(r) == via(r1a) {
		t.Errorf("after idle expiry: %q (old flow via %s)", r, via(r1a))
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

func TestCloseLeavesNoGoroutines(t *testing.T) {
	backend := sinkServer(t, "127.201.30.6:0")
	udpBackend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.201.30.6:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udpBackend.Close()
	before := runtime.NumGoroutine()

	b, err := New(context.Background(), "test", netip.MustParseAddr("127.202.30.5"), api.LoadBalancerSpec{
		Ports: []api.Port{
			{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())},
			{Protocol: api.ProtocolUDP, Port: 9000, BackendPort: int(netip.MustParseAddrPort(udpBackend.LocalAddr().String()).Port())},
		},
		Backends:    []api.Backend{{Name: "n", Address: "127.201.30.6"}},
		HealthCheck: &api.HealthCheck{Type: api.HealthCheckTCP, Port: int(backend.Port()), IntervalMillis: 20},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !b.Backends()[0].Healthy && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	tc, err := net.Dial("tcp", "127.202.30.5:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	uc, err := net.Dial("udp", "127.202.30.5:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	for b.udpFlows() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if runtime.NumGoroutine() <= before {
		t.Fatalf("balancer started no goroutines? %d before, %d now", before, runtime.NumGoroutine())
	}

	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v: it waited for flows or connections to end by themselves", d)
	}
	// The sink's own goroutine for the closed connection ends too.
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestNarrowedSourceRangesApplyToExistingUDPFlows(t *testing.T) {
	backend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.201.30.7:0")))
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
		Backends:     []api.Backend{{Name: "n", Address: "127.201.30.7"}},
		SourceRanges: []string{"127.203.30.0/24"},
	}
	b := newTestBalancer(t, "127.202.30.6", spec, Options{})
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.203.30.1:0")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.202.30.6:9053")))
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
	spec.SourceRanges = []string{"127.203.31.0/24"}
	if err := b.Update(spec); err != nil {
		t.Fatal(err)
	}
	if err := ask(300 * time.Millisecond); err == nil {
		t.Errorf("a flow opened before the source ranges were narrowed still gets replies")
	}
}
