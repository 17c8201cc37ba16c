package providers

import (
	"context"

	v1 "k8s.io/api/core/v1"
)

// Validating returns lb with ValidateService run before every
// EnsureLoadBalancer and UpdateLoadBalancer: an invalid Service gets the
// InputError and lb is not called. GetLoadBalancer and
// EnsureLoadBalancerDeleted pass straight through, so that deleting a
// Service is never blocked by its own bad input. It keeps lb's
// Capabilities.
//
// extlb's controller validates by itself; the wrapper is for running a
// provider under a cloud-controller-manager (providers/ccm uses it).
func Validating(lb LoadBalancer) LoadBalancer {
	if _, ok := lb.(*validating); ok {
		return lb
	}
	return &validating{LoadBalancer: lb}
}

type validating struct {
	LoadBalancer
}

var _ Describer = (*validating)(nil)

func (v *validating) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := ValidateService(svc); err != nil {
		return nil, err
	}
	return v.LoadBalancer.EnsureLoadBalancer(ctx, clusterName, svc, nodes)
}

func (v *validating) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	if err := ValidateService(svc); err != nil {
		return err
	}
	return v.LoadBalancer.UpdateLoadBalancer(ctx, clusterName, svc, nodes)
}

// Capabilities are the wrapped provider's.
func (v *validating) Capabilities() Capabilities { return CapabilitiesOf(v.LoadBalancer) }
