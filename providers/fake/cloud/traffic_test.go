package cloud_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/fake/nodeagent"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/test/loopback"
)

var webSvc = nodeagent.ServicePorts{Name: "default/web", Ports: []nodeagent.Port{
	{Protocol: nodeagent.TCP, NodePort: 30080},
	{Protocol: nodeagent.UDP, NodePort: 30053},
	{Protocol: nodeagent.TCP, NodePort: 30054},
}}

func TestTrafficFlowsThroughVIPToEveryNode(t *testing.T) {
	t.Parallel()
	var vips string
	s := startCloud(t, func(c *cloud.Config) { vips = c.VIPRange })
	nodes := startNodes(t, 3, webSvc)
	c := apiClient{t: t, url: s.URL()}
	// Port 8053 twice: UDP and TCP in one load balancer.
	lb := c.put("web", api.LoadBalancerSpec{
		Ports:    []api.Port{tcpPort(8080, 30080), udpPort(8053, 30053), tcpPort(8053, 30054)},
		Backends: backendsOf(nodes),
	})
	if a, err := netip.ParseAddr(lb.Status.Address); err != nil || !netip.MustParsePrefix(vips).Contains(a) {
		t.Fatalf("address %q not from the VIP range %s", lb.Status.Address, vips)
	}

	t.Run("TCP reaches every node", func(t *testing.T) {
		got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 9)
		for _, n := range nodes {
			if got[n.Name()] != 3 {
				t.Errorf("round robin over 3 nodes: %s answered %d of 9 (all: %v)", n.Name(), got[n.Name()], got)
			}
		}
		if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8053), 3); len(got) != 3 {
			t.Errorf("TCP port 8053 answered by %v, want 3 nodes", got)
		}
	})

	t.Run("TCP bulk bytes echo intact with half-close", func(t *testing.T) {
		conn, r, _, err := dialTCP(t, netip.Addr{}, vipPort(t, lb, 8080))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		payload := make([]byte, 8<<20)
		_, _ = rand.Read(payload)
		errc := make(chan error, 1)
		go func() {
			_, err := conn.Write(payload)
			if err == nil {
				// Half-close: the echo must still come back in full.
				err = conn.CloseWrite()
			}
			errc <- err
		}()
		echoed, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading echo: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("writing: %v", err)
		}
		if !bytes.Equal(echoed, payload) {
			t.Fatalf("echo differs: got %d bytes, want %d", len(echoed), len(payload))
		}
	})

	t.Run("UDP flows get replies from the node", func(t *testing.T) {
		seen := map[string]bool{}
		for i := range 6 {
			reply, err := udpAsk(t, netip.Addr{}, vipPort(t, lb, 8053), "ping", 2*time.Second)
			if err != nil {
				t.Fatalf("UDP %d: %v", i, err)
			}
			node, payload, _ := strings.Cut(reply, "\n")
			if payload != "ping" {
				t.Errorf("reply payload %q, want ping", payload)
			}
			seen[node] = true
		}
		if len(seen) != 3 {
			t.Errorf("6 UDP clients reached %v, want all 3 nodes", seen)
		}
	})
}

func TestRemovedBackendStopsGettingTraffic(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	nodes := startNodes(t, 3, webSvc)
	c := apiClient{t: t, url: s.URL()}
	spec := api.LoadBalancerSpec{Ports: []api.Port{tcpPort(8080, 30080), udpPort(8053, 30053)}, Backends: backendsOf(nodes)}
	lb := c.put("web", spec)
	if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 6); got["node-2"] == 0 {
		t.Fatalf("node-2 got no traffic before removal: %v", got)
	}

	spec.Backends = backendsOf(nodes[:2])
	c.put("web", spec)
	got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 12)
	if got["node-2"] != 0 || got["node-0"] == 0 || got["node-1"] == 0 {
		t.Errorf("after removing node-2: %v, want only node-0 and node-1", got)
	}
	for range 6 {
		reply, err := udpAsk(t, netip.Addr{}, vipPort(t, lb, 8053), "x", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(reply, "node-2\n") {
			t.Errorf("UDP reached removed node-2")
		}
	}
}

