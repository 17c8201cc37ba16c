package aws

import "strconv"

// Load balancers and targets do not become ready at once on AWS: a new NLB
// is "provisioning" for a few minutes before it is "active", and a newly
// registered target is "initial" until its first health checks pass or
// fail. The fake keeps that sequence, but counts describe answers instead
// of time, so that a test sees the same states on every run:
//
//   - a load balancer made by CreateLoadBalancer is "provisioning" in that
//     answer and in the next SetProvisioningDescribes(n) DescribeLoadBalancers
//     answers that include it (default 1), then "active";
//   - a target is "unused" (Target.NotInUse) while no listener forwards to
//     its target group, and "unused" (Target.InvalidState) while its
//     instance is not running; otherwise it is "initial"
//     (Elb.InitialHealthChecking) in the first SetInitialHealthDescribes(n)
//     DescribeTargetHealth answers that show it in use (default 1), then
//     "healthy", or "unhealthy" (Target.FailedHealthChecks) if the test
//     marked its instance so with SetInstanceHealthy.
//
// Every other call works in any state, as on AWS (listeners, attributes and
// targets can be changed while an NLB is provisioning). Seeded load
// balancers (AddLoadBalancer) are "active" unless given a State; seeded
// targets (AddTargetGroup) have had their initial checks.

const (
	stateProvisioning = "provisioning"
	stateActive       = "active"
)

// SetProvisioningDescribes sets how many DescribeLoadBalancers answers
// (after the CreateLoadBalancer answer) show a new load balancer as
// "provisioning" before it is "active"; 0 makes it active from the first
// describe. It applies to load balancers created afterwards.
func (s *Server) SetProvisioningDescribes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.provisioningDescribes = max(n, 0)
}

// SetInitialHealthDescribes sets how many DescribeTargetHealth answers show
// a newly registered target, once in use, as "initial" before its health
// check result; 0 skips the initial state. It applies to targets registered
// afterwards.
func (s *Server) SetInitialHealthDescribes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initialHealthDescribes = max(n, 0)
}

// SetInstanceHealthy sets whether the instance passes the target groups'
// health checks (all instances do unless set).
func (s *Server) SetInstanceHealthy(instanceID string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if healthy {
		delete(s.unhealthy, instanceID)
	} else {
		s.unhealthy[instanceID] = true
	}
}

// advanceLoadBalancer returns the state a describe answer shows for lb and
// counts the answer; the caller holds s.mu.
func (s *Server) advanceLoadBalancer(lb *LoadBalancer) string {
	if lb.State != stateProvisioning {
		return lb.State
	}
	if left := s.provisioning[lb.ARN]; left > 0 {
		s.provisioning[lb.ARN] = left - 1
		return lb.State
	}
	delete(s.provisioning, lb.ARN)
	lb.State = stateActive
	return lb.State
}

// targetKey names one registration in s.initialChecks.
func targetKey(tgARN string, t Target) string {
	return tgARN + " " + t.ID + ":" + strconv.Itoa(int(t.Port))
}

// targetHealth returns the health a DescribeTargetHealth answer shows for
// t in tg and counts the answer; the caller holds s.mu.
func (s *Server) targetHealth(tg *TargetGroup, t Target) (state, reason, description string) {
	if len(tg.LoadBalancerARNs) == 0 {
		return "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
	}
	if inst := s.instances[t.ID]; inst == nil || inst.State != "running" {
		return "unused", "Target.InvalidState", "Target is in the stopped state"
	}
	key := targetKey(tg.ARN, t)
	if left := s.initialChecks[key]; left > 0 {
		s.initialChecks[key] = left - 1
		return "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
	}
	delete(s.initialChecks, key)
	if s.unhealthy[t.ID] {
		return "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
	}
	return "healthy", "", ""
}
