package aws

import "sort"

// LoadBalancer is a network load balancer in the fake.
type LoadBalancer struct {
	ARN     string
	Name    string
	Type    string
	Scheme  string
	DNSName string
	VPCID   string
	// IPAddressType is "ipv4" unless set.
	IPAddressType string
	// State is "provisioning" or "active" (see SetProvisioningDescribes);
	// a seeded load balancer is "active" unless set.
	State string
	// Subnets are the subnet IDs, one per availability zone.
	Subnets []string
	// AllocationIDs maps a subnet ID to its Elastic IP allocation.
	AllocationIDs map[string]string
	Attributes    map[string]string
	Tags          map[string]string
}

// TargetGroup is a target group in the fake.
type TargetGroup struct {
	ARN        string
	Name       string
	Protocol   string
	Port       int32
	VPCID      string
	TargetType string

	HealthCheckProtocol        string
	HealthCheckPort            string
	HealthCheckPath            string
	HealthCheckIntervalSeconds int32
	HealthCheckTimeoutSeconds  int32
	HealthyThresholdCount      int32
	UnhealthyThresholdCount    int32

	// LoadBalancerARNs are the load balancers whose listeners forward here.
	LoadBalancerARNs []string
	Targets          []Target
	Tags             map[string]string
}

// Target is a registered target.
type Target struct {
	ID   string
	Port int32
}

// Listener is a listener in the fake.
type Listener struct {
	ARN             string
	LoadBalancerARN string
	Port            int32
	Protocol        string
	TargetGroupARN  string
	Tags            map[string]string
}

// AddLoadBalancer seeds a load balancer (for look-alike tests); ARN and DNS
// name are filled in when empty. It returns the stored copy.
func (s *Server) AddLoadBalancer(lb LoadBalancer) LoadBalancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lb.ARN == "" {
		lb.ARN = s.lbARN(lb.Name)
	}
	if lb.DNSName == "" {
		lb.DNSName = s.dnsName(lb.Name)
	}
	if lb.Type == "" {
		lb.Type = "network"
	}
	if lb.Scheme == "" {
		lb.Scheme = "internet-facing"
	}
	if lb.IPAddressType == "" {
		lb.IPAddressType = "ipv4"
	}
	if lb.State == "" {
		lb.State = stateActive
	}
	lb.Subnets = append([]string(nil), lb.Subnets...)
	lb.AllocationIDs = copyTags(lb.AllocationIDs)
	lb.Tags = copyTags(lb.Tags)
	lb.Attributes = defaultLBAttributes()
	s.loadBalancers[lb.ARN] = &lb
	return lb
}

// AddTargetGroup seeds a target group (for look-alike tests); the ARN is
// filled in when empty. It returns the stored copy.
func (s *Server) AddTargetGroup(tg TargetGroup) TargetGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tg.ARN == "" {
		tg.ARN = s.tgARN(tg.Name)
	}
	tg.Tags = copyTags(tg.Tags)
	s.targetGroups[tg.ARN] = &tg
	return tg
}

// LoadBalancers returns copies of every load balancer, sorted by name.
func (s *Server) LoadBalancers() []LoadBalancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LoadBalancer
	for _, arn := range sortedKeys(s.loadBalancers) {
		lb := *s.loadBalancers[arn]
		lb.Subnets = append([]string(nil), lb.Subnets...)
		lb.AllocationIDs = copyTags(lb.AllocationIDs)
		lb.Attributes = copyTags(lb.Attributes)
		lb.Tags = copyTags(lb.Tags)
		out = append(out, lb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TargetGroups returns copies of every target group, sorted by name.
func (s *Server) TargetGroups() []TargetGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TargetGroup
	for _, arn := range sortedKeys(s.targetGroups) {
		tg := *s.targetGroups[arn]
		tg.LoadBalancerARNs = append([]string(nil), tg.LoadBalancerARNs...)
		tg.Targets = append([]Target(nil), tg.Targets...)
		tg.Tags = copyTags(tg.Tags)
		out = append(out, tg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Listeners returns copies of every listener, sorted by load balancer and port.
func (s *Server) Listeners() []Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Listener
	for _, arn := range sortedKeys(s.listeners) {
		l := *s.listeners[arn]
		l.Tags = copyTags(l.Tags)
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].LoadBalancerARN != out[j].LoadBalancerARN {
			return out[i].LoadBalancerARN < out[j].LoadBalancerARN
		}
		return out[i].Port < out[j].Port
	})
	return out
}

func (s *Server) lbARN(name string) string {
	return "arn:aws:elasticloadbalancing:" + s.region + ":" + s.account + ":loadbalancer/net/" + name + "/" + s.nextID(16)
}

func (s *Server) tgARN(name string) string {
	return "arn:aws:elasticloadbalancing:" + s.region + ":" + s.account + ":targetgroup/" + name + "/" + s.nextID(16)
}

func (s *Server) dnsName(name string) string {
	return name + "-" + s.nextID(10) + ".elb." + s.region + ".amazonaws.com"
}

func defaultLBAttributes() map[string]string {
	return map[string]string{
		"deletion_protection.enabled":       "false",
		"load_balancing.cross_zone.enabled": "false",
		"access_logs.s3.enabled":            "false",
	}
}
