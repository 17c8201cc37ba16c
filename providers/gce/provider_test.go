package gce

import (
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/test/fixtures"
)

func TestEnsureCreatesCompleteLoadBalancer(t *testing.T) {
	e := newTestEnv(t)
	nodes := e.nodes(3)
	svc := newService("web", withPorts("80/TCP", "443/TCP"), fixtures.WithSourceRanges("192.0.2.0/24", "198.51.100.7/32"))

	st := e.ensure(svc, nodes)

	n, own := namesOf(svc), ownerOf(svc).description()
	addr, ok := e.srv.Address(testRegion, n.base)
	if !ok || addr.GetDescription() != own {
		t.Fatalf("address %s: ok=%v description=%q, want %q", n.base, ok, addr.GetDescription(), own)
	}
	if len(st.Ingress) != 1 || st.Ingress[0].IP != addr.GetAddress() || *st.Ingress[0].IPMode != v1.LoadBalancerIPModeVIP {
		t.Errorf("status = %+v, want the address %s as a VIP", st, addr.GetAddress())
	}
	fw, ok := e.srv.Firewall(n.firewall)
	if !ok || fw.GetDescription() != own {
		t.Fatalf("firewall %s: ok=%v description=%q", n.firewall, ok, fw.GetDescription())
	}
	if got := allowedKeys(fw.GetAllowed()); !slices.Equal(got, []string{"tcp:443", "tcp:80"}) && !slices.Equal(got, []string{"tcp:80", "tcp:443"}) {
		t.Errorf("firewall allows %v, want tcp:80 and tcp:443", got)
	}
	if !slices.Equal(fw.GetSourceRanges(), []string{"192.0.2.0/24", "198.51.100.7/32"}) {
		t.Errorf("firewall source ranges = %v", fw.GetSourceRanges())
	}
	// Security: the ports are open to the load balancer's address only,
	// not to every address of the tagged nodes.
	if want := []string{addr.GetAddress() + "/32"}; !slices.Equal(fw.GetDestinationRanges(), want) {
		t.Errorf("firewall destination ranges = %v, want %v", fw.GetDestinationRanges(), want)
	}
	if !slices.Equal(fw.GetTargetTags(), []string{"k8s-node"}) {
		t.Errorf("firewall target tags = %v, want the instances' first tag [k8s-node]", fw.GetTargetTags())
	}
	hc, ok := e.srv.HealthCheck(n.sharedHealthCheck)
	if !ok || hc.Port != 10256 || hc.RequestPath != "/healthz" || hc.Description != (owner{Cluster: testCluster}).description() {
		t.Fatalf("shared health check %s: ok=%v %+v", n.sharedHealthCheck, ok, hc)
	}
	hcfw, ok := e.srv.Firewall(n.sharedHealthCheckFirewall)
	if !ok || !slices.Equal(hcfw.GetSourceRanges(), probeRanges) || !slices.Equal(allowedKeys(hcfw.GetAllowed()), []string{"tcp:10256"}) {
		t.Fatalf("health-check firewall %s: ok=%v %v", n.sharedHealthCheckFirewall, ok, hcfw)
	}
	pool, ok := e.srv.TargetPool(testRegion, n.base)
	if !ok || len(pool.GetInstances()) != 3 || !strings.HasSuffix(pool.GetHealthChecks()[0], "/global/httpHealthChecks/"+n.sharedHealthCheck) {
		t.Fatalf("target pool %s: ok=%v %v", n.base, ok, pool)
	}
	fr, ok := e.srv.ForwardingRule(testRegion, n.rule(v1.ProtocolTCP))
	if !ok || fr.GetIPAddress() != addr.GetAddress() || fr.GetPortRange() != "80-443" || fr.GetIPProtocol() != "TCP" ||
		!strings.HasSuffix(fr.GetTarget(), "/targetPools/"+n.base) || fr.GetDescription() != own {
		t.Fatalf("forwarding rule: ok=%v %v", ok, fr)
	}
	if _, ok := e.srv.ForwardingRule(testRegion, n.rule(v1.ProtocolUDP)); ok {
		t.Errorf("a UDP forwarding rule exists for a TCP-only Service")
	}

	writes := e.writes()
	if last := writes[len(writes)-1]; !strings.HasPrefix(last, "POST regions/us-central1/forwardingRules") {
		t.Errorf("last write = %q, want the forwarding rule insert (its existence means complete)", last)
	}

	found, exists, err := e.p.GetLoadBalancer(e.ctx, testCluster, svc)
	if err != nil || !exists || found.Ingress[0].IP != addr.GetAddress() {
		t.Errorf("GetLoadBalancer = %v, %v, %v", found, exists, err)
	}
}

