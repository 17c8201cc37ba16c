package controller

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// hookProvider runs a function inside EnsureLoadBalancer, before the
// in-memory provider answers: a change that happens while a cloud call is
// in flight. nilStatus makes it answer (nil, nil).
type hookProvider struct {
	*memory.Provider
	onEnsure  func()
	nilStatus bool
}

func (h *hookProvider) EnsureLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if h.onEnsure != nil {
		h.onEnsure()
	}
	st, err := h.Provider.EnsureLoadBalancer(ctx, cluster, svc, nodes)
	if h.nilStatus {
		return nil, nil
	}
	return st, err
}

func withHook(h *hookProvider) fixtureOption {
	return withProvider(func(m *memory.Provider) providers.LoadBalancer { h.Provider = m; return h })
}

func drainQueue(f *fixture) {
	for f.ctrl.queue.Len() > 0 {
		k, _ := f.ctrl.queue.Get()
		f.ctrl.queue.Done(k)
	}
}

// A node added while the first ensure (after a restart or a hand-over) is
// in flight reaches the load balancer: the fan-out cannot queue a Service
// that is not in the applied store yet, so ensure checks again at its end.
func TestNodeChangeDuringFirstEnsureIsNotLost(t *testing.T) {
	h := &hookProvider{}
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")}, withHook(h))
	h.onEnsure = func() { f.addToCache(newNode("n2")); h.onEnsure = nil }
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if l := f.ctrl.queue.Len(); l != 1 {
		t.Fatalf("queue length after an ensure that missed a node change = %d, want 1", l)
	}
	drainQueue(f)
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	lb, _ := f.provider.LoadBalancerFor("default/web")
	if !slices.Equal(lb.Nodes, []string{"n1", "n2"}) {
		t.Errorf("backends = %v, want [n1 n2]", lb.Nodes)
	}
}

// Deleted and re-created under the same name, with both seen in one sync:
// the old UID's load balancer is deleted, and a new Service of another
// implementation is left alone (its status is not ours to write).
func TestRecreatedServiceUnderTheSameName(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		recreat *v1.Service
		wantLB  bool
	}{
		{desc: "re-created for another implementation", recreat: newService("web", fixtures.WithUID("uid-web-2"), fixtures.WithClass("example.com/other"), withIngress("203.0.113.9"))},
		{desc: "re-created for us", recreat: newService("web", fixtures.WithUID("uid-web-2")), wantLB: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
			if err := f.sync("web"); err != nil {
				t.Fatal(err)
			}
			if err := f.client.Tracker().Delete(servicesGVR, "default", "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := f.client.Tracker().Add(tc.recreat); err != nil {
				t.Fatal(err)
			}
			f.client.ClearActions()
			if err := f.sync("web"); err != nil {
				t.Fatal(err)
			}
			lbs := f.provider.LoadBalancers()
			for _, lb := range lbs {
				if lb.Service.UID == "uid-web" {
					t.Errorf("the old Service's load balancer %s leaked", lb.Name)
				}
			}
			if got := len(lbs) == 1; got != tc.wantLB {
				t.Errorf("load balancers %v, want one for the new Service: %v", lbs, tc.wantLB)
			}
			if !tc.wantLB {
				if w := f.writes(); len(w) != 0 {
					t.Errorf("writes to another implementation's Service: %v", w)
				}
				if got := f.service("web").Status.LoadBalancer.Ingress; len(got) != 1 || got[0].IP != "203.0.113.9" {
					t.Errorf("the other implementation's address was changed: %v", got)
				}
			}
		})
	}
}

