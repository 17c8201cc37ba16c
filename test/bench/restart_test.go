package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/fake/memory"
)

// restartContender is one side of BenchmarkControllerRestart.
type restartContender struct {
	name      string
	component string // the Events' source component
	start     startFunc
}

// restartWindow is what a restarted controller did from its start until
// end.
type restartWindow struct {
	end    time.Duration
	calls  map[memory.Op]int
	writes map[string]int64
}

type restartResult struct {
	n                 int
	firstConverge     time.Duration // the first controller's, for context
	first30, untilAll restartWindow
	allRechecked      bool
	rechecked         time.Duration // until every Service had a provider call
	callStarts        []time.Duration
	eventsByReason    map[string]int // Events the second controller recorded or bumped
}

// restartWindowLength is the first window reported after a restart.
const restartWindowLength = 30 * time.Second

// BenchmarkControllerRestart converges 1000 LoadBalancer Services
// (EXTLB_BENCH_RESTART_SERVICES) with a controller, stops it, starts a
// second one over the unchanged Services and reports what the second one
// does during its first 30 s and until it has re-checked every Service:
// provider calls, API writes by kind, Events, and how the re-checks are
// spread. extlb re-checks Services its last run left ensured at
// --restart-resync-qps (default 20/s); the upstream service controller
// re-ensures everything at once. Both run with 16 workers and client QPS
// 100/200, with fake/memory answering every call after 20 ms.
func BenchmarkControllerRestart(b *testing.B) {
	n := envInt("EXTLB_BENCH_RESTART_SERVICES", 1000)
	s := runSettings{workers: 16, qps: 100, burst: 200, resync: 10 * time.Minute}
	contenders := []restartContender{
		{name: "extlb (restart-resync-qps 20)", component: "extlb-controller", start: startExtlb},
		{name: "upstream", component: "service-controller", start: startUpstream},
	}
	for i := 0; i < b.N; i++ {
		results := make([]restartResult, len(contenders))
		for j, c := range contenders {
			results[j] = runRestart(b, c, s, n)
			logRestart(b, c.name, results[j])
		}
		a, up := results[0], results[1]
		report(b, "restart over %d unchanged Services: provider calls until all re-checked extlb %d, upstream %d; API writes extlb %d (events %d), upstream %d (events %d); in the first %s: calls extlb %d, upstream %d",
			n, sumCalls(a.untilAll.calls), sumCalls(up.untilAll.calls), sumWrites(a.untilAll.writes), a.untilAll.writes["events"],
			sumWrites(up.untilAll.writes), up.untilAll.writes["events"], restartWindowLength, sumCalls(a.first30.calls), sumCalls(up.first30.calls))
		b.ReportMetric(float64(sumWrites(a.untilAll.writes)), "extlb-restart-writes")
		b.ReportMetric(float64(sumCalls(a.untilAll.calls)), "extlb-restart-calls")
		b.ReportMetric(float64(sumWrites(up.untilAll.writes)), "upstream-restart-writes")
		b.ReportMetric(a.rechecked.Seconds(), "extlb-recheck-s")
	}
}

