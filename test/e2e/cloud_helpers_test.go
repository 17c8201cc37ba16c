package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// cloudE2E is one cloud provider's end-to-end setting: a control plane of
// the test's own (the test creates Nodes, which are cluster-scoped), the
// controller's ServiceAccount and RBAC from manifests/, and a namespace and
// load-balancer class for the test's Services.
type cloudE2E struct {
	t           *testing.T
	cluster     *cluster.Cluster
	admin       kubernetes.Interface
	controller  *rest.Config // the controller's ServiceAccount
	ns          string
	class       string
	clusterName string
}

func newCloudE2E(t *testing.T, clusterName string) *cloudE2E {
	t.Helper()
	c := clustertest.Start(t)
	return &cloudE2E{
		t:           t,
		cluster:     c,
		admin:       c.AdminClient(),
		controller:  installController(t, c),
		ns:          clustertest.NewNamespace(t, c),
		class:       uniqueClass(t),
		clusterName: clusterName,
	}
}

// buildProvider builds a provider the way the command does: the builder's
// flags on a fresh FlagSet, parsed from args, then Build with an Env that
// carries the cluster name and the controller's own client. The provider
// lives until the test's cleanups run, after the controller has stopped.
func (e *cloudE2E) buildProvider(builder providers.Builder, args ...string) providers.LoadBalancer {
	e.t.Helper()
	fs := pflag.NewFlagSet("extlb", pflag.ContinueOnError)
	builder.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		e.t.Fatalf("parsing provider flags %v: %v", args, err)
	}
	logger := ktesting.NewLogger(e.t, ktesting.NewConfig())
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	e.t.Cleanup(cancel) // registered before startController's, so it runs after the controller stopped
	client := clientFor(e.t, e.controller)
	lb, err := builder.Build(ctx, providers.Env{
		ClusterName: e.clusterName,
		KubeClient:  client,
		RESTConfig:  e.controller,
		Informers:   informers.NewSharedInformerFactory(client, 0),
	})
	if err != nil {
		e.t.Fatalf("building the provider with %v: %v", args, err)
	}
	return lb
}

// run starts the controller with lb under the ServiceAccount, serving the
// test's class with the test's cluster name.
func (e *cloudE2E) run(lb providers.LoadBalancer) {
	e.t.Helper()
	startController(e.t, e.controller, lb, e.class, func(o *manager.Options) {
		o.Controller.ClusterName = e.clusterName
	})
}

// addNode creates a Node with an InternalIP and a spec.providerID.
func (e *cloudE2E) addNode(name, ip, providerID string) {
	e.t.Helper()
	n := fixtures.Node(name, fixtures.WithInternalIP(ip), fixtures.WithNodeLabel("kubernetes.io/hostname", name), fixtures.WithProviderID(providerID))
	if _, err := e.admin.CoreV1().Nodes().Create(e.t.Context(), n, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating node %s: %v", name, err)
	}
}

// service returns a LoadBalancer Service of the test's class in its
// namespace, with the given annotations and ports.
func (e *cloudE2E) service(name string, annotations map[string]string, ports ...v1.ServicePort) *v1.Service {
	return newService(e.ns, name, e.class, func(s *v1.Service) {
		s.Annotations = annotations
		s.Spec.Ports = ports
	})
}

// get returns the Service, failing the test if it cannot be read.
func (e *cloudE2E) get(name string) *v1.Service {
	e.t.Helper()
	svc, err := getService(e.t.Context(), e.admin, e.ns, name)
	if err != nil {
		e.t.Fatalf("getting service %s/%s: %v", e.ns, name, err)
	}
	return svc
}

// waitEvent waits for an Event on the Service that starts with prefix
// ("Warning SyncLoadBalancerFailed: ...") and contains every one of
// substrings.
func (e *cloudE2E) waitEvent(name, prefix string, timeout time.Duration, substrings ...string) {
	e.t.Helper()
	eventually(e.t, timeout, fmt.Sprintf("event %q %q on %s", prefix, substrings, name), func(ctx context.Context) (bool, string) {
		evs := events(ctx, e.admin, e.ns, name)
		return slices.ContainsFunc(evs, func(ev string) bool {
			if !strings.HasPrefix(ev, prefix) {
				return false
			}
			for _, s := range substrings {
				if !strings.Contains(ev, s) {
					return false
				}
			}
			return true
		}), fmt.Sprint(evs)
	})
}

// waitMatch polls the Service until mismatch returns "" for it, and fails
// the test with the last mismatch it described.
func (e *cloudE2E) waitMatch(timeout time.Duration, what, name string, mismatch func(*v1.Service) string) {
	e.t.Helper()
	last := "never checked"
	eventually(e.t, timeout, what, func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, e.admin, e.ns, name)
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, last
		}
		last = mismatch(svc)
		return last == "", last
	})
}

// deleteService deletes the Service and waits until the API server no
// longer has it, which happens only once the controller removed its
// finalizer, and for the DeletedLoadBalancer Event.
func (e *cloudE2E) deleteService(name string, timeout time.Duration) {
	e.t.Helper()
	if err := e.admin.CoreV1().Services(e.ns).Delete(e.t.Context(), name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("deleting service %s: %v", name, err)
	}
	eventually(e.t, timeout, "service "+name+" gone", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, e.admin, e.ns, name)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("still there with finalizers %v, deletion at %v", svc.Finalizers, svc.DeletionTimestamp)
	})
	e.waitEvent(name, "Normal DeletedLoadBalancer", 10*time.Second)
}

// sortedCopy returns a sorted copy of s.
func sortedCopy[T any](s []T, less func(a, b T) int) []T {
	out := slices.Clone(s)
	slices.SortFunc(out, less)
	return out
}

// tcpServicePort is a TCP Service port; the API server allocates its node
// port.
func tcpServicePort(name string, port int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: port, Protocol: v1.ProtocolTCP}
}

// nodePortsByName returns the Service's node port of each port, by port
// name.
func nodePortsByName(svc *v1.Service) map[string]int32 {
	out := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		out[p.Name] = p.NodePort
	}
	return out
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
