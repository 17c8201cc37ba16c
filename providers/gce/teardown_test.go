package gce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/option"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/extlb/extlb/test/fixtures"
)

func TestDeleteLeavesNothingBehind(t *testing.T) {
	e := newTestEnv(t)
	nodes := e.nodes(3)
	cluster1 := newService("cluster-a")
	cluster2 := newService("cluster-b", withPorts("53/UDP", "80/TCP"))
	local := newService("local", fixtures.WithLocalPolicy(32000), fixtures.WithLoadBalancerIP("198.51.100.30"))
	for _, svc := range []*v1.Service{cluster1, cluster2, local} {
		e.ensure(svc, nodes)
	}
	shared := namesOf(cluster1).sharedHealthCheck

	e.remove(cluster1)
	if _, ok := e.srv.HealthCheck(shared); !ok {
		t.Fatalf("shared health check deleted while cluster-b still uses it")
	}
	e.remove(local)
	e.remove(cluster2)
	if keys := e.srv.Keys(); len(keys) != 0 {
		t.Errorf("resources left after every Service was deleted: %v", keys)
	}

	// Deleting again, or deleting a Service that never had a load
	// balancer, succeeds and writes nothing.
	e.srv.ResetCalls()
	e.remove(cluster1)
	e.remove(newService("never-created"))
	if w := e.writes(); len(w) != 0 {
		t.Errorf("deleting absent load balancers wrote %v", w)
	}
	if _, exists, err := e.p.GetLoadBalancer(e.ctx, testCluster, cluster1); exists || err != nil {
		t.Errorf("GetLoadBalancer after delete: exists=%v err=%v", exists, err)
	}
}

func TestDeleteOrder(t *testing.T) {
	e := newTestEnv(t)
	svc := newService("web", fixtures.WithLocalPolicy(32000))
	e.ensure(svc, e.nodes(1))
	e.srv.ResetCalls()
	e.remove(svc)
	n := namesOf(svc)
	want := []string{
		"DELETE regions/us-central1/forwardingRules/" + n.rule(v1.ProtocolTCP),
		"DELETE regions/us-central1/targetPools/" + n.base,
		"DELETE global/httpHealthChecks/" + n.healthCheck,
		"DELETE global/firewalls/" + n.healthCheckFirewall,
		"DELETE global/firewalls/" + n.firewall,
		"DELETE regions/us-central1/addresses/" + n.base,
	}
	got := e.writes()
	if len(got) != len(want) {
		t.Fatalf("delete writes = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("write %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// userClients are real clients against the fake, standing in for a user
// who creates resources by hand.
func userClients(t *testing.T, e *testEnv, endpoint string) (*compute.AddressesClient, *compute.FirewallsClient) {
	ctx := context.Background()
	opts := []option.ClientOption{option.WithEndpoint(endpoint), option.WithoutAuthentication()}
	a, err := compute.NewAddressesRESTClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := compute.NewFirewallsRESTClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); f.Close() })
	return a, f
}

