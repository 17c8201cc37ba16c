package gce

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

// Options are the gce provider's settings, filled from its flags.
type Options struct {
	// Project and Region hold the load balancers; Network is the VPC the
	// firewall rules apply to.
	Project, Region, Network string
	// Endpoint overrides the compute API endpoint (for tests). An http://
	// endpoint is used without credentials; otherwise Application Default
	// Credentials are used.
	Endpoint string
	// NodeTags are the network tags the firewall rules target; empty means
	// the first tag of each node instance.
	NodeTags []string
	// HTTPRetries is how often a request that failed with a connection
	// error, 429 or 5xx is retried; RetryWaitMin/Max bound the backoff.
	HTTPRetries                int
	RetryWaitMin, RetryWaitMax time.Duration
	// InstanceBatchSize bounds the instances per target-pool call.
	InstanceBatchSize int
}

// DefaultOptions returns the defaults of the --gce-* flags.
func DefaultOptions() Options {
	return Options{
		Network:           "default",
		HTTPRetries:       4,
		RetryWaitMin:      500 * time.Millisecond,
		RetryWaitMax:      15 * time.Second,
		InstanceBatchSize: 200,
	}
}

var (
	projectRE = regexp.MustCompile(`^[a-z][-a-z0-9.:]{4,62}[a-z0-9]$`)
	regionRE  = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	networkRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Validate checks the options and names the flag at fault.
func (o Options) Validate() error {
	switch {
	case !projectRE.MatchString(o.Project):
		return fmt.Errorf("--gce-project: %q is not a GCP project ID", o.Project)
	case !regionRE.MatchString(o.Region):
		return fmt.Errorf("--gce-region: %q is not a GCE region", o.Region)
	case !networkRE.MatchString(o.Network):
		return fmt.Errorf("--gce-network: %q is not a VPC network name", o.Network)
	case o.HTTPRetries < 0:
		return fmt.Errorf("--gce-http-retries: must not be negative")
	case o.RetryWaitMin <= 0 || o.RetryWaitMax < o.RetryWaitMin:
		return fmt.Errorf("--gce-http-retry-wait-min/--gce-http-retry-wait-max: need 0 < min <= max, got %s and %s", o.RetryWaitMin, o.RetryWaitMax)
	case o.InstanceBatchSize < 1 || o.InstanceBatchSize > 1000:
		return fmt.Errorf("--gce-instance-batch-size: %d is outside 1..1000", o.InstanceBatchSize)
	}
	for _, t := range o.NodeTags {
		if !networkRE.MatchString(t) {
			return fmt.Errorf("--gce-node-tags: %q is not a network tag", t)
		}
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--gce-endpoint: %q is not an http(s) URL", o.Endpoint)
		}
	}
	return nil
}

// Name is the provider's name in the registry (--provider=gce).
const Name = "gce"

// Builder builds the gce provider (--provider=gce) from Options.
type Builder struct {
	Options Options
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with DefaultOptions.
func NewBuilder() *Builder { return &Builder{Options: DefaultOptions()} }

// AddFlags binds the --gce-* flags to b.Options.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	o := &b.Options
	fs.StringVar(&o.Project, "gce-project", o.Project, "GCP project that holds the load balancers (required).")
	fs.StringVar(&o.Region, "gce-region", o.Region, "GCE region of the load balancers and nodes, e.g. us-central1 (required).")
	fs.StringVar(&o.Network, "gce-network", o.Network, "VPC network the firewall rules apply to.")
	fs.StringVar(&o.Endpoint, "gce-endpoint", o.Endpoint, "Compute API endpoint override, for testing against a fake (an http:// endpoint is used without credentials).")
	fs.StringSliceVar(&o.NodeTags, "gce-node-tags", o.NodeTags, "Network tags of the nodes, targeted by the firewall rules. Default: the first tag of each node instance.")
	fs.IntVar(&o.HTTPRetries, "gce-http-retries", o.HTTPRetries, "Retries of a compute API request that failed with a connection error, 429 or 5xx.")
	fs.DurationVar(&o.RetryWaitMin, "gce-http-retry-wait-min", o.RetryWaitMin, "Shortest backoff between retries.")
	fs.DurationVar(&o.RetryWaitMax, "gce-http-retry-wait-max", o.RetryWaitMax, "Longest backoff between retries (a Retry-After header may ask for more).")
	fs.IntVar(&o.InstanceBatchSize, "gce-instance-batch-size", o.InstanceBatchSize, "Most instances added to or removed from a target pool per API call.")
}

// Build validates the options and connects the compute clients. The
// clients are closed when ctx ends.
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	o := b.Options
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if env.ClusterName == "" {
		return nil, fmt.Errorf("--cluster-name: the gce provider records it on every resource and needs it set")
	}
	c, err := newCloud(ctx, o.Project, o.Endpoint, httpOptions{
		retries:      o.HTTPRetries,
		retryWaitMin: o.RetryWaitMin,
		retryWaitMax: o.RetryWaitMax,
		anonymous:    strings.HasPrefix(o.Endpoint, "http://"),
	})
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		c.close()
	}()
	klog.FromContext(ctx).Info("GCE provider ready", "project", o.Project, "region", o.Region, "network", o.Network, "endpoint", o.Endpoint)
	return newProvider(c, o), nil
}

func newProvider(c *cloud, o Options) *Provider {
	return &Provider{
		cloud:        c,
		project:      o.Project,
		region:       o.Region,
		network:      o.Network,
		nodeTags:     append([]string(nil), o.NodeTags...),
		batchSize:    o.InstanceBatchSize,
		instanceTags: map[string]string{},
	}
}
