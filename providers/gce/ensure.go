package gce

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// ErrNotOurs is wrapped by errors about a resource that has one of our names
// but not our ownership record; such a resource is never changed.
var ErrNotOurs = errors.New("not owned by this Service")

// observed is what exists of one Service's load balancer.
type observed struct {
	address        *computepb.Address
	firewall       *computepb.Firewall
	healthCheck    *legacy.HttpHealthCheck
	healthFirewall *computepb.Firewall
	pool           *computepb.TargetPool
	rules          map[v1.Protocol]*computepb.ForwardingRule
}

// ensure builds the load balancer in dependency order — address,
// firewalls, health check, target pool, forwarding rules last, so that
// their existence means the load balancer is complete — changing only what
// differs. It returns the load balancer's IP.
func (p *Provider) ensure(ctx context.Context, spec *lbSpec, nodes []*v1.Node) (string, error) {
	instances := p.instanceLinks(ctx, nodes)
	tags, err := p.targetTags(ctx, instances)
	if err != nil {
		return "", err
	}
	obs, err := p.observe(ctx, spec)
	if err != nil {
		return "", err
	}
	ip, err := p.ensureAddress(ctx, spec, obs)
	if err != nil {
		return "", err
	}
	if err := p.ensureFirewall(ctx, obs.firewall, p.serviceFirewall(spec, tags, ip)); err != nil {
		return "", err
	}
	previousHealthCheck, err := p.ensureHealthAndPool(ctx, spec, obs, tags, instances)
	if err != nil {
		return "", err
	}
	if err := p.ensureRules(ctx, spec, obs, ip); err != nil {
		return "", err
	}
	if previousHealthCheck != "" {
		if err := p.releasePreviousHealthCheck(ctx, spec, previousHealthCheck); err != nil {
			return "", err
		}
	}
	return ip, nil
}

// ensureHealthAndPool ensures the health check, its firewall rule and the
// target pool. For Cluster Services it holds sharedHealthMu, so this process
// cannot delete the shared health check between its ensure and the pool
// that references it.
func (p *Provider) ensureHealthAndPool(ctx context.Context, spec *lbSpec, obs *observed, tags, instances []string) (string, error) {
	if !spec.local {
		p.sharedHealthMu.Lock()
		defer p.sharedHealthMu.Unlock()
		// Another Service may have created the shared resources since
		// observe read them.
		if err := p.reobserveShared(ctx, spec, obs); err != nil {
			return "", err
		}
	}
	if err := p.ensureHealthCheck(ctx, spec, obs.healthCheck); err != nil {
		return "", err
	}
	if err := p.ensureFirewall(ctx, obs.healthFirewall, p.healthFirewall(spec, tags)); err != nil {
		return "", err
	}
	return p.ensurePool(ctx, spec, obs, instances)
}

// reobserveShared reads the shared health check and its firewall rule
// again if observe found them missing. Callers hold sharedHealthMu.
func (p *Provider) reobserveShared(ctx context.Context, spec *lbSpec, obs *observed) error {
	shared := spec.healthOwner()
	var err error
	if obs.healthCheck == nil {
		if obs.healthCheck, err = p.getHealthCheck(ctx, spec.names.sharedHealthCheck); err != nil {
			return err
		}
		if obs.healthCheck != nil && !shared.owns(obs.healthCheck.Description) {
			return notOurs("httpHealthCheck", spec.names.sharedHealthCheck, obs.healthCheck.Description)
		}
	}
	if obs.healthFirewall == nil {
		if obs.healthFirewall, err = p.getFirewall(ctx, spec.names.sharedHealthCheckFirewall); err != nil {
			return err
		}
		if obs.healthFirewall != nil && !shared.owns(obs.healthFirewall.GetDescription()) {
			return notOurs("firewall", spec.names.sharedHealthCheckFirewall, obs.healthFirewall.GetDescription())
		}
	}
	return nil
}

// notOurs is the error for a resource that carries one of our names but
// not our ownership record.
func notOurs(kind, name, description string) error {
	return fmt.Errorf("%s %s exists but its description %q does not record this cluster and Service; leaving it alone: %w", kind, name, description, ErrNotOurs)
}

