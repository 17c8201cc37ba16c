package gce

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"k8s.io/utils/ptr"
)

// seedLoadBalancer creates, through the clients, an address "ip", a target
// pool "tp" with instances vm-1 and vm-2 and forwarding rule "fr" from the
// address to the pool, in region.
func seedLoadBalancer(t *testing.T, srv *Server, c *clients, region string) {
	t.Helper()
	ctx := context.Background()
	srv.AddInstance(region+"-b", "vm-1", "node")
	srv.AddInstance(region+"-b", "vm-2", "node")
	wait := func(op *compute.Operation, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := op.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wait(c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("ip")}}))
	wait(c.pools.Insert(ctx, &computepb.InsertTargetPoolRequest{Project: project, Region: region, TargetPoolResource: &computepb.TargetPool{
		Name: ptr.To("tp"), Instances: []string{"zones/" + region + "-b/instances/vm-1", "zones/" + region + "-b/instances/vm-2"},
	}}))
	a, _ := srv.Address(region, "ip")
	wait(c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
		Name: ptr.To("fr"), IPAddress: a.Address, PortRange: ptr.To("80"), Target: ptr.To("regions/" + region + "/targetPools/tp"),
	}}))
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func TestAggregatedListsHaveEveryScope(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()
	seedLoadBalancer(t, srv, c, region) // europe-west1, a default region
	if op, err := c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: "us-east4", AddressResource: &computepb.Address{Name: ptr.To("other")}}); err != nil {
		t.Fatal(err)
	} else if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// The raw shape.
	body := getJSON(t, c.url+"/compute/v1/projects/"+project+"/aggregated/forwardingRules")
	items, _ := body["items"].(map[string]any)
	if body["kind"] != "compute#forwardingRuleAggregatedList" || body["id"] != "projects/"+project+"/aggregated/forwardingRules" || items == nil {
		t.Fatalf("aggregated forwarding rules = %v", body)
	}
	var scopes []string
	for k := range items {
		scopes = append(scopes, k)
	}
	slices.Sort(scopes)
	wantScopes := []string{"global", "regions/asia-east1", "regions/europe-west1", "regions/us-central1", "regions/us-east1", "regions/us-east4", "regions/us-west1"}
	if !slices.Equal(scopes, wantScopes) {
		t.Errorf("scopes = %v, want %v", scopes, wantScopes)
	}
	empty, _ := items["regions/asia-east1"].(map[string]any)
	warning, _ := empty["warning"].(map[string]any)
	if warning["code"] != "NO_RESULTS_ON_PAGE" || !strings.Contains(warning["message"].(string), "regions/asia-east1") || empty["forwardingRules"] != nil {
		t.Errorf("empty scope = %v, want a NO_RESULTS_ON_PAGE warning", empty)
	}

	// Through the client.
	it := c.rules.AggregatedList(ctx, &computepb.AggregatedListForwardingRulesRequest{Project: project})
	rules := map[string][]string{}
	warned := 0
	for {
		pair, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range pair.Value.GetForwardingRules() {
			rules[pair.Key] = append(rules[pair.Key], fr.GetName())
		}
		if pair.Value.GetWarning().GetCode() == "NO_RESULTS_ON_PAGE" {
			warned++
		}
	}
	if len(rules) != 1 || !slices.Equal(rules["regions/"+region], []string{"fr"}) || warned != len(wantScopes)-1 {
		t.Errorf("forwarding rules by scope = %v with %d warnings, want fr in regions/%s and %d warnings", rules, warned, region, len(wantScopes)-1)
	}

	addrs := map[string][]string{}
	ait := c.addresses.AggregatedList(ctx, &computepb.AggregatedListAddressesRequest{Project: project})
	for {
		pair, err := ait.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range pair.Value.GetAddresses() {
			addrs[pair.Key] = append(addrs[pair.Key], a.GetName()+"/"+a.GetStatus())
		}
	}
	if len(addrs) != 2 || !slices.Equal(addrs["regions/"+region], []string{"ip/IN_USE"}) || !slices.Equal(addrs["regions/us-east4"], []string{"other/RESERVED"}) {
		t.Errorf("addresses by scope = %v", addrs)
	}

	pools := map[string]int{}
	pit := c.pools.AggregatedList(ctx, &computepb.AggregatedListTargetPoolsRequest{Project: project})
	scopesSeen := 0
	for {
		pair, err := pit.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		scopesSeen++
		if pair.Key == "global" {
			t.Errorf("target pools have a global scope")
		}
		pools[pair.Key] = len(pair.Value.GetTargetPools())
	}
	if pools["regions/"+region] != 1 || scopesSeen != len(wantScopes)-1 {
		t.Errorf("target pools by scope = %v", pools)
	}

	// A filter applies within each scope.
	body = getJSON(t, c.url+"/compute/v1/projects/"+project+"/aggregated/addresses?filter=name+%3D+%22other%22")
	items = body["items"].(map[string]any)
	if _, hit := items["regions/us-east4"].(map[string]any)["addresses"]; !hit {
		t.Errorf("filtered: %v", items)
	}
	if _, warn := items["regions/"+region].(map[string]any)["warning"]; !warn {
		t.Errorf("filtered out scope not warned: %v", items["regions/"+region])
	}

	srv.SetRegions("us-central1")
	body = getJSON(t, c.url+"/compute/v1/projects/"+project+"/aggregated/targetPools")
	if n := len(body["items"].(map[string]any)); n != 3 { // us-central1 and the two that hold resources
		t.Errorf("after SetRegions: %d scopes %v", n, body["items"])
	}
	for _, c := range srv.Calls() {
		if strings.HasPrefix(c.Path, "aggregated/") && c.Write {
			t.Errorf("aggregated list logged as a write: %+v", c)
		}
	}
}

