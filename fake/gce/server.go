// Package gce is a fake Google Compute Engine API: an HTTP server that speaks
// the compute v1 REST wire protocol for the resources the gce provider uses
// (regional addresses, firewalls, legacy HTTP health checks, target pools,
// forwarding rules, instances, and region/global operations), so the
// provider's tests run the real Go clients against it.
//
// Resources are stored as the generated computepb types (the legacy
// httpHealthChecks collection, which computepb lacks, as the
// google.golang.org/api/compute/v1 type) and rendered with the same JSON
// encodings the clients decode. Mutations answer with an Operation that is
// RUNNING and turns DONE on a later get or wait. Lists leave "items" out
// when empty; aggregated lists and targetPools.getHealth answer in the API's
// shapes. Errors use Google's error shape. The server records every call
// and can inject faults (5xx, 429, quota, latency, dropped connections,
// answers lost after the change).
package gce

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// linkPrefix is what the real API puts in front of every selfLink.
const linkPrefix = "https://www.googleapis.com/compute/v1/"

// Call is one request the server received.
type Call struct {
	Method string
	// Path is the URL path below /compute/v1/projects/{project}/.
	Path string
	// Write is true for requests that change state (inserts, deletes,
	// updates, addInstance, ...); operation get/wait, lists, aggregated
	// lists and targetPools.getHealth are reads.
	Write bool
	// Status is the HTTP status the server answered with; 0 when a fault
	// dropped the connection instead (Dropped).
	Status int
	// Dropped is true when a fault closed the connection unanswered.
	Dropped bool
}

// Fault makes matching requests fail or slow down.
type Fault struct {
	// Method matches the HTTP method; empty matches any.
	Method string
	// PathContains matches a substring of the path below the project.
	PathContains string
	// Status is the HTTP status to answer with (503, 429, 403, ...); 0
	// (without Drop) only adds Latency.
	Status int
	// Reason is the errors[0].reason; derived from Status when empty.
	Reason string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Latency is added before answering.
	Latency time.Duration
	// InOperation accepts a mutation but ends its operation DONE with this
	// error instead of applying it (Status is the operation's
	// httpErrorStatusCode, Reason its error code).
	InOperation bool
	// AfterApply handles the request normally, then answers with Status
	// (or drops the connection, with Drop) anyway: the change happened but
	// the client never learns it, as when a response is lost. A retry with
	// the same requestId gets the original operation.
	AfterApply bool
	// Drop closes the connection with a TCP reset instead of answering (the
	// client sees "connection reset by peer"; Status is ignored). Without
	// AfterApply the request is not handled: it was lost on its way.
	Drop bool
	// Times is how many matching requests the fault applies to; 0 means all.
	Times int
}

// Server is the fake compute API. Create it with New; it is safe for
// concurrent use.
type Server struct {
	project string

	mu              sync.Mutex
	addresses       map[string]*computepb.Address
	firewalls       map[string]*computepb.Firewall
	healthChecks    map[string]*legacy.HttpHealthCheck
	targetPools     map[string]*computepb.TargetPool
	forwardingRules map[string]*computepb.ForwardingRule
	instances       map[string]*computepb.Instance
	unhealthy       map[string]bool // instance keys that fail health checks
	regions         []string        // listed by aggregated lists (see SetRegions)
	ops             map[string]*operation
	requestIDs      map[string]string
	quotas          map[string]int
	faults          []*Fault
	calls           []Call
	nextID          uint64
	nextIP          int
	opPolls         int
}

// New returns an empty fake for project. Operations need one get (or one
// wait) to turn DONE.
func New(project string) *Server {
	return &Server{
		project:         project,
		addresses:       map[string]*computepb.Address{},
		firewalls:       map[string]*computepb.Firewall{},
		healthChecks:    map[string]*legacy.HttpHealthCheck{},
		targetPools:     map[string]*computepb.TargetPool{},
		forwardingRules: map[string]*computepb.ForwardingRule{},
		instances:       map[string]*computepb.Instance{},
		unhealthy:       map[string]bool{},
		regions:         slices.Clone(DefaultRegions),
		ops:             map[string]*operation{},
		requestIDs:      map[string]string{},
		quotas:          map[string]int{},
		nextID:          1000,
		nextIP:          10,
		opPolls:         1,
	}
}

// Start serves the fake on a loopback port until the returned server is
// closed. Its URL is the endpoint to hand the clients.
func (s *Server) Start() *httptest.Server {
	return httptest.NewServer(s)
}

// SetOperationPolls sets how many operation gets an operation stays RUNNING
// for (at least 1). A wait call always completes it.
func (s *Server) SetOperationPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opPolls = max(n, 1)
}

