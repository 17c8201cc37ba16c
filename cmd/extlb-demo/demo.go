package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/fake/cluster"
)

// Options configure Run. Zero fields take the defaults of DefaultOptions.
type Options struct {
	// ExamplesDir holds the example Services and a kustomization.yaml
	// listing them (flag --examples).
	ExamplesDir string
	// ControllerManifests holds the controller's kustomization; its
	// ServiceAccount and RBAC are applied and the controller runs with that
	// identity (flag --controller-manifests).
	ControllerManifests string
	// KubeconfigOut is where the admin kubeconfig is written; it is removed
	// on shutdown (flag --kubeconfig-out).
	KubeconfigOut string
	// Nodes is the number of simulated nodes (flag --nodes).
	Nodes int
	// FirstNodeIP is the first node's InternalIP; the next nodes take the
	// following addresses. Must be in 127.0.0.0/8 (flag --node-ip).
	FirstNodeIP netip.Addr
	// VIPRange is the fake cloud's load-balancer address range, in
	// 127.0.0.0/8 (flag --vip-range).
	VIPRange netip.Prefix
	// HealthCheckInterval is the load balancers' backend check interval.
	HealthCheckInterval time.Duration
	// ReadyTimeout bounds the wait for the examples' addresses.
	ReadyTimeout time.Duration
	// Probe bounds the traffic sent through each load balancer.
	Probe ProbeOptions
	// Out receives the table and messages; nil is os.Stdout.
	Out io.Writer
	// Progress receives the control plane's build progress; nil is Out.
	Progress io.Writer
	// Logger receives the controller's, the fake cloud's and the control
	// plane's logs; nil takes the context's logger.
	Logger *logr.Logger
	// Binaries of the control plane; empty builds or finds them.
	Binaries cluster.Binaries
	// Hooks let a caller follow the demo; all optional.
	Hooks Hooks
}

// Hooks are called as the demo progresses.
type Hooks struct {
	// Started is called once the control plane, the nodes and the
	// controller run.
	Started func(Info)
	// Examples is called with the examples' rows, in the order the
	// kustomization lists them, right after the table is printed.
	Examples func([]Row)
	// Service is called for each later probe: a Service added or changed
	// after the examples.
	Service func(Row)
}

// Info describes the running demo.
type Info struct {
	// Kubeconfig is the path of the admin kubeconfig.
	Kubeconfig string
	// APIServer is the API server's URL.
	APIServer string
	// ControlPlaneDir is the control plane's data directory, removed on
	// shutdown.
	ControlPlaneDir string
	// ControlPlanePIDs are the kube-apiserver and etcd processes.
	ControlPlanePIDs []int
	Nodes            []NodeInfo
}

