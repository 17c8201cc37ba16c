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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/extlb/extlb/providers/metal/election"
)

type serviceOption func(*v1.Service)

func withClass(class string) serviceOption {
	return func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }
}

func withNoClass() serviceOption {
	return func(s *v1.Service) { s.Spec.LoadBalancerClass = nil }
}

func withType(t v1.ServiceType) serviceOption {
	return func(s *v1.Service) { s.Spec.Type = t }
}

func withIngress(ips ...string) serviceOption {
	return func(s *v1.Service) {
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

func withHostnameIngress(h string) serviceOption {
	return func(s *v1.Service) {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{Hostname: h})
	}
}

func withLocal() serviceOption {
	return func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }
}

// newService returns a LoadBalancer Service of class extlb.io/metal in
// namespace default with ingress 192.0.2.200.
func newService(name string, opts ...serviceOption) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: v1.ServiceSpec{
			Type:              v1.ServiceTypeLoadBalancer,
			LoadBalancerClass: ptr.To(DefaultLoadBalancerClass),
			Ports:             []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	withIngress("192.0.2.200")(s)
	for _, o := range opts {
		o(s)
	}
	return s
}

type nodeOption func(*v1.Node)

func withInternalIP(ip string) nodeOption {
	return func(n *v1.Node) {
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	}
}

func withLabel(k, v string) nodeOption {
	return func(n *v1.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

func excluded() nodeOption { return withLabel(election.ExcludeLabel, "") }

func newNode(name string, opts ...nodeOption) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(n)
	}
	return n
}

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
