package aws

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"k8s.io/klog/v2"
)

// ruleKey identifies one ingress rule: one protocol, one port, one CIDR.
type ruleKey struct {
	group    string
	protocol string // tcp or udp
	port     int32
	cidr     string
}

// desiredRules are the ingress rules the nodes' security groups need: the
// node ports from the source ranges, and the health-check port from the load
// balancer's subnets (the NLB health-checks from its private addresses
// there). The value is the rule's purpose, for its description.
func desiredRules(spec *serviceSpec, groups []string, subnetCIDRs []string) map[ruleKey]string {
	sources := spec.sourceRanges
	if len(sources) == 0 {
		sources = []string{"0.0.0.0/0"}
	}
	rules := map[ruleKey]string{}
	for _, g := range groups {
		for _, l := range spec.listeners {
			for _, proto := range protocolsOf(l.protocol) {
				for _, cidr := range sources {
					rules[ruleKey{g, proto, l.nodePort, cidr}] = "traffic"
				}
			}
		}
		var hcPorts []int32
		if spec.healthCheck.port == trafficPort {
			for _, l := range spec.listeners {
				hcPorts = append(hcPorts, l.nodePort)
			}
		} else {
			n, _ := strconv.ParseInt(spec.healthCheck.port, 10, 32) // validated by parseHealthCheck
			hcPorts = append(hcPorts, int32(n))
		}
		for _, port := range hcPorts {
			if _, open := rules[ruleKey{g, "tcp", port, "0.0.0.0/0"}]; open {
				continue
			}
			for _, cidr := range subnetCIDRs {
				if _, ok := rules[ruleKey{g, "tcp", port, cidr}]; !ok {
					rules[ruleKey{g, "tcp", port, cidr}] = "health check"
				}
			}
		}
	}
	return rules
}

func protocolsOf(listenerProtocol string) []string {
	switch listenerProtocol {
	case "UDP":
		return []string{"udp"}
	case "TCP_UDP":
		return []string{"tcp", "udp"}
	}
	return []string{"tcp"}
}

// nodeSecurityGroups picks each instance's security group for our rules: its
// only one, or the one tagged for the cluster (one DescribeSecurityGroups
// call, only when some instance has several).
func (p *Provider) nodeSecurityGroups(ctx context.Context, o owner, instances []instance) ([]string, error) {
	logger := klog.FromContext(ctx)
	picked := map[string]bool{}
	var ambiguous []string
	for _, in := range instances {
		if len(in.groups) == 1 {
			picked[in.groups[0]] = true
		} else {
			ambiguous = append(ambiguous, in.groups...)
		}
	}
	if len(ambiguous) > 0 {
		out, err := p.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: uniqueSorted(ambiguous)})
		if err != nil {
			return nil, fmt.Errorf("describing security groups %v: %w", uniqueSorted(ambiguous), err)
		}
		tagged := map[string]bool{}
		for _, g := range out.SecurityGroups {
			for _, t := range g.Tags {
				if aws.ToString(t.Key) == o.clusterTag() {
					tagged[aws.ToString(g.GroupId)] = true
				}
			}
		}
		for _, in := range instances {
			if len(in.groups) == 1 {
				continue
			}
			var mine []string
			for _, g := range in.groups {
				if tagged[g] {
					mine = append(mine, g)
				}
			}
			if len(mine) != 1 {
				logger.Info("Not opening node ports on instance: it needs exactly one security group tagged for the cluster", "instance", in.id, "groups", in.groups, "tag", o.clusterTag(), "tagged", mine)
				continue
			}
			picked[mine[0]] = true
		}
	}
	return sortedKeys(picked), nil
}

func uniqueSorted(in []string) []string {
	set := map[string]bool{}
	for _, s := range in {
		set[s] = true
	}
	return sortedKeys(set)
}

