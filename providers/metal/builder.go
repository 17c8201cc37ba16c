package metal

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"

	"github.com/extlb/extlb/providers"
)

// Name is the provider's name in the registry (--provider=metal).
const Name = "metal"

// Options are the metal provider's settings. DefaultOptions holds every
// default; the Builder binds the --metal-* flags to the fields.
type Options struct {
	// StatusInterval is the least time between two rounds of IPPool
	// status writes.
	StatusInterval time.Duration
	// RetryInterval is how soon a Service waiting for an address is tried
	// again.
	RetryInterval time.Duration
	// SyncTimeout bounds the first call's wait for the caches.
	SyncTimeout time.Duration
}

// DefaultOptions returns the defaults of the --metal-* flags.
func DefaultOptions() Options {
	return Options{StatusInterval: 2 * time.Second, RetryInterval: 30 * time.Second, SyncTimeout: 30 * time.Second}
}

// Validate checks the options and names the flag at fault.
func (o Options) Validate() error {
	switch {
	case o.StatusInterval <= 0:
		return fmt.Errorf("--metal-status-interval: must be positive, got %s", o.StatusInterval)
	case o.RetryInterval <= 0:
		return fmt.Errorf("--metal-retry-interval: must be positive, got %s", o.RetryInterval)
	case o.SyncTimeout <= 0:
		return fmt.Errorf("--metal-cache-sync-timeout: must be positive, got %s", o.SyncTimeout)
	}
	return nil
}

// Builder builds the metal provider from Options.
type Builder struct {
	Options Options
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with DefaultOptions.
func NewBuilder() *Builder { return &Builder{Options: DefaultOptions()} }

// AddFlags binds the --metal-* flags to b.Options.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	o := &b.Options
	fs.DurationVar(&o.StatusInterval, "metal-status-interval", o.StatusInterval,
		"Least time between two rounds of IPPool status writes; a burst of allocations costs one write per pool.")
	fs.DurationVar(&o.RetryInterval, "metal-retry-interval", o.RetryInterval,
		"How soon a Service waiting for an address (pool exhausted, missing pool, address held by another Service) is tried again.")
	fs.DurationVar(&o.SyncTimeout, "metal-cache-sync-timeout", o.SyncTimeout,
		"How long the first provider call waits for the Service, Namespace and IPPool caches before asking the controller to retry.")
}

// Build validates the options and returns the provider. It watches IPPools
// with a dynamic informer of its own (started here) and Services and
// Namespaces through env.Informers (started by the command).
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	if err := b.Options.Validate(); err != nil {
		return nil, err
	}
	switch {
	case env.RESTConfig == nil:
		return nil, fmt.Errorf("metal provider: needs a REST config to read IPPools")
	case env.Informers == nil:
		return nil, fmt.Errorf("metal provider: needs the shared informer factory")
	}
	client, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("metal provider: creating the IPPool client: %w", err)
	}
	return b.build(ctx, env, client)
}

// build is Build with the dynamic client given, for tests.
func (b *Builder) build(ctx context.Context, env providers.Env, client dynamic.Interface) (*Provider, error) {
	var p *Provider
	store, factory, err := newDynamicPoolStore(client, 0, func() {
		if p != nil {
			p.reloadPools(ctx)
		}
	})
	if err != nil {
		return nil, err
	}
	services := env.Informers.Core().V1().Services()
	namespaces := env.Informers.Core().V1().Namespaces()
	p = newProvider(ctx, config{
		pools:      store,
		services:   services.Lister(),
		namespaces: namespaces.Lister(),
		synced: []namedSync{
			{"Services", services.Informer().HasSynced},
			{"Namespaces", namespaces.Informer().HasSynced},
			{"IPPools", store.HasSynced},
		},
		retryInterval:  b.Options.RetryInterval,
		statusInterval: b.Options.StatusInterval,
		syncTimeout:    b.Options.SyncTimeout,
	})
	factory.Start(ctx.Done())
	return p, nil
}
