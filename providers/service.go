package providers

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// AnnotationSourceRanges is the annotation form of
// spec.loadBalancerSourceRanges: comma-separated CIDRs, read only when the
// field is empty. The API server validates the field but not the
// annotation.
const AnnotationSourceRanges = v1.AnnotationLoadBalancerSourceRangesKey

// SourceRange is one client range a Service allows, with the field it was
// written in, for error messages.
type SourceRange struct {
	// Prefix is the range, masked ("10.1.2.3/8" becomes 10.0.0.0/8).
	Prefix netip.Prefix
	// Field names where the user wrote it, in the form of InputError.Field.
	Field string
}

// SourceRanges returns the client ranges a Service allows, the way the
// upstream service helpers read them (k8s.io/cloud-provider/service/helpers
// GetLoadBalancerSourceRanges): spec.loadBalancerSourceRanges when it is not
// empty, else the comma-separated annotation; entries are trimmed, masked,
// deduplicated and sorted (IPv4 first). An empty result means no
// restriction: every client may connect. An entry that is not a CIDR is an
// InputError naming the field (and the entry's index in the field).
//
// Every provider and the controller read source ranges only through this
// function, so a Service is accepted or refused the same everywhere.
func SourceRanges(svc *v1.Service) ([]SourceRange, error) {
	var entries, fields []string
	if len(svc.Spec.LoadBalancerSourceRanges) > 0 {
		for i, r := range svc.Spec.LoadBalancerSourceRanges {
			entries = append(entries, r)
			fields = append(fields, fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i))
		}
	} else if v := strings.TrimSpace(svc.Annotations[AnnotationSourceRanges]); v != "" {
		field := "metadata.annotations[" + AnnotationSourceRanges + "]"
		for _, r := range strings.Split(v, ",") {
			entries = append(entries, r)
			fields = append(fields, field)
		}
	}
	seen := map[netip.Prefix]bool{}
	var out []SourceRange
	for i, r := range entries {
		p, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			return nil, NewInputError(fields[i], "%q is not a CIDR such as 203.0.113.0/24", strings.TrimSpace(r))
		}
		p = p.Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, SourceRange{Prefix: p, Field: fields[i]})
	}
	sort.Slice(out, func(i, j int) bool { return lessPrefix(out[i].Prefix, out[j].Prefix) })
	return out, nil
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

// ValidateService checks what every provider relies on and the API server
// does not guarantee, and returns an InputError naming the field at fault:
// the source ranges (see SourceRanges) and ports unique by port number and
// protocol. The controller calls it before it touches a Service's load
// balancer; under a cloud-controller-manager, providers/ccm wraps the
// provider with Validating so that the same Services are refused.
func ValidateService(svc *v1.Service) error {
	if _, err := SourceRanges(svc); err != nil {
		return err
	}
	type portKey struct {
		port     int32
		protocol v1.Protocol
	}
	seen := map[portKey]int{}
	for i, p := range svc.Spec.Ports {
		k := portKey{p.Port, p.Protocol}
		if j, dup := seen[k]; dup {
			return NewInputError(fmt.Sprintf("spec.ports[%d].port", i), "port %d/%s is also used by spec.ports[%d]", p.Port, p.Protocol, j)
		}
		seen[k] = i
	}
	return nil
}
