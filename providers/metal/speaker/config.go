package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/extlb/extlb/controller/endpoints"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal"
	"github.com/extlb/extlb/providers/metal/layer2"
	"github.com/extlb/extlb/providers/metal/speaker/liveness"
)

// ProviderName is the provider whose addresses the speaker announces; its
// class is the default of --load-balancer-class.
const ProviderName = metal.Name

// Config is the `extlb speaker` command: flags, then Run.
type Config struct {
	// KubeClient must be set by the command before Run.
	KubeClient kubernetes.Interface

	NodeName string
	// Class selects the Services to announce. AddFlags defaults it, like
	// the controller's, to providers.DefaultClassFilter(ProviderName), so
	// that a speaker announces what a metal controller with default flags
	// serves.
	Class             providers.ClassFilter
	Interfaces        []string
	HeartbeatPort     uint16
	HeartbeatInterval time.Duration
	DeadAfter         time.Duration
	KeyFile           string
	MetricsAddress    string
}

// AddFlags registers the speaker's flags on fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.NodeName, "node-name", "", "Name of the Node this speaker runs on (default: $NODE_NAME).")
	c.Class = providers.DefaultClassFilter(ProviderName)
	c.Class.AddFlags(fs, "announce")
	fs.StringSliceVar(&c.Interfaces, "interfaces", nil, "Announce only on these interfaces (default: on every interface whose subnet holds the address).")
	fs.Uint16Var(&c.HeartbeatPort, "heartbeat-port", 7947, "UDP port the speakers exchange heartbeats on (host network).")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", liveness.DefaultInterval, "Interval between heartbeats to every peer.")
	fs.DurationVar(&c.DeadAfter, "dead-after", liveness.DefaultDeadAfter, "A peer silent for this long is dead and its addresses move (crash failover time).")
	fs.StringVar(&c.KeyFile, "heartbeat-key-file", "", "File holding a shared secret that signs heartbeats (HMAC-SHA256); all speakers need the same. Empty: unsigned.")
	fs.StringVar(&c.MetricsAddress, "metrics-bind-address", ":7473", endpoints.FlagHelp)
}

// validate fills defaults and checks the flags, naming the one at fault.
func (c *Config) validate() error {
	if c.KubeClient == nil {
		return errors.New("speaker: no Kubernetes client")
	}
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	if c.NodeName == "" {
		return errors.New("--node-name: required (or set $NODE_NAME from the downward API)")
	}
	if err := c.Class.Validate(); err != nil {
		return err
	}
	if c.HeartbeatPort == 0 {
		return errors.New("--heartbeat-port: must not be 0")
	}
	if c.HeartbeatInterval <= 0 {
		return fmt.Errorf("--heartbeat-interval: %v is not positive", c.HeartbeatInterval)
	}
	if c.DeadAfter <= c.HeartbeatInterval {
		return fmt.Errorf("--dead-after: %v must exceed --heartbeat-interval %v", c.DeadAfter, c.HeartbeatInterval)
	}
	return nil
}

func (c *Config) readKey() ([]byte, error) {
	if c.KeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--heartbeat-key-file: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < 16 {
		return nil, fmt.Errorf("--heartbeat-key-file: key %s is %d bytes, want at least 16", c.KeyFile, len(key))
	}
	return key, nil
}

// Run announces until ctx ends, then hands over gracefully (see Speaker.Run).
func (c *Config) Run(ctx context.Context) error {
	if err := c.validate(); err != nil {
		return err
	}
	key, err := c.readKey()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	conn, err := net.ListenPacket("udp", fmt.Sprintf(":%d", c.HeartbeatPort))
	if err != nil {
		return fmt.Errorf("--heartbeat-port: listen: %w", err)
	}
	members, err := liveness.New(ctx, liveness.Config{
		NodeName: c.NodeName, Interval: c.HeartbeatInterval, DeadAfter: c.DeadAfter, Key: key, Registerer: reg,
	}, conn)
	if err != nil {
		conn.Close()
		return err
	}
	announcer, err := layer2.New(ctx, layer2.Config{Interfaces: c.Interfaces, Registerer: reg})
	if err != nil {
		members.Close()
		return err
	}
	sp, err := New(Options{
		Client: c.KubeClient, NodeName: c.NodeName,
		Class:         c.Class,
		HeartbeatPort: c.HeartbeatPort, Announcer: announcer, Members: members,
	})
	if err != nil {
		announcer.Close()
		members.Close()
		return err
	}
	srv, err := endpoints.Start(ctx, c.MetricsAddress, reg, sp.Ready)
	if err != nil {
		announcer.Close()
		members.Close()
		return err
	}
	defer srv.Stop()
	return sp.Run(ctx)
}
