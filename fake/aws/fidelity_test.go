package aws

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// nlbInput is a CreateLoadBalancer request for an NLB called name.
func nlbInput(name string) *elb.CreateLoadBalancerInput {
	return &elb.CreateLoadBalancerInput{
		Name: aws.String(name), Type: elbtypes.LoadBalancerTypeEnumNetwork, Scheme: elbtypes.LoadBalancerSchemeEnumInternetFacing,
		SubnetMappings: []elbtypes.SubnetMapping{{SubnetId: aws.String("subnet-a")}, {SubnetId: aws.String("subnet-b")}},
		Tags:           []elbtypes.Tag{{Key: aws.String("owner"), Value: aws.String("me")}},
	}
}

func tgInput(name, protocol string, port int32) *elb.CreateTargetGroupInput {
	return &elb.CreateTargetGroupInput{Name: aws.String(name), Protocol: elbtypes.ProtocolEnum(protocol), Port: aws.Int32(port), VpcId: aws.String("vpc-1")}
}

func listenerInput(lbARN, tgARN *string, port int32, protocol string) *elb.CreateListenerInput {
	return &elb.CreateListenerInput{LoadBalancerArn: lbARN, Port: aws.Int32(port), Protocol: elbtypes.ProtocolEnum(protocol),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}}
}

func TestCreateLoadBalancerAndListenerAreIdempotent(t *testing.T) {
	s, c, _ := newClients(t)
	ctx := context.Background()
	first, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
	if err != nil {
		t.Fatal(err)
	}
	lbARN := first.LoadBalancers[0].LoadBalancerArn
	again, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
	if err != nil || aws.ToString(again.LoadBalancers[0].LoadBalancerArn) != aws.ToString(lbARN) {
		t.Errorf("creating the same load balancer again = %+v, %v; want the existing %s", again, err, aws.ToString(lbARN))
	}
	// Subnets in another order are the same settings.
	reordered := nlbInput("lb1")
	reordered.SubnetMappings[0], reordered.SubnetMappings[1] = reordered.SubnetMappings[1], reordered.SubnetMappings[0]
	if again, err := c.CreateLoadBalancer(ctx, reordered); err != nil || aws.ToString(again.LoadBalancers[0].LoadBalancerArn) != aws.ToString(lbARN) {
		t.Errorf("same load balancer with subnets reordered = %v, %v", again, err)
	}
	for desc, tweak := range map[string]func(*elb.CreateLoadBalancerInput){
		"other subnets": func(in *elb.CreateLoadBalancerInput) { in.SubnetMappings = in.SubnetMappings[:1] },
		"other scheme":  func(in *elb.CreateLoadBalancerInput) { in.Scheme = elbtypes.LoadBalancerSchemeEnumInternal },
		"other type":    func(in *elb.CreateLoadBalancerInput) { in.Type = elbtypes.LoadBalancerTypeEnumApplication },
		"other tags":    func(in *elb.CreateLoadBalancerInput) { in.Tags[0].Value = aws.String("someone-else") },
		"an Elastic IP": func(in *elb.CreateLoadBalancerInput) { in.SubnetMappings[0].AllocationId = aws.String("eipalloc-1") },
	} {
		in := nlbInput("lb1")
		tweak(in)
		var dup *elbtypes.DuplicateLoadBalancerNameException
		if _, err := c.CreateLoadBalancer(ctx, in); !errors.As(err, &dup) {
			t.Errorf("same name, %s: %v, want DuplicateLoadBalancerName", desc, err)
		}
	}
	if n := len(s.LoadBalancers()); n != 1 {
		t.Errorf("%d load balancers, want 1", n)
	}

	tcp, err := c.CreateTargetGroup(ctx, tgInput("tcp", "TCP", 30080))
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.CreateTargetGroup(ctx, tgInput("other", "TCP", 30081))
	if err != nil {
		t.Fatal(err)
	}
	tcpARN, otherARN := tcp.TargetGroups[0].TargetGroupArn, other.TargetGroups[0].TargetGroupArn
	l, err := c.CreateListener(ctx, listenerInput(lbARN, tcpARN, 80, "TCP"))
	if err != nil {
		t.Fatal(err)
	}
	lAgain, err := c.CreateListener(ctx, listenerInput(lbARN, tcpARN, 80, "TCP"))
	if err != nil || aws.ToString(lAgain.Listeners[0].ListenerArn) != aws.ToString(l.Listeners[0].ListenerArn) {
		t.Errorf("creating the same listener again = %+v, %v; want the existing one", lAgain, err)
	}
	var dup *elbtypes.DuplicateListenerException
	if _, err := c.CreateListener(ctx, listenerInput(lbARN, otherARN, 80, "TCP")); !errors.As(err, &dup) {
		t.Errorf("listener on a taken port to another target group: %v, want DuplicateListener", err)
	}
	if n := len(s.Listeners()); n != 1 {
		t.Errorf("%d listeners, want 1", n)
	}
	if tgs := s.TargetGroups(); len(tgs[0].LoadBalancerARNs)+len(tgs[1].LoadBalancerARNs) != 1 {
		t.Errorf("a refused listener attached its target group: %+v", tgs)
	}
}

