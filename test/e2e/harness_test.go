// Package e2e runs extlb's controller against a real kube-apiserver and
// etcd (fake/cluster), under the ServiceAccount and RBAC from manifests/,
// with the in-memory provider standing in for a cloud.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	memprovider "github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

var controlPlane clustertest.Shared

func TestMain(m *testing.M) { os.Exit(controlPlane.Run(m)) }

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// renderKustomization builds manifests/<dir> with kustomize, as
// `kubectl apply -k` would, and returns the objects.
func renderKustomization(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), "manifests", dir))
	if err != nil {
		t.Fatalf("kustomize build manifests/%s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("manifests/%s: %v", dir, err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// applyObjects server-side-applies objs as the admin (dryRun: every object
// is validated and admitted by the API server but not stored).
func applyObjects(t testing.TB, cfg *rest.Config, objs []*unstructured.Unstructured, dryRun bool) error {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "extlb-e2e", Force: ptrTo(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if obj.GetNamespace() != "" {
			ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// installController applies the controller's namespace, ServiceAccount and
// RBAC from manifests/controller (not the Deployment: the test runs the
// controller in-process) and returns a client configuration with the
// ServiceAccount's identity.
func installController(t testing.TB, c *cluster.Cluster) *rest.Config {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, o := range renderKustomization(t, "controller") {
		if o.GetKind() != "Deployment" {
			objs = append(objs, o)
		}
	}
	if err := applyObjects(t, c.AdminConfig(), objs, false); err != nil {
		t.Fatalf("installing controller RBAC: %v", err)
	}
	var cfg *rest.Config
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		cfg, err = c.ServiceAccountConfig(ctx, "extlb-system", "extlb-controller")
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("getting a token for the controller's ServiceAccount: %v", err)
	}
	return cfg
}

// runningController is one controller process (in-process) under test.
type runningController struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
	// errExpected is set when the test has checked the exit error itself.
	errExpected atomic.Bool
}

// stop stops the controller and waits for it (at most 30 s); calling it
// again returns the same result.
func (r *runningController) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("controller did not stop within 30s")
		}
	})
	return r.err
}

type controllerOption func(*manager.Options)

// startController runs the controller with the in-memory provider under
// cfg's identity until the test ends (or stop is called).
func startController(t testing.TB, cfg *rest.Config, lb providers.LoadBalancer, class string, opts ...controllerOption) *runningController {
	t.Helper()
	o := manager.DefaultOptions()
	o.Controller.Class.Name = class
	o.Controller.Class.Default = false
	o.Controller.MinRetryDelay = 100 * time.Millisecond
	o.Controller.MaxRetryDelay = 2 * time.Second
	o.Controller.Workers = 4
	o.MetricsAddr = ""
	for _, f := range opts {
		f(&o)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	r := &runningController{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- manager.Run(ctx, o, cfg, func(context.Context, providers.Env) (providers.LoadBalancer, error) { return lb, nil })
	}()
	t.Cleanup(func() {
		if err := r.stop(); err != nil && !errors.Is(err, context.Canceled) && !r.errExpected.Load() {
			t.Errorf("controller: %v", err)
		}
	})
	return r
}

// uniqueClass returns a load-balancer class of the test's own, so that tests
// sharing a control plane never serve each other's Services.
func uniqueClass(t testing.TB) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return "e2e.extlb.io/" + strings.Trim(name, "-")
}

// newService returns a LoadBalancer Service ns/name of class (an empty class
// is still set), selecting app=<name>, with TCP port 80 named http.
func newService(ns, name, class string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service(ns, name, append([]fixtures.ServiceTweak{
		fixtures.WithClass(class), fixtures.WithSelector(map[string]string{"app": name}),
		fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, 0)),
	}, tweaks...)...)
}

func createService(t testing.TB, c kubernetes.Interface, svc *v1.Service) *v1.Service {
	t.Helper()
	out, err := c.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
	return out
}

// updateService applies change to the current Service, retrying on
// conflicts.
func updateService(t testing.TB, c kubernetes.Interface, ns, name string, change func(*v1.Service)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		svc, err := c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		change(svc)
		_, err = c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("updating service %s/%s: %v", ns, name, err)
	}
}

// eventually polls cond until it holds, failing the test with what the last
// poll said.
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, msg := cond(ctx)
		last = msg
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %s", what, timeout, last)
	}
}

func getService(ctx context.Context, c kubernetes.Interface, ns, name string) (*v1.Service, error) {
	return c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
}

// events returns "Type Reason: Message" for the Service's Events.
func events(ctx context.Context, c kubernetes.Interface, ns, name string) []string {
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return []string{"listing events: " + err.Error()}
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message))
	}
	return out
}

func hasEvent(evs []string, prefix string) bool {
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func hasFinalizer(svc *v1.Service) bool {
	for _, f := range svc.Finalizers {
		if f == "extlb.io/load-balancer-cleanup" {
			return true
		}
	}
	return false
}

// newNode returns a Node with one InternalIP and labels.
func newNode(name, ip string, labels map[string]string) *v1.Node {
	tweaks := []fixtures.NodeTweak{fixtures.WithInternalIP(ip)}
	for k, v := range labels {
		tweaks = append(tweaks, fixtures.WithNodeLabel(k, v))
	}
	return fixtures.Node(name, tweaks...)
}

// lbFor returns the in-memory load balancer of ns/name.
func lbFor(p *memprovider.Provider, ns, name string) (memprovider.LoadBalancer, bool) {
	return p.LoadBalancerFor(ns + "/" + name)
}

func clientFor(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kustomizations lists the directories under manifests/ that hold a
// kustomization.yaml.
func kustomizations(t testing.TB) []string {
	t.Helper()
	var dirs []string
	root := filepath.Join(repoRoot(t), "manifests")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "kustomization.yaml" {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			dirs = append(dirs, rel)
		}
		return nil
	})
	if err != nil || len(dirs) == 0 {
		t.Fatalf("finding kustomizations under manifests/: %v (found %d)", err, len(dirs))
	}
	return dirs
}

var metaGet = metav1.GetOptions{}

// testEnv is what most e2e tests start from: a namespace and a class of
// their own on a control plane, the controller's ServiceAccount identity,
// and an in-memory provider.
type testEnv struct {
	c     *cluster.Cluster
	admin kubernetes.Interface
	ns    string
	class string
	cfg   *rest.Config // the controller's ServiceAccount
	mem   *memprovider.Provider
}

func setUp(t testing.TB, c *cluster.Cluster) *testEnv {
	t.Helper()
	return &testEnv{
		c:     c,
		admin: c.AdminClient(),
		ns:    clustertest.NewNamespace(t, c),
		class: uniqueClass(t),
		cfg:   installController(t, c),
		mem:   memprovider.New(),
	}
}

// start runs the controller with the env's provider, class and identity.
func (e *testEnv) start(t testing.TB, opts ...controllerOption) *runningController {
	t.Helper()
	return startController(t, e.cfg, e.mem, e.class, opts...)
}
