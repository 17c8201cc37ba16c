package speaker_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal/election"
	"github.com/extlb/extlb/providers/metal/layer2"
	"github.com/extlb/extlb/providers/metal/speaker"
	"github.com/extlb/extlb/providers/metal/speaker/liveness"
	"github.com/extlb/extlb/test/fixtures"
	"github.com/extlb/extlb/test/netns"
)

const heartbeatPort = 7947

var nodeNames = []string{"node-1", "node-2", "node-3"}

// testbed is a client and three nodes on 192.0.2.0/24 + 2001:db8::/64, each
// node running a speaker in the test process whose sockets live in the
// node's namespace. node-1 and the client also share 198.51.100.0/24. The
// speakers share the package's real API server; the test's Services live in
// a namespace of its own.
type testbed struct {
	t    testing.TB
	kube kubernetes.Interface
	ns   string
	// speakerKube is the speakers' client: kube unless a test sets it.
	speakerKube kubernetes.Interface
	client      *netns.Host
	clientLAN   netns.Link
	client2     netns.Link // the client's link on 198.51.100.0/24
	nodes       map[string]*node
}

type node struct {
	name string
	host *netns.Host
	lan  netns.Link

	mu        sync.Mutex
	announcer *layer2.Announcer
	members   *liveness.Members
	cancel    context.CancelFunc
	done      chan error
}

func newCluster(t testing.TB, objs ...runtime.Object) *testbed {
	t.Helper()
	cp := controlPlane.Get(t)
	lab := netns.New(t)
	lan := lab.NewSegment("lan", "192.0.2.0/24", "2001:db8::/64")
	lan2 := lab.NewSegment("lan2", "198.51.100.0/24", "2001:db8:1::/64")
	c := &testbed{t: t, kube: cp.AdminClient(), ns: clustertest.NewNamespace(t, cp), client: lab.NewHost("client"), nodes: map[string]*node{}}
	c.clientLAN = lab.Attach(c.client, lan, 100)
	c.client2 = lab.Attach(c.client, lan2, 100)
	for i, name := range nodeNames {
		n := &node{name: name, host: lab.NewHost(name)}
		n.lan = lab.Attach(n.host, lan, 11+i)
		if name == "node-1" {
			lab.Attach(n.host, lan2, 11)
		}
		c.nodes[name] = n
		c.createNode(name, n.lan.IPv4.Addr())
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
	})
	for _, o := range objs {
		c.create(o)
	}
	return c
}

// createNode (re)creates the Node object name with an InternalIP: Nodes are
// cluster-scoped, so an earlier test's may remain; it is deleted when the
// test ends.
func (c *testbed) createNode(name string, ip netip.Addr) {
	t := c.t
	t.Helper()
	ctx := context.Background()
	nodes := c.kube.CoreV1().Nodes()
	if err := nodes.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete old node %s: %v", name, err)
	}
	n, err := nodes.Create(ctx, fixtures.Node(name), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip.String()}}
	if _, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set addresses of node %s: %v", name, err)
	}
	t.Cleanup(func() { nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// create creates a Service (then writes its status, as the controller
// would) or an EndpointSlice in the test's namespace, and deletes it when
// the test ends: the speakers of later tests, sharing the API server, must
// not see it.
func (c *testbed) create(obj runtime.Object) {
	t := c.t
	t.Helper()
	ctx := context.Background()
	switch o := obj.(type) {
	case *v1.Service:
		status := o.Status
		o.Namespace = c.ns
		svc, err := c.kube.CoreV1().Services(c.ns).Create(ctx, o, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create service %s: %v", o.Name, err)
		}
		svc.Status = status
		t.Cleanup(func() { c.kube.CoreV1().Services(c.ns).Delete(context.Background(), o.Name, metav1.DeleteOptions{}) })
		if _, err := c.kube.CoreV1().Services(c.ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("set status of service %s: %v", o.Name, err)
		}
	case *discoveryv1.EndpointSlice:
		o.Namespace = c.ns
		if _, err := c.kube.DiscoveryV1().EndpointSlices(c.ns).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create endpoint slice %s: %v", o.Name, err)
		}
		t.Cleanup(func() {
			c.kube.DiscoveryV1().EndpointSlices(c.ns).Delete(context.Background(), o.Name, metav1.DeleteOptions{})
		})
	default:
		t.Fatalf("create: unsupported %T", obj)
	}
}

// updateSlice replaces the endpoints of the EndpointSlice named like s.
func (c *testbed) updateSlice(s *discoveryv1.EndpointSlice) {
	t := c.t
	t.Helper()
	ctx := context.Background()
	slices := c.kube.DiscoveryV1().EndpointSlices(c.ns)
	old, err := slices.Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old.Endpoints = s.Endpoints
	if _, err := slices.Update(ctx, old, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update endpoint slice %s: %v", s.Name, err)
	}
}

// start runs node's speaker.
func (c *testbed) start(name string) {
	t := c.t
	t.Helper()
	n := c.nodes[name]
	var conn net.PacketConn
	if err := n.host.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", fmt.Sprintf(":%d", heartbeatPort))
		return err
	}); err != nil {
		t.Fatalf("%s: heartbeat socket: %v", name, err)
	}
	ctx := klog.NewContext(context.Background(), klog.Background().WithValues("test-node", name))
	members, err := liveness.New(ctx, liveness.Config{NodeName: name}, conn)
	if err != nil {
		t.Fatal(err)
	}
	announcer, err := layer2.New(ctx, layer2.Config{Network: n.host.Layer2Network()})
	if err != nil {
		t.Fatal(err)
	}
	kube := c.speakerKube
	if kube == nil {
		kube = c.kube
	}
	sp, err := speaker.New(speaker.Options{
		Client: kube, NodeName: name, Class: providers.ClassFilter{Name: providers.DefaultClass(speaker.ProviderName)},
		HeartbeatPort: heartbeatPort, Announcer: announcer, Members: members,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	n.mu.Lock()
	n.announcer, n.members, n.cancel, n.done = announcer, members, cancel, done
	n.mu.Unlock()
}

func (c *testbed) startAll() {
	for _, name := range nodeNames {
		c.start(name)
	}
}

// crash stops the speaker the way a killed process does: its sockets close
// at once, nobody is told.
func (n *node) crash() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel == nil {
		return
	}
	n.members.Close()
	n.announcer.Close()
	n.cancel()
	<-n.done
	n.cancel = nil
}

