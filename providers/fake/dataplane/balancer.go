// Package dataplane is the fake cloud's forwarding plane: one Balancer per
// load balancer listens on its virtual IP on every port (TCP and UDP) and
// forwards to healthy backends — TCP by relaying the two connections (small
// reads through a buffer, bulk with splice(2)), UDP
// with one upstream socket per client — honouring source ranges and ClientIP
// session affinity. It knows nothing of HTTP or of the API's storage.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/fake/api"
)

// Options tune every balancer of a data plane.
type Options struct {
	// DialTimeout bounds a connection attempt to a backend (default 3s).
	DialTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow with no packet in either direction for
	// that long (default 30s).
	UDPIdleTimeout time.Duration
	// Metrics receives connection counts; nil counts nothing.
	Metrics *Metrics
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.UDPIdleTimeout <= 0 {
		o.UDPIdleTimeout = 30 * time.Second
	}
	return o
}

// Metrics are the data plane's Prometheus collectors.
type Metrics struct {
	connections *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{connections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extlb_fake_dataplane_connections_total",
		Help: "TCP connections and UDP flows by load balancer, protocol and outcome (forwarded, refused_source, no_backend, dial_failed).",
	}, []string{"loadbalancer", "protocol", "outcome"})}
	if err := reg.Register(m.connections); err != nil {
		return nil, fmt.Errorf("registering data-plane metrics: %w", err)
	}
	return m, nil
}

// outcome indexes a balancer's connection counters.
type outcome int

const (
	tcpForwarded outcome = iota
	tcpRefusedSource
	tcpNoBackend
	tcpDialFailed
	udpForwarded
	udpRefusedSource
	udpNoBackend
	udpDialFailed
	numOutcomes
)

var outcomeLabels = [numOutcomes][2]string{
	{"TCP", "forwarded"}, {"TCP", "refused_source"}, {"TCP", "no_backend"}, {"TCP", "dial_failed"},
	{"UDP", "forwarded"}, {"UDP", "refused_source"}, {"UDP", "no_backend"}, {"UDP", "dial_failed"},
}

// maxIdleWorkers bounds the goroutines a balancer keeps waiting for the
// next connection (two per connection: one per direction).
const maxIdleWorkers = 64

type portKey struct {
	protocol string
	port     int
}

// Balancer is one load balancer's data plane.
type Balancer struct {
	name   string
	vip    netip.Addr
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	picker  *picker
	workers *workers
	// relayBuffers holds *[]byte of relayBufferSize.
	relayBuffers sync.Pool
	policy       atomic.Pointer[policy]
	dialer       net.Dialer
	counters     [numOutcomes]prometheus.Counter

	// mu serialises Update and Close.
	mu      sync.Mutex
	tcp     map[int]*tcpListener
	udp     map[int]*udpListener
	targets map[string]*target
	hc      healthCheck

	connMu sync.Mutex
	conns  map[*proxiedConn]struct{}
	closed bool
}

// New starts a balancer named name on vip serving spec (which the caller has
// validated). On error nothing is left listening.
func New(ctx context.Context, name string, vip netip.Addr, spec api.LoadBalancerSpec, opts Options) (*Balancer, error) {
	ctx, cancel := context.WithCancel(klog.NewContext(ctx, klog.FromContext(ctx).WithValues("loadbalancer", name, "address", vip)))
	b := &Balancer{
		name:    name,
		vip:     vip,
		opts:    opts.withDefaults(),
		ctx:     ctx,
		cancel:  cancel,
		picker:  newPicker(),
		tcp:     map[int]*tcpListener{},
		udp:     map[int]*udpListener{},
		targets: map[string]*target{},
		conns:   map[*proxiedConn]struct{}{},
	}
	b.workers = newWorkers(ctx.Done(), &b.wg, maxIdleWorkers)
	b.relayBuffers.New = func() any {
		buf := make([]byte, relayBufferSize)
		return &buf
	}
	b.dialer.Timeout = b.opts.DialTimeout
	b.dialer.KeepAlive = -1
	b.dialer.Control = connectEarly
	if m := b.opts.Metrics; m != nil {
		for i, l := range outcomeLabels {
			b.counters[i] = m.connections.WithLabelValues(name, l[0], l[1])
		}
	}
	b.policy.Store(&policy{})
	if err := b.Update(spec); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Address is the balancer's virtual IP.
func (b *Balancer) Address() netip.Addr { return b.vip }

// Update applies a new spec. Listeners of ports that remain stay open and
// their established connections are untouched; a changed backend port
// applies to new connections. When a new port cannot be opened nothing
// changes and the error says which port.
func (b *Balancer) Update(spec api.LoadBalancerSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		return fmt.Errorf("load balancer %s is closed", b.name)
	}

	want := map[portKey]int{}
	for _, p := range spec.Ports {
		want[portKey{p.Protocol, p.Port}] = p.BackendPort
	}
	newTCP, newUDP, err := b.openMissing(want)
	if err != nil {
		return err
	}

	// Ports: from here on nothing fails.
	for port, l := range b.tcp {
		if bp, ok := want[portKey{api.ProtocolTCP, port}]; ok {
			l.setBackendPort(bp)
		} else {
			_ = l.close()
			delete(b.tcp, port)
		}
	}
	for port, l := range b.udp {
		if bp, ok := want[portKey{api.ProtocolUDP, port}]; ok {
			l.setBackendPort(bp)
		} else {
			_ = l.close()
			delete(b.udp, port)
		}
	}

	// Policy.
	pol := &policy{}
	for _, r := range spec.SourceRanges {
		if p, err := netip.ParsePrefix(r); err == nil {
			pol.sourceRanges = append(pol.sourceRanges, p.Masked())
		}
	}
	if sa := spec.SessionAffinity; sa != nil && sa.Type == api.SessionAffinityClientIP {
		secs := sa.TimeoutSeconds
		if secs == 0 {
			secs = api.DefaultSessionAffinityTimeout
		}
		pol.affinity = time.Duration(secs) * time.Second
	}
	b.policy.Store(pol)

	b.updateTargets(spec.Backends, resolveHealthCheck(spec.HealthCheck))

	for _, l := range newTCP {
		b.tcp[l.port] = l
		b.serve(l.serve)
	}
	for _, l := range newUDP {
		b.udp[l.port] = l
		b.serve(l.serve)
	}
	return nil
}

