package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/cloud"
)

// Name is the provider's name in the registry (--provider=fake).
const Name = "fake"

// Options are the fake provider's settings. DefaultOptions holds every
// default; the Builder binds the --fake-* flags to the fields.
type Options struct {
	// Endpoint is the URL of a fake cloud API (extlb fake); empty runs
	// one in-process on Listen with addresses from VIPRange.
	Endpoint string
	// Token is the bearer token of the API (also required by the
	// in-process cloud when set).
	Token string
	// RequestTimeout bounds one API call, retries included, when the
	// caller's context sets no deadline.
	RequestTimeout time.Duration
	// MaxRetries, RetryWaitMin and RetryWaitMax shape the retries on
	// connection errors, 5xx and 429 (Retry-After wins when sent).
	MaxRetries                 int
	RetryWaitMin, RetryWaitMax time.Duration
	// HealthCheckInterval is the interval of the load balancers' backend
	// health checks.
	HealthCheckInterval time.Duration
	// Listen and VIPRange configure the in-process fake cloud; the same
	// flags configure `extlb fake`.
	Listen, VIPRange string
}

// DefaultOptions returns the defaults of the --fake-* flags.
func DefaultOptions() Options {
	return Options{
		RequestTimeout:      30 * time.Second,
		MaxRetries:          8,
		RetryWaitMin:        100 * time.Millisecond,
		RetryWaitMax:        5 * time.Second,
		HealthCheckInterval: 2 * time.Second,
		Listen:              "127.0.0.1:0",
		VIPRange:            cloud.DefaultVIPRange,
	}
}

// Validate checks the options and names the flag at fault.
func (o Options) Validate() error {
	switch {
	case o.MaxRetries < 0:
		return fmt.Errorf("--fake-max-retries must not be negative, got %d", o.MaxRetries)
	case o.RetryWaitMin <= 0 || o.RetryWaitMax < o.RetryWaitMin:
		return fmt.Errorf("--fake-retry-wait-min (%s) must be positive and at most --fake-retry-wait-max (%s)", o.RetryWaitMin, o.RetryWaitMax)
	case o.HealthCheckInterval < 10*time.Millisecond:
		return fmt.Errorf("--fake-health-check-interval must be at least 10ms, got %s", o.HealthCheckInterval)
	case o.RequestTimeout < 0:
		return fmt.Errorf("--fake-request-timeout must not be negative, got %s", o.RequestTimeout)
	case o.Endpoint == "" && !cloud.IsLoopbackListen(o.Listen):
		return fmt.Errorf("--fake-listen %q: the in-process fake cloud only listens on loopback", o.Listen)
	}
	return nil
}

// Builder builds the fake provider from Options.
type Builder struct {
	Options Options
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with DefaultOptions.
func NewBuilder() *Builder { return &Builder{Options: DefaultOptions()} }

// AddFlags binds the --fake-* flags to b.Options.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	o := &b.Options
	fs.StringVar(&o.Endpoint, "fake-endpoint", o.Endpoint, "URL of a fake cloud API (extlb fake); empty runs one in-process on loopback")
	fs.StringVar(&o.Token, "fake-token", o.Token, "bearer token for the fake cloud API")
	fs.DurationVar(&o.RequestTimeout, "fake-request-timeout", o.RequestTimeout, "bound of one API call, retries included, when the caller sets none")
	fs.IntVar(&o.MaxRetries, "fake-max-retries", o.MaxRetries, "retries of an API call on connection errors, 5xx and 429")
	fs.DurationVar(&o.RetryWaitMin, "fake-retry-wait-min", o.RetryWaitMin, "first backoff between retries (Retry-After wins when sent)")
	fs.DurationVar(&o.RetryWaitMax, "fake-retry-wait-max", o.RetryWaitMax, "longest backoff between retries")
	fs.DurationVar(&o.HealthCheckInterval, "fake-health-check-interval", o.HealthCheckInterval, "interval of the load balancers' backend health checks")
	fs.StringVar(&o.Listen, "fake-listen", o.Listen, "API address of the in-process fake cloud (without --fake-endpoint); must be loopback")
	fs.StringVar(&o.VIPRange, "fake-vip-range", o.VIPRange, "CIDR the in-process fake cloud allocates load-balancer addresses from")
}

// Build validates the options and returns the provider. Without an
// endpoint it starts a fake cloud in-process that stops when ctx ends.
func (b *Builder) Build(ctx context.Context, _ providers.Env) (providers.LoadBalancer, error) {
	o := b.Options
	if err := o.Validate(); err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithName("fake")
	endpoint := o.Endpoint
	if endpoint == "" {
		cfg := cloud.DefaultConfig()
		cfg.Listen, cfg.VIPRange, cfg.Token = o.Listen, o.VIPRange, o.Token
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
		token:          o.Token,
		maxRetries:     o.MaxRetries,
		retryWaitMin:   o.RetryWaitMin,
		retryWaitMax:   o.RetryWaitMax,
		requestTimeout: o.RequestTimeout,
		logger:         logger.WithName("http"),
	})
	if err != nil {
		return nil, err
	}
	return &Provider{api: c, mapping: mapping{healthCheckInterval: o.HealthCheckInterval}, endpoint: endpoint}, nil
}
