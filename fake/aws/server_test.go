package aws

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
)

// newClients starts the fake and returns real SDK clients pointed at it,
// without retries so that every error reaches the test.
func newClients(t *testing.T) (*Server, *elb.Client, *ec2.Client) {
	t.Helper()
	s := New("us-east-1")
	s.AddSubnet(Subnet{ID: "subnet-a", VPCID: "vpc-1", CIDRBlock: "10.0.1.0/24", AvailabilityZone: "us-east-1a", Tags: map[string]string{"Name": "a", "kubernetes.io/role/elb": "1"}})
	s.AddSubnet(Subnet{ID: "subnet-b", VPCID: "vpc-1", CIDRBlock: "10.0.2.0/24", AvailabilityZone: "us-east-1b"})
	s.AddSecurityGroup(SecurityGroup{ID: "sg-1", Name: "nodes", VPCID: "vpc-1", Tags: map[string]string{"team": "x"}})
	s.AddInstance(Instance{ID: "i-1", VPCID: "vpc-1", SubnetID: "subnet-a", AvailabilityZone: "us-east-1a", SecurityGroupIDs: []string{"sg-1"}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		}),
		Retryer: func() aws.Retryer { return aws.NopRetryer{} },
	}
	return s, elb.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
}

func TestELBv2RoundTripThroughTheSDK(t *testing.T) {
	s, c, _ := newClients(t)
	ctx := context.Background()
	lbOut, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		Name: aws.String("lb1"), Type: elbtypes.LoadBalancerTypeEnumNetwork,
		SubnetMappings: []elbtypes.SubnetMapping{{SubnetId: aws.String("subnet-a"), AllocationId: aws.String("eipalloc-1")}, {SubnetId: aws.String("subnet-b")}},
		Tags:           []elbtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lb := lbOut.LoadBalancers[0]
	if aws.ToString(lb.DNSName) == "" || lb.Type != elbtypes.LoadBalancerTypeEnumNetwork || len(lb.AvailabilityZones) != 2 ||
		aws.ToString(lb.AvailabilityZones[0].LoadBalancerAddresses[0].AllocationId) != "eipalloc-1" || aws.ToString(lb.VpcId) != "vpc-1" {
		t.Errorf("created load balancer = %+v", lb)
	}
	tgIn := &elb.CreateTargetGroupInput{Name: aws.String("tg1"), Protocol: elbtypes.ProtocolEnumTcpUdp, Port: aws.Int32(30053), VpcId: aws.String("vpc-1"),
		HealthCheckProtocol: elbtypes.ProtocolEnumHttp, HealthCheckPath: aws.String("/healthz"), HealthCheckPort: aws.String("32000")}
	tgOut, err := c.CreateTargetGroup(ctx, tgIn)
	if err != nil {
		t.Fatal(err)
	}
	tg := tgOut.TargetGroups[0]
	if tg.Protocol != elbtypes.ProtocolEnumTcpUdp || aws.ToString(tg.HealthCheckPath) != "/healthz" || aws.ToInt32(tg.HealthyThresholdCount) != 5 {
		t.Errorf("created target group = %+v", tg)
	}
	again, err := c.CreateTargetGroup(ctx, tgIn)
	if err != nil || aws.ToString(again.TargetGroups[0].TargetGroupArn) != aws.ToString(tg.TargetGroupArn) {
		t.Errorf("creating an identical target group again = %v, %v; want the existing one", again, err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tg.TargetGroupArn, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tg.TargetGroupArn, Targets: []elbtypes.TargetDescription{{Id: aws.String("i-missing")}}}); errorCode(err) != "InvalidTarget" {
		t.Errorf("registering a missing instance = %v, want InvalidTarget", err)
	}
	if _, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancerArn, Port: aws.Int32(53), Protocol: elbtypes.ProtocolEnumTcp,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroupArn}}}); errorCode(err) != "IncompatibleProtocols" {
		t.Errorf("TCP listener to a TCP_UDP target group = %v, want IncompatibleProtocols", err)
	}
	if _, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancerArn, Port: aws.Int32(53), Protocol: elbtypes.ProtocolEnumTcpUdp,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroupArn}}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []elbtypes.TargetHealthStateEnum{elbtypes.TargetHealthStateEnumInitial, elbtypes.TargetHealthStateEnumHealthy} {
		health, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tg.TargetGroupArn})
		if err != nil || len(health.TargetHealthDescriptions) != 1 || aws.ToInt32(health.TargetHealthDescriptions[0].Target.Port) != 30053 ||
			health.TargetHealthDescriptions[0].TargetHealth.State != want {
			t.Errorf("target health = %+v, %v; want %s", health, err, want)
		}
	}
	var inUse *elbtypes.ResourceInUseException
	if _, err := c.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: tg.TargetGroupArn}); !errors.As(err, &inUse) {
		t.Errorf("deleting a target group in use = %v, want ResourceInUseException", err)
	}
	tags, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{aws.ToString(lb.LoadBalancerArn)}})
	if err != nil || len(tags.TagDescriptions) != 1 || aws.ToString(tags.TagDescriptions[0].Tags[0].Value) != "v" {
		t.Errorf("tags = %+v, %v", tags, err)
	}
	if _, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lb.LoadBalancerArn}); err != nil {
		t.Fatal(err)
	}
	if len(s.Listeners()) != 0 {
		t.Errorf("listeners outlived their load balancer")
	}
	if _, err := c.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: tg.TargetGroupArn}); err != nil {
		t.Errorf("deleting the freed target group: %v", err)
	}
	var notFound *elbtypes.LoadBalancerNotFoundException
	if _, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"lb1"}}); !errors.As(err, &notFound) {
		t.Errorf("describing a deleted load balancer = %v, want LoadBalancerNotFoundException", err)
	}
	var reads, writes int
	for _, call := range s.Calls() {
		if call.Write {
			writes++
		} else {
			reads++
		}
	}
	if r, w := s.CallCounts(); r != reads || w != writes || r != 4 {
		t.Errorf("call counts = %d reads, %d writes; log has %d, %d (want 4 reads)", r, w, reads, writes)
	}
}

