package gce

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"k8s.io/cloud-provider/api"

	fakegce "github.com/extlb/extlb/fake/gce"
)

func TestTransientFaultsConverge(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		fault fakegce.Fault
	}{
		{desc: "503 on forwarding-rule insert", fault: fakegce.Fault{Method: "POST", PathContains: "/forwardingRules", Status: http.StatusServiceUnavailable, Times: 2}},
		{desc: "429 on target-pool insert", fault: fakegce.Fault{Method: "POST", PathContains: "/targetPools", Status: http.StatusTooManyRequests, Times: 3}},
		{desc: "500 on address get", fault: fakegce.Fault{Method: "GET", PathContains: "/addresses/", Status: http.StatusInternalServerError, Times: 1}},
		{desc: "502 on operation wait", fault: fakegce.Fault{Method: "POST", PathContains: "/wait", Status: http.StatusBadGateway, Times: 2}},
		{desc: "503 on health-check insert (legacy client)", fault: fakegce.Fault{Method: "POST", PathContains: "httpHealthChecks", Status: http.StatusServiceUnavailable, Times: 2}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newTestEnv(t)
			e.srv.InjectFault(tc.fault)
			svc := newService("web")
			e.ensure(svc, e.nodes(2))
			faulted := 0
			for _, c := range e.srv.Calls() {
				if c.Status >= 429 {
					faulted++
				}
			}
			if faulted != tc.fault.Times {
				t.Errorf("%d calls were answered with an error, want the %d injected (retried below the client)", faulted, tc.fault.Times)
			}
			e.srv.ResetCalls()
			e.ensure(svc, e.nodes(2))
			if w := e.writes(); len(w) != 0 {
				t.Errorf("ensure after the faults is not idle (a retried insert acted twice?): %v", w)
			}
			e.remove(svc)
			if keys := e.srv.Keys(); len(keys) != 0 {
				t.Errorf("left after delete: %v", keys)
			}
		})
	}
}

func TestPersistentFaultIsRetriedOnceLayerDeep(t *testing.T) {
	e := newTestEnv(t) // HTTPRetries: 3
	e.srv.InjectFault(fakegce.Fault{Method: "GET", PathContains: "global/firewalls/", Status: http.StatusServiceUnavailable})
	svc := newService("web")
	_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, e.nodes(1))
	if err == nil {
		t.Fatal("EnsureLoadBalancer succeeded although every firewall get fails")
	}
	if !strings.Contains(err.Error(), "firewall "+namesOf(svc).firewall) || !strings.Contains(err.Error(), "503") {
		t.Errorf("error %q does not name the firewall and the status", err)
	}
	gets := 0
	for _, c := range e.srv.Calls() {
		if c.Method == "GET" && strings.Contains(c.Path, "global/firewalls/") {
			gets++
		}
	}
	// retryablehttp tries 1+3 times; the client's own retry on 503 is off,
	// so the two layers do not multiply.
	if gets != 4 {
		t.Errorf("firewall get was sent %d times, want 4 (1 + 3 retries)", gets)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none: the state is read completely before anything is created", w)
	}
	e.srv.ClearFaults()
	e.remove(svc)
	if keys := e.srv.Keys(); len(keys) != 0 {
		t.Errorf("left after delete: %v", keys)
	}
}

func TestQuotaFailsClearlyThenConverges(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		set    func(e *testEnv)
		naming string
	}{
		{desc: "forwarding-rule quota in the operation", set: func(e *testEnv) { e.srv.SetQuota("forwardingRules", 0) }, naming: "forwarding rule"},
		{desc: "403 quotaExceeded on address insert", set: func(e *testEnv) {
			e.srv.InjectFault(fakegce.Fault{Method: "POST", PathContains: "/addresses", Status: http.StatusForbidden, Reason: "quotaExceeded"})
		}, naming: "address"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newTestEnv(t)
			tc.set(e)
			svc := newService("web")
			nodes := e.nodes(2)
			_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes)
			if err == nil {
				t.Fatal("EnsureLoadBalancer succeeded over quota")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "quota") || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %q does not say quota and %s", err, tc.naming)
			}
			var retry *api.RetryError
			if !errors.As(err, &retry) || retry.RetryAfter() != quotaRetryAfter {
				t.Errorf("quota error does not ask the controller to retry after %v: %v", quotaRetryAfter, err)
			}
			e.srv.SetQuota("forwardingRules", 100)
			e.srv.ClearFaults()
			e.ensure(svc, nodes)
			e.remove(svc)
			if keys := e.srv.Keys(); len(keys) != 0 {
				t.Errorf("left after delete: %v", keys)
			}
		})
	}
}

func TestOperationErrorNamesTheResource(t *testing.T) {
	e := newTestEnv(t)
	e.srv.InjectFault(fakegce.Fault{Method: "POST", PathContains: "/targetPools", Status: http.StatusInternalServerError, Reason: "internalError", InOperation: true, Times: 1})
	svc := newService("web")
	_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, e.nodes(1))
	var opErr *OperationError
	if !errors.As(err, &opErr) || opErr.Resource != "target pool "+namesOf(svc).base || opErr.HTTPStatus != 500 {
		t.Fatalf("err = %v, want an OperationError naming target pool %s", err, namesOf(svc).base)
	}
	if _, ok := e.srv.ForwardingRule(testRegion, namesOf(svc).rule("TCP")); ok {
		t.Errorf("forwarding rule created although its target pool failed")
	}
	e.ensure(svc, e.nodes(1))
	e.remove(svc)
	if keys := e.srv.Keys(); len(keys) != 0 {
		t.Errorf("left after delete: %v", keys)
	}
}

func TestLostResponseIsRetriedIdempotently(t *testing.T) {
	e := newTestEnv(t)
	// GCE creates the forwarding rule, target pool and firewall, but the
	// answers are lost; the retried POSTs carry the same requestId.
	for _, path := range []string{"/forwardingRules", "/targetPools", "global/firewalls"} {
		e.srv.InjectFault(fakegce.Fault{Method: "POST", PathContains: path, Status: http.StatusBadGateway, AfterApply: true, Times: 1})
	}
	svc := newService("web")
	e.ensure(svc, e.nodes(2))
	for _, c := range e.srv.Calls() {
		if c.Status == http.StatusConflict {
			t.Errorf("a retried insert hit 409: %+v", c)
		}
	}
	e.srv.ResetCalls()
	e.ensure(svc, e.nodes(2))
	if w := e.writes(); len(w) != 0 {
		t.Errorf("not idle after lost responses: %v", w)
	}
	e.remove(svc)
	if keys := e.srv.Keys(); len(keys) != 0 {
		t.Errorf("left after delete: %v", keys)
	}
}
