package aws

import (
	"slices"
	"testing"

	"github.com/extlb/extlb/test/fixtures"
)

// With one item per page, every paginated Describe (target groups,
// listeners, instances, subnets, rules) spans several pages: the provider
// must follow NextMarker/NextToken to see everything, or it would recreate,
// re-register or leak what it missed.
func TestPaginatedAnswersAreFollowed(t *testing.T) {
	e := newEnv(t)
	e.fake.SetPageSize(1)
	svc := newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000), fixtures.WithSourceRanges("192.0.2.0/24", "198.51.100.0/24"))
	e.ensure(svc, threeNodes())
	if lb := e.fake.LoadBalancers()[0]; !slices.Equal(lb.Subnets, []string{"subnet-a", "subnet-b"}) {
		t.Errorf("subnets = %v: discovery missed a page", lb.Subnets)
	}
	wantTargets(t, e, "i-0000000000000001", "i-0000000000000002", "i-0000000000000003")
	wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30080", "443/TCP->30443")
	rules := len(e.ourRules(svc))
	if rules != 10 { // 4 protocol/ports x 2 ranges + health check port x 2 subnets
		t.Errorf("rules = %d, want 10", rules)
	}

	e.fake.ResetCalls()
	e.ensure(svc, threeNodes())
	if w := e.writes(); len(w) != 0 {
		t.Errorf("idle Ensure over paged answers wrote %v", w)
	}
	e.ensure(svc, threeNodes()[:1])
	wantTargets(t, e, "i-0000000000000001")
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatal(err)
	}
	requireNothingOfOurs(t, e, svc)
}
