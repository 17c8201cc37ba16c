package metal

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"

	"github.com/extlb/extlb/providers"
)

// Builder builds the metal provider from the --metal-... flags.
type Builder struct {
	statusInterval time.Duration
	retryInterval  time.Duration
	syncTimeout    time.Duration
}

var _ providers.Builder = (*Builder)(nil)

// NewBuilder returns a Builder with the flags' defaults.
func NewBuilder() *Builder {
	return &Builder{statusInterval: 2 * time.Second, retryInterval: 30 * time.Second, syncTimeout: 30 * time.Second}
}

// AddFlags registers --metal-status-interval, --metal-retry-interval and
// --metal-cache-sync-timeout.
func (b *Builder) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&b.statusInterval, "metal-status-interval", b.statusInterval,
		"Least time between two rounds of IPPool status writes; a burst of allocations costs one write per pool.")
	fs.DurationVar(&b.retryInterval, "metal-retry-interval", b.retryInterval,
		"How soon a Service waiting for an address (pool exhausted, missing pool, address held by another Service) is tried again.")
	fs.DurationVar(&b.syncTimeout, "metal-cache-sync-timeout", b.syncTimeout,
		"How long the first provider call waits for the Service, Namespace and IPPool caches before asking the controller to retry.")
}

// Build validates the flags and returns the provider. It watches IPPools
// with a dynamic informer of its own (started here) and Services and
// Namespaces through env.Informers (started by the command).
func (b *Builder) Build(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
	switch {
	case b.statusInterval <= 0:
		return nil, fmt.Errorf("--metal-status-interval: must be positive, got %s", b.statusInterval)
	case b.retryInterval <= 0:
		return nil, fmt.Errorf("--metal-retry-interval: must be positive, got %s", b.retryInterval)
	case b.syncTimeout <= 0:
		return nil, fmt.Errorf("--metal-cache-sync-timeout: must be positive, got %s", b.syncTimeout)
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
		retryInterval:  b.retryInterval,
		statusInterval: b.statusInterval,
		syncTimeout:    b.syncTimeout,
	})
	factory.Start(ctx.Done())
	return p, nil
}