// SetQuota limits how many resources of a collection ("forwardingRules",
// "addresses", "firewalls", "targetPools", "httpHealthChecks") may exist;
// an insert beyond it ends in a QUOTA_EXCEEDED operation error.
func (s *Server) SetQuota(collection string, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quotas[collection] = limit
}

// InjectFault adds a fault; faults are checked in the order added.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls empties the call log.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// DefaultRegions are the regions a new fake's aggregated lists report
// (besides any region that holds a resource).
var DefaultRegions = []string{"asia-east1", "europe-west1", "us-central1", "us-east1", "us-west1"}

// SetRegions replaces the regions the aggregated lists report; a region
// that holds a resource is always reported.
func (s *Server) SetRegions(regions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.regions = slices.Clone(regions)
}

// SetInstanceHealthy sets whether an instance passes its target pools'
// health checks, as targetPools.getHealth reports them (a running instance
// does unless set).
func (s *Server) SetInstanceHealthy(zone, name string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := "zones/" + zone + "/instances/" + name
	if healthy {
		delete(s.unhealthy, key)
	} else {
		s.unhealthy[key] = true
	}
}

// AddInstance registers a VM instance (zones/{zone}/instances/{name}) with
// network tags, so target pools can reference it and tags can be read.
func (s *Server) AddInstance(zone, name string, tags ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := "zones/" + zone + "/instances/" + name
	s.instances[key] = &computepb.Instance{
		Kind:     proto.String("compute#instance"),
		Id:       proto.Uint64(s.id()),
		Name:     proto.String(name),
		Zone:     proto.String(s.link("zones/" + zone)),
		Status:   proto.String("RUNNING"),
		Tags:     &computepb.Tags{Items: tags},
		SelfLink: proto.String(s.link(key)),
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := "/compute/v1/projects/" + s.project + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", r.URL.Path))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, prefix)
	// Operation waits and targetPools.getHealth are POSTs that read.
	write := r.Method != http.MethodGet && !strings.HasSuffix(path, "/wait") && !strings.HasSuffix(path, "/getHealth")

	fault, latency := s.matchFault(r.Method, path)
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
		}
	}
	logCall := func(c Call) {
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
	}
	if fault != nil && fault.Drop {
		if fault.AfterApply {
			s.route(&rawWriter{b: &strings.Builder{}}, r, strings.Split(path, "/"), nil)
		}
		// Logged before the reset, so the client cannot see the reset
		// before the log does.
		logCall(Call{Method: r.Method, Path: path, Write: write, Dropped: true})
		dropConnection(w)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() { logCall(Call{Method: r.Method, Path: path, Write: write, Status: rec.status}) }()
	if fault != nil && fault.Status != 0 && !fault.InOperation {
		if fault.AfterApply {
			s.route(&rawWriter{b: &strings.Builder{}}, r, strings.Split(path, "/"), nil)
		}
		if fault.RetryAfter != "" {
			rec.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeError(rec, fault.Status, faultReason(fault), fmt.Sprintf("injected fault for %s %s", r.Method, path))
		return
	}
	s.route(rec, r, strings.Split(path, "/"), fault)
}

// dropConnection closes the request's connection without an answer, with a
// reset (SO_LINGER 0) so that the client's read fails at once.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection unanswered
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) matchFault(method, path string) (*Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if !strings.Contains(path, f.PathContains) {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f, f.Latency
	}
	return nil, 0
}

func faultReason(f *Fault) string {
	if f.Reason != "" {
		return f.Reason
	}
	switch f.Status {
	case http.StatusTooManyRequests:
		return "rateLimitExceeded"
	case http.StatusForbidden:
		return "quotaExceeded"
	case http.StatusNotFound:
		return "notFound"
	case http.StatusConflict:
		return "alreadyExists"
	case http.StatusServiceUnavailable:
		return "backendError"
	}
	return "internalError"
}

// writeError answers in Google's JSON error shape.
func writeError(w http.ResponseWriter, code int, reason, message string) {
	body := map[string]any{"error": map[string]any{
		"code":    code,
		"message": message,
		"errors":  []map[string]any{{"message": message, "domain": "global", "reason": reason}},
	}}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// id returns a fresh numeric id; callers hold s.mu.
func (s *Server) id() uint64 {
	s.nextID++
	return s.nextID
}

// link is the selfLink of a path below the project.
func (s *Server) link(rel string) string {
	return linkPrefix + "projects/" + s.project + "/" + rel
}

// relative turns a full or partial resource URL into the path below the
// project ("regions/r/targetPools/n"), or "" when it names another project.
func (s *Server) relative(u string) string {
	i := strings.Index(u, "projects/")
	if i < 0 {
		return u
	}
	rest := u[i+len("projects/"):]
	if !strings.HasPrefix(rest, s.project+"/") {
		return ""
	}
	return strings.TrimPrefix(rest, s.project+"/")
}
