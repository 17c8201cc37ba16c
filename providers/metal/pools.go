package metal

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/metal/pool"
)

// toPool translates an IPPool into the allocator's form.
func toPool(p *IPPool) (*pool.Pool, error) {
	ranges, err := pool.ParseRanges(p.Spec.Addresses)
	if err != nil {
		return nil, fmt.Errorf("spec.%w", err)
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("spec.addresses: the pool has no addresses")
	}
	out := &pool.Pool{
		Name:          p.Name,
		Ranges:        ranges,
		AutoAssign:    p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
		AvoidBuggyIPs: p.Spec.AvoidBuggyIPs,
	}
	if out.ServiceSelector, err = selectorOrNil(p.Spec.ServiceSelector); err != nil {
		return nil, fmt.Errorf("spec.serviceSelector: %w", err)
	}
	if out.NamespaceSelector, err = selectorOrNil(p.Spec.NamespaceSelector); err != nil {
		return nil, fmt.Errorf("spec.namespaceSelector: %w", err)
	}
	return out, nil
}

func selectorOrNil(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// usablePools translates pools (oldest first) and returns those the
// allocator can use together, plus the reason for each one it cannot use:
// an entry it cannot parse, or an overlap with an older pool.
func usablePools(pools []*IPPool) ([]*pool.Pool, map[string]string) {
	var usable []*pool.Pool
	problems := map[string]string{}
	for _, p := range pools {
		pp, err := toPool(p)
		if err != nil {
			problems[p.Name] = err.Error()
			continue
		}
		if clash := overlapping(pp, usable); clash != "" {
			problems[p.Name] = clash
			continue
		}
		usable = append(usable, pp)
	}
	return usable, problems
}

func overlapping(p *pool.Pool, others []*pool.Pool) string {
	for _, o := range others {
		for _, r := range p.Ranges {
			for _, s := range o.Ranges {
				if r.Overlaps(s) {
					return fmt.Sprintf("spec.addresses: %s overlaps %s of the older IPPool %q; this pool is not used until that is fixed", r, s, o.Name)
				}
			}
		}
	}
	return ""
}

// reloadPools reads the IPPools and gives the usable ones to the allocator.
func (p *Provider) reloadPools(ctx context.Context) {
	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	logger := klog.FromContext(ctx)
	objs, err := p.pools.List()
	if err != nil {
		logger.Error(err, "Listing IPPools")
		return
	}
	usable, problems := usablePools(objs)
	if err := p.alloc.SetPools(usable); err != nil {
		// usablePools already removed overlaps; this is a bug.
		logger.Error(err, "Allocator refused the IPPools")
		return
	}
	for name, why := range problems {
		if p.problems[name] != why {
			logger.Info("IPPool is not used", "ipPool", name, "reason", why)
		}
	}
	p.problems = problems
	p.status.kick()
}

// restore records the addresses that LoadBalancer Services hold in their
// status, oldest Service first, so that a restarted provider hands out
// nothing that is in use. Every LoadBalancer Service counts, whatever its
// loadBalancerClass: an address in our pools that someone else announces
// must not be handed out twice either.
func (p *Provider) restore(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing Services to restore assignments: %w", err)
	}
	sort.Slice(svcs, func(i, j int) bool {
		ti, tj := svcs[i].CreationTimestamp, svcs[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name
	})
	restored := 0
	for _, svc := range svcs {
		ips := ingressIPs(svc)
		if svc.Spec.Type != v1.ServiceTypeLoadBalancer || len(ips) == 0 {
			continue
		}
		req := pool.Request{Namespace: svc.Namespace, Name: svc.Name}
		if r, err := requestFor(svc, p.namespaceLabels(svc.Namespace)); err == nil {
			req = r.Request
		}
		kept, err := p.alloc.Restore(req, ips)
		if err != nil {
			logger.Info("Address in a Service's status conflicts with an older Service; it moves on its next sync", "service", klog.KObj(svc), "reason", err.Error())
		}
		if len(kept) > 0 {
			restored++
		}
	}
	logger.V(2).Info("Restored address assignments from Service status", "services", restored)
	p.status.kick()
	return nil
}

func ingressIPs(svc *v1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

func (p *Provider) namespaceLabels(name string) map[string]string {
	if p.namespaces == nil {
		return nil
	}
	ns, err := p.namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}

// desiredStatus computes the status every IPPool should show.
func (p *Provider) desiredStatus() map[string]IPPoolStatus {
	p.poolsMu.Lock()
	problems := p.problems
	p.poolsMu.Unlock()
	out := map[string]IPPoolStatus{}
	for name, s := range p.alloc.Stats() {
		out[name] = IPPoolStatus{
			AssignedIPv4: s.IPv4.Assigned, AvailableIPv4: s.IPv4.Available,
			AssignedIPv6: s.IPv6.Assigned, AvailableIPv6: s.IPv6.Available,
		}
	}
	for name, why := range problems {
		out[name] = IPPoolStatus{Error: why}
	}
	return out
}
