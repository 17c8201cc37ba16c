package controller

import (
	"encoding/json"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func twoPortsWithoutNodePorts() fixtures.ServiceTweak {
	return func(s *v1.Service) {
		fixtures.WithPorts(fixtures.TCP(80, 0), fixtures.TCP(443, 0))(s)
		fixtures.WithoutNodePorts()(s)
	}
}

func TestControllerAllocatesMissingNodePorts(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", twoPortsWithoutNodePorts()), newService("other", fixtures.WithPorts(fixtures.TCP(80, 30080))), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	svc := f.service("web")
	seen := map[int32]bool{}
	for i, p := range svc.Spec.Ports {
		if !f.ctrl.cfg.NodePortRange.Contains(int(p.NodePort)) {
			t.Errorf("spec.ports[%d].nodePort = %d, outside %s", i, p.NodePort, f.ctrl.cfg.NodePortRange)
		}
		if p.NodePort == 30080 {
			t.Errorf("spec.ports[%d].nodePort = 30080, which another Service holds", i)
		}
		if seen[p.NodePort] {
			t.Errorf("node port %d used twice", p.NodePort)
		}
		seen[p.NodePort] = true
	}
	lb, ok := f.provider.LoadBalancerFor("default/web")
	if !ok || lb.Service.Spec.Ports[0].NodePort != svc.Spec.Ports[0].NodePort {
		t.Errorf("provider did not get the allocated node ports")
	}
	if ev := f.events(); !hasEvent(ev, "Normal AllocatedNodePorts") {
		t.Errorf("events = %v, want AllocatedNodePorts", ev)
	}
}

func TestNodePortAllocationRetriesAfterRefusal(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		wantRepick bool
		refuse     func(svc *v1.Service) error
	}{
		{desc: "port already allocated (invalid)", wantRepick: true, refuse: func(svc *v1.Service) error {
			return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), svc.Spec.Ports[0].NodePort, "provided port is already allocated"),
			})
		}},
		{desc: "resourceVersion conflict", refuse: func(svc *v1.Service) error {
			return apierrors.NewConflict(schema.GroupResource{Resource: "services"}, svc.Name, fmt.Errorf("the object has been modified"))
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web", twoPortsWithoutNodePorts()), newNode("n1")})
			var refused int32
			attempts := 0
			f.prependReactor("patch", func(a k8stesting.Action) (bool, runtime.Object, error) {
				pa := a.(k8stesting.PatchAction)
				if pa.GetSubresource() != "" || pa.GetPatchType() != types.JSONPatchType {
					return false, nil, nil
				}
				attempts++
				if attempts > 1 {
					return false, nil, nil
				}
				var ops []struct {
					Op, Path string
					Value    json.RawMessage
				}
				if err := json.Unmarshal(pa.GetPatch(), &ops); err != nil {
					t.Fatal(err)
				}
				obj, err := f.client.Tracker().Get(servicesGVR, "default", pa.GetName()) // not f.client: reactors run under its lock
				if err != nil {
					t.Fatal(err)
				}
				svc := obj.(*v1.Service).DeepCopy()
				for _, op := range ops {
					if op.Path == "/spec/ports/0/nodePort" {
						_ = json.Unmarshal(op.Value, &refused)
						svc.Spec.Ports[0].NodePort = refused
					}
				}
				return true, nil, tc.refuse(svc)
			})
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if attempts != 2 {
				t.Errorf("node-port patch attempts = %d, want 2", attempts)
			}
			got := f.service("web").Spec.Ports
			if got[0].NodePort == 0 || got[1].NodePort == 0 {
				t.Fatalf("node ports not written: %+v", got)
			}
			if tc.wantRepick && got[0].NodePort == refused {
				t.Errorf("picked refused port %d again", refused)
			}
			if _, ok := f.provider.LoadBalancerFor("default/web"); !ok {
				t.Error("no load balancer after the retry")
			}
		})
	}
}

func TestNodePortAllocationDisabled(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", twoPortsWithoutNodePorts()), newNode("n1")},
		withConfig(func(c *Config) { c.AllocateNodePorts = false }))
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("provider calls = %d, want 0 for a Service without node ports", n)
	}
	ev := f.events()
	want := "Warning NodePortsMissing spec.ports[0].nodePort, spec.ports[1].nodePort:"
	if !hasEvent(ev, want) {
		t.Errorf("events = %v, want one starting %q", ev, want)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none", w)
	}
}

func TestProviderWithoutNodePortsNeedsNone(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", twoPortsWithoutNodePorts()), newNode("n1")},
		withCapabilities(providers.Capabilities{TargetsNodePorts: false}))
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	for i, p := range f.service("web").Spec.Ports {
		if p.NodePort != 0 {
			t.Errorf("spec.ports[%d].nodePort = %d, want none for a provider that does not target node ports", i, p.NodePort)
		}
	}
	if n := f.provider.CountCalls(memory.OpEnsure); n != 1 {
		t.Errorf("EnsureLoadBalancer calls = %d, want 1", n)
	}
}
