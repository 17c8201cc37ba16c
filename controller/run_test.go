package controller

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/test/fixtures"
)

// running is a controller running its workers against the fake clientset
// with real informers.
type running struct {
	client   *fake.Clientset
	provider *concurrencyProvider
	mem      *memory.Provider
	ctrl     *Controller
	updates  atomic.Int64 // service update notifications the informer delivered
}

func startController(t *testing.T, resync time.Duration, workers int, latency time.Duration, objects ...runtime.Object) *running {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, resync)
	mem := memory.New()
	mem.SetLatency(latency, memory.OpEnsure, memory.OpUpdate)
	cp := newConcurrencyProvider(mem)
	cfg := DefaultConfig()
	cfg.Class.Name = testClass
	cfg.Workers = workers
	cfg.MinRetryDelay, cfg.MaxRetryDelay = 10*time.Millisecond, 100*time.Millisecond
	ctrl, err := New(cfg, client, factory, cp, record.NewFakeRecorder(100000), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{client: client, provider: cp, mem: mem, ctrl: ctrl}
	_, _ = factory.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, _ any) { r.updates.Add(1) },
	})
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); _ = ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
	return r
}

func (r *running) waitConverged(t *testing.T, n int, nodes int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lbs := r.mem.LoadBalancers()
		if len(lbs) != n {
			return false, nil
		}
		for _, lb := range lbs {
			if len(lb.Nodes) != nodes {
				return false, nil
			}
		}
		svcs, err := r.client.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range svcs.Items {
			if len(s.Status.LoadBalancer.Ingress) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("not converged to %d load balancers with %d nodes: %v", n, nodes, err)
	}
}

func manyServices(n int) []runtime.Object {
	objs := make([]runtime.Object, 0, n)
	for i := 0; i < n; i++ {
		objs = append(objs, newService(fmt.Sprintf("svc-%03d", i), fixtures.WithPorts(fixtures.TCP(80, int32(30000+i)))))
	}
	return objs
}

