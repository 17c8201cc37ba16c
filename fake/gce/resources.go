package gce

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

func (s *Server) addressHandler() handler {
	m := s.addresses
	return handler{
		kind:   "compute#address",
		exists: func(key string) bool { _, ok := m[key]; return ok },
		count:  func() int { return len(m) },
		get: func(key string) (any, bool) {
			a, ok := m[key]
			if !ok {
				return nil, false
			}
			return rendered(s.renderAddress(key, a)), true
		},
		list: func(scope string, f filter) []any {
			var items []any
			for _, k := range keysIn(m, scope+"/addresses/") {
				a := m[k]
				if f.match(map[string]string{"name": a.GetName(), "address": a.GetAddress()}) {
					items = append(items, rendered(s.renderAddress(k, a)))
				}
			}
			return items
		},
		insert: func(q request, body []byte) *apiError {
			a := &computepb.Address{}
			if err := unmarshal.Unmarshal(body, a); err != nil {
				return invalid("Invalid JSON payload received. %v", err)
			}
			if a.Address != nil {
				ip := net.ParseIP(a.GetAddress())
				if ip == nil || ip.To4() == nil {
					return invalid("Invalid value for field 'resource.address': '%s'. Must be a valid IPv4 address.", a.GetAddress())
				}
				for k, other := range m {
					if strings.HasPrefix(k, q.scope+"/") && other.GetAddress() == a.GetAddress() {
						return invalid("IP address '%s' is already reserved by '%s'", a.GetAddress(), s.rel(k))
					}
				}
			} else {
				a.Address = proto.String(s.freeIP(q.scope))
			}
			a.Kind = proto.String("compute#address")
			a.Id = proto.Uint64(s.id())
			a.AddressType = proto.String("EXTERNAL")
			a.NetworkTier = proto.String("PREMIUM")
			a.Region = proto.String(s.link(q.scope))
			a.SelfLink = proto.String(s.link(q.key()))
			a.CreationTimestamp = proto.String(now())
			m[q.key()] = a
			return nil
		},
		inUse: func(key string) *apiError {
			if users := s.addressUsers(key, m[key]); len(users) > 0 {
				return inUse(s.rel(key), users[0])
			}
			return nil
		},
		remove: func(key string) *apiError { delete(m, key); return nil },
	}
}

// renderAddress fills the fields GCE computes: status and users.
func (s *Server) renderAddress(key string, a *computepb.Address) *computepb.Address {
	out := proto.Clone(a).(*computepb.Address)
	out.Users = s.addressUsers(key, a)
	out.Status = proto.String("RESERVED")
	if len(out.Users) > 0 {
		out.Status = proto.String("IN_USE")
	}
	return out
}

// addressUsers are the forwarding rules in the address's region that use
// its IP.
func (s *Server) addressUsers(key string, a *computepb.Address) []string {
	scope := key[:strings.Index(key, "/addresses/")]
	var users []string
	for _, k := range keysIn(s.forwardingRules, scope+"/forwardingRules/") {
		if s.forwardingRules[k].GetIPAddress() == a.GetAddress() {
			users = append(users, s.link(k))
		}
	}
	return users
}

// freeIP picks an unused address from 203.0.113.0/24 (TEST-NET-3) for the
// region.
func (s *Server) freeIP(scope string) string {
	used := map[string]bool{}
	for k, a := range s.addresses {
		if strings.HasPrefix(k, scope+"/") {
			used[a.GetAddress()] = true
		}
	}
	for k, f := range s.forwardingRules {
		if strings.HasPrefix(k, scope+"/") {
			used[f.GetIPAddress()] = true
		}
	}
	for {
		ip := fmt.Sprintf("203.0.113.%d", s.nextIP)
		s.nextIP = s.nextIP%250 + 1
		if !used[ip] {
			return ip
		}
	}
}

