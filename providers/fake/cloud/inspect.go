package cloud

import (
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/extlb/extlb/providers/fake/api"
)

// LoadBalancers returns every load balancer the server holds, sorted by
// name, as GET /v1/loadbalancers lists them. Tests use it, with
// AddressesInUse, to check that nothing leaked.
func (s *Server) LoadBalancers() []api.LoadBalancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.LoadBalancer, 0, len(s.lbs))
	for name, lb := range s.lbs {
		out = append(out, lb.object(name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddressesInUse returns the addresses the VIP pool has handed out, sorted.
func (s *Server) AddressesInUse() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.vip.used))
	for a := range s.vip.used {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// Writes returns every load-balancer write request (PUT and DELETE) the
// API received, in order, as "METHOD path status", whatever the answer
// (faults, errors and requests that changed nothing included).
func (s *Server) Writes() []string {
	s.writesMu.Lock()
	defer s.writesMu.Unlock()
	return slices.Clone(s.writes)
}

// logWrite records each request to h in the write log.
func (s *Server) logWrite(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.writesMu.Lock()
		s.writes = append(s.writes, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.code))
		s.writesMu.Unlock()
	})
}
