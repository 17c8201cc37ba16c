package speaker_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/test/netns"
)

// TestSpeakerProcesses runs whole speaker processes, speaker.Config behind
// its flags as `extlb speaker` runs it (the system's raw sockets, the UDP
// heartbeat port, /metrics, SIGTERM), one inside each node's namespace,
// against the real API server (through a unix-socket relay). A SIGKILLed
// announcer is replaced (crash failover), a SIGTERMed one hands over and
// exits cleanly.
func TestSpeakerProcesses(t *testing.T) {
	netns.RequireRoot(t)
	bin := buildSpeakerProc(t)
	c := newCluster(t, newService("web"))
	cp := controlPlane.Get(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	if err := cp.UnixSocketRelay(sock); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, cp.AdminConfig()); err != nil {
		t.Fatal(err)
	}

	procs := map[string]*exec.Cmd{}
	for _, name := range nodeNames {
		logPath := filepath.Join(dir, name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := c.nodes[name].host.Command(bin, "--node-name="+name, "--kubeconfig="+kubeconfig, "--api-socket="+sock)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[name] = cmd
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
			logFile.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("log of %s's speaker:\n%s", name, tail(string(b), 30))
			}
		})
	}

	owner := expectedOwner(vip, nodeNames...)
	c.waitOwner(vip, owner, 15*time.Second)
	c.resolveInKernel(vip, owner)

	// The owner answering does not mean each gauge was updated yet (the
	// live-peers gauge follows the heartbeats): wait for what /metrics must
	// show, within a deadline.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		metrics, err := c.nodes[owner].host.HTTPGet(netip.MustParseAddrPort("127.0.0.1:7473"), "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		missing = nil
		for _, want := range []string{
			`extlb_speaker_layer2_announced_addresses{interface="` + c.nodes[owner].lan.Name + `",protocol="arp"} 1`,
			`extlb_speaker_liveness_live_peers 2`,
		} {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if !regexp.MustCompile(`extlb_speaker_layer2_gratuitous_sent_total\{[^}]*\} [1-9]`).MatchString(metrics) {
			missing = append(missing, "a gratuitous ARP sent (extlb_speaker_layer2_gratuitous_sent_total > 0)")
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("%s's /metrics lacks %s", owner, m)
	}

	// Crash: SIGKILL, nobody is told.
	rest := slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == owner })
	next := expectedOwner(vip, rest...)
	killed := time.Now()
	if err := procs[owner].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	procs[owner].Wait()
	at, err := c.client.WaitNeighbor(vip, c.nodes[next].lan.MAC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL of %s: client's entry moved to %s after %v", owner, next, at.Sub(killed))

	// Graceful: SIGTERM; the process leaves, hands over and exits 0.
	last := slices.DeleteFunc(slices.Clone(rest), func(n string) bool { return n == next })[0]
	termed := time.Now()
	if err := procs[next].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	at, err = c.client.WaitNeighbor(vip, c.nodes[last].lan.MAC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM of %s: client's entry moved to %s after %v", next, last, at.Sub(termed))
	waitErr := make(chan error, 1)
	go func() { waitErr <- procs[next].Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("speaker of %s exited with %v after SIGTERM, want 0", next, err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("speaker of %s still running 5s after SIGTERM", next)
	}
	c.waitOwner(vip, last, 2*time.Second)
}

// buildSpeakerProc builds testdata/speakerproc into a temporary directory.
func buildSpeakerProc(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build the speaker: %v", err)
		}
	}
	out := filepath.Join(t.TempDir(), "speakerproc")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/speakerproc")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build speaker: %v\n%s", err, b)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
