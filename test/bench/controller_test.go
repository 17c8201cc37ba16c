// Package bench holds benchmarks that compare extlb with its peers side by
// side in one process. They run with `make bench`, not `make test`.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	servicecontroller "k8s.io/cloud-provider/controllers/service"
	"k8s.io/component-base/featuregate"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/ccm"
	"github.com/extlb/extlb/test/fixtures"
)

// controllerVariant starts one service controller against cfg and the
// in-memory provider; it runs until ctx ends.
type controllerVariant struct {
	name string
	// admissionPolicy installs manifests/admission-policy first, which puts
	// the finalizer on new Services of class extlb.io/fake (and of no class).
	admissionPolicy bool
	workers         int
	qps             float32
	burst           int
	start           startFunc
}

// startFunc runs one contender against cfg and the provider lb until ctx
// ends.
type startFunc func(ctx context.Context, cfg *rest.Config, lb providers.LoadBalancer, s runSettings) error

// runSettings are what every contender is given.
type runSettings struct {
	workers int
	qps     float32
	burst   int
	// resync is the informers' resync period; 0 means 30 s.
	resync time.Duration
	// nodePortRange is the API server's --service-node-port-range, for
	// extlb's allocator; zero means the default.
	nodePortRange controller.PortRange
	// informers, when set, is handed the contender's informer factory
	// before it starts, so that a benchmark can tell when its caches have
	// synced (and what they hold) without informers of its own.
	informers func(informers.SharedInformerFactory)
}

func (s runSettings) resyncPeriod() time.Duration {
	if s.resync == 0 {
		return 30 * time.Second
	}
	return s.resync
}

type controllerResult struct {
	converge   time.Duration
	fanOut     time.Duration
	writes     map[string]int64 // by kind: services, status, events, other
	idleCalls  int
	servicesOK int
}

// BenchmarkControllerVsUpstream converges N LoadBalancer Services (1000 by
// default, EXTLB_BENCH_SERVICES to change) with 20 ms of latency per provider
// call on a real kube-apiserver, with extlb's controller and with the
// upstream service controller from k8s.io/cloud-provider, and prints the
// times, API writes per Service, provider calls during an idle resync, and
// ratios.
func BenchmarkControllerVsUpstream(b *testing.B) {
	n := envInt("EXTLB_BENCH_SERVICES", 1000)
	ours := manager.DefaultOptions()
	variants := []controllerVariant{
		{name: "extlb (defaults + admission policy)", admissionPolicy: true, workers: ours.Controller.Workers, qps: ours.QPS, burst: ours.Burst, start: startExtlb},
		{name: "extlb (defaults, no policy)", workers: ours.Controller.Workers, qps: ours.QPS, burst: ours.Burst, start: startExtlb},
		{name: "upstream (CCM defaults)", workers: 1, qps: 20, burst: 30, start: startUpstream},
		{name: "upstream (extlb's workers and QPS)", workers: ours.Controller.Workers, qps: ours.QPS, burst: ours.Burst, start: startUpstream},
	}
	for i := 0; i < b.N; i++ {
		results := make([]controllerResult, len(variants))
		for j, v := range variants {
			results[j] = runControllerVariant(b, v, n)
			r := results[j]
			b.Logf("%-36s converge %7.2fs  node fan-out %6.2fs  writes/Service %.2f (%s)  idle-resync provider calls %d",
				v.name, r.converge.Seconds(), r.fanOut.Seconds(), perService(r.writes, n), formatWrites(r.writes, n), r.idleCalls)
		}
		a, noPolicy, up, upSame := results[0], results[1], results[2], results[3]
		ideal := time.Duration(n) * 20 * time.Millisecond / time.Duration(variants[0].workers)
		b.Logf("converge: %.1fx faster than upstream with CCM defaults (target >= 10x), %.2fx faster than upstream with the same workers and QPS (target >= 1.5x)",
			up.converge.Seconds()/a.converge.Seconds(), upSame.converge.Seconds()/a.converge.Seconds())
		b.Logf("node fan-out: %.2fs = %.2fx the ideal %d x 20ms / %d workers = %.2fs (target <= 1.2x); upstream same workers %.2fs",
			a.fanOut.Seconds(), a.fanOut.Seconds()/ideal.Seconds(), n, variants[0].workers, ideal.Seconds(), upSame.fanOut.Seconds())
		b.Logf("without the admission policy: %.1fx faster than upstream with CCM defaults, %.2fx faster than upstream with the same workers and QPS",
			up.converge.Seconds()/noPolicy.converge.Seconds(), upSame.converge.Seconds()/noPolicy.converge.Seconds())
		b.Logf("API writes per Service: extlb %.2f (no policy %.2f), upstream %.2f", perService(a.writes, n), perService(noPolicy.writes, n), perService(upSame.writes, n))
		b.ReportMetric(a.converge.Seconds(), "extlb-converge-s")
		b.ReportMetric(up.converge.Seconds()/a.converge.Seconds(), "x-vs-upstream-ccm")
		b.ReportMetric(upSame.converge.Seconds()/a.converge.Seconds(), "x-vs-upstream-same")
		b.ReportMetric(a.fanOut.Seconds()/ideal.Seconds(), "fanout-x-ideal")
		b.ReportMetric(perService(a.writes, n), "extlb-writes/svc")
		b.ReportMetric(float64(a.idleCalls), "extlb-idle-calls")
	}
}

