package providertest

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func checkEnsureIdempotent(t *testing.T, h *Harness) {
	s := newSession(t, h, nil)
	nodes := s.firstNodes()
	first := s.mustEnsure(h.Service(), nodes)
	inv := s.inventory()
	for _, tc := range []struct {
		desc  string
		nodes []*v1.Node
	}{
		{desc: "the same Service and nodes", nodes: copyNodes(nodes)},
		{desc: "the same Service and nodes in another order", nodes: reversed(copyNodes(nodes))},
	} {
		n := s.writeCount()
		what := "a second EnsureLoadBalancer with " + tc.desc
		again, err := s.ensure(h.Service(), tc.nodes)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		s.sameStatus(first, again, what)
		s.noWritesSince(n, what)
		s.sameInventory(inv, s.inventory(), what)
	}
}

func checkDeleteNeverCreated(t *testing.T, h *Harness) {
	s := newSession(t, h, nil)
	inv := s.inventory()
	n := s.writeCount()
	const what = "EnsureLoadBalancerDeleted of a never-created load balancer"
	if err := s.delete(h.Service()); err != nil {
		t.Errorf("%s: %v, want nil", what, err)
	}
	s.noWritesSince(n, what)
	s.sameInventory(inv, s.inventory(), what)
	if _, exists, err := s.get(h.Service()); err != nil || exists {
		t.Errorf("GetLoadBalancer after it: exists=%v, err=%v; want false, nil", exists, err)
	}
}

func checkInputError(t *testing.T, h *Harness) {
	for _, tc := range append(append([]Invalid(nil), suiteInvalid...), h.Invalid...) {
		t.Run(tc.Desc, func(t *testing.T) {
			for _, existing := range []bool{false, true} {
				name := "NewService"
				if existing {
					name = "LoadBalancerExists"
				}
				t.Run(name, func(t *testing.T) {
					s := newSession(t, h, nil)
					if existing {
						s.mustEnsure(h.Service(), s.firstNodes())
					}
					inv := s.inventory()
					n := s.writeCount()
					bad := h.Service()
					tc.Tweak(bad)
					const what = "EnsureLoadBalancer of the invalid Service"
					_, err := s.ensure(bad, s.firstNodes())
					ie, ok := providers.IsInputError(err)
					switch {
					case !ok:
						t.Errorf("%s returned %v, want a providers.InputError", what, err)
					case tc.Field != "" && !strings.HasPrefix(ie.Field, tc.Field):
						t.Errorf("%s returned an InputError on field %q, want one on %s...", what, ie.Field, tc.Field)
					case ie.Field == "" || ie.Reason == "":
						t.Errorf("%s returned InputError %+v; want it to name the field and the reason", what, ie)
					}
					s.noWritesSince(n, what)
					s.sameInventory(inv, s.inventory(), what)
				})
			}
		})
	}
}

func checkErrorsPassThrough(t *testing.T, h *Harness) {
	have := map[Want]bool{}
	for _, tr := range h.Triggers {
		have[tr.Want] = true
		ops := tr.Ops
		if len(ops) == 0 {
			ops = []Op{OpEnsure}
		}
		t.Run(tr.Desc, func(t *testing.T) {
			for _, op := range ops {
				t.Run(string(op), func(t *testing.T) {
					s := newSession(t, h, tr.New)
					svc := h.Service()
					if tr.Tweak != nil {
						tr.Tweak(svc)
					}
					n := s.writeCount()
					err := s.call(op, svc, s.firstNodes())
					switch tr.Want {
					case WantRetry:
						var re *api.RetryError
						if !errors.As(err, &re) {
							t.Errorf("%s returned %v, want an error wrapping an *api.RetryError", op, err)
						} else if re.RetryAfter() <= 0 {
							t.Errorf("%s returned a RetryError with delay %v, want a positive one", op, re.RetryAfter())
						}
					case WantImplementedElsewhere:
						if !errors.Is(err, cloudprovider.ImplementedElsewhere) {
							t.Errorf("%s returned %v, want cloudprovider.ImplementedElsewhere", op, err)
						}
						s.noWritesSince(n, op.String()+" of a Service implemented elsewhere")
					default:
						t.Fatalf("providertest: trigger %q has no Want", tr.Desc)
					}
				})
			}
		})
	}
	for _, w := range []Want{WantRetry, WantImplementedElsewhere} {
		if !have[w] {
			t.Logf("the harness has no trigger for %s: not checked", w)
		}
	}
}

