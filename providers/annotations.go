package providers

import (
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// AnnotationServedByClass is written by extlb's controller with its
// finalizer: the class it served the Service under. Every provider accepts
// it.
const AnnotationServedByClass = "extlb.io/served-by-class"

// Annotations is what a provider does with the annotations a user may put
// on a Service for it: those it implements, and the namespaces it answers
// for, in which every other annotation is refused, so that a Service never
// gets a weaker load balancer than it asks for (an internal one made
// public, TLS dropped to cleartext) without an error.
//
// extlb's own namespaces (extlb.io/ and *.extlb.io/) are always answered
// for: an annotation there that this provider does not implement (a typo,
// or another provider's) is refused. Anchors' namespaces that belong only
// to load balancers (service.beta.kubernetes.io/aws-load-balancer-) go in
// Prefixes; single annotations of shared namespaces (cloud.google.com/...,
// where other controllers have annotations of their own) go in Refused.
type Annotations struct {
	// Implemented are the annotations the provider reads.
	Implemented []string
	// Prefixes are namespaces whose every annotation must be implemented.
	Prefixes []string
	// Refused are known annotations the provider does not implement,
	// each with what to do instead (docs and the error say it).
	Refused map[string]string
}

// Check refuses the first annotation of svc, in name order, that the
// provider answers for and does not implement, with an InputError naming
// it.
func (a Annotations) Check(svc *v1.Service) error {
	names := make([]string, 0, len(svc.Annotations))
	for k := range svc.Annotations {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == AnnotationServedByClass || slices.Contains(a.Implemented, k) {
			continue
		}
		if why, ok := a.Refused[k]; ok {
			return NewInputError("metadata.annotations["+k+"]", "is not supported by this provider: %s", why)
		}
		if a.answersFor(k) {
			supported := "none"
			if len(a.Implemented) > 0 {
				supported = strings.Join(a.Implemented, ", ")
			}
			return NewInputError("metadata.annotations["+k+"]", "is not an annotation this provider implements (it implements: %s)", supported)
		}
	}
	return nil
}

func (a Annotations) answersFor(k string) bool {
	if isOwnAnnotation(k) {
		return true
	}
	for _, p := range a.Prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// isOwnAnnotation reports whether k is in extlb's namespaces: extlb.io/ or
// a subdomain of it (gce.extlb.io/).
func isOwnAnnotation(k string) bool {
	domain, _, ok := strings.Cut(k, "/")
	return ok && (domain == "extlb.io" || strings.HasSuffix(domain, ".extlb.io"))
}
