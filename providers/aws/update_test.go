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

func TestEnsureUpdatesOnlyWhatChanged(t *testing.T) {
	threePorts := newService("web", withThreePorts())
	fourNodes := append(threeNodes(), newNode("n4", "aws:///us-east-1b/i-0000000000000004"))
	for _, tc := range []struct {
		desc        string
		before      *v1.Service
		after       *v1.Service
		nodesBefore []*v1.Node
		nodesAfter  []*v1.Node
		wantWrites  []string
		check       func(t *testing.T, e *testEnv, svc *v1.Service)
	}{
		{
			desc:       "port added",
			before:     threePorts,
			after:      newService("web", withThreePorts(), withPort(8080, 30880, v1.ProtocolTCP)),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "CreateListener", "CreateTargetGroup", "RegisterTargets", "RegisterTargets"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30080", "443/TCP->30443", "8080/TCP->30880")
			},
		},
		{
			desc:       "port removed",
			before:     threePorts,
			after:      newService("web", withPort(80, 30080, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolUDP)),
			wantWrites: []string{"DeleteListener", "DeleteTargetGroup", "RevokeSecurityGroupIngress"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30080")
				wantRules(t, e, svc, "tcp 30053 0.0.0.0/0", "tcp 30080 0.0.0.0/0", "udp 30053 0.0.0.0/0")
				if n := len(e.fake.TargetGroups()); n != 2 {
					t.Errorf("target groups = %d, want 2", n)
				}
			},
		},
		{
			desc:       "node removed",
			before:     threePorts,
			after:      threePorts,
			nodesAfter: threeNodes()[:2],
			wantWrites: []string{"DeregisterTargets", "DeregisterTargets", "DeregisterTargets"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantTargets(t, e, "i-0000000000000001", "i-0000000000000002")
			},
		},
		{
			desc:       "node with two security groups added: its cluster-tagged group already has the rules",
			before:     threePorts,
			after:      threePorts,
			nodesAfter: fourNodes,
			wantWrites: []string{"RegisterTargets", "RegisterTargets", "RegisterTargets"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantTargets(t, e, "i-0000000000000001", "i-0000000000000002", "i-0000000000000003", "i-0000000000000004")
			},
		},
		{
			desc:   "nodes without a providerID, with another cloud's, with a stopped instance or in another VPC are skipped",
			before: threePorts,
			after:  threePorts,
			nodesAfter: append(threeNodes(), newNode("bare", ""), newNode("gce", "gce://p/z/n"),
				newNode("stopped", "aws:///us-east-1b/i-00000000000000ff"), newNode("other-vpc", "aws:///us-east-1a/i-00000000000000ee")),
			wantWrites: nil,
		},
		{
			desc:       "source ranges set",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithSourceRanges("198.51.100.0/24", "192.0.2.0/25")),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				var want []string
				for _, r := range []string{"tcp 30053", "tcp 30080", "tcp 30443"} {
					want = append(want, r+" 10.0.1.0/24", r+" 10.0.2.0/24", r+" 192.0.2.0/25", r+" 198.51.100.0/24")
				}
				want = append(want, "udp 30053 192.0.2.0/25", "udp 30053 198.51.100.0/24")
				wantRules(t, e, svc, want...)
			},
		},
		{
			desc:       "policy Cluster to Local: HTTP health checks on the health check node port",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000)),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "ModifyTargetGroup", "ModifyTargetGroup", "ModifyTargetGroup"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantHealthCheck(t, e, "HTTP", "32000", "/healthz")
				wantRules(t, e, svc, "tcp 30053 0.0.0.0/0", "tcp 30080 0.0.0.0/0", "tcp 30443 0.0.0.0/0",
					"tcp 32000 10.0.1.0/24", "tcp 32000 10.0.2.0/24", "udp 30053 0.0.0.0/0")
			},
		},
		{
			desc:       "policy Local to Cluster: TCP health checks on the traffic port",
			before:     newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000)),
			after:      threePorts,
			wantWrites: []string{"ModifyTargetGroup", "ModifyTargetGroup", "ModifyTargetGroup", "RevokeSecurityGroupIngress"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantHealthCheck(t, e, "TCP", "traffic-port", "")
				wantRules(t, e, svc, "tcp 30053 0.0.0.0/0", "tcp 30080 0.0.0.0/0", "tcp 30443 0.0.0.0/0", "udp 30053 0.0.0.0/0")
			},
		},
		{
			desc:   "health check annotations",
			before: threePorts,
			after: newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationHCProtocol, "http"), fixtures.WithAnnotation(AnnotationHCPath, "/ready"),
				fixtures.WithAnnotation(AnnotationHCPort, "31000"), fixtures.WithAnnotation(AnnotationHCInterval, "20"), fixtures.WithAnnotation(AnnotationHCTimeout, "5"),
				fixtures.WithAnnotation(AnnotationHCHealthyCount, "3"), fixtures.WithAnnotation(AnnotationHCUnhealthyCount, "4")),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "ModifyTargetGroup", "ModifyTargetGroup", "ModifyTargetGroup"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantHealthCheck(t, e, "HTTP", "31000", "/ready")
				for _, tg := range e.fake.TargetGroups() {
					if tg.HealthCheckIntervalSeconds != 20 || tg.HealthCheckTimeoutSeconds != 5 || tg.HealthyThresholdCount != 3 || tg.UnhealthyThresholdCount != 4 {
						t.Errorf("target group %s health check timing = %+v", tg.Name, tg)
					}
				}
			},
		},
		{
			desc:       "node port changed: new target group, listener repointed, old one deleted",
			before:     threePorts,
			after:      newService("web", withPort(80, 30081, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolUDP), withPort(443, 30443, v1.ProtocolTCP)),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "CreateTargetGroup", "DeleteTargetGroup", "ModifyListener", "RegisterTargets", "RegisterTargets", "RevokeSecurityGroupIngress"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30081", "443/TCP->30443")
				if n := len(e.fake.TargetGroups()); n != 3 {
					t.Errorf("target groups = %d, want 3", n)
				}
			},
		},
		{
			desc:       "UDP added on a TCP port: listener becomes TCP_UDP",
			before:     newService("web", withPort(80, 30080, v1.ProtocolTCP)),
			after:      newService("web", withPort(80, 30080, v1.ProtocolTCP), withPort(80, 30080, v1.ProtocolUDP)),
			wantWrites: []string{"AuthorizeSecurityGroupIngress", "CreateTargetGroup", "DeleteTargetGroup", "ModifyListener", "RegisterTargets", "RegisterTargets"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantListeners(t, e, "80/TCP_UDP->30080")
				wantRules(t, e, svc, "tcp 30080 0.0.0.0/0", "udp 30080 0.0.0.0/0")
			},
		},
		{
			desc:       "cross-zone load balancing enabled",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationCrossZone, "true")),
			wantWrites: []string{"ModifyLoadBalancerAttributes"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				if v := e.fake.LoadBalancers()[0].Attributes[crossZoneAttribute]; v != "true" {
					t.Errorf("cross zone = %q", v)
				}
			},
		},
		{
			desc:       "additional tag added: one AddTags call for the load balancer and its target groups",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationAdditionalTags, "team=edge")),
			wantWrites: []string{"AddTags"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				for _, tg := range e.fake.TargetGroups() {
					if tg.Tags["team"] != "edge" {
						t.Errorf("target group %s tags = %v", tg.Name, tg.Tags)
					}
				}
			},
		},
		{
			desc:       "target node labels select nodes",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationTargetNodeLabels, "pool=a")),
			wantWrites: []string{"DeregisterTargets", "DeregisterTargets", "DeregisterTargets"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				wantTargets(t, e, "i-0000000000000001", "i-0000000000000002")
			},
		},
		{
			desc:       "made internal: load balancer recreated in the internal subnets, target groups kept",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationInternal, "true")),
			wantWrites: []string{"CreateListener", "CreateListener", "CreateListener", "CreateLoadBalancer", "DeleteLoadBalancer"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				lb := e.fake.LoadBalancers()[0]
				if lb.Scheme != "internal" || !slices.Equal(lb.Subnets, []string{"subnet-c"}) {
					t.Errorf("load balancer = %s in %v", lb.Scheme, lb.Subnets)
				}
				wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30080", "443/TCP->30443")
			},
		},
		{
			desc:       "Elastic IPs added: recreated in the discovered subnets",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationEIPAllocations, "eipalloc-1,eipalloc-2")),
			wantWrites: []string{"CreateListener", "CreateListener", "CreateListener", "CreateLoadBalancer", "DeleteLoadBalancer"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				lb := e.fake.LoadBalancers()[0]
				if !slices.Equal(lb.Subnets, []string{"subnet-a", "subnet-b"}) || lb.AllocationIDs["subnet-a"] != "eipalloc-1" || lb.AllocationIDs["subnet-b"] != "eipalloc-2" {
					t.Errorf("load balancer subnets %v allocations %v", lb.Subnets, lb.AllocationIDs)
				}
			},
		},
		{
			desc:       "Elastic IPs in annotated subnets (by name and ID): recreated with subnet mappings",
			before:     threePorts,
			after:      newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationSubnets, "public-a2, subnet-b"), fixtures.WithAnnotation(AnnotationEIPAllocations, "eipalloc-1,eipalloc-2")),
			wantWrites: []string{"CreateListener", "CreateListener", "CreateListener", "CreateLoadBalancer", "DeleteLoadBalancer"},
			check: func(t *testing.T, e *testEnv, svc *v1.Service) {
				lb := e.fake.LoadBalancers()[0]
				if !slices.Equal(lb.Subnets, []string{"subnet-a2", "subnet-b"}) || lb.AllocationIDs["subnet-a2"] != "eipalloc-1" || lb.AllocationIDs["subnet-b"] != "eipalloc-2" {
					t.Errorf("load balancer subnets %v allocations %v", lb.Subnets, lb.AllocationIDs)
				}
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			nodesBefore, nodesAfter := tc.nodesBefore, tc.nodesAfter
			if nodesBefore == nil {
				nodesBefore = threeNodes()
			}
			if nodesAfter == nil {
				nodesAfter = threeNodes()
			}
			e.ensure(tc.before, nodesBefore)
			e.fake.ResetCalls()
			status := e.ensure(tc.after, nodesAfter)
			if got := e.writes(); !slices.Equal(got, tc.wantWrites) {
				t.Errorf("writes = %v, want %v", got, tc.wantWrites)
			}
			if tc.check != nil {
				tc.check(t, e, tc.after)
			}
			if status.Ingress[0].Hostname != e.fake.LoadBalancers()[0].DNSName {
				t.Errorf("status %v does not name the load balancer", status)
			}
			e.fake.ResetCalls()
			e.ensure(tc.after, nodesAfter)
			if w := e.writes(); len(w) != 0 {
				t.Errorf("the Ensure after the change wrote %v", w)
			}
		})
	}
}

