package pool

import (
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
)

// Pool is a named set of address ranges and the rules for handing them out.
type Pool struct {
	// Name identifies the pool (the IPPool object's name).
	Name string
	// Ranges are the pool's addresses, non-overlapping.
	Ranges []Range
	// AutoAssign allows addresses of this pool to go to Services that neither
	// request an address nor name the pool.
	AutoAssign bool
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool
	// ServiceSelector and NamespaceSelector restrict the pool to Services
	// whose labels, and whose namespace's labels, match. Nil matches all.
	ServiceSelector   labels.Selector
	NamespaceSelector labels.Selector
}

// Contains reports whether ip lies in one of the pool's ranges.
func (p *Pool) Contains(ip netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// HasFamily reports whether the pool has addresses of family f.
func (p *Pool) HasFamily(f Family) bool {
	for _, r := range p.Ranges {
		if r.Family() == f {
			return true
		}
	}
	return false
}

// usable reports whether ip may be handed out from this pool.
func (p *Pool) usable(ip netip.Addr) bool {
	return p.Contains(ip) && !(p.AvoidBuggyIPs && isBuggy(ip))
}

// Size returns how many addresses of family f the pool can hand out,
// saturated at math.MaxInt64.
func (p *Pool) Size(f Family) int64 {
	var n int64
	for _, r := range p.Ranges {
		if r.Family() == f {
			n = addSat(n, r.size(p.AvoidBuggyIPs))
		}
	}
	return n
}

// selects reports whether the pool's selectors match the Service; if not, the
// returned text says which selector did not match.
func (p *Pool) selects(req *Request) (bool, string) {
	if p.ServiceSelector != nil && !p.ServiceSelector.Matches(labels.Set(req.ServiceLabels)) {
		return false, fmt.Sprintf("its serviceSelector %q does not match the Service's labels", p.ServiceSelector)
	}
	if p.NamespaceSelector != nil && !p.NamespaceSelector.Matches(labels.Set(req.NamespaceLabels)) {
		return false, fmt.Sprintf("its namespaceSelector %q does not match the labels of namespace %q", p.NamespaceSelector, req.Namespace)
	}
	return true, ""
}

// validatePools checks that pool names are unique and that no two pools
// share an address.
func validatePools(pools []*Pool) error {
	seen := map[string]bool{}
	for i, p := range pools {
		if p.Name == "" {
			return fmt.Errorf("pool %d has no name", i)
		}
		if seen[p.Name] {
			return fmt.Errorf("pool %q is defined twice", p.Name)
		}
		seen[p.Name] = true
		for _, q := range pools[:i] {
			for _, r := range p.Ranges {
				for _, s := range q.Ranges {
					if r.Overlaps(s) {
						return fmt.Errorf("pool %q range %s overlaps pool %q range %s", p.Name, r, q.Name, s)
					}
				}
			}
		}
	}
	return nil
}