func perService(w map[string]int64, n int) float64 {
	var total int64
	for _, v := range w {
		total += v
	}
	return float64(total) / float64(n)
}

func formatWrites(w map[string]int64, n int) string {
	var parts []string
	for _, k := range []string{"services", "status", "events", "other"} {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(w[k])/float64(n)))
	}
	return strings.Join(parts, ", ")
}

func runControllerVariant(b *testing.B, v controllerVariant, n int) controllerResult {
	b.Helper()
	c := clustertest.Start(b)
	ctx := b.Context()
	admin := fastClient(b, c.AdminConfig())
	if v.admissionPolicy {
		installAdmissionPolicy(b, c, admin)
	}
	for i := 1; i <= 3; i++ {
		createNode(b, ctx, admin, fmt.Sprintf("node-%d", i))
	}
	createServices(b, ctx, admin, n)

	watchFactory := informers.NewSharedInformerFactory(admin, 0)
	svcLister := watchFactory.Core().V1().Services().Lister()
	watchFactory.Start(ctx.Done())
	watchFactory.WaitForCacheSync(ctx.Done())

	mem := memory.New()
	mem.SetLatency(20 * time.Millisecond)
	counter := &writeCounter{}
	cfg := c.AdminConfig()
	cfg.Wrap(counter.wrap)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- v.start(runCtx, cfg, mem, runSettings{workers: v.workers, qps: v.qps, burst: v.burst}) }()
	defer func() { stop(); <-done }()

	var r controllerResult
	poll(b, 20*time.Minute, func() bool {
		svcs, _ := svcLister.List(labels.Everything())
		ok := 0
		for _, s := range svcs {
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				ok++
			}
		}
		r.servicesOK = ok
		return ok == n
	})
	r.converge = time.Since(start)
	time.Sleep(2 * time.Second) // let trailing Events drain before counting
	r.writes = counter.snapshot()

	// Idle: both controllers resync Services every 30 s; nothing changed.
	mem.ResetCalls()
	time.Sleep(35 * time.Second)
	r.idleCalls = mem.CountCalls("")

	// One added node must reach every load balancer.
	fanStart := time.Now()
	createNode(b, ctx, admin, "node-4")
	poll(b, 10*time.Minute, func() bool { return mem.CountWithNodes(4) == n })
	r.fanOut = time.Since(fanStart)
	return r
}

func poll(b *testing.B, timeout time.Duration, done func() bool) {
	b.Helper()
	err := wait.PollUntilContextTimeout(b.Context(), 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return done(), nil })
	if err != nil {
		b.Fatalf("condition not reached within %s: %v", timeout, err)
	}
}

