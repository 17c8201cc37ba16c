package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/fake/cluster"
)

const (
	helperEnv    = "EXTLB_CLUSTER_TEST_HELPER"
	helperTmpEnv = "EXTLB_CLUSTER_TEST_HELPER_TMP"
)

// TestChildrenDieWithTestProcess kills a process that started a control
// plane with SIGKILL, which runs no cleanup at all, and checks that the
// kernel killed kube-apiserver and etcd with it (parent-death signal).
func TestChildrenDieWithTestProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		runHelper()
		return
	}
	bins, err := cluster.EnsureBinaries(t.Context(), os.Stderr)
	if err != nil {
		t.Skipf("control-plane binaries unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildrenDieWithTestProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperTmpEnv+"="+t.TempDir(),
		cluster.EnvKubeAPIServer+"="+bins.APIServer, cluster.EnvEtcd+"="+bins.Etcd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()

	var pids []int
	scanner := bufio.NewScanner(stdout)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "PIDS "); ok {
			for _, f := range strings.Fields(rest) {
				pid, _ := strconv.Atoi(f)
				pids = append(pids, pid)
			}
			break
		}
	}
	if len(pids) != 2 {
		t.Fatalf("helper did not report its control-plane PIDs; stderr:\n%s", stderr.String())
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d not running while the helper lives", pid)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still alive 10s after its parent was killed", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func runHelper() {
	c, err := cluster.Start(context.Background(), cluster.Options{TempDir: os.Getenv(helperTmpEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("PIDS %d %d\n", c.PIDs()[0], c.PIDs()[1])
	time.Sleep(time.Minute) // killed by the test long before
	os.Exit(3)
}

// alive reports whether pid is a process that has not exited: one that is
// gone or a zombie (exited, waiting for a parent to reap it) is not alive.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
