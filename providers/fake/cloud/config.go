package cloud

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/extlb/extlb/providers/fake/api"
)

// Defaults of Config.
const (
	DefaultListen   = "127.0.0.1:8470"
	DefaultVIPRange = "127.240.0.0/16"
)

// Config configures a fake cloud server. The zero value plus DefaultConfig's
// fields is a server on loopback with no token and no faults.
type Config struct {
	// Listen is the API's host:port. Default 127.0.0.1:8470; port 0 picks a
	// free one (see Server.URL). A non-loopback address needs a Token.
	Listen string
	// Token, when set, is the bearer token every API request must carry
	// (except GET /healthz).
	Token string
	// VIPRange is the CIDR load-balancer addresses are taken from. Its
	// addresses must be bindable: anything in 127.0.0.0/8 is on Linux.
	VIPRange string
	// DialTimeout bounds a connection attempt to a backend.
	DialTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow idle for that long.
	UDPIdleTimeout time.Duration
	// Faults injected into the load-balancer routes from the start. Outage
	// windows' StartAfterMillis count from the server's start.
	Faults api.Faults
	// Seed makes fault injection reproducible; 0 seeds from the clock.
	Seed uint64

	outages []string
	latency time.Duration
}

// DefaultConfig returns the defaults the flags start from.
func DefaultConfig() Config {
	return Config{
		Listen:         DefaultListen,
		VIPRange:       DefaultVIPRange,
		DialTimeout:    3 * time.Second,
		UDPIdleTimeout: 30 * time.Second,
	}
}

// AddFlags registers the server's flags, all prefixed --fake-, with the
// values in c as defaults. Call Complete after parsing.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "fake-listen", c.Listen, "host:port of the fake cloud API; a non-loopback address requires --fake-token")
	fs.StringVar(&c.Token, "fake-token", c.Token, "bearer token required on every API request (empty: none)")
	fs.StringVar(&c.VIPRange, "fake-vip-range", c.VIPRange, "CIDR that load-balancer addresses are allocated from (must be bindable locally; 127.0.0.0/8 always is)")
	fs.DurationVar(&c.DialTimeout, "fake-dial-timeout", c.DialTimeout, "timeout of a connection attempt to a backend")
	fs.DurationVar(&c.UDPIdleTimeout, "fake-udp-idle-timeout", c.UDPIdleTimeout, "a UDP flow with no packet for this long is forgotten")
	fs.Float64Var(&c.Faults.ErrorRate, "fake-error-rate", c.Faults.ErrorRate, "share (0-1) of load-balancer API requests answered 500")
	fs.Float64Var(&c.Faults.ThrottleRate, "fake-throttle-rate", c.Faults.ThrottleRate, "share (0-1) of load-balancer API requests answered 429 with Retry-After")
	fs.IntVar(&c.Faults.RetryAfterSeconds, "fake-retry-after", c.Faults.RetryAfterSeconds, "Retry-After seconds sent with 429 (0: 1)")
	fs.DurationVar(&c.latency, "fake-latency", c.latency, "latency added to every load-balancer API request")
	fs.StringSliceVar(&c.outages, "fake-outage", c.outages, "outage window START+DURATION after server start (e.g. 30s+10s) during which the API answers 503; repeatable")
	fs.Uint64Var(&c.Seed, "fake-seed", c.Seed, "seed of the fault injection's random choices (0: from the clock)")
}

// Complete moves the flag-only values (latency, outages) into Faults and
// validates the configuration; errors name the flag.
func (c *Config) Complete() error {
	if c.latency != 0 {
		c.Faults.LatencyMillis = int(c.latency / time.Millisecond)
	}
	for _, o := range c.outages {
		start, dur, ok := strings.Cut(o, "+")
		if !ok {
			return fmt.Errorf("--fake-outage %q: want START+DURATION like 30s+10s", o)
		}
		var s time.Duration
		if start != "" {
			var err error
			if s, err = time.ParseDuration(start); err != nil {
				return fmt.Errorf("--fake-outage %q: start: %w", o, err)
			}
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return fmt.Errorf("--fake-outage %q: duration: %w", o, err)
		}
		c.Faults.Outages = append(c.Faults.Outages, api.Outage{StartAfterMillis: int(s.Milliseconds()), DurationMillis: int(d.Milliseconds())})
	}
	c.outages, c.latency = nil, 0
	return c.validate()
}

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--fake-listen %q: %w", c.Listen, err)
	}
	if !IsLoopbackListen(c.Listen) && c.Token == "" {
		return fmt.Errorf("--fake-listen %q is not a loopback address: set --fake-token so that the API is not open to anyone", c.Listen)
	}
	if _, err := netip.ParsePrefix(c.VIPRange); err != nil {
		return fmt.Errorf("--fake-vip-range %q: %w", c.VIPRange, err)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("--fake-dial-timeout must not be negative")
	}
	if c.UDPIdleTimeout < 0 {
		return fmt.Errorf("--fake-udp-idle-timeout must not be negative")
	}
	if err := c.Faults.Validate(); err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("%s: %s", faultFlag(fe.Field), fe.Reason)
		}
		return err
	}
	return nil
}

// faultFlag names the flag behind a field of api.Faults.
func faultFlag(field string) string {
	switch {
	case field == "errorRate":
		return "--fake-error-rate"
	case field == "throttleRate":
		return "--fake-throttle-rate"
	case field == "retryAfterSeconds":
		return "--fake-retry-after"
	case field == "latencyMillis":
		return "--fake-latency"
	case strings.HasPrefix(field, "outages"):
		return "--fake-outage"
	}
	return field
}

// IsLoopbackListen reports whether hostport ("127.0.0.1:8470",
// "localhost:0", "[::1]:80") listens on loopback only.
func IsLoopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