func TestEC2RoundTripThroughTheSDK(t *testing.T) {
	s, _, c := newClients(t)
	ctx := context.Background()
	inst, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{"i-1", "i-nope"}}}})
	if err != nil || len(inst.Reservations) != 1 || aws.ToString(inst.Reservations[0].Instances[0].SecurityGroups[0].GroupId) != "sg-1" ||
		inst.Reservations[0].Instances[0].State.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("instances = %+v, %v", inst, err)
	}
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"kubernetes.io/role/elb"}}}})
	if err != nil || len(subnets.Subnets) != 1 || aws.ToString(subnets.Subnets[0].CidrBlock) != "10.0.1.0/24" {
		t.Errorf("subnets = %+v, %v", subnets, err)
	}
	if _, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-nope"}}); errorCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("missing subnet = %v, want InvalidSubnetID.NotFound", err)
	}
	auth, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String("sg-1"),
		IpPermissions: []ec2types.IpPermission{{IpProtocol: aws.String("udp"), FromPort: aws.Int32(30053), ToPort: aws.Int32(30053),
			IpRanges: []ec2types.IpRange{{CidrIp: aws.String("192.0.2.0/24"), Description: aws.String("d")}, {CidrIp: aws.String("198.51.100.0/24")}}}},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSecurityGroupRule, Tags: []ec2types.Tag{{Key: aws.String("owner"), Value: aws.String("me")}}}},
	})
	if err != nil || len(auth.SecurityGroupRules) != 2 || aws.ToString(auth.SecurityGroupRules[0].Description) != "d" {
		t.Fatalf("authorize = %+v, %v", auth, err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String("sg-1"),
		IpPermissions: []ec2types.IpPermission{{IpProtocol: aws.String("udp"), FromPort: aws.Int32(30053), ToPort: aws.Int32(30053), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("192.0.2.0/24")}}}},
	}); errorCode(err) != "InvalidPermission.Duplicate" {
		t.Errorf("duplicate rule = %v, want InvalidPermission.Duplicate", err)
	}
	rules, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:owner"), Values: []string{"me"}}}})
	if err != nil || len(rules.SecurityGroupRules) != 2 || aws.ToInt32(rules.SecurityGroupRules[1].FromPort) != 30053 || aws.ToString(rules.SecurityGroupRules[1].Tags[0].Value) != "me" {
		t.Fatalf("rules = %+v, %v", rules, err)
	}
	groups, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-1"}})
	if err != nil || len(groups.SecurityGroups) != 1 || aws.ToString(groups.SecurityGroups[0].Tags[0].Key) != "team" {
		t.Errorf("groups = %+v, %v", groups, err)
	}
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String("sg-1"),
		SecurityGroupRuleIds: []string{aws.ToString(rules.SecurityGroupRules[0].SecurityGroupRuleId), aws.ToString(rules.SecurityGroupRules[1].SecurityGroupRuleId)}}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.SecurityGroupRules()); n != 0 {
		t.Errorf("%d rules left after revoke", n)
	}
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String("sg-1"), SecurityGroupRuleIds: []string{"sgr-gone"}}); errorCode(err) != "InvalidSecurityGroupRuleId.NotFound" {
		t.Errorf("revoking a missing rule = %v", err)
	}
}

