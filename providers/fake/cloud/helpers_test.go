package cloud_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/fake/nodeagent"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/test/loopback"
)

// Each test uses addresses of its own: startCloud takes the VIPs from a
// loopback block it reserves (test/loopback), startNodes puts the nodes on
// another, and a test that needs clients at given addresses reserves a
// block for them.

func startCloud(t testing.TB, tweaks ...func(*cloud.Config)) *cloud.Server {
	t.Helper()
	cfg := cloud.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.VIPRange = loopback.Reserve(t).String()
	cfg.UDPIdleTimeout = 2 * time.Second
	for _, tw := range tweaks {
		tw(&cfg)
	}
	s, err := cloud.New(cfg)
	if err != nil {
		t.Fatalf("cloud.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// startNodes starts node agents node-0, node-1, ... on .1, .2, ... of a
// loopback block of their own, each serving svcs.
func startNodes(t testing.TB, count int, svcs ...nodeagent.ServicePorts) []*nodeagent.Agent {
	t.Helper()
	lo := loopback.Reserve(t)
	var agents []*nodeagent.Agent
	for i := range count {
		a, err := nodeagent.New(fmt.Sprintf("node-%d", i), lo.IP(byte(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if err := a.SetServices(svcs); err != nil {
			t.Fatalf("SetServices: %v", err)
		}
		agents = append(agents, a)
	}
	return agents
}

func backendsOf(agents []*nodeagent.Agent) []api.Backend {
	var bs []api.Backend
	for _, a := range agents {
		bs = append(bs, api.Backend{Name: a.Name(), Address: a.IP().String()})
	}
	return bs
}

type apiClient struct {
	t     testing.TB
	url   string
	token string
}

func (c apiClient) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// put creates or updates a load balancer and returns it; it fails the test
// unless the answer is 200 or 201.
func (c apiClient) put(name string, spec api.LoadBalancerSpec) api.LoadBalancer {
	c.t.Helper()
	code, data := c.do(http.MethodPut, "/v1/loadbalancers/"+name, api.LoadBalancer{Spec: spec})
	if code != http.StatusOK && code != http.StatusCreated {
		c.t.Fatalf("PUT %s: %d %s", name, code, data)
	}
	var lb api.LoadBalancer
	if err := json.Unmarshal(data, &lb); err != nil {
		c.t.Fatal(err)
	}
	return lb
}

func (c apiClient) get(name string) api.LoadBalancer {
	c.t.Helper()
	code, data := c.do(http.MethodGet, "/v1/loadbalancers/"+name, nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", name, code, data)
	}
	var lb api.LoadBalancer
	if err := json.Unmarshal(data, &lb); err != nil {
		c.t.Fatal(err)
	}
	return lb
}

// waitHealthy waits until exactly the named backends are healthy.
func (c apiClient) waitHealthy(name string, healthy ...string) {
	c.t.Helper()
	want := map[string]bool{}
	for _, h := range healthy {
		want[h] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	var last []api.BackendStatus
	for time.Now().Before(deadline) {
		last = c.get(name).Status.Backends
		ok := true
		for _, b := range last {
			if b.Healthy != want[b.Name] {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("backends of %s never became exactly %v healthy: %+v", name, healthy, last)
}

// dialTCP connects to addr from src (zero: any) and returns the connection
// and the node name it greeted with.
func dialTCP(t *testing.T, src netip.Addr, addr netip.AddrPort) (*net.TCPConn, *bufio.Reader, string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		_ = c.Close()
		return nil, nil, "", err
	}
	return c.(*net.TCPConn), r, strings.TrimSuffix(line, "\n"), nil
}

// whoAnswers opens count connections and returns how many each node answered.
func whoAnswers(t *testing.T, src netip.Addr, addr netip.AddrPort, count int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range count {
		c, _, node, err := dialTCP(t, src, addr)
		if err != nil {
			t.Fatalf("connection to %s: %v", addr, err)
		}
		_ = c.Close()
		got[node]++
	}
	return got
}

// udpAsk sends payload to addr from src and returns the reply.
func udpAsk(t *testing.T, src netip.Addr, addr netip.AddrPort, payload string, wait time.Duration) (string, error) {
	t.Helper()
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func vipPort(t *testing.T, lb api.LoadBalancer, port int) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddr(lb.Status.Address)
	if err != nil {
		t.Fatalf("load balancer %s has no address: %+v", lb.Name, lb.Status)
	}
	return netip.AddrPortFrom(a, uint16(port))
}

func tcpPort(port, backend int) api.Port {
	return api.Port{Protocol: api.ProtocolTCP, Port: port, BackendPort: backend}
}

func udpPort(port, backend int) api.Port {
	return api.Port{Protocol: api.ProtocolUDP, Port: port, BackendPort: backend}
}

func fastCheck(kind string, port int) *api.HealthCheck {
	return &api.HealthCheck{Type: kind, Port: port, IntervalMillis: 50, TimeoutMillis: 40, HealthyThreshold: 2, UnhealthyThreshold: 2}
}
