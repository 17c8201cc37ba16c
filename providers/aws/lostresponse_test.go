package aws

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	fakeaws "github.com/extlb/extlb/fake/aws"
	"github.com/extlb/extlb/test/fixtures"
)

// resourceSummary describes what the fake holds by names, ports and
// targets (not ARNs, which differ between runs), one line a resource.
func (e *testEnv) resourceSummary() string {
	var lines []string
	tgNames := map[string]string{}
	for _, tg := range e.fake.TargetGroups() {
		tgNames[tg.ARN] = tg.Name
		var targets []string
		for _, t := range tg.Targets {
			targets = append(targets, fmt.Sprintf("%s:%d", t.ID, t.Port))
		}
		slices.Sort(targets)
		lines = append(lines, fmt.Sprintf("target group %s %s/%d targets %v attached to %d", tg.Name, tg.Protocol, tg.Port, targets, len(tg.LoadBalancerARNs)))
	}
	lbNames := map[string]string{}
	for _, lb := range e.fake.LoadBalancers() {
		lbNames[lb.ARN] = lb.Name
		lines = append(lines, fmt.Sprintf("load balancer %s %s subnets %v attributes %v tags %v", lb.Name, lb.Scheme, lb.Subnets, lb.Attributes, lb.Tags))
	}
	for _, l := range e.fake.Listeners() {
		lines = append(lines, fmt.Sprintf("listener %s %s/%d -> %s", lbNames[l.LoadBalancerARN], l.Protocol, l.Port, tgNames[l.TargetGroupARN]))
	}
	for _, r := range e.fake.SecurityGroupRules() {
		lines = append(lines, fmt.Sprintf("rule %s %s/%d-%d from %s tags %v", r.GroupID, r.Protocol, r.FromPort, r.ToPort, r.CIDR, r.Tags))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestLostCreateResponsesLeaveOneOfEach loses the answer of each create
// call after AWS applied it (the connection is reset, or a 500 comes
// back), through the real SDK and its standard retryer: the retry must meet
// the created resource and not make a second one, the Ensure must
// converge, and the next Ensure must write nothing.
func TestLostCreateResponsesLeaveOneOfEach(t *testing.T) {
	svc := func() *v1.Service {
		return newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationCrossZone, "true"))
	}
	baseline := newEnv(t)
	baseline.ensure(svc(), threeNodes())
	want := baseline.resourceSummary()

	for _, action := range []string{"CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "AuthorizeSecurityGroupIngress", "RegisterTargets", "ModifyLoadBalancerAttributes"} {
		for _, lost := range []struct {
			desc  string
			fault fakeaws.Fault
		}{
			{"connection reset", fakeaws.Fault{Drop: true}},
			{"500", fakeaws.Fault{Code: "InternalFailure"}},
		} {
			t.Run(action+" answered by "+lost.desc, func(t *testing.T) {
				e := newEnv(t)
				f := lost.fault
				f.Action, f.AfterApply, f.Count = action, true, 1
				e.fake.InjectFault(f)
				e.ensure(svc(), threeNodes())
				if hits := e.fake.FaultHits(); hits != 1 {
					t.Fatalf("the fault hit %d calls, want 1", hits)
				}
				if got := e.resourceSummary(); got != want {
					t.Errorf("after a lost %s answer the fake holds:\n%s\nwant (as without the fault):\n%s", action, got, want)
				}
				e.fake.ResetCalls()
				e.ensure(svc(), threeNodes())
				if w := e.writes(); len(w) != 0 {
					t.Errorf("the Ensure after the lost answer wrote %v, want nothing", w)
				}
				if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc()); err != nil {
					t.Fatal(err)
				}
				if left := e.resourceSummary(); left != "" {
					t.Errorf("left after delete:\n%s", left)
				}
			})
		}
	}
}

// TestLostCreateResponsesUntilTheSDKGivesUp loses every answer of a create
// call (each attempt is applied, or meets what the first one made): the
// Ensure fails once the SDK's attempts are spent, and the next Ensure, with
// the answers back, completes it without a second resource.
func TestLostCreateResponsesUntilTheSDKGivesUp(t *testing.T) {
	svc := func() *v1.Service { return newService("web", withThreePorts()) }
	baseline := newEnv(t)
	baseline.ensure(svc(), threeNodes())
	want := baseline.resourceSummary()

	for _, action := range []string{"CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "AuthorizeSecurityGroupIngress"} {
		t.Run(action, func(t *testing.T) {
			e := newEnv(t)
			e.fake.InjectFault(fakeaws.Fault{Action: action, AfterApply: true, Drop: true})
			if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc(), threeNodes()); err == nil {
				t.Fatalf("Ensure succeeded although every %s answer was lost", action)
			} else {
				t.Logf("Ensure with every %s answer lost: %v", action, err)
			}
			e.fake.ClearFaults()
			e.ensure(svc(), threeNodes())
			if got := e.resourceSummary(); got != want {
				t.Errorf("after the retried Ensure the fake holds:\n%s\nwant:\n%s", got, want)
			}
			e.fake.ResetCalls()
			e.ensure(svc(), threeNodes())
			if w := e.writes(); len(w) != 0 {
				t.Errorf("the next Ensure wrote %v, want nothing", w)
			}
		})
	}
}
