// Package gce is the extlb provider for Google Compute Engine: one external
// passthrough (target-pool) network load balancer per Service, built from a
// regional address, firewall rules, a legacy HTTP health check, a target pool
// of the node instances, and one forwarding rule per protocol, through the
// cloud.google.com/go/compute/apiv1 REST clients.
package gce

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"cloud.google.com/go/compute/apiv1/computepb"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

// linkPrefix is the canonical prefix of compute resource URLs.
const linkPrefix = "https://www.googleapis.com/compute/v1/"

// Provider implements providers.LoadBalancer on GCE. Build it with Builder.
type Provider struct {
	cloud   *cloud
	project string
	region  string
	network string
	// nodeTags are the firewall target tags; empty means "read them from the
	// node instances" (the first tag of each).
	nodeTags []string
	// batchSize bounds the instances per addInstance/removeInstance call and
	// per target-pool insert.
	batchSize int

	tagsMu sync.Mutex
	// instanceTags caches instance link → its first network tag.
	instanceTags map[string]string

	// sharedHealthMu serialises this process's use of the shared node
	// health check (ensure through target-pool creation) with its deletion.
	sharedHealthMu sync.Mutex
}

var (
	_ providers.LoadBalancer = (*Provider)(nil)
	_ providers.Describer    = (*Provider)(nil)
)

// Capabilities: target pools deliver packets to the nodes with the
// forwarding rule's address as destination.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{TargetsNodePorts: true, IPMode: v1.LoadBalancerIPModeVIP}
}

// GetLoadBalancerName returns the base name of the Service's resources.
func (p *Provider) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return namesFor(clusterName, string(svc.UID)).base
}

// GetLoadBalancer reports whether the Service's forwarding rules exist, and
// their address.
func (p *Provider) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	names := namesFor(clusterName, string(svc.UID))
	own := owner{Cluster: clusterName, Service: svc.Namespace + "/" + svc.Name}
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		fr, err := p.getRule(ctx, names.rule(proto))
		if err != nil {
			return nil, false, err
		}
		if fr != nil && own.owns(fr.GetDescription()) {
			return statusFor(fr.GetIPAddress()), true, nil
		}
	}
	return nil, false, nil
}

// EnsureLoadBalancer creates or updates the Service's load balancer and
// returns its address. See ensure.go for the steps.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	spec, err := specFor(clusterName, svc)
	if err != nil {
		return nil, err
	}
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", spec.service, "loadBalancer", spec.names.base))
	ip, err := p.ensure(ctx, spec, nodes)
	if err != nil {
		return nil, fmt.Errorf("ensuring GCE load balancer %s for Service %s: %w", spec.names.base, spec.service, err)
	}
	return statusFor(ip), nil
}

// UpdateLoadBalancer brings the target pool's instances in line with nodes.
// When the firewall's target tags come from the instances, a node change can
// change them too, so it runs the whole EnsureLoadBalancer instead.
func (p *Provider) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	spec, err := specFor(clusterName, svc)
	if err != nil {
		return err
	}
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", spec.service, "loadBalancer", spec.names.base))
	if len(p.nodeTags) == 0 {
		_, err := p.EnsureLoadBalancer(ctx, clusterName, svc, nodes)
		return err
	}
	pool, err := p.getPool(ctx, spec.names.base)
	if err != nil {
		return err
	}
	if pool == nil || !spec.owner.owns(pool.GetDescription()) {
		_, err := p.EnsureLoadBalancer(ctx, clusterName, svc, nodes)
		return err
	}
	if err := p.syncPoolInstances(ctx, pool, p.instanceLinks(ctx, nodes)); err != nil {
		return fmt.Errorf("updating GCE load balancer %s for Service %s: %w", spec.names.base, spec.service, err)
	}
	return nil
}

// EnsureLoadBalancerDeleted removes everything the Service's load balancer
// consists of, in dependency order. Resources that are missing count as
// deleted; resources with our names that are not ours are left alone.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	names := namesFor(clusterName, string(svc.UID))
	own := owner{Cluster: clusterName, Service: svc.Namespace + "/" + svc.Name}
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", own.Service, "loadBalancer", names.base))
	if err := p.teardown(ctx, names, own); err != nil {
		return fmt.Errorf("deleting GCE load balancer %s for Service %s: %w", names.base, own.Service, err)
	}
	return nil
}

func statusFor(ip string) *v1.LoadBalancerStatus {
	vip := v1.LoadBalancerIPModeVIP
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}}
}

// instanceLinks returns the instance URLs of the nodes from their
// spec.providerID (gce://project/zone/name). Nodes without one, of another
// provider, or in a zone outside the region are skipped: a target pool can
// only hold instances of its region.
func (p *Provider) instanceLinks(ctx context.Context, nodes []*v1.Node) []string {
	logger := klog.FromContext(ctx)
	seen := map[string]bool{}
	var links []string
	for _, node := range nodes {
		project, zone, name, ok := parseProviderID(node.Spec.ProviderID)
		if !ok {
			logger.V(2).Info("Skipping node without a gce:// providerID", "node", node.Name, "providerID", node.Spec.ProviderID)
			continue
		}
		if !strings.HasPrefix(zone, p.region+"-") {
			logger.V(2).Info("Skipping node outside the region", "node", node.Name, "zone", zone, "region", p.region)
			continue
		}
		link := linkPrefix + "projects/" + project + "/zones/" + zone + "/instances/" + name
		if !seen[link] {
			seen[link] = true
			links = append(links, link)
		}
	}
	return links
}

// parseProviderID splits gce://project/zone/name.
func parseProviderID(id string) (project, zone, name string, ok bool) {
	rest, found := strings.CutPrefix(id, "gce://")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// relative strips the scheme and host of a resource URL, leaving
// "projects/...", so links in different forms compare equal.
func relative(link string) string {
	if i := strings.Index(link, "projects/"); i >= 0 {
		return link[i:]
	}
	return link
}

// link is the canonical URL of a resource path below the project.
func (p *Provider) link(rel string) string {
	return linkPrefix + "projects/" + p.project + "/" + rel
}

func (p *Provider) getRule(ctx context.Context, name string) (*computepb.ForwardingRule, error) {
	fr, err := p.cloud.forwardingRules.Get(ctx, &computepb.GetForwardingRuleRequest{Project: p.project, Region: p.region, ForwardingRule: name}, noGAXRetry())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting forwarding rule %s: %w", name, err)
	}
	return fr, nil
}

func (p *Provider) getPool(ctx context.Context, name string) (*computepb.TargetPool, error) {
	tp, err := p.cloud.targetPools.Get(ctx, &computepb.GetTargetPoolRequest{Project: p.project, Region: p.region, TargetPool: name}, noGAXRetry())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting target pool %s: %w", name, err)
	}
	return tp, nil
}