func TestTargetPoolGetHealth(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()
	srv.AddInstance(region+"-b", "vm-1", "node")
	srv.AddInstance(region+"-b", "vm-2", "node")
	srv.AddInstance(region+"-b", "vm-3", "node")
	if op, err := c.pools.Insert(ctx, &computepb.InsertTargetPoolRequest{Project: project, Region: region, TargetPoolResource: &computepb.TargetPool{
		Name: ptr.To("tp"), Instances: []string{"zones/" + region + "-b/instances/vm-1", "zones/" + region + "-b/instances/vm-2"},
	}}); err != nil {
		t.Fatal(err)
	} else if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	health := func(vm string) (*computepb.TargetPoolInstanceHealth, error) {
		return c.pools.GetHealth(ctx, &computepb.GetHealthTargetPoolRequest{Project: project, Region: region, TargetPool: "tp",
			InstanceReferenceResource: &computepb.InstanceReference{Instance: ptr.To(linkPrefix + "projects/" + project + "/zones/" + region + "-b/instances/" + vm)}})
	}
	if h, err := health("vm-1"); err != nil || len(h.GetHealthStatus()) != 0 || h.GetKind() != "compute#targetPoolInstanceHealth" {
		t.Errorf("health without a forwarding rule = %v, %v; want no statuses", h, err)
	}
	if op, err := c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, AddressResource: &computepb.Address{Name: ptr.To("ip")}}); err != nil {
		t.Fatal(err)
	} else if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := srv.Address(region, "ip")
	for _, proto := range []string{"TCP", "UDP"} {
		if op, err := c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
			Name: ptr.To("fr-" + strings.ToLower(proto)), IPAddress: a.Address, IPProtocol: ptr.To(proto), PortRange: ptr.To("53"), Target: ptr.To("regions/" + region + "/targetPools/tp"),
		}}); err != nil {
			t.Fatal(err)
		} else if err := op.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h, err := health("vm-1")
	if err != nil || len(h.GetHealthStatus()) != 1 {
		t.Fatalf("health = %v, %v; want one status (both rules share the address)", h, err)
	}
	if st := h.GetHealthStatus()[0]; st.GetHealthState() != "HEALTHY" || st.GetIpAddress() != a.GetAddress() ||
		st.GetInstance() != linkPrefix+"projects/"+project+"/zones/"+region+"-b/instances/vm-1" {
		t.Errorf("status = %v", st)
	}
	// Without a health check a pool counts every running instance healthy.
	srv.SetInstanceHealthy(region+"-b", "vm-2", false)
	if h, err := health("vm-2"); err != nil || h.GetHealthStatus()[0].GetHealthState() != "HEALTHY" {
		t.Errorf("vm-2 in a pool without health check = %v, %v; want HEALTHY", h, err)
	}
	_, err = health("vm-3")
	if g := apiErr(t, err); g.Code != 400 || !strings.Contains(g.Message, "not a member") {
		t.Errorf("health of a non-member = %+v", g)
	}
	_, err = health("vm-nope")
	if g := apiErr(t, err); g.Code != 404 {
		t.Errorf("health of an unknown instance = %+v", g)
	}
	_, err = c.pools.GetHealth(ctx, &computepb.GetHealthTargetPoolRequest{Project: project, Region: region, TargetPool: "nope",
		InstanceReferenceResource: &computepb.InstanceReference{Instance: ptr.To("zones/" + region + "-b/instances/vm-1")}})
	if g := apiErr(t, err); g.Code != 404 {
		t.Errorf("health in an unknown pool = %+v", g)
	}

	// With a health check, an instance marked unhealthy fails it.
	srv.ResetCalls()
	hc, err := c.hcs.Insert(project, &legacy.HttpHealthCheck{Name: "hc", Port: 10256}).Do()
	if err != nil {
		t.Fatal(err)
	}
	if op, err := c.pools.Insert(ctx, &computepb.InsertTargetPoolRequest{Project: project, Region: region, TargetPoolResource: &computepb.TargetPool{
		Name: ptr.To("checked"), HealthChecks: []string{hc.TargetLink},
		Instances: []string{"zones/" + region + "-b/instances/vm-1", "zones/" + region + "-b/instances/vm-2"},
	}}); err != nil {
		t.Fatal(err)
	} else if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if op, err := c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
		Name: ptr.To("fr-checked"), PortRange: ptr.To("80"), Target: ptr.To("regions/" + region + "/targetPools/checked"),
	}}); err != nil {
		t.Fatal(err)
	} else if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	checked := func(vm string) string {
		t.Helper()
		h, err := c.pools.GetHealth(ctx, &computepb.GetHealthTargetPoolRequest{Project: project, Region: region, TargetPool: "checked",
			InstanceReferenceResource: &computepb.InstanceReference{Instance: ptr.To("zones/" + region + "-b/instances/" + vm)}})
		if err != nil || len(h.GetHealthStatus()) != 1 {
			t.Fatalf("health of %s = %v, %v", vm, h, err)
		}
		return h.GetHealthStatus()[0].GetHealthState()
	}
	if got := checked("vm-2"); got != "UNHEALTHY" {
		t.Errorf("vm-2 marked unhealthy is %s in a checked pool", got)
	}
	if got := checked("vm-1"); got != "HEALTHY" {
		t.Errorf("vm-1 is %s", got)
	}
	srv.SetInstanceHealthy(region+"-b", "vm-2", true)
	if got := checked("vm-2"); got != "HEALTHY" {
		t.Errorf("vm-2 recovered is %s", got)
	}
	for _, call := range srv.Calls() {
		if strings.HasSuffix(call.Path, "/getHealth") && call.Write {
			t.Errorf("getHealth logged as a write: %+v", call)
		}
	}
}

