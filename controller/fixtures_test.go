package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

const testClass = "extlb.io/test"

// newService returns a LoadBalancer Service in "default" with one TCP port
// 80 on node port 30080.
func newService(name string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-" + name), fixtures.WithResourceVersion("1"), fixtures.WithClusterPolicy(),
		fixtures.WithPorts(v1.ServicePort{Name: "http", Port: 80, Protocol: v1.ProtocolTCP, NodePort: 30080, TargetPort: intstr.FromInt32(8080)}),
	}, tweaks...)...)
}

// withFinalizer marks the Service as served by the test controller's class.
func withFinalizer() fixtures.ServiceTweak {
	return withFinalizerOf(testClass)
}

// withFinalizerOf marks the Service as served by an extlb controller of
// class.
func withFinalizerOf(class string) fixtures.ServiceTweak {
	return fixtures.Tweaks(fixtures.WithFinalizer(Finalizer), fixtures.WithAnnotation(AnnotationServedByClass, class))
}

// withIngress sets the ingress the way the controller writes it: one IP in
// VIP mode.
func withIngress(ip string) fixtures.ServiceTweak {
	return func(s *v1.Service) {
		mode := v1.LoadBalancerIPModeVIP
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip, IPMode: &mode}}
	}
}

// newNode returns a ready node with an InternalIP in 192.0.2.0/24.
func newNode(name string, tweaks ...fixtures.NodeTweak) *v1.Node {
	return fixtures.Node(name, append([]fixtures.NodeTweak{
		fixtures.WithNodeLabel("kubernetes.io/hostname", name),
		fixtures.WithInternalIP("192.0.2." + fmt.Sprint(len(name))), fixtures.WithReady(),
	}, tweaks...)...)
}

// withTaint adds a NoSchedule taint with key.
func withTaint(key string) fixtures.NodeTweak {
	return fixtures.WithTaint(key, v1.TaintEffectNoSchedule)
}

// fixture is a controller over client-go's fake clientset and the
// in-memory provider, with informers fed directly so that tests can call
// sync synchronously.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	provider *memory.Provider
	recorder *record.FakeRecorder
	ctrl     *Controller
}

// fixtureSettings are what fixture options change before the controller
// is built.
type fixtureSettings struct {
	cfg     Config
	memOpts []memory.Option
	// wrap, when set, puts a provider in front of the in-memory one.
	wrap func(*memory.Provider) providers.LoadBalancer
}

type fixtureOption func(*fixtureSettings)

func withConfig(f func(*Config)) fixtureOption {
	return func(s *fixtureSettings) { f(&s.cfg) }
}

func withCapabilities(caps providers.Capabilities) fixtureOption {
	return func(s *fixtureSettings) { s.memOpts = append(s.memOpts, memory.WithCapabilities(caps)) }
}

// withProvider puts the provider wrap returns in front of the in-memory one.
func withProvider(wrap func(*memory.Provider) providers.LoadBalancer) fixtureOption {
	return func(s *fixtureSettings) { s.wrap = wrap }
}

func newFixture(t *testing.T, objects []runtime.Object, opts ...fixtureOption) *fixture {
	t.Helper()
	st := fixtureSettings{cfg: DefaultConfig()}
	st.cfg.Class.Name = testClass
	st.cfg.MinRetryDelay = 10 * time.Millisecond
	st.cfg.MaxRetryDelay = 100 * time.Millisecond
	st.cfg.SlowEnsureNotice = time.Hour
	for _, o := range opts {
		o(&st)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	client := fake.NewClientset(objects...)
	bumpResourceVersions(t, client)
	factory := informers.NewSharedInformerFactory(client, 0)
	provider := memory.New(st.memOpts...)
	recorder := record.NewFakeRecorder(1000)
	var lb providers.LoadBalancer = provider
	if st.wrap != nil {
		lb = st.wrap(provider)
	}
	ctrl, err := New(st.cfg, client, factory, lb, recorder, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := &fixture{t: t, ctx: ctx, client: client, factory: factory, provider: provider, recorder: recorder, ctrl: ctrl}
	for _, o := range objects {
		f.addToCache(o)
	}
	client.ClearActions()
	return f
}

// bumpResourceVersions makes the fake API server behave like the real one
// for Services: every write gives the object a new resourceVersion, and an
// update that carries a stale one is a Conflict. Without it, status drift
// and lost updates stay invisible to the tests.
func bumpResourceVersions(t *testing.T, client *fake.Clientset) {
	tracker := client.Tracker()
	apply := k8stesting.ObjectReaction(tracker)
	var rv atomic.Int64
	rv.Store(1000)
	client.PrependReactor("*", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch":
		default:
			return false, nil, nil
		}
		if u, ok := a.(k8stesting.UpdateAction); ok {
			in := u.GetObject().(*v1.Service)
			cur, err := tracker.Get(servicesGVR, in.Namespace, in.Name)
			if err == nil && in.ResourceVersion != "" && in.ResourceVersion != cur.(*v1.Service).ResourceVersion {
				return true, nil, apierrors.NewConflict(servicesGVR.GroupResource(), in.Name, fmt.Errorf("the object has been modified"))
			}
		}
		handled, obj, err := apply(a)
		if err != nil || obj == nil {
			return handled, obj, err
		}
		svc := obj.(*v1.Service).DeepCopy()
		svc.ResourceVersion = fmt.Sprint(rv.Add(1))
		if err := tracker.Update(servicesGVR, svc, svc.Namespace); err != nil {
			t.Errorf("bumping the resourceVersion of %s: %v", svc.Name, err)
		}
		return true, svc, nil
	})
}

