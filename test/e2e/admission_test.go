package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster/clustertest"
)

// TestAdmissionPolicyAddsTheFinalizerAtCreation installs the optional
// MutatingAdmissionPolicy from manifests/admission-policy: a Service of the
// controller's class has the finalizer and annotation from the moment it is
// created, and the controller then writes only the status. Services of other
// classes are not touched by the policy. (A control plane of its own: the
// policy applies cluster-wide.)
func TestAdmissionPolicyAddsTheFinalizerAtCreation(t *testing.T) {
	c := clustertest.Start(t)
	e := setUp(t, c) // also creates the extlb-system namespace the policy's ConfigMap lives in
	if err := applyObjects(t, c.AdminConfig(), renderKustomization(t, "admission-policy"), false); err != nil {
		t.Fatalf("installing the policy: %v", err)
	}
	const class = "extlb.io/fake" // the class the policy is written for
	var metadataWrites sync.Map   // Service path -> writes of its metadata
	e.cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if (req.Method == http.MethodPatch || req.Method == http.MethodPut) && strings.Contains(req.URL.Path, "/services/") && !strings.HasSuffix(req.URL.Path, "/status") {
				n, _ := metadataWrites.LoadOrStore(req.URL.Path, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	e.start(t, func(o *manager.Options) { o.Controller.Class.Name = class })

	// The policy's bindings take a moment to be picked up by the API server.
	var created *v1.Service
	eventually(t, 20*time.Second, "the policy mutates a new Service", func(ctx context.Context) (bool, string) {
		name := fmt.Sprintf("probe-%d", time.Now().UnixNano()%100000)
		created = createService(t, e.admin, newService(e.ns, name, class))
		return hasFinalizer(created) && created.Annotations[controller.AnnotationServedByClass] == class,
			fmt.Sprintf("created with finalizers %v, annotations %v", created.Finalizers, created.Annotations)
	})
	eventually(t, 20*time.Second, "served", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, e.admin, e.ns, created.Name)
		return err == nil && len(svc.Status.LoadBalancer.Ingress) == 1, fmt.Sprint(err)
	})
	// Probes created before the policy took effect got the finalizer from
	// the controller; the one created with it must not be written.
	if n, ok := metadataWrites.Load("/api/v1/namespaces/" + e.ns + "/services/" + created.Name); ok {
		t.Errorf("controller wrote the Service's metadata %d times, want 0 (the policy added the finalizer)", n.(*atomic.Int64).Load())
	}

	other := createService(t, e.admin, newService(e.ns, "other", "example.com/other"))
	if hasFinalizer(other) {
		t.Errorf("the policy put our finalizer on a Service of another class: %v", other.Finalizers)
	}
}