func TestEmptyListsLeaveOutItems(t *testing.T) {
	srv, c := start(t)
	list := c.url + "/compute/v1/projects/" + project + "/regions/" + region + "/addresses"
	body := getJSON(t, list)
	if _, has := body["items"]; has || body["kind"] != "compute#addressList" {
		t.Errorf("empty list = %v, want no items field", body)
	}
	it := c.addresses.List(context.Background(), &computepb.ListAddressesRequest{Project: project, Region: region})
	if _, err := it.Next(); !errors.Is(err, iterator.Done) {
		t.Errorf("client list of nothing: %v", err)
	}
	seedLoadBalancer(t, srv, c, region)
	if items, _ := getJSON(t, list)["items"].([]any); len(items) != 1 {
		t.Errorf("list with one address has items %v", items)
	}
	if _, has := getJSON(t, list+"?filter=name+%3D+%22nope%22")["items"]; has {
		t.Errorf("a list filtered to nothing has items")
	}
}

func TestForwardingRuleTakesAnAddressURL(t *testing.T) {
	srv, c := start(t)
	ctx := context.Background()
	seedLoadBalancer(t, srv, c, region)
	a, _ := srv.Address(region, "ip")
	insert := func(name, ipAddress, ports string) (*compute.Operation, error) {
		return c.rules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: project, Region: region, ForwardingRuleResource: &computepb.ForwardingRule{
			Name: ptr.To(name), IPAddress: ptr.To(ipAddress), PortRange: ptr.To(ports), Target: ptr.To("regions/" + region + "/targetPools/tp"),
		}})
	}
	for name, ref := range map[string]string{
		"by-url":     linkPrefix + "projects/" + project + "/regions/" + region + "/addresses/ip",
		"by-partial": "projects/" + project + "/regions/" + region + "/addresses/ip",
		"by-path":    "regions/" + region + "/addresses/ip",
	} {
		port := map[string]string{"by-url": "443", "by-partial": "8080", "by-path": "8443"}[name]
		op, err := insert(name, ref, port)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := op.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fr, _ := srv.ForwardingRule(region, name)
		if fr.GetIPAddress() != a.GetAddress() {
			t.Errorf("rule %s IPAddress = %q, want the address's IP %s", name, fr.GetIPAddress(), a.GetAddress())
		}
	}
	if got, _ := srv.Address(region, "ip"); len(got.GetUsers()) != 4 {
		t.Errorf("address users = %v, want the 4 rules", got.GetUsers())
	}
	// The resolved IP conflicts like the literal one.
	_, err := insert("clash", linkPrefix+"projects/"+project+"/regions/"+region+"/addresses/ip", "80")
	if g := apiErr(t, err); g.Code != 400 || !strings.Contains(g.Message, "conflicts") {
		t.Errorf("rule on a taken port of the address = %+v", g)
	}
	_, err = insert("missing", linkPrefix+"projects/"+project+"/regions/"+region+"/addresses/nope", "9000")
	if g := apiErr(t, err); g.Code != 404 {
		t.Errorf("URL of a missing address = %+v", g)
	}
	_, err = insert("elsewhere", linkPrefix+"projects/"+project+"/regions/us-east1/addresses/ip", "9000")
	if g := apiErr(t, err); g.Code != 400 {
		t.Errorf("URL of an address in another region = %+v", g)
	}
	_, err = insert("foreign", linkPrefix+"projects/other-project/regions/"+region+"/addresses/ip", "9000")
	if g := apiErr(t, err); g.Code != 400 {
		t.Errorf("URL of another project's address = %+v", g)
	}
}

