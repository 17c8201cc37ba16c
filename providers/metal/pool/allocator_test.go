package pool

import (
	"strings"
	"testing"
)

func TestAssign(t *testing.T) {
	v4 := newPool("v4", withRanges("192.0.2.10-192.0.2.12"))
	v6 := newPool("v6", withRanges("2001:db8::/126"))
	tests := []struct {
		desc        string
		pools       []*Pool
		existing    []Request
		req         Request
		want        string
		wantReason  Reason
		wantSubject Subject
		wantPort    int
		wantMsg     string
	}{
		{
			desc: "first free address of the first pool by name", pools: []*Pool{newPool("b", withRanges("198.51.100.1")), v4},
			req: newRequest("web"), want: "198.51.100.1",
		},
		{
			desc: "allocation continues in range order", pools: []*Pool{v4},
			existing: []Request{newRequest("a"), newRequest("b")},
			req:      newRequest("web"), want: "192.0.2.12",
		},
		{
			desc: "ranges are walked in the order written", pools: []*Pool{newPool("p", withRanges("198.51.100.7", "192.0.2.1"))},
			existing: []Request{newRequest("a")},
			req:      newRequest("web"), want: "192.0.2.1",
		},
		{
			desc: "avoidBuggyIPs skips .255 and .0", pools: []*Pool{newPool("p", withRanges("192.0.2.255-192.0.3.1"), avoidingBuggyIPs())},
			req: newRequest("web"), want: "192.0.3.1",
		},
		{
			desc: "IPv6 single stack", pools: []*Pool{v4, v6},
			req: newRequest("web", withFamilies(SingleStack, IPv6)), want: "2001:db8::",
		},
		{
			desc: "requested address honoured", pools: []*Pool{v4},
			req: newRequest("web", withIPs("192.0.2.12")), want: "192.0.2.12",
		},
		{
			desc: "requested address from a pool without autoAssign", pools: []*Pool{v4, newPool("manual", withRanges("203.0.113.0/24"), withoutAutoAssign())},
			req: newRequest("web", withIPs("203.0.113.7")), want: "203.0.113.7",
		},
		{
			desc: "pools without autoAssign are skipped for automatic addresses", pools: []*Pool{newPool("a-manual", withRanges("203.0.113.0/24"), withoutAutoAssign()), v4},
			req: newRequest("web"), want: "192.0.2.10",
		},
		{
			desc: "named pool without autoAssign", pools: []*Pool{v4, newPool("manual", withRanges("203.0.113.0/24"), withoutAutoAssign())},
			req: newRequest("web", withPool("manual")), want: "203.0.113.0",
		},
		{
			desc: "requested address outside every pool", pools: []*Pool{v4},
			req:        newRequest("web", withIPs("198.51.100.1")),
			wantReason: ReasonNotInPool, wantSubject: SubjectRequestedIP, wantMsg: "requested address 198.51.100.1 is outside every IPPool",
		},
		{
			desc: "requested address in another pool than the named one", pools: []*Pool{v4, newPool("other", withRanges("198.51.100.0/24"))},
			req:        newRequest("web", withIPs("198.51.100.1"), withPool("v4")),
			wantReason: ReasonNotInPool, wantSubject: SubjectRequestedIP, wantMsg: `belongs to IPPool "other", not to the requested IPPool "v4"`,
		},
		{
			desc: "requested buggy address", pools: []*Pool{newPool("p", withRanges("192.0.2.0/24"), avoidingBuggyIPs())},
			req:        newRequest("web", withIPs("192.0.2.255")),
			wantReason: ReasonNotInPool, wantSubject: SubjectRequestedIP, wantMsg: "avoidBuggyIPs",
		},
		{
			desc: "requested address of a family the Service lacks", pools: []*Pool{v4, v6},
			req:        newRequest("web", withIPs("2001:db8::1")),
			wantReason: ReasonInvalid, wantSubject: SubjectRequestedIP, wantMsg: "requested address 2001:db8::1 is IPv6, but the Service only gets IPv4",
		},
		{
			desc: "two requested addresses of one family", pools: []*Pool{v4},
			req:        newRequest("web", withIPs("192.0.2.10", "192.0.2.11"), withFamilies(RequireDualStack, IPv4, IPv6)),
			wantReason: ReasonInvalid, wantSubject: SubjectRequestedIP, wantMsg: "more than one IPv4 address requested",
		},
		{
			desc: "requested address taken by a Service without a key", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withPorts("TCP/443")),
			wantReason: ReasonInUse, wantSubject: SubjectSharingKey, wantMsg: "address 192.0.2.11 is in use by Service default/a, and neither Service allows sharing",
		},
		{
			desc: "sharing: same key and disjoint ports", pools: []*Pool{v4},
			existing: []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/80", "UDP/53"))},
			req:      newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443", "TCP/53")), want: "192.0.2.11",
		},
		{
			desc: "sharing: overlapping port", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/80", "UDP/53"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443", "UDP/53")),
			wantReason: ReasonInUse, wantSubject: SubjectPort, wantPort: 1, wantMsg: "port UDP/53 is already served on address 192.0.2.11 by Service default/a",
		},
		{
			desc: "sharing: different key", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k1"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k2"), withPorts("TCP/443")),
			wantReason: ReasonInUse, wantSubject: SubjectSharingKey, wantMsg: `in use by Service default/a with sharing key "k1", not "k2"`,
		},
		{
			desc: "sharing: holder has no key", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443")),
			wantReason: ReasonInUse, wantSubject: SubjectSharingKey, wantMsg: "which does not allow sharing",
		},
		{
			desc: "sharing: different traffic policy", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443"), withLocalTraffic("app=web")),
			wantReason: ReasonInUse, wantSubject: SubjectTrafficPolicy, wantMsg: "externalTrafficPolicy is Cluster",
		},
		{
			desc: "sharing: Local with different selectors", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"), withLocalTraffic("app=a"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443"), withLocalTraffic("app=web")),
			wantReason: ReasonInUse, wantSubject: SubjectTrafficPolicy, wantMsg: "same pod selector",
		},
		{
			desc: "sharing: Local with the same selector in another namespace", pools: []*Pool{v4},
			existing:   []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"), withLocalTraffic("app=web"), inNamespace("other"))},
			req:        newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443"), withLocalTraffic("app=web")),
			wantReason: ReasonInUse, wantSubject: SubjectTrafficPolicy, wantMsg: "in one namespace",
		},
		{
			desc: "sharing: Local with the same selector", pools: []*Pool{v4},
			existing: []Request{newRequest("a", withIPs("192.0.2.11"), withKey("k"), withLocalTraffic("app=web"))},
			req:      newRequest("web", withIPs("192.0.2.11"), withKey("k"), withPorts("TCP/443"), withLocalTraffic("app=web")), want: "192.0.2.11",
		},
		{
			desc: "sharing key without a requested address joins a compatible sharer", pools: []*Pool{v4},
			existing: []Request{newRequest("a"), newRequest("b", withKey("k"), withPorts("TCP/80"))},
			req:      newRequest("web", withKey("k"), withPorts("TCP/443")), want: "192.0.2.11",
		},
		{
			desc: "sharing key with clashing ports gets an address of its own", pools: []*Pool{v4},
			existing: []Request{newRequest("a", withKey("k"))},
			req:      newRequest("web", withKey("k")), want: "192.0.2.11",
		},
		{
			desc: "dual stack required and offered", pools: []*Pool{v4, v6},
			req: newRequest("web", withFamilies(RequireDualStack, IPv6, IPv4)), want: "2001:db8::,192.0.2.10",
		},
		{
			desc: "dual stack required, one family missing", pools: []*Pool{v4},
			req:        newRequest("web", withFamilies(RequireDualStack, IPv4, IPv6)),
			wantReason: ReasonNoFamily, wantSubject: SubjectFamilies, wantMsg: `no IPPool that may serve this Service has IPv6 addresses (IPPool "v4")`,
		},
		{
			desc: "dual stack preferred, only the first family offered", pools: []*Pool{v4},
			req: newRequest("web", withFamilies(PreferDualStack, IPv4, IPv6)), want: "192.0.2.10",
		},
		{
			desc: "dual stack preferred, both offered", pools: []*Pool{newPool("both", withRanges("192.0.2.1", "2001:db8::1"))},
			req: newRequest("web", withFamilies(PreferDualStack, IPv4, IPv6)), want: "192.0.2.1,2001:db8::1",
		},
		{
			desc: "dual stack preferred, second family exhausted", pools: []*Pool{newPool("both", withRanges("192.0.2.1-192.0.2.2", "2001:db8::1"))},
			existing: []Request{newRequest("a", withFamilies(SingleStack, IPv6))},
			req:      newRequest("web", withFamilies(PreferDualStack, IPv4, IPv6)), want: "192.0.2.1",
		},
		{
			desc: "dual stack required, second family exhausted", pools: []*Pool{newPool("both", withRanges("192.0.2.1-192.0.2.2", "2001:db8::1"))},
			existing:   []Request{newRequest("a", withFamilies(SingleStack, IPv6))},
			req:        newRequest("web", withFamilies(RequireDualStack, IPv4, IPv6)),
			wantReason: ReasonExhausted, wantSubject: SubjectPool, wantMsg: `no free IPv6 address in IPPool "both"`,
		},
		{
			desc: "dual stack preferred, first family missing", pools: []*Pool{v6},
			req:        newRequest("web", withFamilies(PreferDualStack, IPv4, IPv6)),
			wantReason: ReasonNoFamily, wantSubject: SubjectFamilies,
		},
		{
			desc: "single stack takes only the first family", pools: []*Pool{v4, v6},
			req: newRequest("web", withFamilies(SingleStack, IPv6, IPv4)), want: "2001:db8::",
		},
		{
			desc: "dual stack with one requested address allocates the other", pools: []*Pool{v4, v6},
			req: newRequest("web", withFamilies(RequireDualStack, IPv4, IPv6), withIPs("2001:db8::2")), want: "192.0.2.10,2001:db8::2",
		},
		{
			desc: "a requested address from a manual pool does not open it for the other family", pools: []*Pool{newPool("manual", withRanges("203.0.113.0/24", "2001:db8:1::/120"), withoutAutoAssign()), v6},
			req: newRequest("web", withFamilies(RequireDualStack, IPv4, IPv6), withIPs("203.0.113.9")), want: "203.0.113.9,2001:db8::",
		},
		{
			desc: "a requested address from a manual pool, no automatic pool for the other family", pools: []*Pool{newPool("manual", withRanges("203.0.113.0/24", "2001:db8:1::/120"), withoutAutoAssign())},
			req:        newRequest("web", withFamilies(RequireDualStack, IPv4, IPv6), withIPs("203.0.113.9")),
			wantReason: ReasonNoFamily, wantSubject: SubjectFamilies, wantMsg: "has IPv6 addresses (no IPPool with autoAssign)",
		},
		{
			desc: "requested address outside every pool when no pool selects the Service", pools: []*Pool{newPool("team", withRanges("198.51.100.0/24"), withNamespaceSelector("team=a"))},
			req:        newRequest("web", withIPs("192.0.2.1")),
			wantReason: ReasonNotInPool, wantSubject: SubjectRequestedIP, wantMsg: "requested address 192.0.2.1 is outside every IPPool",
		},
		{
			desc: "requested address when there are no pools", req: newRequest("web", withIPs("192.0.2.1")),
			wantReason: ReasonNotInPool, wantSubject: SubjectRequestedIP, wantMsg: "outside every IPPool",
		},
		{
			desc: "exhausted", pools: []*Pool{newPool("tiny", withRanges("192.0.2.1"))},
			existing:   []Request{newRequest("a")},
			req:        newRequest("web"),
			wantReason: ReasonExhausted, wantSubject: SubjectPool, wantMsg: `no free IPv4 address in IPPool "tiny"`,
		},
		{
			desc: "unknown pool", pools: []*Pool{v4},
			req:        newRequest("web", withPool("nope")),
			wantReason: ReasonUnknownPool, wantSubject: SubjectPool, wantMsg: `there is no IPPool "nope"`,
		},
		{
			desc: "no pools at all", req: newRequest("web"),
			wantReason: ReasonNotSelected, wantSubject: SubjectPool, wantMsg: "there is no IPPool with autoAssign enabled",
		},
		{
			desc: "service selector matches", pools: []*Pool{newPool("a", withRanges("198.51.100.1"), withServiceSelector("tier=edge")), v4},
			req: newRequest("web", withLabels("tier=edge")), want: "198.51.100.1",
		},
		{
			desc: "service selector skips a pool", pools: []*Pool{newPool("a", withRanges("198.51.100.1"), withServiceSelector("tier=edge")), v4},
			req: newRequest("web", withLabels("tier=internal")), want: "192.0.2.10",
		},
		{
			desc: "named pool whose service selector does not match", pools: []*Pool{newPool("edge", withRanges("198.51.100.1"), withServiceSelector("tier=edge"))},
			req:        newRequest("web", withPool("edge")),
			wantReason: ReasonNotSelected, wantSubject: SubjectPool, wantMsg: `IPPool "edge" may not serve this Service: its serviceSelector "tier=edge" does not match`,
		},
		{
			desc: "namespace selector", pools: []*Pool{newPool("team", withRanges("198.51.100.1"), withNamespaceSelector("team=a"))},
			req:        newRequest("web", withNamespaceLabels("team=b")),
			wantReason: ReasonNotSelected, wantSubject: SubjectPool, wantMsg: `its namespaceSelector "team=a" does not match the labels of namespace "default"`,
		},
		{
			desc: "namespace selector matches", pools: []*Pool{newPool("team", withRanges("198.51.100.1"), withNamespaceSelector("team=a"))},
			req: newRequest("web", withNamespaceLabels("team=a")), want: "198.51.100.1",
		},
		{
			desc: "requested address in a pool whose selector does not match", pools: []*Pool{v4, newPool("team", withRanges("198.51.100.0/24"), withNamespaceSelector("team=a"))},
			req:        newRequest("web", withIPs("198.51.100.3")),
			wantReason: ReasonNotSelected, wantSubject: SubjectRequestedIP, wantMsg: `requested address 198.51.100.3 belongs to IPPool "team", which may not serve this Service`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a := newAllocator(t, tc.pools...)
			for _, r := range tc.existing {
				mustAssign(t, a, r)
			}
			ips, err := a.Assign(tc.req)
			if tc.wantReason != "" {
				e, ok := err.(*Error)
				if !ok {
					t.Fatalf("Assign = %v, %v; want an *Error with reason %s", ips, err, tc.wantReason)
				}
				if e.Reason != tc.wantReason || e.Subject != tc.wantSubject || e.PortIndex != tc.wantPort || !strings.Contains(e.Msg, tc.wantMsg) {
					t.Fatalf("error = %+v, want reason %s, subject %s, port index %d, message containing %q", e, tc.wantReason, tc.wantSubject, tc.wantPort, tc.wantMsg)
				}
				if got := a.Assigned(tc.req.Key()); got != nil {
					t.Fatalf("failed Assign left %v assigned", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Assign: %v", err)
			}
			if got := addrsString(ips); got != tc.want {
				t.Fatalf("Assign = %s, want %s", got, tc.want)
			}
			// Idempotent: the same request gives the same addresses.
			if again := mustAssign(t, a, tc.req); again != tc.want {
				t.Fatalf("second Assign = %s, want %s", again, tc.want)
			}
		})
	}
}
