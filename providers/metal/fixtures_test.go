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
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/extlb/extlb/providers"
)

type serviceOption func(*v1.Service)

// newService returns a LoadBalancer Service default/<name> serving TCP/80,
// IPv4 single-stack, created at a time that grows with each call.
func newService(name string, opts ...serviceOption) *v1.Service {
	single := v1.IPFamilyPolicySingleStack
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		},
		Spec: v1.ServiceSpec{
			Type:           v1.ServiceTypeLoadBalancer,
			Ports:          []v1.ServicePort{{Name: "p80", Protocol: v1.ProtocolTCP, Port: 80}},
			IPFamilies:     []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy: &single,
		},
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

func withAnnotation(k, v string) serviceOption {
	return func(s *v1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func withPorts(ports ...int32) serviceOption {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Protocol: v1.ProtocolTCP, Port: p})
		}
	}
}

func withLoadBalancerIP(ip string) serviceOption {
	return func(s *v1.Service) { s.Spec.LoadBalancerIP = ip }
}

func withFamilies(policy v1.IPFamilyPolicy, fs ...v1.IPFamily) serviceOption {
	return func(s *v1.Service) { s.Spec.IPFamilyPolicy = &policy; s.Spec.IPFamilies = fs }
}

func withLocalTraffic(selector map[string]string) serviceOption {
	return func(s *v1.Service) {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.Selector = selector
	}
}

func withIngress(ips ...string) serviceOption {
	return func(s *v1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

func createdAt(minute int) serviceOption {
	return func(s *v1.Service) {
		s.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, minute, 0, 0, time.UTC))
	}
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
	b.statusInterval = 20 * time.Millisecond
	b.retryInterval = 5 * time.Second
	b.syncTimeout = 5 * time.Second
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
