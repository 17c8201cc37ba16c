package aws

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Subnet is a subnet the test seeds.
type Subnet struct {
	ID               string
	VPCID            string
	CIDRBlock        string
	AvailabilityZone string
	Tags             map[string]string
}

// Instance is an EC2 instance the test seeds.
type Instance struct {
	ID               string
	VPCID            string
	SubnetID         string
	AvailabilityZone string
	// State is "running" unless set ("stopped", "terminated", ...).
	State            string
	PrivateIP        string
	SecurityGroupIDs []string
}

// SecurityGroup is a security group the test seeds.
type SecurityGroup struct {
	ID    string
	Name  string
	VPCID string
	Tags  map[string]string
}

// SecurityGroupRule is one ingress rule (one protocol, port range and CIDR).
type SecurityGroupRule struct {
	ID          string
	GroupID     string
	Protocol    string
	FromPort    int32
	ToPort      int32
	CIDR        string
	Description string
	Tags        map[string]string
}

// AddSubnet seeds a subnet.
func (s *Server) AddSubnet(sn Subnet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn.Tags = copyTags(sn.Tags)
	s.subnets[sn.ID] = &sn
}

// AddInstance seeds an instance.
func (s *Server) AddInstance(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.State == "" {
		in.State = "running"
	}
	in.SecurityGroupIDs = append([]string(nil), in.SecurityGroupIDs...)
	s.instances[in.ID] = &in
}

// AddSecurityGroup seeds a security group.
func (s *Server) AddSecurityGroup(sg SecurityGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg.Tags = copyTags(sg.Tags)
	s.groups[sg.ID] = &sg
}

// AddSecurityGroupRule seeds a rule (for example one that is not ours); the
// ID is filled in when empty. It returns the stored copy.
func (s *Server) AddSecurityGroupRule(r SecurityGroupRule) SecurityGroupRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ID == "" {
		r.ID = "sgr-" + s.nextID(17)
	}
	r.Tags = copyTags(r.Tags)
	s.rules[r.ID] = &r
	return r
}

// SecurityGroupRules returns copies of every ingress rule, sorted by group,
// protocol, port and CIDR.
func (s *Server) SecurityGroupRules() []SecurityGroupRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SecurityGroupRule
	for _, r := range s.rules {
		c := *r
		c.Tags = copyTags(r.Tags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.GroupID != b.GroupID {
			return a.GroupID < b.GroupID
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.FromPort != b.FromPort {
			return a.FromPort < b.FromPort
		}
		return a.CIDR < b.CIDR
	})
	return out
}

func (s *Server) vpcExists(id string) bool {
	for _, sn := range s.subnets {
		if sn.VPCID == id {
			return true
		}
	}
	return false
}

// ec2 runs one EC2 action on the state; the caller holds s.mu.
func (s *Server) ec2(action string, q query) (any, *apiError) {
	filters := q.ec2Filters()
	switch action {
	case "DescribeInstances":
		return s.describeInstances(q, filters)
	case "DescribeSubnets":
		return s.describeSubnets(q, filters)
	case "DescribeSecurityGroups":
		return s.describeSecurityGroups(q, filters)
	case "DescribeSecurityGroupRules":
		return s.describeSecurityGroupRules(q, filters)
	case "AuthorizeSecurityGroupIngress":
		return s.authorizeIngress(q)
	case "RevokeSecurityGroupIngress":
		return s.revokeIngress(q)
	}
	return nil, errorf(400, "InvalidAction", "the fake does not implement %s", action)
}

// matchFilters applies ec2query filters to one resource: fields maps the
// supported filter names to the resource's values; tags handles tag-key and
// tag:<key>. An unsupported filter name is an error, as in EC2.
func matchFilters(filters map[string][]string, fields map[string]string, tags map[string]string) (bool, *apiError) {
	for name, values := range filters {
		switch {
		case name == "tag-key":
			if !slices.ContainsFunc(values, func(k string) bool { _, ok := tags[k]; return ok }) {
				return false, nil
			}
		case strings.HasPrefix(name, "tag:"):
			v, ok := tags[strings.TrimPrefix(name, "tag:")]
			if !ok || !slices.Contains(values, v) {
				return false, nil
			}
		default:
			field, ok := fields[name]
			if !ok {
				return false, errorf(400, "InvalidParameterValue", "the filter %q is not supported", name)
			}
			if !slices.Contains(values, field) {
				return false, nil
			}
		}
	}
	return true, nil
}

