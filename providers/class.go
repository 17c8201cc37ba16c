package providers

import (
	"fmt"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
)

// DefaultClass is the spec.loadBalancerClass served for provider unless
// --load-balancer-class says otherwise: "extlb.io/<provider>".
func DefaultClass(provider string) string { return "extlb.io/" + provider }

// ClassFilter selects the Services one extlb installation serves: the
// controller provisions exactly these, and the metal speakers announce
// exactly these. Both build it with DefaultClassFilter and AddFlags, so
// their defaults cannot disagree.
type ClassFilter struct {
	// Name is the spec.loadBalancerClass served.
	Name string
	// Default also serves LoadBalancer Services with no
	// spec.loadBalancerClass, as the cluster's default implementation.
	Default bool
}

// ServeNoClassByDefault is the default of --default-class, for the
// controller and the speaker alike.
const ServeNoClassByDefault = true

// DefaultClassFilter is the filter's default for provider: its own class
// and, as upstream cloud providers do, Services with no class.
func DefaultClassFilter(provider string) ClassFilter {
	return ClassFilter{Name: DefaultClass(provider), Default: ServeNoClassByDefault}
}

// Serves reports whether svc is a LoadBalancer Service of the filter's
// class.
func (f ClassFilter) Serves(svc *v1.Service) bool {
	if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return f.Default
	}
	return *svc.Spec.LoadBalancerClass == f.Name
}

// AddFlags registers --load-balancer-class and --default-class with the
// values in f as defaults. what says who acts on the Services ("serve",
// "announce").
func (f *ClassFilter) AddFlags(fs *pflag.FlagSet, what string) {
	fs.StringVar(&f.Name, "load-balancer-class", f.Name, fmt.Sprintf("spec.loadBalancerClass of the Services to %s.", what))
	fs.BoolVar(&f.Default, "default-class", f.Default, fmt.Sprintf("Also %s LoadBalancer Services with no spec.loadBalancerClass, as the cluster's default load-balancer implementation.", what))
}

// Validate names the flag at fault.
func (f ClassFilter) Validate() error {
	if f.Name == "" {
		return fmt.Errorf("--load-balancer-class: must not be empty")
	}
	return nil
}
