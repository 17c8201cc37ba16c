package gce

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/iterator"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

func isDone(err error) bool { return errors.Is(err, iterator.Done) }

// ensurePool makes the target pool hold the instances and use the spec's
// health check. A pool whose health check or session affinity differs is
// recreated (the forwarding rules that point at it go first); it then
// returns the health check the old pool used, for release.
func (p *Provider) ensurePool(ctx context.Context, spec *lbSpec, obs *observed, instances []string) (string, error) {
	hcLink := p.link("global/httpHealthChecks/" + spec.healthCheckName())
	previous := ""
	if pool := obs.pool; pool != nil {
		if len(pool.GetHealthChecks()) == 1 && relative(pool.GetHealthChecks()[0]) == relative(hcLink) && pool.GetSessionAffinity() == spec.affinity {
			return "", p.syncPoolInstances(ctx, pool, instances)
		}
		if len(pool.GetHealthChecks()) > 0 {
			previous = pool.GetHealthChecks()[0]
		}
		klog.FromContext(ctx).Info("Recreating target pool", "healthCheck", spec.healthCheckName(), "sessionAffinity", spec.affinity)
		if err := p.deleteRules(ctx, spec, obs); err != nil {
			return "", err
		}
		if err := p.deletePool(ctx, spec.names.base); err != nil {
			return "", err
		}
		obs.pool = nil
	}
	first := instances[:min(len(instances), p.batchSize)]
	pool := &computepb.TargetPool{
		Name:            ptr.To(spec.names.base),
		Description:     ptr.To(spec.owner.description()),
		HealthChecks:    []string{hcLink},
		Instances:       slices.Clone(first),
		SessionAffinity: ptr.To(spec.affinity),
	}
	op, err := p.cloud.targetPools.Insert(ctx, &computepb.InsertTargetPoolRequest{Project: p.project, Region: p.region, TargetPoolResource: pool, RequestId: requestID()}, noGAXRetry())
	if err := p.waitRegion(ctx, op, err, "target pool "+spec.names.base); err != nil {
		return "", err
	}
	obs.pool = pool
	if len(instances) > len(first) {
		return previous, p.syncPoolInstances(ctx, pool, instances)
	}
	return previous, nil
}

