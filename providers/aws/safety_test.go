package aws

import (
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"

	fakeaws "github.com/extlb/extlb/fake/aws"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestLookAlikesAreLeftAlone(t *testing.T) {
	svc := newService("web", withThreePorts())
	o := ownerOf(testCluster, svc)
	for _, tc := range []struct {
		desc string
		seed func(e *testEnv) (check func(t *testing.T))
	}{
		{
			desc: "load balancer with our name but no ownership tags",
			seed: func(e *testEnv) func(t *testing.T) {
				lb := e.fake.AddLoadBalancer(fakeaws.LoadBalancer{Name: o.loadBalancerName(), VPCID: testVPC, Subnets: []string{"subnet-b"}, Tags: map[string]string{"owner": "someone-else"}})
				return func(t *testing.T) {
					got := e.fake.LoadBalancers()
					if len(got) != 1 || got[0].ARN != lb.ARN || len(got[0].Tags) != 1 {
						t.Errorf("look-alike load balancer changed: %+v", got)
					}
				}
			},
		},
		{
			desc: "target group with our name and settings but no ownership tags",
			seed: func(e *testEnv) func(t *testing.T) {
				tg := e.fake.AddTargetGroup(fakeaws.TargetGroup{Name: o.targetGroupName(listenerSpec{port: 80, nodePort: 30080, protocol: "TCP"}),
					Protocol: "TCP", Port: 30080, VPCID: testVPC, TargetType: "instance", HealthCheckProtocol: "TCP", HealthCheckPort: "traffic-port",
					Targets: []fakeaws.Target{{ID: "i-0000000000000003", Port: 30080}}, Tags: map[string]string{"owner": "someone-else"}})
				return func(t *testing.T) {
					for _, got := range e.fake.TargetGroups() {
						if got.ARN == tg.ARN && (len(got.Targets) != 1 || len(got.LoadBalancerARNs) != 0 || len(got.Tags) != 1) {
							t.Errorf("look-alike target group changed: %+v", got)
						}
						if got.ARN != tg.ARN && !o.owns(got.Tags) {
							t.Errorf("unexpected target group %+v", got)
						}
					}
					if n := len(e.fake.TargetGroups()); n == 0 {
						t.Errorf("look-alike target group deleted")
					}
				}
			},
		},
		{
			desc: "target group with our name, other settings, no ownership tags",
			seed: func(e *testEnv) func(t *testing.T) {
				tg := e.fake.AddTargetGroup(fakeaws.TargetGroup{Name: o.targetGroupName(listenerSpec{port: 80, nodePort: 30080, protocol: "TCP"}),
					Protocol: "UDP", Port: 9999, VPCID: testVPC, TargetType: "instance", HealthCheckProtocol: "TCP", HealthCheckPort: "traffic-port", Tags: map[string]string{}})
				return func(t *testing.T) {
					found := false
					for _, got := range e.fake.TargetGroups() {
						found = found || got.ARN == tg.ARN && got.Protocol == "UDP" && got.Port == 9999 && len(got.LoadBalancerARNs) == 0
					}
					if !found {
						t.Errorf("look-alike target group changed or deleted")
					}
				}
			},
		},
		{
			desc: "someone else's rules already allow a node port: theirs stay, no write to duplicate them",
			seed: func(e *testEnv) func(t *testing.T) {
				narrow := e.fake.AddSecurityGroupRule(fakeaws.SecurityGroupRule{GroupID: nodesSG, Protocol: "tcp", FromPort: 30080, ToPort: 30080, CIDR: "0.0.0.0/0"})
				wide := e.fake.AddSecurityGroupRule(fakeaws.SecurityGroupRule{GroupID: nodesSG, Protocol: "udp", FromPort: 30000, ToPort: 32767, CIDR: "0.0.0.0/0"})
				return func(t *testing.T) {
					rules := e.fake.SecurityGroupRules()
					for _, r := range []fakeaws.SecurityGroupRule{narrow, wide} {
						if !slices.ContainsFunc(rules, func(got fakeaws.SecurityGroupRule) bool { return got.ID == r.ID && len(got.Tags) == 0 }) {
							t.Errorf("foreign rule %s changed or revoked", r.ID)
						}
					}
					if len(e.fake.LoadBalancers()) == 0 {
						return // deleted: nothing more to check
					}
					e.fake.ResetCalls()
					if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes()); err != nil {
						t.Fatalf("EnsureLoadBalancer: %v", err)
					}
					if w := e.writes(); len(w) != 0 {
						t.Errorf("idle Ensure next to foreign rules wrote %v", w)
					}
				}
			},
		},
		{
			desc: "rules on our ports with our description but no tags",
			seed: func(e *testEnv) func(t *testing.T) {
				r := e.fake.AddSecurityGroupRule(fakeaws.SecurityGroupRule{GroupID: nodesSG, Protocol: "tcp", FromPort: 30443, ToPort: 30443, CIDR: "203.0.113.0/24", Description: o.ruleDescription("traffic")})
				return func(t *testing.T) {
					if !slices.ContainsFunc(e.fake.SecurityGroupRules(), func(got fakeaws.SecurityGroupRule) bool { return got.ID == r.ID }) {
						t.Errorf("look-alike rule %s revoked", r.ID)
					}
				}
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			check := tc.seed(e)
			// Ensure may fail (the name is taken) or succeed around the
			// look-alike; either way it must not touch it.
			_, ensureErr := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes())
			t.Logf("EnsureLoadBalancer: %v", ensureErr)
			check(t)
			if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
				t.Fatalf("EnsureLoadBalancerDeleted: %v", err)
			}
			check(t)
			requireNothingOfOurs(t, e, svc)
		})
	}
}