func TestResourcesNotOursAreLeftAlone(t *testing.T) {
	e := newTestEnv(t)
	nodes := e.nodes(2)
	addrs, fws := userClients(t, e, e.endpoint())
	svc := newService("web")
	n := namesOf(svc)

	// Someone else's address with exactly our name and no ownership record.
	op, err := addrs.Insert(e.ctx, &computepb.InsertAddressRequest{Project: testProject, Region: testRegion,
		AddressResource: &computepb.Address{Name: ptr.To(n.base), Description: ptr.To("reserved by hand")}})
	if err != nil || op.Wait(e.ctx) != nil {
		t.Fatalf("inserting the foreign address: %v", err)
	}
	// And a firewall of another cluster with our firewall's name.
	op, err = fws.Insert(e.ctx, &computepb.InsertFirewallRequest{Project: testProject, FirewallResource: &computepb.Firewall{
		Name: ptr.To(n.firewall), Description: ptr.To(owner{Cluster: "other", Service: "default/web"}.description()),
		Allowed: []*computepb.Allowed{{IPProtocol: ptr.To("tcp"), Ports: []string{"22"}}}, SourceRanges: []string{"10.0.0.0/8"},
	}})
	if err != nil || op.Wait(e.ctx) != nil {
		t.Fatalf("inserting the foreign firewall: %v", err)
	}
	before := e.srv.Keys()

	e.srv.ResetCalls()
	_, err = e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes)
	if !errors.Is(err, ErrNotOurs) {
		t.Fatalf("EnsureLoadBalancer over a foreign address: err = %v, want ErrNotOurs", err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("EnsureLoadBalancer wrote %v next to a foreign resource", w)
	}

	e.remove(svc)
	if w := e.writes(); len(w) != 0 {
		t.Errorf("EnsureLoadBalancerDeleted touched foreign resources: %v", w)
	}
	if after := e.srv.Keys(); len(after) != len(before) {
		t.Errorf("resources changed: before %v, after %v", before, after)
	}
	fw, _ := e.srv.Firewall(n.firewall)
	if fw.GetSourceRanges()[0] != "10.0.0.0/8" {
		t.Errorf("foreign firewall changed: %v", fw)
	}
}

func TestUsersReservedAddressIsUsedNotOwned(t *testing.T) {
	e := newTestEnv(t)
	addrs, _ := userClients(t, e, e.endpoint())
	op, err := addrs.Insert(e.ctx, &computepb.InsertAddressRequest{Project: testProject, Region: testRegion,
		AddressResource: &computepb.Address{Name: ptr.To("my-static-ip"), Address: ptr.To("198.51.100.44")}})
	if err != nil || op.Wait(e.ctx) != nil {
		t.Fatalf("reserving the user's address: %v", err)
	}
	svc := newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIP, "198.51.100.44"))
	st := e.ensure(svc, e.nodes(1))
	if st.Ingress[0].IP != "198.51.100.44" {
		t.Fatalf("status IP = %s, want the user's 198.51.100.44", st.Ingress[0].IP)
	}
	if _, ok := e.srv.Address(testRegion, namesOf(svc).base); ok {
		t.Errorf("provider reserved an address of its own although the user's reservation exists")
	}
	e.remove(svc)
	a, ok := e.srv.Address(testRegion, "my-static-ip")
	if !ok || a.GetStatus() != "RESERVED" {
		t.Errorf("user's address after delete: ok=%v %v, want it kept and RESERVED", ok, a)
	}
	if keys := e.srv.Keys(); len(keys) != 1 {
		t.Errorf("left behind: %v, want only the user's address", keys)
	}
}

func TestConcurrentServicesShareTheNodeHealthCheckSafely(t *testing.T) {
	e := newTestEnv(t)
	nodes := e.nodes(3)
	var svcs []*v1.Service
	for i := range 6 {
		tweaks := []fixtures.ServiceTweak{}
		if i%3 == 0 {
			tweaks = append(tweaks, fixtures.WithLocalPolicy(int32(31000+i)))
		}
		svcs = append(svcs, newService(fmt.Sprintf("svc-%d", i), tweaks...))
	}
	run := func(f func(*v1.Service) error) {
		var wg sync.WaitGroup
		errs := make(chan error, len(svcs))
		for _, svc := range svcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- f(svc)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	run(func(svc *v1.Service) error {
		_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes)
		return err
	})
	for _, svc := range svcs {
		if _, exists, err := e.p.GetLoadBalancer(e.ctx, testCluster, svc); !exists || err != nil {
			t.Errorf("%s: exists=%v err=%v", svc.Name, exists, err)
		}
	}
	run(func(svc *v1.Service) error { return e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc) })
	if keys := e.srv.Keys(); len(keys) != 0 {
		t.Errorf("left after concurrent deletes: %v", keys)
	}
}