func TestIdleEnsureOnlyReads(t *testing.T) {
	for _, tc := range []struct {
		desc string
		svc  *v1.Service
	}{
		{desc: "cluster policy", svc: newService("web")},
		{desc: "local policy, two protocols", svc: newService("dns", withPorts("53/TCP", "53/UDP"), fixtures.WithLocalPolicy(31000))},
		{desc: "requested IP", svc: newService("fixed", fixtures.WithLoadBalancerIP("198.51.100.20"))},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newTestEnv(t)
			nodes := e.nodes(3)
			first := e.ensure(tc.svc, nodes)
			e.srv.ResetCalls()
			second := e.ensure(tc.svc, nodes)
			if w := e.writes(); len(w) != 0 {
				t.Errorf("idle EnsureLoadBalancer wrote %v", w)
			}
			if len(e.srv.Calls()) == 0 {
				t.Errorf("idle EnsureLoadBalancer made no calls at all; it should read the state")
			}
			if first.Ingress[0].IP != second.Ingress[0].IP {
				t.Errorf("status changed: %v then %v", first.Ingress[0].IP, second.Ingress[0].IP)
			}
		})
	}
}

func TestUpdatesAreDiffs(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		before     *v1.Service
		after      *v1.Service
		nodesAfter int
		// wantWrites are substrings each matching exactly one write, in
		// any order; no other write may happen.
		wantWrites []string
	}{
		{desc: "node added", before: newService("web"), after: newService("web"), nodesAfter: 4,
			wantWrites: []string{"POST regions/us-central1/targetPools/" + namesOf(newService("web")).base + "/addInstance"}},
		{desc: "node removed", before: newService("web"), after: newService("web"), nodesAfter: 2,
			wantWrites: []string{"/removeInstance"}},
		{desc: "source ranges changed", before: newService("web"), after: newService("web", fixtures.WithSourceRanges("203.0.113.0/24")), nodesAfter: 3,
			wantWrites: []string{"PUT global/firewalls/" + namesOf(newService("web")).firewall}},
		{desc: "port added", before: newService("web"), after: newService("web", withPorts("80/TCP", "8080/TCP")), nodesAfter: 3,
			wantWrites: []string{"PUT global/firewalls/", "DELETE regions/us-central1/forwardingRules/", "POST regions/us-central1/forwardingRules"}},
		{desc: "UDP port added", before: newService("web"), after: newService("web", withPorts("80/TCP", "53/UDP")), nodesAfter: 3,
			wantWrites: []string{"PUT global/firewalls/", "POST regions/us-central1/forwardingRules"}},
		{desc: "session affinity changed", before: newService("web"), after: newService("web", fixtures.WithSessionAffinity(v1.ServiceAffinityClientIP)), nodesAfter: 3,
			wantWrites: []string{"DELETE regions/us-central1/forwardingRules/", "DELETE regions/us-central1/targetPools/", "POST regions/us-central1/targetPools", "POST regions/us-central1/forwardingRules"}},
		{desc: "cluster to local policy", before: newService("web"), after: newService("web", fixtures.WithLocalPolicy(31234)), nodesAfter: 3,
			wantWrites: []string{
				"POST global/httpHealthChecks", "POST global/firewalls",
				"DELETE regions/us-central1/forwardingRules/", "DELETE regions/us-central1/targetPools/",
				"POST regions/us-central1/targetPools", "POST regions/us-central1/forwardingRules",
				"DELETE global/httpHealthChecks/" + namesOf(newService("web")).sharedHealthCheck,
				"DELETE global/firewalls/" + namesOf(newService("web")).sharedHealthCheckFirewall,
			}},
		{desc: "local to cluster policy", before: newService("web", fixtures.WithLocalPolicy(31234)), after: newService("web"), nodesAfter: 3,
			wantWrites: []string{
				"POST global/httpHealthChecks", "POST global/firewalls",
				"DELETE regions/us-central1/forwardingRules/", "DELETE regions/us-central1/targetPools/",
				"POST regions/us-central1/targetPools", "POST regions/us-central1/forwardingRules",
				"DELETE global/httpHealthChecks/" + namesOf(newService("web")).healthCheck,
				"DELETE global/firewalls/" + namesOf(newService("web")).healthCheckFirewall,
			}},
		{desc: "requested IP set", before: newService("web"), after: newService("web", fixtures.WithLoadBalancerIP("198.51.100.9")), nodesAfter: 3,
			// The firewall follows the new address (its destinationRanges).
			wantWrites: []string{"DELETE regions/us-central1/forwardingRules/", "DELETE regions/us-central1/addresses/",
				"POST regions/us-central1/addresses", "PUT global/firewalls/", "POST regions/us-central1/forwardingRules"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newTestEnv(t)
			all := e.nodes(5)
			e.ensure(tc.before, all[:3])
			e.srv.ResetCalls()
			st := e.ensure(tc.after, all[:tc.nodesAfter])

			writes := e.writes()
			if len(writes) != len(tc.wantWrites) {
				t.Errorf("writes = %q, want %d matching %q", writes, len(tc.wantWrites), tc.wantWrites)
			}
			for _, want := range tc.wantWrites {
				if countMatching(writes, want) < 1 {
					t.Errorf("no write matching %q in %q", want, writes)
				}
			}
			pool, _ := e.srv.TargetPool(testRegion, namesOf(tc.after).base)
			if len(pool.GetInstances()) != tc.nodesAfter {
				t.Errorf("target pool has %d instances, want %d", len(pool.GetInstances()), tc.nodesAfter)
			}
			if ip := tc.after.Spec.LoadBalancerIP; ip != "" && st.Ingress[0].IP != ip {
				t.Errorf("status IP = %s, want the requested %s", st.Ingress[0].IP, ip)
			}
			e.srv.ResetCalls()
			e.ensure(tc.after, all[:tc.nodesAfter])
			if w := e.writes(); len(w) != 0 {
				t.Errorf("ensure after the update is not idle: %v", w)
			}
		})
	}
}

