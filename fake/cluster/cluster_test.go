package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/test/fixtures"
)

// controlPlane is shared by the tests below that only need some cluster;
// alice is a token user with no permissions until a test grants some.
var controlPlane = clustertest.Shared{Options: cluster.Options{
	Users: []cluster.User{{Name: "alice", Groups: []string{"qa"}}},
}}

func TestMain(m *testing.M) { os.Exit(controlPlane.Run(m)) }

// --- fixtures ---

// newService returns a LoadBalancer Service selecting app=<name> with TCP
// port 80 named http, in whichever namespace it is created in.
func newService(name string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("", name, append([]fixtures.ServiceTweak{
		fixtures.WithSelector(map[string]string{"app": name}),
		fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, 0)),
	}, tweaks...)...)
}

func mustClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	return client
}

// grantServiceReader lets subject get and list Services in namespace.
func grantServiceReader(t *testing.T, c *cluster.Cluster, namespace string, subject rbacv1.Subject) {
	t.Helper()
	ctx := t.Context()
	rbac := c.AdminClient().RbacV1()
	if _, err := rbac.Roles(namespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "service-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating Role: %v", err)
	}
	if _, err := rbac.RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "service-reader-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "service-reader"},
		Subjects:   []rbacv1.Subject{subject},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating RoleBinding: %v", err)
	}
}

// eventuallyAllowed retries list until it stops being Forbidden: the RBAC
// authorizer reads bindings from an informer, so a new binding takes a
// moment to apply.
func eventuallyAllowed(t *testing.T, list func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := list()
		if err == nil {
			return
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("still not allowed after the RoleBinding: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func whoAmI(t *testing.T, client kubernetes.Interface) authenticationv1.UserInfo {
	t.Helper()
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	return review.Status.UserInfo
}

// --- tests ---

func TestLoadBalancerServiceGetsNodePortsFromAllocator(t *testing.T) {
	c := controlPlane.Get(t)
	ns := clustertest.NewNamespace(t, c)
	services := c.AdminClient().CoreV1().Services(ns)

	web, err := services.Create(t.Context(), newService("web", fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, 0), fixtures.Port("https", v1.ProtocolTCP, 443, 0))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating LoadBalancer Service: %v", err)
	}
	first, last := c.NodePortRange()
	seen := map[int32]bool{}
	for _, p := range web.Spec.Ports {
		if p.NodePort < int32(first) || p.NodePort > int32(last) {
			t.Errorf("port %s: nodePort %d outside %d-%d", p.Name, p.NodePort, first, last)
		}
		if seen[p.NodePort] {
			t.Errorf("port %s: nodePort %d allocated twice", p.Name, p.NodePort)
		}
		seen[p.NodePort] = true
	}
	clusterIP, err := netip.ParseAddr(web.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix(c.ServiceClusterIPRange()).Contains(clusterIP) {
		t.Errorf("clusterIP %q not in %s", web.Spec.ClusterIP, c.ServiceClusterIPRange())
	}

	taken := web.Spec.Ports[0].NodePort
	for _, tc := range []struct {
		desc     string
		nodePort int32
		wantMsg  string
	}{
		{desc: "node port already allocated to web", nodePort: taken, wantMsg: "already allocated"},
		{desc: "node port outside the range", nodePort: int32(last) + 1, wantMsg: "not in the valid range"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := services.Create(t.Context(), newService("clash", fixtures.WithPorts(fixtures.Port("http", v1.ProtocolTCP, 80, tc.nodePort))), metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("want Invalid containing %q, got %v", tc.wantMsg, err)
			}
		})
	}
}

func TestServerReportsItsVersion(t *testing.T) {
	c := controlPlane.Get(t)
	v, err := c.AdminClient().Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	if v.GitVersion != "v1.37.2" || v.Major != "1" || v.Minor != "37" {
		t.Fatalf("server version %+v, want v1.37.2 (the version the build module pins)", v)
	}
}

func TestNamedUserIsForbiddenUntilRoleBinding(t *testing.T) {
	c := controlPlane.Get(t)
	ns, otherNS := clustertest.NewNamespace(t, c), clustertest.NewNamespace(t, c)
	alice := mustClient(t, c.UserConfig("alice"))

	info := whoAmI(t, alice)
	if info.Username != "alice" || !contains(info.Groups, "qa") || !contains(info.Groups, "system:authenticated") {
		t.Fatalf("authenticated as %+v, want alice in groups qa and system:authenticated", info)
	}
	list := func(namespace string) error {
		_, err := alice.CoreV1().Services(namespace).List(t.Context(), metav1.ListOptions{})
		return err
	}
	if err := list(ns); !apierrors.IsForbidden(err) {
		t.Fatalf("before any RoleBinding: want Forbidden, got %v", err)
	}

	grantServiceReader(t, c, ns, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"})
	eventuallyAllowed(t, func() error { return list(ns) })

	if err := list(otherNS); !apierrors.IsForbidden(err) {
		t.Errorf("in a namespace without a binding: want Forbidden, got %v", err)
	}
	if _, err := alice.CoreV1().Services(ns).Create(t.Context(), newService("web"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create with a read-only Role: want Forbidden, got %v", err)
	}
}

func TestServiceAccountTokenIsSubjectToRBAC(t *testing.T) {
	c := controlPlane.Get(t)
	ns := clustertest.NewNamespace(t, c)
	ctx := t.Context()

	if _, err := c.ServiceAccountConfig(ctx, ns, "missing"); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/missing") {
		t.Errorf("token for a missing ServiceAccount: want NotFound naming %s/missing, got %v", ns, err)
	}

	if _, err := c.AdminClient().CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "controller"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ServiceAccount: %v", err)
	}
	cfg, err := c.ServiceAccountConfig(ctx, ns, "controller")
	if err != nil {
		t.Fatalf("ServiceAccountConfig: %v", err)
	}
	sa := mustClient(t, cfg)
	if got, want := whoAmI(t, sa).Username, "system:serviceaccount:"+ns+":controller"; got != want {
		t.Fatalf("authenticated as %q, want %q", got, want)
	}
	list := func() error {
		_, err := sa.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		return err
	}
	if err := list(); !apierrors.IsForbidden(err) {
		t.Fatalf("before any RoleBinding: want Forbidden, got %v", err)
	}
	grantServiceReader(t, c, ns, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "controller"})
	eventuallyAllowed(t, list)
}

