package cloud

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/dataplane"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, field, reason string) {
	msg := reason
	if field != "" {
		msg = field + ": " + reason
	}
	writeJSON(w, code, api.Error{Code: code, Message: msg, Field: field, Reason: reason})
}

func writeBadRequest(w http.ResponseWriter, err error) {
	var fe *api.FieldError
	if errors.As(err, &fe) {
		writeError(w, http.StatusBadRequest, fe.Field, fe.Reason)
		return
	}
	writeError(w, http.StatusBadRequest, "", err.Error())
}

// object builds the API object of a stored load balancer.
func (lb *loadBalancer) object(name string) api.LoadBalancer {
	return api.LoadBalancer{
		Name: name,
		Spec: lb.spec,
		Status: api.LoadBalancerStatus{
			Address:  lb.balancer.Address().String(),
			Backends: lb.balancer.Backends(),
		},
	}
}

func (s *Server) listLoadBalancers(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	items := make([]api.LoadBalancer, 0, len(s.lbs))
	for name, lb := range s.lbs {
		items = append(items, lb.object(name))
	}
	s.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	writeJSON(w, http.StatusOK, api.ListResponse{Items: items})
}

func (s *Server) getLoadBalancer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	lb, ok := s.lbs[name]
	var obj api.LoadBalancer
	if ok {
		obj = lb.object(name)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("load balancer %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// putLoadBalancer creates (201) or updates (200) a load balancer. The body
// is a LoadBalancer; its status is ignored, its name must match the path.
func (s *Server) putLoadBalancer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName(name); err != nil {
		writeBadRequest(w, err)
		return
	}
	var req api.LoadBalancer
	if err := api.DecodeStrict(r.Body, &req); err != nil {
		writeBadRequest(w, err)
		return
	}
	if req.Name != "" && req.Name != name {
		writeError(w, http.StatusBadRequest, "name", fmt.Sprintf("must match the name in the path %q, got %q", name, req.Name))
		return
	}
	if err := req.Spec.Validate(); err != nil {
		writeBadRequest(w, err)
		return
	}
	logger := klog.FromContext(r.Context()).WithValues("loadbalancer", name)

	s.mu.Lock()
	defer s.mu.Unlock()
	if lb, ok := s.lbs[name]; ok {
		if !reflect.DeepEqual(lb.spec, req.Spec) {
			if err := lb.balancer.Update(req.Spec); err != nil {
				writeError(w, http.StatusConflict, "spec.ports", err.Error())
				return
			}
			lb.spec = req.Spec
			logger.V(2).Info("Updated load balancer")
		}
		writeJSON(w, http.StatusOK, lb.object(name))
		return
	}
	vip, err := s.vip.allocate()
	if err != nil {
		writeError(w, http.StatusInsufficientStorage, "", err.Error())
		return
	}
	b, err := dataplane.New(s.ctx, name, vip, req.Spec, s.dpOpts)
	if err != nil {
		s.vip.release(vip)
		writeError(w, http.StatusConflict, "spec.ports", err.Error())
		return
	}
	lb := &loadBalancer{spec: req.Spec, balancer: b}
	s.lbs[name] = lb
	s.metrics.loadBalancers.Set(float64(len(s.lbs)))
	logger.Info("Created load balancer", "address", vip)
	writeJSON(w, http.StatusCreated, lb.object(name))
}

func (s *Server) deleteLoadBalancer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	lb, ok := s.lbs[name]
	if ok {
		delete(s.lbs, name)
		lb.balancer.Close()
		s.vip.release(lb.balancer.Address())
		s.metrics.loadBalancers.Set(float64(len(s.lbs)))
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("load balancer %q not found", name))
		return
	}
	klog.FromContext(r.Context()).Info("Deleted load balancer", "loadbalancer", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.get())
}

func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	var f api.Faults
	if err := api.DecodeStrict(r.Body, &f); err != nil {
		writeBadRequest(w, err)
		return
	}
	if err := f.Validate(); err != nil {
		writeBadRequest(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.faults.set(f))
}

// authenticated requires the bearer token when one is configured.
func (s *Server) authenticated(h http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="extlb-fake"`)
			reason := "missing bearer token"
			if len(got) > 0 {
				reason = "invalid bearer token"
			}
			writeError(w, http.StatusUnauthorized, "", reason)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withFaults adds the configured latency and answers with injected faults
// before the real handler runs.
func (s *Server) withFaults(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		latency, f := s.faults.decide()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if f.status == 0 {
			h(w, r)
			return
		}
		s.metrics.faults.WithLabelValues(f.kind).Inc()
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", retryAfterHeader(f.retryAfter))
		}
		writeError(w, f.status, "", "injected fault: "+f.kind)
	})
}

// instrumented counts requests by method, route pattern and status code.
func (s *Server) instrumented(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path
		}
		if route == "" || route == "/" {
			route = "other"
		}
		s.metrics.requests.WithLabelValues(r.Method, route, fmt.Sprint(rec.code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}
