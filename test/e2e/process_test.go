package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/test/loopback"
)

// TestControllerProcessKilledAndRestarted runs the real binaries: `extlb
// fake` as one process and `extlb controller --provider=fake` against
// it as another, under the manifests' ServiceAccount, with JSON logs. The
// controller is killed with SIGKILL while load balancers are being created
// (the fake cloud answers each call after 700 ms), then started again: every
// Service converges with exactly one load balancer, and deleting them leaves
// none in the fake cloud.
func TestControllerProcessKilledAndRestarted(t *testing.T) {
	c := clustertest.Start(t)
	e := setUp(t, c)
	bin := buildExtlb(t)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, e.cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CoreV1().Nodes().Create(t.Context(), newNode("node-1", loopback.Reserve(t).IP(1), nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cloudAddr := freeAddr(t)
	startProcess(t, bin, "fake", "--fake-listen="+cloudAddr, "--fake-vip-range="+loopback.Reserve(t).String(), "--fake-latency=700ms")
	cloudURL := "http://" + cloudAddr
	eventually(t, 20*time.Second, "fake cloud up", func(context.Context) (bool, string) {
		code, body := httpGet(t, cloudURL+"/healthz")
		return code == 200, body
	})
	controllerArgs := []string{"controller", "--kubeconfig=" + kubeconfig, "--provider=fake", "--fake-endpoint=" + cloudURL,
		"--load-balancer-class=" + e.class, "--default-class=false", "--cluster-name=e2e-proc", "--workers=2",
		"--metrics-bind-address=" + freeAddr(t), "--min-retry-delay=200ms", "--logging-format=json"}
	first := startProcess(t, bin, controllerArgs...)

	const n = 6
	for i := range n {
		createService(t, e.admin, newService(e.ns, fmt.Sprintf("svc-%d", i), e.class))
	}
	eventually(t, 30*time.Second, "some load balancers exist, not all", func(context.Context) (bool, string) {
		lbs := len(fcListLoadBalancers(t, cloudURL))
		return lbs >= 1 && lbs < n, fmt.Sprintf("%d load balancers", lbs)
	})
	first.kill(t)
	served := 0
	for i := range n {
		svc, err := getService(t.Context(), e.admin, e.ns, fmt.Sprintf("svc-%d", i))
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			served++
		}
	}
	t.Logf("killed the controller with %d of %d Services served", served, n)

	startProcess(t, bin, controllerArgs...)
	eventually(t, 60*time.Second, "every Service served after the restart", func(ctx context.Context) (bool, string) {
		for i := range n {
			svc, err := getService(ctx, e.admin, e.ns, fmt.Sprintf("svc-%d", i))
			if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
				return false, fmt.Sprintf("svc-%d not served (%v)", i, err)
			}
		}
		return true, ""
	})
	lbs := fcListLoadBalancers(t, cloudURL)
	if len(lbs) != n {
		t.Fatalf("fake cloud holds %d load balancers for %d Services: duplicates or leaks", len(lbs), n)
	}
	addresses := map[string]bool{}
	for _, lb := range lbs {
		addresses[lb.Status.Address] = true
	}
	for i := range n {
		svc, _ := getService(t.Context(), e.admin, e.ns, fmt.Sprintf("svc-%d", i))
		if ip := svc.Status.LoadBalancer.Ingress[0].IP; !addresses[ip] {
			t.Errorf("svc-%d has address %s, which no load balancer in the fake cloud has", i, ip)
		}
	}

	for i := range n {
		if err := e.admin.CoreV1().Services(e.ns).Delete(t.Context(), fmt.Sprintf("svc-%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "Services and load balancers gone", func(ctx context.Context) (bool, string) {
		for i := range n {
			if _, err := getService(ctx, e.admin, e.ns, fmt.Sprintf("svc-%d", i)); !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("svc-%d still there (%v)", i, err)
			}
		}
		left := len(fcListLoadBalancers(t, cloudURL))
		return left == 0, fmt.Sprintf("%d load balancers left", left)
	})
	if lines := first.jsonLines(); lines == 0 {
		t.Errorf("the controller wrote no JSON log lines with --logging-format=json:\n%s", first.output())
	}
}

// buildExtlb builds bin/extlb for the test, as `make build` would.
func buildExtlb(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "extlb")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", out, "./cmd/extlb")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/extlb: %v\n%s", err, b)
	}
	return out
}

// process is an extlb process the test started; it is killed when the test
// ends.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", bin, args[0], err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { _ = p.cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("output of extlb %s:\n%s", args[0], tail(p.output(), 40))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *process) kill(t *testing.T) {
	_ = p.cmd.Process.Signal(os.Kill)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("process %d did not end after SIGKILL", p.cmd.Process.Pid)
	}
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// jsonLines counts output lines that are JSON log records.
func (p *process) jsonLines() int {
	n := 0
	for _, line := range strings.Split(p.output(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] != nil {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
