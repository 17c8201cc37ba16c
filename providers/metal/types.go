// Package metal is the load-balancer provider for bare-metal clusters: it
// hands out addresses from IPPool custom resources (group extlb.io) to
// LoadBalancer Services and writes them into the Services' status; the
// speaker DaemonSet (package speaker) then announces them on the network.
//
// The allocation rules live in the pure package pool; this package is the
// Kubernetes plumbing around it: IPPool objects, Service annotations, the
// rebuild of the allocator's state from Service status after a restart, and
// the IPPool status counts.
package metal

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The annotations a Service uses to steer its address.
const (
	// AnnotationLoadBalancerIPs requests addresses: comma-separated, at most
	// one per IP family. It replaces the deprecated spec.loadBalancerIP.
	AnnotationLoadBalancerIPs = "extlb.io/load-balancer-ips"
	// AnnotationIPPool names the only IPPool the Service's addresses may
	// come from.
	AnnotationIPPool = "extlb.io/ip-pool"
	// AnnotationAllowSharedIP is a sharing key: Services with the same key
	// may share an address when their ports do not overlap and their
	// externalTrafficPolicy (and, for Local, namespace and pod selector)
	// agree.
	AnnotationAllowSharedIP = "extlb.io/allow-shared-ip"
)

// IPPoolGVR is the IPPool resource.
var IPPoolGVR = schema.GroupVersionResource{Group: "extlb.io", Version: "v1alpha1", Resource: "ippools"}

// IPPool is a cluster-scoped pool of addresses for LoadBalancer Services.
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is what an administrator writes.
type IPPoolSpec struct {
	// Addresses are CIDRs ("192.0.2.0/24"), ranges ("192.0.2.10-192.0.2.20")
	// or single addresses, IPv4 and IPv6.
	Addresses []string `json:"addresses"`
	// AutoAssign lets Services that neither request an address nor name the
	// pool get addresses from it. Default true.
	AutoAssign *bool `json:"autoAssign,omitempty"`
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`
	// ServiceSelector restricts the pool to Services whose labels match.
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	// NamespaceSelector restricts the pool to Services in namespaces whose
	// labels match.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// IPPoolStatus is what the provider reports about a pool.
type IPPoolStatus struct {
	// AssignedIPv4 and AssignedIPv6 count distinct addresses held by
	// Services (a shared address counts once).
	AssignedIPv4 int64 `json:"assignedIPv4"`
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv4 and AvailableIPv6 count addresses still free, capped at
	// 9223372036854775807 for big IPv6 ranges.
	AvailableIPv4 int64 `json:"availableIPv4"`
	AvailableIPv6 int64 `json:"availableIPv6"`
	// Error says why the provider does not use the pool (an entry it cannot
	// parse, an overlap with another pool); empty when the pool is in use.
	Error string `json:"error,omitempty"`
}

// ipPoolFromUnstructured converts an object read through the dynamic client.
func ipPoolFromUnstructured(u *unstructured.Unstructured) (*IPPool, error) {
	var p IPPool
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return nil, fmt.Errorf("decoding IPPool %q: %w", u.GetName(), err)
	}
	return &p, nil
}

// statusToUnstructured returns status in the form the dynamic client sends.
func statusToUnstructured(s IPPoolStatus) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
}