// ourRules lists the ingress rules tagged as this Service's, in any group.
func (p *Provider) ourRules(ctx context.Context, o owner) (map[ruleKey]string, error) {
	in := &ec2.DescribeSecurityGroupRulesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + o.clusterTag()), Values: []string{ownedValue}},
		{Name: aws.String("tag:" + serviceTagKey), Values: []string{o.service}},
	}}
	rules := map[ruleKey]string{} // value: rule ID
	for {
		out, err := p.ec2.DescribeSecurityGroupRules(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing our security group rules: %w", err)
		}
		for _, r := range out.SecurityGroupRules {
			tags := map[string]string{}
			for _, t := range r.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if aws.ToBool(r.IsEgress) || !o.owns(tags) {
				continue
			}
			rules[ruleKey{aws.ToString(r.GroupId), aws.ToString(r.IpProtocol), aws.ToInt32(r.FromPort), aws.ToString(r.CidrIpv4)}] = aws.ToString(r.SecurityGroupRuleId)
		}
		if aws.ToString(out.NextToken) == "" {
			return rules, nil
		}
		in.NextToken = out.NextToken
	}
}

// ensureSecurityRules authorizes the missing rules and revokes our extra ones.
func (p *Provider) ensureSecurityRules(ctx context.Context, o owner, spec *serviceSpec, st *lbState, instances []instance) error {
	groups, err := p.nodeSecurityGroups(ctx, o, instances)
	if err != nil {
		return err
	}
	var subnetIDs []string
	for _, az := range st.lb.AvailabilityZones {
		subnetIDs = append(subnetIDs, aws.ToString(az.SubnetId))
	}
	cidrs, err := p.subnetCIDRsOf(ctx, subnetIDs)
	if err != nil {
		return err
	}
	want := desiredRules(spec, groups, cidrs)
	have, err := p.ourRules(ctx, o)
	if err != nil {
		return err
	}
	add := map[ruleKey]string{}
	for k, purpose := range want {
		if _, ok := have[k]; !ok {
			add[k] = purpose
		}
	}
	remove := map[ruleKey]string{}
	for k, id := range have {
		if _, ok := want[k]; !ok {
			remove[k] = id
		}
	}
	if len(add) > 0 {
		if err := p.dropCovered(ctx, add); err != nil {
			return err
		}
	}
	if err := p.authorize(ctx, o, add); err != nil {
		return err
	}
	return p.revoke(ctx, remove)
}

// dropCovered removes from add the rules that a rule we do not own already
// grants (AWS would refuse ours as a duplicate): one read of the groups'
// rules, made only when some of ours are missing.
func (p *Provider) dropCovered(ctx context.Context, add map[ruleKey]string) error {
	var groups []string
	for k := range add {
		groups = append(groups, k.group)
	}
	in := &ec2.DescribeSecurityGroupRulesInput{Filters: []ec2types.Filter{{Name: aws.String("group-id"), Values: uniqueSorted(groups)}}}
	for {
		out, err := p.ec2.DescribeSecurityGroupRules(ctx, in)
		if err != nil {
			return fmt.Errorf("listing the rules of security groups %v: %w", uniqueSorted(groups), err)
		}
		for _, r := range out.SecurityGroupRules {
			if aws.ToBool(r.IsEgress) {
				continue
			}
			for k := range add {
				if covers(r, k) {
					klog.FromContext(ctx).V(2).Info("Node port already allowed by a rule that is not ours", "group", k.group, "rule", aws.ToString(r.SecurityGroupRuleId), "protocol", k.protocol, "port", k.port, "cidr", k.cidr)
					delete(add, k)
				}
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return nil
		}
		in.NextToken = out.NextToken
	}
}

// covers reports whether r allows exactly k's source CIDR to k's port.
func covers(r ec2types.SecurityGroupRule, k ruleKey) bool {
	if aws.ToString(r.GroupId) != k.group || aws.ToString(r.CidrIpv4) != k.cidr {
		return false
	}
	proto := aws.ToString(r.IpProtocol)
	if proto == "-1" {
		return true
	}
	return proto == k.protocol && aws.ToInt32(r.FromPort) <= k.port && k.port <= aws.ToInt32(r.ToPort)
}

// authorize adds rules, one call per security group, tagged as ours.
func (p *Provider) authorize(ctx context.Context, o owner, rules map[ruleKey]string) error {
	logger := klog.FromContext(ctx)
	grouped := byGroup(rules)
	for _, group := range sortedKeys(grouped) {
		keys := grouped[group]
		in := &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId:       aws.String(group),
			IpPermissions: permissions(keys, func(k ruleKey) string { return o.ruleDescription(rules[k]) }),
			TagSpecifications: []ec2types.TagSpecification{{
				ResourceType: ec2types.ResourceTypeSecurityGroupRule,
				Tags:         ec2Tags(o.tags()),
			}},
		}
		_, err := p.ec2.AuthorizeSecurityGroupIngress(ctx, in)
		if errorCode(err) == "InvalidPermission.Duplicate" && len(keys) > 1 {
			// Someone else's rule already allows one of these: add the others
			// one by one and leave theirs alone.
			for _, k := range keys {
				one := *in
				one.IpPermissions = permissions([]ruleKey{k}, func(k ruleKey) string { return o.ruleDescription(rules[k]) })
				if _, err := p.ec2.AuthorizeSecurityGroupIngress(ctx, &one); err != nil && errorCode(err) != "InvalidPermission.Duplicate" {
					return fmt.Errorf("allowing %s port %d from %s in security group %s: %w", k.protocol, k.port, k.cidr, group, err)
				}
			}
			err = nil
		}
		if errorCode(err) == "InvalidPermission.Duplicate" {
			logger.Info("An existing rule that is not ours already allows this", "group", group, "rule", keys[0])
			err = nil
		}
		if err != nil {
			return fmt.Errorf("allowing node ports in security group %s: %w", group, err)
		}
		logger.Info("Authorized security group rules", "group", group, "count", len(keys))
	}
	return nil
}