func TestDescribeTagsNamesTheMissingResourceType(t *testing.T) {
	s, c, _ := newClients(t)
	ctx := context.Background()
	lb, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := c.CreateTargetGroup(ctx, tgInput("tg1", "TCP", 30080))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.CreateListener(ctx, listenerInput(lb.LoadBalancers[0].LoadBalancerArn, tg.TargetGroups[0].TargetGroupArn, 80, "TCP"))
	if err != nil {
		t.Fatal(err)
	}
	lbARN, tgARN, lARN := aws.ToString(lb.LoadBalancers[0].LoadBalancerArn), aws.ToString(tg.TargetGroups[0].TargetGroupArn), aws.ToString(l.Listeners[0].ListenerArn)
	if out, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{lbARN, tgARN, lARN}}); err != nil || len(out.TagDescriptions) != 3 {
		t.Errorf("tags of a load balancer, target group and listener = %+v, %v", out, err)
	}
	goneTG := strings.Replace(tgARN, "/tg1/", "/gone/", 1)
	goneLB := strings.Replace(lbARN, "/lb1/", "/gone/", 1)
	goneListener := lARN + "0"

	var tgNotFound *elbtypes.TargetGroupNotFoundException
	if _, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{lbARN, goneTG}}); !errors.As(err, &tgNotFound) {
		t.Errorf("DescribeTags of an unknown target group = %v, want TargetGroupNotFound", err)
	}
	if _, err := c.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{goneTG}, Tags: []elbtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); !errors.As(err, &tgNotFound) {
		t.Errorf("AddTags to an unknown target group = %v, want TargetGroupNotFound", err)
	}
	var lbNotFound *elbtypes.LoadBalancerNotFoundException
	if _, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{goneLB}}); !errors.As(err, &lbNotFound) {
		t.Errorf("DescribeTags of an unknown load balancer = %v, want LoadBalancerNotFound", err)
	}
	var lNotFound *elbtypes.ListenerNotFoundException
	if _, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{goneListener}}); !errors.As(err, &lNotFound) {
		t.Errorf("DescribeTags of an unknown listener = %v, want ListenerNotFound", err)
	}
	if _, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{"not-an-arn"}}); errorCode(err) != "ValidationError" {
		t.Errorf("DescribeTags of a malformed ARN = %v, want ValidationError", err)
	}
	// A target group deleted since: the case a caller meets for real.
	if _, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lbARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tgARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{tgARN}}); !errors.As(err, &tgNotFound) {
		t.Errorf("DescribeTags of a deleted target group = %v, want TargetGroupNotFound", err)
	}
	if n := len(s.TargetGroups()); n != 0 {
		t.Errorf("%d target groups left", n)
	}
}