func TestWorkersRunConcurrentlyButNeverOnOneServiceTwice(t *testing.T) {
	objs := append(manyServices(40), newNode("n1"))
	r := startController(t, 0, 4, 20*time.Millisecond, objs...)
	r.waitConverged(t, 40, 1)

	// A node change fans out to every load balancer.
	if _, err := r.client.CoreV1().Nodes().Create(context.Background(), newNode("n2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitConverged(t, 40, 2)
	perKey, total := r.provider.maxima()
	if perKey != 1 {
		t.Errorf("at most %d concurrent provider calls for one Service, want 1", perKey)
	}
	if total < 2 || total > 4 {
		t.Errorf("at most %d concurrent provider calls overall, want between 2 and the 4 workers", total)
	}
	if n := r.mem.CountCalls(memory.OpUpdate); n != 40 {
		t.Errorf("UpdateLoadBalancer calls for one node change = %d, want 40", n)
	}
}

func TestResyncWithNothingChangedCallsNothing(t *testing.T) {
	objs := append(manyServices(5), newNode("n1"))
	r := startController(t, 50*time.Millisecond, 2, 0, objs...)
	r.waitConverged(t, 5, 1)
	r.mem.ResetCalls()
	before := r.updates.Load()
	// Wait until the informer has delivered several resyncs of every Service.
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return r.updates.Load()-before >= 20 && r.ctrl.queue.Len() == 0, nil
	}); err != nil {
		t.Fatalf("resyncs did not happen: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // let the last queued syncs finish
	if n := r.mem.CountCalls(""); n != 0 {
		t.Errorf("provider calls during resyncs = %d (%v), want 0", n, r.mem.Calls())
	}
}

func TestRetryErrorIsHonouredWithoutBackoff(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	f.provider.RetryAfter(memory.OpEnsure, 150*time.Millisecond, 1)
	f.ctrl.queue.Add("default/web")
	if !f.ctrl.processNextItem(f.ctx) {
		t.Fatal("queue shut down")
	}
	if n := f.ctrl.queue.NumRequeues("default/web"); n != 0 {
		t.Errorf("requeues after a RetryError = %d, want 0 (no exponential backoff)", n)
	}
	if l := f.ctrl.queue.Len(); l != 0 {
		t.Errorf("queue length right after a RetryError = %d, want 0 (retried after the delay)", l)
	}
	start := time.Now()
	if !f.ctrl.processNextItem(f.ctx) { // blocks until the key comes back
		t.Fatal("queue shut down")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("retried after %s, before the requested 150ms", waited)
	}
	if _, ok := f.provider.LoadBalancerFor("default/web"); !ok {
		t.Error("no load balancer after the retry")
	}
}

func TestOrdinaryErrorBacksOffPerService(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	f.provider.FailWith(memory.OpEnsure, errors.New("cloud hiccup"), 2)
	for i := 1; i <= 2; i++ {
		f.ctrl.queue.Add("default/web")
		f.ctrl.processNextItem(f.ctx)
		if n := f.ctrl.queue.NumRequeues("default/web"); n != i {
			t.Fatalf("requeues after failure %d = %d, want %d", i, n, i)
		}
	}
	f.ctrl.processNextItem(f.ctx) // the rate-limited retry succeeds
	if n := f.ctrl.queue.NumRequeues("default/web"); n != 0 {
		t.Errorf("requeues after success = %d, want 0 (forgotten)", n)
	}
	if ev := f.events(); !hasEvent(ev, "Warning SyncLoadBalancerFailed Error syncing load balancer: cloud hiccup") {
		t.Errorf("events = %v, want SyncLoadBalancerFailed with the provider's error", ev)
	}
}

// TestInvalidServiceWaitsForItsChange: what the controller's own checks
// refuse is never retried until the Service changes.
func TestInvalidServiceWaitsForItsChange(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(80, 30081))), newNode("n1")})
	f.ctrl.queue.Add("default/web")
	f.ctrl.processNextItem(f.ctx)
	if n := f.ctrl.queue.NumRequeues("default/web"); n != 0 {
		t.Errorf("requeues after an invalid Service = %d, want 0", n)
	}
	time.Sleep(3 * f.ctrl.cfg.MaxRetryDelay) // nothing to wait on: the absence of a retry
	if l := f.ctrl.queue.Len(); l != 0 {
		t.Errorf("queue length = %d, want 0: an invalid Service must not be retried until it changes", l)
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("provider calls for an invalid Service = %d, want 0", n)
	}
	if ev := f.events(); len(ev) != 1 {
		t.Errorf("events = %v, want exactly one SyncLoadBalancerFailed", ev)
	}
}

// TestProviderInputErrorIsCheckedAgainSlowly: what the provider refuses as
// input may have a cause outside the Service (a subnet not there yet), so
// it is checked again, but only after MaxRetryDelay, not with the fast
// per-Service backoff.
func TestProviderInputErrorIsCheckedAgainSlowly(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(81, 30081)), fixtures.WithProtocol(1, "SCTP")), newNode("n1")})
	f.ctrl.queue.Add("default/web")
	f.ctrl.processNextItem(f.ctx)
	if n := f.ctrl.queue.NumRequeues("default/web"); n != 0 {
		t.Errorf("requeues after a provider input error = %d, want 0 (no backoff)", n)
	}
	if l := f.ctrl.queue.Len(); l != 0 {
		t.Errorf("queue length right after = %d, want 0: the check again waits", l)
	}
	start := time.Now()
	if !f.ctrl.processNextItem(f.ctx) { // blocks until the key comes back
		t.Fatal("queue shut down")
	}
	if waited := time.Since(start); waited < f.ctrl.cfg.MaxRetryDelay/2 {
		t.Errorf("checked again after %s, want about MaxRetryDelay (%s)", waited, f.ctrl.cfg.MaxRetryDelay)
	}
	if n := f.provider.CountCalls(memory.OpEnsure); n != 2 {
		t.Errorf("ensure calls = %d, want 2 (the first and the check again)", n)
	}
}