// revoke removes our rules by ID, one call per security group.
func (p *Provider) revoke(ctx context.Context, rules map[ruleKey]string) error {
	grouped := byGroup(rules)
	for _, group := range sortedKeys(grouped) {
		keys := grouped[group]
		var ids []string
		for _, k := range keys {
			ids = append(ids, rules[k])
		}
		_, err := p.ec2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(group), SecurityGroupRuleIds: ids})
		if isNotFound(err) && len(ids) > 1 {
			for _, id := range ids {
				_, err = p.ec2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(group), SecurityGroupRuleIds: []string{id}})
				if err != nil && !isNotFound(err) {
					break
				}
				err = nil
			}
		}
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("revoking rules %v in security group %s: %w", ids, group, err)
		}
		klog.FromContext(ctx).Info("Revoked security group rules", "group", group, "count", len(ids))
	}
	return nil
}

// byGroup splits rule keys by security group, each list sorted.
func byGroup[V any](rules map[ruleKey]V) map[string][]ruleKey {
	out := map[string][]ruleKey{}
	for k := range rules {
		out[k.group] = append(out[k.group], k)
	}
	for _, keys := range out {
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			if a.protocol != b.protocol {
				return a.protocol < b.protocol
			}
			if a.port != b.port {
				return a.port < b.port
			}
			return a.cidr < b.cidr
		})
	}
	return out
}

// permissions groups rules by protocol and port into IpPermissions.
func permissions(keys []ruleKey, description func(ruleKey) string) []ec2types.IpPermission {
	var out []ec2types.IpPermission
	for _, k := range keys {
		n := len(out)
		if n == 0 || aws.ToString(out[n-1].IpProtocol) != k.protocol || aws.ToInt32(out[n-1].FromPort) != k.port {
			out = append(out, ec2types.IpPermission{IpProtocol: aws.String(k.protocol), FromPort: aws.Int32(k.port), ToPort: aws.Int32(k.port)})
			n++
		}
		out[n-1].IpRanges = append(out[n-1].IpRanges, ec2types.IpRange{CidrIp: aws.String(k.cidr), Description: aws.String(description(k))})
	}
	return out
}

func ec2Tags(m map[string]string) []ec2types.Tag {
	var out []ec2types.Tag
	for _, k := range sortedKeys(m) {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}