func TestBadAnnotationsAreInputErrorsAndCreateNothing(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		tweak     fixtures.ServiceTweak
		wantField string
	}{
		{"internal not a boolean", fixtures.WithAnnotation(AnnotationInternal, "yes please"), "metadata.annotations[" + AnnotationInternal + "]"},
		{"cross-zone not a boolean", fixtures.WithAnnotation(AnnotationCrossZone, "maybe"), "metadata.annotations[" + AnnotationCrossZone + "]"},
		{"unknown type", fixtures.WithAnnotation(AnnotationType, "clb"), "metadata.annotations[" + AnnotationType + "]"},
		{"bad health check protocol", fixtures.WithAnnotation(AnnotationHCProtocol, "ICMP"), "metadata.annotations[" + AnnotationHCProtocol + "]"},
		{"health check port out of range", fixtures.WithAnnotation(AnnotationHCPort, "70000"), "metadata.annotations[" + AnnotationHCPort + "]"},
		{"path with TCP health check", fixtures.WithAnnotation(AnnotationHCPath, "/x"), "metadata.annotations[" + AnnotationHCPath + "]"},
		{"interval too short", fixtures.WithAnnotation(AnnotationHCInterval, "1"), "metadata.annotations[" + AnnotationHCInterval + "]"},
		{"timeout not a number", fixtures.WithAnnotation(AnnotationHCTimeout, "soon"), "metadata.annotations[" + AnnotationHCTimeout + "]"},
		{"healthy threshold too high", fixtures.WithAnnotation(AnnotationHCHealthyCount, "11"), "metadata.annotations[" + AnnotationHCHealthyCount + "]"},
		{"unhealthy threshold too low", fixtures.WithAnnotation(AnnotationHCUnhealthyCount, "1"), "metadata.annotations[" + AnnotationHCUnhealthyCount + "]"},
		{"tags not key=value", fixtures.WithAnnotation(AnnotationAdditionalTags, "a=b,oops"), "metadata.annotations[" + AnnotationAdditionalTags + "]"},
		{"tags overriding ownership", fixtures.WithAnnotation(AnnotationAdditionalTags, "kubernetes.io/service-name=x/y"), "metadata.annotations[" + AnnotationAdditionalTags + "]"},
		{"node labels not key=value", fixtures.WithAnnotation(AnnotationTargetNodeLabels, "pool"), "metadata.annotations[" + AnnotationTargetNodeLabels + "]"},
		{"EIP not an allocation ID", fixtures.WithAnnotation(AnnotationEIPAllocations, "203.0.113.7"), "metadata.annotations[" + AnnotationEIPAllocations + "]"},
		{"EIPs on an internal NLB", func(s *v1.Service) {
			s.Annotations[AnnotationInternal] = "true"
			s.Annotations[AnnotationEIPAllocations] = "eipalloc-1"
		}, "metadata.annotations[" + AnnotationEIPAllocations + "]"},
		{"EIPs not one per annotated subnet", func(s *v1.Service) {
			s.Annotations[AnnotationSubnets] = "subnet-a,subnet-b"
			s.Annotations[AnnotationEIPAllocations] = "eipalloc-1"
		}, "metadata.annotations[" + AnnotationEIPAllocations + "]"},
		{"EIPs not one per discovered subnet", fixtures.WithAnnotation(AnnotationEIPAllocations, "eipalloc-1,eipalloc-2,eipalloc-3"), "metadata.annotations[" + AnnotationEIPAllocations + "]"},
		{"annotated subnet does not exist", fixtures.WithAnnotation(AnnotationSubnets, "subnet-nope"), "metadata.annotations[" + AnnotationSubnets + "]"},
		{"annotated subnet name does not exist", fixtures.WithAnnotation(AnnotationSubnets, "no-such-name"), "metadata.annotations[" + AnnotationSubnets + "]"},
		{"two annotated subnets in one zone", fixtures.WithAnnotation(AnnotationSubnets, "subnet-a,subnet-a2"), "metadata.annotations[" + AnnotationSubnets + "]"},
		{"SCTP port", withPort(9, 30009, v1.ProtocolSCTP), "spec.ports[4].protocol"},
		{"TCP and UDP on one port with different node ports", withPort(80, 30081, v1.ProtocolUDP), "spec.ports[4].nodePort"},
		{"IPv6 source range", fixtures.WithSourceRanges("2001:db8::/32"), "spec.loadBalancerSourceRanges[0]"},
		{"bad source range", fixtures.WithSourceRanges("10.0.0.0/33"), "spec.loadBalancerSourceRanges[0]"},
		{"loadBalancerIP", func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.9" }, "spec.loadBalancerIP"},
		{"Local without health check node port", fixtures.WithLocalPolicy(0), "spec.healthCheckNodePort"},
		// Security: TLS asked for is refused, never served as cleartext TCP.
		{"TLS certificate", fixtures.WithAnnotation(annotationPrefix+"ssl-cert", "arn:aws:acm:us-east-1:123456789012:certificate/x"), "metadata.annotations[" + annotationPrefix + "ssl-cert]"},
		{"LBC scheme internal without type external", fixtures.WithAnnotation(annotationPrefix+"scheme", "internal"), "metadata.annotations[" + annotationPrefix + "scheme]"},
		{"unknown annotation in the anchors' namespace", fixtures.WithAnnotation(annotationPrefix+"no-such-thing", "x"), "metadata.annotations[" + annotationPrefix + "no-such-thing]"},
		{"metal's annotation", fixtures.WithAnnotation("extlb.io/load-balancer-ips", "192.0.2.1"), "metadata.annotations[extlb.io/load-balancer-ips]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			svc := newService("web", withThreePorts(), tc.tweak)
			_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes())
			ie, ok := providers.IsInputError(err)
			if !ok {
				t.Fatalf("EnsureLoadBalancer = %v, want an InputError", err)
			}
			if ie.Field != tc.wantField || ie.Reason == "" {
				t.Errorf("InputError field %q (%s), want %q", ie.Field, ie.Reason, tc.wantField)
			}
			if w := e.writes(); len(w) != 0 {
				t.Errorf("wrote %v before rejecting the Service", w)
			}
			if len(e.fake.LoadBalancers())+len(e.fake.TargetGroups())+len(e.fake.SecurityGroupRules()) != 0 {
				t.Errorf("something was created")
			}
		})
	}
}

