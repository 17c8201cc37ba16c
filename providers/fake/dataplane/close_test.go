package dataplane

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/test/loopback"
)

// TestCloseLeavesNoGoroutines: Close ends the forwarded connections and
// flows itself (instead of waiting for them to end) and leaves none of the
// balancer's goroutines behind. It counts only the balancer's goroutines:
// the balancer is created under a pprof label, which every goroutine it
// starts, and every goroutine those start, inherits. Goroutines of other
// tests or of the runtime do not carry it.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	lo := loopback.Reserve(t)
	// The TCP backend reports when its end of the forwarded connection
	// closes: Close must close the balancer's upstream connection too.
	backendLn, err := net.Listen("tcp", lo.IP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer backendLn.Close()
	upstreamClosed := make(chan struct{})
	go func() {
		c, err := backendLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
		close(upstreamClosed)
	}()
	backendPort := netip.MustParseAddrPort(backendLn.Addr().String()).Port()
	udpBackend, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(lo.AddrPort(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer udpBackend.Close()

	label := pprof.Labels("extlb-test-balancer", t.Name()+"@"+lo.String())
	var b *Balancer
	pprof.Do(context.Background(), label, func(ctx context.Context) {
		b, err = New(ctx, "test", lo.Addr(2), api.LoadBalancerSpec{
			Ports: []api.Port{
				{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backendPort)},
				{Protocol: api.ProtocolUDP, Port: 9000, BackendPort: int(netip.MustParseAddrPort(udpBackend.LocalAddr().String()).Port())},
			},
			Backends:    []api.Backend{{Name: "n", Address: lo.IP(1)}},
			HealthCheck: &api.HealthCheck{Type: api.HealthCheckTCP, Port: int(backendPort), IntervalMillis: 20},
		}, Options{UDPIdleTimeout: time.Hour}) // no flow ends by itself during the test
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backend to be healthy", func() bool { return b.Backends()[0].Healthy })
	tc, err := net.Dial("tcp", lo.AddrPort(2, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	uc, err := net.Dial("udp", lo.AddrPort(2, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a forwarded connection and a UDP flow", func() bool { return b.tcpConns() == 1 && b.udpFlows() == 1 })
	if n, _ := labelled(label); n == 0 {
		t.Fatal("no goroutine carries the balancer's label: the count below would prove nothing")
	}

	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a connection and a flow (idle timeout 1h) open: it waits for them to end by themselves")
	}
	select {
	case <-upstreamClosed:
	case <-time.After(5 * time.Second):
		t.Error("the backend's connection is still open after Close")
	}
	// Close waited for the goroutines it counts; those it does not count
	// (health checks' dials, say) must end too.
	var left string
	if !eventually(5*time.Second, func() bool {
		var n int
		n, left = labelled(label)
		return n == 0
	}) {
		t.Errorf("goroutines of the balancer left after Close:\n%s", left)
	}
}

// labelled returns how many goroutines carry label, and their stacks.
func labelled(label pprof.LabelSet) (int, string) {
	var want string
	pprof.ForLabels(pprof.WithLabels(context.Background(), label), func(k, v string) bool {
		want = strconv.Quote(k) + ":" + strconv.Quote(v)
		return false
	})
	var buf strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	// "goroutine profile: total N", then groups of identical goroutines
	// separated by blank lines: "count @ pcs", "# labels: {...}", frames.
	_, profile, _ := strings.Cut(buf.String(), "\n")
	n, stacks := 0, ""
	for _, group := range strings.Split(profile, "\n\n") {
		lines := strings.SplitN(group, "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "# labels: ") || !strings.Contains(lines[1], want) {
			continue
		}
		count, _, _ := strings.Cut(lines[0], " ")
		c, _ := strconv.Atoi(count)
		n += c
		stacks += group + "\n\n"
	}
	return n, stacks
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
