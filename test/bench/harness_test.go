package bench

// Helpers shared by the controller benchmarks: settings from the
// environment, process CPU and memory, bounded concurrent loops, and
// contenders started and stopped one at a time.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/extlb/extlb/providers"
)

// envInt is the positive integer in $name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// envDuration is the positive duration in $name (as "90s", "20m"), or def.
func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// forEachConcurrently calls f(0) … f(n-1) from workers goroutines and
// returns the first error; after an error no new call starts.
func forEachConcurrently(ctx context.Context, n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	var first atomic.Pointer[error]
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first.Load() == nil && ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// memNow returns the process's resident set size (from /proc/self/statm;
// 0 where there is none) and the Go heap that was live at the end of the
// last GC (runtime/metrics /gc/heap/live:bytes).
func memNow() (rss, liveHeap uint64) {
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		liveHeap = s[0].Value.Uint64()
	}
	return rss, liveHeap
}

// memPeak samples memNow every 100 ms until end.
type memPeak struct {
	stop, done     chan struct{}
	rss, liveHeap  uint64
	baseRSS, baseH uint64
}

// sampleMemory collects garbage, returns memory to the OS and starts
// sampling: the baseline is what the process holds before a contender
// starts.
func sampleMemory() *memPeak {
	runtime.GC()
	debug.FreeOSMemory()
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	m.baseRSS, m.baseH = memNow()
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			rss, live := memNow()
			m.rss, m.liveHeap = max(m.rss, rss), max(m.liveHeap, live)
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memPeak) end() *memPeak {
	close(m.stop)
	<-m.done
	return m
}

// cpuWindow measures the process CPU (user + system, all threads), the
// Go runtime's estimate of the part of it spent in GC, and the wall time
// from its start. startCPU collects the garbage of earlier phases first,
// so that their GC debt is not charged to this one.
type cpuWindow struct {
	cpu, gc time.Duration
	wall    time.Time
}

func startCPU() cpuWindow {
	runtime.GC()
	return cpuWindow{cpu: processCPU(), gc: gcCPU(), wall: time.Now()}
}

func (w cpuWindow) elapsed() (cpu, wall time.Duration) {
	return processCPU() - w.cpu, time.Since(w.wall)
}

// gcElapsed is the GC CPU since the window started.
func (w cpuWindow) gcElapsed() time.Duration { return gcCPU() - w.gc }

// gcCPU is the runtime's estimate of the CPU spent in GC so far
// (/cpu/classes/gc/total:cpu-seconds).
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// running is a contender started by startContender.
type running struct {
	synced func() bool // the Service and Node informers have synced
	nodes  cache.Store // the contender's Node cache
	stop   func()      // cancels the contender and waits for it to return
}

// startContender starts a contender and returns once its informers exist.
func startContender(b *testing.B, start startFunc, cfg *rest.Config, lb providers.LoadBalancer, s runSettings) *running {
	b.Helper()
	r := &running{}
	ready := make(chan struct{})
	s.informers = func(f informers.SharedInformerFactory) {
		nodes, svcs := f.Core().V1().Nodes().Informer(), f.Core().V1().Services().Informer()
		r.synced = func() bool { return nodes.HasSynced() && svcs.HasSynced() }
		r.nodes = nodes.GetStore()
		close(ready)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- start(ctx, cfg, lb, s) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("contender returned before it started: %v", err)
	case <-time.After(time.Minute):
		cancel()
		b.Fatal("contender did not build its informers within a minute")
	}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				b.Errorf("contender: %v", err)
			}
		})
	}
	return r
}

// pollFor polls done every interval until it holds or timeout passes, and
// reports whether it held.
func pollFor(ctx context.Context, interval, timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(interval)
	}
}

// waitQuiet waits until counter has seen no write for quiet (bounded by
// timeout: trailing Events of a large run take long at the client's QPS)
// and reports how long that took.
func waitQuiet(ctx context.Context, counter *writeCounter, quiet, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	last, lastChange := counter.total(), time.Now()
	ok := pollFor(ctx, 100*time.Millisecond, timeout, func() bool {
		if n := counter.total(); n != last {
			last, lastChange = n, time.Now()
		}
		return time.Since(lastChange) >= quiet
	})
	return time.Since(start), ok
}

// settle waits until the process has used less than a tenth of a core
// for 3 s in a row, bounded by timeout, and reports how long it waited,
// the CPU used meanwhile, the last second's share of a core, and whether
// it settled.
func settle(ctx context.Context, timeout time.Duration) (took, cpu time.Duration, share float64, ok bool) {
	w := startCPU()
	quiet := 0
	for time.Since(w.wall) < timeout && ctx.Err() == nil {
		before, at := processCPU(), time.Now()
		time.Sleep(time.Second)
		share = float64(processCPU()-before) / float64(time.Since(at))
		if share < 0.1 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 3 {
			ok = true
			break
		}
	}
	cpu, took = w.elapsed()
	return took, cpu, share, ok
}

func (w *writeCounter) total() int64 {
	var n int64
	for _, v := range w.snapshot() {
		n += v
	}
	return n
}

// countIngress lists the Services in pages and counts those with an
// address.
func countIngress(ctx context.Context, c kubernetes.Interface, namespace string) (int, error) {
	n := 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := c.CoreV1().Services(namespace).List(ctx, opts)
		if err != nil {
			return n, err
		}
		for i := range list.Items {
			if len(list.Items[i].Status.LoadBalancer.Ingress) > 0 {
				n++
			}
		}
		if list.Continue == "" {
			return n, nil
		}
		opts.Continue = list.Continue
	}
}

// nodesSeen reports whether the Node cache holds at least the given
// resourceVersion of every named Node; it drops the Nodes it found from
// want, so that polling gets cheaper.
func nodesSeen(store cache.Store, want map[string]uint64) bool {
	for name, rv := range want {
		obj, ok, _ := store.GetByKey(name)
		if !ok {
			return false
		}
		have, _ := strconv.ParseUint(obj.(*v1.Node).ResourceVersion, 10, 64)
		if have < rv {
			return false
		}
		delete(want, name)
	}
	return true
}

// report prints one line of figures. b.Logf would do, but the testing
// package keeps only the first 10 lines a benchmark logs.
func report(b *testing.B, format string, args ...any) {
	fmt.Printf("%s: %s\n", b.Name(), fmt.Sprintf(format, args...))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
