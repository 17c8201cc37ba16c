package aws

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	fakeaws "github.com/extlb/extlb/fake/aws"
	"github.com/extlb/extlb/test/fixtures"
)

const (
	testCluster = "test"
	testRegion  = "us-east-1"
	testVPC     = "vpc-0a1b2c3d"
	nodesSG     = "sg-0000000000000node"
	extraSG     = "sg-000000000000extra"
)

// seenActions collects the IAM actions every fake saw during the run, for
// the policy check in TestMain.
var seenActions = struct {
	sync.Mutex
	set map[string]bool
}{set: map[string]bool{}}

// testEnv is a fake AWS with a VPC, subnets, security groups and instances,
// and a Provider that talks to it through the real SDK clients.
type testEnv struct {
	t    testing.TB
	fake *fakeaws.Server
	url  string
	p    *Provider
	ctx  context.Context
	// logger keeps what the provider logged, for logs().
	logger klog.Logger
}

// logs returns everything logged through e.ctx so far.
func (e *testEnv) logs() string {
	if u, ok := e.logger.GetSink().(ktesting.Underlier); ok {
		return u.GetBuffer().String()
	}
	return ""
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	fake := fakeaws.New(testRegion)
	clusterTag := clusterTagPrefix + testCluster
	for _, s := range []fakeaws.Subnet{
		{ID: "subnet-a", CIDRBlock: "10.0.1.0/24", AvailabilityZone: "us-east-1a", Tags: map[string]string{"Name": "public-a", publicSubnetRoleTag: "1", clusterTag: "shared"}},
		{ID: "subnet-b", CIDRBlock: "10.0.2.0/24", AvailabilityZone: "us-east-1b", Tags: map[string]string{"Name": "public-b", publicSubnetRoleTag: "1"}},
		{ID: "subnet-a2", CIDRBlock: "10.0.4.0/24", AvailabilityZone: "us-east-1a", Tags: map[string]string{"Name": "public-a2", publicSubnetRoleTag: "1"}},
		{ID: "subnet-c", CIDRBlock: "10.0.3.0/24", AvailabilityZone: "us-east-1c", Tags: map[string]string{"Name": "private-c", internalSubnetRoleTag: "1"}},
		{ID: "subnet-x", CIDRBlock: "10.0.9.0/24", AvailabilityZone: "us-east-1c", Tags: map[string]string{"Name": "other", publicSubnetRoleTag: "1", clusterTagPrefix + "other": "owned"}},
	} {
		s.VPCID = testVPC
		fake.AddSubnet(s)
	}
	fake.AddSecurityGroup(fakeaws.SecurityGroup{ID: nodesSG, Name: "nodes", VPCID: testVPC, Tags: map[string]string{clusterTag: "owned"}})
	fake.AddSecurityGroup(fakeaws.SecurityGroup{ID: extraSG, Name: "extra", VPCID: testVPC})
	for i, id := range []string{"i-0000000000000001", "i-0000000000000002", "i-0000000000000003"} {
		fake.AddInstance(fakeaws.Instance{ID: id, VPCID: testVPC, SubnetID: "subnet-a", AvailabilityZone: "us-east-1a", PrivateIP: "10.0.1." + string(rune('1'+i)), SecurityGroupIDs: []string{nodesSG}})
	}
	fake.AddInstance(fakeaws.Instance{ID: "i-0000000000000004", VPCID: testVPC, SubnetID: "subnet-b", AvailabilityZone: "us-east-1b", SecurityGroupIDs: []string{extraSG, nodesSG}})
	fake.AddInstance(fakeaws.Instance{ID: "i-00000000000000ee", VPCID: "vpc-elsewhere", SubnetID: "subnet-z", AvailabilityZone: "us-east-1a", SecurityGroupIDs: []string{"sg-elsewhere"}})
	fake.AddInstance(fakeaws.Instance{ID: "i-00000000000000ff", VPCID: testVPC, SubnetID: "subnet-b", AvailabilityZone: "us-east-1b", State: "stopped", SecurityGroupIDs: []string{nodesSG}})

	srv := httptest.NewServer(fake)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	e := &testEnv{t: t, fake: fake, url: srv.URL, ctx: klog.NewContext(context.Background(), logger), logger: logger}
	e.p = NewFromConfig(testSDKConfig(srv.URL), Options{TargetChunkSize: 2, InUseDelay: time.Millisecond})
	t.Cleanup(func() {
		srv.Close()
		seenActions.Lock()
		defer seenActions.Unlock()
		for _, a := range fake.ActionsSeen() {
			seenActions.set[a] = true
		}
	})
	return e
}

// testSDKConfig points the SDK at the fake with static credentials and the
// standard retryer with short backoff and no client-side retry quota, so a
// throttling storm converges fast (production keeps the SDK defaults).
func testSDKConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       testRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 12
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

// writes returns the write actions the fake saw since the last reset, sorted.
func (e *testEnv) writes() []string {
	var out []string
	for _, c := range e.fake.Calls() {
		if c.Write {
			out = append(out, c.Action)
		}
	}
	sort.Strings(out)
	return out
}

func (e *testEnv) reads() []string {
	var out []string
	for _, c := range e.fake.Calls() {
		if !c.Write {
			out = append(out, c.Action)
		}
	}
	sort.Strings(out)
	return out
}

func (e *testEnv) ensure(svc *v1.Service, nodes []*v1.Node) *v1.LoadBalancerStatus {
	e.t.Helper()
	st, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes)
	if err != nil {
		e.t.Fatalf("EnsureLoadBalancer: %v", err)
	}
	return st
}

// ourRules returns the fake's rules that carry our Service's tags.
func (e *testEnv) ourRules(svc *v1.Service) []fakeaws.SecurityGroupRule {
	o := ownerOf(testCluster, svc)
	var out []fakeaws.SecurityGroupRule
	for _, r := range e.fake.SecurityGroupRules() {
		if o.owns(r.Tags) {
			out = append(out, r)
		}
	}
	return out
}

// Fixture builders.

// newService returns a LoadBalancer Service default/<name> with UID
// uid-<name>, no ports and a non-nil annotation map.
func newService(name string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-" + name), fixtures.WithEmptyAnnotations(), fixtures.WithClusterPolicy(),
	}, tweaks...)...)
}

// withPort appends a port named "<protocol>-<port>".
func withPort(port, nodePort int32, proto v1.Protocol) fixtures.ServiceTweak {
	return fixtures.WithPort(fixtures.Port(fmt.Sprintf("%s-%d", proto, port), proto, port, nodePort))
}

// withThreePorts is the standard 3-port Service: 80/TCP, 53/TCP+UDP, 443/TCP.
func withThreePorts() fixtures.ServiceTweak {
	return fixtures.Tweaks(withPort(80, 30080, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolUDP), withPort(443, 30443, v1.ProtocolTCP))
}

func newNode(name, providerID string, tweaks ...fixtures.NodeTweak) *v1.Node {
	return fixtures.Node(name, append([]fixtures.NodeTweak{fixtures.WithProviderID(providerID)}, tweaks...)...)
}

// threeNodes are nodes on instances 1..3 (one security group each).
func threeNodes() []*v1.Node {
	return []*v1.Node{
		newNode("n1", "aws:///us-east-1a/i-0000000000000001", fixtures.WithNodeLabel("pool", "a")),
		newNode("n2", "aws:///us-east-1a/i-0000000000000002", fixtures.WithNodeLabel("pool", "a")),
		newNode("n3", "aws:///us-east-1a/i-0000000000000003", fixtures.WithNodeLabel("pool", "b")),
	}
}