func TestUpdateLoadBalancerBatchesInstances(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.NodeTags = []string{"k8s-node"}; o.InstanceBatchSize = 2 })
	all := e.nodes(7)
	svc := newService("web")
	e.ensure(svc, all[:1])
	e.srv.ResetCalls()

	if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, all); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	if got := countMatching(e.writes(), "/addInstance"); got != 3 || len(e.writes()) != 3 {
		t.Errorf("adding 6 instances in batches of 2: writes %v, want 3 addInstance calls", e.writes())
	}
	if reads := len(calls) - len(e.writes()); reads != 1+3 {
		t.Errorf("UpdateLoadBalancer made %d reads, want 1 target-pool get and 3 operation waits", reads)
	}
	pool, _ := e.srv.TargetPool(testRegion, namesOf(svc).base)
	if len(pool.GetInstances()) != 7 {
		t.Fatalf("pool has %d instances, want 7", len(pool.GetInstances()))
	}

	e.srv.ResetCalls()
	if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, all[5:]); err != nil {
		t.Fatal(err)
	}
	if got := countMatching(e.writes(), "/removeInstance"); got != 3 || len(e.writes()) != 3 {
		t.Errorf("removing 5 instances in batches of 2: writes %v, want 3 removeInstance calls", e.writes())
	}
	e.srv.ResetCalls()
	if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, all[5:]); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("UpdateLoadBalancer without a node change wrote %v", w)
	}
}