func TestDropFaultLosesTheAnswer(t *testing.T) {
	ctx := context.Background()
	insert := func(c *clients, requestID string) (*compute.Operation, error) {
		return c.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: project, Region: region, RequestId: ptr.To(requestID),
			AddressResource: &computepb.Address{Name: ptr.To("a1")}})
	}
	t.Run("after apply", func(t *testing.T) {
		srv, c := start(t)
		srv.InjectFault(Fault{Method: http.MethodPost, PathContains: "/addresses", AfterApply: true, Drop: true, Times: 1})
		_, err := insert(c, "5d0c7f6e-1111-4222-8333-944455556666")
		var gerr *googleapi.Error
		if err == nil || errors.As(err, &gerr) || !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "EOF") {
			t.Errorf("dropped insert = %v, want a connection error", err)
		}
		if _, ok := srv.Address(region, "a1"); !ok {
			t.Fatalf("the dropped insert was not applied")
		}
		// The client's retry, with the same requestId, is not a second insert.
		op, err := insert(c, "5d0c7f6e-1111-4222-8333-944455556666")
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if err := op.Wait(ctx); err != nil {
			t.Fatalf("retried operation: %v", err)
		}
		calls := srv.Calls()
		if len(calls) < 2 || !calls[0].Dropped || calls[0].Status != 0 || !calls[0].Write || calls[1].Dropped || calls[1].Status != http.StatusOK {
			t.Errorf("calls = %+v", calls)
		}
		if keys := srv.Keys(); len(keys) != 1 {
			t.Errorf("keys = %v, want the one address", keys)
		}
	})
	t.Run("before apply", func(t *testing.T) {
		srv, c := start(t)
		srv.InjectFault(Fault{Method: http.MethodPost, PathContains: "/addresses", Drop: true, Times: 1})
		if _, err := insert(c, "6d0c7f6e-1111-4222-8333-944455556666"); err == nil {
			t.Error("a dropped insert succeeded")
		}
		if keys := srv.Keys(); len(keys) != 0 {
			t.Errorf("a request dropped before apply created %v", keys)
		}
	})
}
