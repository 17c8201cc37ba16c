package controller

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/extlb/extlb/providers"
)

// Finalizer is the finalizer extlb puts on every Service it creates a load
// balancer for. It is added before anything is created in the cloud and
// removed only after the load balancer is deleted.
const Finalizer = "extlb.io/load-balancer-cleanup"

// AnnotationServedByClass records, with the finalizer, which class the
// Service was served under. Several extlb controllers (one per class) share
// the finalizer name; a controller cleans up only the Services it served,
// also after a type change has cleared spec.loadBalancerClass. It is written
// in the same patch as the finalizer, so it costs no extra write.
const AnnotationServedByClass = providers.AnnotationServedByClass

// Config is the controller's configuration; the command fills it from flags.
type Config struct {
	// ClusterName is passed to every provider call.
	ClusterName string
	// Class selects the Services this controller serves: its
	// spec.loadBalancerClass and, with Class.Default, Services with none.
	Class providers.ClassFilter
	// Workers is how many Services are reconciled at once.
	Workers int
	// AllocateNodePorts lets the controller pick node ports for Services
	// that have none (allocateLoadBalancerNodePorts: false) when the provider
	// targets node ports. When false such a Service gets a Warning Event.
	AllocateNodePorts bool
	// NodePortRange is the cluster's service-node-port-range.
	NodePortRange PortRange
	// MinRetryDelay and MaxRetryDelay bound the per-Service exponential
	// backoff after a failure.
	MinRetryDelay time.Duration
	MaxRetryDelay time.Duration
	// SlowEnsureNotice is how long a provider call may run before the
	// controller records an EnsuringLoadBalancer Event saying it is still
	// in progress. Zero records it before every call, as upstream does.
	SlowEnsureNotice time.Duration
	// NodePortSeed seeds the choice of dynamic node ports; 0 seeds it from
	// the clock. Tests set it to make the choice reproducible.
	NodePortSeed uint64
	// RestartResyncQPS paces, after a start, the re-check of Services whose
	// ready condition says the last run left them ensured and unchanged:
	// they are synced at most this many per second instead of all at once,
	// while new and changed Services go first. 0 syncs them all at once.
	RestartResyncQPS float64
}

// DefaultConfig returns the defaults the command's flags start from.
func DefaultConfig() Config {
	return Config{
		ClusterName:       "kubernetes",
		Class:             providers.ClassFilter{Default: providers.ServeNoClassByDefault},
		Workers:           16,
		AllocateNodePorts: true,
		NodePortRange:     PortRange{Base: 30000, Size: 2768},
		MinRetryDelay:     time.Second,
		MaxRetryDelay:     5 * time.Minute,
		SlowEnsureNotice:  2 * time.Second,
		RestartResyncQPS:  20,
	}
}

// Validate checks the configuration and names the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.ClusterName == "":
		return fmt.Errorf("--cluster-name: must not be empty")
	case c.Class.Validate() != nil:
		return c.Class.Validate()
	case c.Workers < 1:
		return fmt.Errorf("--workers: must be at least 1, got %d", c.Workers)
	case c.NodePortRange.Size < 1:
		return fmt.Errorf("--node-port-range: must not be empty")
	case c.RestartResyncQPS < 0:
		return fmt.Errorf("--restart-resync-qps: must not be negative, got %v", c.RestartResyncQPS)
	case c.MinRetryDelay <= 0 || c.MaxRetryDelay < c.MinRetryDelay:
		return fmt.Errorf("--min-retry-delay/--max-retry-delay: need 0 < min <= max, got %s and %s", c.MinRetryDelay, c.MaxRetryDelay)
	}
	return nil
}

// PortRange is a range of ports [Base, Base+Size).
type PortRange struct {
	Base int
	Size int
}

// ParsePortRange parses "30000-32767" (both ends included) or a single port.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("%q is not a port range like 30000-32767", s)
	}
	if l < 1 || h > 65535 || l > h {
		return PortRange{}, fmt.Errorf("%q is not a port range within 1-65535 with low <= high", s)
	}
	return PortRange{Base: l, Size: h - l + 1}, nil
}

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port int) bool { return port >= r.Base && port < r.Base+r.Size }

// String formats the range as "low-high".
func (r PortRange) String() string {
	return fmt.Sprintf("%d-%d", r.Base, r.Base+r.Size-1)
}

// Set implements pflag.Value.
func (r *PortRange) Set(s string) error {
	p, err := ParsePortRange(s)
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// Type implements pflag.Value.
func (r *PortRange) Type() string { return "portRange" }
