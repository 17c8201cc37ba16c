package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Defaults for Options.
const (
	DefaultServiceClusterIPRange = "10.96.0.0/16"
	DefaultNodePortRange         = "30000-32767"
	DefaultStartTimeout          = 60 * time.Second
)

// AdminUser is the name of the token user AdminConfig authenticates as; it
// is in the system:masters group.
const AdminUser = "extlb-admin"

// Options configure Start. The zero value is a working configuration.
type Options struct {
	// Binaries to run. Empty: EnsureBinaries finds or builds them.
	Binaries Binaries
	// Progress receives build progress lines when EnsureBinaries has to
	// build. Nil discards them.
	Progress io.Writer
	// Users are extra token users, each with its own bearer token (see
	// UserConfig). They have no permissions until RBAC grants some.
	Users []User
	// ServiceClusterIPRange is --service-cluster-ip-range.
	ServiceClusterIPRange string
	// NodePortRange is --service-node-port-range, "first-last".
	NodePortRange string
	// ExtraAPIServerFlags are appended to the kube-apiserver command line.
	ExtraAPIServerFlags []string
	// StartTimeout bounds start-up after the binaries exist.
	StartTimeout time.Duration
	// TempDir is where the cluster's data directory is created; empty means
	// os.TempDir().
	TempDir string
}

// User is a token user declared at start-up.
type User struct {
	// Name is the user name the API server authenticates the token as.
	Name string
	// Groups the user belongs to.
	Groups []string
}

// StartupTimings say how long each phase of Start took.
type StartupTimings struct {
	// Etcd is the time until etcd answered /health.
	Etcd time.Duration
	// APIServerReady is the time until kube-apiserver answered /readyz,
	// counted from Start.
	APIServerReady time.Duration
	// DefaultNamespace is the time until the default namespace existed,
	// counted from Start; Start returns right after.
	DefaultNamespace time.Duration
}

// Cluster is a running etcd and kube-apiserver on loopback. Nothing else
// runs: no controller-manager, scheduler, kubelet or kube-proxy.
type Cluster struct {
	opts       Options
	dataDir    string
	url        string
	caPEM      []byte
	adminToken string
	userTokens map[string]string

	spawner   *spawner
	etcd      *process
	apiServer *process
	admin     kubernetes.Interface
	timings   StartupTimings

	mu      sync.Mutex
	relays  []*relay
	stopped bool

	stopOnce sync.Once
	stopErr  error
}

// Start runs etcd and kube-apiserver on free loopback ports with a fresh
// data directory and returns once the API server is ready and the default
// namespace exists. Call Stop when done.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Binaries.APIServer == "" || opts.Binaries.Etcd == "" {
		bins, err := EnsureBinaries(ctx, opts.Progress)
		if err != nil {
			return nil, err
		}
		opts.Binaries = bins
	}
	// Free ports are found by binding and releasing them; another process
	// can take one in between, so retry that specific failure.
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, opts)
		if err == nil {
			return c, nil
		}
		if attempt < 3 && errors.Is(err, errPortTaken) {
			klog.FromContext(ctx).Info("Control-plane port was taken, retrying", "attempt", attempt, "err", err)
			continue
		}
		return nil, err
	}
}

var errPortTaken = errors.New("a port was taken by another process")

