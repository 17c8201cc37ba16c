package aws

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	fakeaws "github.com/extlb/extlb/fake/aws"
	"github.com/extlb/extlb/providers/providertest"
	"github.com/extlb/extlb/test/fixtures"
)

// TestContract runs the provider contract suite against the fake AWS.
func TestContract(t *testing.T) {
	cloud := func(t *testing.T, faults ...fakeaws.Fault) *providertest.Cloud {
		e := newEnv(t)
		for _, f := range faults {
			e.fake.InjectFault(f)
		}
		return &providertest.Cloud{LB: e.p, Nodes: threeNodes(), Inventory: e.inventory, Writes: e.writeLog}
	}
	providertest.Run(t, providertest.Harness{
		ClusterName: testCluster,
		New:         func(t *testing.T) *providertest.Cloud { return cloud(t) },
		Service:     func() *v1.Service { return newService("contract", withPort(80, 30080, v1.ProtocolTCP)) },
		Invalid: []providertest.Invalid{
			{Desc: "SCTP port", Tweak: fixtures.WithProtocol(0, v1.ProtocolSCTP), Field: "spec.ports[0].protocol"},
			{Desc: "internal annotation not a boolean", Tweak: fixtures.WithAnnotation(AnnotationInternal, "maybe"), Field: annotationField(AnnotationInternal)},
			{Desc: "spec.loadBalancerIP set", Tweak: fixtures.WithLoadBalancerIP("203.0.113.7"), Field: "spec.loadBalancerIP"},
		},
		Triggers: []providertest.Trigger{
			{
				Desc: "every call throttled", Want: providertest.WantRetry,
				New: func(t *testing.T) *providertest.Cloud { return cloud(t, fakeaws.Fault{Code: "Throttling"}) },
				Ops: []providertest.Op{providertest.OpEnsure, providertest.OpUpdate, providertest.OpDelete},
			},
			{
				Desc: "annotation type external", Want: providertest.WantImplementedElsewhere,
				Tweak: fixtures.WithAnnotation(AnnotationType, "external"),
				Ops:   []providertest.Op{providertest.OpEnsure, providertest.OpUpdate},
			},
		},
	})
}

// inventory lists what the provider can create or change in the fake: load
// balancers, target groups, listeners and security-group rules. Subnets,
// instances and security groups are only seeded; the fake has no call that
// changes them.
func (e *testEnv) inventory(*testing.T) map[string]string {
	inv := map[string]string{}
	for _, lb := range e.fake.LoadBalancers() {
		// provisioning -> active is the cloud's progress, not a change
		// the provider made.
		lb.State = ""
		inv["loadbalancer/"+lb.ARN] = fmt.Sprintf("%+v", lb)
	}
	for _, tg := range e.fake.TargetGroups() {
		inv["targetgroup/"+tg.ARN] = fmt.Sprintf("%+v", tg)
	}
	for _, l := range e.fake.Listeners() {
		inv["listener/"+l.ARN] = fmt.Sprintf("%+v", l)
	}
	for _, r := range e.fake.SecurityGroupRules() {
		inv["rule/"+r.ID] = fmt.Sprintf("%+v", r)
	}
	return inv
}

// writeLog lists the write calls the fake answered, failed ones included.
func (e *testEnv) writeLog(*testing.T) []string {
	var out []string
	for _, c := range e.fake.Calls() {
		if c.Write {
			s := c.IAMAction()
			if c.ErrorCode != "" {
				s += " (" + c.ErrorCode + ")"
			}
			if c.Dropped {
				s += " (connection dropped)"
			}
			out = append(out, s)
		}
	}
	return out
}
