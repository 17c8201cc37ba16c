package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/test/fixtures"
)

func readyOf(t *testing.T, svc *v1.Service) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(svc.Status.Conditions, ConditionLoadBalancerReady)
}

func TestReadyConditionTellsProvisionedFromFailedFromProvisioning(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		svc         *v1.Service
		fault       func(p *memory.Provider)
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
		wantWrites  []string
	}{
		{
			desc: "provisioned: in the same status write as the address", svc: newService("web"),
			wantStatus: metav1.ConditionTrue, wantReason: ReasonEnsured,
			wantWrites: []string{"patch services", "patch services/status"},
		},
		{
			desc: "invalid Service names the field", svc: newService("web", fixtures.WithSourceRanges("10.0.0.0/8", "nope")),
			wantStatus: metav1.ConditionFalse, wantReason: ReasonInvalidService, wantMessage: `spec.loadBalancerSourceRanges[1]: "nope" is not a CIDR`,
			wantWrites: []string{"patch services/status"},
		},
		{
			desc: "provider refuses the Service", svc: newService("web", fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(81, 30081)), fixtures.WithProtocol(1, "SCTP")),
			wantStatus: metav1.ConditionFalse, wantReason: ReasonProviderRefused, wantMessage: "spec.ports[1].protocol: protocol SCTP is not supported",
			wantWrites: []string{"patch services", "patch services/status"},
		},
		{
			desc: "provider asks to be called later", svc: newService("web"),
			fault:      func(p *memory.Provider) { p.RetryAfter(memory.OpEnsure, time.Minute, 1) },
			wantStatus: metav1.ConditionUnknown, wantReason: ReasonProvisioning,
			wantWrites: []string{"patch services", "patch services/status"},
		},
		{
			desc: "provider fails", svc: newService("web"),
			fault:      func(p *memory.Provider) { p.FailWith(memory.OpEnsure, errors.New("cloud on fire"), 1) },
			wantStatus: metav1.ConditionFalse, wantReason: ReasonProviderError, wantMessage: "cloud on fire",
			wantWrites: []string{"patch services", "patch services/status"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.svc.Generation = 3
			f := newFixture(t, []runtime.Object{tc.svc, newNode("n1")})
			if tc.fault != nil {
				tc.fault(f.provider)
			}
			_ = f.sync("web")
			c := readyOf(t, f.service("web"))
			if c == nil {
				t.Fatalf("no %s condition", ConditionLoadBalancerReady)
			}
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMessage) || c.ObservedGeneration != 3 {
				t.Errorf("condition %+v, want %s/%s with %q at generation 3", c, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
			if w := f.writes(); strings.Join(w, ",") != strings.Join(tc.wantWrites, ",") {
				t.Errorf("writes = %v, want %v", w, tc.wantWrites)
			}
		})
	}
}

// The watch event of our own condition write does not sync the Service
// again: a failure is retried on its own schedule, not at once.
func TestOwnConditionWriteDoesNotRequeue(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", fixtures.WithSourceRanges("nope")), newNode("n1")})
	_ = f.sync("web")
	drainQueue(f)
	f.ctrl.onService(f.service("web")) // the watch delivering our write
	if l := f.ctrl.queue.Len(); l != 0 {
		t.Errorf("queue length after our own status write came back = %d, want 0", l)
	}
	// A second sync of the unchanged Service writes nothing.
	f.client.ClearActions()
	_ = f.sync("web")
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes when the failure condition is already there: %v", w)
	}
}

func TestConditionFollowsTheFixAndGoesWithTheAddress(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", fixtures.WithSourceRanges("nope")), newNode("n1")})
	_ = f.sync("web")
	failedAt := readyOf(t, f.service("web")).LastTransitionTime
	fixed := f.service("web")
	fixed.Spec.LoadBalancerSourceRanges = nil
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, fixed, metaUpdate()); err != nil {
		t.Fatal(err)
	}
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	c := readyOf(t, f.service("web"))
	if c.Status != metav1.ConditionTrue || c.LastTransitionTime.Before(&failedAt) {
		t.Errorf("after the fix: %+v, want True with a new transition time", c)
	}
	// No longer a LoadBalancer: the address and the condition go together.
	svc := f.service("web")
	svc.Spec.Type = v1.ServiceTypeClusterIP
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	got := f.service("web")
	if readyOf(t, got) != nil || len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("after the type change: conditions %v, ingress %v; want both gone", got.Status.Conditions, got.Status.LoadBalancer.Ingress)
	}
	if n := strings.Count(strings.Join(f.writes(), ","), "services/status"); n != 1 {
		t.Errorf("status writes for the cleanup = %d (%v), want 1", n, f.writes())
	}
}