func TestDescribeSecurityGroupsReturnsTheRules(t *testing.T) {
	s, _, c := newClients(t)
	ctx := context.Background()
	s.AddSecurityGroup(SecurityGroup{ID: "sg-empty", Name: "empty", VPCID: "vpc-1"})
	s.AddSecurityGroupRule(SecurityGroupRule{GroupID: "sg-1", Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "10.0.0.0/8"})
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String("sg-1"), IpPermissions: []ec2types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(30080), ToPort: aws.Int32(30080),
			IpRanges: []ec2types.IpRange{{CidrIp: aws.String("198.51.100.0/24"), Description: aws.String("web")}, {CidrIp: aws.String("192.0.2.0/24")}}},
		{IpProtocol: aws.String("udp"), FromPort: aws.Int32(30000), ToPort: aws.Int32(30100), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-1", "sg-empty"}})
	if err != nil || len(out.SecurityGroups) != 2 {
		t.Fatalf("DescribeSecurityGroups = %+v, %v", out, err)
	}
	var sg1, empty ec2types.SecurityGroup
	for _, g := range out.SecurityGroups {
		switch aws.ToString(g.GroupId) {
		case "sg-1":
			sg1 = g
		case "sg-empty":
			empty = g
		}
	}
	if len(empty.IpPermissions) != 0 {
		t.Errorf("a group without rules has permissions %+v", empty.IpPermissions)
	}
	perms := sg1.IpPermissions
	if len(perms) != 3 {
		t.Fatalf("sg-1 permissions = %+v, want 3 (all traffic, tcp 30080, udp 30000-30100)", perms)
	}
	all, tcp, udp := perms[0], perms[1], perms[2]
	if aws.ToString(all.IpProtocol) != "-1" || all.FromPort != nil || all.ToPort != nil || len(all.IpRanges) != 1 || aws.ToString(all.IpRanges[0].CidrIp) != "10.0.0.0/8" {
		t.Errorf("all-traffic permission = %+v, want -1 without ports from 10.0.0.0/8", all)
	}
	if aws.ToString(tcp.IpProtocol) != "tcp" || aws.ToInt32(tcp.FromPort) != 30080 || aws.ToInt32(tcp.ToPort) != 30080 || len(tcp.IpRanges) != 2 ||
		aws.ToString(tcp.IpRanges[0].CidrIp) != "192.0.2.0/24" || tcp.IpRanges[0].Description != nil ||
		aws.ToString(tcp.IpRanges[1].CidrIp) != "198.51.100.0/24" || aws.ToString(tcp.IpRanges[1].Description) != "web" {
		t.Errorf("tcp permission = %+v", tcp)
	}
	if aws.ToString(udp.IpProtocol) != "udp" || aws.ToInt32(udp.FromPort) != 30000 || aws.ToInt32(udp.ToPort) != 30100 || len(udp.IpRanges) != 1 {
		t.Errorf("udp permission = %+v", udp)
	}
	// Revoked rules leave the group's permissions.
	var ids []string
	for _, r := range s.SecurityGroupRules() {
		if r.Protocol != "-1" {
			ids = append(ids, r.ID)
		}
	}
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String("sg-1"), SecurityGroupRuleIds: ids}); err != nil {
		t.Fatal(err)
	}
	out, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-1"}})
	if err != nil || len(out.SecurityGroups[0].IpPermissions) != 1 {
		t.Errorf("after revoke: %+v, %v", out, err)
	}
}

func TestNewLoadBalancerProvisionsThenTurnsActive(t *testing.T) {
	s, c, _ := newClients(t)
	ctx := context.Background()
	describe := func(name string) elbtypes.LoadBalancerStateEnum {
		t.Helper()
		out, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		return out.LoadBalancers[0].State.Code
	}
	const provisioning, active = elbtypes.LoadBalancerStateEnumProvisioning, elbtypes.LoadBalancerStateEnumActive

	created, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := created.LoadBalancers[0].State.Code; got != provisioning {
		t.Errorf("CreateLoadBalancer answered %s, want provisioning", got)
	}
	// The default: one describe still provisioning, then active for good.
	if got := []elbtypes.LoadBalancerStateEnum{describe("lb1"), describe("lb1"), describe("lb1")}; got[0] != provisioning || got[1] != active || got[2] != active {
		t.Errorf("states by describe = %v, want provisioning, active, active", got)
	}
	// Reads of the fake's state do not move it on.
	s.SetProvisioningDescribes(2)
	if _, err := c.CreateLoadBalancer(ctx, nlbInput("lb2")); err != nil {
		t.Fatal(err)
	}
	if lbs := s.LoadBalancers(); lbs[1].State != "provisioning" {
		t.Errorf("LoadBalancers() = %+v, want lb2 provisioning", lbs)
	}
	// A repeated create is answered with the load balancer as it is.
	if again, err := c.CreateLoadBalancer(ctx, nlbInput("lb2")); err != nil || again.LoadBalancers[0].State.Code != provisioning {
		t.Errorf("repeated create = %+v, %v", again, err)
	}
	if got := []elbtypes.LoadBalancerStateEnum{describe("lb2"), describe("lb2"), describe("lb2")}; got[0] != provisioning || got[1] != provisioning || got[2] != active {
		t.Errorf("with 2 provisioning describes: %v", got)
	}
	// Everything else works while provisioning, as on AWS.
	s.SetProvisioningDescribes(0)
	lb3, err := c.CreateLoadBalancer(ctx, nlbInput("lb3"))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := c.CreateTargetGroup(ctx, tgInput("tg3", "TCP", 30080))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateListener(ctx, listenerInput(lb3.LoadBalancers[0].LoadBalancerArn, tg.TargetGroups[0].TargetGroupArn, 80, "TCP")); err != nil {
		t.Errorf("listener on a provisioning load balancer: %v", err)
	}
	if got := describe("lb3"); got != active {
		t.Errorf("with 0 provisioning describes the first describe says %s", got)
	}
	// Seeded load balancers exist already: active.
	s.AddLoadBalancer(LoadBalancer{Name: "seeded", VPCID: "vpc-1", Subnets: []string{"subnet-a"}})
	if got := describe("seeded"); got != active {
		t.Errorf("seeded load balancer is %s", got)
	}
}

