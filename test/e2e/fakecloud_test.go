package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/providers/fake"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/test/loopback"
)

// TestFakeCloudCarriesTrafficToNodeAgents: TCP and UDP through a Service's
// external IP reach every node's agent; a node failing its health check
// (its agent stops serving the health-checked port) and a deleted Node stop
// getting traffic, while the other nodes keep answering everything.
func TestFakeCloudCarriesTrafficToNodeAgents(t *testing.T) {
	vips := loopback.Reserve(t).Prefix()
	e := newCloudE2E(t, fcCluster)
	nodes := fcStartNodes(e, 3)
	e.run(e.buildProvider(fake.NewBuilder(), "--fake-vip-range="+vips.String(), "--fake-health-check-interval=100ms"))

	// The fake cloud health-checks an externalTrafficPolicy: Cluster
	// Service on its first TCP node port ("http").
	createService(t, e.admin, e.service("echo", nil, tcpServicePort("http", 18080), tcpServicePort("alt", 18081), udpServicePort("dns", 18053)))
	svc := e.get("echo")
	for _, n := range nodes {
		fcServePorts(t, n, svc)
	}
	ip := fcWaitAddress(e, "echo", vips)
	web, alt, dns := netip.AddrPortFrom(ip, 18080), netip.AddrPortFrom(ip, 18081), netip.AddrPortFrom(ip, 18053)
	all := []string{"node-1", "node-2", "node-3"}

	fcEventually(t, 20*time.Second, "TCP through the external IP reaches all three nodes", func() fcTraffic { return fcTCPRound(web, netip.Addr{}, 9) }, fcExactly(all...))
	fcExpect(t, "TCP port alt", fcTCPRound(alt, netip.Addr{}, 9), all...)
	fcExpect(t, "UDP port dns", fcUDPRound(dns, netip.Addr{}, 9, 2*time.Second), all...)

	// node-2 stops serving the health-checked port but keeps serving alt
	// and dns: its health check fails, so alt and dns stop reaching it
	// although they would work there.
	fcServePorts(t, nodes[1], svc, "alt", "dns")
	fcEventually(t, 10*time.Second, "node-2 failing its health check gets no traffic", func() fcTraffic { return fcTCPRound(alt, netip.Addr{}, 6) }, fcExactly("node-1", "node-3"))
	fcExpect(t, "TCP port alt with node-2 unhealthy", fcTCPRound(alt, netip.Addr{}, 12), "node-1", "node-3")
	fcExpect(t, "UDP port dns with node-2 unhealthy", fcUDPRound(dns, netip.Addr{}, 9, 2*time.Second), "node-1", "node-3")
	if _, err := fcTCPExchange(netip.AddrPortFrom(nodes[1].ip, uint16(nodePortsByName(svc)["alt"])), netip.Addr{}, "direct\n"); err != nil {
		t.Fatalf("node-2 should still serve alt's node port directly: %v", err)
	}
	// Healthy again: it gets traffic again.
	fcServePorts(t, nodes[1], svc)
	fcEventually(t, 10*time.Second, "node-2 healthy again gets traffic", func() fcTraffic { return fcTCPRound(alt, netip.Addr{}, 9) }, fcExactly(all...))

	// Node node-3 deleted: the controller removes it from the load
	// balancer, and its agent, still serving, gets nothing more.
	if err := e.admin.CoreV1().Nodes().Delete(t.Context(), "node-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fcEventually(t, 20*time.Second, "deleted node-3 gets no traffic", func() fcTraffic { return fcTCPRound(web, netip.Addr{}, 6) }, fcExactly("node-1", "node-2"))
	fcExpect(t, "TCP port alt without node-3", fcTCPRound(alt, netip.Addr{}, 12), "node-1", "node-2")
	fcExpect(t, "UDP port dns without node-3", fcUDPRound(dns, netip.Addr{}, 9, 2*time.Second), "node-1", "node-2")
	if _, err := fcTCPExchange(netip.AddrPortFrom(nodes[2].ip, uint16(nodePortsByName(svc)["http"])), netip.Addr{}, "direct\n"); err != nil {
		t.Fatalf("node-3's agent should still serve directly: %v", err)
	}
}

// TestFakeCloudLocalPolicySendsOnlyToNodesWithEndpoints: with
// externalTrafficPolicy: Local the fake cloud checks each node's
// healthCheckNodePort, so traffic reaches only the nodes whose agent
// reports a local endpoint, and follows the endpoint when it moves.
func TestFakeCloudLocalPolicySendsOnlyToNodesWithEndpoints(t *testing.T) {
	vips := loopback.Reserve(t).Prefix()
	e := newCloudE2E(t, fcCluster)
	nodes := fcStartNodes(e, 3)
	e.run(e.buildProvider(fake.NewBuilder(), "--fake-vip-range="+vips.String(), "--fake-health-check-interval=100ms"))

	local := e.service("local", nil, tcpServicePort("http", 18090), udpServicePort("stream", 18091))
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	createService(t, e.admin, local)
	svc := e.get("local")
	if svc.Spec.HealthCheckNodePort == 0 {
		t.Fatal("the API server allocated no healthCheckNodePort")
	}
	key := e.ns + "/local"
	for _, n := range nodes {
		fcServePorts(t, n, svc)
	}
	nodes[1].agent.SetLocalEndpoints(map[string]int{key: 1})
	ip := fcWaitAddress(e, "local", vips)
	web, stream := netip.AddrPortFrom(ip, 18090), netip.AddrPortFrom(ip, 18091)

	fcEventually(t, 20*time.Second, "only node-2, the node with the endpoint, answers", func() fcTraffic { return fcTCPRound(web, netip.Addr{}, 6) }, fcExactly("node-2"))
	fcExpect(t, "TCP with the endpoint on node-2", fcTCPRound(web, netip.Addr{}, 12), "node-2")
	fcExpect(t, "UDP with the endpoint on node-2", fcUDPRound(stream, netip.Addr{}, 9, 2*time.Second), "node-2")

	// The endpoints move to node-1 and node-3.
	nodes[1].agent.SetLocalEndpoints(nil)
	nodes[0].agent.SetLocalEndpoints(map[string]int{key: 1})
	nodes[2].agent.SetLocalEndpoints(map[string]int{key: 2})
	fcEventually(t, 10*time.Second, "traffic follows the endpoints to node-1 and node-3", func() fcTraffic { return fcTCPRound(web, netip.Addr{}, 6) }, fcExactly("node-1", "node-3"))
	fcExpect(t, "TCP with endpoints on node-1 and node-3", fcTCPRound(web, netip.Addr{}, 12), "node-1", "node-3")
	fcExpect(t, "UDP with endpoints on node-1 and node-3", fcUDPRound(stream, netip.Addr{}, 9, 2*time.Second), "node-1", "node-3")
}

// TestFakeCloudSourceRangesRefuseOtherClients: a client bound to an
// address outside loadBalancerSourceRanges gets no TCP answer and no UDP
// reply, one inside does; widening the ranges lets the first one in.
func TestFakeCloudSourceRangesRefuseOtherClients(t *testing.T) {
	vips := loopback.Reserve(t).Prefix()
	allowedClients, otherClients := loopback.Reserve(t), loopback.Reserve(t)
	allowed, other := allowedClients.Addr(7), otherClients.Addr(7)
	e := newCloudE2E(t, fcCluster)
	nodes := fcStartNodes(e, 2)
	e.run(e.buildProvider(fake.NewBuilder(), "--fake-vip-range="+vips.String(), "--fake-health-check-interval=100ms"))

	restricted := e.service("restricted", nil, tcpServicePort("http", 18100), udpServicePort("dns", 18101))
	restricted.Spec.LoadBalancerSourceRanges = []string{allowedClients.String()}
	createService(t, e.admin, restricted)
	svc := e.get("restricted")
	for _, n := range nodes {
		fcServePorts(t, n, svc)
	}
	ip := fcWaitAddress(e, "restricted", vips)
	web, dns := netip.AddrPortFrom(ip, 18100), netip.AddrPortFrom(ip, 18101)

	fcEventually(t, 20*time.Second, "a client inside the source ranges is served", func() fcTraffic { return fcTCPRound(web, allowed, 4) }, fcExactly("node-1", "node-2"))
	fcExpect(t, "UDP from inside the source ranges", fcUDPRound(dns, allowed, 4, 2*time.Second), "node-1", "node-2")
	if r := fcTCPRound(web, other, 5); len(r.nodes) != 0 || r.failures != 5 {
		t.Errorf("TCP from %s, outside the source ranges: %s, want every connection refused", other, r)
	}
	if r := fcUDPRound(dns, other, 3, 500*time.Millisecond); len(r.nodes) != 0 || r.failures != 3 {
		t.Errorf("UDP from %s, outside the source ranges: %s, want no reply", other, r)
	}

	updateService(t, e.admin, e.ns, "restricted", func(s *v1.Service) {
		s.Spec.LoadBalancerSourceRanges = append(s.Spec.LoadBalancerSourceRanges, otherClients.String())
	})
	fcEventually(t, 20*time.Second, "the widened source ranges let "+other.String()+" in", func() fcTraffic { return fcTCPRound(web, other, 4) }, fcExactly("node-1", "node-2"))
	fcExpect(t, "UDP from the added range", fcUDPRound(dns, other, 4, 2*time.Second), "node-1", "node-2")
}

// TestFakeCloudConvergesThroughFaultsWithoutLeaks: with 30 % of the fake
// cloud's API requests answered 500 and 30 % of the rest 429, five Services
// all get their load balancers (each with every node, at the address the
// Service shows), and after the Services are deleted no load balancer is
// left.
func TestFakeCloudConvergesThroughFaultsWithoutLeaks(t *testing.T) {
	vips := loopback.Reserve(t).Prefix()
	srv := fcStandaloneCloud(t, "--fake-vip-range="+vips.String(),
		"--fake-error-rate=0.3", "--fake-throttle-rate=0.3", "--fake-retry-after=1", "--fake-seed=7")
	e := newCloudE2E(t, fcCluster)
	fcStartNodes(e, 3)
	e.run(e.buildProvider(fake.NewBuilder(), "--fake-endpoint="+srv.URL(), "--fake-retry-wait-max=1s"))

	const count = 5
	for i := range count {
		createService(t, e.admin, e.service(fmt.Sprintf("svc-%d", i), nil, tcpServicePort("http", int32(18200+i))))
	}
	for i := range count {
		fcWaitAddress(e, fmt.Sprintf("svc-%d", i), vips)
	}
	lbs := fcListLoadBalancers(t, srv.URL())
	if len(lbs) != count {
		t.Fatalf("%d load balancers in the fake cloud, want %d: %+v", len(lbs), count, lbs)
	}
	for _, lb := range lbs {
		owner := lb.Spec.Tags["extlb.io/service"]
		ns, name, _ := strings.Cut(owner, "/")
		if ns != e.ns {
			t.Errorf("load balancer %s belongs to %q, not to a Service of this test", lb.Name, owner)
			continue
		}
		svc := e.get(name)
		if ing := svc.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != lb.Status.Address {
			t.Errorf("service %s shows %v, its load balancer has %s", name, ing, lb.Status.Address)
		}
		var backends []string
		for _, b := range lb.Spec.Backends {
			backends = append(backends, b.Name)
		}
		slices.Sort(backends)
		if !slices.Equal(backends, []string{"node-1", "node-2", "node-3"}) {
			t.Errorf("load balancer of %s has backends %v, want node-1..3", name, backends)
		}
	}
	t.Logf("converged through injected faults %v", fcInjectedFaults(t, srv.URL()))

	for i := range count {
		if err := e.admin.CoreV1().Services(e.ns).Delete(t.Context(), fmt.Sprintf("svc-%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "Services deleted (finalizers removed)", func(ctx context.Context) (bool, string) {
		list, err := e.admin.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, s := range list.Items {
			left = append(left, s.Name)
		}
		return len(left) == 0, fmt.Sprint("left: ", left)
	})
	if lbs := fcListLoadBalancers(t, srv.URL()); len(lbs) != 0 {
		t.Errorf("%d load balancers leaked after the Services were deleted: %+v", len(lbs), lbs)
	}
	faults := fcInjectedFaults(t, srv.URL())
	if faults["error"] == 0 || faults["throttle"] == 0 {
		t.Fatalf("injected faults %v: the test needs both errors and throttling to have happened", faults)
	}
	t.Logf("created and deleted through injected faults %v", faults)
}

// TestFakeCloudRefusesBadRequestsNamingTheField sends malformed requests
// straight to a fake cloud's API: each gets a 400 whose body names the
// field, and nothing is created.
func TestFakeCloudRefusesBadRequestsNamingTheField(t *testing.T) {
	srv := fcStandaloneCloud(t, "--fake-vip-range="+loopback.Reserve(t).String())
	good := `{"protocol":"TCP","port":18300,"backendPort":30000}`
	for _, tc := range []struct {
		desc, path, body, field string
	}{
		{desc: "SCTP port", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[{"protocol":"SCTP","port":18300,"backendPort":30000}]}}`, field: "spec.ports[0].protocol"},
		{desc: "port out of range", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `,{"protocol":"UDP","port":70000,"backendPort":30000}]}}`, field: "spec.ports[1].port"},
		{desc: "no backend port", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[{"protocol":"TCP","port":18300}]}}`, field: "spec.ports[0].backendPort"},
		{desc: "no ports", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[]}}`, field: "spec.ports"},
		{desc: "backend address not an IP", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `],"backends":[{"name":"n1","address":"node-1.example"}]}}`, field: "spec.backends[0].address"},
		{desc: "duplicate backend", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `],"backends":[{"name":"n1","address":"127.0.0.1"},{"name":"n1","address":"127.0.0.2"}]}}`, field: "spec.backends[1].name"},
		{desc: "bad source range", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `],"sourceRanges":["10.0.0.0/33"]}}`, field: "spec.sourceRanges[0]"},
		{desc: "unknown health check", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `],"healthCheck":{"type":"ICMP"}}}`, field: "spec.healthCheck.type"},
		{desc: "unknown field", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[` + good + `],"backend":[]}}`, field: "spec.backend"},
		{desc: "wrong type", path: "/v1/loadbalancers/a", body: `{"spec":{"ports":[{"protocol":"TCP","port":"80","backendPort":30000}]}}`, field: "spec.ports[0].port"},
		{desc: "name not a DNS label", path: "/v1/loadbalancers/Not_A_Label", body: `{"spec":{"ports":[` + good + `]}}`, field: "name"},
		{desc: "fault rate over 1", path: "/v1/faults", body: `{"errorRate":1.5}`, field: "errorRate"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var apiErr api.Error
			if err := json.Unmarshal(body, &apiErr); err != nil {
				t.Fatalf("status %d, body %q is not an API error: %v", resp.StatusCode, body, err)
			}
			if resp.StatusCode != http.StatusBadRequest || apiErr.Field != tc.field || !strings.HasPrefix(apiErr.Message, tc.field+": ") || apiErr.Reason == "" {
				t.Errorf("PUT %s %s: %d %s, want 400 naming field %q with a reason", tc.path, tc.body, resp.StatusCode, body, tc.field)
			}
		})
	}
	if lbs := fcListLoadBalancers(t, srv.URL()); len(lbs) != 0 {
		t.Errorf("bad requests created load balancers: %+v", lbs)
	}
	status, body := httpGet(t, srv.URL()+"/v1/faults")
	if status != http.StatusOK || strings.Contains(body, "1.5") {
		t.Errorf("refused faults were applied: %d %s", status, body)
	}
}
