package metal

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/extlb/extlb/providers/providertest"
	"github.com/extlb/extlb/test/fixtures"
)

// TestContract runs the provider contract suite against fake clientsets
// holding one IPPool. Metal's cloud is the allocator, whose allocations are
// the inventory, and the IPPool status it publishes, whose writes are the
// cloud writes.
func TestContract(t *testing.T) {
	newCloud := func(t *testing.T, addresses string, fillers int) *providertest.Cloud {
		env := newTestEnv(t, []*IPPool{newIPPool("contract", []string{addresses})})
		// The first call loads the pools and publishes their status: that
		// is the provider starting, not the call a check looks at.
		if _, _, err := env.provider.GetLoadBalancer(context.Background(), "test", newService("warm-up")); err != nil {
			t.Fatalf("first GetLoadBalancer: %v", err)
		}
		for i := range fillers {
			env.mustEnsure(t, newService(fmt.Sprintf("filler-%d", i)))
		}
		env.settle(t)
		return &providertest.Cloud{LB: env.provider, Nodes: providertest.DefaultNodes(), Inventory: env.inventory, Writes: env.writeLog}
	}
	providertest.Run(t, providertest.Harness{
		ClusterName: "test",
		New:         func(t *testing.T) *providertest.Cloud { return newCloud(t, "192.0.2.10-192.0.2.12", 0) },
		Service:     func() *v1.Service { return newService("contract") },
		Invalid: []providertest.Invalid{
			{Desc: "requested address not an IP", Tweak: fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "banana"), Field: fieldLoadBalancerIPs},
			{Desc: "empty pool annotation", Tweak: fixtures.WithAnnotation(AnnotationIPPool, " "), Field: fieldIPPool},
			{Desc: "unknown IP family", Tweak: fixtures.WithFamilies(v1.IPFamilyPolicySingleStack, "IPv5"), Field: fieldIPFamilies},
			{Desc: "MetalLB's address annotation", Tweak: fixtures.WithAnnotation("metallb.universe.tf/loadBalancerIPs", "192.0.2.10"), Field: "metadata.annotations[metallb.universe.tf/loadBalancerIPs]"},
		},
		Triggers: []providertest.Trigger{{
			Desc: "pool exhausted", Want: providertest.WantRetry,
			New: func(t *testing.T) *providertest.Cloud { return newCloud(t, "192.0.2.10", 1) },
		}},
	})
}

// settle waits until the IPPool status shows the allocations, so that the
// status writer, which runs on its own, has made the writes the calls so
// far asked for.
func (e *testEnv) settle(t *testing.T) {
	t.Helper()
	eventually(t, "the IPPool status to show the allocations", func() bool {
		for name, want := range e.provider.desiredStatus() {
			if poolStatus(t, e, name) != want {
				return false
			}
		}
		return true
	})
}

// inventory lists each pool's allocation counts.
func (e *testEnv) inventory(*testing.T) map[string]string {
	inv := map[string]string{}
	for name, s := range e.provider.alloc.Stats() {
		inv["pool/"+name] = fmt.Sprintf("%+v", s)
	}
	return inv
}

// writeLog lists the writes the fake clientsets received (the dynamic one's,
// then the kube one's: the provider makes none there), once the status
// writer has settled.
func (e *testEnv) writeLog(t *testing.T) []string {
	e.settle(t)
	var out []string
	for _, set := range []struct {
		name    string
		actions []k8stesting.Action
	}{{"dynamic", e.dynamic.Actions()}, {"kube", e.kube.Actions()}} {
		for _, a := range set.actions {
			switch a.GetVerb() {
			case "get", "list", "watch":
				continue
			}
			s := fmt.Sprintf("%s %s %s", set.name, a.GetVerb(), a.GetResource().Resource)
			if sub := a.GetSubresource(); sub != "" {
				s += "/" + sub
			}
			out = append(out, s)
		}
	}
	return out
}
