package speaker

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"sync"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// newService returns a LoadBalancer Service of class extlb.io/metal in
// namespace default with ingress 192.0.2.200.
func newService(name string, opts ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-" + name), fixtures.WithClass(providers.DefaultClass(ProviderName)),
		fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, 0)), fixtures.WithIngress("192.0.2.200"),
	}, opts...)...)
}

// excluded labels the node as excluded from announcing.
func excluded() fixtures.NodeTweak { return fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "") }

// endpoint is one endpoint of a slice: on node, ready or not.
type endpoint struct {
	node  string
	ready bool
}

func newSlice(service, name string, eps ...endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, ep := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String()},
			NodeName:   ptr.To(ep.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ep.ready)},
		})
	}
	return s
}

// fakeAnnouncer records what the speaker asks for.
type fakeAnnouncer struct {
	mu        sync.Mutex
	balancers map[string]netip.Addr
	fail      map[netip.Addr]error
	closed    bool
	calls     *[]string // shared with fakeMembers to check ordering
}

func newFakeAnnouncer(calls *[]string) *fakeAnnouncer {
	return &fakeAnnouncer{balancers: map[string]netip.Addr{}, fail: map[netip.Addr]error{}, calls: calls}
}

func (a *fakeAnnouncer) SetBalancer(name string, ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("closed")
	}
	if err := a.fail[ip]; err != nil {
		return err
	}
	a.balancers[name] = ip
	return nil
}

func (a *fakeAnnouncer) DeleteBalancer(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.balancers, name)
}

func (a *fakeAnnouncer) Refresh() error { return nil }

func (a *fakeAnnouncer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.balancers = map[string]netip.Addr{}
	*a.calls = append(*a.calls, "announcer.Close")
	return nil
}

func (a *fakeAnnouncer) snapshot() map[string]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.balancers)
}

// fakeMembers is a liveness view the test sets.
type fakeMembers struct {
	mu      sync.Mutex
	live    map[string]bool
	peers   map[string]netip.AddrPort
	changes chan struct{}
	calls   *[]string
}

func newFakeMembers(calls *[]string, live ...string) *fakeMembers {
	m := &fakeMembers{live: map[string]bool{}, changes: make(chan struct{}, 1), calls: calls}
	for _, n := range live {
		m.live[n] = true
	}
	return m
}

func (m *fakeMembers) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (m *fakeMembers) SetPeers(p map[string]netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = p
}

func (m *fakeMembers) peersSnapshot() map[string]netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.peers)
}

func (m *fakeMembers) Live() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.live)
}

func (m *fakeMembers) Ready() bool { return true }

func (m *fakeMembers) Changes() <-chan struct{} { return m.changes }

func (m *fakeMembers) Leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	*m.calls = append(*m.calls, "members.Leave")
}

func (m *fakeMembers) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	*m.calls = append(*m.calls, "members.Close")
	return nil
}

// setLive changes the live set and notifies the speaker.
func (m *fakeMembers) setLive(names ...string) {
	m.mu.Lock()
	m.live = map[string]bool{}
	for _, n := range names {
		m.live[n] = true
	}
	m.mu.Unlock()
	select {
	case m.changes <- struct{}{}:
	default:
	}
}
