package controller

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
)

// AnnotationSourceRanges is the legacy annotation form of
// spec.loadBalancerSourceRanges, which the API server does not validate.
const AnnotationSourceRanges = v1.AnnotationLoadBalancerSourceRangesKey

// validateService checks what every provider relies on and the API server
// does not guarantee, and names the field at fault.
func validateService(svc *v1.Service) error {
	for i, r := range svc.Spec.LoadBalancerSourceRanges {
		if _, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil {
			return providers.NewInputError(fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i), "%q is not a CIDR such as 203.0.113.0/24", r)
		}
	}
	if v, ok := svc.Annotations[AnnotationSourceRanges]; ok && len(svc.Spec.LoadBalancerSourceRanges) == 0 {
		for _, r := range strings.Split(v, ",") {
			if _, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil {
				return providers.NewInputError(fmt.Sprintf("metadata.annotations[%s]", AnnotationSourceRanges), "%q is not a CIDR such as 203.0.113.0/24", strings.TrimSpace(r))
			}
		}
	}
	type portKey struct {
		port     int32
		protocol v1.Protocol
	}
	seen := map[portKey]int{}
	for i, p := range svc.Spec.Ports {
		k := portKey{p.Port, p.Protocol}
		if j, dup := seen[k]; dup {
			return providers.NewInputError(fmt.Sprintf("spec.ports[%d].port", i), "port %d/%s is also used by spec.ports[%d]", p.Port, p.Protocol, j)
		}
		seen[k] = i
	}
	return nil
}