func TestFaultsAnswerWithTheProtocolsErrorShapes(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		fault      Fault
		call       func(ctx context.Context, c *elb.Client, e *ec2.Client) error
		wantCode   string
		wantStatus int
	}{
		{"ELBv2 throttling", Fault{Action: "DescribeLoadBalancers", Code: "Throttling", Count: 1},
			func(ctx context.Context, c *elb.Client, _ *ec2.Client) error {
				_, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
				return err
			}, "Throttling", 400},
		{"EC2 request limit", Fault{Action: "DescribeSubnets", Code: "RequestLimitExceeded", Count: 1},
			func(ctx context.Context, _ *elb.Client, e *ec2.Client) error {
				_, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
				return err
			}, "RequestLimitExceeded", 400},
		{"ELBv2 internal failure", Fault{Code: "InternalFailure", Count: 1},
			func(ctx context.Context, c *elb.Client, _ *ec2.Client) error {
				_, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{})
				return err
			}, "InternalFailure", 500},
		{"EC2 unavailable", Fault{Code: "ServiceUnavailable", Count: 1},
			func(ctx context.Context, _ *elb.Client, e *ec2.Client) error {
				_, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
				return err
			}, "ServiceUnavailable", 503},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, c, e := newClients(t)
			s.InjectFault(tc.fault)
			ctx := context.Background()
			err := tc.call(ctx, c, e)
			var re *awshttp.ResponseError
			if errorCode(err) != tc.wantCode || !errors.As(err, &re) || re.HTTPStatusCode() != tc.wantStatus {
				t.Errorf("error = %v, want code %s status %d", err, tc.wantCode, tc.wantStatus)
			}
			if err := tc.call(ctx, c, e); err != nil {
				t.Errorf("the fault outlived its count: %v", err)
			}
			calls := s.Calls()
			if len(calls) != 2 || calls[0].ErrorCode != tc.wantCode || calls[1].ErrorCode != "" {
				t.Errorf("call log = %+v", calls)
			}
		})
	}
}

func TestUnsignedOrMisscopedRequestsAreRefused(t *testing.T) {
	s, _, _ := newClients(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, tc := range []struct {
		desc, auth, body, wantCode string
	}{
		{"ELBv2 unsigned", "", "Action=DescribeLoadBalancers&Version=2015-12-01", "MissingAuthenticationToken"},
		{"EC2 unsigned", "", "Action=DescribeSubnets&Version=2016-11-15", "AuthFailure"},
		{"EC2 signed for ELBv2", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=00",
			"Action=DescribeSubnets&Version=2016-11-15", "SignatureDoesNotMatch"},
		{"other region", "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
			"Action=DescribeSubnets&Version=2016-11-15", "SignatureDoesNotMatch"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Code>"+tc.wantCode+"</Code>") {
				t.Errorf("answer %d %s, want 403 %s", resp.StatusCode, body, tc.wantCode)
			}
		})
	}
	for _, c := range s.Calls() {
		if c.ErrorCode == "" {
			t.Errorf("call %+v was served", c)
		}
	}
}

func TestLatencyFaultDelaysTheCall(t *testing.T) {
	s, c, _ := newClients(t)
	s.InjectFault(Fault{Action: "DescribeLoadBalancers", Latency: 50 * time.Millisecond, Count: 1})
	start := time.Now()
	if _, err := c.DescribeLoadBalancers(context.Background(), &elb.DescribeLoadBalancersInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("call took %v, want at least the injected 50ms", d)
	}
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
