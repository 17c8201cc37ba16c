package api

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Defaults applied by the server when a field is left zero.
const (
	DefaultHealthCheckPath           = "/healthz"
	DefaultHealthCheckIntervalMillis = 2000
	DefaultHealthCheckTimeoutMillis  = 1000
	DefaultHealthyThreshold          = 2
	DefaultUnhealthyThreshold        = 2
	DefaultSessionAffinityTimeout    = 10800
	DefaultRetryAfterSeconds         = 1
	maxSessionAffinityTimeout        = 86400
	maxPorts                         = 100
	maxBackends                      = 5000
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateName checks a load-balancer name: a DNS label (lower-case letters,
// digits, '-', at most 63 characters).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fieldErrorf("name", "must be a DNS label (a-z, 0-9, '-', 1-63 characters, starting and ending with a letter or digit), got %q", name)
	}
	return nil
}

// Validate checks a spec. The error, if any, is a *FieldError naming the
// first field at fault with its path from the request body ("spec.…").
func (s *LoadBalancerSpec) Validate() error {
	if len(s.Ports) == 0 {
		return fieldErrorf("spec.ports", "must list at least one port")
	}
	if len(s.Ports) > maxPorts {
		return fieldErrorf("spec.ports", "must list at most %d ports", maxPorts)
	}
	seen := map[string]int{}
	for i, p := range s.Ports {
		path := fmt.Sprintf("spec.ports[%d]", i)
		if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
			return fieldErrorf(path+".protocol", "must be TCP or UDP, got %q", p.Protocol)
		}
		if p.Port < 1 || p.Port > 65535 {
			return fieldErrorf(path+".port", "must be between 1 and 65535, got %d", p.Port)
		}
		if p.BackendPort < 1 || p.BackendPort > 65535 {
			return fieldErrorf(path+".backendPort", "must be between 1 and 65535, got %d", p.BackendPort)
		}
		key := fmt.Sprintf("%s/%d", p.Protocol, p.Port)
		if j, dup := seen[key]; dup {
			return fieldErrorf(path+".port", "%s port %d is already used by spec.ports[%d]", p.Protocol, p.Port, j)
		}
		seen[key] = i
	}
	if len(s.Backends) > maxBackends {
		return fieldErrorf("spec.backends", "must list at most %d backends", maxBackends)
	}
	names := map[string]int{}
	for i, b := range s.Backends {
		path := fmt.Sprintf("spec.backends[%d]", i)
		if b.Name == "" {
			return fieldErrorf(path+".name", "must not be empty")
		}
		if j, dup := names[b.Name]; dup {
			return fieldErrorf(path+".name", "%q is already used by spec.backends[%d]", b.Name, j)
		}
		names[b.Name] = i
		if _, err := netip.ParseAddr(b.Address); err != nil {
			return fieldErrorf(path+".address", "must be an IP address, got %q", b.Address)
		}
	}
	if hc := s.HealthCheck; hc != nil {
		if err := hc.validate("spec.healthCheck"); err != nil {
			return err
		}
	}
	for i, r := range s.SourceRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return fieldErrorf(fmt.Sprintf("spec.sourceRanges[%d]", i), "must be a CIDR like 10.0.0.0/8, got %q", r)
		}
	}
	if sa := s.SessionAffinity; sa != nil {
		if sa.Type != SessionAffinityClientIP {
			return fieldErrorf("spec.sessionAffinity.type", "must be ClientIP, got %q", sa.Type)
		}
		if sa.TimeoutSeconds < 0 || sa.TimeoutSeconds > maxSessionAffinityTimeout {
			return fieldErrorf("spec.sessionAffinity.timeoutSeconds", "must be between 1 and %d (0 for the default %d), got %d",
				maxSessionAffinityTimeout, DefaultSessionAffinityTimeout, sa.TimeoutSeconds)
		}
	}
	return nil
}

func (hc *HealthCheck) validate(path string) error {
	switch hc.Type {
	case HealthCheckNone:
		return nil
	case HealthCheckTCP, HealthCheckHTTP:
	default:
		return fieldErrorf(path+".type", "must be TCP, HTTP or None, got %q", hc.Type)
	}
	if hc.Port < 1 || hc.Port > 65535 {
		return fieldErrorf(path+".port", "must be between 1 and 65535, got %d", hc.Port)
	}
	if hc.Type == HealthCheckHTTP && hc.Path != "" && hc.Path[0] != '/' {
		return fieldErrorf(path+".path", "must start with '/', got %q", hc.Path)
	}
	if hc.Type == HealthCheckTCP && hc.Path != "" {
		return fieldErrorf(path+".path", "is only allowed with type HTTP")
	}
	for _, f := range []struct {
		name  string
		value int
	}{
		{"intervalMillis", hc.IntervalMillis},
		{"timeoutMillis", hc.TimeoutMillis},
		{"healthyThreshold", hc.HealthyThreshold},
		{"unhealthyThreshold", hc.UnhealthyThreshold},
	} {
		if f.value < 0 {
			return fieldErrorf(path+"."+f.name, "must not be negative, got %d", f.value)
		}
	}
	if hc.IntervalMillis > 0 && hc.IntervalMillis < 10 {
		return fieldErrorf(path+".intervalMillis", "must be at least 10, got %d", hc.IntervalMillis)
	}
	if hc.HealthyThreshold > 10 || hc.UnhealthyThreshold > 10 {
		return fieldErrorf(path, "thresholds must be at most 10")
	}
	if d := hc.WithDefaults(); d.TimeoutMillis > d.IntervalMillis {
		return fieldErrorf(path+".timeoutMillis", "must not exceed intervalMillis (%d), got %d", d.IntervalMillis, d.TimeoutMillis)
	}
	return nil
}

// WithDefaults returns a copy with zero fields set to their defaults.
func (hc HealthCheck) WithDefaults() HealthCheck {
	if hc.Type == HealthCheckHTTP && hc.Path == "" {
		hc.Path = DefaultHealthCheckPath
	}
	if hc.IntervalMillis == 0 {
		hc.IntervalMillis = DefaultHealthCheckIntervalMillis
	}
	if hc.TimeoutMillis == 0 {
		hc.TimeoutMillis = min(DefaultHealthCheckTimeoutMillis, hc.IntervalMillis)
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = DefaultHealthyThreshold
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	return hc
}

// Validate checks a fault configuration; field paths start at the body root.
func (f *Faults) Validate() error {
	for _, r := range []struct {
		name  string
		value float64
	}{{"errorRate", f.ErrorRate}, {"throttleRate", f.ThrottleRate}} {
		if r.value < 0 || r.value > 1 {
			return fieldErrorf(r.name, "must be between 0 and 1, got %v", r.value)
		}
	}
	if f.RetryAfterSeconds < 0 || f.RetryAfterSeconds > 3600 {
		return fieldErrorf("retryAfterSeconds", "must be between 0 and 3600, got %d", f.RetryAfterSeconds)
	}
	if f.LatencyMillis < 0 || f.LatencyMillis > 60000 {
		return fieldErrorf("latencyMillis", "must be between 0 and 60000, got %d", f.LatencyMillis)
	}
	for i, o := range f.Outages {
		if o.DurationMillis <= 0 {
			return fieldErrorf(fmt.Sprintf("outages[%d].durationMillis", i), "must be positive, got %d", o.DurationMillis)
		}
		if o.StartAfterMillis < 0 {
			return fieldErrorf(fmt.Sprintf("outages[%d].startAfterMillis", i), "must not be negative, got %d", o.StartAfterMillis)
		}
	}
	return nil
}
