// Package endpoints serves the HTTP endpoints every extlb process has, the
// controller and the speaker alike: /metrics (Prometheus), /healthz (the
// process is alive) and /readyz (it is doing its job). One helper, so that
// both are disabled, probed and scraped the same way.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// FlagHelp is the help text of every process's --metrics-bind-address.
const FlagHelp = "Address serving /metrics, /healthz and /readyz (empty or 0: disabled)."

// Disabled reports whether addr, the --metrics-bind-address flag, turns the
// endpoints off: empty or "0".
func Disabled(addr string) bool { return addr == "" || addr == "0" }

// Server serves the endpoints until Stop.
type Server struct {
	srv  *http.Server
	addr string
}

// Start listens on addr and serves /metrics from reg, /healthz, and
// /readyz, which answers 200 while ready returns nil and 503 with its error
// otherwise. ready may be nil (always ready). With a Disabled addr it
// serves nothing and returns a Server whose Stop does nothing.
func Start(ctx context.Context, addr string, reg prometheus.Gatherer, ready func() error) (*Server, error) {
	if Disabled(addr) {
		return &Server{}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-bind-address %s: %w", addr, err)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, addr: ln.Addr().String()}
	logger := klog.FromContext(ctx)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Metrics and health server failed", "address", s.addr)
		}
	}()
	logger.Info("Serving metrics and health checks", "address", s.addr)
	return s, nil
}

// Addr is the address listened on ("" when disabled), with the port
// chosen when addr asked for port 0.
func (s *Server) Addr() string { return s.addr }

// Stop shuts the server down, waiting up to 5 s for requests in flight.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
