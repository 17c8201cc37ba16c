package metal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

const metalClass = "extlb.io/metal"

// TestWithController runs the real controller (controller/manager, as
// `extlb controller --provider=metal` does) against a real API server:
// Services get distinct addresses in their status, an exhausted pool leaves
// a Service pending with an Event until a new pool serves it, a bad
// annotation is reported by field, a deleted Service frees its address, and
// a restarted controller keeps every address and hands out only free ones.
func TestWithController(t *testing.T) {
	c := clustertest.Start(t)
	ctx := t.Context()
	cfg := c.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	installCRD(t, ctx, dyn)
	createPool(t, ctx, dyn, newIPPool("small", []string{"192.0.2.0/31"}))

	stop := startController(t, cfg)
	for _, name := range []string{"a", "b", "c"} {
		createService(t, ctx, kube, newService(name, fixtures.WithClass(metalClass)))
		if name != "c" {
			// a and b take the pool's two addresses, in this order.
			waitForIngress(t, ctx, kube, name)
		}
	}
	addrA, addrB := waitForIngress(t, ctx, kube, "a"), waitForIngress(t, ctx, kube, "b")
	if addrA != "192.0.2.0" || addrB != "192.0.2.1" {
		t.Fatalf("a and b got %s and %s, want 192.0.2.0 and 192.0.2.1", addrA, addrB)
	}
	waitForEvent(t, ctx, kube, "c", `no free IPv4 address in IPPool "small"`)
	if svc := getService(t, ctx, kube, "c"); len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("c got %v from an exhausted pool", svc.Status.LoadBalancer.Ingress)
	}

	createService(t, ctx, kube, newService("bad", fixtures.WithClass(metalClass), fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "banana")))
	waitForEvent(t, ctx, kube, "bad", `metadata.annotations[extlb.io/load-balancer-ips]: "banana" is not an IP address`)

	createPool(t, ctx, dyn, newIPPool("spare", []string{"198.51.100.0/30"}))
	if got := waitForIngress(t, ctx, kube, "c"); got != "198.51.100.0" {
		t.Fatalf("c got %s from the new pool, want 198.51.100.0", got)
	}

	if err := kube.CoreV1().Services("default").Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to be deleted (finalizer removed)", func() bool {
		_, err := kube.CoreV1().Services("default").Get(ctx, "b", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	stop()
	startController(t, cfg)
	createService(t, ctx, kube, newService("d", fixtures.WithClass(metalClass)))
	if got := waitForIngress(t, ctx, kube, "d"); got != addrB {
		t.Fatalf("after restart d got %s, want %s which b freed", got, addrB)
	}
	createService(t, ctx, kube, newService("e", fixtures.WithClass(metalClass)))
	if got := waitForIngress(t, ctx, kube, "e"); got != "198.51.100.1" {
		t.Fatalf("after restart e got %s, want 198.51.100.1 (the small pool is full; c holds 198.51.100.0)", got)
	}
	for name, want := range map[string]string{"a": addrA, "c": "198.51.100.0"} {
		if got := ingressString(&getService(t, ctx, kube, name).Status.LoadBalancer); got != want {
			t.Errorf("after restart %s shows %s, want %s", name, got, want)
		}
	}
}

func createPool(t *testing.T, ctx context.Context, dyn dynamic.Interface, p *IPPool) {
	t.Helper()
	u := toUnstructured(t, p)
	u.SetCreationTimestamp(metav1.Time{})
	if _, err := dyn.Resource(IPPoolGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating IPPool %s: %v", p.Name, err)
	}
}

// startController runs the controller with the metal provider until the
// test ends or the returned function is called.
func startController(t *testing.T, cfg *rest.Config) (stop func()) {
	t.Helper()
	o := manager.DefaultOptions()
	o.Controller.Class.Name = metalClass
	o.Controller.Class.Default = false
	o.Controller.MinRetryDelay = 100 * time.Millisecond
	o.Controller.MaxRetryDelay = 2 * time.Second
	o.Controller.Workers = 4
	o.MetricsAddr = ""
	b := NewBuilder()
	b.Options.RetryInterval = 300 * time.Millisecond
	b.Options.StatusInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- manager.Run(ctx, o, cfg, func(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
			return b.Build(ctx, env)
		})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("controller did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitForIngress waits (up to 10 s) for the Service to show an address and
// returns it.
func waitForIngress(t *testing.T, ctx context.Context, kube kubernetes.Interface, name string) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		svc, err := kube.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			got = ingressString(&svc.Status.LoadBalancer)
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Service %s got no address within 10s", name)
	return ""
}

// waitForEvent waits (up to 10 s) for a Warning Event on the Service whose
// message contains want.
func waitForEvent(t *testing.T, ctx context.Context, kube kubernetes.Interface, name, want string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		evs, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err == nil {
			seen = seen[:0]
			for _, e := range evs.Items {
				if e.Type == v1.EventTypeWarning && strings.Contains(e.Message, want) {
					t.Logf("Event on %s: %s: %s", name, e.Reason, e.Message)
					return
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no Warning Event on %s containing %q; saw %q", name, want, seen)
}
