package e2e

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	fakeaws "github.com/extlb/extlb/fake/aws"
	awsprovider "github.com/extlb/extlb/providers/aws"
)

// The fake AWS account of the e2e: one VPC with a public subnet in each of
// two zones, the nodes' security group, three instances, and resources of
// someone else that extlb must leave alone.
const (
	awsRegion      = "us-east-1"
	awsVPC         = "vpc-0e2e00000000000a"
	awsNodesSG     = "sg-0e2e0000000000001"
	awsCluster     = "e2e-aws"
	awsInstance1   = "i-0e2e0000000000001"
	awsInstance2   = "i-0e2e0000000000002"
	awsInstance3   = "i-0e2e0000000000003"
	awsSourceRange = "198.51.100.0/24"
)

var awsSubnetCIDRs = map[string]string{"subnet-0e2e0000000000a": "10.20.1.0/24", "subnet-0e2e0000000000b": "10.20.2.0/24"}

// isolateAWSSDK gives the SDK's default chain static credentials from the
// environment and keeps it away from this machine's files and instance
// metadata, as a Pod with credentials in its environment would see it.
func isolateAWSSDK(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDE2E",
		"AWS_SECRET_ACCESS_KEY":       "e2e-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             t.TempDir() + "/none",
		"AWS_SHARED_CREDENTIALS_FILE": t.TempDir() + "/none",
	} {
		t.Setenv(k, v)
	}
}