func TestServiceStatusSubresource(t *testing.T) {
	c := controlPlane.Get(t)
	ns := clustertest.NewNamespace(t, c)
	services := c.AdminClient().CoreV1().Services(ns)
	ctx := t.Context()

	svc, err := services.Create(ctx, newService("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Service: %v", err)
	}
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "192.0.2.10"}}
	if svc, err = services.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("UpdateStatus: %v", err)
	}
	got, err := services.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if ing := got.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != "192.0.2.10" {
		t.Fatalf("after UpdateStatus: ingress %+v, want 192.0.2.10", ing)
	}

	// The main resource ignores status changes: only the subresource writes it.
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "192.0.2.99"}}
	if _, err := services.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err = services.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if ing := got.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != "192.0.2.10" {
		t.Fatalf("after Update of the main resource: ingress %+v, want unchanged 192.0.2.10", ing)
	}
}

func TestWriteKubeconfig(t *testing.T) {
	c := controlPlane.Get(t)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(path, c.UserConfig("alice")); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("kubeconfig holds a token and must be private: %v %v", st.Mode(), err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("loading kubeconfig: %v", err)
	}
	if got := whoAmI(t, mustClient(t, cfg)).Username; got != "alice" {
		t.Fatalf("kubeconfig authenticates as %q, want alice", got)
	}
}

func TestStopLeavesNoProcessOrDirectory(t *testing.T) {
	c := clustertest.Start(t)
	pids, dataDir := c.PIDs(), c.DataDir()
	if len(pids) != 2 {
		t.Fatalf("PIDs() = %v, want kube-apiserver and etcd", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("pid %d not running before Stop: %v", pid, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s still there after Stop (%v)", dataDir, err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	client := mustClient(t, c.AdminConfig())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		t.Errorf("API server still answers after Stop")
	}
}

func TestStartFailureReportsLogAndLeavesNothing(t *testing.T) {
	bins, err := cluster.EnsureBinaries(t.Context(), os.Stderr)
	if err != nil {
		t.Skipf("control-plane binaries unavailable: %v", err)
	}
	tmp := t.TempDir()
	_, err = cluster.Start(t.Context(), cluster.Options{
		Binaries:            bins,
		TempDir:             tmp,
		ExtraAPIServerFlags: []string{"--no-such-flag"},
	})
	if err == nil {
		t.Fatal("Start with an unknown API server flag succeeded")
	}
	for _, want := range []string{"kube-apiserver", "last lines of", "unknown flag: --no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	assertEmptyDir(t, tmp)
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		opts    cluster.Options
		wantErr string
	}{
		{desc: "node port range not a range", opts: cluster.Options{NodePortRange: "30000"}, wantErr: "Options.NodePortRange"},
		{desc: "node port range reversed", opts: cluster.Options{NodePortRange: "32000-31000"}, wantErr: "Options.NodePortRange"},
		{desc: "user without name", opts: cluster.Options{Users: []cluster.User{{}}}, wantErr: "Options.Users[0].Name"},
		{desc: "user declared twice", opts: cluster.Options{Users: []cluster.User{{Name: "bob"}, {Name: "bob"}}}, wantErr: "Options.Users[1].Name"},
		{desc: "user named like the admin", opts: cluster.Options{Users: []cluster.User{{Name: cluster.AdminUser}}}, wantErr: "reserved"},
		{desc: "group with a comma", opts: cluster.Options{Users: []cluster.User{{Name: "bob", Groups: []string{"a,b"}}}}, wantErr: "group"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.opts.TempDir = t.TempDir()
			// Binaries that do not exist: validation must fail before any use.
			tc.opts.Binaries = cluster.Binaries{APIServer: "/nonexistent/kube-apiserver", Etcd: "/nonexistent/etcd"}
			c, err := cluster.Start(t.Context(), tc.opts)
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not name %q", err, tc.wantErr)
			}
			assertEmptyDir(t, tc.opts.TempDir)
		})
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
