// Package aws is the extlb provider for AWS: one Network Load Balancer per
// Service, with a target group of instance targets on the node port per
// listener, health checks that follow externalTrafficPolicy, and ingress
// rules in the nodes' security groups. Everything it creates is tagged with
// the cluster and the Service, and it never changes what it did not tag.
package aws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/cloud-provider/api"

	"github.com/extlb/extlb/providers"
)

// Provider implements providers.LoadBalancer with AWS Network Load Balancers.
type Provider struct {
	elb  elbv2API
	ec2  ec2API
	opts Options

	mu sync.Mutex
	// subnetCIDRs caches subnet ID -> CIDR block; a subnet's CIDR never
	// changes, so the cache saves a DescribeSubnets call on every Ensure.
	subnetCIDRs map[string]string
}

var (
	_ providers.LoadBalancer = (*Provider)(nil)
	_ providers.Describer    = (*Provider)(nil)
)

// New returns a provider that uses the given ELBv2 and EC2 clients
// (normally *elasticloadbalancingv2.Client and *ec2.Client). Zero fields of
// opts take DefaultOptions' values; opts should have passed Validate.
func New(elbClient elbv2API, ec2Client ec2API, opts Options) *Provider {
	opts = opts.withDefaults()
	return &Provider{elb: elbClient, ec2: ec2Client, opts: opts, subnetCIDRs: map[string]string{}}
}

// Capabilities says that NLBs send traffic to node ports and rewrite the
// destination address to the node's (instance targets).
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{TargetsNodePorts: true, IPMode: v1.LoadBalancerIPModeProxy, NodeLabels: true}
}

// GetLoadBalancerName returns the deterministic NLB name for the Service.
func (p *Provider) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return ownerOf(clusterName, svc).loadBalancerName()
}

// GetLoadBalancer returns the status of the Service's NLB, if it exists and
// is ours.
func (p *Provider) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	o := ownerOf(clusterName, svc)
	lb, err := p.describeLoadBalancer(ctx, o.loadBalancerName())
	if err != nil || lb == nil {
		return nil, false, err
	}
	tags, err := p.describeTags(ctx, []string{aws.ToString(lb.LoadBalancerArn)})
	if err != nil {
		return nil, false, fmt.Errorf("reading the tags of load balancer %s for %s: %w", o.loadBalancerName(), o.service, err)
	}
	if !o.owns(tags[aws.ToString(lb.LoadBalancerArn)]) {
		return nil, false, nil
	}
	return statusOf(lb), true, nil
}

func statusOf(lb *elbtypes.LoadBalancer) *v1.LoadBalancerStatus {
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{Hostname: aws.ToString(lb.DNSName)}}}
}

// describeLoadBalancer returns the load balancer called name, or nil.
func (p *Provider) describeLoadBalancer(ctx context.Context, name string) (*elbtypes.LoadBalancer, error) {
	out, err := p.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describing load balancer %s: %w", name, err)
	}
	if len(out.LoadBalancers) == 0 {
		return nil, nil
	}
	return &out.LoadBalancers[0], nil
}

// describeTags returns the tags of ELBv2 resources by ARN, 20 ARNs a call.
func (p *Provider) describeTags(ctx context.Context, arns []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for start := 0; start < len(arns); start += 20 {
		res, err := p.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: arns[start:min(start+20, len(arns))]})
		if err != nil {
			return nil, err
		}
		for _, d := range res.TagDescriptions {
			tags := map[string]string{}
			for _, t := range d.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out[aws.ToString(d.ResourceArn)] = tags
		}
	}
	return out, nil
}

func elbTags(m map[string]string) []elbtypes.Tag {
	var out []elbtypes.Tag
	for _, k := range sortedKeys(m) {
		out = append(out, elbtypes.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	switch errorCode(err) {
	case "LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound",
		"InvalidSecurityGroupRuleId.NotFound", "InvalidPermission.NotFound", "InvalidGroup.NotFound":
		return true
	}
	return false
}

// retryLater turns throttling that outlasted the SDK's own retries into a
// RetryError, so the controller comes back later instead of backing off hot.
func retryLater(err error) error {
	switch errorCode(err) {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled", "TooManyRequestsException":
		return errors.Join(err, api.NewRetryError("AWS API rate exceeded", 30*time.Second))
	}
	return err
}