// observe reads every resource of the load balancer (read calls only) and
// fails if one of them is not ours.
func (p *Provider) observe(ctx context.Context, spec *lbSpec) (*observed, error) {
	obs := &observed{rules: map[v1.Protocol]*computepb.ForwardingRule{}}
	var err error
	if obs.address, err = p.getAddress(ctx, spec.names.base); err != nil {
		return nil, err
	}
	if obs.address != nil && !spec.owner.owns(obs.address.GetDescription()) {
		return nil, notOurs("address", spec.names.base, obs.address.GetDescription())
	}
	if obs.firewall, err = p.getFirewall(ctx, spec.names.firewall); err != nil {
		return nil, err
	}
	if obs.firewall != nil && !spec.owner.owns(obs.firewall.GetDescription()) {
		return nil, notOurs("firewall", spec.names.firewall, obs.firewall.GetDescription())
	}
	hcOwner := spec.healthOwner()
	if obs.healthCheck, err = p.getHealthCheck(ctx, spec.healthCheckName()); err != nil {
		return nil, err
	}
	if obs.healthCheck != nil && !hcOwner.owns(obs.healthCheck.Description) {
		return nil, notOurs("httpHealthCheck", spec.healthCheckName(), obs.healthCheck.Description)
	}
	hcFirewall := p.healthFirewall(spec, nil).GetName()
	if obs.healthFirewall, err = p.getFirewall(ctx, hcFirewall); err != nil {
		return nil, err
	}
	if obs.healthFirewall != nil && !hcOwner.owns(obs.healthFirewall.GetDescription()) {
		return nil, notOurs("firewall", hcFirewall, obs.healthFirewall.GetDescription())
	}
	if obs.pool, err = p.getPool(ctx, spec.names.base); err != nil {
		return nil, err
	}
	if obs.pool != nil && !spec.owner.owns(obs.pool.GetDescription()) {
		return nil, notOurs("target pool", spec.names.base, obs.pool.GetDescription())
	}
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		fr, err := p.getRule(ctx, spec.names.rule(proto))
		if err != nil {
			return nil, err
		}
		if fr != nil && !spec.owner.owns(fr.GetDescription()) {
			return nil, notOurs("forwarding rule", spec.names.rule(proto), fr.GetDescription())
		}
		if fr != nil {
			obs.rules[proto] = fr
		}
	}
	return obs, nil
}

// ensureAddress returns the IP the forwarding rules use: our reserved
// address, the user's reservation of the requested IP, or a new
// reservation (of the requested IP, if any).
func (p *Provider) ensureAddress(ctx context.Context, spec *lbSpec, obs *observed) (string, error) {
	if ours := obs.address; ours != nil {
		if spec.requestedIP == "" || ours.GetAddress() == spec.requestedIP {
			return ours.GetAddress(), nil
		}
		// The Service now asks for another IP: release ours, after the
		// forwarding rules that use it.
		klog.FromContext(ctx).Info("Requested IP changed; releasing the old address", "old", ours.GetAddress(), "new", spec.requestedIP)
		if err := p.deleteRules(ctx, spec, obs); err != nil {
			return "", err
		}
		if err := p.deleteAddress(ctx, spec.names.base); err != nil {
			return "", err
		}
		obs.address = nil
	}
	if spec.requestedIP != "" {
		it := p.cloud.addresses.List(ctx, &computepb.ListAddressesRequest{
			Project: p.project, Region: p.region, Filter: ptr.To(fmt.Sprintf("address = %q", spec.requestedIP)),
		}, noGAXRetry())
		for {
			a, err := it.Next()
			if isDone(err) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("looking up the requested address %s (%s): %w", spec.requestedIP, spec.requestedIPField, err)
			}
			if a.GetAddress() != spec.requestedIP {
				continue
			}
			for _, user := range a.GetUsers() {
				if !p.isOurRule(spec, user) {
					return "", fmt.Errorf("the requested address %s (%s) is reserved as %s and already used by %s", spec.requestedIP, spec.requestedIPField, a.GetName(), user)
				}
			}
			return spec.requestedIP, nil // the user's reservation: used, never changed
		}
	}
	return p.reserveAddress(ctx, spec)
}

func (p *Provider) isOurRule(spec *lbSpec, link string) bool {
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		if relative(link) == relative(p.link("regions/"+p.region+"/forwardingRules/"+spec.names.rule(proto))) {
			return true
		}
	}
	return false
}

func (p *Provider) reserveAddress(ctx context.Context, spec *lbSpec) (string, error) {
	addr := &computepb.Address{
		Name:        ptr.To(spec.names.base),
		Description: ptr.To(spec.owner.description()),
		AddressType: ptr.To("EXTERNAL"),
	}
	what := "address " + spec.names.base
	if spec.requestedIP != "" {
		addr.Address = ptr.To(spec.requestedIP)
		what = fmt.Sprintf("address %s for the requested IP %s (%s)", spec.names.base, spec.requestedIP, spec.requestedIPField)
	}
	op, err := p.cloud.addresses.Insert(ctx, &computepb.InsertAddressRequest{Project: p.project, Region: p.region, AddressResource: addr, RequestId: requestID()}, noGAXRetry())
	if err := p.waitRegion(ctx, op, err, what); err != nil {
		return "", err
	}
	got, err := p.getAddress(ctx, spec.names.base)
	if err != nil {
		return "", err
	}
	if got == nil {
		return "", fmt.Errorf("address %s vanished right after it was reserved", spec.names.base)
	}
	klog.FromContext(ctx).Info("Reserved address", "address", got.GetAddress())
	return got.GetAddress(), nil
}

