package gce

import (
	"context"
	"fmt"
	"net/http"

	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// teardown deletes a Service's load balancer in dependency order:
// forwarding rules, target pool, the Service's health check and its
// firewall, the shared health check if nothing uses it any more, the
// Service firewall, the address. Every resource is read first and deleted
// only if its description records this cluster and Service.
func (p *Provider) teardown(ctx context.Context, names resourceNames, own owner) error {
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		fr, err := p.getRule(ctx, names.rule(proto))
		if err != nil {
			return err
		}
		if p.skip(ctx, "forwarding rule", names.rule(proto), fr != nil, own, fr.GetDescription()) {
			continue
		}
		if err := p.deleteRule(ctx, names.rule(proto)); err != nil {
			return err
		}
	}
	pool, err := p.getPool(ctx, names.base)
	if err != nil {
		return err
	}
	if !p.skip(ctx, "target pool", names.base, pool != nil, own, pool.GetDescription()) {
		if err := p.deletePool(ctx, names.base); err != nil {
			return err
		}
	}
	if err := p.deleteOwnHealthCheck(ctx, names, own); err != nil {
		return err
	}
	p.sharedHealthMu.Lock()
	err = p.releaseSharedHealthCheck(ctx, names, own.Cluster)
	p.sharedHealthMu.Unlock()
	if err != nil {
		return err
	}
	if err := p.deleteOwnedFirewall(ctx, names.firewall, own); err != nil {
		return err
	}
	addr, err := p.getAddress(ctx, names.base)
	if err != nil {
		return err
	}
	if !p.skip(ctx, "address", names.base, addr != nil, own, addr.GetDescription()) {
		if err := p.deleteAddress(ctx, names.base); err != nil {
			return err
		}
	}
	return nil
}

// skip reports whether a resource is absent or not ours (then logged).
func (p *Provider) skip(ctx context.Context, kind, name string, exists bool, own owner, description string) bool {
	if !exists {
		return true
	}
	if !own.owns(description) {
		klog.FromContext(ctx).Info("Leaving alone a resource with our name that is not ours", "kind", kind, "name", name, "description", description)
		return true
	}
	return false
}

// deleteOwnHealthCheck deletes the Service's own health check and its
// firewall, if ours.
func (p *Provider) deleteOwnHealthCheck(ctx context.Context, names resourceNames, own owner) error {
	hc, err := p.getHealthCheck(ctx, names.healthCheck)
	if err != nil {
		return err
	}
	if hc != nil && !p.skip(ctx, "httpHealthCheck", names.healthCheck, true, own, hc.Description) {
		if err := p.deleteHealthCheck(ctx, names.healthCheck); err != nil {
			return err
		}
	}
	return p.deleteOwnedFirewall(ctx, names.healthCheckFirewall, own)
}

// releaseSharedHealthCheck deletes the cluster's shared node health check
// and its firewall unless a target pool still uses it (GCE refuses with
// resourceInUseByAnotherResource). Callers hold sharedHealthMu.
func (p *Provider) releaseSharedHealthCheck(ctx context.Context, names resourceNames, cluster string) error {
	shared := owner{Cluster: cluster}
	hc, err := p.getHealthCheck(ctx, names.sharedHealthCheck)
	if err != nil {
		return err
	}
	if hc != nil {
		if p.skip(ctx, "httpHealthCheck", names.sharedHealthCheck, true, shared, hc.Description) {
			return nil
		}
		err := p.deleteHealthCheck(ctx, names.sharedHealthCheck)
		if hasReason(err, http.StatusBadRequest, "resourceInUseByAnotherResource") {
			klog.FromContext(ctx).V(2).Info("Shared node health check still in use; keeping it", "healthCheck", names.sharedHealthCheck)
			return nil
		}
		if err != nil {
			return err
		}
		klog.FromContext(ctx).Info("Deleted the shared node health check: no Service uses it", "healthCheck", names.sharedHealthCheck)
	}
	return p.deleteOwnedFirewall(ctx, names.sharedHealthCheckFirewall, shared)
}

func (p *Provider) deleteOwnedFirewall(ctx context.Context, name string, own owner) error {
	fw, err := p.getFirewall(ctx, name)
	if err != nil {
		return err
	}
	if p.skip(ctx, "firewall", name, fw != nil, own, fw.GetDescription()) {
		return nil
	}
	op, err := p.cloud.firewalls.Delete(ctx, &computepb.DeleteFirewallRequest{Project: p.project, Firewall: name, RequestId: requestID()}, noGAXRetry())
	return p.deleted(p.waitGlobal(ctx, op, err, "firewall "+name))
}

func (p *Provider) deleteRule(ctx context.Context, name string) error {
	op, err := p.cloud.forwardingRules.Delete(ctx, &computepb.DeleteForwardingRuleRequest{Project: p.project, Region: p.region, ForwardingRule: name, RequestId: requestID()}, noGAXRetry())
	return p.deleted(p.waitRegion(ctx, op, err, "forwarding rule "+name))
}

func (p *Provider) deletePool(ctx context.Context, name string) error {
	op, err := p.cloud.targetPools.Delete(ctx, &computepb.DeleteTargetPoolRequest{Project: p.project, Region: p.region, TargetPool: name, RequestId: requestID()}, noGAXRetry())
	return p.deleted(p.waitRegion(ctx, op, err, "target pool "+name))
}

func (p *Provider) deleteAddress(ctx context.Context, name string) error {
	op, err := p.cloud.addresses.Delete(ctx, &computepb.DeleteAddressRequest{Project: p.project, Region: p.region, Address: name, RequestId: requestID()}, noGAXRetry())
	return p.deleted(p.waitRegion(ctx, op, err, "address "+name))
}

// deleteHealthCheck deletes a health check; the error keeps GCE's reason so
// callers can tell "in use" apart.
func (p *Provider) deleteHealthCheck(ctx context.Context, name string) error {
	what := "httpHealthCheck " + name
	op, err := p.cloud.healthChecks.Delete(ctx, name, *requestID())
	if err != nil {
		return p.deleted(wrapCallError(err, what))
	}
	return p.deleted(p.wait(ctx, op, true, what))
}

// deleted treats "not found" as success.
func (p *Provider) deleted(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}

func (p *Provider) getAddress(ctx context.Context, name string) (*computepb.Address, error) {
	a, err := p.cloud.addresses.Get(ctx, &computepb.GetAddressRequest{Project: p.project, Region: p.region, Address: name}, noGAXRetry())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting address %s: %w", name, err)
	}
	return a, nil
}

func (p *Provider) getFirewall(ctx context.Context, name string) (*computepb.Firewall, error) {
	fw, err := p.cloud.firewalls.Get(ctx, &computepb.GetFirewallRequest{Project: p.project, Firewall: name}, noGAXRetry())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting firewall %s: %w", name, err)
	}
	return fw, nil
}

func (p *Provider) getHealthCheck(ctx context.Context, name string) (*legacy.HttpHealthCheck, error) {
	hc, err := p.cloud.healthChecks.Get(ctx, name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting httpHealthCheck %s: %w", name, err)
	}
	return hc, nil
}
