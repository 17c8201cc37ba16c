package gce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"

	fakegce "github.com/extlb/extlb/fake/gce"
	"github.com/extlb/extlb/providers/providertest"
	"github.com/extlb/extlb/test/fixtures"
)

// TestContract runs the provider contract suite against the fake GCE.
func TestContract(t *testing.T) {
	cloud := func(t *testing.T, arm func(*testEnv)) *providertest.Cloud {
		e := newTestEnv(t)
		nodes := e.nodes(3)
		if arm != nil {
			arm(e)
		}
		return &providertest.Cloud{LB: e.p, Nodes: nodes, Inventory: e.inventory, Writes: e.writeLog}
	}
	providertest.Run(t, providertest.Harness{
		ClusterName: testCluster,
		New:         func(t *testing.T) *providertest.Cloud { return cloud(t, nil) },
		Service:     func() *v1.Service { return newService("contract") },
		Invalid: []providertest.Invalid{
			{Desc: "SCTP port", Tweak: fixtures.WithProtocol(0, v1.ProtocolSCTP), Field: "spec.ports[0].protocol"},
			{Desc: "IPv6 only", Tweak: fixtures.WithFamilies(v1.IPFamilyPolicySingleStack, v1.IPv6Protocol), Field: "spec.ipFamilies"},
			{Desc: "requested address not an IP", Tweak: fixtures.WithAnnotation(AnnotationLoadBalancerIP, "not-an-ip"), Field: "metadata.annotations[" + AnnotationLoadBalancerIP + "]"},
		},
		Triggers: []providertest.Trigger{
			{
				Desc: "RBS annotation hands the Service to GKE", Want: providertest.WantImplementedElsewhere,
				Tweak: fixtures.WithAnnotation(annotationL4RBS, "enabled"),
				Ops:   []providertest.Op{providertest.OpEnsure, providertest.OpUpdate},
			},
			{
				Desc: "forwarding-rule quota exhausted", Want: providertest.WantRetry,
				New: func(t *testing.T) *providertest.Cloud {
					return cloud(t, func(e *testEnv) { e.srv.SetQuota("forwardingRules", 0) })
				},
			},
			{
				Desc: "403 quotaExceeded on every insert", Want: providertest.WantRetry,
				New: func(t *testing.T) *providertest.Cloud {
					return cloud(t, func(e *testEnv) {
						e.srv.InjectFault(fakegce.Fault{Method: http.MethodPost, Status: http.StatusForbidden, Reason: "quotaExceeded"})
					})
				},
			},
		},
	})
}

// inventory renders every address, firewall, health check, target pool and
// forwarding rule the fake holds. Instances are only seeded (target pools
// hold the links to them).
func (e *testEnv) inventory(t *testing.T) map[string]string {
	inv := map[string]string{}
	for _, key := range e.srv.Keys() {
		parts := strings.Split(key, "/")
		name := parts[len(parts)-1]
		var m proto.Message
		var ok bool
		switch {
		case strings.HasPrefix(key, "regions/") && parts[2] == "addresses":
			m, ok = e.srv.Address(parts[1], name)
		case strings.HasPrefix(key, "global/firewalls/"):
			m, ok = e.srv.Firewall(name)
		case strings.HasPrefix(key, "regions/") && parts[2] == "targetPools":
			m, ok = e.srv.TargetPool(parts[1], name)
		case strings.HasPrefix(key, "regions/") && parts[2] == "forwardingRules":
			m, ok = e.srv.ForwardingRule(parts[1], name)
		case strings.HasPrefix(key, "global/httpHealthChecks/"):
			hc, found := e.srv.HealthCheck(name)
			if !found {
				t.Fatalf("fake lists %s but has no health check %s", key, name)
			}
			b, err := json.Marshal(hc)
			if err != nil {
				t.Fatal(err)
			}
			inv[key] = string(b)
			continue
		default:
			t.Fatalf("fake lists %s, which the inventory does not know", key)
		}
		if !ok {
			t.Fatalf("fake lists %s but cannot return it", key)
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		inv[key] = string(b)
	}
	return inv
}

// writeLog lists the write calls the fake received, failed ones with their
// status.
func (e *testEnv) writeLog(*testing.T) []string {
	var out []string
	for _, c := range e.srv.Calls() {
		if c.Write {
			s := c.Method + " " + c.Path
			if c.Status >= 400 {
				s += fmt.Sprintf(" (%d)", c.Status)
			}
			out = append(out, s)
		}
	}
	return out
}
