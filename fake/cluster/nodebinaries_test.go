package cluster_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
)

// TestNodeBinariesRunEveryProgram builds (or finds in the cache) the
// kube-node executable and checks that each program it holds starts and
// reports the API server's version.
func TestNodeBinariesRunEveryProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Kubernetes node programs (minutes on a cold cache)")
	}
	bins, err := cluster.EnsureNodeBinaries(t.Context(), os.Stderr)
	if err != nil {
		if os.Getenv(clustertest.EnvRequire) != "" {
			t.Fatalf("building the node binaries: %v", err)
		}
		t.Skipf("node binaries cannot be built: %v", err)
	}
	for _, program := range []string{"kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"} {
		t.Run(program, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), bins.KubeNode, program, "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s --version: %v\n%s", program, err, out)
			}
			if !strings.Contains(string(out), "v1.37.2") {
				t.Errorf("%s --version = %q, want v1.37.2", program, out)
			}
		})
	}
	t.Run("unknown program", func(t *testing.T) {
		err := exec.CommandContext(context.Background(), bins.KubeNode, "kube-nothing").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("kube-node kube-nothing = %v, want exit status 2 with the usage", err)
		}
	})
}
