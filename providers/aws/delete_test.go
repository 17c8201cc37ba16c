package aws

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/cloud-provider/api"

	fakeaws "github.com/extlb/extlb/fake/aws"
	"github.com/extlb/extlb/test/fixtures"
)

// requireNothingOfOurs fails when any resource of any type in the fake
// carries svc's ownership tags or our rule description.
func requireNothingOfOurs(t *testing.T, e *testEnv, svc *v1.Service) {
	t.Helper()
	o := ownerOf(testCluster, svc)
	for _, lb := range e.fake.LoadBalancers() {
		if o.owns(lb.Tags) {
			t.Errorf("load balancer %s left behind", lb.Name)
		}
	}
	for _, tg := range e.fake.TargetGroups() {
		if o.owns(tg.Tags) {
			t.Errorf("target group %s left behind", tg.Name)
		}
	}
	if l := e.fake.Listeners(); len(l) != 0 {
		t.Errorf("listeners left behind: %+v", l)
	}
	for _, r := range e.fake.SecurityGroupRules() {
		if o.owns(r.Tags) {
			t.Errorf("security group rule %s (%s %d %s) left behind", r.ID, r.Protocol, r.FromPort, r.CIDR)
		}
	}
}

func TestDeleteRemovesEverythingAndIsIdempotent(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		svc   *v1.Service
		nodes []*v1.Node
		fault *fakeaws.Fault
	}{
		{desc: "cluster policy", svc: newService("web", withThreePorts())},
		{desc: "local policy with source ranges and a node with two groups", svc: newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000), fixtures.WithSourceRanges("192.0.2.0/24")),
			nodes: append(threeNodes(), newNode("n4", "aws:///us-east-1b/i-0000000000000004"))},
		{desc: "target groups briefly in use after the load balancer is deleted", svc: newService("web", withThreePorts()),
			fault: &fakeaws.Fault{Action: "DeleteTargetGroup", Code: "ResourceInUse", Count: 3}},
		{desc: "throttled deletes", svc: newService("web", withThreePorts()),
			fault: &fakeaws.Fault{Code: "Throttling", Rate: 0.5, Count: 40}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			nodes := tc.nodes
			if nodes == nil {
				nodes = threeNodes()
			}
			e.ensure(tc.svc, nodes)
			if len(e.ourRules(tc.svc)) == 0 || len(e.fake.TargetGroups()) != 3 {
				t.Fatalf("setup did not create rules and target groups")
			}
			if tc.fault != nil {
				e.fake.InjectFault(*tc.fault)
			}
			e.fake.ResetCalls()
			if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, tc.svc); err != nil {
				t.Fatalf("EnsureLoadBalancerDeleted: %v", err)
			}
			if tc.fault != nil && e.fake.FaultHits() == 0 {
				t.Errorf("the fault never hit")
			}
			requireNothingOfOurs(t, e, tc.svc)
			if n := len(e.fake.SecurityGroupRules()); n != 0 {
				t.Errorf("%d rules remain", n)
			}

			e.fake.ClearFaults()
			e.fake.ResetCalls()
			if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, tc.svc); err != nil {
				t.Fatalf("second EnsureLoadBalancerDeleted: %v", err)
			}
			if w := e.writes(); len(w) != 0 {
				t.Errorf("second delete wrote %v", w)
			}
			if _, exists, err := e.p.GetLoadBalancer(e.ctx, testCluster, tc.svc); exists || err != nil {
				t.Errorf("GetLoadBalancer after delete = %v, %v", exists, err)
			}
		})
	}
}

func TestDeleteNeverEnsuredServiceIsDone(t *testing.T) {
	e := newEnv(t)
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, newService("ghost", withThreePorts())); err != nil {
		t.Fatalf("EnsureLoadBalancerDeleted: %v", err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestDeleteTargetGroupStuckInUseAsksForRetry(t *testing.T) {
	e := newEnv(t)
	svc := newService("web", withThreePorts())
	e.ensure(svc, threeNodes())
	e.fake.InjectFault(fakeaws.Fault{Action: "DeleteTargetGroup", Code: "ResourceInUse"})
	err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc)
	var retry *api.RetryError
	if !errors.As(err, &retry) {
		t.Fatalf("EnsureLoadBalancerDeleted = %v, want a RetryError", err)
	}
	if hits := e.fake.FaultHits(); hits != e.p.opts.InUseRetries {
		t.Errorf("DeleteTargetGroup tried %d times, want %d (bounded)", hits, e.p.opts.InUseRetries)
	}
	e.fake.ClearFaults()
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatalf("EnsureLoadBalancerDeleted after the target group came free: %v", err)
	}
	requireNothingOfOurs(t, e, svc)
}

func TestDeleteFindsTargetGroupsLeftByAnInterruptedEnsure(t *testing.T) {
	e := newEnv(t)
	svc := newService("web", withThreePorts())
	// The first CreateListener fails for good: the load balancer and the
	// target groups exist, no listener holds them.
	e.fake.InjectFault(fakeaws.Fault{Action: "CreateListener", Code: "InvalidConfigurationRequest"})
	if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes()); err == nil {
		t.Fatalf("EnsureLoadBalancer succeeded despite the fault")
	}
	e.fake.ClearFaults()
	if n := len(e.fake.TargetGroups()); n != 3 {
		t.Fatalf("target groups = %d, want 3 left over", n)
	}
	// The load balancer is gone too (say, deleted by hand): only names lead
	// to the target groups.
	for _, lb := range e.fake.LoadBalancers() {
		if _, err := e.p.elb.DeleteLoadBalancer(e.ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb.ARN)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatalf("EnsureLoadBalancerDeleted: %v", err)
	}
	requireNothingOfOurs(t, e, svc)
}