func TestFailingTCPHealthCheckStopsTraffic(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	// Traffic goes to 30080 on both nodes; the health check probes 30090,
	// which only node-0 serves at first. node-1's traffic port works, so
	// only the health check can keep traffic away from it.
	probe := nodeagent.ServicePorts{Name: "default/probe", Ports: []nodeagent.Port{{Protocol: nodeagent.TCP, NodePort: 30090}}}
	nodes := startNodes(t, 2, webSvc)
	if err := nodes[0].SetServices([]nodeagent.ServicePorts{webSvc, probe}); err != nil {
		t.Fatal(err)
	}
	c := apiClient{t: t, url: s.URL()}
	lb := c.put("web", api.LoadBalancerSpec{
		Ports:       []api.Port{tcpPort(8080, 30080)},
		Backends:    backendsOf(nodes),
		HealthCheck: fastCheck(api.HealthCheckTCP, 30090),
	})
	c.waitHealthy("web", "node-0")
	if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 8); got["node-0"] != 8 {
		t.Errorf("with node-1 failing its check: %v, want all on node-0", got)
	}

	// node-1 passes, node-0 fails: traffic moves.
	if err := nodes[1].SetServices([]nodeagent.ServicePorts{webSvc, probe}); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].SetServices([]nodeagent.ServicePorts{webSvc}); err != nil {
		t.Fatal(err)
	}
	c.waitHealthy("web", "node-1")
	if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 8); got["node-1"] != 8 {
		t.Errorf("after the checks flipped: %v, want all on node-1", got)
	}

	// No healthy backend: connections are refused, not hung.
	if err := nodes[1].SetServices([]nodeagent.ServicePorts{webSvc}); err != nil {
		t.Fatal(err)
	}
	c.waitHealthy("web")
	if _, _, node, err := dialTCP(t, netip.Addr{}, vipPort(t, lb, 8080)); err == nil {
		t.Errorf("with no healthy backend a connection was answered by %s", node)
	}
}

func TestExternalTrafficPolicyLocalSendsOnlyToNodesWithEndpoints(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	svc := webSvc
	svc.HealthCheckNodePort = 32000
	nodes := startNodes(t, 3, svc)
	nodes[1].SetLocalEndpoints(map[string]int{"default/web": 1})
	c := apiClient{t: t, url: s.URL()}
	lb := c.put("web", api.LoadBalancerSpec{
		Ports:       []api.Port{tcpPort(8080, 30080), udpPort(8053, 30053)},
		Backends:    backendsOf(nodes),
		HealthCheck: fastCheck(api.HealthCheckHTTP, 32000),
	})
	c.waitHealthy("web", "node-1")
	if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 6); got["node-1"] != 6 {
		t.Errorf("only node-1 has an endpoint: %v", got)
	}
	reply, err := udpAsk(t, netip.Addr{}, vipPort(t, lb, 8053), "q", 2*time.Second)
	if err != nil || !strings.HasPrefix(reply, "node-1\n") {
		t.Errorf("UDP reply %q, %v: want from node-1", reply, err)
	}

	nodes[1].SetLocalEndpoints(nil)
	nodes[0].SetLocalEndpoints(map[string]int{"default/web": 2})
	nodes[2].SetLocalEndpoints(map[string]int{"default/web": 1})
	c.waitHealthy("web", "node-0", "node-2")
	got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 8)
	if got["node-1"] != 0 || got["node-0"] != 4 || got["node-2"] != 4 {
		t.Errorf("endpoints moved to node-0 and node-2: %v", got)
	}
}

