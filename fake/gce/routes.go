package gce

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
)

// nameRE is GCE's rule for resource names.
var nameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// request is a parsed collection request.
type request struct {
	scope      string // "global" or "regions/{r}"
	collection string // "addresses", "firewalls", ...
	name       string // resource name, "" for the collection
	verb       string // custom method ("addInstance"), "" for none
}

func (q request) key() string { return q.scope + "/" + q.collection + "/" + q.name }

// route dispatches a request below the project.
func (s *Server) route(w http.ResponseWriter, r *http.Request, parts []string, fault *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(e *apiError) { writeError(w, e.code, e.reason, e.message) }

	var q request
	switch {
	case len(parts) >= 3 && parts[0] == "regions":
		q = request{scope: "regions/" + parts[1], collection: parts[2]}
		parts = parts[3:]
	case len(parts) >= 2 && parts[0] == "global":
		q = request{scope: "global", collection: parts[1]}
		parts = parts[2:]
	case len(parts) == 2 && parts[0] == "aggregated" && r.Method == http.MethodGet:
		if e := s.aggregatedList(w, parts[1], parseFilter(r.URL.Query().Get("filter"))); e != nil {
			fail(e)
		}
		return
	case len(parts) == 4 && parts[0] == "zones" && parts[2] == "instances" && r.Method == http.MethodGet:
		key := strings.Join(parts, "/")
		inst, ok := s.instances[key]
		if !ok {
			fail(notFound("projects/" + s.project + "/" + key))
			return
		}
		writeProto(w, inst)
		return
	default:
		fail(notFound(r.URL.Path))
		return
	}
	if len(parts) > 0 {
		q.name = parts[0]
	}
	if len(parts) > 1 {
		q.verb = parts[1]
	}
	if len(parts) > 2 {
		fail(notFound(r.URL.Path))
		return
	}

	if q.collection == "operations" && q.name != "" {
		switch {
		case q.verb == "" && r.Method == http.MethodGet:
			s.getOperation(w, q.key(), false)
		case q.verb == "wait" && r.Method == http.MethodPost:
			s.getOperation(w, q.key(), true)
		default:
			fail(notFound(r.URL.Path))
		}
		return
	}

	if q.collection == "targetPools" && q.verb == "getHealth" && q.scope != "global" && r.Method == http.MethodPost {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			fail(invalid("reading body: %v", err))
			return
		}
		health, e := s.targetPoolHealth(q, body)
		if e != nil {
			fail(e)
			return
		}
		writeProto(w, health)
		return
	}

	// A repeated requestId (a retried mutation) gets the original
	// operation and changes nothing, as on GCE.
	if id := r.URL.Query().Get("requestId"); id != "" && r.Method != http.MethodGet {
		if key, ok := s.requestIDs[id]; ok {
			writeProto(w, s.ops[key].pb)
			return
		}
	}

	h, ok := s.handlers()[q.scope[:min(len(q.scope), 7)]+"/"+q.collection]
	if !ok {
		fail(notFound(r.URL.Path))
		return
	}
	switch {
	case q.name == "" && r.Method == http.MethodGet:
		list := map[string]any{"kind": h.kind + "List", "id": "projects/" + s.project + "/" + q.scope + "/" + q.collection,
			"selfLink": s.link(q.scope + "/" + q.collection)}
		if items := h.list(q.scope, parseFilter(r.URL.Query().Get("filter"))); len(items) > 0 {
			list["items"] = items // the API leaves "items" out of an empty list
		}
		writeJSON(w, list)
	case q.name == "" && r.Method == http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			fail(invalid("reading body: %v", err))
			return
		}
		name, err := bodyName(body)
		if err != nil || !nameRE.MatchString(name) {
			fail(invalid("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", name))
			return
		}
		q.name = name
		if h.exists(q.key()) {
			fail(alreadyExists(s.rel(q.key())))
			return
		}
		s.accept(w, r, q.scope, "insert", q.key(), fault, func() *apiError {
			if limit, ok := s.quotas[q.collection]; ok && h.count() >= limit {
				return &apiError{code: http.StatusForbidden, reason: "quotaExceeded", inOperation: true,
					message: "Quota '" + strings.ToUpper(q.collection) + "' exceeded. Limit: " + itoa(limit) + ".0 in project " + s.project + "."}
			}
			return h.insert(q, body)
		})
	case q.verb == "" && r.Method == http.MethodGet:
		item, ok := h.get(q.key())
		if !ok {
			fail(notFound(s.rel(q.key())))
			return
		}
		writeJSON(w, item)
	case !h.exists(q.key()):
		fail(notFound(s.rel(q.key())))
	case q.verb == "" && r.Method == http.MethodDelete:
		if e := h.inUse(q.key()); e != nil {
			fail(e)
			return
		}
		s.accept(w, r, q.scope, "delete", q.key(), fault, func() *apiError { return h.remove(q.key()) })
	case q.verb == "" && r.Method == http.MethodPut && h.update != nil:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			fail(invalid("reading body: %v", err))
			return
		}
		s.accept(w, r, q.scope, "update", q.key(), fault, func() *apiError { return h.update(q, body) })
	case q.verb != "" && r.Method == http.MethodPost && h.verbs[q.verb] != nil:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			fail(invalid("reading body: %v", err))
			return
		}
		s.accept(w, r, q.scope, q.verb, q.key(), fault, func() *apiError { return h.verbs[q.verb](q, body) })
	default:
		fail(&apiError{code: http.StatusMethodNotAllowed, reason: "methodNotAllowed", message: r.Method + " " + r.URL.Path + " is not supported by the fake"})
	}
}