func newFakeAWS(t *testing.T) (*fakeaws.Server, string) {
	fake := fakeaws.New(awsRegion)
	fake.AddSubnet(fakeaws.Subnet{ID: "subnet-0e2e0000000000a", VPCID: awsVPC, CIDRBlock: awsSubnetCIDRs["subnet-0e2e0000000000a"], AvailabilityZone: "us-east-1a",
		Tags: map[string]string{"kubernetes.io/role/elb": "1"}})
	fake.AddSubnet(fakeaws.Subnet{ID: "subnet-0e2e0000000000b", VPCID: awsVPC, CIDRBlock: awsSubnetCIDRs["subnet-0e2e0000000000b"], AvailabilityZone: "us-east-1b",
		Tags: map[string]string{"kubernetes.io/role/elb": "1"}})
	fake.AddSecurityGroup(fakeaws.SecurityGroup{ID: awsNodesSG, Name: "nodes", VPCID: awsVPC, Tags: map[string]string{"kubernetes.io/cluster/" + awsCluster: "owned"}})
	for i, id := range []string{awsInstance1, awsInstance2, awsInstance3} {
		zone, subnet := "us-east-1a", "subnet-0e2e0000000000a"
		if i == 1 {
			zone, subnet = "us-east-1b", "subnet-0e2e0000000000b"
		}
		fake.AddInstance(fakeaws.Instance{ID: id, VPCID: awsVPC, SubnetID: subnet, AvailabilityZone: zone,
			PrivateIP: fmt.Sprintf("10.20.%d.%d", 1+i%2, 11+i), SecurityGroupIDs: []string{awsNodesSG}})
	}
	// Someone else's: an NLB and target group with the same cluster tag
	// but no Service tag, and an SSH rule in the nodes' group.
	fake.AddLoadBalancer(fakeaws.LoadBalancer{Name: "bastion", VPCID: awsVPC, Subnets: []string{"subnet-0e2e0000000000a"},
		Tags: map[string]string{"kubernetes.io/cluster/" + awsCluster: "owned"}})
	fake.AddTargetGroup(fakeaws.TargetGroup{Name: "bastion-ssh", Protocol: "TCP", Port: 22, VPCID: awsVPC, TargetType: "instance"})
	fake.AddSecurityGroupRule(fakeaws.SecurityGroupRule{GroupID: awsNodesSG, Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "203.0.113.0/24", Description: "ssh"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// TestAWSProviderEndToEnd runs the controller with --provider=aws against
// the fake AWS, through the real API server under the controller's
// ServiceAccount: create, a new Node, a port change, an invalid annotation,
// a create through throttling and 5xx, and deletion without leaks.
func TestAWSProviderEndToEnd(t *testing.T) {
	isolateAWSSDK(t)
	fake, url := newFakeAWS(t)
	e := newCloudE2E(t, awsCluster)
	e.addNode("node-1", "10.20.1.11", "aws:///us-east-1a/"+awsInstance1)
	e.addNode("node-2", "10.20.2.12", "aws:///us-east-1b/"+awsInstance2)
	// --aws-max-attempts=3 is the SDK default, spelled out: the fault
	// phase below relies on it.
	lb := e.buildProvider(awsprovider.NewBuilder(), "--aws-region="+awsRegion, "--aws-endpoint="+url, "--aws-max-attempts=3")
	e.run(lb)

	// Create: an NLB with a listener per port, each to a target group of
	// both instances on the port's node port, rules for the node ports.
	web := e.service("web", map[string]string{"service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval": "20"},
		tcpServicePort("http", 80), tcpServicePort("https", 443))
	web.Spec.LoadBalancerSourceRanges = []string{awsSourceRange}
	createService(t, e.admin, web)
	awsWaitConverged(e, fake, "web", []string{awsInstance1, awsInstance2})
	e.waitEvent("web", "Normal EnsuredLoadBalancer", 10*time.Second)
	for _, tg := range awsOwned(fake, e, "web").targetGroups {
		if tg.HealthCheckIntervalSeconds != 20 || tg.HealthCheckProtocol != "TCP" {
			t.Errorf("target group %s health check: %s every %ds, want TCP every 20s (the annotation)", tg.Name, tg.HealthCheckProtocol, tg.HealthCheckIntervalSeconds)
		}
	}
	for _, c := range fake.Calls() {
		if c.AccessKeyID != "AKIDE2E" {
			t.Errorf("%s was signed with %q, want the environment's AKIDE2E", c.Action, c.AccessKeyID)
		}
	}

	// A new Node becomes a target of every target group.
	e.addNode("node-3", "10.20.1.13", "aws:///us-east-1a/"+awsInstance3)
	awsWaitConverged(e, fake, "web", []string{awsInstance1, awsInstance2, awsInstance3})

	// A port change, with a new node port: the listener, its target group
	// and the rules follow, and nothing of the old port stays.
	oldNodePort := nodePortsByName(e.get("web"))["https"]
	updateService(t, e.admin, e.ns, "web", func(s *v1.Service) {
		// The API server keeps a node port by port name, so a new name and
		// no node port make it allocate a new one.
		s.Spec.Ports[1] = tcpServicePort("https-alt", 8443)
	})
	if np := nodePortsByName(e.get("web"))["https-alt"]; np == oldNodePort || np == 0 {
		t.Fatalf("the API server kept node port %d for the changed port", np)
	}
	awsWaitConverged(e, fake, "web", []string{awsInstance1, awsInstance2, awsInstance3})

	// An invalid annotation: an Event naming it, and no write to AWS.
	fake.ResetCalls()
	createService(t, e.admin, e.service("bad", map[string]string{"service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval": "abc"},
		tcpServicePort("http", 80)))
	e.waitEvent("bad", `Warning SyncLoadBalancerFailed: Error syncing load balancer: metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval]: "abc" is not an integer`, 20*time.Second)
	time.Sleep(500 * time.Millisecond) // let a wrongly retried sync show up
	if writes := awsWrites(fake); len(writes) > 0 {
		t.Errorf("writes to AWS for an invalid Service: %v", writes)
	}
	if got := awsOwned(fake, e, "bad"); !got.empty() {
		t.Errorf("resources created for the invalid Service: %s", got)
	}
	if st := e.get("bad").Status.LoadBalancer; len(st.Ingress) != 0 {
		t.Errorf("the invalid Service got a status: %+v", st)
	}

	// Throttling and 5xx during a create: two throttles and a 503 that the
	// SDK retries within a call, and three 500s on CreateListener that
	// outlast its 3 attempts, so the controller retries the whole Ensure.
	faults := []fakeaws.Fault{
		{Action: "CreateLoadBalancer", Code: "Throttling", Count: 2},
		{Action: "RegisterTargets", Code: "ServiceUnavailable", Count: 1},
		{Action: "CreateListener", Code: "InternalFailure", Count: 3},
	}
	for _, f := range faults {
		fake.InjectFault(f)
	}
	createService(t, e.admin, e.service("flaky", nil, tcpServicePort("dns", 53)))
	awsWaitConverged(e, fake, "flaky", []string{awsInstance1, awsInstance2, awsInstance3})
	if hits := fake.FaultHits(); hits != 6 {
		t.Errorf("fault hits = %d, want all 6 injected faults hit", hits)
	}
	e.waitEvent("flaky", "Warning SyncLoadBalancerFailed: Error syncing load balancer: ", 5*time.Second,
		"CreateListener, exceeded maximum number of attempts, 3", "InternalFailure")
	fake.ClearFaults()
	if n := len(awsOwned(fake, e, "flaky").loadBalancers); n != 1 {
		t.Errorf("load balancers for the faulted Service = %d, want 1", n)
	}

	// Delete: every resource of ours goes, then the Services do; someone
	// else's resources stay.
	for _, name := range []string{"web", "flaky", "bad"} {
		e.deleteService(name, 30*time.Second)
	}
	if leaked := awsOwnedByCluster(fake); !leaked.empty() {
		t.Errorf("left in AWS after every Service was deleted: %s", leaked)
	}
	if lbs := fake.LoadBalancers(); len(lbs) != 1 || lbs[0].Name != "bastion" {
		t.Errorf("load balancers after delete = %+v, want only someone else's bastion", lbs)
	}
	if tgs := fake.TargetGroups(); len(tgs) != 1 || tgs[0].Name != "bastion-ssh" {
		t.Errorf("target groups after delete = %+v, want only someone else's bastion-ssh", tgs)
	}
	if rules := fake.SecurityGroupRules(); len(rules) != 1 || rules[0].Description != "ssh" {
		t.Errorf("security group rules after delete = %+v, want only someone else's ssh rule", rules)
	}
	if ls := fake.Listeners(); len(ls) != 0 {
		t.Errorf("listeners after delete = %+v", ls)
	}
}

// awsResources are resources in the fake AWS.
type awsResources struct {
	loadBalancers []fakeaws.LoadBalancer
	targetGroups  []fakeaws.TargetGroup
	listeners     []fakeaws.Listener
	rules         []fakeaws.SecurityGroupRule
}

func (r awsResources) empty() bool {
	return len(r.loadBalancers)+len(r.targetGroups)+len(r.listeners)+len(r.rules) == 0
}

func (r awsResources) String() string {
	var b strings.Builder
	for _, lb := range r.loadBalancers {
		fmt.Fprintf(&b, "[NLB %s %s] ", lb.Name, lb.DNSName)
	}
	for _, l := range r.listeners {
		fmt.Fprintf(&b, "[listener %s/%d -> %s] ", l.Protocol, l.Port, l.TargetGroupARN)
	}
	for _, tg := range r.targetGroups {
		fmt.Fprintf(&b, "[target group %s %s/%d targets %v] ", tg.ARN, tg.Protocol, tg.Port, tg.Targets)
	}
	for _, sr := range r.rules {
		fmt.Fprintf(&b, "[rule %s %s/%d-%d from %s] ", sr.GroupID, sr.Protocol, sr.FromPort, sr.ToPort, sr.CIDR)
	}
	if b.Len() == 0 {
		return "nothing"
	}
	return b.String()
}

// awsOwned returns what the fake holds that is tagged as the Service's, and
// the listeners of its load balancers.
func awsOwned(fake *fakeaws.Server, e *cloudE2E, name string) awsResources {
	service := e.ns + "/" + name
	return awsSelect(fake, func(tags map[string]string) bool {
		return tags["kubernetes.io/cluster/"+awsCluster] == "owned" && tags["kubernetes.io/service-name"] == service
	})
}

// awsOwnedByCluster returns everything that carries a Service tag of the
// cluster, whichever the Service, and the listeners of those NLBs.
func awsOwnedByCluster(fake *fakeaws.Server) awsResources {
	return awsSelect(fake, func(tags map[string]string) bool {
		return tags["kubernetes.io/cluster/"+awsCluster] == "owned" && tags["kubernetes.io/service-name"] != ""
	})
}

func awsSelect(fake *fakeaws.Server, match func(map[string]string) bool) awsResources {
	var r awsResources
	lbARNs := map[string]bool{}
	for _, lb := range fake.LoadBalancers() {
		if match(lb.Tags) {
			r.loadBalancers = append(r.loadBalancers, lb)
			lbARNs[lb.ARN] = true
		}
	}
	for _, tg := range fake.TargetGroups() {
		if match(tg.Tags) {
			r.targetGroups = append(r.targetGroups, tg)
		}
	}
	for _, l := range fake.Listeners() {
		if lbARNs[l.LoadBalancerARN] {
			r.listeners = append(r.listeners, l)
		}
	}
	for _, sr := range fake.SecurityGroupRules() {
		if match(sr.Tags) {
			r.rules = append(r.rules, sr)
		}
	}
	return r
}

func awsWrites(fake *fakeaws.Server) []string {
	var out []string
	for _, c := range fake.Calls() {
		if c.Write {
			out = append(out, c.Action)
		}
	}
	return out
}

// awsWaitConverged waits until the fake holds exactly the Service's load
// balancer as it stands in the API server, with instances as targets, and
// the Service's status shows it.
func awsWaitConverged(e *cloudE2E, fake *fakeaws.Server, name string, instances []string) {
	e.t.Helper()
	e.waitMatch(40*time.Second, "AWS load balancer of "+name+" matches the Service", name, func(svc *v1.Service) string {
		return awsMismatch(svc, awsOwned(fake, e, name), instances)
	})
}

// awsMismatch says how the Service's resources differ from what its spec,
// node ports and the node instances call for, or "" when they match.
func awsMismatch(svc *v1.Service, got awsResources, instances []string) string {
	if len(got.loadBalancers) != 1 {
		return fmt.Sprintf("want one NLB, have: %s", got)
	}
	nlb := got.loadBalancers[0]
	if nlb.Type != "network" || nlb.Scheme != "internet-facing" || !slices.Equal(sortedCopy(nlb.Subnets, strings.Compare), sortedKeys(awsSubnetCIDRs)) {
		return fmt.Sprintf("NLB %s is %s/%s in subnets %v, want an internet-facing network load balancer in one subnet per zone", nlb.Name, nlb.Type, nlb.Scheme, nlb.Subnets)
	}
	ingress := svc.Status.LoadBalancer.Ingress
	// A hostname ingress has no ipMode: the API allows one only with an IP.
	if len(ingress) != 1 || ingress[0].Hostname != nlb.DNSName || ingress[0].IP != "" || ingress[0].IPMode != nil {
		return fmt.Sprintf("status %+v, want hostname %s only", svc.Status.LoadBalancer, nlb.DNSName)
	}
	if !hasFinalizer(svc) {
		return "no finalizer"
	}
	if len(got.listeners) != len(svc.Spec.Ports) || len(got.targetGroups) != len(svc.Spec.Ports) {
		return fmt.Sprintf("want %d listeners and target groups for ports %v, have: %s", len(svc.Spec.Ports), svc.Spec.Ports, got)
	}
	tgs := map[string]fakeaws.TargetGroup{}
	for _, tg := range got.targetGroups {
		tgs[tg.ARN] = tg
	}
	var wantRules, haveRules []string
	for _, p := range svc.Spec.Ports {
		i := slices.IndexFunc(got.listeners, func(l fakeaws.Listener) bool { return l.Port == p.Port })
		if i < 0 || got.listeners[i].Protocol != "TCP" {
			return fmt.Sprintf("no TCP listener on port %d: %s", p.Port, got)
		}
		tg, ok := tgs[got.listeners[i].TargetGroupARN]
		if !ok || tg.Port != p.NodePort || tg.Protocol != "TCP" || tg.TargetType != "instance" {
			return fmt.Sprintf("listener %d forwards to %+v, want our TCP instance target group on node port %d", p.Port, tg, p.NodePort)
		}
		var targets []string
		for _, tgt := range tg.Targets {
			if tgt.Port != p.NodePort {
				return fmt.Sprintf("target %s on port %d, want node port %d", tgt.ID, tgt.Port, p.NodePort)
			}
			targets = append(targets, tgt.ID)
		}
		if !slices.Equal(sortedCopy(targets, strings.Compare), instances) {
			return fmt.Sprintf("targets of port %d: %v, want %v", p.Port, targets, instances)
		}
		// Traffic from the source ranges (default: anywhere) and, unless
		// that is anywhere, health checks from the NLB's subnets, both on
		// the node port.
		if len(svc.Spec.LoadBalancerSourceRanges) == 0 {
			wantRules = append(wantRules, fmt.Sprintf("tcp/%d from 0.0.0.0/0", p.NodePort))
			continue
		}
		for _, cidr := range svc.Spec.LoadBalancerSourceRanges {
			wantRules = append(wantRules, fmt.Sprintf("tcp/%d from %s", p.NodePort, cidr))
		}
		for _, cidr := range awsSubnetCIDRs {
			wantRules = append(wantRules, fmt.Sprintf("tcp/%d from %s", p.NodePort, cidr))
		}
	}
	for _, r := range got.rules {
		if r.GroupID != awsNodesSG || r.FromPort != r.ToPort {
			return fmt.Sprintf("unexpected rule %+v", r)
		}
		haveRules = append(haveRules, fmt.Sprintf("%s/%d from %s", r.Protocol, r.FromPort, r.CIDR))
	}
	slices.Sort(wantRules)
	slices.Sort(haveRules)
	if !slices.Equal(wantRules, haveRules) {
		return fmt.Sprintf("security group rules %v, want %v", haveRules, wantRules)
	}
	return ""
}