// stop stops the speaker gracefully, as on SIGTERM.
func (n *node) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.cancel = nil
}

// expectedOwner is the node the election picks for addr among live.
func expectedOwner(addr netip.Addr, live ...string) string {
	return election.Rank(addr, live)[0]
}

// ask sends one ARP request (IPv4) or neighbor solicitation (IPv6) from the
// client on link and returns the names of the nodes that answered within
// wait (MACs unknown to the cluster are returned as MACs). One window is
// right where no answer is expected; where one is, use askAnswered.
func (c *testbed) ask(link netns.Link, addr netip.Addr, wait time.Duration) []string {
	c.t.Helper()
	return c.askUntil(link, addr, wait, 0)
}

// askAnswered asks window after window of wait until some node answers
// (5 s at most) and returns the distinct nodes that answered in that window.
func (c *testbed) askAnswered(link netns.Link, addr netip.Addr, wait time.Duration) []string {
	c.t.Helper()
	return c.askUntil(link, addr, wait, 5*time.Second)
}

// askUntil is ask (timeout 0) or askAnswered (timeout > 0).
func (c *testbed) askUntil(link netns.Link, addr netip.Addr, wait, timeout time.Duration) []string {
	t := c.t
	t.Helper()
	var macs []net.HardwareAddr
	if addr.Is4() {
		ac, err := c.client.ARPClient(link.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer ac.Close()
		if timeout > 0 {
			macs, err = ac.AskUntilAnswered(addr, wait, timeout)
		} else {
			macs, err = ac.Ask(addr, wait)
		}
		if err != nil {
			t.Fatal(err)
		}
	} else {
		nc, err := c.client.NDPClient(link.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if timeout > 0 {
			macs, err = nc.AskUntilAnswered(addr, wait, timeout)
		} else {
			macs, err = nc.Ask(addr, wait)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, m := range macs {
		names = append(names, c.nameOf(m))
	}
	return names
}

func (c *testbed) nameOf(mac net.HardwareAddr) string {
	for name, n := range c.nodes {
		if n.lan.MAC.String() == mac.String() {
			return name
		}
	}
	return mac.String()
}

// waitOwner asks until exactly want answers for addr (at most timeout).
func (c *testbed) waitOwner(addr netip.Addr, want string, timeout time.Duration) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.ask(c.clientLAN, addr, 150*time.Millisecond)
		if len(got) == 1 && got[0] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("answers for %s: %v, want only %s", addr, got, want)
		}
	}
}

// resolveInKernel makes the client's kernel resolve addr and waits until its
// neighbor table maps it to node want.
func (c *testbed) resolveInKernel(addr netip.Addr, want string) {
	t := c.t
	t.Helper()
	if err := c.client.SendUDP(addr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.WaitNeighbor(addr, c.nodes[want].lan.MAC, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for a Normal nodeAssigned Event on Service name whose
// message contains text.
func (c *testbed) waitEvent(name, text string) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, err := c.kube.CoreV1().Events(c.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == name && e.Reason == speaker.ReasonNodeAssigned && strings.Contains(e.Message, text) {
				return
			}
			seen = append(seen, e.InvolvedObject.Name+": "+e.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Event on %s mentioning %q; events: %v", name, text, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newService returns a LoadBalancer Service of class extlb.io/metal with
// the ingress 192.0.2.200.
func newService(name string, opts ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithClass(providers.DefaultClass(speaker.ProviderName)),
		fixtures.WithPorts(fixtures.Port("", v1.ProtocolTCP, 80, 0)), fixtures.WithIngress("192.0.2.200"),
	}, opts...)...)
}

// newSlice returns service's EndpointSlice with one ready endpoint on each
// of nodes.
func newSlice(service string, nodes ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: service + "-slice",
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.0.0.%d", i+1)},
			NodeName:   ptr.To(n),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return s
}