func TestRegisteredTargetsStartInitial(t *testing.T) {
	s, c, _ := newClients(t)
	ctx := context.Background()
	s.AddInstance(Instance{ID: "i-2", VPCID: "vpc-1", SubnetID: "subnet-a", AvailabilityZone: "us-east-1a"})
	s.AddInstance(Instance{ID: "i-3", VPCID: "vpc-1", SubnetID: "subnet-b", AvailabilityZone: "us-east-1b"})
	s.SetInstanceHealthy("i-2", false)
	lb, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := c.CreateTargetGroup(ctx, tgInput("tg1", "TCP", 30080))
	if err != nil {
		t.Fatal(err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}, {Id: aws.String("i-2")}, {Id: aws.String("i-3")}}}); err != nil {
		t.Fatal(err)
	}
	health := func() map[string]string {
		t.Helper()
		out, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, d := range out.TargetHealthDescriptions {
			got[aws.ToString(d.Target.Id)] = string(d.TargetHealth.State) + "/" + string(d.TargetHealth.Reason)
		}
		return got
	}
	want := func(desc string, got map[string]string, expect map[string]string) {
		t.Helper()
		for id, w := range expect {
			if got[id] != w {
				t.Errorf("%s: %s is %s, want %s (all: %v)", desc, id, got[id], w, got)
			}
		}
	}
	// No listener forwards to the group yet: unused, and the initial
	// checks have not started.
	want("before the listener", health(), map[string]string{"i-1": "unused/Target.NotInUse", "i-2": "unused/Target.NotInUse"})
	want("before the listener, again", health(), map[string]string{"i-1": "unused/Target.NotInUse"})
	if _, err := c.CreateListener(ctx, listenerInput(lb.LoadBalancers[0].LoadBalancerArn, tgARN, 80, "TCP")); err != nil {
		t.Fatal(err)
	}
	want("first look in use", health(), map[string]string{"i-1": "initial/Elb.InitialHealthChecking", "i-2": "initial/Elb.InitialHealthChecking", "i-3": "initial/Elb.InitialHealthChecking"})
	s.AddInstance(Instance{ID: "i-3", VPCID: "vpc-1", SubnetID: "subnet-b", AvailabilityZone: "us-east-1b", State: "stopped"})
	want("after the initial checks", health(), map[string]string{"i-1": "healthy/", "i-2": "unhealthy/Target.FailedHealthChecks", "i-3": "unused/Target.InvalidState"})
	s.SetInstanceHealthy("i-2", true)
	want("recovered", health(), map[string]string{"i-2": "healthy/"})

	// A target registered again after deregistration starts over.
	if _, err := c.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}}}); err != nil {
		t.Fatal(err)
	}
	want("re-registered", health(), map[string]string{"i-1": "initial/Elb.InitialHealthChecking", "i-2": "healthy/"})
	want("re-registered, checked", health(), map[string]string{"i-1": "healthy/"})

	s.SetInitialHealthDescribes(0)
	if _, err := c.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}}}); err != nil {
		t.Fatal(err)
	}
	want("no initial checks", health(), map[string]string{"i-1": "healthy/"})
}

