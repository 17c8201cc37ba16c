package aws

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Options are the aws provider's settings: the SDK configuration the
// Builder loads and the provider's own tuning. DefaultOptions holds every
// default; the Builder binds flags to the fields and Build validates them.
type Options struct {
	// Region is the AWS region; empty takes it from the SDK's default
	// chain (AWS_REGION, shared config, instance metadata).
	Region string
	// Endpoint replaces the regional ELBv2 and EC2 endpoints (tests,
	// compatible clouds).
	Endpoint string
	// MaxAttempts bounds the SDK's standard retryer per call; 0 keeps the
	// SDK default (3).
	MaxAttempts int
	// VPCID is the cluster's VPC. When empty it is taken from the nodes'
	// instances.
	VPCID string
	// TargetChunkSize is how many targets one Register/DeregisterTargets
	// call carries.
	TargetChunkSize int
	// InUseRetries and InUseDelay bound the wait for a target group that
	// AWS still reports in use after its listener or load balancer was
	// deleted. After that the call returns a RetryError.
	InUseRetries int
	InUseDelay   time.Duration
}

// DefaultOptions returns the defaults of the --aws-* flags.
func DefaultOptions() Options {
	return Options{TargetChunkSize: 100, InUseRetries: 5, InUseDelay: 2 * time.Second}
}

// Validate checks the options and names the flag at fault.
func (o Options) Validate() error {
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--aws-endpoint: %q is not an http(s) URL", o.Endpoint)
		}
	}
	if o.MaxAttempts < 0 {
		return fmt.Errorf("--aws-max-attempts: %d is negative", o.MaxAttempts)
	}
	if o.TargetChunkSize < 1 || o.TargetChunkSize > 500 {
		return fmt.Errorf("--aws-target-chunk-size: %d is not from 1 to 500", o.TargetChunkSize)
	}
	if o.VPCID != "" && !strings.HasPrefix(o.VPCID, "vpc-") {
		return fmt.Errorf("--aws-vpc-id: %q is not a VPC ID (vpc-...)", o.VPCID)
	}
	if o.InUseRetries < 1 || o.InUseDelay <= 0 {
		return fmt.Errorf("aws provider: in-use retries (%d) and delay (%s) must be positive", o.InUseRetries, o.InUseDelay)
	}
	return nil
}

// withDefaults fills the zero fields that have a default from
// DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.TargetChunkSize <= 0 {
		o.TargetChunkSize = d.TargetChunkSize
	}
	if o.InUseRetries <= 0 {
		o.InUseRetries = d.InUseRetries
	}
	if o.InUseDelay <= 0 {
		o.InUseDelay = d.InUseDelay
	}
	return o
}
