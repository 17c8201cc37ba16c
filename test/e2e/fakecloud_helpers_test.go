package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/fake/nodeagent"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/test/loopback"
)

// The fake cloud's end-to-end tests: the controller with --provider=fake on
// a control plane of the test's own, Node objects for simulated nodes whose
// node agents (fake/nodeagent) serve the Services' node ports on loopback,
// and real TCP and UDP traffic through the load balancers' addresses.
// Each test has addresses of its own, loopback blocks (test/loopback) for
// its nodes, its load balancers and its clients.

const fcCluster = "e2e-fake"

// fcNode is a simulated node: a Node object and its agent.
type fcNode struct {
	name  string
	ip    netip.Addr
	agent *nodeagent.Agent
}

// fcStartNodes creates Nodes node-1..count with InternalIPs .1.. of a
// loopback block of their own and starts their agents (closed by
// t.Cleanup).
func fcStartNodes(e *cloudE2E, count int) []*fcNode {
	e.t.Helper()
	lo := loopback.Reserve(e.t)
	var nodes []*fcNode
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("node-%d", i)
		ip := lo.Addr(byte(i))
		agent, err := nodeagent.New(name, ip.String())
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { _ = agent.Close() })
		e.addNode(name, ip.String(), "")
		nodes = append(nodes, &fcNode{name: name, ip: ip, agent: agent})
	}
	return nodes
}

// fcServePorts makes node serve the Service's node ports whose names are
// in portNames (all ports when none are named), and its health-check node
// port.
func fcServePorts(t *testing.T, node *fcNode, svc *v1.Service, portNames ...string) {
	t.Helper()
	sp := nodeagent.ServicePorts{Name: svc.Namespace + "/" + svc.Name, HealthCheckNodePort: int(svc.Spec.HealthCheckNodePort)}
	for _, p := range svc.Spec.Ports {
		if len(portNames) > 0 && !slices.Contains(portNames, p.Name) {
			continue
		}
		if p.NodePort == 0 {
			t.Fatalf("service %s port %s has no node port", sp.Name, p.Name)
		}
		sp.Ports = append(sp.Ports, nodeagent.Port{Protocol: string(p.Protocol), NodePort: int(p.NodePort)})
	}
	if err := node.agent.SetServices([]nodeagent.ServicePorts{sp}); err != nil {
		t.Fatalf("node %s: %v", node.name, err)
	}
}

// fcWaitAddress waits for the Service's ingress IP.
func fcWaitAddress(e *cloudE2E, name string, vips netip.Prefix) netip.Addr {
	e.t.Helper()
	var ip netip.Addr
	e.waitMatch(30*time.Second, "address of "+name, name, func(svc *v1.Service) string {
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Sprintf("no ingress yet; events: %v", events(e.t.Context(), e.admin, e.ns, name))
		}
		var err error
		ip, err = netip.ParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		if err != nil || !vips.Contains(ip) {
			return fmt.Sprintf("ingress %v is not in %s", svc.Status.LoadBalancer.Ingress, vips)
		}
		return ""
	})
	return ip
}

// fcTraffic is what a round of connections or datagrams got: answers per
// node and the number of failures.
type fcTraffic struct {
	nodes    map[string]int
	failures int
	lastErr  error
}

func (r fcTraffic) names() []string { return slices.Sorted(maps.Keys(r.nodes)) }

func (r fcTraffic) String() string {
	return fmt.Sprintf("answers %v, %d failed (last error: %v)", r.nodes, r.failures, r.lastErr)
}

// fcRound runs n exchanges (payload "<i>\n") and counts which node
// answered each.
func fcRound(n int, exchange func(payload string) (string, error)) fcTraffic {
	res := fcTraffic{nodes: map[string]int{}}
	for i := range n {
		node, err := exchange(fmt.Sprintf("%d\n", i))
		if err != nil {
			res.failures++
			res.lastErr = err
			continue
		}
		res.nodes[node]++
	}
	return res
}

