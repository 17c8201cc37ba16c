package fake

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/cloud"
)

// Name is the provider's name in the registry.
const Name = "fake"

// Builder builds the fake provider from its --fake-* flags.
type Builder struct {
	endpoint            string
	token               string
	requestTimeout      time.Duration
	maxRetries          int
	retryWaitMin        time.Duration
	retryWaitMax        time.Duration
	healthCheckInterval time.Duration
	// embedded fake cloud, used when endpoint is empty
	embeddedListen   string
	embeddedVIPRange string
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with the flag defaults.
func NewBuilder() *Builder {
	return &Builder{
		requestTimeout:      30 * time.Second,
		maxRetries:          8,
		retryWaitMin:        100 * time.Millisecond,
		retryWaitMax:        5 * time.Second,
		healthCheckInterval: 2 * time.Second,
		embeddedListen:      "127.0.0.1:0",
		embeddedVIPRange:    cloud.DefaultVIPRange,
	}
}

// AddFlags registers the --fake-* flags.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&b.endpoint, "fake-endpoint", b.endpoint, "URL of a fake cloud API (extlb fake); empty runs one in-process on loopback")
	fs.StringVar(&b.token, "fake-token", b.token, "bearer token for the fake cloud API")
	fs.DurationVar(&b.requestTimeout, "fake-request-timeout", b.requestTimeout, "bound of one API call, retries included, when the caller sets none")
	fs.IntVar(&b.maxRetries, "fake-max-retries", b.maxRetries, "retries of an API call on connection errors, 5xx and 429")
	fs.DurationVar(&b.retryWaitMin, "fake-retry-wait-min", b.retryWaitMin, "first backoff between retries (Retry-After wins when sent)")
	fs.DurationVar(&b.retryWaitMax, "fake-retry-wait-max", b.retryWaitMax, "longest backoff between retries")
	fs.DurationVar(&b.healthCheckInterval, "fake-health-check-interval", b.healthCheckInterval, "interval of the load balancers' backend health checks")
	fs.StringVar(&b.embeddedListen, "fake-listen", b.embeddedListen, "API address of the in-process fake cloud (without --fake-endpoint); must be loopback")
	fs.StringVar(&b.embeddedVIPRange, "fake-vip-range", b.embeddedVIPRange, "CIDR the in-process fake cloud allocates load-balancer addresses from")
}

// Build validates the flags and returns the provider. Without an endpoint it
// starts a fake cloud in-process that stops when ctx ends.
func (b *Builder) Build(ctx context.Context, _ providers.Env) (providers.LoadBalancer, error) {
	if b.maxRetries < 0 {
		return nil, fmt.Errorf("--fake-max-retries must not be negative, got %d", b.maxRetries)
	}
	if b.retryWaitMin <= 0 || b.retryWaitMax < b.retryWaitMin {
		return nil, fmt.Errorf("--fake-retry-wait-min (%s) must be positive and at most --fake-retry-wait-max (%s)", b.retryWaitMin, b.retryWaitMax)
	}
	if b.healthCheckInterval < 10*time.Millisecond {
		return nil, fmt.Errorf("--fake-health-check-interval must be at least 10ms, got %s", b.healthCheckInterval)
	}
	if b.requestTimeout < 0 {
		return nil, fmt.Errorf("--fake-request-timeout must not be negative, got %s", b.requestTimeout)
	}
	logger := klog.FromContext(ctx).WithName("fake")
	endpoint := b.endpoint
	if endpoint == "" {
		cfg := cloud.DefaultConfig()
		cfg.Listen = b.embeddedListen
		cfg.VIPRange = b.embeddedVIPRange
		cfg.Token = b.token
		if !isLoopbackListen(cfg.Listen) {
			return nil, fmt.Errorf("--fake-listen %q: the in-process fake cloud only listens on loopback", cfg.Listen)
		}
		srv, err := cloud.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("in-process fake cloud: %w", err)
		}
		if err := srv.Start(klog.NewContext(ctx, logger.WithName("cloud"))); err != nil {
			return nil, fmt.Errorf("in-process fake cloud: %w", err)
		}
		endpoint = srv.URL()
	}
	c, err := newClient(clientOptions{
		endpoint:       endpoint,
		token:          b.token,
		maxRetries:     b.maxRetries,
		retryWaitMin:   b.retryWaitMin,
		retryWaitMax:   b.retryWaitMax,
		requestTimeout: b.requestTimeout,
		logger:         logger.WithName("http"),
	})
	if err != nil {
		return nil, err
	}
	return &Provider{api: c, mapping: mapping{healthCheckInterval: b.healthCheckInterval}, endpoint: endpoint}, nil
}

func isLoopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
