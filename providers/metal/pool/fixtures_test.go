package pool

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

type poolOption func(*Pool)

func newPool(name string, opts ...poolOption) *Pool {
	p := &Pool{Name: name, AutoAssign: true}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withRanges(entries ...string) poolOption {
	return func(p *Pool) {
		rs, err := ParseRanges(entries)
		if err != nil {
			panic(err)
		}
		p.Ranges = rs
	}
}

func withoutAutoAssign() poolOption { return func(p *Pool) { p.AutoAssign = false } }
func avoidingBuggyIPs() poolOption  { return func(p *Pool) { p.AvoidBuggyIPs = true } }

func withServiceSelector(s string) poolOption {
	return func(p *Pool) { p.ServiceSelector = labels.SelectorFromSet(parseLabels(s)) }
}

func withNamespaceSelector(s string) poolOption {
	return func(p *Pool) { p.NamespaceSelector = labels.SelectorFromSet(parseLabels(s)) }
}

type requestOption func(*Request)

// newRequest returns a SingleStack IPv4 request for Service default/<name>
// serving TCP/80 with externalTrafficPolicy Cluster.
func newRequest(name string, opts ...requestOption) Request {
	r := Request{
		Namespace: "default", Name: name,
		Families: []Family{IPv4}, Policy: SingleStack,
		Ports: []Port{{Protocol: "TCP", Port: 80}},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func inNamespace(ns string) requestOption { return func(r *Request) { r.Namespace = ns } }
func withPool(name string) requestOption  { return func(r *Request) { r.Pool = name } }
func withKey(k string) requestOption      { return func(r *Request) { r.SharingKey = k } }

func withIPs(ips ...string) requestOption {
	return func(r *Request) {
		r.IPs = nil
		for _, s := range ips {
			r.IPs = append(r.IPs, netip.MustParseAddr(s))
		}
	}
}

// withPorts takes "TCP/80"-style ports.
func withPorts(ports ...string) requestOption {
	return func(r *Request) {
		r.Ports = nil
		for _, s := range ports {
			proto, num, _ := strings.Cut(s, "/")
			n, err := strconv.Atoi(num)
			if err != nil {
				panic(err)
			}
			r.Ports = append(r.Ports, Port{Protocol: proto, Port: int32(n)})
		}
	}
}

func withFamilies(policy FamilyPolicy, fs ...Family) requestOption {
	return func(r *Request) { r.Policy = policy; r.Families = fs }
}

func withLocalTraffic(selector string) requestOption {
	return func(r *Request) { r.LocalTraffic = true; r.Selector = parseLabels(selector) }
}

func withLabels(s string) requestOption { return func(r *Request) { r.ServiceLabels = parseLabels(s) } }
func withNamespaceLabels(s string) requestOption {
	return func(r *Request) { r.NamespaceLabels = parseLabels(s) }
}

// parseLabels takes "a=b,c=d".
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func newAllocator(t testing.TB, pools ...*Pool) *Allocator {
	t.Helper()
	a := NewAllocator()
	if err := a.SetPools(pools); err != nil {
		t.Fatalf("SetPools: %v", err)
	}
	return a
}

func addrsString(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func mustAssign(t testing.TB, a *Allocator, r Request) string {
	t.Helper()
	ips, err := a.Assign(r)
	if err != nil {
		t.Fatalf("Assign(%s): %v", r.Key(), err)
	}
	return addrsString(ips)
}
