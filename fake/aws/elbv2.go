package aws

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
)

var elbNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$`)

// elbv2 runs one ELBv2 action on the state; the caller holds s.mu.
func (s *Server) elbv2(action string, q query) (any, *apiError) {
	switch action {
	case "CreateLoadBalancer":
		return s.createLoadBalancer(q)
	case "DescribeLoadBalancers":
		return s.describeLoadBalancers(q)
	case "DeleteLoadBalancer":
		return s.deleteLoadBalancer(q)
	case "DescribeLoadBalancerAttributes":
		lb, err := s.lbByARN(q.str("LoadBalancerArn"))
		if err != nil {
			return nil, err
		}
		return attributesXML{Attributes: attributeList(lb.Attributes)}, nil
	case "ModifyLoadBalancerAttributes":
		return s.modifyLoadBalancerAttributes(q)
	case "CreateTargetGroup":
		return s.createTargetGroup(q)
	case "DescribeTargetGroups":
		return s.describeTargetGroups(q)
	case "ModifyTargetGroup":
		return s.modifyTargetGroup(q)
	case "DeleteTargetGroup":
		return s.deleteTargetGroup(q)
	case "RegisterTargets", "DeregisterTargets":
		return s.changeTargets(q, action == "RegisterTargets")
	case "DescribeTargetHealth":
		return s.describeTargetHealth(q)
	case "CreateListener":
		return s.createListener(q)
	case "DescribeListeners":
		return s.describeListeners(q)
	case "ModifyListener":
		return s.modifyListener(q)
	case "DeleteListener":
		l, ok := s.listeners[q.str("ListenerArn")]
		if !ok {
			return nil, errorf(400, "ListenerNotFound", "listener %q not found", q.str("ListenerArn"))
		}
		s.deleteListener(l)
		return struct{}{}, nil
	case "DescribeTags":
		return s.describeTags(q)
	case "AddTags":
		return s.addTags(q)
	}
	return nil, errorf(400, "InvalidAction", "the fake does not implement %s", action)
}

func (s *Server) lbByARN(arn string) (*LoadBalancer, *apiError) {
	lb, ok := s.loadBalancers[arn]
	if !ok {
		return nil, errorf(400, "LoadBalancerNotFound", "load balancer %q not found", arn)
	}
	return lb, nil
}

func (s *Server) tgByARN(arn string) (*TargetGroup, *apiError) {
	tg, ok := s.targetGroups[arn]
	if !ok {
		return nil, errorf(400, "TargetGroupNotFound", "target group %q not found", arn)
	}
	return tg, nil
}

func (s *Server) createLoadBalancer(q query) (any, *apiError) {
	name := q.str("Name")
	if !elbNameRE.MatchString(name) {
		return nil, errorf(400, "ValidationError", "load balancer name %q is not valid", name)
	}
	lb := &LoadBalancer{Name: name, Type: q.str("Type"), Scheme: q.str("Scheme"), IPAddressType: q.str("IpAddressType"),
		AllocationIDs: map[string]string{}, Attributes: defaultLBAttributes(), Tags: q.elbTags("Tags")}
	if lb.Type == "" {
		lb.Type = "application"
	}
	if lb.Scheme == "" {
		lb.Scheme = "internet-facing"
	}
	if lb.IPAddressType == "" {
		lb.IPAddressType = "ipv4"
	}
	subnets := q.strings("Subnets.member")
	for _, p := range q.elbList("SubnetMappings") {
		subnets = append(subnets, q.str(p+".SubnetId"))
		if a := q.str(p + ".AllocationId"); a != "" {
			if lb.Scheme != "internet-facing" {
				return nil, errorf(400, "InvalidConfigurationRequest", "Elastic IPs need an internet-facing load balancer")
			}
			lb.AllocationIDs[q.str(p+".SubnetId")] = a
		}
	}
	if len(subnets) == 0 {
		return nil, errorf(400, "ValidationError", "at least one subnet is required")
	}
	zones := map[string]bool{}
	for _, id := range subnets {
		sn, ok := s.subnets[id]
		if !ok {
			return nil, errorf(400, "SubnetNotFound", "subnet %q not found", id)
		}
		if zones[sn.AvailabilityZone] {
			return nil, errorf(400, "InvalidConfigurationRequest", "only one subnet per availability zone (%s)", sn.AvailabilityZone)
		}
		zones[sn.AvailabilityZone] = true
		if lb.VPCID != "" && lb.VPCID != sn.VPCID {
			return nil, errorf(400, "InvalidConfigurationRequest", "subnets are in different VPCs")
		}
		lb.VPCID = sn.VPCID
	}
	lb.Subnets = subnets
	// AWS: "This operation is idempotent ... If you attempt to create
	// multiple load balancers with the same settings, each call succeeds":
	// the same name with the same settings returns the existing one, with
	// other settings it is DuplicateLoadBalancerName.
	for _, arn := range sortedKeys(s.loadBalancers) {
		if other := s.loadBalancers[arn]; other.Name == name {
			if sameLoadBalancerSettings(other, lb) {
				return loadBalancersXML{LoadBalancers: []lbXML{s.lbXML(other, other.State)}}, nil
			}
			return nil, errorf(400, "DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists, but with different settings", name)
		}
	}
	lb.ARN = s.lbARN(name)
	lb.DNSName = s.dnsName(name)
	lb.State = stateProvisioning
	s.provisioning[lb.ARN] = s.provisioningDescribes
	s.loadBalancers[lb.ARN] = lb
	return loadBalancersXML{LoadBalancers: []lbXML{s.lbXML(lb, lb.State)}}, nil
}

// sameLoadBalancerSettings reports whether a CreateLoadBalancer asking for
// want would be answered with have: same type, scheme, address type,
// subnets, Elastic IPs and tags.
func sameLoadBalancerSettings(have, want *LoadBalancer) bool {
	return have.Type == want.Type && have.Scheme == want.Scheme && have.IPAddressType == want.IPAddressType &&
		sameSet(have.Subnets, want.Subnets) && maps.Equal(have.AllocationIDs, want.AllocationIDs) && maps.Equal(have.Tags, want.Tags)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (s *Server) describeLoadBalancers(q query) (any, *apiError) {
	names, arns := q.strings("Names.member"), q.strings("LoadBalancerArns.member")
	var out loadBalancersXML
	for _, arn := range sortedKeys(s.loadBalancers) {
		lb := s.loadBalancers[arn]
		if (len(names) == 0 && len(arns) == 0) || slices.Contains(names, lb.Name) || slices.Contains(arns, lb.ARN) {
			out.LoadBalancers = append(out.LoadBalancers, s.lbXML(lb, s.advanceLoadBalancer(lb)))
		}
	}
	if want := len(names) + len(arns); want > 0 && len(out.LoadBalancers) < want {
		return nil, errorf(400, "LoadBalancerNotFound", "one or more load balancers not found")
	}
	return out, nil
}

func (s *Server) deleteLoadBalancer(q query) (any, *apiError) {
	lb, ok := s.loadBalancers[q.str("LoadBalancerArn")]
	if !ok {
		return struct{}{}, nil // AWS: deleting a missing load balancer succeeds
	}
	for _, l := range s.listeners {
		if l.LoadBalancerARN == lb.ARN {
			s.deleteListener(l)
		}
	}
	delete(s.loadBalancers, lb.ARN)
	delete(s.provisioning, lb.ARN)
	return struct{}{}, nil
}

func (s *Server) modifyLoadBalancerAttributes(q query) (any, *apiError) {
	lb, err := s.lbByARN(q.str("LoadBalancerArn"))
	if err != nil {
		return nil, err
	}
	for k, v := range q.elbTags("Attributes") {
		if _, known := lb.Attributes[k]; !known {
			return nil, errorf(400, "InvalidConfigurationRequest", "unknown attribute %q", k)
		}
		if v != "true" && v != "false" {
			return nil, errorf(400, "InvalidConfigurationRequest", "attribute %q: %q is not a boolean", k, v)
		}
		lb.Attributes[k] = v
	}
	return attributesXML{Attributes: attributeList(lb.Attributes)}, nil
}

func (s *Server) createTargetGroup(q query) (any, *apiError) {
	name := q.str("Name")
	if !elbNameRE.MatchString(name) {
		return nil, errorf(400, "ValidationError", "target group name %q is not valid", name)
	}
	port, err := q.int32("Port", 0)
	if err != nil {
		return nil, err
	}
	tg := &TargetGroup{Name: name, Protocol: q.str("Protocol"), Port: port, VPCID: q.str("VpcId"), TargetType: q.str("TargetType"), Tags: q.elbTags("Tags")}
	if tg.TargetType == "" {
		tg.TargetType = "instance"
	}
	switch tg.Protocol {
	case "TCP", "UDP", "TCP_UDP", "TLS":
	default:
		return nil, errorf(400, "ValidationError", "protocol %q is not valid for a network target group", tg.Protocol)
	}
	if port < 1 || port > 65535 {
		return nil, errorf(400, "ValidationError", "port %d is out of range", port)
	}
	if !s.vpcExists(tg.VPCID) {
		return nil, errorf(400, "ValidationError", "VPC %q not found", tg.VPCID)
	}
	tg.HealthCheckProtocol, tg.HealthCheckPort = "TCP", "traffic-port"
	tg.HealthCheckIntervalSeconds, tg.HealthCheckTimeoutSeconds = 30, 10
	tg.HealthyThresholdCount, tg.UnhealthyThresholdCount = 5, 2
	if aerr := s.applyHealthCheck(tg, q); aerr != nil {
		return nil, aerr
	}
	for _, other := range s.targetGroups {
		if other.Name != name {
			continue
		}
		if other.Protocol == tg.Protocol && other.Port == tg.Port && other.VPCID == tg.VPCID {
			return targetGroupsXML{TargetGroups: []tgXML{tgToXML(other)}}, nil // AWS: same settings returns the existing one
		}
		return nil, errorf(400, "DuplicateTargetGroupName", "a target group with the name %q already exists", name)
	}
	tg.ARN = s.tgARN(name)
	s.targetGroups[tg.ARN] = tg
	return targetGroupsXML{TargetGroups: []tgXML{tgToXML(tg)}}, nil
}

// applyHealthCheck copies the HealthCheck* parameters present in q onto tg.
func (s *Server) applyHealthCheck(tg *TargetGroup, q query) *apiError {
	if v := q.str("HealthCheckProtocol"); v != "" {
		if v != "TCP" && v != "HTTP" && v != "HTTPS" {
			return errorf(400, "ValidationError", "health check protocol %q is not valid", v)
		}
		tg.HealthCheckProtocol = v
		if v == "TCP" {
			tg.HealthCheckPath = ""
		} else if tg.HealthCheckPath == "" {
			tg.HealthCheckPath = "/"
		}
	}
	if v := q.str("HealthCheckPort"); v != "" {
		if n, err := strconv.Atoi(v); v != "traffic-port" && (err != nil || n < 1 || n > 65535) {
			return errorf(400, "ValidationError", "health check port %q is not valid", v)
		}
		tg.HealthCheckPort = v
	}
	if v := q.str("HealthCheckPath"); v != "" {
		if tg.HealthCheckProtocol == "TCP" {
			return errorf(400, "ValidationError", "a health check path needs HTTP or HTTPS")
		}
		tg.HealthCheckPath = v
	}
	for key, dst := range map[string]*int32{
		"HealthCheckIntervalSeconds": &tg.HealthCheckIntervalSeconds,
		"HealthCheckTimeoutSeconds":  &tg.HealthCheckTimeoutSeconds,
		"HealthyThresholdCount":      &tg.HealthyThresholdCount,
		"UnhealthyThresholdCount":    &tg.UnhealthyThresholdCount,
	} {
		n, err := q.int32(key, *dst)
		if err != nil {
			return err
		}
		*dst = n
	}
	if tg.HealthCheckIntervalSeconds < 5 || tg.HealthCheckIntervalSeconds > 300 ||
		tg.HealthCheckTimeoutSeconds < 2 || tg.HealthCheckTimeoutSeconds > 120 ||
		tg.HealthyThresholdCount < 2 || tg.HealthyThresholdCount > 10 ||
		tg.UnhealthyThresholdCount < 2 || tg.UnhealthyThresholdCount > 10 {
		return errorf(400, "ValidationError", "health check interval, timeout or thresholds out of range")
	}
	return nil
}

func (s *Server) describeTargetGroups(q query) (any, *apiError) {
	names, arns, lbARN := q.strings("Names.member"), q.strings("TargetGroupArns.member"), q.str("LoadBalancerArn")
	if lbARN != "" {
		if _, err := s.lbByARN(lbARN); err != nil {
			return nil, err
		}
	}
	var out targetGroupsXML
	for _, arn := range sortedKeys(s.targetGroups) {
		tg := s.targetGroups[arn]
		match := len(names) == 0 && len(arns) == 0 && lbARN == ""
		match = match || slices.Contains(names, tg.Name) || slices.Contains(arns, tg.ARN) || (lbARN != "" && slices.Contains(tg.LoadBalancerARNs, lbARN))
		if match {
			out.TargetGroups = append(out.TargetGroups, tgToXML(tg))
		}
	}
	if want := len(names) + len(arns); want > 0 && len(out.TargetGroups) < want {
		return nil, errorf(400, "TargetGroupNotFound", "one or more target groups not found")
	}
	start, end, next, err := s.page(len(out.TargetGroups), q.str("Marker"))
	if err != nil {
		return nil, err
	}
	out.TargetGroups, out.NextMarker = out.TargetGroups[start:end], next
	return out, nil
}

func (s *Server) modifyTargetGroup(q query) (any, *apiError) {
	tg, err := s.tgByARN(q.str("TargetGroupArn"))
	if err != nil {
		return nil, err
	}
	changed := *tg
	if err := s.applyHealthCheck(&changed, q); err != nil {
		return nil, err
	}
	*tg = changed
	return targetGroupsXML{TargetGroups: []tgXML{tgToXML(tg)}}, nil
}

func (s *Server) deleteTargetGroup(q query) (any, *apiError) {
	tg, ok := s.targetGroups[q.str("TargetGroupArn")]
	if !ok {
		return struct{}{}, nil
	}
	if len(tg.LoadBalancerARNs) > 0 {
		return nil, errorf(400, "ResourceInUse", "target group %q is currently in use by a listener", tg.Name)
	}
	delete(s.targetGroups, tg.ARN)
	for _, t := range tg.Targets {
		delete(s.initialChecks, targetKey(tg.ARN, t))
	}
	return struct{}{}, nil
}

func (s *Server) changeTargets(q query, register bool) (any, *apiError) {
	tg, err := s.tgByARN(q.str("TargetGroupArn"))
	if err != nil {
		return nil, err
	}
	for _, p := range q.elbList("Targets") {
		port, err := q.int32(p+".Port", tg.Port)
		if err != nil {
			return nil, err
		}
		t := Target{ID: q.str(p + ".Id"), Port: port}
		i := slices.Index(tg.Targets, t)
		if !register {
			if i >= 0 {
				tg.Targets = slices.Delete(tg.Targets, i, i+1)
				delete(s.initialChecks, targetKey(tg.ARN, t))
			}
			continue
		}
		inst, ok := s.instances[t.ID]
		if !ok || inst.State != "running" {
			return nil, errorf(400, "InvalidTarget", "target %q is not a running instance", t.ID)
		}
		if inst.VPCID != tg.VPCID {
			return nil, errorf(400, "InvalidTarget", "instance %q is not in the target group's VPC", t.ID)
		}
		if i < 0 {
			tg.Targets = append(tg.Targets, t)
			if s.initialHealthDescribes > 0 {
				s.initialChecks[targetKey(tg.ARN, t)] = s.initialHealthDescribes
			}
		}
	}
	return struct{}{}, nil
}

func (s *Server) describeTargetHealth(q query) (any, *apiError) {
	tg, err := s.tgByARN(q.str("TargetGroupArn"))
	if err != nil {
		return nil, err
	}
	var out targetHealthXML
	for _, t := range tg.Targets {
		state, reason, description := s.targetHealth(tg, t)
		out.Descriptions = append(out.Descriptions, targetHealthDescXML{
			Target: targetXML{ID: t.ID, Port: t.Port}, HealthCheckPort: strconv.Itoa(int(t.Port)),
			Health: targetHealthStateXML{State: state, Reason: reason, Description: description},
		})
	}
	return out, nil
}