func (o Options) withDefaults() (Options, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ServiceClusterIPRange == "" {
		o.ServiceClusterIPRange = DefaultServiceClusterIPRange
	}
	if o.NodePortRange == "" {
		o.NodePortRange = DefaultNodePortRange
	}
	if _, _, err := parsePortRange(o.NodePortRange); err != nil {
		return o, fmt.Errorf("Options.NodePortRange %q: %w", o.NodePortRange, err)
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	seen := map[string]bool{AdminUser: true}
	for i, u := range o.Users {
		if u.Name == "" || strings.ContainsAny(u.Name, ",\"\n") {
			return o, fmt.Errorf("Options.Users[%d].Name %q: must be non-empty and contain no comma, quote or newline", i, u.Name)
		}
		if seen[u.Name] {
			return o, fmt.Errorf("Options.Users[%d].Name %q: declared twice or reserved", i, u.Name)
		}
		seen[u.Name] = true
		for _, g := range u.Groups {
			if g == "" || strings.ContainsAny(g, ",\"\n") {
				return o, fmt.Errorf("Options.Users[%d] (%s): group %q must be non-empty and contain no comma, quote or newline", i, u.Name, g)
			}
		}
	}
	return o, nil
}

func start(ctx context.Context, opts Options) (*Cluster, error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	dataDir, err := os.MkdirTemp(opts.TempDir, "extlb-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("creating control-plane data directory: %w", err)
	}
	c := &Cluster{opts: opts, dataDir: dataDir, spawner: newSpawner()}
	fail := func(err error) (*Cluster, error) {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}

	ports, err := freeLoopbackPorts(3)
	if err != nil {
		return fail(err)
	}
	etcdClientPort, etcdPeerPort, apiPort := ports[0], ports[1], ports[2]
	certDir := filepath.Join(dataDir, "certs")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		return fail(err)
	}
	pki, err := writePKI(certDir)
	if err != nil {
		return fail(err)
	}
	c.caPEM = pki.caPEM
	tokenFile := filepath.Join(dataDir, "tokens.csv")
	if err := c.writeTokenFile(tokenFile); err != nil {
		return fail(err)
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	c.etcd, err = c.spawner.start("etcd", opts.Binaries.Etcd, []string{
		"--name=extlb",
		"--data-dir=" + filepath.Join(dataDir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=extlb=" + peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync", // throwaway data: durability is not needed
		"--log-level=warn",
	}, filepath.Join(dataDir, "etcd.log"))
	if err != nil {
		return fail(err)
	}
	if err := waitHTTP(ctx, c.etcd, http.DefaultClient, etcdURL+"/health", ""); err != nil {
		return fail(c.startError(err, c.etcd))
	}
	c.timings.Etcd = time.Since(begin)

	c.url = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--secure-port=" + strconv.Itoa(apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--service-account-key-file=" + pki.serviceAcctKey,
		"--service-account-signing-key-file=" + pki.serviceAcctKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + opts.ServiceClusterIPRange,
		"--service-node-port-range=" + opts.NodePortRange,
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
	}
	args = append(args, opts.ExtraAPIServerFlags...)
	c.apiServer, err = c.spawner.start("kube-apiserver", opts.Binaries.APIServer, args, filepath.Join(dataDir, "kube-apiserver.log"))
	if err != nil {
		return fail(err)
	}
	if err := waitHTTP(ctx, c.apiServer, c.httpClient(), c.url+"/readyz", c.adminToken); err != nil {
		return fail(c.startError(err, c.apiServer))
	}
	c.timings.APIServerReady = time.Since(begin)

	c.admin, err = kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return fail(fmt.Errorf("creating admin client: %w", err))
	}
	if err := c.waitDefaultNamespace(ctx); err != nil {
		return fail(c.startError(err, c.apiServer))
	}
	c.timings.DefaultNamespace = time.Since(begin)
	klog.FromContext(ctx).V(2).Info("Control plane started", "url", c.url, "dataDir", dataDir, "timings", c.timings)
	return c, nil
}

// startError adds the tail of the failing process's log (and etcd's when
// the API server failed) to err.
func (c *Cluster) startError(err error, p *process) error {
	if strings.Contains(p.logTail(200), "address already in use") {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	msg := fmt.Sprintf("starting control plane: %s: %v\n--- last lines of %s ---\n%s", p.name, err, p.logPath, p.logTail(40))
	if p != c.etcd && c.etcd != nil {
		msg += fmt.Sprintf("\n--- last lines of %s ---\n%s", c.etcd.logPath, c.etcd.logTail(10))
	}
	return &startError{msg: msg, err: err}
}

type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }

