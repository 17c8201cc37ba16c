package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/test/loopback"
)

func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// controlPlaneBinaries finds or builds the control plane, skipping the test
// when that is impossible (failing instead under EXTLB_REQUIRE_CONTROLPLANE).
func controlPlaneBinaries(t *testing.T) cluster.Binaries {
	bins, err := cluster.EnsureBinaries(t.Context(), os.Stderr)
	if err != nil {
		if os.Getenv(clustertest.EnvRequire) != "" {
			t.Fatalf("control-plane binaries: %v", err)
		}
		t.Skipf("control-plane binaries cannot be built (run `make controlplane`): %v", err)
	}
	return bins
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func receive[T any](t *testing.T, ch <-chan T, done <-chan error, timeout time.Duration, what string, out *syncBuffer) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case err := <-done:
		t.Fatalf("demo ended before %s: %v\noutput:\n%s", what, err, out)
	case <-time.After(timeout):
		t.Fatalf("no %s within %s\noutput:\n%s", what, timeout, out)
	}
	panic("unreachable")
}

// TestDemoServesExamplesAndNewServices runs the demo's core against a real
// control plane: every example Service gets an address from the VIP range,
// each of its TCP and UDP ports answers all traffic, the Local Service only
// from its endpoint node and the others from several nodes; a Service added
// through the written kubeconfig is picked up and answers too; cancelling
// stops everything and removes the control plane and the kubeconfig.
func TestDemoServesExamplesAndNewServices(t *testing.T) {
	bins := controlPlaneBinaries(t)
	// Nodes and VIPs on loopback blocks of the test's own (test/loopback):
	// the nodes serve fixed node ports, the VIPs fixed Service ports.
	testFirstNode, testVIPs := loopback.Reserve(t).Addr(1), loopback.Reserve(t).Prefix()
	root := repoRoot(t)
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out := &syncBuffer{}
	started := make(chan Info, 1)
	examples := make(chan []Row, 1)
	services := make(chan Row, 16)
	opts := Options{
		ExamplesDir:         filepath.Join(root, "manifests", "examples"),
		ControllerManifests: filepath.Join(root, "manifests", "controller"),
		KubeconfigOut:       filepath.Join(t.TempDir(), "demo", "kubeconfig"),
		FirstNodeIP:         testFirstNode,
		VIPRange:            testVIPs,
		HealthCheckInterval: 200 * time.Millisecond,
		ReadyTimeout:        60 * time.Second,
		Probe:               ProbeOptions{Connections: 6, Datagrams: 6, Timeout: 2 * time.Second, Warmup: 15 * time.Second},
		Out:                 out,
		Progress:            os.Stderr,
		Logger:              &logger,
		Binaries:            bins,
		Hooks: Hooks{
			Started:  func(i Info) { started <- i },
			Examples: func(r []Row) { examples <- r },
			Service:  func(r Row) { services <- r },
		},
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()

	info := receive(t, started, done, 60*time.Second, "start", out)
	rows := receive(t, examples, done, 90*time.Second, "example table", out)
	t.Logf("demo output:\n%s", out)

	want := []string{"default/web", "default/dns", "default/web-local", "default/game"}
	var got []string
	for _, r := range rows {
		got = append(got, r.Service)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("table rows %v, want %v", got, want)
	}
	protocols := map[string]bool{}
	for _, r := range rows {
		ip, err := netip.ParseAddr(r.ExternalIP)
		if err != nil || !testVIPs.Contains(ip) {
			t.Errorf("%s: external IP %q, want an address of %s", r.Service, r.ExternalIP, testVIPs)
		}
		if len(r.Ports) == 0 {
			t.Errorf("%s: no port probed", r.Service)
		}
		for _, p := range r.Ports {
			protocols[p.Protocol] = true
			if p.Sent != 6 || p.Failed != 0 {
				t.Errorf("%s %d/%s: %d of %d exchanges failed (last: %s)", r.Service, p.Port, p.Protocol, p.Failed, p.Sent, p.LastError)
			}
			nodes := p.Nodes()
			if r.Service == "default/web-local" {
				if r.EndpointNode == "" || !slices.Equal(nodes, []string{r.EndpointNode}) {
					t.Errorf("%s %d/%s (externalTrafficPolicy: Local, endpoint on %q) answered from %v, want only the endpoint node", r.Service, p.Port, p.Protocol, r.EndpointNode, nodes)
				}
			} else if len(nodes) < 2 {
				t.Errorf("%s %d/%s answered from %v, want more than one node", r.Service, p.Port, p.Protocol, nodes)
			}
		}
	}
	if !protocols["TCP"] || !protocols["UDP"] {
		t.Errorf("the examples probed protocols %v, want TCP and UDP", protocols)
	}
	for _, s := range append([]string{"SERVICE", "EXTERNAL-IP", "PORTS", "NODES THAT ANSWERED"}, want...) {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed table lacks %q", s)
		}
	}

	// A Service the user adds with the written kubeconfig is picked up.
	cfg, err := clientcmd.BuildConfigFromFlags("", info.Kubeconfig)
	if err != nil {
		t.Fatalf("loading the demo's kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hello := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "hello"},
			Ports:    []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 9090}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, hello, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Service hello: %v", err)
	}
	var row Row
	for row.Service != "default/hello" {
		row = receive(t, services, done, 60*time.Second, "report of the new Service default/hello", out)
	}
	if ip, err := netip.ParseAddr(row.ExternalIP); err != nil || !testVIPs.Contains(ip) {
		t.Errorf("hello: external IP %q, want an address of %s", row.ExternalIP, testVIPs)
	}
	if p, ok := row.Port(9090, "TCP"); !ok || p.Failed != 0 || p.Sent != 6 || len(p.Nodes()) < 2 {
		t.Errorf("hello 9090/TCP: %+v, want 6 answers from more than one node", p)
	}
	if !strings.Contains(out.String(), "Service default/hello has address "+row.ExternalIP) {
		t.Errorf("the new Service was not printed; output:\n%s", out)
	}

	svc, err := client.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	helloNodePort := svc.Spec.Ports[0].NodePort

	// Cancel: everything stops and the control plane is gone.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s of the cancel")
	}
	if _, err := os.Stat(info.ControlPlaneDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control-plane directory %s still there (stat: %v)", info.ControlPlaneDir, err)
	}
	for _, pid := range info.ControlPlanePIDs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("control-plane process %d still exists (kill -0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(info.Kubeconfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubeconfig %s still there (stat: %v)", info.Kubeconfig, err)
	}
	apiHost := strings.TrimPrefix(info.APIServer, "https://")
	if c, err := net.DialTimeout("tcp", apiHost, time.Second); err == nil {
		c.Close()
		t.Errorf("the API server %s still accepts connections", apiHost)
	}
	for _, n := range info.Nodes {
		addr := netip.AddrPortFrom(n.IP, uint16(helloNodePort)).String()
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("node agent %s still serves hello's node port %s", n.Name, addr)
		}
	}
	// The in-process fake cloud closes its listeners as its context ends.
	vip := net.JoinHostPort(row.ExternalIP, "9090")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", vip, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Errorf("load balancer %s still accepts connections 5s after the demo stopped", vip)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "control plane removed") {
		t.Errorf("shutdown not reported; output:\n%s", out)
	}
}

