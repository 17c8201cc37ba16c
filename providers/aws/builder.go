package aws

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/spf13/pflag"

	"github.com/extlb/extlb/providers"
)

// Builder builds the aws provider from its flags (--aws-...). Credentials
// come from the SDK's default chain: environment, shared config, web
// identity (IRSA), ECS, instance profile.
type Builder struct {
	region          string
	vpcID           string
	endpoint        string
	maxAttempts     int
	targetChunkSize int
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with the default flag values.
func NewBuilder() *Builder { return &Builder{targetChunkSize: 100} }

// AddFlags registers the --aws-* flags.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&b.region, "aws-region", b.region, "AWS region; empty takes it from the SDK's default chain (AWS_REGION, shared config, instance metadata).")
	fs.StringVar(&b.vpcID, "aws-vpc-id", b.vpcID, "VPC of the cluster's nodes; empty takes it from the nodes' instances.")
	fs.StringVar(&b.endpoint, "aws-endpoint", b.endpoint, "Base URL for both the ELBv2 and EC2 APIs instead of the regional AWS endpoints (for testing or compatible clouds).")
	fs.IntVar(&b.maxAttempts, "aws-max-attempts", b.maxAttempts, "Attempts per API call, retries included, by the SDK's standard retryer (throttling and 5xx); 0 keeps the SDK default (3).")
	fs.IntVar(&b.targetChunkSize, "aws-target-chunk-size", b.targetChunkSize, "Targets per RegisterTargets/DeregisterTargets call.")
}

// Build validates the flags, loads the SDK configuration and returns the
// provider. It makes no API call.
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	if env.ClusterName == "" || len(clusterTagPrefix+env.ClusterName) > 128 {
		return nil, fmt.Errorf("--cluster-name: the aws provider tags resources kubernetes.io/cluster/<name>, so the name must be 1 to %d characters", 128-len(clusterTagPrefix))
	}
	if b.endpoint != "" {
		u, err := url.Parse(b.endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--aws-endpoint: %q is not an http(s) URL", b.endpoint)
		}
	}
	if b.maxAttempts < 0 {
		return nil, fmt.Errorf("--aws-max-attempts: %d is negative", b.maxAttempts)
	}
	if b.targetChunkSize < 1 || b.targetChunkSize > 500 {
		return nil, fmt.Errorf("--aws-target-chunk-size: %d is not from 1 to 500", b.targetChunkSize)
	}
	if b.vpcID != "" && !strings.HasPrefix(b.vpcID, "vpc-") {
		return nil, fmt.Errorf("--aws-vpc-id: %q is not a VPC ID (vpc-...)", b.vpcID)
	}
	opts := []func(*config.LoadOptions) error{config.WithEC2IMDSRegion()}
	if b.region != "" {
		opts = append(opts, config.WithRegion(b.region))
	}
	if b.maxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(b.maxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil && b.region == "" {
		return nil, fmt.Errorf("--aws-region: not set, and the SDK's default chain could not find a region: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("--aws-region: no region is configured (flag, AWS_REGION, shared config or instance metadata)")
	}
	if b.endpoint != "" {
		cfg.BaseEndpoint = aws.String(b.endpoint)
	}
	return NewFromConfig(cfg, Options{VPCID: b.vpcID, TargetChunkSize: b.targetChunkSize}), nil
}

// NewFromConfig returns a provider with SDK clients built from cfg; the
// clients keep the SDK's standard retryer from cfg.
func NewFromConfig(cfg aws.Config, opts Options) *Provider {
	return New(elb.NewFromConfig(cfg), ec2.NewFromConfig(cfg), opts)
}