// serviceFirewall admits the Service ports from its source ranges, to the
// load balancer's address only (destinationRanges, as cloud-provider-gcp
// does): without it the ports would be open on every address of the
// tagged nodes.
func (p *Provider) serviceFirewall(spec *lbSpec, tags []string, ip string) *computepb.Firewall {
	var allowed []*computepb.Allowed
	for _, proto := range spec.protocols() {
		var ports []string
		for _, port := range spec.ports[proto] {
			ports = append(ports, strconv.Itoa(int(port)))
		}
		allowed = append(allowed, &computepb.Allowed{IPProtocol: ptr.To(strings.ToLower(string(proto))), Ports: ports})
	}
	fw := p.firewall(spec.names.firewall, spec.owner, spec.sourceRanges, tags, allowed)
	fw.DestinationRanges = []string{ip + "/32"}
	return fw
}

// healthFirewall admits Google's health checkers to the health-check port.
func (p *Provider) healthFirewall(spec *lbSpec, tags []string) *computepb.Firewall {
	name := spec.names.sharedHealthCheckFirewall
	if spec.local {
		name = spec.names.healthCheckFirewall
	}
	allowed := []*computepb.Allowed{{IPProtocol: ptr.To("tcp"), Ports: []string{strconv.Itoa(int(spec.healthPort))}}}
	return p.firewall(name, spec.healthOwner(), probeRanges, tags, allowed)
}

func (p *Provider) firewall(name string, own owner, sources, tags []string, allowed []*computepb.Allowed) *computepb.Firewall {
	return &computepb.Firewall{
		Name:         ptr.To(name),
		Description:  ptr.To(own.description()),
		Network:      ptr.To(p.link("global/networks/" + p.network)),
		Direction:    ptr.To("INGRESS"),
		SourceRanges: slices.Clone(sources),
		TargetTags:   slices.Clone(tags),
		Allowed:      allowed,
	}
}

// ensureFirewall creates want, or updates have when it differs.
func (p *Provider) ensureFirewall(ctx context.Context, have, want *computepb.Firewall) error {
	what := "firewall " + want.GetName()
	if have == nil {
		op, err := p.cloud.firewalls.Insert(ctx, &computepb.InsertFirewallRequest{Project: p.project, FirewallResource: want, RequestId: requestID()}, noGAXRetry())
		return p.waitGlobal(ctx, op, err, what)
	}
	if sameFirewall(have, want) {
		return nil
	}
	klog.FromContext(ctx).Info("Updating firewall", "firewall", want.GetName())
	op, err := p.cloud.firewalls.Update(ctx, &computepb.UpdateFirewallRequest{Project: p.project, Firewall: want.GetName(), FirewallResource: want, RequestId: requestID()}, noGAXRetry())
	return p.waitGlobal(ctx, op, err, what)
}

func sameFirewall(a, b *computepb.Firewall) bool {
	return a.GetDescription() == b.GetDescription() &&
		relative(a.GetNetwork()) == relative(b.GetNetwork()) &&
		sameSet(a.GetSourceRanges(), b.GetSourceRanges()) &&
		sameSet(a.GetDestinationRanges(), b.GetDestinationRanges()) &&
		sameSet(a.GetTargetTags(), b.GetTargetTags()) &&
		sameSet(allowedKeys(a.GetAllowed()), allowedKeys(b.GetAllowed()))
}

func allowedKeys(allowed []*computepb.Allowed) []string {
	var keys []string
	for _, a := range allowed {
		if len(a.GetPorts()) == 0 {
			keys = append(keys, strings.ToLower(a.GetIPProtocol()))
		}
		for _, port := range a.GetPorts() {
			keys = append(keys, strings.ToLower(a.GetIPProtocol())+":"+port)
		}
	}
	return keys
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// ensureHealthCheck creates or updates the health check the target pool
// uses.
func (p *Provider) ensureHealthCheck(ctx context.Context, spec *lbSpec, have *legacy.HttpHealthCheck) error {
	want := &legacy.HttpHealthCheck{
		Name:               spec.healthCheckName(),
		Description:        spec.healthOwner().description(),
		Port:               int64(spec.healthPort),
		RequestPath:        healthCheckPath,
		CheckIntervalSec:   healthCheckIntervalSec,
		TimeoutSec:         healthCheckTimeoutSec,
		HealthyThreshold:   healthCheckHealthyCount,
		UnhealthyThreshold: healthCheckUnhealthyCount,
	}
	what := "httpHealthCheck " + want.Name
	if have == nil {
		op, err := p.cloud.healthChecks.Insert(ctx, want, *requestID())
		if err != nil {
			return wrapCallError(err, what)
		}
		return p.wait(ctx, op, true, what)
	}
	if have.Port == want.Port && have.RequestPath == want.RequestPath && have.CheckIntervalSec == want.CheckIntervalSec &&
		have.TimeoutSec == want.TimeoutSec && have.HealthyThreshold == want.HealthyThreshold && have.UnhealthyThreshold == want.UnhealthyThreshold {
		return nil
	}
	klog.FromContext(ctx).Info("Updating health check", "healthCheck", want.Name, "port", want.Port)
	op, err := p.cloud.healthChecks.Update(ctx, want, *requestID())
	if err != nil {
		return wrapCallError(err, what)
	}
	return p.wait(ctx, op, true, what)
}
