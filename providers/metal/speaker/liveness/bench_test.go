package liveness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// detectionTrials is the number of failures each benchmark measures per
// implementation.
const detectionTrials = 10

// BenchmarkCrashDetection measures how long after a speaker's crash (its
// socket closes, nobody is told) a surviving peer declares it dead: these
// heartbeats with their defaults (100 ms interval, 600 ms dead-after)
// against the reference, hashicorp/memberlist tuned for fast detection on a
// LAN (probe every 200 ms, 100 ms probe timeout, suspicion multiplier 2,
// gossip every 50 ms). Three members on loopback each time.
func BenchmarkCrashDetection(b *testing.B) {
	benchmarkDetection(b, false)
}

// BenchmarkLeaveDetection is BenchmarkCrashDetection for a speaker that
// leaves (Leave, then close) as on SIGTERM.
func BenchmarkLeaveDetection(b *testing.B) {
	benchmarkDetection(b, true)
}

func benchmarkDetection(b *testing.B, leave bool) {
	var ours, theirs []time.Duration
	for range b.N {
		for range detectionTrials {
			ours = append(ours, heartbeatDetection(b, leave))
			theirs = append(theirs, memberlistDetection(b, leave))
		}
	}
	oursMed, oursMax := medianMax(ours)
	theirMed, theirMax := medianMax(theirs)
	b.ReportMetric(ms(oursMed), "median-ms")
	b.ReportMetric(ms(oursMax), "max-ms")
	b.ReportMetric(ms(theirMed), "memberlist-median-ms")
	b.ReportMetric(ms(theirMax), "memberlist-max-ms")
	b.ReportMetric(float64(oursMed)/float64(theirMed), "median/memberlist")
	b.Logf("detection over %d trials: heartbeats median %v max %v; memberlist median %v max %v; ratio of medians %.2f",
		len(ours), oursMed.Round(time.Millisecond), oursMax.Round(time.Millisecond),
		theirMed.Round(time.Millisecond), theirMax.Round(time.Millisecond), float64(oursMed)/float64(theirMed))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// heartbeatDetection starts three Members with the default timing and
// returns how long node-1 takes to drop node-3 after it crashes or leaves.
func heartbeatDetection(b *testing.B, leave bool) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ms []*Members
	peers := map[string]netip.AddrPort{}
	for i := range 3 {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(ctx, Config{NodeName: fmt.Sprintf("node-%d", i+1), Registerer: prometheus.NewRegistry()}, conn)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
		peers[m.name] = addrOf(m)
	}
	for _, m := range ms {
		m.SetPeers(peers)
		go m.Run(ctx)
	}
	waitUntil(b, "heartbeats: node-1 sees node-3", func() bool { return ms[0].Live()["node-3"] })
	time.Sleep(100 * time.Millisecond) // steady state, not right after the join
	start := time.Now()
	if leave {
		ms[2].Leave()
	}
	ms[2].Close()
	waitUntil(b, "heartbeats: node-1 drops node-3", func() bool { return !ms[0].Live()["node-3"] })
	return time.Since(start)
}

// leaveWatcher records when memberlist reports a node gone.
type leaveWatcher struct {
	mu   sync.Mutex
	gone map[string]time.Time
}

func (w *leaveWatcher) NotifyJoin(*memberlist.Node)   {}
func (w *leaveWatcher) NotifyUpdate(*memberlist.Node) {}
func (w *leaveWatcher) NotifyLeave(n *memberlist.Node) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gone[n.Name] = time.Now()
}

func (w *leaveWatcher) goneAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.gone[name]
	return t, ok
}

// memberlistDetection is heartbeatDetection for hashicorp/memberlist.
func memberlistDetection(b *testing.B, leave bool) time.Duration {
	watcher := &leaveWatcher{gone: map[string]time.Time{}}
	var lists []*memberlist.Memberlist
	for i := range 3 {
		cfg := memberlist.DefaultLANConfig()
		cfg.Name = fmt.Sprintf("node-%d", i+1)
		// A loopback address of its own: busy machines can run out of
		// ephemeral TCP ports on 127.0.0.1 (TIME_WAIT), and memberlist
		// listens on TCP too.
		cfg.BindAddr = "127.0.0.42"
		cfg.BindPort = 0
		cfg.ProbeInterval = 200 * time.Millisecond
		cfg.ProbeTimeout = 100 * time.Millisecond
		cfg.SuspicionMult = 2
		cfg.GossipInterval = 50 * time.Millisecond
		cfg.LogOutput = io.Discard
		if i == 0 {
			cfg.Events = watcher
		}
		l, err := memberlist.Create(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Shutdown()
		lists = append(lists, l)
	}
	first := lists[0].LocalNode()
	for _, l := range lists[1:] {
		if _, err := l.Join([]string{net.JoinHostPort(first.Addr.String(), strconv.Itoa(int(first.Port)))}); err != nil {
			b.Fatal(err)
		}
	}
	waitUntil(b, "memberlist: node-1 sees 3 members", func() bool { return lists[0].NumMembers() == 3 })
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if leave {
		if err := lists[2].Leave(time.Second); err != nil {
			b.Fatal(err)
		}
	}
	lists[2].Shutdown()
	var at time.Time
	waitUntil(b, "memberlist: node-1 drops node-3", func() bool {
		var ok bool
		at, ok = watcher.goneAt("node-3")
		return ok
	})
	return at.Sub(start)
}

// waitUntil polls cond every millisecond for at most 10 s.
func waitUntil(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