// DefaultOptions returns the defaults of the command's flags.
func DefaultOptions() Options {
	return Options{
		ExamplesDir:         filepath.Join("manifests", "examples"),
		ControllerManifests: filepath.Join("manifests", "controller"),
		KubeconfigOut:       filepath.Join(".demo", "kubeconfig"),
		Nodes:               3,
		FirstNodeIP:         netip.MustParseAddr("127.0.1.1"),
		VIPRange:            netip.MustParsePrefix("127.240.0.0/16"),
		HealthCheckInterval: time.Second,
		ReadyTimeout:        2 * time.Minute,
		Probe:               DefaultProbeOptions(),
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.ExamplesDir == "" {
		o.ExamplesDir = d.ExamplesDir
	}
	if o.ControllerManifests == "" {
		o.ControllerManifests = d.ControllerManifests
	}
	if o.KubeconfigOut == "" {
		o.KubeconfigOut = d.KubeconfigOut
	}
	if o.Nodes == 0 {
		o.Nodes = d.Nodes
	}
	if !o.FirstNodeIP.IsValid() {
		o.FirstNodeIP = d.FirstNodeIP
	}
	if !o.VIPRange.IsValid() {
		o.VIPRange = d.VIPRange
	}
	if o.HealthCheckInterval == 0 {
		o.HealthCheckInterval = d.HealthCheckInterval
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = d.ReadyTimeout
	}
	if o.Probe == (ProbeOptions{}) {
		o.Probe = d.Probe
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Progress == nil {
		o.Progress = o.Out
	}
	return o
}

// Validate checks the options and names the flag of the first bad one.
func (o Options) Validate() error {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	switch {
	case o.Nodes < 1 || o.Nodes > 50:
		return fmt.Errorf("--nodes: must be between 1 and 50, got %d", o.Nodes)
	case !o.FirstNodeIP.Is4() || !loopback.Contains(o.FirstNodeIP):
		return fmt.Errorf("--node-ip %s: must be an IPv4 loopback address (127.x.y.z): the demo sends traffic only to loopback", o.FirstNodeIP)
	case !loopback.Contains(lastNodeIP(o.FirstNodeIP, o.Nodes)):
		return fmt.Errorf("--node-ip %s: %d nodes would leave 127.0.0.0/8", o.FirstNodeIP, o.Nodes)
	case !o.VIPRange.Addr().Is4() || o.VIPRange.Bits() < 8 || !loopback.Contains(o.VIPRange.Addr()):
		return fmt.Errorf("--vip-range %s: must be inside 127.0.0.0/8: the demo sends traffic only to loopback", o.VIPRange)
	case o.VIPRange.Masked().Contains(o.FirstNodeIP) || o.VIPRange.Masked().Contains(lastNodeIP(o.FirstNodeIP, o.Nodes)):
		return fmt.Errorf("--vip-range %s: overlaps the node addresses from --node-ip %s", o.VIPRange, o.FirstNodeIP)
	case o.HealthCheckInterval < 10*time.Millisecond:
		return fmt.Errorf("--health-check-interval: must be at least 10ms, got %s", o.HealthCheckInterval)
	case o.Probe.Connections < 1 || o.Probe.Datagrams < 1 || o.Probe.Connections > 1000 || o.Probe.Datagrams > 1000:
		return fmt.Errorf("--connections/--datagrams: must be between 1 and 1000, got %d and %d", o.Probe.Connections, o.Probe.Datagrams)
	case o.Probe.Timeout <= 0 || o.Probe.Warmup < 0:
		return fmt.Errorf("--probe-timeout: must be positive, got %s", o.Probe.Timeout)
	}
	return nil
}

func lastNodeIP(first netip.Addr, n int) netip.Addr {
	ip := first
	for i := 1; i < n && ip.IsValid(); i++ {
		ip = ip.Next()
	}
	return ip
}

// Run runs the demo until ctx ends (see the package comment), then stops
// everything it started and removes the control plane and the kubeconfig.
// Bad options and missing manifests are reported before anything starts.
func Run(ctx context.Context, opts Options) error {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return err
	}
	examples, err := renderKustomization("--examples", opts.ExamplesDir)
	if err != nil {
		return err
	}
	exampleKeys := serviceKeys(examples)
	if len(exampleKeys) == 0 {
		return fmt.Errorf("--examples %s: the kustomization has no Service", opts.ExamplesDir)
	}
	controllerObjs, err := renderKustomization("--controller-manifests", opts.ControllerManifests)
	if err != nil {
		return err
	}
	builder, err := fakeProviderBuilder(opts.VIPRange.String(), opts.HealthCheckInterval)
	if err != nil {
		return err
	}
	if opts.Logger != nil {
		ctx = klog.NewContext(ctx, *opts.Logger)
	}
	out := &printer{w: opts.Out}

	out.Printf("Starting the local control plane (kube-apiserver and etcd on 127.0.0.1; the first run builds them, about 6 minutes)...\n")
	c, err := cluster.Start(ctx, cluster.Options{Progress: opts.Progress, Binaries: opts.Binaries})
	if err != nil {
		if ctx.Err() != nil {
			out.Printf("Interrupted before the control plane was up; nothing is left running.\n")
			return nil
		}
		return err
	}
	s := &session{opts: opts, out: out, cluster: c, exampleKeys: exampleKeys}
	runErr := s.run(ctx, examples, controllerObjs, builder)
	out.Printf("Stopping...\n")
	stopErr := s.stop()
	if stopErr == nil {
		out.Printf("Stopped: controller, fake cloud and node agents stopped, control plane removed.\n")
	}
	if errors.Is(runErr, context.Canceled) && ctx.Err() != nil {
		runErr = nil
	}
	return errors.Join(runErr, stopErr)
}

// serviceKeys returns "namespace/name" of the Services among objs.
func serviceKeys(objs []*unstructured.Unstructured) []string {
	var keys []string
	for _, o := range objs {
		if o.GetKind() == "Service" && o.GetAPIVersion() == "v1" {
			ns := o.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			keys = append(keys, ns+"/"+o.GetName())
		}
	}
	return keys
}
