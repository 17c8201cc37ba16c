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

func TestEnsureCreatesNLBWithTargetGroupsListenersAndRules(t *testing.T) {
	e := newEnv(t)
	svc := newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationAdditionalTags, "team=edge, cost=42"))
	status := e.ensure(svc, threeNodes())

	lbs := e.fake.LoadBalancers()
	if len(lbs) != 1 {
		t.Fatalf("load balancers = %d, want 1", len(lbs))
	}
	lb := lbs[0]
	o := ownerOf(testCluster, svc)
	if lb.Name != o.loadBalancerName() || len(lb.Name) > 32 || lb.Type != "network" || lb.Scheme != "internet-facing" {
		t.Errorf("load balancer = %+v", lb)
	}
	// subnet-a wins zone a over subnet-a2 (tagged for our cluster); subnet-x
	// belongs to another cluster; subnet-c is internal only.
	if !slices.Equal(lb.Subnets, []string{"subnet-a", "subnet-b"}) {
		t.Errorf("subnets = %v, want [subnet-a subnet-b]", lb.Subnets)
	}
	for _, want := range []string{"kubernetes.io/cluster/test=owned", "kubernetes.io/service-name=default/web", "team=edge", "cost=42"} {
		k, v, _ := strings.Cut(want, "=")
		if lb.Tags[k] != v {
			t.Errorf("load balancer tag %s = %q, want %q", k, lb.Tags[k], v)
		}
	}
	if status == nil || len(status.Ingress) != 1 || status.Ingress[0].Hostname != lb.DNSName || status.Ingress[0].IP != "" {
		t.Errorf("status = %+v, want hostname %s", status, lb.DNSName)
	}
	if got, exists, err := e.p.GetLoadBalancer(e.ctx, testCluster, svc); err != nil || !exists || got.Ingress[0].Hostname != lb.DNSName {
		t.Errorf("GetLoadBalancer = %+v, %v, %v", got, exists, err)
	}

	tgs := e.fake.TargetGroups()
	byPort := map[int32]fakeaws.TargetGroup{}
	for _, tg := range tgs {
		byPort[tg.Port] = tg
		if !o.owns(tg.Tags) || tg.Tags["team"] != "edge" {
			t.Errorf("target group %s tags = %v", tg.Name, tg.Tags)
		}
		if tg.HealthCheckProtocol != "TCP" || tg.HealthCheckPort != "traffic-port" || tg.TargetType != "instance" {
			t.Errorf("target group %s health check = %s:%s", tg.Name, tg.HealthCheckProtocol, tg.HealthCheckPort)
		}
		var ids []string
		for _, target := range tg.Targets {
			if target.Port != tg.Port {
				t.Errorf("target %s port %d, want node port %d", target.ID, target.Port, tg.Port)
			}
			ids = append(ids, target.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"i-0000000000000001", "i-0000000000000002", "i-0000000000000003"}) {
			t.Errorf("target group %s targets = %v", tg.Name, ids)
		}
	}
	for port, proto := range map[int32]string{30080: "TCP", 30053: "TCP_UDP", 30443: "TCP"} {
		if byPort[port].Protocol != proto {
			t.Errorf("target group on node port %d protocol = %q, want %s", port, byPort[port].Protocol, proto)
		}
	}
	if len(tgs) != 3 {
		t.Errorf("target groups = %d, want 3", len(tgs))
	}

	var listeners []string
	for _, l := range e.fake.Listeners() {
		var tgPort int32
		for _, tg := range tgs {
			if tg.ARN == l.TargetGroupARN {
				tgPort = tg.Port
			}
		}
		listeners = append(listeners, fmt.Sprintf("%d/%s->%d", l.Port, l.Protocol, tgPort))
	}
	if want := []string{"53/TCP_UDP->30053", "80/TCP->30080", "443/TCP->30443"}; !slices.Equal(listeners, want) {
		t.Errorf("listeners = %v, want %v", listeners, want)
	}

	// Cluster policy, no source ranges: node ports open to the world; the
	// traffic-port health check needs nothing more.
	var rules []string
	for _, r := range e.ourRules(svc) {
		rules = append(rules, fmt.Sprintf("%s %s %d %s", r.GroupID, r.Protocol, r.FromPort, r.CIDR))
		if !strings.Contains(r.Description, "cluster=test service=default/web") {
			t.Errorf("rule description %q does not name the cluster and Service", r.Description)
		}
	}
	wantRules := []string{
		nodesSG + " tcp 30053 0.0.0.0/0", nodesSG + " tcp 30080 0.0.0.0/0", nodesSG + " tcp 30443 0.0.0.0/0", nodesSG + " udp 30053 0.0.0.0/0",
	}
	if !slices.Equal(rules, wantRules) {
		t.Errorf("rules = %v, want %v", rules, wantRules)
	}

	// 3 nodes in chunks of 2: two RegisterTargets per target group.
	wantWrites := []string{"AuthorizeSecurityGroupIngress", "CreateListener", "CreateListener", "CreateListener", "CreateLoadBalancer",
		"CreateTargetGroup", "CreateTargetGroup", "CreateTargetGroup",
		"RegisterTargets", "RegisterTargets", "RegisterTargets", "RegisterTargets", "RegisterTargets", "RegisterTargets"}
	if got := e.writes(); !slices.Equal(got, wantWrites) {
		t.Errorf("writes = %v, want %v", got, wantWrites)
	}
}

func TestIdleEnsureOnlyReads(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		svc      *v1.Service
		maxReads int
	}{
		{desc: "cluster policy", svc: newService("web", withThreePorts()), maxReads: 10},
		{desc: "local policy, source ranges, cross-zone, tags", svc: newService("web", withThreePorts(), fixtures.WithLocalPolicy(32000), fixtures.WithSourceRanges("192.0.2.0/24"),
			fixtures.WithAnnotation(AnnotationCrossZone, "true"), fixtures.WithAnnotation(AnnotationAdditionalTags, "a=b")), maxReads: 10},
		{desc: "node with two security groups", svc: newService("web", withThreePorts()), maxReads: 11},
		{desc: "annotated subnet IDs and Elastic IPs", svc: newService("web", withThreePorts(), fixtures.WithAnnotation(AnnotationSubnets, "subnet-b,subnet-c"),
			fixtures.WithAnnotation(AnnotationEIPAllocations, "eipalloc-1,eipalloc-2")), maxReads: 10},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			nodes := threeNodes()
			if strings.Contains(tc.desc, "two security groups") {
				nodes = append(nodes, newNode("n4", "aws:///us-east-1b/i-0000000000000004"))
			}
			first := e.ensure(tc.svc, nodes)
			e.fake.ResetCalls()
			second := e.ensure(tc.svc, nodes)
			if w := e.writes(); len(w) != 0 {
				t.Errorf("idle Ensure wrote %v", w)
			}
			if r := e.reads(); len(r) > tc.maxReads {
				t.Errorf("idle Ensure made %d reads, want at most %d: %v", len(r), tc.maxReads, r)
			}
			if first.Ingress[0].Hostname != second.Ingress[0].Hostname {
				t.Errorf("status changed: %v then %v", first, second)
			}
		})
	}
}
