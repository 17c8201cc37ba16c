package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/extlb/extlb/fake/cluster/clustertest"
	memprovider "github.com/extlb/extlb/fake/memory"
)

// TestServiceLifecycle follows one Service through create, port and
// annotation changes, a type change away from LoadBalancer and back, and
// deletion, checking the provider, the finalizer, the status and the Events.
func TestServiceLifecycle(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	e.start(t)

	createService(t, admin, newService(ns, "web", class))
	eventually(t, 20*time.Second, "load balancer created", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, admin, ns, "web")
		if err != nil {
			return false, err.Error()
		}
		lb, ok := lbFor(mem, ns, "web")
		if !ok || len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != lb.Address {
			return false, fmt.Sprintf("status %+v, load balancer %+v", svc.Status.LoadBalancer, lb)
		}
		if !hasFinalizer(svc) {
			return false, "no finalizer"
		}
		evs := events(ctx, admin, ns, "web")
		return hasEvent(evs, "Normal EnsuredLoadBalancer"), fmt.Sprint(evs)
	})

	updateService(t, admin, ns, "web", func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP})
		s.Annotations = map[string]string{"example.com/tier": "gold"}
	})
	eventually(t, 20*time.Second, "ports and annotations reach the provider", func(ctx context.Context) (bool, string) {
		lb, _ := lbFor(mem, ns, "web")
		if lb.Service == nil || len(lb.Service.Spec.Ports) != 2 || lb.Service.Spec.Ports[1].NodePort == 0 {
			return false, fmt.Sprintf("provider has %+v", lb.Service)
		}
		return lb.Service.Annotations["example.com/tier"] == "gold", "annotation missing"
	})

	updateService(t, admin, ns, "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeClusterIP
		s.Spec.LoadBalancerClass = nil
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
	})
	eventually(t, 20*time.Second, "type ClusterIP cleans up", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, admin, ns, "web")
		if err != nil {
			return false, err.Error()
		}
		_, exists := lbFor(mem, ns, "web")
		return !exists && !hasFinalizer(svc) && len(svc.Status.LoadBalancer.Ingress) == 0,
			fmt.Sprintf("lb exists %v, finalizers %v, status %+v", exists, svc.Finalizers, svc.Status.LoadBalancer)
	})

	updateService(t, admin, ns, "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerClass = &class
	})
	eventually(t, 20*time.Second, "load balancer again", func(ctx context.Context) (bool, string) {
		_, ok := lbFor(mem, ns, "web")
		return ok, "no load balancer"
	})
	if err := admin.CoreV1().Services(ns).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "delete removes the load balancer and then the Service", func(ctx context.Context) (bool, string) {
		_, err := getService(ctx, admin, ns, "web")
		_, exists := lbFor(mem, ns, "web")
		return apierrors.IsNotFound(err) && !exists, fmt.Sprintf("get: %v, lb exists %v", err, exists)
	})
	if n := mem.CountCalls(memprovider.OpDelete); n < 2 {
		t.Errorf("EnsureLoadBalancerDeleted calls = %d, want one per cleanup (2)", n)
	}
}