// addToCache puts obj into the informer caches as if the watch delivered it.
func (f *fixture) addToCache(obj runtime.Object) {
	f.t.Helper()
	var err error
	switch o := obj.(type) {
	case *v1.Service:
		err = f.factory.Core().V1().Services().Informer().GetIndexer().Add(o)
		f.ctrl.allocator.SetOwner(o.Namespace+"/"+o.Name, nodePortsOf(o))
	case *v1.Node:
		err = f.factory.Core().V1().Nodes().Informer().GetIndexer().Add(o)
		f.ctrl.onNode(o)
	}
	if err != nil {
		f.t.Fatalf("adding %T to cache: %v", obj, err)
	}
}

// removeNode deletes a Node from the cache as if the watch delivered it.
func (f *fixture) removeNode(name string) {
	f.t.Helper()
	n := newNode(name)
	if err := f.factory.Core().V1().Nodes().Informer().GetIndexer().Delete(n); err != nil {
		f.t.Fatal(err)
	}
	f.ctrl.onNodeDelete(n)
}

// sync runs one sync of the Service, first copying the Service from the
// fake API server into the cache (as the watch would).
func (f *fixture) sync(name string) error {
	f.t.Helper()
	f.refresh(name)
	return f.ctrl.sync(f.ctx, "default/"+name)
}

func (f *fixture) refresh(name string) {
	f.t.Helper()
	svc, err := f.client.CoreV1().Services("default").Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		_ = f.factory.Core().V1().Services().Informer().GetIndexer().Delete(newService(name))
		return
	}
	f.addToCache(svc)
}

func (f *fixture) service(name string) *v1.Service {
	f.t.Helper()
	svc, err := f.client.CoreV1().Services("default").Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("getting service %s: %v", name, err)
	}
	return svc
}

// writes returns the fake API server's write actions as "verb resource/sub".
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

// events drains the recorder: "Type Reason Message" strings.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// concurrencyProvider wraps the in-memory provider and measures how many
// calls run at once, overall and for one Service.
type concurrencyProvider struct {
	*memory.Provider
	mu         sync.Mutex
	inFlight   map[string]int
	total      int
	maxTotal   int
	maxPerKey  int
	onEnsureFn func(*v1.Service)
}

func newConcurrencyProvider(p *memory.Provider) *concurrencyProvider {
	return &concurrencyProvider{Provider: p, inFlight: map[string]int{}}
}

func (c *concurrencyProvider) track(svc *v1.Service) func() {
	key := svc.Namespace + "/" + svc.Name
	c.mu.Lock()
	c.inFlight[key]++
	c.total++
	c.maxPerKey = max(c.maxPerKey, c.inFlight[key])
	c.maxTotal = max(c.maxTotal, c.total)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.inFlight[key]--
		c.total--
		c.mu.Unlock()
	}
}

func (c *concurrencyProvider) EnsureLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	defer c.track(svc)()
	if c.onEnsureFn != nil {
		c.onEnsureFn(svc)
	}
	return c.Provider.EnsureLoadBalancer(ctx, cluster, svc, nodes)
}

func (c *concurrencyProvider) UpdateLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) error {
	defer c.track(svc)()
	return c.Provider.UpdateLoadBalancer(ctx, cluster, svc, nodes)
}

func (c *concurrencyProvider) maxima() (perKey, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxPerKey, c.maxTotal
}

// prependReactor is a shorthand for the fake clientset's reactor chain.
func (f *fixture) prependReactor(verb string, fn k8stesting.ReactionFunc) {
	f.client.PrependReactor(verb, "services", fn)
}

func metaUpdate() metav1.UpdateOptions { return metav1.UpdateOptions{} }

var servicesGVR = v1.SchemeGroupVersion.WithResource("services")
