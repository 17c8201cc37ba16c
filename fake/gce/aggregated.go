package gce

import (
	"net/http"
	"slices"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"
)

// aggregatedList answers GET aggregated/{collection} for the regional
// collections (forwardingRules, addresses, targetPools) in the compute v1
// shape: "items" maps every scope to {"<collection>": [...]}, or to
// {"warning": {"code": "NO_RESULTS_ON_PAGE", ...}} when the scope holds
// none. The scopes are the fake's regions (SetRegions) and every region
// that holds a resource; forwarding rules and addresses also have a
// "global" scope (the fake has no global ones, so it always warns). The
// filter applies within each scope. Callers hold s.mu.
func (s *Server) aggregatedList(w http.ResponseWriter, collection string, f filter) *apiError {
	h, ok := s.handlers()["regions/"+collection]
	if !ok {
		return notFound("projects/" + s.project + "/aggregated/" + collection)
	}
	scopes := map[string]bool{}
	for _, r := range s.regions {
		scopes["regions/"+r] = true
	}
	for _, m := range []map[string]bool{keyScopes(s.addresses), keyScopes(s.targetPools), keyScopes(s.forwardingRules)} {
		for scope := range m {
			scopes[scope] = true
		}
	}
	if collection != "targetPools" {
		scopes["global"] = true
	}
	items := map[string]any{}
	for _, scope := range sortedScopes(scopes) {
		var found []any
		if scope != "global" {
			found = h.list(scope, f)
		}
		if len(found) > 0 {
			items[scope] = map[string]any{collection: found}
			continue
		}
		items[scope] = map[string]any{"warning": map[string]any{
			"code":    "NO_RESULTS_ON_PAGE",
			"message": "There are no results for scope '" + scope + "' on this page.",
			"data":    []map[string]string{{"key": "scope", "value": scope}},
		}}
	}
	writeJSON(w, map[string]any{
		"kind":     h.kind + "AggregatedList",
		"id":       "projects/" + s.project + "/aggregated/" + collection,
		"items":    items,
		"selfLink": s.link("aggregated/" + collection),
	})
	return nil
}

// keyScopes returns the "regions/{r}" scopes of a collection's keys.
func keyScopes[T any](m map[string]T) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		if parts := strings.SplitN(k, "/", 3); len(parts) == 3 && parts[0] == "regions" {
			out["regions/"+parts[1]] = true
		}
	}
	return out
}

func sortedScopes(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// targetPoolHealth answers POST .../targetPools/{name}/getHealth, whose body
// is an InstanceReference: one HealthStatus per address of the forwarding
// rules that point at the pool (none when no rule does), HEALTHY unless the
// instance is not running or was marked unhealthy (SetInstanceHealthy) and
// the pool has a health check. An instance that is not a member is
// refused. Callers hold s.mu.
func (s *Server) targetPoolHealth(q request, body []byte) (*computepb.TargetPoolInstanceHealth, *apiError) {
	tp, ok := s.targetPools[q.key()]
	if !ok {
		return nil, notFound(s.rel(q.key()))
	}
	ref := &computepb.InstanceReference{}
	if err := unmarshal.Unmarshal(body, ref); err != nil {
		return nil, invalid("Invalid JSON payload received. %v", err)
	}
	if ref.GetInstance() == "" {
		return nil, invalid("Invalid value for field 'resource.instance': ''. The instance reference is required.")
	}
	rel := s.relative(ref.GetInstance())
	inst, ok := s.instances[rel]
	if !ok {
		return nil, notFound(ref.GetInstance())
	}
	link := s.link(rel)
	if !slices.Contains(tp.Instances, link) {
		return nil, invalid("Resource '%s' is not a member of '%s'", ref.GetInstance(), s.rel(q.key()))
	}
	state := "HEALTHY"
	if inst.GetStatus() != "RUNNING" || (len(tp.HealthChecks) > 0 && s.unhealthy[rel]) {
		state = "UNHEALTHY"
	}
	out := &computepb.TargetPoolInstanceHealth{Kind: proto.String("compute#targetPoolInstanceHealth")}
	seen := map[string]bool{}
	for _, k := range keysIn(s.forwardingRules, q.scope+"/forwardingRules/") {
		fr := s.forwardingRules[k]
		if s.relative(fr.GetTarget()) != q.key() || seen[fr.GetIPAddress()] {
			continue
		}
		seen[fr.GetIPAddress()] = true
		out.HealthStatus = append(out.HealthStatus, &computepb.HealthStatus{
			HealthState: proto.String(state), Instance: proto.String(link), IpAddress: proto.String(fr.GetIPAddress()),
		})
	}
	return out, nil
}
