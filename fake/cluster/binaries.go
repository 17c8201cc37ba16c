package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Environment variables read by EnsureBinaries.
const (
	// EnvCacheDir replaces os.UserCacheDir()/extlb as the root of the
	// binary cache; binaries go to $EXTLB_CACHE_DIR/controlplane/<key>.
	EnvCacheDir = "EXTLB_CACHE_DIR"
	// EnvKubeAPIServer names a prebuilt kube-apiserver binary to use instead
	// of building one.
	EnvKubeAPIServer = "EXTLB_KUBE_APISERVER"
	// EnvEtcd names a prebuilt etcd binary to use instead of building one.
	EnvEtcd = "EXTLB_ETCD"
)

// Binaries are the paths of the control-plane executables.
type Binaries struct {
	// APIServer is the kube-apiserver executable.
	APIServer string
	// Etcd is the etcd executable.
	Etcd string
}

// component is one control-plane program: the directory of its Go module
// under build/ and the name of the executable it produces.
type component struct {
	name    string // executable name, also the directory under build/
	envVar  string // variable naming a prebuilt binary
	note    string // what to tell the user before building it
	ldflags string // -ldflags for go build; part of the cache key
}

var components = []component{
	{name: "etcd", envVar: EnvEtcd, note: "about 1 minute the first time on 2 cores"},
	{
		name: "kube-apiserver", envVar: EnvKubeAPIServer,
		note: "about 6 minutes the first time on 2 cores; later builds reuse the Go build cache",
		// Stamp the version as release builds do, so /version and discovery
		// report v1.37.2 rather than v0.0.0-master. Keep in step with go.mod.
		ldflags: versionLDFlags,
	},
}

// EnsureBinaries returns the kube-apiserver and etcd executables, building
// them from the Go modules under fake/cluster/build on first use. Built
// binaries are cached in a directory keyed by the modules' contents (see
// CacheDir), so later calls return at once. Two processes calling it at the
// same time build once: the second waits for the first. Progress lines are
// written to progress (which may be nil).
func EnsureBinaries(ctx context.Context, progress io.Writer) (Binaries, error) {
	if progress == nil {
		progress = io.Discard
	}
	if api, etcd := os.Getenv(EnvKubeAPIServer), os.Getenv(EnvEtcd); api != "" && etcd != "" {
		// Both prebuilt: no build modules needed.
		return builder{}.ensure(ctx)
	}
	srcRoot, err := buildSourceDir()
	if err != nil {
		return Binaries{}, err
	}
	cacheDir, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	b := builder{srcRoot: srcRoot, cacheDir: cacheDir, progress: progress, build: goBuild}
	return b.ensure(ctx)
}

// CacheDir returns the directory EnsureBinaries keeps the binaries in:
// $EXTLB_CACHE_DIR (or os.UserCacheDir()/extlb) + /controlplane/<key>, where
// key is a hash of the build modules' go.mod, go.sum and main.go files, the
// target OS and architecture.
func CacheDir() (string, error) { return cacheDirOf("controlplane", components) }

func cacheDirOf(tier string, set []component) (string, error) {
	srcRoot, err := buildSourceDir()
	if err != nil {
		return "", err
	}
	key, err := versionKeyOf(srcRoot, set)
	if err != nil {
		return "", err
	}
	root := os.Getenv(EnvCacheDir)
	if root == "" {
		userCache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache directory (set %s): %w", EnvCacheDir, err)
		}
		root = filepath.Join(userCache, "extlb")
	}
	return filepath.Join(root, tier, key), nil
}

// buildFunc compiles the Go module in srcDir into the executable out.
type buildFunc func(ctx context.Context, srcDir, ldflags, out string) error

// builder builds every component of set (components when nil) into
// cacheDir unless it is already there.
type builder struct {
	srcRoot  string
	cacheDir string
	progress io.Writer
	build    buildFunc
	set      []component
}

func (b builder) ensure(ctx context.Context) (Binaries, error) {
	paths, err := b.ensurePaths(ctx)
	if err != nil {
		return Binaries{}, err
	}
	return Binaries{APIServer: paths["kube-apiserver"], Etcd: paths["etcd"]}, nil
}