func checkArgumentsReadOnly(t *testing.T, h *Harness) {
	s := newSession(t, h, nil)
	// Unsorted source ranges and nodes in reverse order tempt a provider to
	// sort its arguments in place.
	svc := h.Service()
	fixtures.WithSourceRanges("203.0.113.0/24", "198.51.100.0/24")(svc)
	first, other := reversed(s.firstNodes()), reversed(s.otherNodes())
	// Every call through the session checks its arguments; the errors of
	// the calls are other checks' business.
	_, _, _ = s.get(svc)
	_, _ = s.ensure(svc, first)
	_, _ = s.ensure(svc, first)
	_, _, _ = s.get(svc)
	_ = s.update(svc, other)
	_, _ = s.ensure(svc, other)
	for _, tc := range suiteInvalid {
		bad := svc.DeepCopy()
		tc.Tweak(bad)
		_, _ = s.ensure(bad, other)
	}
	_ = s.delete(svc)
	_ = s.delete(svc)
	_, _, _ = s.get(svc)
}

func checkDeleteLeavesNothing(t *testing.T, h *Harness) {
	s := newSession(t, h, nil)
	before := s.inventory()
	n := s.writeCount()
	s.mustEnsure(h.Service(), s.firstNodes())
	// A harness whose Inventory or Writes does not see the provider would
	// make every other check pass; catch that here.
	if diffInventory(before, s.inventory()) == "" {
		t.Errorf("the fake's inventory did not change on EnsureLoadBalancer: Cloud.Inventory does not see what the provider creates")
	}
	if s.writeCount() == n {
		t.Errorf("the fake saw no write during the first EnsureLoadBalancer: Cloud.Writes does not see the provider's writes")
	}
	s.mustDelete(h.Service())
	s.sameInventory(before, s.inventory(), "EnsureLoadBalancer then EnsureLoadBalancerDeleted")
	if _, exists, err := s.get(h.Service()); err != nil || exists {
		t.Errorf("GetLoadBalancer after EnsureLoadBalancerDeleted: exists=%v, err=%v; want false, nil", exists, err)
	}
}

func checkUpdateNodes(t *testing.T, h *Harness) {
	s := newSession(t, h, nil)
	st := s.mustEnsure(h.Service(), s.firstNodes())
	got, exists, err := s.get(h.Service())
	if err != nil || !exists {
		t.Fatalf("GetLoadBalancer after EnsureLoadBalancer: exists=%v, err=%v; want true, nil", exists, err)
	}
	s.sameStatus(st, got, "GetLoadBalancer after EnsureLoadBalancer")
	if err := s.update(h.Service(), s.otherNodes()); err != nil {
		t.Fatalf("UpdateLoadBalancer from nodes %v to %v: %v", names(s.firstNodes()), names(s.otherNodes()), err)
	}
	after := s.mustEnsure(h.Service(), s.otherNodes())
	inv := s.inventory()
	n := s.writeCount()
	const what = "a second EnsureLoadBalancer after UpdateLoadBalancer"
	again := s.mustEnsure(h.Service(), s.otherNodes())
	s.sameStatus(after, again, what)
	s.noWritesSince(n, what)
	s.sameInventory(inv, s.inventory(), what)
	got, exists, err = s.get(h.Service())
	if err != nil || !exists {
		t.Fatalf("GetLoadBalancer after UpdateLoadBalancer and EnsureLoadBalancer: exists=%v, err=%v; want true, nil", exists, err)
	}
	s.sameStatus(again, got, "GetLoadBalancer after UpdateLoadBalancer and EnsureLoadBalancer")
}

func copyNodes(nodes []*v1.Node) []*v1.Node {
	out := make([]*v1.Node, len(nodes))
	for i, n := range nodes {
		out[i] = n.DeepCopy()
	}
	return out
}

func (o Op) String() string { return string(o) }
