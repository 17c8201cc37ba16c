package gce

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/providers"
)

// The anchor's (kubernetes/cloud-provider-gcp, GKE) L4 annotations whose
// values decide what kind of load balancer a Service asks for.
const (
	annotationGKELBType    = "networking.gke.io/load-balancer-type"
	annotationLegacyLBType = "cloud.google.com/load-balancer-type"
	annotationNetworkTier  = "cloud.google.com/network-tier"
	annotationL4RBS        = "cloud.google.com/l4-rbs"
)

// supported is what the gce provider does with Service annotations. The
// anchors' namespaces (cloud.google.com/, networking.gke.io/) are shared
// with other GKE controllers (NEGs, Ingress), so only their load-balancer
// annotations are refused by name. docs/gce.md has the table.
var supported = providers.Annotations{
	Implemented: []string{AnnotationLoadBalancerIP, annotationGKELBType, annotationLegacyLBType, annotationNetworkTier, annotationL4RBS},
	Refused: map[string]string{
		"networking.gke.io/internal-load-balancer-allow-global-access": "internal load balancers are not implemented",
		"networking.gke.io/internal-load-balancer-subnet":              "internal load balancers are not implemented",
		"networking.gke.io/load-balancer-ip-addresses":                 "use " + AnnotationLoadBalancerIP + " or spec.loadBalancerIP for a reserved address",
		"networking.gke.io/weighted-load-balancing":                    "weighted load balancing needs backend services, which target-pool load balancers do not use",
		"cloud.google.com/load-balancer-ip-addresses":                  "use " + AnnotationLoadBalancerIP,
	},
}

// checkAnnotations refuses what the gce provider would build weaker than
// asked, and hands RBS Services to GKE's L4 controller.
func checkAnnotations(svc *v1.Service) error {
	a := svc.Annotations
	for _, k := range []string{annotationGKELBType, annotationLegacyLBType} {
		switch v := a[k]; strings.ToLower(v) {
		case "", "external":
		case "internal":
			// Security: building the external load balancer instead would
			// put a Service meant to be private on a public address.
			return providers.NewInputError("metadata.annotations["+k+"]", "internal load balancers are not implemented by this provider; refusing rather than exposing the Service on an external address")
		default:
			return providers.NewInputError("metadata.annotations["+k+"]", "%q is not a load-balancer type (Internal or External)", v)
		}
	}
	switch v := a[annotationNetworkTier]; v {
	case "", "Premium":
	case "Standard":
		return providers.NewInputError("metadata.annotations["+annotationNetworkTier+"]", "the Standard network tier is not implemented; load balancers are Premium")
	default:
		return providers.NewInputError("metadata.annotations["+annotationNetworkTier+"]", "%q is not a network tier (Premium or Standard)", v)
	}
	if a[annotationL4RBS] == "enabled" {
		return cloudprovider.ImplementedElsewhere // GKE's regional-backend-service L4 controller owns it
	}
	return supported.Check(svc)
}
