// Package providers defines the contract between the service controller and
// the load-balancer implementations (fake, aws, gce, metal), and the explicit
// registry the command builds them from.
//
// A provider is exactly k8s.io/cloud-provider's cloudprovider.LoadBalancer, so
// every provider also runs under a standard cloud-controller-manager. The
// contract, as the controller relies on it:
//
//   - Every method treats the Service and Node arguments as read-only.
//   - EnsureLoadBalancer is idempotent: called again with the same Service and
//     nodes it changes nothing in the cloud and returns the same status. It
//     either leaves a complete load balancer or returns an error; it never
//     returns success for a half-built one.
//   - An error that wraps an *api.RetryError (k8s.io/cloud-provider/api) asks
//     the controller to retry after the given duration instead of backing off
//     exponentially (for example: still provisioning, throttled).
//   - An error that is an InputError (see errors.go) says the Service itself
//     cannot be served as written (bad annotation, unsupported protocol, ...);
//     the controller reports it on the Service and does not hot-loop on it.
//   - EnsureLoadBalancerDeleted returns nil when nothing of the load balancer
//     remains, including when it never existed.
//   - cloudprovider.ImplementedElsewhere from any method means another
//     component owns this Service's load balancer: the controller stops
//     managing it and removes its finalizer.
//
// Providers may additionally implement Describer to tell the controller how
// their load balancers reach the cluster.
package providers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cloudprovider "k8s.io/cloud-provider"
)

// LoadBalancer is the interface every provider implements. It is
// k8s.io/cloud-provider's interface, unchanged.
type LoadBalancer = cloudprovider.LoadBalancer

// Capabilities describe how a provider's load balancers reach the cluster.
type Capabilities struct {
	// TargetsNodePorts is true when the load balancer sends traffic to
	// nodeIP:nodePort, so every Service port needs a nodePort. Providers that
	// announce the address on the nodes themselves (metal) set it false.
	TargetsNodePorts bool
	// IPMode is written into status.loadBalancer.ingress[].ipMode for every
	// ingress the provider returns without one: VIP when packets reach the
	// nodes with the load balancer's address as destination, Proxy when the
	// load balancer rewrites the destination to the node.
	IPMode v1.LoadBalancerIPMode
	// NodeLabels is true when the provider chooses among the nodes it is
	// given by their labels (aws: the target-node-labels annotation). Only
	// then does a change of a node's labels update every load balancer.
	NodeLabels bool
}

// DefaultCapabilities are assumed for a provider that does not implement
// Describer: it targets node ports and its addresses are VIPs.
var DefaultCapabilities = Capabilities{TargetsNodePorts: true, IPMode: v1.LoadBalancerIPModeVIP}

// Describer is the optional extension a provider implements to override
// DefaultCapabilities.
type Describer interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns the provider's capabilities, or the defaults.
func CapabilitiesOf(lb LoadBalancer) Capabilities {
	if d, ok := lb.(Describer); ok {
		c := d.Capabilities()
		if c.IPMode == "" {
			c.IPMode = DefaultCapabilities.IPMode
		}
		return c
	}
	return DefaultCapabilities
}

// Env is what the command hands a provider when it builds one.
type Env struct {
	// ClusterName is the --cluster-name flag; it is also passed to every
	// LoadBalancer call, and providers use it to tag what they own.
	ClusterName string
	// KubeClient talks to the cluster's API server.
	KubeClient kubernetes.Interface
	// RESTConfig is the configuration KubeClient was built from, for
	// providers that need other clients (custom resources).
	RESTConfig *rest.Config
	// Informers is the controller's shared informer factory. A provider may
	// request informers from it during Build; the command starts the factory
	// after Build returns.
	Informers informers.SharedInformerFactory
}

// Builder builds one provider. Each provider package offers one; the command
// puts them into a Registry by name.
type Builder interface {
	// AddFlags registers the provider's own flags on fs. Flag names start
	// with the provider's name (--aws-region, --gce-project, ...).
	AddFlags(fs *pflag.FlagSet)
	// Build validates the flags and returns a ready provider. It returns an
	// error naming the flag when a flag is invalid. The provider lives until
	// ctx is cancelled.
	Build(ctx context.Context, env Env) (LoadBalancer, error)
}

// Registry maps a provider name (the --provider flag) to its Builder.
type Registry map[string]Builder

// Names returns the registered names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Get returns the Builder registered under name, or an error that lists the
// known names.
func (r Registry) Get(name string) (Builder, error) {
	b, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q: known providers are %s", name, strings.Join(r.Names(), ", "))
	}
	return b, nil
}
