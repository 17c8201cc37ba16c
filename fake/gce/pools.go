package gce

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"
)

func (s *Server) targetPoolHandler() handler {
	m := s.targetPools
	return handler{
		kind:   "compute#targetPool",
		exists: func(key string) bool { _, ok := m[key]; return ok },
		count:  func() int { return len(m) },
		get: func(key string) (any, bool) {
			tp, ok := m[key]
			if !ok {
				return nil, false
			}
			return rendered(tp), true
		},
		list: func(scope string, flt filter) []any {
			var items []any
			for _, k := range keysIn(m, scope+"/targetPools/") {
				if flt.match(map[string]string{"name": m[k].GetName()}) {
					items = append(items, rendered(m[k]))
				}
			}
			return items
		},
		insert: func(q request, body []byte) *apiError {
			tp := &computepb.TargetPool{}
			if err := unmarshal.Unmarshal(body, tp); err != nil {
				return invalid("Invalid JSON payload received. %v", err)
			}
			if len(tp.HealthChecks) > 1 {
				return invalid("Invalid value for field 'resource.healthChecks': only one health check may be specified.")
			}
			for i, ref := range tp.HealthChecks {
				rel := s.relative(ref)
				if !strings.HasPrefix(rel, "global/httpHealthChecks/") {
					return invalid("Invalid value for field 'resource.healthChecks[%d]': '%s'. Only legacy HttpHealthChecks are supported.", i, ref)
				}
				if _, ok := s.healthChecks[rel]; !ok {
					return notFound(s.rel(rel))
				}
				tp.HealthChecks[i] = s.link(rel)
			}
			instances, err := s.instanceLinks(tp.Instances)
			if err != nil {
				return err
			}
			tp.Instances = instances
			if tp.SessionAffinity == nil {
				tp.SessionAffinity = proto.String("NONE")
			}
			tp.Kind = proto.String("compute#targetPool")
			tp.Id = proto.Uint64(s.id())
			tp.Region = proto.String(s.link(q.scope))
			tp.SelfLink = proto.String(s.link(q.key()))
			tp.CreationTimestamp = proto.String(now())
			m[q.key()] = tp
			return nil
		},
		inUse: func(key string) *apiError {
			for _, k := range keysIn(s.forwardingRules, "regions/") {
				if s.relative(s.forwardingRules[k].GetTarget()) == key {
					return inUse(s.rel(key), s.link(k))
				}
			}
			return nil
		},
		remove: func(key string) *apiError { delete(m, key); return nil },
		verbs: map[string]func(q request, body []byte) *apiError{
			"addInstance": func(q request, body []byte) *apiError {
				req := &computepb.TargetPoolsAddInstanceRequest{}
				if err := unmarshal.Unmarshal(body, req); err != nil {
					return invalid("Invalid JSON payload received. %v", err)
				}
				var refs []string
				for _, r := range req.Instances {
					refs = append(refs, r.GetInstance())
				}
				links, err := s.instanceLinks(refs)
				if err != nil {
					return err
				}
				tp := m[q.key()]
				for _, l := range links {
					if slices.Contains(tp.Instances, l) {
						return invalid("Resource '%s' is already a member of '%s'", l, s.rel(q.key()))
					}
				}
				tp.Instances = append(tp.Instances, links...)
				return nil
			},
			"removeInstance": func(q request, body []byte) *apiError {
				req := &computepb.TargetPoolsRemoveInstanceRequest{}
				if err := unmarshal.Unmarshal(body, req); err != nil {
					return invalid("Invalid JSON payload received. %v", err)
				}
				tp := m[q.key()]
				for _, r := range req.Instances {
					link := s.link(s.relative(r.GetInstance()))
					i := slices.Index(tp.Instances, link)
					if i < 0 {
						return invalid("Resource '%s' is not a member of '%s'", r.GetInstance(), s.rel(q.key()))
					}
					tp.Instances = slices.Delete(tp.Instances, i, i+1)
				}
				return nil
			},
		},
	}
}

// instanceLinks checks that every reference names a registered instance and
// returns their selfLinks.
func (s *Server) instanceLinks(refs []string) ([]string, *apiError) {
	links := make([]string, 0, len(refs))
	for _, ref := range refs {
		rel := s.relative(ref)
		if _, ok := s.instances[rel]; !ok {
			return nil, notFound(ref)
		}
		links = append(links, s.link(rel))
	}
	return links, nil
}

