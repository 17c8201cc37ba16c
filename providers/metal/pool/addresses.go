// Package pool is the address allocator of the metal provider: IP pools made
// of CIDRs and ranges, and the rules that decide which Service gets which
// address, when Services may share one, and how the state is rebuilt from the
// addresses Services already hold. It is plain Go with no Kubernetes client:
// the metal provider translates Services and IPPool objects into Requests and
// Pools and drives an Allocator.
package pool

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// Family is an IP address family. Its values equal Kubernetes' IPFamily.
type Family string

// The two address families.
const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// FamilyOf returns the family of ip.
func FamilyOf(ip netip.Addr) Family {
	if ip.Is4() {
		return IPv4
	}
	return IPv6
}

// Range is an inclusive range of addresses of one family.
type Range struct {
	First, Last netip.Addr
}

// Family returns the family of the range's addresses.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether ip lies in the range.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.BitLen() == r.First.BitLen() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

// Overlaps reports whether the two ranges have an address in common.
func (r Range) Overlaps(o Range) bool {
	return r.First.BitLen() == o.First.BitLen() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// String returns the range in the "first-last" form.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// ParseRange parses one pool entry: a CIDR ("192.0.2.0/28", "2001:db8::/120"),
// a range of two addresses of one family ("192.0.2.10-192.0.2.20"), or a
// single address. A CIDR must not have host bits set, since that usually means
// a typo; the error says which prefix was probably meant.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address entry")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a valid CIDR: %w", s, err)
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("%q: zoned and IPv4-mapped IPv6 addresses are not allowed", s)
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return Range{First: p.Addr(), Last: lastOf(p)}, nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := parseAddr(strings.TrimSpace(first))
		if err != nil {
			return Range{}, fmt.Errorf("range %q: %w", s, err)
		}
		b, err := parseAddr(strings.TrimSpace(last))
		if err != nil {
			return Range{}, fmt.Errorf("range %q: %w", s, err)
		}
		if a.BitLen() != b.BitLen() {
			return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if b.Less(a) {
			return Range{}, fmt.Errorf("range %q ends before it starts", s)
		}
		return Range{First: a, Last: b}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return Range{}, fmt.Errorf("%q is neither a CIDR, a range (a-b) nor an address: %w", s, err)
	}
	return Range{First: a, Last: a}, nil
}

// ParseRanges parses every entry and rejects entries that overlap each other.
func ParseRanges(entries []string) ([]Range, error) {
	ranges := make([]Range, 0, len(entries))
	for i, e := range entries {
		r, err := ParseRange(e)
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %w", i, err)
		}
		for j, prev := range ranges {
			if prev.Overlaps(r) {
				return nil, fmt.Errorf("addresses[%d] %q overlaps addresses[%d] %q", i, e, j, entries[j])
			}
		}
		ranges = append(ranges, r)
	}
	return ranges, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q: zoned and IPv4-mapped IPv6 addresses are not allowed", s)
	}
	return a, nil
}

// lastOf returns the last address of a masked prefix.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// isBuggy reports whether ip is an IPv4 address ending in .0 or .255, which
// some old clients and network gear mistake for a network or broadcast
// address.
func isBuggy(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	last := ip.As4()[3]
	return last == 0 || last == 255
}

// size returns the number of addresses in r, minus the buggy ones when
// avoidBuggy is set, saturated at math.MaxInt64 (a big IPv6 range).
func (r Range) size(avoidBuggy bool) int64 {
	if r.First.Is4() {
		a, b := int64(v4ToUint(r.First)), int64(v4ToUint(r.Last))
		n := b - a + 1
		if avoidBuggy {
			n -= countResidue(a, b, 0) + countResidue(a, b, 255)
		}
		return n
	}
	f, l := r.First.As16(), r.Last.As16()
	// The difference of two 128-bit numbers; if the high 64 bits differ or
	// the low difference is too large, the count saturates.
	hiF, hiL := be64(f[:8]), be64(l[:8])
	loF, loL := be64(f[8:]), be64(l[8:])
	diffLo := loL - loF
	borrow := uint64(0)
	if loL < loF {
		borrow = 1
	}
	if hiL-hiF-borrow != 0 || diffLo >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(diffLo) + 1
}

// countResidue counts the x in [a, b] with x mod 256 == r.
func countResidue(a, b, r int64) int64 {
	// Numbers ≡ r below or equal to n: floor((n - r) / 256) + 1 for n >= r.
	upTo := func(n int64) int64 {
		if n < r {
			return 0
		}
		return (n-r)/256 + 1
	}
	return upTo(b) - upTo(a-1)
}

func v4ToUint(ip netip.Addr) uint32 {
	b := ip.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// addSat adds two non-negative counts, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