// handler is what the router needs of one collection. Methods are called
// with s.mu held.
type handler struct {
	kind   string
	exists func(key string) bool
	count  func() int
	get    func(key string) (any, bool)
	list   func(scope string, f filter) []any
	insert func(q request, body []byte) *apiError
	update func(q request, body []byte) *apiError
	inUse  func(key string) *apiError
	remove func(key string) *apiError
	verbs  map[string]func(q request, body []byte) *apiError
}

// handlers maps "global/{collection}" and "regions/{collection}" to the
// collection's handler.
func (s *Server) handlers() map[string]handler {
	return map[string]handler{
		"regions/addresses":       s.addressHandler(),
		"global/firewalls":        s.firewallHandler(),
		"global/httpHealthChecks": s.healthCheckHandler(),
		"regions/targetPools":     s.targetPoolHandler(),
		"regions/forwardingRules": s.forwardingRuleHandler(),
	}
}

// rel is the path of a key as the API names it in messages.
func (s *Server) rel(key string) string { return "projects/" + s.project + "/" + key }

func bodyName(body []byte) (string, error) {
	var v struct {
		Name string `json:"name"`
	}
	err := json.Unmarshal(body, &v)
	return v.Name, err
}

// rendered turns a stored message into the JSON the API sends, as a
// json.RawMessage so lists can embed it.
func rendered(m proto.Message) json.RawMessage {
	var buf strings.Builder
	wr := &rawWriter{b: &buf}
	writeProto(wr, m)
	return json.RawMessage(buf.String())
}

// rawWriter is an http.ResponseWriter that only collects the body.
type rawWriter struct {
	b *strings.Builder
	h http.Header
}

func (w *rawWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *rawWriter) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *rawWriter) WriteHeader(int)             {}

// filter is the subset of the list filter syntax the fake understands:
// `field = "value"` (or eq), on name and address.
type filter struct{ field, value string }

var filterRE = regexp.MustCompile(`^\s*\(?\s*([a-zA-Z]+)\s*(?:=|eq)\s*"?([^")]*)"?\s*\)?\s*$`)

func parseFilter(f string) filter {
	m := filterRE.FindStringSubmatch(f)
	if m == nil {
		return filter{}
	}
	return filter{field: m[1], value: m[2]}
}

func (f filter) match(fields map[string]string) bool {
	if f.field == "" {
		return true
	}
	return fields[f.field] == f.value
}

// keysIn returns the sorted keys of m under scope/collection.
func keysIn[T any](m map[string]T, prefix string) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func now() string { return time.Now().Format(time.RFC3339) }

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
