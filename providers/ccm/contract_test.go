package ccm

import (
	"encoding/json"
	"testing"
	"time"

	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers/providertest"
)

// TestContractThroughAdapter runs the provider contract suite on the
// LoadBalancer a cloud-controller-manager gets from the adapter, around the
// in-memory provider: errors (RetryError, ImplementedElsewhere, InputError)
// and arguments must pass through it unchanged.
func TestContractThroughAdapter(t *testing.T) {
	cloud := func(t *testing.T, p *memory.Provider) *providertest.Cloud {
		lb, ok := New("extlb-memory", p).LoadBalancer()
		if !ok || lb == nil {
			t.Fatal("the adapter offers no LoadBalancer")
		}
		return &providertest.Cloud{
			LB:    lb,
			Nodes: providertest.DefaultNodes(),
			Inventory: func(t *testing.T) map[string]string {
				inv := map[string]string{}
				for _, lb := range p.LoadBalancers() {
					b, err := json.Marshal(lb)
					if err != nil {
						t.Fatal(err)
					}
					inv["loadbalancer/"+lb.Name] = string(b)
				}
				return inv
			},
			Writes: func(*testing.T) []string { return p.Writes() },
		}
	}
	ops := []memory.Op{memory.OpGet, memory.OpEnsure, memory.OpUpdate, memory.OpDelete}
	allOps := []providertest.Op{providertest.OpGet, providertest.OpEnsure, providertest.OpUpdate, providertest.OpDelete}
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) *providertest.Cloud { return cloud(t, memory.New()) },
		Triggers: []providertest.Trigger{
			{
				Desc: "injected RetryAfter", Want: providertest.WantRetry, Ops: allOps,
				New: func(t *testing.T) *providertest.Cloud {
					p := memory.New()
					for _, op := range ops {
						p.RetryAfter(op, time.Minute, 0)
					}
					return cloud(t, p)
				},
			},
			{
				Desc: "injected ImplementedElsewhere", Want: providertest.WantImplementedElsewhere, Ops: allOps,
				New: func(t *testing.T) *providertest.Cloud {
					p := memory.New()
					for _, op := range ops {
						p.FailWith(op, cloudprovider.ImplementedElsewhere, 0)
					}
					return cloud(t, p)
				},
			},
		},
	})
}
