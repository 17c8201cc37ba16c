package gce

import (
	"net/http"
	"slices"
	"testing"

	fakegce "github.com/extlb/extlb/fake/gce"
)

// lostResponsePaths are the mutations of a first ensure (three nodes, one
// instance per target-pool call, so addInstance runs too), by the path
// substring that selects them.
var lostResponsePaths = []string{"/addresses", "global/firewalls", "global/httpHealthChecks", "/targetPools", "/addInstance", "/forwardingRules"}

func batchOfOne(o *Options) { o.InstanceBatchSize = 1 }

// TestLostCreateResponsesLeaveOneOfEach loses the answer of each mutation
// after GCE applied it (the connection is reset, or a 502 comes back),
// through the real clients and the provider's HTTP retry layer: the retry
// carries the same requestId, so it gets the original operation instead of
// a second resource or a 409; the Ensure converges and the next one is idle.
func TestLostCreateResponsesLeaveOneOfEach(t *testing.T) {
	svc := newService("web", withPorts("80/TCP", "53/UDP"))
	baseline := newTestEnv(t, batchOfOne)
	baseline.ensure(svc, baseline.nodes(3))
	want := baseline.srv.Keys()

	for _, path := range lostResponsePaths {
		for _, lost := range []struct {
			desc  string
			fault fakegce.Fault
		}{
			{"connection reset", fakegce.Fault{Drop: true}},
			{"502", fakegce.Fault{Status: http.StatusBadGateway}},
		} {
			t.Run(path+" answered by "+lost.desc, func(t *testing.T) {
				e := newTestEnv(t, batchOfOne)
				nodes := e.nodes(3)
				f := lost.fault
				f.Method, f.PathContains, f.AfterApply, f.Times = http.MethodPost, path, true, 1
				e.srv.InjectFault(f)
				e.ensure(svc, nodes)
				lostCalls := 0
				for _, c := range e.srv.Calls() {
					if c.Status == http.StatusConflict || c.Status == http.StatusBadRequest {
						t.Errorf("a retried mutation was refused: %+v", c)
					}
					if c.Dropped || c.Status == http.StatusBadGateway {
						lostCalls++
					}
				}
				if lostCalls != 1 {
					t.Fatalf("%d answers were lost, want the 1 injected", lostCalls)
				}
				if got := e.srv.Keys(); !slices.Equal(got, want) {
					t.Errorf("resources = %v, want (as without the fault) %v", got, want)
				}
				if pool, _ := e.srv.TargetPool(testRegion, namesOf(svc).base); len(pool.GetInstances()) != 3 {
					t.Errorf("target pool instances = %v, want the 3 nodes once each", pool.GetInstances())
				}
				e.srv.ResetCalls()
				e.ensure(svc, nodes)
				if w := e.writes(); len(w) != 0 {
					t.Errorf("the Ensure after the lost answer wrote %v, want nothing", w)
				}
				e.remove(svc)
				if keys := e.srv.Keys(); len(keys) != 0 {
					t.Errorf("left after delete: %v", keys)
				}
			})
		}
	}
}

// TestLostCreateResponsesUntilTheRetriesGiveUp loses every answer of a
// mutation (each retry meets the operation of the first attempt, by its
// requestId): the Ensure fails once the HTTP retries are spent, and the
// next Ensure, with the answers back, finds what was made and completes the
// load balancer without a second one.
func TestLostCreateResponsesUntilTheRetriesGiveUp(t *testing.T) {
	svc := newService("web", withPorts("80/TCP", "53/UDP"))
	baseline := newTestEnv(t, batchOfOne)
	baseline.ensure(svc, baseline.nodes(3))
	want := baseline.srv.Keys()

	for _, path := range lostResponsePaths {
		t.Run(path, func(t *testing.T) {
			e := newTestEnv(t, batchOfOne)
			nodes := e.nodes(3)
			e.srv.InjectFault(fakegce.Fault{Method: http.MethodPost, PathContains: path, AfterApply: true, Drop: true})
			if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes); err == nil {
				t.Fatalf("Ensure succeeded although every answer to %s was lost", path)
			} else {
				t.Logf("Ensure with every answer to %s lost: %v", path, err)
			}
			e.srv.ClearFaults()
			e.ensure(svc, nodes)
			for _, c := range e.srv.Calls() {
				if c.Status == http.StatusConflict {
					t.Errorf("an insert hit 409: %+v", c)
				}
			}
			if got := e.srv.Keys(); !slices.Equal(got, want) {
				t.Errorf("resources = %v, want %v", got, want)
			}
			if pool, _ := e.srv.TargetPool(testRegion, namesOf(svc).base); len(pool.GetInstances()) != 3 {
				t.Errorf("target pool instances = %v, want the 3 nodes once each", pool.GetInstances())
			}
			e.srv.ResetCalls()
			e.ensure(svc, nodes)
			if w := e.writes(); len(w) != 0 {
				t.Errorf("the next Ensure wrote %v, want nothing", w)
			}
		})
	}
}