func TestExternalTypeIsImplementedElsewhere(t *testing.T) {
	e := newEnv(t)
	svc := newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationType, "external"))
	if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes()); !errors.Is(err, cloudprovider.ImplementedElsewhere) {
		t.Errorf("EnsureLoadBalancer = %v, want ImplementedElsewhere", err)
	}
	if len(e.fake.Calls()) != 0 {
		t.Errorf("made calls: %v", e.fake.Calls())
	}
}

func TestThrottlingStormConverges(t *testing.T) {
	e := newEnv(t)
	// Throttle three calls in ten, for ELBv2 and EC2 alike, with 500s and
	// latency mixed in; the SDK's standard retryer absorbs it all.
	e.fake.InjectFault(fakeaws.Fault{Code: "InternalFailure", Rate: 0.05, Count: 20})
	e.fake.InjectFault(fakeaws.Fault{Action: "DescribeInstances", Code: "RequestLimitExceeded", Rate: 0.3, Count: 50})
	e.fake.InjectFault(fakeaws.Fault{Action: "AuthorizeSecurityGroupIngress", Code: "RequestLimitExceeded", Rate: 0.3, Count: 50})
	e.fake.InjectFault(fakeaws.Fault{Action: "DescribeSecurityGroupRules", Code: "RequestLimitExceeded", Rate: 0.3, Count: 50})
	e.fake.InjectFault(fakeaws.Fault{Code: "Throttling", Rate: 0.3, Count: 200})
	svc := newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000), fixtures.WithSourceRanges("192.0.2.0/24"))
	nodes := threeNodes()
	e.ensure(svc, nodes)
	e.ensure(svc, nodes[:2])
	if hits := e.fake.FaultHits(); hits < 10 {
		t.Fatalf("only %d calls were throttled: the storm did not happen", hits)
	}
	t.Logf("%d calls failed and were retried", e.fake.FaultHits())
	e.fake.ClearFaults()
	e.fake.ResetCalls()
	e.ensure(svc, nodes[:2])
	if w := e.writes(); len(w) != 0 {
		t.Errorf("after the storm, Ensure still wrote %v", w)
	}
	wantTargets(t, e, "i-0000000000000001", "i-0000000000000002")
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatal(err)
	}
	requireNothingOfOurs(t, e, svc)
}

