// Package ccm adapts an extlb provider to k8s.io/cloud-provider's
// cloudprovider.Interface, so that it can run under a standard
// cloud-controller-manager (or its service controller) instead of extlb's
// own controller. Only load balancers are implemented; a cloud-controller-
// manager run with it should disable the node, route and node-lifecycle
// controllers.
package ccm

import (
	"io"

	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/providers"
)

// Cloud is a cloudprovider.Interface that offers only LoadBalancer.
type Cloud struct {
	name string
	lb   providers.LoadBalancer
}

var _ cloudprovider.Interface = (*Cloud)(nil)

// New wraps lb as a cloud named name. The cloud's LoadBalancer validates
// every Service with providers.ValidateService before lb sees it, as extlb's
// own controller does, so that a provider refuses the same Services under
// either controller.
func New(name string, lb providers.LoadBalancer) *Cloud {
	return &Cloud{name: name, lb: providers.Validating(lb)}
}

// Factory offers the cloud to a cloud-controller-manager's plugin table,
// for example from its main package:
//
//	cloudprovider.RegisterCloudProvider("extlb-aws", ccm.Factory("extlb-aws", build))
//
// build receives the cloud config file, if any.
func Factory(name string, build func(config io.Reader) (providers.LoadBalancer, error)) cloudprovider.Factory {
	return func(config io.Reader) (cloudprovider.Interface, error) {
		lb, err := build(config)
		if err != nil {
			return nil, err
		}
		return New(name, lb), nil
	}
}

// Initialize implements cloudprovider.Interface; nothing to do.
func (c *Cloud) Initialize(cloudprovider.ControllerClientBuilder, <-chan struct{}) {}

// LoadBalancer returns the wrapped provider, behind providers.Validating.
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) { return c.lb, true }

// Instances is not implemented.
func (c *Cloud) Instances() (cloudprovider.Instances, bool) { return nil, false }

// InstancesV2 is not implemented.
func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool) { return nil, false }

// Zones is not implemented.
func (c *Cloud) Zones() (cloudprovider.Zones, bool) { return nil, false }

// Clusters is not implemented.
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes is not implemented.
func (c *Cloud) Routes() (cloudprovider.Routes, bool) { return nil, false }

// ProviderName returns the name given to New.
func (c *Cloud) ProviderName() string { return c.name }

// HasClusterID reports true: every extlb provider tags what it owns with the
// cluster name.
func (c *Cloud) HasClusterID() bool { return true }
