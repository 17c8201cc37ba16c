package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/extlb/extlb/controller/manager"
	memprovider "github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/test/loopback"
)

// TestLeaderElection runs two controllers against one API server: only the
// leader acts; when it stops — gracefully (it releases the Lease) or cut off
// from the API server as by a crash or a partition (it cannot renew) — the
// other takes over within the lease duration.
func TestLeaderElection(t *testing.T) {
	for _, tc := range []struct {
		desc string
		// stopLeader ends the leader's tenure and returns when it did.
		stopLeader func(t *testing.T, leader *runningController, link *severableLink)
	}{
		{desc: "graceful stop releases the lease", stopLeader: func(t *testing.T, leader *runningController, _ *severableLink) {
			if err := leader.stop(); err != nil {
				t.Logf("leader stopped: %v", err)
			}
		}},
		{desc: "leader cut off from the API server", stopLeader: func(_ *testing.T, _ *runningController, link *severableLink) {
			link.sever()
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := setUp(t, controlPlane.Get(t))
			admin, ns, class := e.admin, e.ns, e.class
			const lease = 3 * time.Second
			elect := func(id string) controllerOption {
				return func(o *manager.Options) {
					o.LeaderElection = manager.LeaderElection{
						Enabled: true, Namespace: "extlb-system", Name: "e2e-leader-" + ns, Identity: id,
						LeaseDuration: lease, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond,
					}
				}
			}
			leaderCfg := rest.CopyConfig(e.cfg)
			link := &severableLink{}
			leaderCfg.Wrap(link.wrap)
			memA, memB := memprovider.New(), memprovider.New()
			a := startController(t, leaderCfg, memA, class, elect("a"))
			// Let a win before b starts, so that the test knows the leader.
			eventually(t, 10*time.Second, "a leads", func(ctx context.Context) (bool, string) {
				l, err := admin.CoordinationV1().Leases("extlb-system").Get(ctx, "e2e-leader-"+ns, metaGet)
				if err != nil {
					return false, err.Error()
				}
				return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "a", "holder not a"
			})
			startController(t, e.cfg, memB, class, elect("b"))

			createService(t, admin, newService(ns, "first", class))
			eventually(t, 20*time.Second, "the leader serves", func(context.Context) (bool, string) {
				_, ok := lbFor(memA, ns, "first")
				return ok, "leader a has no load balancer"
			})
			// A window for the standby to act wrongly in (a negative check:
			// it cannot fail a correct standby, however slow the machine).
			time.Sleep(time.Second)
			if n := memB.CountCalls(""); n != 0 {
				t.Fatalf("the standby called its provider %d times", n)
			}

			stopped := time.Now()
			tc.stopLeader(t, a, link)
			createService(t, admin, newService(ns, "second", class))
			// The wait's deadline is the bound: a lease, then time for the
			// sync. How fast the take-over is on this machine is logged, not
			// asserted (test/bench is where timing is measured).
			eventually(t, lease+10*time.Second, "the standby takes over", func(context.Context) (bool, string) {
				_, ok := lbFor(memB, ns, "second")
				return ok, "b has not served the new Service"
			})
			took := time.Since(stopped)
			t.Logf("take-over after the leader stopped: %s (lease %s)", took.Round(10*time.Millisecond), lease)
			if _, ok := lbFor(memA, ns, "second"); ok {
				t.Error("the old leader also served the new Service")
			}
			if link.cut.Load() {
				// A leader that cannot renew must exit, so that it restarts
				// as a standby instead of acting on a stale view.
				a.errExpected.Store(true)
				if err := a.stop(); err == nil || !strings.Contains(err.Error(), "lost the leader-election lease") {
					t.Errorf("cut-off leader exited with %v, want the lost-lease error", err)
				}
			}
		})
	}
}

// severableLink cuts a client off from the API server on demand: every
// request after sever fails, as for a crashed or partitioned process.
type severableLink struct{ cut atomic.Bool }

func (l *severableLink) sever() { l.cut.Store(true) }

func (l *severableLink) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if l.cut.Load() {
			return nil, errors.New("severed: the API server is unreachable")
		}
		return rt.RoundTrip(req)
	})
}

// TestMetricsAndHealthEndpoints checks /metrics, /healthz and /readyz of a
// running controller.
func TestMetricsAndHealthEndpoints(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	addr := freeAddr(t)
	e.start(t, func(o *manager.Options) { o.MetricsAddr = addr })
	createService(t, admin, newService(ns, "web", class))
	eventually(t, 20*time.Second, "served", func(context.Context) (bool, string) {
		_, ok := lbFor(mem, ns, "web")
		return ok, "no load balancer"
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, 10*time.Second, path, func(context.Context) (bool, string) {
			code, body := httpGet(t, "http://"+addr+path)
			return code == 200, fmt.Sprintf("%d %s", code, body)
		})
	}
	want := []string{
		`extlb_reconciles_total{result="success"}`,
		`extlb_reconcile_duration_seconds_bucket{result="success"`,
		`extlb_provider_calls_total{operation="ensure",result="success"} 1`,
		`extlb_provider_call_duration_seconds_count{operation="ensure",result="success"} 1`,
		`extlb_api_writes_total{result="success",subresource="status",verb="patch"} 1`,
		`extlb_workqueue_depth{name="extlb_services"}`,
		`extlb_workqueue_adds_total{name="extlb_services"}`,
		`extlb_node_set_size`,
		`extlb_services_handled 1`,
		`go_goroutines`,
	}
	eventually(t, 10*time.Second, "metrics", func(context.Context) (bool, string) {
		_, body := httpGet(t, "http://"+addr+"/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				var ours []string
				for _, l := range strings.Split(body, "\n") {
					if strings.HasPrefix(l, "extlb_") && !strings.Contains(l, "_bucket") {
						ours = append(ours, l)
					}
				}
				return false, "missing " + w + " in:\n" + strings.Join(ours, "\n")
			}
		}
		return true, ""
	})
}

// freeAddr is a free TCP address for a server the test can only tell where
// to listen: a port of a loopback block of the test's own, where no other
// socket can take it before the server listens (see test/loopback).
func freeAddr(t *testing.T) string {
	t.Helper()
	return loopback.Reserve(t).FreePort(t, 1).String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
