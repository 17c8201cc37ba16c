package fake

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/providers/providertest"
	"github.com/extlb/extlb/test/fixtures"
	"github.com/extlb/extlb/test/loopback"
)

// TestContract runs the provider contract suite against a fake cloud (VIPs
// and nodes on loopback blocks of their own; the nodes run no agent, so
// their health checks fail, which the API does not mind).
func TestContract(t *testing.T) {
	newCloud := func(t *testing.T, faults api.Faults, args ...string) *providertest.Cloud {
		s := startFaultyCloud(t, faults, "")
		lo := loopback.Reserve(t)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		p := buildProvider(t, ctx, append([]string{"--fake-endpoint=" + s.URL()}, args...)...)
		var nodes []*v1.Node
		for i := range 3 {
			nodes = append(nodes, fixtures.Node(fmt.Sprintf("node-%d", i), fixtures.WithInternalIP(lo.IP(byte(i+1)))))
		}
		return &providertest.Cloud{LB: p, Nodes: nodes, Inventory: inventory(s), Writes: func(*testing.T) []string { return s.Writes() }}
	}
	providertest.Run(t, providertest.Harness{
		ClusterName: "test",
		New:         func(t *testing.T) *providertest.Cloud { return newCloud(t, api.Faults{}) },
		Service:     func() *v1.Service { return newService("contract", withPort("http", v1.ProtocolTCP, 8080, 31080)) },
		Invalid: []providertest.Invalid{
			{Desc: "SCTP port", Tweak: fixtures.WithProtocol(0, v1.ProtocolSCTP), Field: "spec.ports[0].protocol"},
			{Desc: "port without a node port", Tweak: fixtures.WithoutNodePorts(), Field: "spec.ports[0].nodePort"},
			{Desc: "spec.loadBalancerIP set", Tweak: fixtures.WithLoadBalancerIP("203.0.113.7"), Field: "spec.loadBalancerIP"},
		},
		Triggers: []providertest.Trigger{{
			Desc: "every call throttled with Retry-After", Want: providertest.WantRetry,
			New: func(t *testing.T) *providertest.Cloud {
				return newCloud(t, api.Faults{ThrottleRate: 1, RetryAfterSeconds: 60}, "--fake-max-retries=0")
			},
			Ops: []providertest.Op{providertest.OpGet, providertest.OpEnsure, providertest.OpUpdate, providertest.OpDelete},
		}},
	})
}

// inventory lists the fake cloud's load balancers (spec and address; the
// backends' health changes by itself) and the VIPs in use.
func inventory(s *cloud.Server) func(*testing.T) map[string]string {
	return func(t *testing.T) map[string]string {
		inv := map[string]string{}
		for _, lb := range s.LoadBalancers() {
			b, err := json.Marshal(struct {
				Spec    api.LoadBalancerSpec
				Address string
			}{lb.Spec, lb.Status.Address})
			if err != nil {
				t.Fatal(err)
			}
			inv["loadbalancer/"+lb.Name] = string(b)
		}
		for _, a := range s.AddressesInUse() {
			inv["vip/"+a] = "in use"
		}
		return inv
	}
}
