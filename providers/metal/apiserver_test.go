package metal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/cloud-provider/api"

	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestAgainstRealAPIServer installs manifests/crds/ippools.yaml into a real
// kube-apiserver, checks that its schema rejects bad pools and defaults good
// ones, and runs the provider with real informers: allocation, pool status
// through the status subresource, a restart that rebuilds from Service
// status, and a waiting Service served once a pool is added.
func TestAgainstRealAPIServer(t *testing.T) {
	c := clustertest.Start(t)
	ctx := t.Context()
	cfg := c.AdminConfig()
	dyn := dynamic.NewForConfigOrDie(cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	installCRD(t, ctx, dyn)
	pools := dyn.Resource(IPPoolGVR)

	t.Run("schema rejects bad pools", func(t *testing.T) {
		for _, tc := range []struct {
			desc    string
			spec    map[string]any
			wantMsg string
		}{
			{desc: "host bits set", spec: map[string]any{"addresses": []any{"192.0.2.1/24"}}, wantMsg: "must be a CIDR without host bits"},
			{desc: "not an address", spec: map[string]any{"addresses": []any{"banana"}}, wantMsg: "must be a CIDR without host bits"},
			{desc: "mixed-family range", spec: map[string]any{"addresses": []any{"192.0.2.1-2001:db8::1"}}, wantMsg: "a range of two addresses of one family"},
			{desc: "prefix too long", spec: map[string]any{"addresses": []any{"192.0.2.0/33"}}, wantMsg: "must be a CIDR"},
			{desc: "no addresses", spec: map[string]any{"addresses": []any{}}, wantMsg: "spec.addresses"},
			{desc: "missing addresses", spec: map[string]any{"autoAssign": true}, wantMsg: "spec.addresses: Required value"},
			{desc: "duplicate entry", spec: map[string]any{"addresses": []any{"192.0.2.1", "192.0.2.1"}}, wantMsg: "Duplicate value"},
			{desc: "bad selector operator", spec: map[string]any{"addresses": []any{"192.0.2.1"}, "serviceSelector": map[string]any{
				"matchExpressions": []any{map[string]any{"key": "a", "operator": "Like"}}}}, wantMsg: "Unsupported value"},
			{desc: "autoAssign not a boolean", spec: map[string]any{"addresses": []any{"192.0.2.1"}, "autoAssign": "yes"}, wantMsg: "spec.autoAssign"},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				u := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "extlb.io/v1alpha1", "kind": "IPPool",
					"metadata": map[string]any{"name": "bad"}, "spec": tc.spec,
				}}
				_, err := pools.Create(ctx, u, metav1.CreateOptions{})
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Create = %v, want Invalid mentioning %q", err, tc.wantMsg)
				}
				t.Logf("rejected: %v", err)
			})
		}
	})

	good := newIPPool("lab", []string{"192.0.2.0/30", "192.0.2.100-192.0.2.101", "2001:db8::/127", "198.51.100.7"})
	created, err := pools.Create(ctx, toUnstructured(t, good), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a valid pool: %v", err)
	}
	if auto, found, _ := unstructured.NestedBool(created.Object, "spec", "autoAssign"); !found || !auto {
		t.Fatalf("spec.autoAssign not defaulted to true: %v", created.Object["spec"])
	}

	first := runProvider(t, ctx, cfg, kube)
	web := createService(t, ctx, kube, newService("web"))
	webAddr := ensureAndWriteStatus(t, ctx, kube, first, web)
	if webAddr != "192.0.2.0" {
		t.Fatalf("web got %q", webAddr)
	}
	dual := createService(t, ctx, kube, newService("dual", fixtures.WithFamilies(v1.IPFamilyPolicyPreferDualStack, v1.IPv4Protocol)))
	if got := ensureAndWriteStatus(t, ctx, kube, first, dual); got != "192.0.2.1" {
		// The API server keeps a single-family cluster at one family even
		// for PreferDualStack.
		t.Fatalf("dual got %q", got)
	}
	eventually(t, "pool status from the real status subresource", func() bool {
		u, err := pools.Get(ctx, "lab", metav1.GetOptions{})
		if err != nil {
			return false
		}
		p, err := ipPoolFromUnstructured(u)
		return err == nil && p.Status == IPPoolStatus{AssignedIPv4: 2, AvailableIPv4: 5, AssignedIPv6: 0, AvailableIPv6: 2}
	})

	checkPrinterColumns(t, ctx, cfg)

	// A restarted provider rebuilds from Service status.
	second := runProvider(t, ctx, cfg, kube)
	if got := ensureAndWriteStatus(t, ctx, kube, second, getService(t, ctx, kube, "web")); got != webAddr {
		t.Fatalf("after restart web got %q, want %q", got, webAddr)
	}
	if got := ensureAndWriteStatus(t, ctx, kube, second, createService(t, ctx, kube, newService("api"))); got != "192.0.2.2" {
		t.Fatalf("after restart a new Service got %q, want the first free address", got)
	}

	// A Service asking for an address no pool has waits, then is served
	// once a pool with that address appears.
	waiting := createService(t, ctx, kube, newService("waiting", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "203.0.113.9")))
	_, err = second.EnsureLoadBalancer(ctx, "test", waiting, nil)
	var re *api.RetryError
	if ie, ok := providers.IsInputError(err); !ok || ie.Field != fieldLoadBalancerIPs || !errors.As(err, &re) {
		t.Fatalf("Ensure for an address outside every pool = %v; want an InputError on %s that also asks to retry", err, fieldLoadBalancerIPs)
	}
	if _, err := pools.Create(ctx, toUnstructured(t, newIPPool("manual", []string{"203.0.113.0/24"}, func(p *IPPool) {
		f := false
		p.Spec.AutoAssign = &f
	})), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new pool to serve the waiting Service", func() bool {
		st, err := second.EnsureLoadBalancer(ctx, "test", waiting, nil)
		return err == nil && ingressString(st) == "203.0.113.9"
	})
}

