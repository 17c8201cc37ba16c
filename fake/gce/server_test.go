package gce

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"k8s.io/utils/ptr"
)

const (
	project = "fake-project"
	region  = "europe-west1"
)

type clients struct {
	url       string
	addresses *compute.AddressesClient
	pools     *compute.TargetPoolsClient
	rules     *compute.ForwardingRulesClient
	regionOps *compute.RegionOperationsClient
	hcs       *legacy.HttpHealthChecksService
}

// start serves a fake and returns real clients pointed at it.
func start(t *testing.T) (*Server, *clients) {
	t.Helper()
	srv := New(project)
	hs := srv.Start()
	t.Cleanup(hs.Close)
	ctx := context.Background()
	opts := []option.ClientOption{option.WithEndpoint(hs.URL), option.WithoutAuthentication()}
	c := &clients{url: hs.URL}
	var err error
	must := func(e error) {
		if e != nil {
			t.Fatal(e)
		}
	}
	c.addresses, err = compute.NewAddressesRESTClient(ctx, opts...)
	must(err)
	c.pools, err = compute.NewTargetPoolsRESTClient(ctx, opts...)
	must(err)
	c.rules, err = compute.NewForwardingRulesRESTClient(ctx, opts...)
	must(err)
	c.regionOps, err = compute.NewRegionOperationsRESTClient(ctx, opts...)
	must(err)
	svc, err := legacy.NewService(ctx, option.WithEndpoint(hs.URL+"/compute/v1/"), option.WithoutAuthentication())
	must(err)
	c.hcs = legacy.NewHttpHealthChecksService(svc)
	t.Cleanup(func() { c.addresses.Close(); c.pools.Close(); c.rules.Close(); c.regionOps.Close() })
	return srv, c
}

func apiErr(t *testing.T, err error) *googleapi.Error {
	t.Helper()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("err = %v (%T), want a googleapi.Error", err, err)
	}
	return gerr
}

func TestOperationsRunBeforeDone(t *testing.T) {
	srv, c := start(t)
	srv.SetOperationPolls(3)
	ctx := context.Background()
	op, err := c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("a1")}})
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Fatalf("insert answered with a DONE operation, want RUNNING")
	}
	var statuses []string
	for range 3 {
		got, err := c.regionOps.Get(ctx, &computepb.GetRegionOperationRequest{Project: project, Region: region, Operation: op.Name()})
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, got.GetStatus().String())
	}
	if strings.Join(statuses, ",") != "RUNNING,RUNNING,DONE" {
		t.Errorf("operation statuses = %v, want RUNNING,RUNNING,DONE", statuses)
	}
	a, err := c.addresses.Get(ctx, &computepb.GetAddressRequest{Project: project, Region: region, Address: "a1"})
	if err != nil || !strings.HasPrefix(a.GetAddress(), "203.0.113.") || a.GetStatus() != "RESERVED" ||
		a.GetSelfLink() != linkPrefix+"projects/"+project+"/regions/"+region+"/addresses/a1" {
		t.Errorf("address = %v, %v", a, err)
	}

	// wait completes a running operation at once.
	op, err = c.addresses.Delete(ctx, &computepb.DeleteAddressRequest{Project: project, Region: region, Address: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.regionOps.Wait(ctx, &computepb.WaitRegionOperationRequest{Project: project, Region: region, Operation: op.Name()})
	if err != nil || got.GetStatus() != computepb.Operation_DONE {
		t.Errorf("wait = %v, %v", got, err)
	}
}

func TestErrorShapes(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()

	// The raw body, as Google sends it.
	resp, err := http.Get(c.url + "/compute/v1/projects/" + project + "/regions/" + region + "/addresses/missing")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct {
			Code    int
			Message string
			Errors  []struct{ Reason, Message, Domain string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || body.Error.Code != 404 || len(body.Error.Errors) != 1 || body.Error.Errors[0].Reason != "notFound" ||
		!strings.Contains(body.Error.Message, "projects/"+project+"/regions/"+region+"/addresses/missing") {
		t.Errorf("404 body = %+v", body)
	}

	_, err = c.addresses.Get(ctx, &computepb.GetAddressRequest{Project: project, Region: region, Address: "missing"})
	if g := apiErr(t, err); g.Code != 404 || g.Errors[0].Reason != "notFound" {
		t.Errorf("client error = %+v", g)
	}

	insert := func(requestID *string) (*compute.Operation, error) {
		return c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, RequestId: requestID,
			AddressResource: &computepb.Address{Name: ptr.To("a1")}})
	}
	first, err := insert(ptr.To("2f1e6b4c-1111-4222-8333-944455556666"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := insert(ptr.To("2f1e6b4c-1111-4222-8333-944455556666"))
	if err != nil || again.Name() != first.Name() {
		t.Errorf("repeating a requestId gave %v, %v; want the first operation %s", again, err, first.Name())
	}
	_, err = insert(nil)
	if g := apiErr(t, err); g.Code != 409 || g.Errors[0].Reason != "alreadyExists" {
		t.Errorf("duplicate insert error = %+v", g)
	}
	_, err = c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("Bad_Name")}})
	if g := apiErr(t, err); g.Code != 400 {
		t.Errorf("invalid name error = %+v", g)
	}
	if keys := srv.Keys(); len(keys) != 1 {
		t.Errorf("keys = %v, want the one address", keys)
	}
}

