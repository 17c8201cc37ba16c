package aws

import (
	"testing"
)

// TestEnsureConvergesWhileTheNLBProvisions: AWS accepts listeners, targets
// and attributes while a new NLB is still provisioning, so the provider
// does not wait for it: the first Ensure completes the load balancer and
// reports its DNS name (which resolves once the NLB is active), and the
// Ensures that see it provisioning, then active, change nothing.
func TestEnsureConvergesWhileTheNLBProvisions(t *testing.T) {
	e := newEnv(t)
	e.fake.SetProvisioningDescribes(3)
	e.fake.SetInitialHealthDescribes(2)
	svc := newService("web", withThreePorts())
	status := e.ensure(svc, threeNodes())
	lbs := e.fake.LoadBalancers()
	if len(lbs) != 1 || lbs[0].State != "provisioning" {
		t.Fatalf("load balancers = %+v, want one, provisioning", lbs)
	}
	if len(status.Ingress) != 1 || status.Ingress[0].Hostname != lbs[0].DNSName {
		t.Errorf("status = %+v, want the DNS name %s", status, lbs[0].DNSName)
	}
	if n := len(e.fake.Listeners()); n != 3 {
		t.Errorf("%d listeners on the provisioning NLB, want 3", n)
	}
	for i := range 4 {
		e.fake.ResetCalls()
		e.ensure(svc, threeNodes())
		if w := e.writes(); len(w) != 0 {
			t.Errorf("Ensure %d (load balancer %s) wrote %v", i+2, e.fake.LoadBalancers()[0].State, w)
		}
		if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, threeNodes()); err != nil {
			t.Errorf("UpdateLoadBalancer: %v", err)
		}
	}
	if st := e.fake.LoadBalancers()[0].State; st != "active" {
		t.Errorf("after 5 Ensures the load balancer is %s, want active", st)
	}
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatal(err)
	}
}
