package pool

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		desc        string
		in          string
		first, last string
		wantErr     string
	}{
		{desc: "IPv4 CIDR", in: "192.0.2.0/28", first: "192.0.2.0", last: "192.0.2.15"},
		{desc: "IPv4 /32", in: "192.0.2.7/32", first: "192.0.2.7", last: "192.0.2.7"},
		{desc: "IPv6 CIDR", in: "2001:db8::/126", first: "2001:db8::", last: "2001:db8::3"},
		{desc: "IPv6 /64", in: "2001:db8:1::/64", first: "2001:db8:1::", last: "2001:db8:1::ffff:ffff:ffff:ffff"},
		{desc: "IPv4 range with spaces", in: " 192.0.2.10 - 192.0.2.20 ", first: "192.0.2.10", last: "192.0.2.20"},
		{desc: "IPv6 range", in: "2001:db8::10-2001:db8::1:0", first: "2001:db8::10", last: "2001:db8::1:0"},
		{desc: "single address", in: "198.51.100.9", first: "198.51.100.9", last: "198.51.100.9"},
		{desc: "empty", in: "  ", wantErr: "empty address entry"},
		{desc: "host bits set", in: "192.0.2.1/24", wantErr: "has host bits set (did you mean 192.0.2.0/24?)"},
		{desc: "bad prefix length", in: "192.0.2.0/33", wantErr: "is not a valid CIDR"},
		{desc: "garbage", in: "pool-a", wantErr: "range \"pool-a\""},
		{desc: "not an address", in: "300.1.1.1", wantErr: "is neither a CIDR, a range (a-b) nor an address"},
		{desc: "mixed families", in: "192.0.2.1-2001:db8::1", wantErr: "mixes IPv4 and IPv6"},
		{desc: "backwards", in: "192.0.2.20-192.0.2.10", wantErr: "ends before it starts"},
		{desc: "zone", in: "fe80::1%eth0", wantErr: "zoned"},
		{desc: "IPv4-mapped", in: "::ffff:192.0.2.1/128", wantErr: "IPv4-mapped"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, err := ParseRange(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseRange(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tc.in, err)
			}
			if r.First != netip.MustParseAddr(tc.first) || r.Last != netip.MustParseAddr(tc.last) {
				t.Errorf("ParseRange(%q) = %s, want %s-%s", tc.in, r, tc.first, tc.last)
			}
		})
	}
}

func TestParseRangesRejectsOverlap(t *testing.T) {
	_, err := ParseRanges([]string{"192.0.2.0/28", "198.51.100.1", "192.0.2.8-192.0.2.30"})
	want := `addresses[2] "192.0.2.8-192.0.2.30" overlaps addresses[0] "192.0.2.0/28"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if _, err := ParseRanges([]string{"192.0.2.0/28", "192.0.2.16/28", "2001:db8::/120"}); err != nil {
		t.Fatalf("adjacent ranges: %v", err)
	}
	_, err = ParseRanges([]string{"192.0.2.0/28", "nope"})
	if err == nil || !strings.HasPrefix(err.Error(), "addresses[1]: ") {
		t.Fatalf("error = %v, want it to name addresses[1]", err)
	}
}

func TestPoolSize(t *testing.T) {
	tests := []struct {
		desc       string
		addresses  []string
		avoidBuggy bool
		want4      int64
		want6      int64
	}{
		{desc: "IPv4 /24", addresses: []string{"192.0.2.0/24"}, want4: 256},
		{desc: "IPv4 /24 avoiding buggy", addresses: []string{"192.0.2.0/24"}, avoidBuggy: true, want4: 254},
		{desc: "IPv4 /23 avoiding buggy", addresses: []string{"192.0.2.0/23"}, avoidBuggy: true, want4: 508},
		{desc: "IPv4 range across .255", addresses: []string{"192.0.2.250-192.0.3.5"}, avoidBuggy: true, want4: 10},
		{desc: "mixed", addresses: []string{"192.0.2.0/30", "2001:db8::/120", "2001:db8:1::1"}, want4: 4, want6: 257},
		{desc: "buggy rule ignores IPv6", addresses: []string{"2001:db8::/120"}, avoidBuggy: true, want6: 256},
		{desc: "IPv6 /64 saturates", addresses: []string{"2001:db8::/64"}, want6: math.MaxInt64},
		{desc: "IPv6 /66 fits", addresses: []string{"2001:db8::/66"}, want6: 1 << 62},
		{desc: "IPv6 /65 is one more than int64 holds", addresses: []string{"2001:db8::/65"}, want6: math.MaxInt64},
		{desc: "two big IPv6 ranges saturate", addresses: []string{"2001:db8::/65", "2001:db8:1::/65"}, want6: math.MaxInt64},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := newPool("p", withRanges(tc.addresses...))
			p.AvoidBuggyIPs = tc.avoidBuggy
			if got := p.Size(IPv4); got != tc.want4 {
				t.Errorf("IPv4 size = %d, want %d", got, tc.want4)
			}
			if got := p.Size(IPv6); got != tc.want6 {
				t.Errorf("IPv6 size = %d, want %d", got, tc.want6)
			}
		})
	}
}
