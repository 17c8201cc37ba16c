package gce

import (
	"sort"

	"cloud.google.com/go/compute/apiv1/computepb"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/protobuf/proto"
)

// Keys returns the paths (below the project) of every stored address,
// firewall, health check, target pool and forwarding rule, sorted. Tests
// use it to check that nothing leaked.
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.addresses {
		keys = append(keys, k)
	}
	for k := range s.firewalls {
		keys = append(keys, k)
	}
	for k := range s.healthChecks {
		keys = append(keys, k)
	}
	for k := range s.targetPools {
		keys = append(keys, k)
	}
	for k := range s.forwardingRules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Address returns a copy of a stored address.
func (s *Server) Address(region, name string) (*computepb.Address, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := "regions/" + region + "/addresses/" + name
	a, ok := s.addresses[key]
	if !ok {
		return nil, false
	}
	return s.renderAddress(key, a), true
}

// Firewall returns a copy of a stored firewall rule.
func (s *Server) Firewall(name string) (*computepb.Firewall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.firewalls["global/firewalls/"+name]
	if !ok {
		return nil, false
	}
	return proto.Clone(f).(*computepb.Firewall), true
}

// HealthCheck returns a copy of a stored legacy HTTP health check.
func (s *Server) HealthCheck(name string) (*legacy.HttpHealthCheck, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hc, ok := s.healthChecks["global/httpHealthChecks/"+name]
	if !ok {
		return nil, false
	}
	c := *hc
	return &c, true
}

// TargetPool returns a copy of a stored target pool.
func (s *Server) TargetPool(region, name string) (*computepb.TargetPool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp, ok := s.targetPools["regions/"+region+"/targetPools/"+name]
	if !ok {
		return nil, false
	}
	return proto.Clone(tp).(*computepb.TargetPool), true
}

// ForwardingRule returns a copy of a stored forwarding rule.
func (s *Server) ForwardingRule(region, name string) (*computepb.ForwardingRule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fr, ok := s.forwardingRules["regions/"+region+"/forwardingRules/"+name]
	if !ok {
		return nil, false
	}
	return proto.Clone(fr).(*computepb.ForwardingRule), true
}