// fcTCPRound opens n connections to addr from source (any when invalid),
// each reading the node agent's greeting and checking the echo.
func fcTCPRound(addr netip.AddrPort, source netip.Addr, n int) fcTraffic {
	return fcRound(n, func(payload string) (string, error) { return fcTCPExchange(addr, source, payload) })
}

func fcTCPExchange(addr netip.AddrPort, source netip.Addr, payload string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: source.AsSlice()}
	}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if _, err := io.WriteString(conn, payload); err != nil {
		return "", err
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	echo, err := io.ReadAll(r)
	if err != nil || string(echo) != payload {
		return "", fmt.Errorf("echo %q (%v), want %q", echo, err, payload)
	}
	return strings.TrimSuffix(greeting, "\n"), nil
}

// fcUDPRound sends n datagrams to addr, each from a socket of its own on
// source (so each is a new flow), and reads the node agents' replies.
func fcUDPRound(addr netip.AddrPort, source netip.Addr, n int, timeout time.Duration) fcTraffic {
	return fcRound(n, func(payload string) (string, error) { return fcUDPExchange(addr, source, payload, timeout) })
}

func fcUDPExchange(addr netip.AddrPort, source netip.Addr, payload string, timeout time.Duration) (string, error) {
	var laddr *net.UDPAddr
	if source.IsValid() {
		laddr = &net.UDPAddr{IP: source.AsSlice()}
	}
	conn, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(payload)); err != nil {
		return "", err
	}
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	node, echo, _ := strings.Cut(string(buf[:n]), "\n")
	if echo != payload {
		return "", fmt.Errorf("reply %q does not echo %q", buf[:n], payload)
	}
	return node, nil
}

// fcEventually repeats round (bounded by timeout) until ok accepts its
// result, and fails the test with the last result otherwise.
func fcEventually(t *testing.T, timeout time.Duration, what string, round func() fcTraffic, ok func(fcTraffic) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := round()
		if ok(r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last round: %s", what, timeout, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fcExactly accepts a round answered without failure by exactly nodes.
func fcExactly(nodes ...string) func(fcTraffic) bool {
	return func(r fcTraffic) bool { return r.failures == 0 && slices.Equal(r.names(), nodes) }
}

// fcExpect fails the test unless a round is answered without failure by
// exactly nodes.
func fcExpect(t *testing.T, what string, r fcTraffic, nodes ...string) {
	t.Helper()
	if !fcExactly(nodes...)(r) {
		t.Errorf("%s: %s, want answers from exactly %v and no failure", what, r, nodes)
	}
}

func udpServicePort(name string, port int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: port, Protocol: v1.ProtocolUDP}
}

// fcStandaloneCloud runs a fake cloud as `extlb fake` would, from its
// flags, until the test ends.
func fcStandaloneCloud(t *testing.T, args ...string) *cloud.Server {
	t.Helper()
	cfg := cloud.DefaultConfig()
	fs := pflag.NewFlagSet("fakecloud", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(append([]string{"--fake-listen=127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	srv, err := cloud.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// fcListLoadBalancers lists the fake cloud's load balancers, retrying the
// injected faults (at most 100 times).
func fcListLoadBalancers(t *testing.T, url string) []api.LoadBalancer {
	t.Helper()
	var last string
	for range 100 {
		resp, err := http.Get(url + "/v1/loadbalancers")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var list api.ListResponse
			if err := json.Unmarshal(body, &list); err != nil {
				t.Fatalf("list: %v: %s", err, body)
			}
			return list.Items
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listing load balancers kept failing: %s", last)
	return nil
}

var fcFaultMetric = regexp.MustCompile(`(?m)^extlb_fake_api_injected_faults_total\{kind="(\w+)"\} (\d+)`)

// fcInjectedFaults reads the fake cloud's fault counters from /metrics.
func fcInjectedFaults(t *testing.T, url string) map[string]int {
	t.Helper()
	status, body := httpGet(t, url+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	out := map[string]int{}
	for _, m := range fcFaultMetric.FindAllStringSubmatch(body, -1) {
		out[m[1]], _ = strconv.Atoi(m[2])
	}
	return out
}