func (s *Server) describeInstances(q query, filters map[string][]string) (any, *apiError) {
	ids := q.strings("InstanceId")
	for _, id := range ids {
		if _, ok := s.instances[id]; !ok {
			return nil, errorf(400, "InvalidInstanceID.NotFound", "the instance ID %q does not exist", id)
		}
	}
	res := reservationXML{ReservationID: "r-" + s.nextID(17), OwnerID: s.account}
	for _, id := range sortedKeys(s.instances) {
		in := s.instances[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		ok, err := matchFilters(filters, map[string]string{"instance-id": in.ID, "vpc-id": in.VPCID, "instance-state-name": in.State, "availability-zone": in.AvailabilityZone}, nil)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		x := instanceXML{ID: in.ID, VPCID: in.VPCID, SubnetID: in.SubnetID, PrivateIP: in.PrivateIP, AZ: in.AvailabilityZone, StateName: in.State, StateCode: stateCode(in.State)}
		for _, g := range in.SecurityGroupIDs {
			gx := groupIdentifierXML{ID: g}
			if sg := s.groups[g]; sg != nil {
				gx.Name = sg.Name
			}
			x.Groups = append(x.Groups, gx)
		}
		res.Instances = append(res.Instances, x)
	}
	start, end, next, err := s.page(len(res.Instances), q.str("NextToken"))
	if err != nil {
		return nil, err
	}
	res.Instances = res.Instances[start:end]
	out := describeInstancesXML{NextToken: next}
	if len(res.Instances) > 0 {
		out.Reservations = []reservationXML{res}
	}
	return out, nil
}

func stateCode(state string) int {
	return map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}[state]
}

func (s *Server) describeSubnets(q query, filters map[string][]string) (any, *apiError) {
	ids := q.strings("SubnetId")
	for _, id := range ids {
		if _, ok := s.subnets[id]; !ok {
			return nil, errorf(400, "InvalidSubnetID.NotFound", "the subnet ID %q does not exist", id)
		}
	}
	var out describeSubnetsXML
	for _, id := range sortedKeys(s.subnets) {
		sn := s.subnets[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		ok, err := matchFilters(filters, map[string]string{"subnet-id": sn.ID, "vpc-id": sn.VPCID, "availability-zone": sn.AvailabilityZone}, sn.Tags)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Subnets = append(out.Subnets, subnetXML{ID: sn.ID, VPCID: sn.VPCID, CIDR: sn.CIDRBlock, AZ: sn.AvailabilityZone, State: "available", Tags: ec2Tags(sn.Tags)})
		}
	}
	start, end, next, err := s.page(len(out.Subnets), q.str("NextToken"))
	if err != nil {
		return nil, err
	}
	out.Subnets, out.NextToken = out.Subnets[start:end], next
	return out, nil
}

func (s *Server) describeSecurityGroups(q query, filters map[string][]string) (any, *apiError) {
	ids := q.strings("GroupId")
	for _, id := range ids {
		if _, ok := s.groups[id]; !ok {
			return nil, errorf(400, "InvalidGroup.NotFound", "the security group %q does not exist", id)
		}
	}
	var out describeSecurityGroupsXML
	for _, id := range sortedKeys(s.groups) {
		sg := s.groups[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		ok, err := matchFilters(filters, map[string]string{"group-id": sg.ID, "vpc-id": sg.VPCID, "group-name": sg.Name}, sg.Tags)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Groups = append(out.Groups, securityGroupXML{ID: sg.ID, Name: sg.Name, VPCID: sg.VPCID, OwnerID: s.account, Description: sg.Name,
				IngressPermissions: s.ingressPermissions(sg.ID), Tags: ec2Tags(sg.Tags)})
		}
	}
	return out, nil
}

