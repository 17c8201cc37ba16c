package bench

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/test/fixtures"
)

// installAdmissionPolicy applies manifests/admission-policy and waits until
// the API server applies it to new Services (checked with a dry-run create).
func installAdmissionPolicy(b *testing.B, c *cluster.Cluster, admin kubernetes.Interface) {
	b.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "manifests", "admission-policy")
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		b.Fatalf("kustomize build %s: %v", dir, err)
	}
	dyn, err := dynamic.NewForConfig(c.AdminConfig())
	if err != nil {
		b.Fatal(err)
	}
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "extlb-system"}}
	if _, err := admin.CoreV1().Namespaces().Create(b.Context(), ns, metav1.CreateOptions{}); err != nil {
		b.Fatalf("creating namespace extlb-system: %v", err)
	}
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			b.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: m}
		data, _ := obj.MarshalJSON()
		gvr := admissionGVR(obj.GetKind())
		force := true
		var ri dynamic.ResourceInterface = dyn.Resource(gvr)
		if obj.GetNamespace() != "" {
			ri = dyn.Resource(gvr).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(b.Context(), obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "bench", Force: &force}); err != nil {
			b.Fatalf("applying %s: %v", obj.GetName(), err)
		}
	}
	probe := fixtures.Service("default", "probe", fixtures.WithPorts(v1.ServicePort{Port: 80}))
	err = wait.PollUntilContextTimeout(b.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := admin.CoreV1().Services("default").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && len(out.Finalizers) == 1 && out.Finalizers[0] == controller.Finalizer, nil
	})
	if err != nil {
		b.Fatalf("the admission policy did not take effect: %v", err)
	}
}

// admissionGVR maps the kinds in manifests/admission-policy to resources.
func admissionGVR(kind string) schema.GroupVersionResource {
	if kind == "ConfigMap" {
		return schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	}
	resource := map[string]string{
		"MutatingAdmissionPolicy":        "mutatingadmissionpolicies",
		"MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings",
	}[kind]
	return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: resource}
}