// TestOtherClassesAreUntouched checks that Services of another class, and
// Services without a class when the controller is not the default, get no
// finalizer, no status and no load balancer.
func TestOtherClassesAreUntouched(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	e.start(t)

	createService(t, admin, newService(ns, "other", "example.com/someone-else"))
	noClass := newService(ns, "noclass", "")
	noClass.Spec.LoadBalancerClass = nil
	createService(t, admin, noClass)
	createService(t, admin, newService(ns, "ours", class)) // a marker: once it is served, the others were seen too
	eventually(t, 20*time.Second, "our Service served", func(ctx context.Context) (bool, string) {
		_, ok := lbFor(mem, ns, "ours")
		return ok, "not yet"
	})
	// A window for a wrong touch by another worker to land: it can only
	// hide a bug, never fail a correct controller.
	time.Sleep(500 * time.Millisecond)
	for _, name := range []string{"other", "noclass"} {
		svc, err := getService(t.Context(), admin, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := lbFor(mem, ns, name); ok || hasFinalizer(svc) || len(svc.Status.LoadBalancer.Ingress) > 0 {
			t.Errorf("%s was touched: load balancer %v, finalizers %v, status %+v", name, ok, svc.Finalizers, svc.Status.LoadBalancer)
		}
		if evs := events(t.Context(), admin, ns, name); len(evs) > 0 {
			t.Errorf("%s got events %v", name, evs)
		}
	}
}

// TestProviderFailureBacksOffAndRecovers injects provider errors: the
// Service gets SyncLoadBalancerFailed Events, retries back off, and it
// converges once the provider recovers.
func TestProviderFailureBacksOffAndRecovers(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	mem.FailWith(memprovider.OpEnsure, errors.New("injected: cloud API unavailable"), 3)
	e.start(t)

	createService(t, admin, newService(ns, "web", class))
	eventually(t, 30*time.Second, "converges after three failures", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, admin, ns, "web")
		if err != nil {
			return false, err.Error()
		}
		return len(svc.Status.LoadBalancer.Ingress) == 1, fmt.Sprintf("status %+v", svc.Status.LoadBalancer)
	})
	evs := events(t.Context(), admin, ns, "web")
	if !hasEvent(evs, "Warning SyncLoadBalancerFailed: Error syncing load balancer: injected: cloud API unavailable") {
		t.Errorf("events = %v, want SyncLoadBalancerFailed with the provider's error", evs)
	}
	var ensures []time.Time
	for _, call := range mem.Calls() {
		if call.Op == memprovider.OpEnsure {
			ensures = append(ensures, call.At)
		}
	}
	if len(ensures) != 4 {
		t.Fatalf("EnsureLoadBalancer calls = %d, want 3 failures and 1 success", len(ensures))
	}
	// Exponential backoff from 100ms: each gap at least as long as the one before.
	for i := 2; i < len(ensures); i++ {
		if ensures[i].Sub(ensures[i-1]) < ensures[i-1].Sub(ensures[i-2])-20*time.Millisecond {
			t.Errorf("retry gaps shrink: %v then %v", ensures[i-1].Sub(ensures[i-2]), ensures[i].Sub(ensures[i-1]))
		}
	}
}

// TestBadInputGetsAnEventNamingTheField creates a Service the provider
// cannot serve (SCTP, which the API server accepts): the controller records
// the field, nothing is created, and the Service can still be deleted.
func TestBadInputGetsAnEventNamingTheField(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	e.start(t)

	createService(t, admin, newService(ns, "bad", class, func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "sig", Port: 3868, Protocol: v1.ProtocolSCTP})
	}))
	eventually(t, 20*time.Second, "SyncLoadBalancerFailed naming the annotation", func(ctx context.Context) (bool, string) {
		evs := events(ctx, admin, ns, "bad")
		return hasEvent(evs, "Warning SyncLoadBalancerFailed: Error syncing load balancer: spec.ports[1].protocol: protocol SCTP is not supported"), fmt.Sprint(evs)
	})
	if _, ok := lbFor(mem, ns, "bad"); ok {
		t.Error("a load balancer was created for an invalid Service")
	}
	if err := admin.CoreV1().Services(ns).Delete(t.Context(), "bad", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "invalid Service deleted", func(ctx context.Context) (bool, string) {
		_, err := getService(ctx, admin, ns, "bad")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// TestRestartMidReconcile kills the controller after the provider created
// the load balancer but before the status was written; a new controller
// converges with exactly one load balancer, and deleting the Service leaves
// none behind.
func TestRestartMidReconcile(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, cfg, mem := e.admin, e.ns, e.class, e.cfg, e.mem
	dying := &dieAfterEnsure{Provider: mem, created: make(chan struct{})}
	first := startController(t, cfg, dying, class)

	createService(t, admin, newService(ns, "web", class))
	select {
	case <-dying.created:
	case <-time.After(20 * time.Second):
		t.Fatal("the first controller never called EnsureLoadBalancer")
	}
	_ = first.stop() // killed while the provider call is in flight
	svc, err := getService(t.Context(), admin, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 || !hasFinalizer(svc) {
		t.Fatalf("after the kill: status %+v, finalizers %v; want no status and our finalizer", svc.Status.LoadBalancer, svc.Finalizers)
	}

	startController(t, cfg, mem, class)
	eventually(t, 20*time.Second, "restarted controller converges", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, admin, ns, "web")
		if err != nil {
			return false, err.Error()
		}
		return len(svc.Status.LoadBalancer.Ingress) == 1, fmt.Sprintf("status %+v", svc.Status.LoadBalancer)
	})
	if n := countFor(mem, ns, "web"); n != 1 {
		t.Errorf("load balancers for the Service = %d, want 1", n)
	}
	if err := admin.CoreV1().Services(ns).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "nothing leaked", func(ctx context.Context) (bool, string) {
		_, err := getService(ctx, admin, ns, "web")
		return apierrors.IsNotFound(err) && countFor(mem, ns, "web") == 0, fmt.Sprint(err)
	})
}

