package aws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/spf13/pflag"

	"github.com/extlb/extlb/providers"
)

// Name is the provider's name in the registry (--provider=aws).
const Name = "aws"

// Builder builds the aws provider from its --aws-* flags. Credentials come
// from the SDK's default chain: environment, shared config, web identity
// (IRSA), ECS, instance profile.
type Builder struct {
	Options Options
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with DefaultOptions.
func NewBuilder() *Builder { return &Builder{Options: DefaultOptions()} }

// AddFlags binds the --aws-* flags to b.Options.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	o := &b.Options
	fs.StringVar(&o.Region, "aws-region", o.Region, "AWS region; empty takes it from the SDK's default chain (AWS_REGION, shared config, instance metadata).")
	fs.StringVar(&o.VPCID, "aws-vpc-id", o.VPCID, "VPC of the cluster's nodes; empty takes it from the nodes' instances.")
	fs.StringVar(&o.Endpoint, "aws-endpoint", o.Endpoint, "Base URL for both the ELBv2 and EC2 APIs instead of the regional AWS endpoints (for testing or compatible clouds).")
	fs.IntVar(&o.MaxAttempts, "aws-max-attempts", o.MaxAttempts, "Attempts per API call, retries included, by the SDK's standard retryer (throttling and 5xx); 0 keeps the SDK default (3).")
	fs.IntVar(&o.TargetChunkSize, "aws-target-chunk-size", o.TargetChunkSize, "Targets per RegisterTargets/DeregisterTargets call.")
}

// Build validates the options, loads the SDK configuration and returns the
// provider. It makes no API call.
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	o := b.Options
	if env.ClusterName == "" || len(clusterTagPrefix+env.ClusterName) > 128 {
		return nil, fmt.Errorf("--cluster-name: the aws provider tags resources kubernetes.io/cluster/<name>, so the name must be 1 to %d characters", 128-len(clusterTagPrefix))
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	opts := []func(*config.LoadOptions) error{config.WithEC2IMDSRegion()}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(o.MaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil && o.Region == "" {
		return nil, fmt.Errorf("--aws-region: not set, and the SDK's default chain could not find a region: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("--aws-region: no region is configured (flag, AWS_REGION, shared config or instance metadata)")
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(o.Endpoint)
	}
	return NewFromConfig(cfg, o), nil
}

// NewFromConfig returns a provider with SDK clients built from cfg; the
// clients keep the SDK's standard retryer from cfg.
func NewFromConfig(cfg aws.Config, opts Options) *Provider {
	return New(elb.NewFromConfig(cfg), ec2.NewFromConfig(cfg), opts)
}