// ingressPermissions renders a group's ingress rules as DescribeSecurityGroups
// does: one IpPermission per protocol and port range, with its CIDRs (and
// their descriptions) as ipRanges.
func (s *Server) ingressPermissions(group string) []ipPermissionXML {
	var rules []*SecurityGroupRule
	for _, r := range s.rules {
		if r.GroupID == group {
			rules = append(rules, r)
		}
	}
	sort.Slice(rules, func(i, j int) bool {
		a, b := rules[i], rules[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.FromPort != b.FromPort {
			return a.FromPort < b.FromPort
		}
		if a.ToPort != b.ToPort {
			return a.ToPort < b.ToPort
		}
		return a.CIDR < b.CIDR
	})
	var out []ipPermissionXML
	for _, r := range rules {
		n := len(out)
		if n == 0 || out[n-1].Protocol != r.Protocol || ptrValue(out[n-1].FromPort) != r.FromPort || ptrValue(out[n-1].ToPort) != r.ToPort {
			p := ipPermissionXML{Protocol: r.Protocol}
			if r.Protocol != "-1" { // all traffic has no port range
				from, to := r.FromPort, r.ToPort
				p.FromPort, p.ToPort = &from, &to
			}
			out = append(out, p)
			n++
		}
		out[n-1].IPRanges = append(out[n-1].IPRanges, ipRangeXML{CIDR: r.CIDR, Description: r.Description})
	}
	return out
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

func (s *Server) describeSecurityGroupRules(q query, filters map[string][]string) (any, *apiError) {
	ids := q.strings("SecurityGroupRuleId")
	var out describeRulesXML
	for _, id := range sortedKeys(s.rules) {
		r := s.rules[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		ok, err := matchFilters(filters, map[string]string{"group-id": r.GroupID, "security-group-rule-id": r.ID}, r.Tags)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Rules = append(out.Rules, s.ruleXML(r))
		}
	}
	start, end, next, err := s.page(len(out.Rules), q.str("NextToken"))
	if err != nil {
		return nil, err
	}
	out.Rules, out.NextToken = out.Rules[start:end], next
	return out, nil
}

func (s *Server) ruleXML(r *SecurityGroupRule) ruleXML {
	return ruleXML{ID: r.ID, GroupID: r.GroupID, OwnerID: s.account, IsEgress: false, Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort, CIDRv4: r.CIDR, Description: r.Description, Tags: ec2Tags(r.Tags)}
}

// ipPermissionRules reads "IpPermissions.N" into rules for group (without IDs).
func ipPermissionRules(q query, group string) ([]SecurityGroupRule, *apiError) {
	var out []SecurityGroupRule
	for _, p := range q.members("IpPermissions") {
		proto := q.str(p + ".IpProtocol")
		switch proto {
		case "6":
			proto = "tcp"
		case "17":
			proto = "udp"
		case "tcp", "udp", "icmp", "-1":
		default:
			return nil, errorf(400, "InvalidParameterValue", "invalid IP protocol %q", proto)
		}
		from, err := q.int32(p+".FromPort", -1)
		if err != nil {
			return nil, err
		}
		to, err := q.int32(p+".ToPort", -1)
		if err != nil {
			return nil, err
		}
		if (proto == "tcp" || proto == "udp") && (from < 0 || to > 65535 || from > to) {
			return nil, errorf(400, "InvalidParameterValue", "invalid port range %d-%d", from, to)
		}
		for _, rp := range q.members(p + ".IpRanges") {
			cidr := q.str(rp + ".CidrIp")
			if pfx, err := netip.ParsePrefix(cidr); err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
				return nil, errorf(400, "InvalidParameterValue", "invalid CIDR %q", cidr)
			}
			out = append(out, SecurityGroupRule{GroupID: group, Protocol: proto, FromPort: from, ToPort: to, CIDR: cidr, Description: q.str(rp + ".Description")})
		}
	}
	return out, nil
}

func (s *Server) findRule(r SecurityGroupRule) *SecurityGroupRule {
	for _, have := range s.rules {
		if have.GroupID == r.GroupID && have.Protocol == r.Protocol && have.FromPort == r.FromPort && have.ToPort == r.ToPort && have.CIDR == r.CIDR {
			return have
		}
	}
	return nil
}

func (s *Server) authorizeIngress(q query) (any, *apiError) {
	group := q.str("GroupId")
	if _, ok := s.groups[group]; !ok {
		return nil, errorf(400, "InvalidGroup.NotFound", "the security group %q does not exist", group)
	}
	rules, err := ipPermissionRules(q, group)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, p := range q.members("TagSpecification") {
		if rt := q.str(p + ".ResourceType"); rt != "security-group-rule" {
			return nil, errorf(400, "InvalidParameterValue", "cannot tag resource type %q here", rt)
		}
		for _, tp := range q.members(p + ".Tag") {
			tags[q.str(tp+".Key")] = q.str(tp + ".Value")
		}
	}
	for _, r := range rules {
		if s.findRule(r) != nil {
			return nil, errorf(400, "InvalidPermission.Duplicate", "the specified rule %q %s %d-%d already exists", r.CIDR, r.Protocol, r.FromPort, r.ToPort)
		}
	}
	out := authorizeXML{Return: true}
	for _, r := range rules {
		r.ID = "sgr-" + s.nextID(17)
		r.Tags = copyTags(tags)
		s.rules[r.ID] = &r
		out.Rules = append(out.Rules, s.ruleXML(&r))
	}
	return out, nil
}

func (s *Server) revokeIngress(q query) (any, *apiError) {
	group := q.str("GroupId")
	if _, ok := s.groups[group]; !ok {
		return nil, errorf(400, "InvalidGroup.NotFound", "the security group %q does not exist", group)
	}
	var doomed []string
	for _, id := range q.strings("SecurityGroupRuleId") {
		r, ok := s.rules[id]
		if !ok || r.GroupID != group {
			return nil, errorf(400, "InvalidSecurityGroupRuleId.NotFound", "the security group rule %q does not exist in %q", id, group)
		}
		doomed = append(doomed, id)
	}
	rules, err := ipPermissionRules(q, group)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		have := s.findRule(r)
		if have == nil {
			return nil, errorf(400, "InvalidPermission.NotFound", "the rule %q %s %d-%d does not exist", r.CIDR, r.Protocol, r.FromPort, r.ToPort)
		}
		doomed = append(doomed, have.ID)
	}
	for _, id := range doomed {
		delete(s.rules, id)
	}
	return revokeXML{Return: true}, nil
}
