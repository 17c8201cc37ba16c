package fake

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	cloudapi "k8s.io/cloud-provider/api"

	"github.com/extlb/extlb/fake/nodeagent"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/test/fixtures"
	"github.com/extlb/extlb/test/loopback"
)

// Tests here put nodes and VIPs on loopback blocks of their own
// (test/loopback): no other test, nor another run, listens there.

func buildProvider(t *testing.T, ctx context.Context, args ...string) *Provider {
	t.Helper()
	b := NewBuilder()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	b.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Build(ctx, providers.Env{ClusterName: "test"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return lb.(*Provider)
}

// startAgents starts count node agents on .1, .2, ... of a loopback block
// of their own.
func startAgents(t *testing.T, count int, svc nodeagent.ServicePorts) ([]*nodeagent.Agent, []*v1.Node) {
	t.Helper()
	lo := loopback.Reserve(t)
	var agents []*nodeagent.Agent
	var nodes []*v1.Node
	for i := range count {
		name, ip := fmt.Sprintf("node-%d", i), lo.IP(byte(i+1))
		a, err := nodeagent.New(name, ip)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if err := a.SetServices([]nodeagent.ServicePorts{svc}); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
		nodes = append(nodes, fixtures.Node(name, fixtures.WithInternalIP(ip)))
	}
	return agents, nodes
}

// answeringNodes opens count connections to ip:port and counts greetings.
func answeringNodes(t *testing.T, ip string, port, count int) map[string]int {
	t.Helper()
	got, err := tryAnswering(ip, port, count)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tryAnswering is answeringNodes returning the first failure.
func tryAnswering(ip string, port, count int) (map[string]int, error) {
	got := map[string]int{}
	for range count {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), 2*time.Second)
		if err != nil {
			return nil, fmt.Errorf("dial %s:%d: %w", ip, port, err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if err != nil {
			return nil, fmt.Errorf("read greeting via %s:%d: %w", ip, port, err)
		}
		got[strings.TrimSpace(line)]++
	}
	return got, nil
}

var webPorts = nodeagent.ServicePorts{Name: "default/web", Ports: []nodeagent.Port{
	{Protocol: nodeagent.TCP, NodePort: 31080}, {Protocol: nodeagent.UDP, NodePort: 31053},
}}

func webService() *v1.Service {
	return newService("web", withPort("http", v1.ProtocolTCP, 8080, 31080), withPort("dns", v1.ProtocolUDP, 8053, 31053))
}

func TestEmbeddedCloudServesServiceEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vips := loopback.Reserve(t)
	p := buildProvider(t, ctx, "--fake-vip-range="+vips.String(), "--fake-health-check-interval=50ms")
	_, nodes := startAgents(t, 2, webPorts)
	svc := webService()

	if _, exists, err := p.GetLoadBalancer(ctx, "test", svc); err != nil || exists {
		t.Fatalf("before Ensure: exists %v, err %v", exists, err)
	}
	st, err := p.EnsureLoadBalancer(ctx, "test", svc, nodes)
	if err != nil {
		t.Fatalf("EnsureLoadBalancer: %v", err)
	}
	if len(st.Ingress) != 1 || !vips.Prefix().Contains(netip.MustParseAddr(st.Ingress[0].IP)) || *st.Ingress[0].IPMode != v1.LoadBalancerIPModeProxy {
		t.Fatalf("status %+v", st)
	}
	ip := st.Ingress[0].IP
	again, err := p.EnsureLoadBalancer(ctx, "test", svc, nodes)
	if err != nil || again.Ingress[0].IP != ip {
		t.Fatalf("second Ensure: %+v, %v (idempotent, same address)", again, err)
	}

	// Health checks (TCP on the node port) pass on both nodes: both answer.
	waitFor(t, func() bool {
		got, err := tryAnswering(ip, 8080, 4)
		return err == nil && len(got) == 2
	}, "both nodes answering through the VIP")

	if err := p.UpdateLoadBalancer(ctx, "test", svc, nodes[1:]); err != nil {
		t.Fatalf("UpdateLoadBalancer: %v", err)
	}
	if got := answeringNodes(t, ip, 8080, 4); got["node-1"] != 4 {
		t.Errorf("after dropping node-0: %v", got)
	}

	got, exists, err := p.GetLoadBalancer(ctx, "test", svc)
	if err != nil || !exists || got.Ingress[0].IP != ip {
		t.Errorf("GetLoadBalancer: %+v %v %v", got, exists, err)
	}
	if err := p.EnsureLoadBalancerDeleted(ctx, "test", svc); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := p.EnsureLoadBalancerDeleted(ctx, "test", svc); err != nil {
		t.Errorf("delete of a deleted load balancer: %v", err)
	}
	if _, exists, err := p.GetLoadBalancer(ctx, "test", svc); err != nil || exists {
		t.Errorf("after delete: exists %v, err %v", exists, err)
	}
	if _, err := net.DialTimeout("tcp", ip+":8080", time.Second); err == nil {
		t.Errorf("VIP still listening after delete")
	}

	// The embedded cloud stops with the context.
	endpoint := p.Endpoint()
	cancel()
	waitFor(t, func() bool {
		_, err := http.Get(endpoint + "/healthz")
		return err != nil
	}, "embedded fake cloud stopping")
}

func TestLocalPolicyReachesOnlyNodesWithEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := buildProvider(t, ctx, "--fake-vip-range="+loopback.Reserve(t).String(), "--fake-health-check-interval=50ms")
	svcPorts := webPorts
	svcPorts.HealthCheckNodePort = 32027
	agents, nodes := startAgents(t, 3, svcPorts)
	agents[2].SetLocalEndpoints(map[string]int{"default/web": 1})
	svc := newService("web", withPort("http", v1.ProtocolTCP, 8080, 31080), fixtures.WithLocalPolicy(32027))
	st, err := p.EnsureLoadBalancer(ctx, "test", svc, nodes)
	if err != nil {
		t.Fatal(err)
	}
	ip := st.Ingress[0].IP
	// Until the first probes answer no backend is healthy: connections are
	// reset, so tolerate failures while waiting.
	waitFor(t, func() bool {
		got, err := tryAnswering(ip, 8080, 3)
		return err == nil && got["node-2"] == 3
	}, "only node-2 (the one with an endpoint) answering")
	if got := answeringNodes(t, ip, 8080, 9); got["node-2"] != 9 {
		t.Errorf("nodes without endpoints got traffic: %v", got)
	}
	agents[2].SetLocalEndpoints(nil)
	agents[0].SetLocalEndpoints(map[string]int{"default/web": 1})
	waitFor(t, func() bool {
		got, err := tryAnswering(ip, 8080, 3)
		return err == nil && got["node-0"] == 3
	}, "traffic following the endpoint to node-0")
	if got := answeringNodes(t, ip, 8080, 9); got["node-0"] != 9 {
		t.Errorf("after the move: %v", got)
	}
}

func TestBadServiceCreatesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := buildProvider(t, ctx, "--fake-vip-range="+loopback.Reserve(t).String())
	svc := newService("web", withPort("http", v1.ProtocolTCP, 8080, 31080), withPort("sctp", v1.ProtocolSCTP, 90, 31090))
	_, err := p.EnsureLoadBalancer(ctx, "test", svc, nil)
	if ie, ok := providers.IsInputError(err); !ok || ie.Field != "spec.ports[1].protocol" {
		t.Fatalf("error %v, want InputError on spec.ports[1].protocol", err)
	}
	if _, exists, err := p.GetLoadBalancer(ctx, "test", svc); exists || err != nil {
		t.Errorf("load balancer exists after a rejected Service: %v %v", exists, err)
	}
}