func (s *Server) forwardingRuleHandler() handler {
	m := s.forwardingRules
	return handler{
		kind:   "compute#forwardingRule",
		exists: func(key string) bool { _, ok := m[key]; return ok },
		count:  func() int { return len(m) },
		get: func(key string) (any, bool) {
			fr, ok := m[key]
			if !ok {
				return nil, false
			}
			return rendered(fr), true
		},
		list: func(scope string, flt filter) []any {
			var items []any
			for _, k := range keysIn(m, scope+"/forwardingRules/") {
				if flt.match(map[string]string{"name": m[k].GetName(), "IPAddress": m[k].GetIPAddress()}) {
					items = append(items, rendered(m[k]))
				}
			}
			return items
		},
		insert: func(q request, body []byte) *apiError {
			fr := &computepb.ForwardingRule{}
			if err := unmarshal.Unmarshal(body, fr); err != nil {
				return invalid("Invalid JSON payload received. %v", err)
			}
			target := s.relative(fr.GetTarget())
			if !strings.HasPrefix(target, q.scope+"/targetPools/") {
				return invalid("Invalid value for field 'resource.target': '%s'.", fr.GetTarget())
			}
			if _, ok := s.targetPools[target]; !ok {
				return notFound(s.rel(target))
			}
			fr.Target = proto.String(s.link(target))
			if fr.IPProtocol == nil {
				fr.IPProtocol = proto.String("TCP")
			}
			switch fr.GetIPProtocol() {
			case "TCP", "UDP", "ESP", "AH", "SCTP", "ICMP", "L3_DEFAULT":
			default:
				return invalid("Invalid value for field 'resource.IPProtocol': '%s'.", fr.GetIPProtocol())
			}
			lo, hi, ok := parsePortRange(fr.GetPortRange())
			if !ok {
				return invalid("Invalid value for field 'resource.portRange': '%s'.", fr.GetPortRange())
			}
			fr.PortRange = proto.String(strconv.Itoa(lo) + "-" + strconv.Itoa(hi))
			if ip := fr.GetIPAddress(); strings.Contains(ip, "/") {
				// An address's URL (full or partial) stands for its IP, which
				// is what the rule then reports.
				rel := s.relative(ip)
				if !strings.HasPrefix(rel, q.scope+"/addresses/") || strings.Count(rel, "/") != 3 {
					return invalid("Invalid value for field 'resource.IPAddress': '%s'. The address must be a regional address in %s.", ip, q.scope)
				}
				a, ok := s.addresses[rel]
				if !ok {
					return notFound(s.rel(rel))
				}
				fr.IPAddress = proto.String(a.GetAddress())
			}
			if fr.IPAddress == nil {
				fr.IPAddress = proto.String(s.freeIP(q.scope))
			} else {
				if net.ParseIP(fr.GetIPAddress()) == nil {
					return invalid("Invalid value for field 'resource.IPAddress': '%s'.", fr.GetIPAddress())
				}
				reserved := false
				for _, k := range keysIn(s.addresses, q.scope+"/addresses/") {
					reserved = reserved || s.addresses[k].GetAddress() == fr.GetIPAddress()
				}
				if !reserved {
					return invalid("Invalid value for field 'resource.IPAddress': '%s'. Specified IP address is not reserved in %s.", fr.GetIPAddress(), q.scope)
				}
			}
			for _, k := range keysIn(m, q.scope+"/forwardingRules/") {
				o := m[k]
				olo, ohi, _ := parsePortRange(o.GetPortRange())
				if o.GetIPAddress() == fr.GetIPAddress() && o.GetIPProtocol() == fr.GetIPProtocol() && lo <= ohi && olo <= hi {
					return invalid("Invalid value for field 'resource.portRange': '%s'. It conflicts with forwarding rule '%s'.", fr.GetPortRange(), s.link(k))
				}
			}
			if fr.LoadBalancingScheme == nil {
				fr.LoadBalancingScheme = proto.String("EXTERNAL")
			}
			fr.Kind = proto.String("compute#forwardingRule")
			fr.Id = proto.Uint64(s.id())
			fr.Region = proto.String(s.link(q.scope))
			fr.NetworkTier = proto.String("PREMIUM")
			fr.SelfLink = proto.String(s.link(q.key()))
			fr.CreationTimestamp = proto.String(now())
			m[q.key()] = fr
			return nil
		},
		inUse:  func(string) *apiError { return nil },
		remove: func(key string) *apiError { delete(m, key); return nil },
	}
}

// parsePortRange parses "80", "80-90" or "" (all ports).
func parsePortRange(r string) (int, int, bool) {
	if r == "" {
		return 1, 65535, true
	}
	a, b, found := strings.Cut(r, "-")
	if !found {
		b = a
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}