func (b builder) components() []component {
	if b.set == nil {
		return components
	}
	return b.set
}

// ensurePaths returns each component's executable by name.
func (b builder) ensurePaths(ctx context.Context) (map[string]string, error) {
	paths := map[string]string{}
	var missing []component
	for _, c := range b.components() {
		if p := os.Getenv(c.envVar); p != "" {
			if err := checkExecutable(p); err != nil {
				return nil, fmt.Errorf("%s=%s: %w", c.envVar, p, err)
			}
			paths[c.name] = p
			continue
		}
		p := filepath.Join(b.cacheDir, c.name)
		paths[c.name] = p
		if checkExecutable(p) != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		if err := b.buildLocked(ctx, missing); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// buildLocked builds the missing components while holding the cache
// directory's lock, skipping any that another process finished meanwhile.
func (b builder) buildLocked(ctx context.Context, missing []component) error {
	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return fmt.Errorf("creating control-plane cache %s: %w", b.cacheDir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(b.cacheDir, ".lock"), func() {
		fmt.Fprintf(b.progress, "control plane: another process is building into %s, waiting for it\n", b.cacheDir)
	})
	if err != nil {
		return err
	}
	defer unlock()
	for _, c := range missing {
		out := filepath.Join(b.cacheDir, c.name)
		if checkExecutable(out) == nil {
			continue // built by the process that held the lock before us
		}
		if err := b.buildOne(ctx, c, out); err != nil {
			return err
		}
	}
	return nil
}

// buildOne builds c to a temporary name and renames it into place, so that
// a reader never sees a half-written binary.
func (b builder) buildOne(ctx context.Context, c component, out string) error {
	src := filepath.Join(b.srcRoot, c.name)
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	defer os.Remove(tmp)
	fmt.Fprintf(b.progress, "control plane: building %s into %s (%s)\n", c.name, b.cacheDir, c.note)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(b.progress, "control plane: still building %s (%s so far)\n", c.name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := b.build(ctx, src, c.ldflags, tmp)
	close(done)
	if err != nil {
		return fmt.Errorf("building %s from %s: %w", c.name, src, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("installing %s: %w", out, err)
	}
	fmt.Fprintf(b.progress, "control plane: built %s in %s\n", c.name, time.Since(start).Round(time.Second))
	return nil
}

// goBuild runs `go build` in srcDir, the real buildFunc.
func goBuild(ctx context.Context, srcDir, ldflags, out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = srcDir
	// The build modules are independent of any workspace around them.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, strings.TrimSpace(output.String()))
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait. waiting is called once if the lock is held by someone else.
func lockFile(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", path, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !told {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// versionKey hashes everything that determines the control-plane binaries.
func versionKey(srcRoot string) (string, error) { return versionKeyOf(srcRoot, components) }

// versionKeyOf hashes everything that determines the binaries of set.
func versionKeyOf(srcRoot string, set []component) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n", runtime.GOOS, runtime.GOARCH)
	for _, c := range set {
		fmt.Fprintf(h, "%s ldflags %q\n", c.name, c.ldflags)
		for _, f := range []string{"go.mod", "go.sum", "main.go"} {
			p := filepath.Join(srcRoot, c.name, f)
			data, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("reading control-plane build module: %w", err)
			}
			fmt.Fprintf(h, "%s %d\n", p[len(srcRoot):], len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// buildSourceDir finds fake/cluster/build: next to this source file when the
// package was compiled from a checkout (tests, go run), else under the main
// module of the current directory.
func buildSourceDir() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "build")
		if isDir(dir) {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			dir := filepath.Join(filepath.Dir(gomod), "fake", "cluster", "build")
			if isDir(dir) {
				return dir, nil
			}
			tried = append(tried, dir)
		}
	}
	return "", fmt.Errorf("cannot find the control-plane build modules (fake/cluster/build of the extlb checkout; tried %v): run from the extlb checkout or set %s and %s", tried, EnvKubeAPIServer, EnvEtcd)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