func TestFaultAfterApplyLosesTheAnswerNotTheWrite(t *testing.T) {
	t.Run("dropped after apply", func(t *testing.T) {
		s, c, _ := newClients(t) // no retries: the test sees each answer
		s.InjectFault(Fault{Action: "CreateLoadBalancer", AfterApply: true, Drop: true, Count: 1})
		ctx := context.Background()
		_, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
		var sendErr *smithyhttp.RequestSendError
		if !errors.As(err, &sendErr) || retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) != aws.TrueTernary {
			t.Errorf("dropped answer = %v (%T), want a retryable connection error", err, err)
		}
		lbs := s.LoadBalancers()
		if len(lbs) != 1 {
			t.Fatalf("load balancers after a dropped answer = %+v, want the one created", lbs)
		}
		// The caller's retry finds it.
		again, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
		if err != nil || aws.ToString(again.LoadBalancers[0].LoadBalancerArn) != lbs[0].ARN || len(s.LoadBalancers()) != 1 {
			t.Errorf("retry = %+v, %v; want the existing load balancer", again, err)
		}
		calls := s.Calls()
		if len(calls) != 2 || !calls[0].Dropped || !calls[0].Applied || calls[0].ErrorCode != "" || calls[1].Dropped {
			t.Errorf("call log = %+v", calls)
		}
	})
	t.Run("error after apply", func(t *testing.T) {
		s, c, _ := newClients(t)
		s.InjectFault(Fault{Action: "CreateTargetGroup", AfterApply: true, Code: "InternalFailure", Count: 1})
		_, err := c.CreateTargetGroup(context.Background(), tgInput("tg1", "TCP", 30080))
		var re *awshttp.ResponseError
		if errorCode(err) != "InternalFailure" || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
			t.Errorf("error = %v, want InternalFailure 500", err)
		}
		if n := len(s.TargetGroups()); n != 1 {
			t.Errorf("%d target groups after an error answered after apply, want 1", n)
		}
		if calls := s.Calls(); len(calls) != 1 || calls[0].ErrorCode != "InternalFailure" || !calls[0].Applied {
			t.Errorf("call log = %+v", calls)
		}
	})
	t.Run("dropped before apply", func(t *testing.T) {
		s, c, _ := newClients(t)
		s.InjectFault(Fault{Action: "CreateTargetGroup", Drop: true, Count: 1})
		if _, err := c.CreateTargetGroup(context.Background(), tgInput("tg1", "TCP", 30080)); err == nil {
			t.Error("a dropped request succeeded")
		}
		if n := len(s.TargetGroups()); n != 0 {
			t.Errorf("a request dropped before apply created %d target groups", n)
		}
		if calls := s.Calls(); len(calls) != 1 || !calls[0].Dropped || calls[0].Applied {
			t.Errorf("call log = %+v", calls)
		}
	})
	t.Run("the SDK's retryer recovers through idempotent creates", func(t *testing.T) {
		s, _, _ := newClients(t)
		srvURL := serve(t, s)
		cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srvURL),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
			}),
			Retryer: func() aws.Retryer {
				return retry.NewStandard(func(o *retry.StandardOptions) {
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
					o.RateLimiter = ratelimit.None
				})
			},
		}
		c := elb.NewFromConfig(cfg)
		for _, a := range []string{"CreateLoadBalancer", "CreateTargetGroup", "CreateListener"} {
			s.InjectFault(Fault{Action: a, AfterApply: true, Drop: true, Count: 1})
		}
		ctx := context.Background()
		lb, err := c.CreateLoadBalancer(ctx, nlbInput("lb1"))
		if err != nil {
			t.Fatal(err)
		}
		tg, err := c.CreateTargetGroup(ctx, tgInput("tg1", "TCP", 30080))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateListener(ctx, listenerInput(lb.LoadBalancers[0].LoadBalancerArn, tg.TargetGroups[0].TargetGroupArn, 80, "TCP")); err != nil {
			t.Fatal(err)
		}
		if lbs, tgs, ls := s.LoadBalancers(), s.TargetGroups(), s.Listeners(); len(lbs) != 1 || len(tgs) != 1 || len(ls) != 1 {
			t.Errorf("after retried creates: %d load balancers, %d target groups, %d listeners; want one each", len(lbs), len(tgs), len(ls))
		}
		if hits := s.FaultHits(); hits != 3 {
			t.Errorf("%d faults hit, want 3", hits)
		}
	})
}

// serve runs s on a server of its own and returns its URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}