func TestSourceRangesRefuseOtherClients(t *testing.T) {
	t.Parallel()
	clients := loopback.Reserve(t)
	s := startCloud(t)
	nodes := startNodes(t, 1, webSvc)
	c := apiClient{t: t, url: s.URL()}
	lb := c.put("web", api.LoadBalancerSpec{
		Ports:        []api.Port{tcpPort(8080, 30080), udpPort(8053, 30053)},
		Backends:     backendsOf(nodes),
		SourceRanges: []string{clients.Sub(0, 30).String(), "10.0.0.0/8"},
	})
	allowed, denied := clients.Addr(2), clients.Addr(9)

	if _, _, node, err := dialTCP(t, allowed, vipPort(t, lb, 8080)); err != nil || node != "node-0" {
		t.Errorf("allowed client: node %q, err %v", node, err)
	}
	if _, _, node, err := dialTCP(t, denied, vipPort(t, lb, 8080)); err == nil {
		t.Errorf("client outside the source ranges was answered by %s", node)
	}
	if reply, err := udpAsk(t, allowed, vipPort(t, lb, 8053), "hi", 2*time.Second); err != nil || reply != "node-0\nhi" {
		t.Errorf("allowed UDP client: %q, %v", reply, err)
	}
	if reply, err := udpAsk(t, denied, vipPort(t, lb, 8053), "hi", 300*time.Millisecond); err == nil {
		t.Errorf("UDP client outside the source ranges got %q", reply)
	}
}

func TestSessionAffinityPinsEachClient(t *testing.T) {
	t.Parallel()
	clients := loopback.Reserve(t)
	s := startCloud(t)
	nodes := startNodes(t, 3, webSvc)
	c := apiClient{t: t, url: s.URL()}
	spec := api.LoadBalancerSpec{Ports: []api.Port{tcpPort(8080, 30080)}, Backends: backendsOf(nodes)}
	lb := c.put("web", spec)
	client := clients.Addr(1)
	if got := whoAnswers(t, client, vipPort(t, lb, 8080), 6); len(got) != 3 {
		t.Fatalf("without affinity one client should spread over 3 nodes: %v", got)
	}

	spec.SessionAffinity = &api.SessionAffinity{Type: api.SessionAffinityClientIP, TimeoutSeconds: 60}
	c.put("web", spec)
	pinned := map[string]bool{}
	for i := 1; i <= 3; i++ {
		client := clients.Addr(byte(i + 1))
		got := whoAnswers(t, client, vipPort(t, lb, 8080), 6)
		if len(got) != 1 {
			t.Errorf("client %s spread over %v, want one node", client, got)
		}
		for n := range got {
			pinned[n] = true
		}
	}
	if len(pinned) < 2 {
		t.Errorf("3 clients all pinned to %v: affinity should still balance clients", pinned)
	}
}

func TestUpdateKeepsEstablishedConnections(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	nodes := startNodes(t, 3, webSvc)
	c := apiClient{t: t, url: s.URL()}
	spec := api.LoadBalancerSpec{Ports: []api.Port{tcpPort(8080, 30080), tcpPort(8081, 30054)}, Backends: backendsOf(nodes[:1])}
	lb := c.put("web", spec)
	conn, r, node, err := dialTCP(t, netip.Addr{}, vipPort(t, lb, 8080))
	if err != nil || node != "node-0" {
		t.Fatalf("first connection: %q %v", node, err)
	}
	defer conn.Close()
	echo := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg + "\n")); err != nil {
			t.Fatalf("write after update: %v", err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != msg+"\n" {
			t.Fatalf("echo after update: %q, %v", line, err)
		}
	}
	echo("before")

	// Add backends, a UDP port and a health check, drop port 8081: the
	// established connection to node-0 (still a backend) keeps working.
	spec.Backends = backendsOf(nodes)
	spec.Ports = []api.Port{tcpPort(8080, 30080), udpPort(8053, 30053)}
	spec.SourceRanges = []string{"127.0.0.0/8"}
	c.put("web", spec)
	echo("after first update")
	if _, _, _, err := dialTCP(t, netip.Addr{}, vipPort(t, lb, 8081)); err == nil {
		t.Errorf("removed port 8081 still answers")
	}
	if got := whoAnswers(t, netip.Addr{}, vipPort(t, lb, 8080), 6); len(got) != 3 {
		t.Errorf("new backends not used: %v", got)
	}

	spec.Backends = backendsOf(nodes[:2])
	c.put("web", spec)
	echo("after second update")
}
