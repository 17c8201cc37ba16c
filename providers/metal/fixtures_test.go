package metal

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// newService returns a LoadBalancer Service default/<name> serving TCP/80,
// IPv4 single-stack, created at the start of 2026 (see createdAt).
func newService(name string, opts ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-" + name), createdAt(0),
		fixtures.WithPorts(fixtures.Port("p80", v1.ProtocolTCP, 80, 0)),
		fixtures.WithFamilies(v1.IPFamilyPolicySingleStack, v1.IPv4Protocol),
	}, opts...)...)
}

// withPorts replaces the ports with unnamed TCP ports without node ports.
func withPorts(ports ...int32) fixtures.ServiceTweak {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, fixtures.Port("", v1.ProtocolTCP, p, 0))
		}
	}
}

// withLocalTraffic sets the Local traffic policy and the pod selector.
func withLocalTraffic(selector map[string]string) fixtures.ServiceTweak {
	return fixtures.Tweaks(fixtures.WithLocalPolicy(0), fixtures.WithSelector(selector))
}

// createdAt sets the creation time to minute minutes into 2026.
func createdAt(minute int) fixtures.ServiceTweak {
	return fixtures.WithCreationTime(time.Date(2026, 1, 1, 0, minute, 0, 0, time.UTC))
}

type poolOption func(*IPPool)

func newIPPool(name string, addresses []string, opts ...poolOption) *IPPool {
	p := &IPPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: "extlb.io/v1alpha1", Kind: "IPPool"},
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec:       IPPoolSpec{Addresses: addresses},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func poolCreatedAt(minute int) poolOption {
	return func(p *IPPool) {
		p.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, minute, 0, 0, time.UTC))
	}
}

func withNamespaceSelector(m map[string]string) poolOption {
	return func(p *IPPool) { p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: m} }
}

func toUnstructured(t testing.TB, p *IPPool) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// testEnv is a provider wired to fake clients the way Build wires it to real
// ones.
type testEnv struct {
	provider *Provider
	kube     *fake.Clientset
	dynamic  *dynamicfake.FakeDynamicClient
}

func newTestEnv(t *testing.T, pools []*IPPool, objects ...runtime.Object) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	objects = append(objects, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	kube := fake.NewClientset(objects...)
	var dynObjs []runtime.Object
	for _, p := range pools {
		dynObjs = append(dynObjs, toUnstructured(t, p))
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{IPPoolGVR: "IPPoolList"}, dynObjs...)
	factory := informers.NewSharedInformerFactory(kube, 0)
	b := NewBuilder()
	b.Options.StatusInterval = 20 * time.Millisecond
	b.Options.RetryInterval = 5 * time.Second
	b.Options.SyncTimeout = 5 * time.Second
	p, err := b.build(ctx, providers.Env{ClusterName: "test", KubeClient: kube, Informers: factory}, dyn)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	return &testEnv{provider: p, kube: kube, dynamic: dyn}
}

func (e *testEnv) ensure(t *testing.T, svc *v1.Service) (string, error) {
	t.Helper()
	st, err := e.provider.EnsureLoadBalancer(context.Background(), "test", svc, nil)
	if err != nil {
		return "", err
	}
	return ingressString(st), nil
}

func (e *testEnv) mustEnsure(t *testing.T, svc *v1.Service) string {
	t.Helper()
	got, err := e.ensure(t, svc)
	if err != nil {
		t.Fatalf("EnsureLoadBalancer(%s): %v", svc.Name, err)
	}
	return got
}

func ingressString(st *v1.LoadBalancerStatus) string {
	s := ""
	for i, in := range st.Ingress {
		if i > 0 {
			s += ","
		}
		s += in.IP
	}
	return s
}

// eventually polls cond every 10 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