func TestReferencesAndInUse(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()
	srv.AddInstance(region+"-b", "vm-1", "node")
	wait := func(op *compute.Operation, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := op.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hcOp, err := c.hcs.Insert(project, &legacy.HttpHealthCheck{Name: "hc", Port: 10256, RequestPath: "/healthz"}).Do()
	if err != nil || hcOp.Status != "RUNNING" {
		t.Fatalf("legacy insert = %+v, %v", hcOp, err)
	}
	hc, err := c.hcs.Get(project, "hc").Do()
	if err != nil || hc.Port != 10256 || hc.RequestPath != "/healthz" || hc.CheckIntervalSec != 5 {
		t.Fatalf("legacy get = %+v, %v", hc, err)
	}
	wait(c.pools.Insert(ctx, &computepb.InsertTargetPoolRequest{Project: project, Region: region, TargetPoolResource: &computepb.TargetPool{
		Name: ptr.To("tp"), HealthChecks: []string{hc.SelfLink},
		Instances: []string{"projects/" + project + "/zones/" + region + "-b/instances/vm-1"},
	}}))
	wait(c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("ip"), Address: ptr.To("198.51.100.5")}}))
	wait(c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
		Name: ptr.To("fr"), IPAddress: ptr.To("198.51.100.5"), PortRange: ptr.To("80"), Target: ptr.To(linkPrefix + "projects/" + project + "/regions/" + region + "/targetPools/tp"),
	}}))

	_, err = c.hcs.Delete(project, "hc").Do()
	if g := apiErr(t, err); g.Code != 400 || g.Errors[0].Reason != "resourceInUseByAnotherResource" {
		t.Errorf("deleting a used health check: %+v", g)
	}
	_, err = c.pools.Delete(ctx, &computepb.DeleteTargetPoolRequest{Project: project, Region: region, TargetPool: "tp"})
	if g := apiErr(t, err); g.Code != 400 {
		t.Errorf("deleting a used target pool: %+v", g)
	}
	a, _ := srv.Address(region, "ip")
	if a.GetStatus() != "IN_USE" || len(a.GetUsers()) != 1 {
		t.Errorf("address = %v, want IN_USE by the rule", a)
	}
	fr, _ := srv.ForwardingRule(region, "fr")
	if fr.GetPortRange() != "80-80" || fr.GetIPProtocol() != "TCP" {
		t.Errorf("forwarding rule = %v", fr)
	}
	_, err = c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
		Name: ptr.To("fr2"), IPAddress: ptr.To("198.51.100.77"), Target: ptr.To("regions/" + region + "/targetPools/tp"),
	}})
	if g := apiErr(t, err); g.Code != 400 {
		t.Errorf("rule on an unreserved IP: %+v", g)
	}
	_, err = c.pools.AddInstance(ctx, &computepb.AddInstanceTargetPoolRequest{Project: project, Region: region, TargetPool: "tp",
		TargetPoolsAddInstanceRequestResource: &computepb.TargetPoolsAddInstanceRequest{Instances: []*computepb.InstanceReference{{Instance: ptr.To("zones/" + region + "-b/instances/nope")}}}})
	if g := apiErr(t, err); g.Code != 404 {
		t.Errorf("adding an unknown instance: %+v", g)
	}

	wait(c.rules.Delete(ctx, &computepb.DeleteForwardingRuleRequest{Project: project, Region: region, ForwardingRule: "fr"}))
	wait(c.pools.Delete(ctx, &computepb.DeleteTargetPoolRequest{Project: project, Region: region, TargetPool: "tp"}))
	if _, err := c.hcs.Delete(project, "hc").Do(); err != nil {
		t.Errorf("deleting the unused health check: %v", err)
	}
}