// waitHTTP polls url until it answers 200, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, client *http.Client, url, token string) error {
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s answered %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s: %w (last: %s)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitDefaultNamespace waits for the API server's bootstrap controller to
// create the default namespace.
func (c *Cluster) waitDefaultNamespace(ctx context.Context) error {
	for {
		_, err := c.admin.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-c.apiServer.exited:
			return fmt.Errorf("exited before the default namespace existed (%v)", c.apiServer.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the default namespace: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpClient is an HTTP client that trusts the API server's certificate.
func (c *Cluster) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// Stop kills the API server and etcd (with their process groups), waits for
// them to exit and removes the data directory. Calling it again returns the
// first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	var errs []error
	c.mu.Lock()
	relays := c.relays
	c.relays = nil
	c.stopped = true
	c.mu.Unlock()
	for _, r := range relays {
		r.close()
	}
	for _, p := range []*process{c.apiServer, c.etcd} {
		if p == nil {
			continue
		}
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	c.spawner.close()
	if err := os.RemoveAll(c.dataDir); err != nil {
		errs = append(errs, fmt.Errorf("removing control-plane data directory: %w", err))
	}
	return errors.Join(errs...)
}

// URL is the API server's address, https://127.0.0.1:<port>.
func (c *Cluster) URL() string { return c.url }

// CAData is the PEM certificate of the CA that signed the API server's
// serving certificate.
func (c *Cluster) CAData() []byte { return append([]byte(nil), c.caPEM...) }

// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
func (c *Cluster) ServiceClusterIPRange() string { return c.opts.ServiceClusterIPRange }

// NodePortRange returns the first and last port of the API server's
// --service-node-port-range.
func (c *Cluster) NodePortRange() (first, last int) {
	first, last, _ = parsePortRange(c.opts.NodePortRange) // validated in Start
	return first, last
}

// AdminClient is a clientset authenticated as AdminUser.
func (c *Cluster) AdminClient() kubernetes.Interface { return c.admin }

// DataDir is the directory holding the cluster's certificates, tokens, etcd
// data and logs; Stop removes it.
func (c *Cluster) DataDir() string { return c.dataDir }

// PIDs are the process ids of kube-apiserver and etcd.
func (c *Cluster) PIDs() []int { return []int{c.apiServer.pid(), c.etcd.pid()} }

// StartupTimings say how long start-up took.
func (c *Cluster) StartupTimings() StartupTimings { return c.timings }

// LogTail returns the last n lines of the kube-apiserver and etcd logs, for
// reports of failed tests.
func (c *Cluster) LogTail(n int) string {
	return fmt.Sprintf("--- %s ---\n%s\n--- %s ---\n%s", c.apiServer.logPath, c.apiServer.logTail(n), c.etcd.logPath, c.etcd.logTail(n))
}

// Control-plane ports are picked at random from [portRangeLow,
// portRangeHigh): below the default node-port range and below the kernel's
// default ephemeral range (32768-60999). Asking the kernel for port 0 instead
// fails while a load test on the same machine has the ephemeral range full
// of TIME-WAIT connections, which happens on shared CI machines.
const (
	portRangeLow  = 10000
	portRangeHigh = 30000
)

// freeLoopbackPorts returns n distinct TCP ports free on 127.0.0.1.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	picked := map[int]bool{}
	for attempt := 0; len(ports) < n && attempt < 1000; attempt++ {
		port := portRangeLow + rand.IntN(portRangeHigh-portRangeLow)
		if picked[port] {
			continue
		}
		picked[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		listeners = append(listeners, l)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("%w: found only %d free loopback ports in %d-%d", errPortTaken, len(ports), portRangeLow, portRangeHigh-1)
	}
	return ports, nil
}

func parsePortRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, errors.New(`want "first-last"`)
	}
	if first, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("first port: %w", err)
	}
	if last, err = strconv.Atoi(b); err != nil {
		return 0, 0, fmt.Errorf("last port: %w", err)
	}
	if first < 1 || last > 65535 || first > last {
		return 0, 0, errors.New("want 1 <= first <= last <= 65535")
	}
	return first, last, nil
}