// A Service deleted (its finalizer removed by hand) while its first ensure
// runs: the status write finds it gone, and the load balancer just created
// is deleted instead of leaking.
func TestServiceDeletedDuringFirstEnsureLeaksNothing(t *testing.T) {
	h := &hookProvider{}
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")}, withHook(h))
	h.onEnsure = func() {
		if err := f.client.Tracker().Delete(servicesGVR, "default", "web", metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	}
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if lbs := f.provider.LoadBalancers(); len(lbs) != 0 {
		t.Errorf("load balancers left behind: %v", lbs)
	}
	if f.ctrl.applied.has("default/web") {
		t.Error("the controller still tracks the deleted Service")
	}
}

// After an edit that fails validation, node changes still reach the live
// load balancer, with the last Service version that worked (as upstream
// updates hosts with its cached Service).
func TestBadEditDoesNotFreezeBackends(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	bad := f.service("web")
	bad.Spec.Ports = append(bad.Spec.Ports, bad.Spec.Ports[0])
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, bad, metaUpdate()); err != nil {
		t.Fatal(err)
	}
	if err := f.sync("web"); err == nil {
		t.Fatal("sync of the bad edit: no error")
	}
	f.addToCache(newNode("n2"))
	if err := f.sync("web"); err == nil {
		t.Fatal("sync of the bad edit after the node change: no error")
	}
	lb, _ := f.provider.LoadBalancerFor("default/web")
	if !slices.Equal(lb.Nodes, []string{"n1", "n2"}) {
		t.Errorf("backends after a node change under a bad edit = %v, want [n1 n2]", lb.Nodes)
	}
	if len(lb.Service.Spec.Ports) != 1 {
		t.Errorf("the load balancer took the bad edit's ports: %v", lb.Service.Spec.Ports)
	}
}

// An API server that normalises the status (drops ipMode, as an older one
// or one with the LoadBalancerIPMode gate off does) must not make every
// sync write it again.
func TestNormalisedStatusIsNotWrittenAgain(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	f.prependReactor("patch", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if pa.GetSubresource() != "status" {
			return false, nil, nil
		}
		var patch struct {
			Status struct {
				LoadBalancer v1.LoadBalancerStatus `json:"loadBalancer"`
				Conditions   []metav1.Condition    `json:"conditions"`
			} `json:"status"`
		}
		if err := json.Unmarshal(pa.GetPatch(), &patch); err != nil {
			return true, nil, err
		}
		obj, err := f.client.Tracker().Get(servicesGVR, "default", pa.GetName())
		if err != nil {
			return true, nil, err
		}
		svc := obj.(*v1.Service).DeepCopy()
		svc.Status.LoadBalancer = patch.Status.LoadBalancer
		svc.Status.Conditions = patch.Status.Conditions
		for i := range svc.Status.LoadBalancer.Ingress {
			svc.Status.LoadBalancer.Ingress[i].IPMode = nil
		}
		svc.ResourceVersion += "1"
		if err := f.client.Tracker().Update(servicesGVR, svc, "default"); err != nil {
			return true, nil, err
		}
		return true, svc, nil
	})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	f.provider.ResetCalls()
	for range 3 {
		if err := f.sync("web"); err != nil {
			t.Fatal(err)
		}
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes after the status was stored normalised: %v", w)
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("provider calls after the status was stored normalised: %d", n)
	}
}

// (nil, nil) from EnsureLoadBalancer is an error, as upstream treats it:
// it must not clear the address.
func TestNilStatusIsAnError(t *testing.T) {
	h := &hookProvider{nilStatus: true}
	f := newFixture(t, []runtime.Object{newService("web", withFinalizer(), withIngress("198.18.0.1")), newNode("n1")}, withHook(h))
	if err := f.sync("web"); err == nil {
		t.Fatal("sync: no error for a provider that returned no status")
	}
	if got := f.service("web").Status.LoadBalancer.Ingress; len(got) != 1 {
		t.Errorf("ingress after (nil, nil) = %v, want the address kept", got)
	}
}

func TestNoEligibleNodesIsReported(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "true"))})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if ev := f.events(); !hasEvent(ev, "Warning UnAvailableLoadBalancer") {
		t.Errorf("events = %v, want UnAvailableLoadBalancer", ev)
	}
}

// The fixture's fake API server gives every write a new resourceVersion
// and refuses a stale update, as the real one does.
func TestFixtureBumpsResourceVersions(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	before := f.service("web")
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	after := f.service("web")
	if after.ResourceVersion == before.ResourceVersion {
		t.Errorf("resourceVersion %s unchanged by the controller's writes", after.ResourceVersion)
	}
	before.Annotations = map[string]string{"stale": "yes"}
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, before, metaUpdate()); err == nil {
		t.Error("an update with a stale resourceVersion succeeded")
	}
}