func TestUpdateLoadBalancerSyncsOnlyTargets(t *testing.T) {
	e := newEnv(t)
	svc := newService("web", withThreePorts())
	e.ensure(svc, threeNodes())
	e.fake.ResetCalls()
	if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, threeNodes()[1:]); err != nil {
		t.Fatalf("UpdateLoadBalancer: %v", err)
	}
	if got, want := e.writes(), []string{"DeregisterTargets", "DeregisterTargets", "DeregisterTargets"}; !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	if r := e.reads(); len(r) > 8 {
		t.Errorf("reads = %d, want at most 8: %v", len(r), r)
	}
	wantTargets(t, e, "i-0000000000000002", "i-0000000000000003")

	other := newService("never-ensured", withThreePorts())
	if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, other, threeNodes()); err == nil {
		t.Errorf("UpdateLoadBalancer of a Service without a load balancer succeeded")
	}
}

func wantListeners(t *testing.T, e *testEnv, want ...string) {
	t.Helper()
	ports := map[string]int32{}
	for _, tg := range e.fake.TargetGroups() {
		ports[tg.ARN] = tg.Port
	}
	var got []string
	for _, l := range e.fake.Listeners() {
		got = append(got, fmt.Sprintf("%d/%s->%d", l.Port, l.Protocol, ports[l.TargetGroupARN]))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listeners = %v, want %v", got, want)
	}
}

