package metal

import "github.com/extlb/extlb/providers"

// supported is what the metal provider does with Service annotations: its
// own three, and MetalLB's and kube-vip's equivalents refused with the name
// to use instead, so that a Service moved from them does not silently lose
// its requested address, pool or sharing.
var supported = providers.Annotations{
	Implemented: []string{AnnotationLoadBalancerIPs, AnnotationIPPool, AnnotationAllowSharedIP},
	Refused: map[string]string{
		"metallb.universe.tf/loadBalancerIPs": "use " + AnnotationLoadBalancerIPs,
		"metallb.universe.tf/address-pool":    "use " + AnnotationIPPool,
		"metallb.universe.tf/allow-shared-ip": "use " + AnnotationAllowSharedIP,
		"metallb.io/loadBalancerIPs":          "use " + AnnotationLoadBalancerIPs,
		"metallb.io/address-pool":             "use " + AnnotationIPPool,
		"metallb.io/allow-shared-ip":          "use " + AnnotationAllowSharedIP,
		"kube-vip.io/loadbalancerIPs":         "use " + AnnotationLoadBalancerIPs,
	},
}