func (b *Balancer) serve(fn func(context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
}

// openMissing opens the listeners in want that are not open yet. On error it
// closes the ones it opened.
func (b *Balancer) openMissing(want map[portKey]int) ([]*tcpListener, []*udpListener, error) {
	var newTCP []*tcpListener
	var newUDP []*udpListener
	fail := func(err error) ([]*tcpListener, []*udpListener, error) {
		for _, l := range newTCP {
			_ = l.close()
		}
		for _, l := range newUDP {
			_ = l.close()
		}
		return nil, nil, err
	}
	for k, bp := range want {
		switch k.protocol {
		case api.ProtocolTCP:
			if _, ok := b.tcp[k.port]; ok {
				continue
			}
			// No TCP keepalive on accepted connections: it costs four
			// setsockopt calls per connection and proxies do not need it.
			lc := net.ListenConfig{KeepAlive: -1}
			ln, err := lc.Listen(b.ctx, "tcp", netip.AddrPortFrom(b.vip, uint16(k.port)).String())
			if err != nil {
				return fail(fmt.Errorf("load balancer %s: listening on TCP port %d: %w", b.name, k.port, err))
			}
			l := &tcpListener{b: b, ln: ln.(*net.TCPListener), port: k.port}
			l.setBackendPort(bp)
			newTCP = append(newTCP, l)
		case api.ProtocolUDP:
			if _, ok := b.udp[k.port]; ok {
				continue
			}
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.vip, uint16(k.port))))
			if err != nil {
				return fail(fmt.Errorf("load balancer %s: listening on UDP port %d: %w", b.name, k.port, err))
			}
			l := &udpListener{b: b, conn: c, port: k.port, flows: map[netip.AddrPort]*udpFlow{}}
			l.setBackendPort(bp)
			newUDP = append(newUDP, l)
		}
	}
	return newTCP, newUDP, nil
}

// updateTargets reconciles the backends: unchanged ones keep their health
// state and checker, new ones start checking, removed ones stop receiving
// new traffic.
func (b *Balancer) updateTargets(backends []api.Backend, hc healthCheck) {
	hcChanged := hc != b.hc
	b.hc = hc
	next := map[string]*target{}
	list := make([]*target, 0, len(backends))
	for _, be := range backends {
		addr, err := netip.ParseAddr(be.Address)
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		t, ok := b.targets[be.Name]
		switch {
		case ok && t.addr == addr && !hcChanged:
			// unchanged
		case ok && t.addr == addr:
			t.stopCheck()
			startChecking(b.ctx, t, hc)
		default:
			if ok {
				t.removed.Store(true)
				t.stopCheck()
			}
			t = &target{name: be.Name, addr: addr}
			startChecking(b.ctx, t, hc)
		}
		next[be.Name] = t
		list = append(list, t)
	}
	for name, t := range b.targets {
		if next[name] != t {
			t.removed.Store(true)
			t.stopCheck()
		}
	}
	b.targets = next
	b.picker.set(list)
}

// Backends reports the health of each backend, in spec order.
func (b *Balancer) Backends() []api.BackendStatus {
	ts := b.picker.list()
	out := make([]api.BackendStatus, 0, len(ts))
	for _, t := range ts {
		out = append(out, api.BackendStatus{Name: t.name, Healthy: t.healthy.Load()})
	}
	return out
}

// Close stops listening, closes every forwarded connection and flow, stops
// the health checks and waits for all of the balancer's goroutines.
func (b *Balancer) Close() {
	b.mu.Lock()
	b.cancel()
	var errs []error
	for _, l := range b.tcp {
		errs = append(errs, l.close())
	}
	for _, l := range b.udp {
		errs = append(errs, l.close())
	}
	for _, t := range b.targets {
		t.removed.Store(true)
		t.stopCheck()
	}
	b.mu.Unlock()
	b.connMu.Lock()
	b.closed = true
	for p := range b.conns {
		_ = p.client.Close()
		_ = p.upstream.Close()
	}
	b.connMu.Unlock()
	b.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		klog.FromContext(b.ctx).V(3).Info("Closing listeners", "err", err)
	}
}

// track records a forwarded connection so Close can end it; false when the
// balancer is closing.
func (b *Balancer) track(p *proxiedConn) bool {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if b.closed {
		return false
	}
	b.conns[p] = struct{}{}
	return true
}

func (b *Balancer) untrack(p *proxiedConn) {
	b.connMu.Lock()
	delete(b.conns, p)
	b.connMu.Unlock()
}

func (b *Balancer) count(o outcome) {
	if c := b.counters[o]; c != nil {
		c.Inc()
	}
}
