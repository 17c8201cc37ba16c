package cloud_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/cloud"
)

// The processes the benchmarks compare against and through: haproxy, and a
// fake cloud of its own.

// startHAProxy runs haproxy in the foreground with a TCP frontend on listen
// forwarding to backend, with extra lines in the backend section. It returns
// haproxy's pid, 0 when haproxy is not installed.
func startHAProxy(b *testing.B, name string, listen, backend netip.AddrPort, extra string) int {
	b.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return 0
	}
	cfg := fmt.Sprintf(`global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind %s
    default_backend be
backend be
%s    server s1 %s
`, listen, extra, backend)
	path := filepath.Join(b.TempDir(), name+".cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatalf("starting haproxy: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen.String()); err == nil {
			_ = c.Close()
			return cmd.Process.Pid
		}
	}
	b.Fatalf("haproxy (%s) did not start listening on %s", name, listen)
	return 0
}

// benchServerEnv, when set in the environment, makes the test binary run a
// fake cloud (VIP range from the variable) instead of tests: the benchmarks
// run the fake cloud in a process of its own, as haproxy runs in its own and
// as "extlb fake" would, so that the proxy does not share a Go runtime
// and its CPU share with the benchmark's clients and backends.
const benchServerEnv = "EXTLB_FAKECLOUD_BENCH_SERVER"

func TestMain(m *testing.M) {
	if vipRange := os.Getenv(benchServerEnv); vipRange != "" {
		os.Exit(runBenchServer(vipRange))
	}
	os.Exit(m.Run())
}

// runBenchServer serves until its stdin closes (the parent ended), after
// printing the API URL on stdout.
func runBenchServer(vipRange string) int {
	cfg := cloud.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.VIPRange = vipRange
	s, err := cloud.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	return 0
}

// startCloudProcess runs a fake cloud in a child process (this test binary)
// and returns its API URL and pid; the child ends with the benchmark.
func startCloudProcess(b *testing.B, vipRange string) (string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+vipRange)
	cmd.Stderr = io.Discard
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the fake cloud process: %v", err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("fake cloud process gave no URL: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}
