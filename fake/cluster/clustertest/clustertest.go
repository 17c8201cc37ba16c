// Package clustertest starts the local control plane of package cluster
// for Go tests, the way net/http/httptest serves a handler: a cluster per
// test (Start), one per package (Shared), namespaces per test
// (NewNamespace). It is kept apart so that shipped code importing package
// cluster does not link package testing.
package clustertest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/fake/cluster"
)

// EnvRequire, when set to a non-empty value, turns the skip that test
// helpers do when the binaries cannot be built into a failure. CI sets it so
// that control-plane tests can never be skipped silently there.
const EnvRequire = "EXTLB_REQUIRE_CONTROLPLANE"

// Start starts a control plane with default options for one test and
// stops it when the test ends. See StartWithOptions.
func Start(t testing.TB) *cluster.Cluster {
	t.Helper()
	return StartWithOptions(t, cluster.Options{})
}

// StartWithOptions starts a control plane for one test and registers
// Stop with t.Cleanup. It skips the test only when the binaries cannot be
// built (and $EXTLB_REQUIRE_CONTROLPLANE is unset); any other start-up
// failure fails the test with the processes' log tails. Build progress goes
// to stderr.
func StartWithOptions(t testing.TB, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	opts, skip := ensureBinariesForTest(t.Context(), opts)
	if skip != "" {
		skipOrFail(t, skip)
	}
	c, err := cluster.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control-plane logs of the failed test:\n%s", c.LogTail(30))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return c
}

// ensureBinariesForTest fills opts.Binaries, or returns why it cannot.
func ensureBinariesForTest(ctx context.Context, opts cluster.Options) (cluster.Options, string) {
	if opts.Binaries.APIServer != "" && opts.Binaries.Etcd != "" {
		return opts, ""
	}
	progress := opts.Progress
	if progress == nil {
		progress = os.Stderr
	}
	bins, err := cluster.EnsureBinaries(ctx, progress)
	if err != nil {
		return opts, fmt.Sprintf("control-plane binaries cannot be built (run `make controlplane` to see why): %v", err)
	}
	opts.Binaries = bins
	return opts, ""
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(EnvRequire) != "" {
		t.Fatalf("%s (%s is set, so this is a failure)", reason, EnvRequire)
	}
	t.Skip(reason)
}

// Shared is one control plane shared by the tests of a package: started by
// the first test that calls Get, stopped by Run after all tests. Tests that
// share it must not depend on each other's objects; NewNamespace gives each
// test a namespace of its own.
//
//	var controlPlane clustertest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(controlPlane.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := controlPlane.Get(t)
//		ns := clustertest.NewNamespace(t, c)
//		...
//	}
type Shared struct {
	// Options for the shared cluster; set before the first Get.
	Options cluster.Options

	mu      sync.Mutex
	started bool
	c       *cluster.Cluster
	skip    string
	err     error
}

// Get returns the shared control plane, starting it on first use. Like
// Start it skips when the binaries cannot be built and fails the
// test (every test that asks) when start-up failed.
func (s *Shared) Get(t testing.TB) *cluster.Cluster {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		opts, skip := ensureBinariesForTest(context.Background(), s.Options)
		if skip != "" {
			s.skip = skip
		} else {
			s.c, s.err = cluster.Start(context.Background(), opts)
		}
	}
	if s.skip != "" {
		skipOrFail(t, s.skip)
	}
	if s.err != nil {
		t.Fatalf("starting shared control plane: %v", s.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared control-plane logs at the end of the failed test:\n%s", s.c.LogTail(30))
		}
	})
	return s.c
}

// Run runs the tests and then stops the shared control plane if a test
// started it. It returns the exit code for os.Exit; a failure to stop turns
// success into failure.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		if err := s.c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping shared control plane: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewNamespace creates a namespace with a generated name for the test and
// returns its name. Without a controller-manager nothing empties deleted
// namespaces, so it is left in place; the cluster is thrown away anyway.
func NewNamespace(t testing.TB, c *cluster.Cluster) string {
	t.Helper()
	ns, err := c.AdminClient().CoreV1().Namespaces().Create(t.Context(), &v1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a namespace for %s: %v", t.Name(), err)
	}
	return ns.Name
}
