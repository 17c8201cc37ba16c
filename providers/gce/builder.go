package gce

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
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

// Builder builds the gce provider (--provider=gce).
type Builder struct {
	Options Options
}

var _ providers.Builder = (*Builder)(nil)

// AddFlags registers the --gce-* flags.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	o := &b.Options
	fs.StringVar(&o.Project, "gce-project", o.Project, "GCP project that holds the load balancers (required).")
	fs.StringVar(&o.Region, "gce-region", o.Region, "GCE region of the load balancers and nodes, e.g. us-central1 (required).")
	fs.StringVar(&o.Network, "gce-network", orString(o.Network, "default"), "VPC network the firewall rules apply to.")
	fs.StringVar(&o.Endpoint, "gce-endpoint", o.Endpoint, "Compute API endpoint override, for testing against a fake (an http:// endpoint is used without credentials).")
	fs.StringSliceVar(&o.NodeTags, "gce-node-tags", o.NodeTags, "Network tags of the nodes, targeted by the firewall rules. Default: the first tag of each node instance.")
	fs.IntVar(&o.HTTPRetries, "gce-http-retries", orInt(o.HTTPRetries, 4), "Retries of a compute API request that failed with a connection error, 429 or 5xx.")
	fs.DurationVar(&o.RetryWaitMin, "gce-http-retry-wait-min", orDuration(o.RetryWaitMin, 500*time.Millisecond), "Shortest backoff between retries.")
	fs.DurationVar(&o.RetryWaitMax, "gce-http-retry-wait-max", orDuration(o.RetryWaitMax, 15*time.Second), "Longest backoff between retries (a Retry-After header may ask for more).")
	fs.IntVar(&o.InstanceBatchSize, "gce-instance-batch-size", orInt(o.InstanceBatchSize, 200), "Most instances added to or removed from a target pool per API call.")
}

var (
	projectRE = regexp.MustCompile(`^[a-z][-a-z0-9.:]{4,62}[a-z0-9]$`)
	regionRE  = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	networkRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Build validates the flags and connects the compute clients. The clients
// are closed when ctx ends.
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	o := b.Options
	o.Network = orString(o.Network, "default")
	o.InstanceBatchSize = orInt(o.InstanceBatchSize, 200)
	switch {
	case !projectRE.MatchString(o.Project):
		return nil, fmt.Errorf("--gce-project: %q is not a GCP project ID", o.Project)
	case !regionRE.MatchString(o.Region):
		return nil, fmt.Errorf("--gce-region: %q is not a GCE region", o.Region)
	case !networkRE.MatchString(o.Network):
		return nil, fmt.Errorf("--gce-network: %q is not a VPC network name", o.Network)
	case o.HTTPRetries < 0:
		return nil, fmt.Errorf("--gce-http-retries: must not be negative")
	case o.InstanceBatchSize < 1 || o.InstanceBatchSize > 1000:
		return nil, fmt.Errorf("--gce-instance-batch-size: %d is outside 1..1000", o.InstanceBatchSize)
	case env.ClusterName == "":
		return nil, fmt.Errorf("--cluster-name: the gce provider records it on every resource and needs it set")
	}
	for _, t := range o.NodeTags {
		if !networkRE.MatchString(t) {
			return nil, fmt.Errorf("--gce-node-tags: %q is not a network tag", t)
		}
	}
	anonymous := false
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--gce-endpoint: %q is not an http(s) URL", o.Endpoint)
		}
		anonymous = u.Scheme == "http"
	}
	c, err := newCloud(ctx, o.Project, o.Endpoint, httpOptions{
		retries:      o.HTTPRetries,
		retryWaitMin: orDuration(o.RetryWaitMin, 500*time.Millisecond),
		retryWaitMax: orDuration(o.RetryWaitMax, 15*time.Second),
		anonymous:    anonymous,
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

func orString(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDuration(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}