func TestThrottlingBeyondTheRetryerAsksForRetryLater(t *testing.T) {
	e := newEnv(t)
	e.fake.InjectFault(fakeaws.Fault{Action: "DescribeLoadBalancers", Code: "Throttling"})
	_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, newService("web", withThreePorts()), threeNodes())
	var retry *api.RetryError
	if !errors.As(err, &retry) {
		t.Fatalf("EnsureLoadBalancer = %v, want a RetryError", err)
	}
	if hits := e.fake.FaultHits(); hits != 12 {
		t.Errorf("DescribeLoadBalancers was tried %d times, want the retryer's 12 attempts", hits)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestInvalidRecreationKeepsTheExistingLoadBalancer(t *testing.T) {
	e := newEnv(t)
	e.ensure(newService("web", withThreePorts()), threeNodes())
	before := e.fake.LoadBalancers()
	e.fake.ResetCalls()
	// Three Elastic IPs for the two discovered subnets: refused before the
	// old load balancer is deleted.
	svc := newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationEIPAllocations, "eipalloc-1,eipalloc-2,eipalloc-3"))
	_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes())
	if ie, ok := providers.IsInputError(err); !ok || ie.Field != "metadata.annotations["+AnnotationEIPAllocations+"]" {
		t.Fatalf("EnsureLoadBalancer = %v, want an InputError on the EIP annotation", err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	if after := e.fake.LoadBalancers(); len(after) != 1 || after[0].ARN != before[0].ARN {
		t.Errorf("load balancer replaced or deleted: %v", after)
	}
}

func TestEnsureAfterAnInterruptedEnsureConverges(t *testing.T) {
	for _, failing := range []string{"CreateLoadBalancer", "CreateTargetGroup", "RegisterTargets", "AuthorizeSecurityGroupIngress", "CreateListener"} {
		t.Run(failing+" fails once", func(t *testing.T) {
			e := newEnv(t)
			svc := newService("web", withThreePorts(), fixtures.WithSourceRanges("192.0.2.0/24"))
			e.fake.InjectFault(fakeaws.Fault{Action: failing, Code: "InvalidConfigurationRequest", Count: 1})
			if _, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes()); err == nil {
				t.Fatalf("EnsureLoadBalancer succeeded despite the fault")
			}
			e.ensure(svc, threeNodes())
			if n := len(e.fake.LoadBalancers()); n != 1 {
				t.Errorf("load balancers = %d", n)
			}
			if n := len(e.fake.TargetGroups()); n != 3 {
				t.Errorf("target groups = %d, want 3 (no duplicates)", n)
			}
			wantListeners(t, e, "53/TCP_UDP->30053", "80/TCP->30080", "443/TCP->30443")
			wantTargets(t, e, "i-0000000000000001", "i-0000000000000002", "i-0000000000000003")
			wantRules(t, e, svc, "tcp 30053 192.0.2.0/24", "tcp 30080 192.0.2.0/24", "tcp 30443 192.0.2.0/24", "udp 30053 192.0.2.0/24",
				"tcp 30053 10.0.1.0/24", "tcp 30080 10.0.1.0/24", "tcp 30443 10.0.1.0/24",
				"tcp 30053 10.0.2.0/24", "tcp 30080 10.0.2.0/24", "tcp 30443 10.0.2.0/24")
			e.fake.ResetCalls()
			e.ensure(svc, threeNodes())
			if w := e.writes(); len(w) != 0 {
				t.Errorf("third Ensure wrote %v", w)
			}
		})
	}
}
