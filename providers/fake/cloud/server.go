// Package cloud is a local fake cloud that really forwards traffic: an HTTP
// API (see package api) to create, update, read, list and delete load
// balancers, each of which gets a virtual IP from a pool and forwards every
// port to its backends through the data plane (package dataplane). It
// injects API faults on demand (errors, latency, throttling, outages) and
// exposes call counters on /metrics.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/dataplane"
)

// Server is one fake cloud: its API and the load balancers it runs.
type Server struct {
	cfg     Config
	faults  *faultInjector
	reg     *prometheus.Registry
	metrics *apiMetrics
	dpOpts  dataplane.Options

	// mu guards the load balancers and the VIP pool; API writes hold it
	// while the data plane changes, so a load balancer's state and its
	// listeners always agree.
	mu  sync.Mutex
	lbs map[string]*loadBalancer
	vip *vipPool

	// writes logs the load-balancer write requests, for Writes.
	writesMu sync.Mutex
	writes   []string

	ctx      context.Context
	cancel   context.CancelFunc
	ln       net.Listener
	http     *http.Server
	served   chan error
	closeErr error
	closed   sync.Once
}

// loadBalancer is the stored object and its running data plane.
type loadBalancer struct {
	spec     api.LoadBalancerSpec
	balancer *dataplane.Balancer
}

// New validates cfg (empty Listen and VIPRange take the defaults) and
// returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Listen == "" {
		cfg.Listen = def.Listen
	}
	if cfg.VIPRange == "" {
		cfg.VIPRange = def.VIPRange
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pool, err := newVIPPool(cfg.VIPRange)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	m, err := newAPIMetrics(reg)
	if err != nil {
		return nil, err
	}
	dpm, err := dataplane.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ctx:     ctx,
		cancel:  cancel,
		cfg:     cfg,
		faults:  newFaultInjector(cfg.Faults, cfg.Seed, time.Now),
		reg:     reg,
		metrics: m,
		dpOpts:  dataplane.Options{DialTimeout: cfg.DialTimeout, UDPIdleTimeout: cfg.UDPIdleTimeout, Metrics: dpm},
		lbs:     map[string]*loadBalancer{},
		vip:     pool,
	}, nil
}

// Start listens and serves in the background until ctx ends or Close is
// called. Load balancers' goroutines log through ctx's logger.
func (s *Server) Start(ctx context.Context) error {
	if s.ln != nil {
		return errors.New("fake cloud already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("fake cloud API: %w", err)
	}
	s.cancel()
	s.ctx, s.cancel = context.WithCancel(ctx)
	// Outage windows given at start count from now.
	s.faults.set(s.cfg.Faults)
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.served = make(chan error, 1)
	go func() { s.served <- s.http.Serve(ln) }()
	go func() {
		<-s.ctx.Done()
		_ = s.Close()
	}()
	klog.FromContext(ctx).Info("Fake cloud API listening", "url", s.URL(), "vipRange", s.cfg.VIPRange, "token", s.cfg.Token != "")
	return nil
}

// Run starts the server and blocks until ctx ends, then shuts it down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// URL is the API's base URL, like http://127.0.0.1:8470 (empty before Start).
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops the API and every load balancer. Safe to call more than once.
func (s *Server) Close() error {
	s.closed.Do(func() {
		s.cancel()
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.http.Shutdown(ctx); err != nil {
				s.closeErr = fmt.Errorf("shutting down fake cloud API: %w", err)
			}
			if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.closeErr = errors.Join(s.closeErr, err)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for name, lb := range s.lbs {
			lb.balancer.Close()
			s.vip.release(lb.balancer.Address())
			delete(s.lbs, name)
		}
		s.metrics.loadBalancers.Set(0)
	})
	return s.closeErr
}

// Handler is the API's HTTP handler, with authentication, fault injection
// and metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	lb := func(h http.HandlerFunc) http.Handler { return s.authenticated(s.withFaults(h)) }
	mux.Handle("GET /v1/loadbalancers", lb(s.listLoadBalancers))
	mux.Handle("GET /v1/loadbalancers/{name}", lb(s.getLoadBalancer))
	mux.Handle("PUT /v1/loadbalancers/{name}", s.logWrite(lb(s.putLoadBalancer)))
	mux.Handle("DELETE /v1/loadbalancers/{name}", s.logWrite(lb(s.deleteLoadBalancer)))
	mux.Handle("GET /v1/faults", s.authenticated(http.HandlerFunc(s.getFaults)))
	mux.Handle("PUT /v1/faults", s.authenticated(http.HandlerFunc(s.putFaults)))
	mux.Handle("GET /metrics", s.authenticated(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return s.instrumented(mux)
}
