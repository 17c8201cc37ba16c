package cloud

import (
	"fmt"
	"net/netip"
)

// vipPool hands out load-balancer addresses from a prefix. Not safe for
// concurrent use: the server holds its lock.
type vipPool struct {
	prefix netip.Prefix
	used   map[netip.Addr]bool
}

func newVIPPool(cidr string) (*vipPool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("VIP range %q: %w", cidr, err)
	}
	return &vipPool{prefix: p.Masked(), used: map[netip.Addr]bool{}}, nil
}

// allocate returns the lowest free address. The prefix's first address (the
// network address) is skipped unless the prefix is a single address.
func (p *vipPool) allocate() (netip.Addr, error) {
	a := p.prefix.Addr()
	if p.prefix.Bits() < a.BitLen() {
		a = a.Next()
	}
	for ; a.IsValid() && p.prefix.Contains(a); a = a.Next() {
		if !p.used[a] {
			p.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in VIP range %s (%d in use)", p.prefix, len(p.used))
}

func (p *vipPool) release(a netip.Addr) { delete(p.used, a) }
