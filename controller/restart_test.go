package controller

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
)

// afterARun returns the Services as a first controller left them (ensured,
// with finalizer, address and ready condition) and its provider, whose
// load balancers outlive the controller as a cloud's do.
func afterARun(t *testing.T, names ...string) ([]runtime.Object, *memory.Provider) {
	t.Helper()
	objs := []runtime.Object{newNode("n1")}
	for _, n := range names {
		objs = append(objs, newService(n))
	}
	f := newFixture(t, objs)
	out := []runtime.Object{newNode("n1")}
	for _, n := range names {
		if err := f.sync(n); err != nil {
			t.Fatal(err)
		}
		out = append(out, f.service(n))
	}
	return out, f.provider
}

// TestRestartPacesUnchangedServices: a restarted controller re-checks the
// Services the last run left ensured at RestartResyncQPS, after the new and
// changed ones, and such a re-check that finds nothing to do writes
// nothing, not even an Event.
func TestRestartPacesUnchangedServices(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	objs, cloud := afterARun(t, names...)
	changed := objs[1].(*v1.Service).DeepCopy() // "a", edited while no controller ran
	changed.Annotations["example.com/edited"] = "yes"
	objs[1] = changed
	objs = append(objs, newService("new"))

	f := newFixture(t, objs, withConfig(func(c *Config) { c.RestartResyncQPS = 10 }),
		withProvider(func(*memory.Provider) providers.LoadBalancer { return cloud }))
	f.provider = cloud
	for _, o := range objs {
		if svc, ok := o.(*v1.Service); ok {
			f.ctrl.onService(svc) // the informer's initial list, before the caches synced
		}
	}
	if l := f.ctrl.queue.Len(); l != 2 {
		t.Errorf("queued at once = %d, want 2 (the edited and the new Service)", l)
	}
	keys, delays := f.ctrl.pacer.release(f.ctrl.cfg.RestartResyncQPS)
	if len(keys) != 4 {
		t.Fatalf("held for pacing = %v, want the 4 unchanged Services", keys)
	}
	for i, d := range delays {
		if want := time.Duration(i) * 100 * time.Millisecond; d != want {
			t.Errorf("delay of the %d-th re-check = %s, want %s (10 per second)", i, d, want)
		}
	}
	if f.ctrl.pacer.hold("default/x") {
		t.Error("the pacer still holds Services after its release")
	}
	f.client.ClearActions()
	f.provider.ResetCalls()
	f.events()
	for _, k := range keys {
		if err := f.ctrl.sync(f.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.provider.CountCalls(memory.OpEnsure); n != 4 {
		t.Errorf("ensure calls for the re-checks = %d, want 4 (the cloud is checked)", n)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("API writes for re-checks that found nothing changed: %v", w)
	}
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events for re-checks that found nothing changed: %v", ev)
	}
}

func TestLeftEnsured(t *testing.T) {
	objs, _ := afterARun(t, "web")
	base := objs[1].(*v1.Service)
	for _, tc := range []struct {
		desc   string
		change func(*v1.Service)
		want   bool
	}{
		{desc: "as the last run left it", change: func(*v1.Service) {}, want: true},
		{desc: "annotation edited", change: func(s *v1.Service) { s.Annotations["x"] = "y" }},
		{desc: "spec edited (new generation)", change: func(s *v1.Service) { s.Generation++ }},
		{desc: "port changed", change: func(s *v1.Service) { s.Spec.Ports[0].Port = 81 }},
		{desc: "no address", change: func(s *v1.Service) { s.Status.LoadBalancer.Ingress = nil }},
		{desc: "condition failed", change: func(s *v1.Service) { s.Status.Conditions[0].Status = metav1.ConditionFalse }},
		{desc: "not marked ours", change: func(s *v1.Service) { s.Finalizers = nil }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newNode("n1")})
			svc := base.DeepCopy()
			tc.change(svc)
			if got := f.ctrl.leftEnsured(svc); got != tc.want {
				t.Errorf("leftEnsured = %v, want %v (conditions %s)", got, tc.want, fmt.Sprint(svc.Status.Conditions))
			}
		})
	}
}