func runRestart(b *testing.B, rc restartContender, s runSettings, n int) restartResult {
	b.Helper()
	ctx := b.Context()
	r := restartResult{n: n}
	c := clustertest.Start(b)
	defer func() { _ = c.Stop() }()
	admin := fastClient(b, c.AdminConfig())
	for i := 1; i <= 3; i++ {
		createNode(b, ctx, admin, fmt.Sprintf("node-%d", i))
	}
	createServices(b, ctx, admin, n)
	mem := memory.New()
	mem.SetLatency(20 * time.Millisecond)

	// The first run converges everything and stops.
	counter := &writeCounter{}
	cfg := c.AdminConfig()
	cfg.Wrap(counter.wrap)
	start := time.Now()
	first := startContender(b, rc.start, cfg, mem, s)
	if !pollFor(ctx, 50*time.Millisecond, 10*time.Minute, func() bool { return counter.statusServices.Load() >= int64(n) }) {
		b.Fatalf("%s: the first run did not converge within 10 minutes", rc.name)
	}
	r.firstConverge = time.Since(start)
	if _, ok := waitQuiet(ctx, counter, 3*time.Second, 5*time.Minute); !ok {
		report(b, "%s: the first run was still writing 5 minutes after it converged", rc.name)
	}
	first.stop()
	if got, err := countIngress(ctx, admin, "default"); err != nil || got != n {
		b.Fatalf("%s: after the first run %d of %d Services have an address (%v)", rc.name, got, n, err)
	}
	time.Sleep(time.Second)

	// The second run over the same Services and the same cloud.
	mem.ResetCalls()
	counter = &writeCounter{}
	cfg = c.AdminConfig()
	cfg.Wrap(counter.wrap)
	t0 := time.Now()
	second := startContender(b, rc.start, cfg, mem, s)
	defer second.stop()
	var have30, haveAll bool
	var lastActivity time.Time
	var lastCalls, lastWrites int64 = -1, -1
	ok := pollFor(ctx, 100*time.Millisecond, 10*time.Minute, func() bool {
		calls := mem.Calls()
		now := time.Since(t0)
		if !have30 && now >= restartWindowLength {
			r.first30 = restartWindow{end: now, calls: countByOp(calls), writes: counter.snapshot()}
			have30 = true
		}
		if !r.allRechecked && distinctServices(calls) >= n {
			r.allRechecked, r.rechecked = true, now
		}
		if nc, nw := int64(len(calls)), counter.total(); nc != lastCalls || nw != lastWrites {
			lastCalls, lastWrites, lastActivity = nc, nw, time.Now()
		}
		if r.allRechecked && !haveAll && time.Since(lastActivity) >= 3*time.Second {
			r.untilAll = restartWindow{end: lastActivity.Sub(t0), calls: countByOp(calls), writes: counter.snapshot()}
			haveAll = true
		}
		return have30 && haveAll
	})
	if !ok {
		b.Errorf("%s: the restarted controller had not re-checked every Service and settled within 10 minutes (re-checked: %v)", rc.name, r.allRechecked)
		r.untilAll = restartWindow{end: time.Since(t0), calls: countByOp(mem.Calls()), writes: counter.snapshot()}
	}
	for _, call := range mem.Calls() {
		r.callStarts = append(r.callStarts, call.At.Sub(t0))
	}
	sort.Slice(r.callStarts, func(i, j int) bool { return r.callStarts[i] < r.callStarts[j] })
	var err error
	if r.eventsByReason, err = eventsSince(ctx, admin, rc.component, t0); err != nil {
		b.Errorf("listing events: %v", err)
	}
	return r
}

func logRestart(b *testing.B, name string, r restartResult) {
	report(b, "%s: first run converged %d Services in %.1fs; restarted:", name, r.n, r.firstConverge.Seconds())
	report(b, "%s:   first %s: provider calls %d (%s), API writes %d (%s)", name, restartWindowLength,
		sumCalls(r.first30.calls), formatCalls(r.first30.calls), sumWrites(r.first30.writes), formatCounts(r.first30.writes))
	report(b, "%s:   until every Service was re-checked (%.1fs, %v) and writes stopped (%.1fs): provider calls %d (%s), API writes %d (%s)", name,
		r.rechecked.Seconds(), r.allRechecked, r.untilAll.end.Seconds(), sumCalls(r.untilAll.calls), formatCalls(r.untilAll.calls),
		sumWrites(r.untilAll.writes), formatCounts(r.untilAll.writes))
	if len(r.callStarts) > 0 {
		cs := r.callStarts
		report(b, "%s:   provider calls after start: first %.2fs, median %.2fs, last %.2fs", name, cs[0].Seconds(), cs[len(cs)/2].Seconds(), cs[len(cs)-1].Seconds())
	}
	report(b, "%s:   Events recorded or bumped since the restart, by reason: %s", name, formatCounts(r.eventsByReason))
}

func countByOp(calls []memory.Call) map[memory.Op]int {
	out := map[memory.Op]int{}
	for _, c := range calls {
		out[c.Op]++
	}
	return out
}

func distinctServices(calls []memory.Call) int {
	seen := map[string]struct{}{}
	for _, c := range calls {
		seen[c.Service] = struct{}{}
	}
	return len(seen)
}

func sumCalls(m map[memory.Op]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sumWrites(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func formatCalls(m map[memory.Op]int) string {
	var parts []string
	for _, op := range []memory.Op{memory.OpGet, memory.OpEnsure, memory.OpUpdate, memory.OpDelete} {
		if m[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// formatCounts prints a map's non-zero counts sorted by key.
func formatCounts[V int | int64](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// eventsSince counts, by reason, the Events from component whose last
// occurrence is at or after since (whole seconds: Event times have no
// finer resolution).
func eventsSince(ctx context.Context, c kubernetes.Interface, component string, since time.Time) (map[string]int, error) {
	out := map[string]int{}
	opts := metav1.ListOptions{Limit: 500}
	cutoff := since.Truncate(time.Second)
	for {
		list, err := c.CoreV1().Events("").List(ctx, opts)
		if err != nil {
			return out, err
		}
		for _, e := range list.Items {
			last := e.LastTimestamp.Time
			if last.IsZero() {
				last = e.EventTime.Time
			}
			if e.Source.Component == component && !last.Before(cutoff) {
				out[e.Reason]++
			}
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}