// dieAfterEnsure creates the load balancer and then hangs until the
// controller is killed, like a process that dies before writing the status.
type dieAfterEnsure struct {
	*memprovider.Provider
	created chan struct{}
	once    sync.Once
}

func (d *dieAfterEnsure) EnsureLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if _, err := d.Provider.EnsureLoadBalancer(ctx, cluster, svc, nodes); err != nil {
		return nil, err
	}
	d.once.Do(func() { close(d.created) })
	<-ctx.Done()
	return nil, ctx.Err()
}

func countFor(mem *memprovider.Provider, ns, name string) int {
	n := 0
	for _, lb := range mem.LoadBalancers() {
		if lb.Service.Namespace == ns && lb.Service.Name == name {
			n++
		}
	}
	return n
}

// TestControllerIdentityIsLeastPrivilege checks that the ServiceAccount the
// manifests give the controller cannot delete Services or read Secrets
// (the other tests prove it can do its job).
func TestControllerIdentityIsLeastPrivilege(t *testing.T) {
	c := controlPlane.Get(t)
	ns := clustertest.NewNamespace(t, c)
	sa := clientFor(t, installController(t, c))
	createService(t, c.AdminClient(), newService(ns, "web", uniqueClass(t)))
	for _, tc := range []struct {
		desc string
		do   func(ctx context.Context) error
	}{
		{desc: "delete a Service", do: func(ctx context.Context) error {
			return sa.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{})
		}},
		{desc: "list Secrets", do: func(ctx context.Context) error {
			_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{desc: "create a Service", do: func(ctx context.Context) error {
			_, err := sa.CoreV1().Services(ns).Create(ctx, newService(ns, "x", "y"), metav1.CreateOptions{})
			return err
		}},
		{desc: "create a Node", do: func(ctx context.Context) error {
			_, err := sa.CoreV1().Nodes().Create(ctx, newNode("intruder", "192.0.2.1", nil), metav1.CreateOptions{})
			return err
		}},
		{desc: "list Pods", do: func(ctx context.Context) error {
			_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.do(t.Context()); !apierrors.IsForbidden(err) {
				t.Errorf("err = %v, want Forbidden", err)
			}
		})
	}
	// And what it must be able to do.
	if _, err := sa.CoreV1().Services("").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("listing Services: %v", err)
	}
	if _, err := sa.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("listing Nodes: %v", err)
	}
}

// TestManifestsPassServerSideDryRun applies every kustomization under
// manifests/ to the real API server with server-side dry-run: schema,
// defaulting and admission all accept them.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	c := controlPlane.Get(t)
	// The namespace every base installs into comes from manifests/controller.
	installController(t, c)
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := renderKustomization(t, dir)
			if len(objs) == 0 {
				t.Fatal("kustomization renders nothing")
			}
			// Namespaces and CRDs for real first: dry-run objects in a
			// namespace that does not exist, or of a kind not yet
			// defined, cannot be admitted.
			var first, rest []*unstructured.Unstructured
			for _, o := range objs {
				if k := o.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
					first = append(first, o)
				} else {
					rest = append(rest, o)
				}
			}
			if err := applyObjects(t, c.AdminConfig(), first, false); err != nil {
				t.Fatal(err)
			}
			if err := applyObjects(t, c.AdminConfig(), rest, true); err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind()+"/"+o.GetName())
			}
			slices.Sort(kinds)
			t.Logf("accepted: %v", kinds)
		})
	}
}