func TestMixedProtocolsShareOneAddress(t *testing.T) {
	e := newTestEnv(t)
	svc := newService("dns", withPorts("53/TCP", "53/UDP", "853/TCP"))
	st := e.ensure(svc, e.nodes(2))
	n := namesOf(svc)
	tcp, ok1 := e.srv.ForwardingRule(testRegion, n.rule(v1.ProtocolTCP))
	udp, ok2 := e.srv.ForwardingRule(testRegion, n.rule(v1.ProtocolUDP))
	if !ok1 || !ok2 {
		t.Fatalf("forwarding rules: tcp=%v udp=%v", ok1, ok2)
	}
	if tcp.GetIPAddress() != st.Ingress[0].IP || udp.GetIPAddress() != st.Ingress[0].IP {
		t.Errorf("rules use %s and %s, want both on %s", tcp.GetIPAddress(), udp.GetIPAddress(), st.Ingress[0].IP)
	}
	if tcp.GetPortRange() != "53-853" || udp.GetPortRange() != "53-53" || udp.GetIPProtocol() != "UDP" {
		t.Errorf("tcp %s %s, udp %s %s", tcp.GetIPProtocol(), tcp.GetPortRange(), udp.GetIPProtocol(), udp.GetPortRange())
	}
	fw, _ := e.srv.Firewall(n.firewall)
	if got := allowedKeys(fw.GetAllowed()); !sameSet(got, []string{"tcp:53", "tcp:853", "udp:53"}) {
		t.Errorf("firewall allows %v", got)
	}
	addr, _ := e.srv.Address(testRegion, n.base)
	if addr.GetStatus() != "IN_USE" || len(addr.GetUsers()) != 2 {
		t.Errorf("address status %s users %v, want IN_USE by both rules", addr.GetStatus(), addr.GetUsers())
	}

	// Dropping UDP deletes only the UDP rule.
	e.srv.ResetCalls()
	e.ensure(newService("dns", withPorts("53/TCP", "853/TCP")), e.nodes(2))
	if _, ok := e.srv.ForwardingRule(testRegion, n.rule(v1.ProtocolUDP)); ok {
		t.Errorf("UDP rule still exists after the UDP port was removed")
	}
	if got := countMatching(e.writes(), "forwardingRules"); got != 1 {
		t.Errorf("dropping UDP made %d forwarding-rule writes (%v), want 1 delete", got, e.writes())
	}
}

func TestNodesOutsideTheRegionOrWithoutProviderIDAreSkipped(t *testing.T) {
	e := newTestEnv(t)
	nodes := e.nodes(2)
	e.srv.AddInstance("europe-west1-b", "far", "k8s-node")
	nodes = append(nodes,
		fixtures.Node("far", fixtures.WithProviderID("gce://"+testProject+"/europe-west1-b/far")),
		fixtures.Node("bare"),
		fixtures.Node("aws", fixtures.WithProviderID("aws:///us-east-1a/i-0123")),
	)
	svc := newService("web")
	e.ensure(svc, nodes)
	pool, _ := e.srv.TargetPool(testRegion, namesOf(svc).base)
	if len(pool.GetInstances()) != 2 {
		t.Errorf("pool instances = %v, want only the two nodes of the region", pool.GetInstances())
	}
}

func TestInstancesWithoutTagsNeedTheFlag(t *testing.T) {
	e := newTestEnv(t)
	e.srv.AddInstance(testZone, "untagged")
	node := fixtures.Node("untagged", fixtures.WithProviderID("gce://"+testProject+"/"+testZone+"/untagged"))
	_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, newService("web"), []*v1.Node{node})
	if err == nil || !strings.Contains(err.Error(), "--gce-node-tags") {
		t.Fatalf("err = %v, want one pointing at --gce-node-tags", err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v before failing", w)
	}
}
