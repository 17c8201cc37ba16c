package providers

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
)

// Labels and taints that take a node out of every load balancer.
const (
	// LabelExcludeFromLB is the well-known label that excludes a node. As
	// upstream reads it, a value that parses as false keeps the node; any
	// other value, empty included, excludes it.
	LabelExcludeFromLB = v1.LabelNodeExcludeBalancers
	// TaintToBeDeletedByClusterAutoscaler marks a node the cluster
	// autoscaler is about to remove.
	TaintToBeDeletedByClusterAutoscaler = "ToBeDeletedByClusterAutoscaler"
	// TaintUninitialized marks a node a cloud controller manager has not
	// initialized yet.
	TaintUninitialized = "node.cloudprovider.kubernetes.io/uninitialized"
)

// NodeExclusion says why a node must not carry load-balancer traffic, or ""
// when it may: it is being deleted, labelled LabelExcludeFromLB (with a
// value other than false), or tainted by the cluster autoscaler or as not
// yet initialized. The controller chooses backends with it and the metal
// speakers choose announcing nodes with it.
func NodeExclusion(node *v1.Node) string {
	if node.DeletionTimestamp != nil {
		return "being deleted"
	}
	if v, ok := node.Labels[LabelExcludeFromLB]; ok {
		if exclude, err := strconv.ParseBool(v); err != nil || exclude {
			return "labelled " + LabelExcludeFromLB + "=" + v
		}
	}
	for _, t := range node.Spec.Taints {
		switch t.Key {
		case TaintToBeDeletedByClusterAutoscaler, TaintUninitialized:
			return "tainted " + t.Key
		}
	}
	return ""
}
