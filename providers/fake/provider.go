// Package fake is the provider named "fake": the client side of the
// local fake cloud (fake/cloud). It maps a Service and the cluster's nodes
// to a fake-cloud load balancer (ports to node ports, node InternalIPs as
// backends, externalTrafficPolicy Local to an HTTP check of the
// healthCheckNodePort, source ranges, ClientIP affinity) and talks to the
// fake cloud's API with retries. With no --fake-endpoint it runs a fake
// cloud in-process on loopback.
package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/api"
)

// Provider implements providers.LoadBalancer against a fake cloud.
type Provider struct {
	api      lbAPI
	mapping  mapping
	endpoint string
}

var (
	_ providers.LoadBalancer = (*Provider)(nil)
	_ providers.Describer    = (*Provider)(nil)
)

// Endpoint is the URL of the fake cloud API the provider uses (the embedded
// one's when no endpoint was configured).
func (p *Provider) Endpoint() string { return p.endpoint }

// Capabilities: the fake cloud targets node ports and proxies (connections
// reach the node from the fake cloud with the node as destination), so the
// ingress IPMode is Proxy.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{TargetsNodePorts: true, IPMode: v1.LoadBalancerIPModeProxy}
}

// GetLoadBalancerName returns the fake cloud name of the Service's load
// balancer.
func (p *Provider) GetLoadBalancerName(_ context.Context, clusterName string, service *v1.Service) string {
	return loadBalancerName(clusterName, service)
}

// GetLoadBalancer reports whether the Service's load balancer exists and its
// status.
func (p *Provider) GetLoadBalancer(ctx context.Context, clusterName string, service *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	name := loadBalancerName(clusterName, service)
	lb, err := p.api.getLoadBalancer(ctx, name)
	if err != nil {
		return nil, false, fmt.Errorf("getting load balancer of service %s/%s: %w", service.Namespace, service.Name, err)
	}
	if lb == nil {
		return nil, false, nil
	}
	return status(lb), true, nil
}

// EnsureLoadBalancer creates or updates the Service's load balancer and
// returns its status. Bad Services get an InputError before any request.
// It reads the load balancer first and writes only when it differs, so a
// repeated Ensure makes no write.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, clusterName string, service *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	name := loadBalancerName(clusterName, service)
	spec, err := p.mapping.spec(clusterName, service, nodes)
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", service.Namespace, service.Name, err)
	}
	current, err := p.api.getLoadBalancer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("ensuring load balancer of service %s/%s: %w", service.Namespace, service.Name, err)
	}
	if current != nil && sameSpec(current.Spec, spec) {
		return status(current), nil
	}
	lb, err := p.api.putLoadBalancer(ctx, name, spec)
	if err != nil {
		return nil, fmt.Errorf("ensuring load balancer of service %s/%s: %w", service.Namespace, service.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Ensured fake cloud load balancer", "service", klog.KObj(service), "loadbalancer", name, "address", lb.Status.Address, "backends", len(spec.Backends))
	return status(lb), nil
}

// UpdateLoadBalancer sends the new set of nodes (and the rest of the
// Service, which is cheap and keeps the fake cloud exact).
func (p *Provider) UpdateLoadBalancer(ctx context.Context, clusterName string, service *v1.Service, nodes []*v1.Node) error {
	_, err := p.EnsureLoadBalancer(ctx, clusterName, service, nodes)
	return err
}

// EnsureLoadBalancerDeleted deletes the Service's load balancer; nil, with
// no write, when it does not exist.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, service *v1.Service) error {
	name := loadBalancerName(clusterName, service)
	current, err := p.api.getLoadBalancer(ctx, name)
	if err != nil {
		return fmt.Errorf("deleting load balancer of service %s/%s: %w", service.Namespace, service.Name, err)
	}
	if current == nil {
		return nil
	}
	if err := p.api.deleteLoadBalancer(ctx, name); err != nil {
		return fmt.Errorf("deleting load balancer of service %s/%s: %w", service.Namespace, service.Name, err)
	}
	return nil
}

// sameSpec reports whether the fake cloud holds spec already. Both are
// compared in their wire form, so that an empty list and none are equal.
func sameSpec(have, want api.LoadBalancerSpec) bool {
	a, errA := json.Marshal(have)
	b, errB := json.Marshal(want)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}
