package pool

import (
	"fmt"
	"maps"
	"net/netip"
)

// FamilyPolicy says how many families a Service wants, as
// spec.ipFamilyPolicy does.
type FamilyPolicy string

// The family policies, with the values of Kubernetes' IPFamilyPolicy.
const (
	SingleStack      FamilyPolicy = "SingleStack"
	PreferDualStack  FamilyPolicy = "PreferDualStack"
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Port is one protocol and port a Service serves on its address.
type Port struct {
	Protocol string
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Request describes what a Service needs from the allocator.
type Request struct {
	// Namespace and Name identify the Service.
	Namespace, Name string
	// ServiceLabels and NamespaceLabels are matched against pool selectors.
	ServiceLabels, NamespaceLabels map[string]string
	// Pool, when set, is the only pool the addresses may come from.
	Pool string
	// IPs are the requested addresses, at most one per family.
	IPs []netip.Addr
	// Families are the Service's spec.ipFamilies in order; Policy its
	// spec.ipFamilyPolicy.
	Families []Family
	Policy   FamilyPolicy
	// SharingKey is the extlb.io/allow-shared-ip annotation; empty means the
	// Service never shares its address.
	SharingKey string
	// Ports are the Service's ports (spec.ports), in order.
	Ports []Port
	// LocalTraffic is true for externalTrafficPolicy: Local; then Selector,
	// the Service's pod selector, must equal that of every sharer.
	LocalTraffic bool
	Selector     map[string]string
}

// Key returns "namespace/name".
func (r *Request) Key() string { return r.Namespace + "/" + r.Name }

// wantedFamilies returns the families the Service asks addresses for, in order.
func (r *Request) wantedFamilies() []Family {
	if r.Policy == SingleStack || r.Policy == "" {
		if len(r.Families) == 0 {
			return nil
		}
		return r.Families[:1]
	}
	return r.Families
}

// requestedIP returns the requested address of family f, if any.
func (r *Request) requestedIP(f Family) (netip.Addr, bool) {
	for _, ip := range r.IPs {
		if FamilyOf(ip) == f {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// canShare returns nil when the Services of r and o may use one address, or an
// Error explaining which rule r breaks. ip is only used in messages.
func (r *Request) canShare(o *Request, ip netip.Addr) *Error {
	switch {
	case r.SharingKey == "" && o.SharingKey == "":
		return &Error{Reason: ReasonInUse, Subject: SubjectSharingKey,
			Msg: fmt.Sprintf("address %s is in use by Service %s, and neither Service allows sharing", ip, o.Key())}
	case r.SharingKey == "":
		return &Error{Reason: ReasonInUse, Subject: SubjectSharingKey,
			Msg: fmt.Sprintf("address %s is in use by Service %s (sharing key %q); this Service has no sharing key", ip, o.Key(), o.SharingKey)}
	case o.SharingKey == "":
		return &Error{Reason: ReasonInUse, Subject: SubjectSharingKey,
			Msg: fmt.Sprintf("address %s is in use by Service %s, which does not allow sharing", ip, o.Key())}
	case r.SharingKey != o.SharingKey:
		return &Error{Reason: ReasonInUse, Subject: SubjectSharingKey,
			Msg: fmt.Sprintf("address %s is in use by Service %s with sharing key %q, not %q", ip, o.Key(), o.SharingKey, r.SharingKey)}
	case r.LocalTraffic != o.LocalTraffic:
		return &Error{Reason: ReasonInUse, Subject: SubjectTrafficPolicy,
			Msg: fmt.Sprintf("address %s is shared with Service %s whose externalTrafficPolicy is %s; all Services sharing an address need the same policy",
				ip, o.Key(), trafficPolicyName(o.LocalTraffic))}
	case r.LocalTraffic && (r.Namespace != o.Namespace || !maps.Equal(r.Selector, o.Selector)):
		return &Error{Reason: ReasonInUse, Subject: SubjectTrafficPolicy,
			Msg: fmt.Sprintf("address %s is shared with Service %s; with externalTrafficPolicy Local, Services sharing an address must be in one namespace and have the same pod selector, so that one node serves them all", ip, o.Key())}
	}
	for i, p := range r.Ports {
		for _, q := range o.Ports {
			if p == q {
				return &Error{Reason: ReasonInUse, Subject: SubjectPort, PortIndex: i,
					Msg: fmt.Sprintf("port %s is already served on address %s by Service %s", p, ip, o.Key())}
			}
		}
	}
	return nil
}

func trafficPolicyName(local bool) string {
	if local {
		return "Local"
	}
	return "Cluster"
}
