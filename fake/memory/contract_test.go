package memory_test

import (
	"encoding/json"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers/providertest"
	"github.com/extlb/extlb/test/fixtures"
)

// TestContract runs the provider contract suite against the in-memory
// provider.
func TestContract(t *testing.T) {
	cloud := func(p *memory.Provider) *providertest.Cloud {
		return &providertest.Cloud{LB: p, Nodes: providertest.DefaultNodes(), Inventory: inventory(p), Writes: func(*testing.T) []string { return p.Writes() }}
	}
	allOps := []providertest.Op{providertest.OpGet, providertest.OpEnsure, providertest.OpUpdate, providertest.OpDelete}
	providertest.Run(t, providertest.Harness{
		New: func(*testing.T) *providertest.Cloud { return cloud(memory.New()) },
		Invalid: []providertest.Invalid{
			{Desc: "SCTP port", Tweak: fixtures.WithProtocol(0, v1.ProtocolSCTP), Field: "spec.ports[0].protocol"},
			{Desc: "port without a node port", Tweak: fixtures.WithoutNodePorts(), Field: "spec.ports[0].nodePort"},
		},
		Triggers: []providertest.Trigger{
			{
				Desc: "injected RetryAfter", Want: providertest.WantRetry, Ops: allOps,
				New: func(*testing.T) *providertest.Cloud {
					p := memory.New()
					for _, op := range []memory.Op{memory.OpGet, memory.OpEnsure, memory.OpUpdate, memory.OpDelete} {
						p.RetryAfter(op, time.Minute, 0)
					}
					return cloud(p)
				},
			},
			{
				Desc: "injected ImplementedElsewhere", Want: providertest.WantImplementedElsewhere, Ops: allOps,
				New: func(*testing.T) *providertest.Cloud {
					p := memory.New()
					for _, op := range []memory.Op{memory.OpGet, memory.OpEnsure, memory.OpUpdate, memory.OpDelete} {
						p.FailWith(op, cloudprovider.ImplementedElsewhere, 0)
					}
					return cloud(p)
				},
			},
		},
	})
}

// inventory lists the provider's load balancers.
func inventory(p *memory.Provider) func(*testing.T) map[string]string {
	return func(t *testing.T) map[string]string {
		inv := map[string]string{}
		for _, lb := range p.LoadBalancers() {
			b, err := json.Marshal(lb)
			if err != nil {
				t.Fatal(err)
			}
			inv["loadbalancer/"+lb.Name] = string(b)
		}
		return inv
	}
}
