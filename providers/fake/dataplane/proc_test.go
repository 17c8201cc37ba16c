package dataplane

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/api"
)

// The read(2) counts of TestTCPForwardingUsesSplice and
// TestSmallMessagesAreRelayedThroughTheBuffer are a process's (rchar in
// /proc/<pid>/io). Measured in the test process they would include whatever
// else the process reads meanwhile — the backend, the client, goroutines
// of other tests — so the proxy under test runs in a child process of its
// own (this test binary, started with childEnv set), and only the child's
// count is read.

// childEnv, when set in the environment, makes the test binary run the
// proxy described by the variable (a JSON childConfig) instead of tests.
const childEnv = "EXTLB_DATAPLANE_TEST_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// childConfig is what a child proxy runs: a Balancer ("balancer") or, as
// the control, a relay that copies in user space ("relay"), listening on
// Listen and forwarding to Backend.
type childConfig struct {
	Mode    string
	Listen  netip.AddrPort
	Backend netip.AddrPort
}

// runChild serves cfg until stdin closes (the test ended), after writing
// "ready" on stdout.
func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch cfg.Mode {
	case "balancer":
		b, err := New(context.Background(), "child", cfg.Listen.Addr(), api.LoadBalancerSpec{
			Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: int(cfg.Listen.Port()), BackendPort: int(cfg.Backend.Port())}},
			Backends: []api.Backend{{Name: "n", Address: cfg.Backend.Addr().String()}},
		}, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer b.Close()
	case "relay":
		ln, err := net.Listen("tcp", cfg.Listen.String())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer ln.Close()
		go userSpaceRelay(ln, cfg.Backend)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", cfg.Mode)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// userSpaceRelay forwards each connection accepted on ln to backend with
// io.Copy through plain Readers and Writers, which hides the sockets from
// io.Copy's splice and sendfile paths: every byte passes through read(2).
func userSpaceRelay(ln net.Listener, backend netip.AddrPort) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", backend.String())
			if err != nil {
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Go(func() {
				_, _ = io.Copy(struct{ io.Writer }{up}, struct{ io.Reader }{c})
				_ = up.(*net.TCPConn).CloseWrite()
			})
			_, _ = io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{up})
			_ = c.(*net.TCPConn).CloseWrite()
			wg.Wait()
		}()
	}
}

// childProxy is a running child.
type childProxy struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild starts a child proxy and waits until it listens; the child
// ends with the test.
func startChild(t *testing.T, cfg childConfig) *childProxy {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &childProxy{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child %s did not start: %q, %v", cfg.Mode, line, err)
	}
	return p
}

// readChars is the bytes the child has passed through read-like system
// calls (rchar in /proc/<pid>/io). splice(2) does not count there.
func (p *childProxy) readChars(t *testing.T) int64 {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/io", p.cmd.Process.Pid)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no rchar in %s", path)
	return 0
}
