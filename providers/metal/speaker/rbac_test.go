package speaker_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/extlb/extlb/test/netns"
)

const manifestDir = "../../../manifests/speaker"

// TestManifestRBACIsEnough runs the speakers with the ServiceAccount,
// ClusterRole and ClusterRoleBinding from manifests/speaker, applied to the
// real API server, and a token of that ServiceAccount: they must list and
// watch what they need (or nothing would be announced) and record their
// Events.
func TestManifestRBACIsEnough(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, newService("web"))
	cp := controlPlane.Get(t)
	objs := readManifests(t, "serviceaccount.yaml", "rbac.yaml")
	applyManifests(t, c.kube, objs)
	var sa *v1.ServiceAccount
	for _, o := range objs {
		if s, ok := o.(*v1.ServiceAccount); ok {
			sa = s
		}
	}
	if sa == nil {
		t.Fatal("no ServiceAccount in the manifests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := cp.ServiceAccountConfig(ctx, sa.Namespace, sa.Name)
	if err != nil {
		t.Fatal(err)
	}
	if c.speakerKube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	// Control: the token really is confined (it cannot read Secrets).
	if _, err := c.speakerKube.CoreV1().Secrets(c.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing Secrets with the speaker's token: err = %v, want Forbidden", err)
	}
	c.startAll()
	owner := expectedOwner(vip, nodeNames...)
	c.waitOwner(vip, owner, 10*time.Second)
	c.waitEvent("web", "announcing 192.0.2.200 from node "+owner)
}

// readManifests decodes the YAML documents of the files in manifestDir.
func readManifests(t *testing.T, files ...string) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(manifestDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, obj)
		}
	}
	return out
}

// applyManifests creates the objects (and their namespace), replacing what
// an earlier test left.
func applyManifests(t *testing.T, kube kubernetes.Interface, objs []runtime.Object) {
	t.Helper()
	ctx := context.Background()
	ignoreExists := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.ServiceAccount:
			_, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}, metav1.CreateOptions{})
			ignoreExists(err)
			_, err = kube.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			ignoreExists(err)
		case *rbacv1.ClusterRole:
			kube.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
			_, err := kube.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
			ignoreExists(err)
		case *rbacv1.ClusterRoleBinding:
			kube.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
			_, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
			ignoreExists(err)
		default:
			t.Fatalf("unexpected %T in the manifests", o)
		}
	}
}
