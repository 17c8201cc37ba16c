// Package manager runs the service controller as a process: Kubernetes
// clients with their rate limits, informers, the event recorder, leader
// election, and the /metrics, /healthz and /readyz endpoints. The command
// (cmd/extlb) fills Options from flags and calls Run; e2e tests call Run
// directly.
package manager

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/controller/endpoints"
)

// Options configure a controller process.
type Options struct {
	Controller controller.Config
	// QPS and Burst limit the controller's requests to the API server.
	// Events are sent through a client of their own with the same limits,
	// so that a burst of Events never delays a status write.
	QPS   float32
	Burst int
	// ResyncPeriod is the informers' resync period; a resync that finds
	// nothing changed calls nothing on the provider.
	ResyncPeriod time.Duration
	// MetricsAddr serves /metrics, /healthz and /readyz; empty or "0"
	// disables (see package endpoints).
	MetricsAddr    string
	LeaderElection LeaderElection
}

// LeaderElection configures the Lease that makes one replica active.
type LeaderElection struct {
	Enabled       bool
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// DefaultOptions returns the defaults of the command's flags.
func DefaultOptions() Options {
	host, _ := os.Hostname()
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "extlb-system"
	}
	return Options{
		Controller:   controller.DefaultConfig(),
		QPS:          100,
		Burst:        200,
		ResyncPeriod: 10 * time.Minute,
		MetricsAddr:  ":10260",
		LeaderElection: LeaderElection{
			Namespace:     ns,
			Name:          "extlb-controller",
			Identity:      host,
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
		},
	}
}

// AddFlags registers the controller's flags. The default of
// --load-balancer-class is Controller.Class.Name as set by the caller (the
// command sets it from --provider after parsing when it is not given).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	c := &o.Controller
	fs.StringVar(&c.ClusterName, "cluster-name", c.ClusterName, "Name of the cluster, passed to the provider, which tags the cloud resources it owns with it.")
	c.Class.AddFlags(fs, "serve")
	fs.IntVar(&c.Workers, "workers", c.Workers, "Number of Services reconciled concurrently.")
	fs.BoolVar(&c.AllocateNodePorts, "allocate-node-ports", c.AllocateNodePorts, "Pick node ports for Services without them (allocateLoadBalancerNodePorts: false) when the provider sends traffic to node ports. When false such Services get a NodePortsMissing Event.")
	fs.Var(&c.NodePortRange, "node-port-range", "The cluster's service node-port range (the API server's --service-node-port-range).")
	fs.DurationVar(&c.MinRetryDelay, "min-retry-delay", c.MinRetryDelay, "First delay of the per-Service exponential backoff after a failure.")
	fs.DurationVar(&c.MaxRetryDelay, "max-retry-delay", c.MaxRetryDelay, "Longest delay of the per-Service exponential backoff.")
	fs.Float64Var(&c.RestartResyncQPS, "restart-resync-qps", c.RestartResyncQPS, "After a start, re-check Services the last run left ensured and unchanged at most this many per second (new and changed ones go first); 0: all at once.")
	fs.DurationVar(&c.SlowEnsureNotice, "slow-ensure-notice", c.SlowEnsureNotice, "Record an EnsuringLoadBalancer Event when the provider takes longer than this to ensure a load balancer (0: before every call).")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "Queries per second to the Kubernetes API server (Events have a budget of their own).")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Burst of queries to the Kubernetes API server.")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "Informer resync period.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, endpoints.FlagHelp)
	le := &o.LeaderElection
	fs.BoolVar(&le.Enabled, "leader-elect", le.Enabled, "Run only while holding a Lease, so that several replicas can run with one active.")
	fs.StringVar(&le.Namespace, "leader-elect-namespace", le.Namespace, "Namespace of the leader-election Lease (default: $POD_NAMESPACE or extlb-system).")
	fs.StringVar(&le.Name, "leader-elect-lease-name", le.Name, "Name of the leader-election Lease.")
	fs.StringVar(&le.Identity, "leader-elect-identity", le.Identity, "Identity of this replica in the Lease (default: the host name).")
	fs.DurationVar(&le.LeaseDuration, "leader-elect-lease-duration", le.LeaseDuration, "How long a standby waits before taking over a Lease that is not renewed.")
	fs.DurationVar(&le.RenewDeadline, "leader-elect-renew-deadline", le.RenewDeadline, "How long the leader keeps trying to renew before it gives up leading.")
	fs.DurationVar(&le.RetryPeriod, "leader-elect-retry-period", le.RetryPeriod, "How often candidates try to acquire or renew the Lease.")
}

// Validate checks the options and names the first bad flag.
func (o *Options) Validate() error {
	if err := o.Controller.Validate(); err != nil {
		return err
	}
	if o.QPS <= 0 || o.Burst < 1 {
		return fmt.Errorf("--kube-api-qps/--kube-api-burst: must be positive, got %v and %d", o.QPS, o.Burst)
	}
	le := o.LeaderElection
	if le.Enabled {
		switch {
		case le.Namespace == "" || le.Name == "" || le.Identity == "":
			return fmt.Errorf("--leader-elect: needs --leader-elect-namespace, --leader-elect-lease-name and --leader-elect-identity")
		case le.LeaseDuration <= le.RenewDeadline || le.RenewDeadline <= le.RetryPeriod || le.RetryPeriod <= 0:
			return fmt.Errorf("--leader-elect-*: need lease duration > renew deadline > retry period > 0, got %s, %s, %s", le.LeaseDuration, le.RenewDeadline, le.RetryPeriod)
		}
	}
	return nil
}
