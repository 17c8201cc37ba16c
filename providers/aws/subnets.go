package aws

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/extlb/extlb/providers"
)

// Subnet role tags, as the in-tree provider and the AWS Load Balancer
// Controller use them.
const (
	publicSubnetRoleTag   = "kubernetes.io/role/elb"
	internalSubnetRoleTag = "kubernetes.io/role/internal-elb"
)

// subnet is a subnet the load balancer uses.
type subnet struct {
	id, zone, cidr string
	tags           map[string]string
}

// resolveSubnets returns the subnets for a new load balancer, sorted by zone
// (annotated order when annotated): the annotated ones (IDs or Name tags) or
// one per zone among those tagged with the role for the scheme and not
// tagged for another cluster, preferring ones tagged for this cluster.
func (p *Provider) resolveSubnets(ctx context.Context, o owner, spec *serviceSpec, vpc string) ([]subnet, error) {
	field := annotationField(AnnotationSubnets)
	if len(spec.subnets) > 0 {
		var ids, names []string
		for _, s := range spec.subnets {
			if strings.HasPrefix(s, "subnet-") {
				ids = append(ids, s)
			} else {
				names = append(names, s)
			}
		}
		var found []subnet
		if len(ids) > 0 {
			got, err := p.describeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: ids})
			if errorCode(err) == "InvalidSubnetID.NotFound" {
				return nil, providers.NewInputError(field, "%v", err)
			}
			if err != nil {
				return nil, fmt.Errorf("describing subnets %v: %w", ids, err)
			}
			found = append(found, got...)
		}
		if len(names) > 0 {
			got, err := p.describeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
				{Name: aws.String("vpc-id"), Values: []string{vpc}}, {Name: aws.String("tag:Name"), Values: names},
			}})
			if err != nil {
				return nil, fmt.Errorf("describing subnets named %v: %w", names, err)
			}
			found = append(found, got...)
		}
		var ordered []subnet
		zones := map[string]string{}
		for _, want := range spec.subnets {
			i := slices.IndexFunc(found, func(s subnet) bool { return s.id == want || s.tags["Name"] == want })
			if i < 0 {
				return nil, providers.NewInputError(field, "subnet %q not found in VPC %s", want, vpc)
			}
			s := found[i]
			if other, dup := zones[s.zone]; dup {
				return nil, providers.NewInputError(field, "subnets %s and %s are both in zone %s: give at most one per zone", other, s.id, s.zone)
			}
			zones[s.zone] = s.id
			ordered = append(ordered, s)
		}
		return ordered, nil
	}

	role := publicSubnetRoleTag
	if spec.internal {
		role = internalSubnetRoleTag
	}
	candidates, err := p.describeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}}, {Name: aws.String("tag-key"), Values: []string{role}},
	}})
	if err != nil {
		return nil, fmt.Errorf("discovering subnets tagged %s in VPC %s: %w", role, vpc, err)
	}
	best := map[string]subnet{}
	for _, s := range candidates {
		if taggedForOtherCluster(s.tags, o.cluster) {
			continue
		}
		cur, ok := best[s.zone]
		_, mine := s.tags[o.clusterTag()]
		_, curMine := cur.tags[o.clusterTag()]
		if !ok || (mine && !curMine) || (mine == curMine && s.id < cur.id) {
			best[s.zone] = s
		}
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("no subnet in VPC %s is tagged %s (and not tagged for another cluster); tag one per zone or set the %s annotation", vpc, role, AnnotationSubnets)
	}
	var out []subnet
	for _, zone := range sortedKeys(best) {
		out = append(out, best[zone])
	}
	return out, nil
}

func taggedForOtherCluster(tags map[string]string, cluster string) bool {
	for k := range tags {
		if strings.HasPrefix(k, clusterTagPrefix) && k != clusterTagPrefix+cluster {
			return true
		}
	}
	return false
}

func (p *Provider) describeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput) ([]subnet, error) {
	var out []subnet
	for {
		res, err := p.ec2.DescribeSubnets(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, s := range res.Subnets {
			sn := subnet{id: aws.ToString(s.SubnetId), zone: aws.ToString(s.AvailabilityZone), cidr: aws.ToString(s.CidrBlock), tags: map[string]string{}}
			for _, t := range s.Tags {
				sn.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out = append(out, sn)
		}
		if aws.ToString(res.NextToken) == "" {
			break
		}
		in.NextToken = res.NextToken
	}
	p.mu.Lock()
	for _, s := range out {
		p.subnetCIDRs[s.id] = s.cidr
	}
	p.mu.Unlock()
	return out, nil
}

// subnetCIDRs returns the CIDR blocks of the given subnets, sorted; it
// describes only those not seen before.
func (p *Provider) subnetCIDRsOf(ctx context.Context, ids []string) ([]string, error) {
	var missing []string
	p.mu.Lock()
	for _, id := range ids {
		if _, ok := p.subnetCIDRs[id]; !ok {
			missing = append(missing, id)
		}
	}
	p.mu.Unlock()
	if len(missing) > 0 {
		if _, err := p.describeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: missing}); err != nil {
			return nil, fmt.Errorf("describing subnets %v: %w", missing, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var cidrs []string
	for _, id := range ids {
		if c := p.subnetCIDRs[id]; c != "" && !slices.Contains(cidrs, c) {
			cidrs = append(cidrs, c)
		}
	}
	sort.Strings(cidrs)
	return cidrs, nil
}