// TestDemoRefusesBadInputBeforeStarting: missing manifests and bad
// addresses are reported naming the flag, before any control plane starts.
func TestDemoRefusesBadInputBeforeStarting(t *testing.T) {
	root := repoRoot(t)
	examples := filepath.Join(root, "manifests", "examples")
	empty := t.TempDir()
	for _, tc := range []struct {
		desc string
		opts Options
		want string
	}{
		{desc: "missing examples directory", opts: Options{ExamplesDir: filepath.Join(empty, "nope")}, want: "--examples"},
		{desc: "examples without kustomization", opts: Options{ExamplesDir: empty}, want: "no kustomization.yaml"},
		{desc: "missing controller manifests", opts: Options{ExamplesDir: examples, ControllerManifests: filepath.Join(empty, "nope")}, want: "--controller-manifests"},
		{desc: "node address off loopback", opts: Options{ExamplesDir: examples, FirstNodeIP: netip.MustParseAddr("192.0.2.1")}, want: "--node-ip 192.0.2.1: must be an IPv4 loopback"},
		{desc: "nodes running off loopback", opts: Options{ExamplesDir: examples, FirstNodeIP: netip.MustParseAddr("127.255.255.254"), Nodes: 3}, want: "would leave 127.0.0.0/8"},
		{desc: "VIP range off loopback", opts: Options{ExamplesDir: examples, VIPRange: netip.MustParsePrefix("198.51.100.0/24")}, want: "--vip-range 198.51.100.0/24: must be inside 127.0.0.0/8"},
		{desc: "VIP range over the nodes", opts: Options{ExamplesDir: examples, VIPRange: netip.MustParsePrefix("127.0.0.0/16")}, want: "overlaps the node addresses"},
		{desc: "too many nodes", opts: Options{ExamplesDir: examples, Nodes: 51}, want: "--nodes"},
		{desc: "health checks too often", opts: Options{ExamplesDir: examples, HealthCheckInterval: time.Millisecond}, want: "--health-check-interval"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := &syncBuffer{}
			tc.opts.Out = out
			// No binaries given: had Run got as far as starting a control
			// plane, it would say so on out.
			err := Run(t.Context(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(out.String(), "Starting") {
				t.Errorf("Run started something before refusing: %s", out)
			}
		})
	}
}