// syncPoolInstances adds and removes instances as a diff, at most
// batchSize per call.
func (p *Provider) syncPoolInstances(ctx context.Context, pool *computepb.TargetPool, want []string) error {
	wanted := map[string]bool{}
	for _, l := range want {
		wanted[relative(l)] = true
	}
	have := map[string]bool{}
	var remove []string
	for _, l := range pool.GetInstances() {
		have[relative(l)] = true
		if !wanted[relative(l)] {
			remove = append(remove, l)
		}
	}
	var add []string
	for _, l := range want {
		if !have[relative(l)] {
			add = append(add, l)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	klog.FromContext(ctx).Info("Updating target pool instances", "add", len(add), "remove", len(remove))
	what := "target pool " + pool.GetName()
	for batch := range slices.Chunk(add, p.batchSize) {
		op, err := p.cloud.targetPools.AddInstance(ctx, &computepb.AddInstanceTargetPoolRequest{
			Project: p.project, Region: p.region, TargetPool: pool.GetName(), RequestId: requestID(),
			TargetPoolsAddInstanceRequestResource: &computepb.TargetPoolsAddInstanceRequest{Instances: instanceRefs(batch)},
		}, noGAXRetry())
		if err := p.waitRegion(ctx, op, err, what+" (adding instances)"); err != nil {
			return err
		}
	}
	for batch := range slices.Chunk(remove, p.batchSize) {
		op, err := p.cloud.targetPools.RemoveInstance(ctx, &computepb.RemoveInstanceTargetPoolRequest{
			Project: p.project, Region: p.region, TargetPool: pool.GetName(), RequestId: requestID(),
			TargetPoolsRemoveInstanceRequestResource: &computepb.TargetPoolsRemoveInstanceRequest{Instances: instanceRefs(batch)},
		}, noGAXRetry())
		if err := p.waitRegion(ctx, op, err, what+" (removing instances)"); err != nil {
			return err
		}
	}
	return nil
}

func instanceRefs(links []string) []*computepb.InstanceReference {
	refs := make([]*computepb.InstanceReference, 0, len(links))
	for _, l := range links {
		refs = append(refs, &computepb.InstanceReference{Instance: ptr.To(l)})
	}
	return refs
}

// ensureRules makes one forwarding rule per Service protocol point at the
// pool from ip over the protocol's port range. A rule whose address, ports
// or target differ is recreated; rules for protocols the Service no longer
// has are deleted.
func (p *Provider) ensureRules(ctx context.Context, spec *lbSpec, obs *observed, ip string) error {
	poolLink := p.link("regions/" + p.region + "/targetPools/" + spec.names.base)
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		name := spec.names.rule(proto)
		have := obs.rules[proto]
		if _, wanted := spec.ports[proto]; !wanted {
			if have != nil {
				if err := p.deleteRule(ctx, name); err != nil {
					return err
				}
				delete(obs.rules, proto)
			}
			continue
		}
		if have != nil && have.GetIPAddress() == ip && have.GetPortRange() == spec.portRange(proto) &&
			have.GetIPProtocol() == string(proto) && relative(have.GetTarget()) == relative(poolLink) {
			continue
		}
		if have != nil {
			klog.FromContext(ctx).Info("Recreating forwarding rule", "rule", name, "ip", ip, "portRange", spec.portRange(proto))
			if err := p.deleteRule(ctx, name); err != nil {
				return err
			}
			delete(obs.rules, proto)
		}
		rule := &computepb.ForwardingRule{
			Name:                ptr.To(name),
			Description:         ptr.To(spec.owner.description()),
			IPAddress:           ptr.To(ip),
			IPProtocol:          ptr.To(string(proto)),
			PortRange:           ptr.To(spec.portRange(proto)),
			Target:              ptr.To(poolLink),
			LoadBalancingScheme: ptr.To("EXTERNAL"),
		}
		op, err := p.cloud.forwardingRules.Insert(ctx, &computepb.InsertForwardingRuleRequest{Project: p.project, Region: p.region, ForwardingRuleResource: rule, RequestId: requestID()}, noGAXRetry())
		if err := p.waitRegion(ctx, op, err, "forwarding rule "+name); err != nil {
			return err
		}
		obs.rules[proto] = rule
	}
	return nil
}

// deleteRules deletes the forwarding rules observed.
func (p *Provider) deleteRules(ctx context.Context, spec *lbSpec, obs *observed) error {
	for proto := range obs.rules {
		if err := p.deleteRule(ctx, spec.names.rule(proto)); err != nil {
			return err
		}
		delete(obs.rules, proto)
	}
	return nil
}

// releasePreviousHealthCheck cleans up after a target pool moved to another
// health check (externalTrafficPolicy changed): the Service's own health
// check and its firewall are deleted; the shared one only if unused.
func (p *Provider) releasePreviousHealthCheck(ctx context.Context, spec *lbSpec, link string) error {
	switch path.Base(link) {
	case spec.healthCheckName():
		return nil
	case spec.names.healthCheck:
		return p.deleteOwnHealthCheck(ctx, spec.names, spec.owner)
	case spec.names.sharedHealthCheck:
		p.sharedHealthMu.Lock()
		defer p.sharedHealthMu.Unlock()
		return p.releaseSharedHealthCheck(ctx, spec.names, spec.owner.Cluster)
	}
	return nil
}

// targetTags returns the firewall target tags: --gce-node-tags, or the
// first network tag of each node instance (cached per instance).
func (p *Provider) targetTags(ctx context.Context, instances []string) ([]string, error) {
	if len(p.nodeTags) > 0 {
		return slices.Clone(p.nodeTags), nil
	}
	seen := map[string]bool{}
	for _, link := range instances {
		tag, err := p.instanceTag(ctx, link)
		if err != nil {
			return nil, err
		}
		if tag != "" {
			seen[tag] = true
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no network tags found on the %d node instances to target the firewall rules at; set --gce-node-tags", len(instances))
	}
	tags := make([]string, 0, len(seen))
	for t := range seen {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return tags, nil
}

func (p *Provider) instanceTag(ctx context.Context, link string) (string, error) {
	p.tagsMu.Lock()
	tag, ok := p.instanceTags[relative(link)]
	p.tagsMu.Unlock()
	if ok {
		return tag, nil
	}
	// link is .../projects/{p}/zones/{z}/instances/{n}
	parts := strings.Split(relative(link), "/")
	inst, err := p.cloud.instances.Get(ctx, &computepb.GetInstanceRequest{Project: parts[1], Zone: parts[3], Instance: parts[5]}, noGAXRetry())
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("getting instance %s for its network tags: %w", relative(link), err)
	}
	if items := inst.GetTags().GetItems(); len(items) > 0 {
		tag = items[0]
	}
	p.tagsMu.Lock()
	p.instanceTags[relative(link)] = tag
	p.tagsMu.Unlock()
	return tag, nil
}