func installCRD(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	t.Helper()
	f, err := os.Open("../../manifests/crds/ippools.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var crd unstructured.Unstructured
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&crd.Object); err != nil {
		t.Fatalf("decoding the CRD: %v", err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refused the CRD: %v", err)
	}
	eventually(t, "the CRD to be established", func() bool {
		u, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	})
	// Established can precede the resource being served for a moment.
	eventually(t, "IPPools to be served", func() bool {
		_, err := dyn.Resource(IPPoolGVR).List(ctx, metav1.ListOptions{})
		return err == nil
	})
}

// runProvider builds the provider as the command does, with a shared
// informer factory started after Build, until the test ends.
func runProvider(t *testing.T, ctx context.Context, cfg *rest.Config, kube kubernetes.Interface) *Provider {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(kube, 0)
	b := NewBuilder()
	b.Options.StatusInterval = 50 * time.Millisecond
	lb, err := b.Build(ctx, providers.Env{ClusterName: "test", KubeClient: kube, RESTConfig: cfg, Informers: factory})
	if err != nil {
		cancel()
		t.Fatalf("Build: %v", err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	return lb.(*Provider)
}

func createService(t *testing.T, ctx context.Context, kube kubernetes.Interface, svc *v1.Service) *v1.Service {
	t.Helper()
	svc = svc.DeepCopy()
	svc.UID, svc.CreationTimestamp = "", metav1.Time{}
	if len(svc.Spec.IPFamilies) == 1 && svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == v1.IPFamilyPolicySingleStack {
		svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = nil, nil // let the API server choose
	}
	out, err := kube.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Service %s: %v", svc.Name, err)
	}
	return out
}

func getService(t *testing.T, ctx context.Context, kube kubernetes.Interface, name string) *v1.Service {
	t.Helper()
	svc, err := kube.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// ensureAndWriteStatus does what the controller does: Ensure, then write the
// returned status into the Service.
func ensureAndWriteStatus(t *testing.T, ctx context.Context, kube kubernetes.Interface, p *Provider, svc *v1.Service) string {
	t.Helper()
	st, err := p.EnsureLoadBalancer(ctx, "test", svc, nil)
	if err != nil {
		t.Fatalf("EnsureLoadBalancer(%s): %v", svc.Name, err)
	}
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer = *st
	if _, err := kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing status of %s: %v", svc.Name, err)
	}
	return ingressString(st)
}

// checkPrinterColumns reads IPPools as a Table, as kubectl get does, and
// checks the CRD's printer columns and the counts in the "lab" row.
func checkPrinterColumns(t *testing.T, ctx context.Context, cfg *rest.Config) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/apis/extlb.io/v1alpha1/ippools", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatalf("decoding the table: %v", err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	wantNames := "Name,Addresses,Auto,IPv4 Assigned,IPv4 Available,IPv6 Assigned,IPv6 Available,Error,Age"
	if strings.Join(names, ",") != wantNames {
		t.Fatalf("printer columns = %v, want %s", names, wantNames)
	}
	for _, row := range table.Rows {
		if row.Cells[0] == "lab" {
			got := fmt.Sprint(row.Cells[1:7])
			want := `[["192.0.2.0/30","192.0.2.100-192.0.2.101","2001:db8::/127","198.51.100.7"] true 2 5 0 2]`
			if got != want {
				t.Fatalf("lab row = %s, want %s", got, want)
			}
			t.Logf("kubectl get ippools row: %v", row.Cells)
			return
		}
	}
	t.Fatalf("no row for the lab pool in %v", table.Rows)
}