func startExtlb(ctx context.Context, cfg *rest.Config, lb providers.LoadBalancer, s runSettings) error {
	o := manager.DefaultOptions()
	o.Controller.Class.Name = "extlb.io/fake" // the class manifests/admission-policy is written for
	o.Controller.Workers = s.workers
	if s.nodePortRange.Size > 0 {
		o.Controller.NodePortRange = s.nodePortRange
	}
	o.QPS, o.Burst = s.qps, s.burst
	o.ResyncPeriod = s.resyncPeriod()
	o.MetricsAddr = ""
	ctx = klog.NewContext(ctx, klog.Background().V(1))
	return manager.Run(ctx, o, cfg, func(_ context.Context, env providers.Env) (providers.LoadBalancer, error) {
		if s.informers != nil {
			s.informers(env.Informers)
		}
		return lb, nil
	})
}

func startUpstream(ctx context.Context, cfg *rest.Config, lb providers.LoadBalancer, s runSettings) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = s.qps, s.burst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, s.resyncPeriod())
	ctrl, err := servicecontroller.New(ccm.New("extlb-bench", lb), client, factory.Core().V1().Services(), factory.Core().V1().Nodes(), "bench", featuregate.NewFeatureGate())
	if err != nil {
		return err
	}
	if s.informers != nil {
		s.informers(factory)
	}
	factory.Start(ctx.Done())
	ctrl.Run(ctx, s.workers, controllersmetrics.NewControllerManagerMetrics("bench"))
	factory.Shutdown()
	return nil
}

// fastClient is a client for setting up the benchmark, not limited like
// the controllers under test.
func fastClient(b *testing.B, cfg *rest.Config) kubernetes.Interface {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 5000
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func createNode(b *testing.B, ctx context.Context, c kubernetes.Interface, name string) {
	b.Helper()
	node := fixtures.Node(name, fixtures.WithInternalIP("127.0.0.1"))
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		b.Fatalf("creating node %s: %v", name, err)
	}
}

func createServices(b *testing.B, ctx context.Context, c kubernetes.Interface, n int) {
	b.Helper()
	err := forEachConcurrently(ctx, n, 16, func(i int) error {
		svc := fixtures.Service("default", fmt.Sprintf("svc-%04d", i), fixtures.WithSelector(map[string]string{"app": "bench"}),
			fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, 0)))
		_, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("creating services: %v", err)
	}
}

// writeCounter counts the write requests a controller sends, by kind, and
// the Services that got a successful status write.
type writeCounter struct {
	mu     sync.Mutex
	counts map[string]int64
	// statusWritten holds the Services (namespace/name) that got a
	// successful status write with an address; statusServices is its
	// size, for cheap polling.
	statusWritten  map[string]struct{}
	statusServices atomic.Int64
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			return rt.RoundTrip(req)
		}
		kind := writeKind(req)
		w.add(kind)
		resp, err := rt.RoundTrip(req)
		if kind == "status" && err == nil && resp.StatusCode/100 == 2 && writesIngress(req) {
			w.statusOK(req.URL.Path)
		}
		return resp, err
	})
}

// writesIngress reports whether a status write sends an address (upstream
// adds its finalizer through the status subresource too).
func writesIngress(req *http.Request) bool {
	if req.GetBody == nil {
		return false
	}
	body, err := req.GetBody()
	if err != nil {
		return false
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	return err == nil && bytes.Contains(data, []byte(`"ingress":[{`))
}

// statusOK records a successful write to
// .../namespaces/<ns>/services/<name>/status.
func (w *writeCounter) statusOK(path string) {
	parts := strings.Split(strings.TrimSuffix(path, "/status"), "/")
	if len(parts) < 4 {
		return
	}
	key := parts[len(parts)-3] + "/" + parts[len(parts)-1]
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.statusWritten == nil {
		w.statusWritten = map[string]struct{}{}
	}
	if _, ok := w.statusWritten[key]; !ok {
		w.statusWritten[key] = struct{}{}
		w.statusServices.Add(1)
	}
}

func writeKind(req *http.Request) string {
	p := req.URL.Path
	switch {
	case strings.Contains(p, "/events"):
		return "events"
	case strings.HasSuffix(p, "/status") && strings.Contains(p, "/services/"):
		return "status"
	case strings.Contains(p, "/services"):
		return "services"
	default:
		return "other"
	}
}

func (w *writeCounter) add(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int64{}
	}
	w.counts[kind]++
}

func (w *writeCounter) snapshot() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