func (s *Server) firewallHandler() handler {
	m := s.firewalls
	parse := func(q request, body []byte) (*computepb.Firewall, *apiError) {
		f := &computepb.Firewall{}
		if err := unmarshal.Unmarshal(body, f); err != nil {
			return nil, invalid("Invalid JSON payload received. %v", err)
		}
		if f.GetName() != q.name {
			return nil, invalid("Invalid value for field 'resource.name': '%s'.", f.GetName())
		}
		if len(f.Allowed) == 0 && len(f.Denied) == 0 {
			return nil, invalid("Invalid value for field 'resource.allowed': ''. Must specify at least one rule.")
		}
		for i, a := range f.Allowed {
			switch a.GetIPProtocol() {
			case "tcp", "udp", "icmp", "sctp", "all":
			default:
				return nil, invalid("Invalid value for field 'resource.allowed[%d].IPProtocol': '%s'.", i, a.GetIPProtocol())
			}
		}
		for i, r := range f.SourceRanges {
			if _, _, err := net.ParseCIDR(r); err != nil && net.ParseIP(r) == nil {
				return nil, invalid("Invalid value for field 'resource.sourceRanges[%d]': '%s'.", i, r)
			}
		}
		if f.Network == nil {
			f.Network = proto.String(s.link("global/networks/default"))
		}
		if f.Direction == nil {
			f.Direction = proto.String("INGRESS")
		}
		if f.Priority == nil {
			f.Priority = proto.Int32(1000)
		}
		f.Kind = proto.String("compute#firewall")
		f.SelfLink = proto.String(s.link(q.key()))
		return f, nil
	}
	return handler{
		kind:   "compute#firewall",
		exists: func(key string) bool { _, ok := m[key]; return ok },
		count:  func() int { return len(m) },
		get: func(key string) (any, bool) {
			f, ok := m[key]
			if !ok {
				return nil, false
			}
			return rendered(f), true
		},
		list: func(scope string, flt filter) []any {
			var items []any
			for _, k := range keysIn(m, "global/firewalls/") {
				if flt.match(map[string]string{"name": m[k].GetName()}) {
					items = append(items, rendered(m[k]))
				}
			}
			return items
		},
		insert: func(q request, body []byte) *apiError {
			f, err := parse(q, body)
			if err != nil {
				return err
			}
			f.Id = proto.Uint64(s.id())
			f.CreationTimestamp = proto.String(now())
			m[q.key()] = f
			return nil
		},
		update: func(q request, body []byte) *apiError {
			f, err := parse(q, body)
			if err != nil {
				return err
			}
			f.Id = m[q.key()].Id
			f.CreationTimestamp = m[q.key()].CreationTimestamp
			m[q.key()] = f
			return nil
		},
		inUse:  func(string) *apiError { return nil },
		remove: func(key string) *apiError { delete(m, key); return nil },
	}
}

func (s *Server) healthCheckHandler() handler {
	m := s.healthChecks
	parse := func(q request, body []byte) (*legacy.HttpHealthCheck, *apiError) {
		hc := &legacy.HttpHealthCheck{}
		if err := json.Unmarshal(body, hc); err != nil {
			return nil, invalid("Invalid JSON payload received. %v", err)
		}
		if hc.Name != q.name {
			return nil, invalid("Invalid value for field 'resource.name': '%s'.", hc.Name)
		}
		if hc.Port == 0 {
			hc.Port = 80
		}
		if hc.Port < 1 || hc.Port > 65535 {
			return nil, invalid("Invalid value for field 'resource.port': '%d'.", hc.Port)
		}
		if hc.RequestPath == "" {
			hc.RequestPath = "/"
		}
		hc.CheckIntervalSec = orDefault(hc.CheckIntervalSec, 5)
		hc.TimeoutSec = orDefault(hc.TimeoutSec, 5)
		hc.HealthyThreshold = orDefault(hc.HealthyThreshold, 2)
		hc.UnhealthyThreshold = orDefault(hc.UnhealthyThreshold, 2)
		hc.Kind = "compute#httpHealthCheck"
		hc.SelfLink = s.link(q.key())
		return hc, nil
	}
	return handler{
		kind:   "compute#httpHealthCheck",
		exists: func(key string) bool { _, ok := m[key]; return ok },
		count:  func() int { return len(m) },
		get: func(key string) (any, bool) {
			hc, ok := m[key]
			return hc, ok
		},
		list: func(scope string, flt filter) []any {
			var items []any
			for _, k := range keysIn(m, "global/httpHealthChecks/") {
				if flt.match(map[string]string{"name": m[k].Name}) {
					items = append(items, m[k])
				}
			}
			return items
		},
		insert: func(q request, body []byte) *apiError {
			hc, err := parse(q, body)
			if err != nil {
				return err
			}
			hc.Id = s.id()
			hc.CreationTimestamp = now()
			m[q.key()] = hc
			return nil
		},
		update: func(q request, body []byte) *apiError {
			hc, err := parse(q, body)
			if err != nil {
				return err
			}
			hc.Id = m[q.key()].Id
			hc.CreationTimestamp = m[q.key()].CreationTimestamp
			m[q.key()] = hc
			return nil
		},
		inUse: func(key string) *apiError {
			for _, k := range keysIn(s.targetPools, "regions/") {
				for _, ref := range s.targetPools[k].HealthChecks {
					if s.relative(ref) == key {
						return inUse(s.rel(key), s.link(k))
					}
				}
			}
			return nil
		},
		remove: func(key string) *apiError { delete(m, key); return nil },
	}
}

func orDefault(v, d int64) int64 {
	if v == 0 {
		return d
	}
	return v
}