func wantRules(t *testing.T, e *testEnv, svc *v1.Service, want ...string) {
	t.Helper()
	var got []string
	for _, r := range e.ourRules(svc) {
		if r.GroupID != nodesSG {
			t.Errorf("rule %s in group %s, want %s", r.ID, r.GroupID, nodesSG)
		}
		got = append(got, fmt.Sprintf("%s %d %s", r.Protocol, r.FromPort, r.CIDR))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("rules =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func wantTargets(t *testing.T, e *testEnv, ids ...string) {
	t.Helper()
	for _, tg := range e.fake.TargetGroups() {
		var got []string
		for _, target := range tg.Targets {
			got = append(got, target.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("target group %s targets = %v, want %v", tg.Name, got, ids)
		}
	}
}

func wantHealthCheck(t *testing.T, e *testEnv, protocol, port, path string) {
	t.Helper()
	for _, tg := range e.fake.TargetGroups() {
		if tg.HealthCheckProtocol != protocol || tg.HealthCheckPort != port || tg.HealthCheckPath != path {
			t.Errorf("target group %s health check = %s:%s%s, want %s:%s%s", tg.Name, tg.HealthCheckProtocol, tg.HealthCheckPort, tg.HealthCheckPath, protocol, port, path)
		}
	}
}

var _ = fakeaws.Target{}
