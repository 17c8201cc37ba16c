package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBuild is a buildFunc that writes a small executable, counting its
// calls; with hold set, each build waits for hold to close before it
// finishes.
type fakeBuild struct {
	calls   atomic.Int32
	hold    chan struct{}
	started chan string // receives the output path of each build, if non-nil
	fail    error
}

func (f *fakeBuild) build(ctx context.Context, srcDir, ldflags, out string) error {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- out
	}
	// Write in two steps so that a reader of the final path would see a
	// partial file if the builder did not rename into place.
	if err := os.WriteFile(out, []byte("#!/bin/sh\n"), 0o755); err != nil {
		return err
	}
	if f.hold != nil {
		<-f.hold
	}
	if f.fail != nil {
		return f.fail
	}
	return os.WriteFile(out, []byte("#!/bin/sh\nexit 0\n"), 0o755)
}

func newTestBuilder(t *testing.T, cacheDir string, f *fakeBuild, progress *syncBuffer) builder {
	t.Helper()
	return builder{srcRoot: "/src", cacheDir: cacheDir, progress: progress, build: f.build}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestBuilderBuildsEachComponentOnceAndReusesCache(t *testing.T) {
	t.Setenv(EnvKubeAPIServer, "")
	t.Setenv(EnvEtcd, "")
	cacheDir := t.TempDir()
	f := &fakeBuild{}
	var progress syncBuffer
	b := newTestBuilder(t, cacheDir, f, &progress)

	bins, err := b.ensure(t.Context())
	if err != nil {
		t.Fatalf("first ensure: %v", err)
	}
	if want := (Binaries{APIServer: filepath.Join(cacheDir, "kube-apiserver"), Etcd: filepath.Join(cacheDir, "etcd")}); bins != want {
		t.Fatalf("binaries %+v, want %+v", bins, want)
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("first ensure built %d times, want 2 (etcd, kube-apiserver)", got)
	}
	if out := progress.String(); !strings.Contains(out, "building kube-apiserver") || !strings.Contains(out, "6 minutes") {
		t.Errorf("progress does not announce the long build:\n%s", out)
	}

	if _, err := b.ensure(t.Context()); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("second ensure rebuilt: %d builds in total, want 2", got)
	}
}

func TestBuilderConcurrentCallersBuildOnce(t *testing.T) {
	t.Setenv(EnvKubeAPIServer, "")
	t.Setenv(EnvEtcd, "")
	cacheDir := t.TempDir()
	f := &fakeBuild{hold: make(chan struct{}), started: make(chan string, 4)}
	var progressA, progressB syncBuffer
	a := newTestBuilder(t, cacheDir, f, &progressA)
	b := newTestBuilder(t, cacheDir, f, &progressB)

	errs := make(chan error, 2)
	go func() { _, err := a.ensure(t.Context()); errs <- err }()
	<-f.started // a holds the lock and is building, until hold closes
	go func() { _, err := b.ensure(t.Context()); errs <- err }()
	// a's build goes on until b has found the lock taken and said so, not
	// for a fixed time b might not get to run in.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(progressB.String(), "another process is building"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(f.hold)
			t.Fatalf("the waiting caller did not say it was waiting:\n%s", progressB.String())
		}
	}
	close(f.hold)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("ensure: %v", err)
		}
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("two concurrent callers built %d times, want 2 (each component once)", got)
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		data, err := os.ReadFile(filepath.Join(cacheDir, name))
		if err != nil || !strings.Contains(string(data), "exit 0") {
			t.Errorf("%s: incomplete binary %q (%v)", name, data, err)
		}
	}
}

func TestBuilderFailureLeavesNoBinary(t *testing.T) {
	t.Setenv(EnvKubeAPIServer, "")
	t.Setenv(EnvEtcd, "")
	cacheDir := t.TempDir()
	f := &fakeBuild{fail: errors.New("compiler exploded")}
	_, err := newTestBuilder(t, cacheDir, f, &syncBuffer{}).ensure(t.Context())
	if err == nil || !strings.Contains(err.Error(), "building etcd") || !strings.Contains(err.Error(), "compiler exploded") {
		t.Fatalf("want an error naming etcd and the cause, got %v", err)
	}
	entries, _ := os.ReadDir(cacheDir)
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Errorf("left in the cache after a failed build: %s", e.Name())
		}
	}
}

func TestBuilderLockWaitIsCancelable(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockFile(t.Context(), filepath.Join(dir, ".lock"), func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	waited := false
	_, err = lockFile(ctx, filepath.Join(dir, ".lock"), func() { waited = true })
	if !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("want a canceled wait after reporting it, got err=%v waited=%v", err, waited)
	}
}

func TestEnsureBinariesPrebuiltFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExe := filepath.Join(dir, "data")
	if err := os.WriteFile(notExe, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc      string
		apiServer string
		etcd      string
		wantErr   string
	}{
		{desc: "both prebuilt", apiServer: exe, etcd: exe},
		{desc: "apiserver not executable", apiServer: notExe, etcd: exe, wantErr: EnvKubeAPIServer},
		{desc: "etcd missing", apiServer: exe, etcd: filepath.Join(dir, "missing"), wantErr: EnvEtcd},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Setenv(EnvKubeAPIServer, tc.apiServer)
			t.Setenv(EnvEtcd, tc.etcd)
			bins, err := EnsureBinaries(t.Context(), nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error naming %s, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil || bins.APIServer != tc.apiServer || bins.Etcd != tc.etcd {
				t.Fatalf("got %+v, %v", bins, err)
			}
		})
	}
}

func TestVersionKeyFollowsBuildModules(t *testing.T) {
	src := t.TempDir()
	for _, c := range components {
		if err := os.MkdirAll(filepath.Join(src, c.name), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"go.mod", "go.sum", "main.go"} {
			if err := os.WriteFile(filepath.Join(src, c.name, f), []byte(c.name+f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, err := versionKey(src)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := versionKey(src); again != before {
		t.Fatalf("key not stable: %s then %s", before, again)
	}
	if err := os.WriteFile(filepath.Join(src, "kube-apiserver", "go.sum"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, _ := versionKey(src); after == before {
		t.Fatalf("key %s did not change with go.sum", after)
	}
}

func TestCacheDirHonoursEnvironment(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EnvCacheDir, root)
	dir, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != filepath.Join(root, "controlplane") {
		t.Fatalf("CacheDir() = %s, want %s/controlplane/<key>", dir, root)
	}
}