func TestFaultsQuotaAndCallLog(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()
	srv.InjectFault(Fault{Method: "GET", PathContains: "/addresses", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 1})
	srv.InjectFault(Fault{Method: "GET", PathContains: "/targetPools/slow", Latency: 50 * time.Millisecond, Status: http.StatusNotFound})

	_, err := c.addresses.Get(ctx, &computepb.GetAddressRequest{Project: project, Region: region, Address: "x"})
	if g := apiErr(t, err); g.Code != 429 || g.Errors[0].Reason != "rateLimitExceeded" || g.Header.Get("Retry-After") != "1" {
		t.Errorf("first get: %+v", g)
	}
	_, err = c.addresses.Get(ctx, &computepb.GetAddressRequest{Project: project, Region: region, Address: "x"})
	if g := apiErr(t, err); g.Code != 404 {
		t.Errorf("second get should reach the store: %+v", g)
	}
	begin := time.Now()
	_, err = c.pools.Get(ctx, &computepb.GetTargetPoolRequest{Project: project, Region: region, TargetPool: "slow"})
	if apiErr(t, err).Code != 404 || time.Since(begin) < 50*time.Millisecond {
		t.Errorf("latency fault not applied (%v, %v)", err, time.Since(begin))
	}

	srv.SetQuota("addresses", 0)
	op, err := c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("q")}})
	if err != nil {
		t.Fatal(err)
	}
	err = op.Wait(ctx)
	if g := apiErr(t, err); g.Code != 403 || !strings.Contains(g.Message, "QUOTA_EXCEEDED") {
		t.Errorf("quota operation error: %+v", g)
	}
	if len(srv.Keys()) != 0 {
		t.Errorf("a resource over quota was created: %v", srv.Keys())
	}

	calls := srv.Calls()
	want := []Call{
		{Method: "GET", Path: "regions/" + region + "/addresses/x", Status: 429},
		{Method: "GET", Path: "regions/" + region + "/addresses/x", Status: 404},
		{Method: "GET", Path: "regions/" + region + "/targetPools/slow", Status: 404},
		{Method: "POST", Path: "regions/" + region + "/addresses", Write: true, Status: 200},
	}
	if len(calls) < len(want) {
		t.Fatalf("calls = %+v", calls)
	}
	for i, w := range want {
		if calls[i] != w {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], w)
		}
	}
	if last := calls[len(calls)-1]; last.Write || !strings.Contains(last.Path, "/operations/") {
		t.Errorf("operation polls should be logged as reads: %+v", last)
	}
}