func TestServer400BecomesInputErrorOnServiceField(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := buildProvider(t, ctx, "--fake-vip-range="+loopback.Reserve(t).String())
	// Bypass the provider's own checks to see the server's answer mapped.
	_, err := p.api.putLoadBalancer(ctx, "web", api.LoadBalancerSpec{Ports: []api.Port{
		{Protocol: "TCP", Port: 80, BackendPort: 30080},
		{Protocol: "TCP", Port: 81, BackendPort: 0},
	}})
	ie, ok := providers.IsInputError(err)
	if !ok {
		t.Fatalf("error %v is not an InputError", err)
	}
	if ie.Field != "spec.ports[1].nodePort" || !strings.Contains(ie.Reason, "spec.ports[1].backendPort") {
		t.Errorf("InputError %q / %q, want field spec.ports[1].nodePort naming the API field", ie.Field, ie.Reason)
	}
}

func startFaultyCloud(t *testing.T, faults api.Faults, token string) *cloud.Server {
	t.Helper()
	cfg := cloud.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.VIPRange = loopback.Reserve(t).String()
	cfg.Faults = faults
	cfg.Token = token
	cfg.Seed = 42
	s, err := cloud.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConvergesThroughInjectedErrorsAndThrottling(t *testing.T) {
	s := startFaultyCloud(t, api.Faults{ErrorRate: 0.3, ThrottleRate: 0.2, RetryAfterSeconds: 1}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Few client retries, so that the controller-style loop below also sees
	// errors and RetryErrors, as it would in a cluster.
	p := buildProvider(t, ctx, "--fake-endpoint="+s.URL(), "--fake-max-retries=1", "--fake-retry-wait-min=10ms", "--fake-retry-wait-max=50ms")
	_, nodes := startAgents(t, 2, webPorts)

	var calls, retryErrors int
	var lastIP string
	// Converge 5 Services, as a controller would: retry after RetryError's
	// delay, back off briefly on other errors.
	for i := range 5 {
		svc := webService()
		svc.Name = fmt.Sprintf("web-%d", i)
		svc.UID = svcUID(i)
		for {
			if ctx.Err() != nil {
				t.Fatalf("service %s did not converge in time (%d calls)", svc.Name, calls)
			}
			calls++
			st, err := p.EnsureLoadBalancer(ctx, "test", svc, nodes)
			if err == nil {
				if len(st.Ingress) != 1 {
					t.Fatalf("status %+v", st)
				}
				lastIP = st.Ingress[0].IP
				break
			}
			var re *cloudapi.RetryError
			if errors.As(err, &re) {
				retryErrors++
				if re.RetryAfter() <= 0 {
					t.Fatalf("RetryError with no delay: %v", err)
				}
				time.Sleep(re.RetryAfter())
				continue
			}
			if _, bad := providers.IsInputError(err); bad {
				t.Fatalf("input error under injected faults: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, kind := range []string{"error", "throttle"} {
		if !strings.Contains(string(metrics), `extlb_fake_api_injected_faults_total{kind="`+kind+`"}`) {
			t.Errorf("no %s fault was injected: the test proved nothing", kind)
		}
	}
	t.Logf("5 services converged in %d Ensure calls, %d RetryErrors", calls, retryErrors)

	// The last one forwards traffic: faults hit the API, not the data plane.
	if len(lastIP) == 0 {
		t.Fatal("no address")
	}
	waitFor(t, func() bool {
		got, err := tryAnswering(lastIP, 8080, 4)
		return err == nil && len(got) == 2
	}, "traffic through the last load balancer")
}

func svcUID(i int) types.UID {
	return types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
}

// TestOutageGivesRetryErrorWithoutWaitingPastDeadline: the outage's
// Retry-After (the rest of 20 s) is past the call's deadline (10 s), so the
// call returns a RetryError at once instead of sleeping into its deadline.
// That it returned before the deadline is what the test checks, not how
// fast: had it waited, it would have ended with the context's error at the
// deadline.
func TestOutageGivesRetryErrorWithoutWaitingPastDeadline(t *testing.T) {
	const outage = 20 * time.Second
	outageStart := time.Now() // no later than the server's start, where the outage begins
	s := startFaultyCloud(t, api.Faults{Outages: []api.Outage{{DurationMillis: int(outage / time.Millisecond)}}}, "")
	p := buildProvider(t, context.Background(), "--fake-endpoint="+s.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.EnsureLoadBalancer(ctx, "test", webService(), nil)
	if ctx.Err() != nil {
		t.Fatalf("the call ran into its deadline (%v): it waited for a Retry-After past the deadline", err)
	}
	var re *cloudapi.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a RetryError", err)
	}
	// The server rounds the rest of the outage up to whole seconds.
	if rest := outage - time.Since(outageStart); re.RetryAfter() < rest || re.RetryAfter() > outage {
		t.Errorf("RetryAfter %v, want the rest of the %v outage (at least %v)", re.RetryAfter(), outage, rest)
	}
}

func TestThrottlingRetriedWithinDeadline(t *testing.T) {
	s := startFaultyCloud(t, api.Faults{}, "")
	p := buildProvider(t, context.Background(), "--fake-endpoint="+s.URL())
	// Throttle everything, then lift it after 1.5 s: the client's retries
	// (Retry-After: 1) carry the call through within its 10 s deadline.
	setFaults(t, s.URL(), `{"throttleRate":1,"retryAfterSeconds":1}`)
	time.AfterFunc(1500*time.Millisecond, func() { setFaults(t, s.URL(), `{}`) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := p.EnsureLoadBalancer(ctx, "test", webService(), nil); err != nil {
		t.Fatalf("Ensure through throttling: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("succeeded after %v: it did not honour Retry-After", d)
	}
}

func setFaults(t *testing.T, base, body string) {
	req, err := http.NewRequest(http.MethodPut, base+"/v1/faults", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("PUT /v1/faults: %d", resp.StatusCode)
	}
}

func TestTokenIsSent(t *testing.T) {
	s := startFaultyCloud(t, api.Faults{}, "tok")
	ctx := context.Background()
	good := buildProvider(t, ctx, "--fake-endpoint="+s.URL(), "--fake-token=tok")
	if _, _, err := good.GetLoadBalancer(ctx, "test", webService()); err != nil {
		t.Errorf("with the token: %v", err)
	}
	bad := buildProvider(t, ctx, "--fake-endpoint="+s.URL(), "--fake-token=nope")
	if _, _, err := bad.GetLoadBalancer(ctx, "test", webService()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("with a wrong token: %v, want a 401 error", err)
	}
}

func TestBuildRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct{ desc, flag, want string }{
		{"endpoint not a URL", "--fake-endpoint=localhost:8470", "--fake-endpoint"},
		{"negative retries", "--fake-max-retries=-1", "--fake-max-retries"},
		{"tiny interval", "--fake-health-check-interval=1ms", "--fake-health-check-interval"},
		{"embedded not loopback", "--fake-listen=0.0.0.0:0", "--fake-listen"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := NewBuilder()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			b.AddFlags(fs)
			if err := fs.Parse([]string{tc.flag}); err != nil {
				t.Fatal(err)
			}
			_, err := b.Build(context.Background(), providers.Env{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	c := providers.CapabilitiesOf(&Provider{})
	if !c.TargetsNodePorts || c.IPMode != v1.LoadBalancerIPModeProxy {
		t.Errorf("capabilities %+v", c)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
