package aws

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

const crossZoneAttribute = "load_balancing.cross_zone.enabled"

// EnsureLoadBalancer creates or updates the Service's NLB so that it matches
// the Service and nodes, changing only what differs.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	o := ownerOf(clusterName, svc)
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", o.service, "loadBalancer", o.loadBalancerName()))
	spec, err := parseService(svc)
	if err != nil {
		return nil, err
	}
	status, err := p.ensure(ctx, o, spec, nodes)
	if err != nil {
		return nil, retryLater(fmt.Errorf("ensuring load balancer %s for %s: %w", o.loadBalancerName(), o.service, err))
	}
	return status, nil
}

func (p *Provider) ensure(ctx context.Context, o owner, spec *serviceSpec, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	logger := klog.FromContext(ctx)
	instances, err := p.targetInstances(ctx, nodes, spec.targetNodeLabels)
	if err != nil {
		return nil, err
	}
	st, err := p.loadState(ctx, o)
	if err != nil {
		return nil, err
	}
	vpc, instances := p.vpcOf(ctx, st, instances)
	if vpc == "" {
		return nil, fmt.Errorf("cannot tell the VPC: no node has a running instance and --aws-vpc-id is not set")
	}

	// Subnets are resolved for a new load balancer, when annotated ones may
	// differ, and for a recreation; all before anything is deleted.
	var subnets []subnet
	resolve := func() error {
		if subnets, err = p.resolveSubnets(ctx, o, spec, vpc); err != nil {
			return err
		}
		if len(spec.eipAllocations) > 0 && len(spec.eipAllocations) != len(subnets) {
			return providers.NewInputError(annotationField(AnnotationEIPAllocations), "%d allocations for %d subnets: give one per subnet", len(spec.eipAllocations), len(subnets))
		}
		return nil
	}
	if st == nil || st.lb.Scheme != schemeOf(spec) || (len(spec.subnets) > 0 && !sameSubnetIDs(spec.subnets, st.lb)) {
		if err := resolve(); err != nil {
			return nil, err
		}
	}
	var replaced *lbState
	if st != nil {
		why := needsRecreate(st.lb, spec, subnets)
		if why != "" && subnets == nil {
			if err := resolve(); err != nil {
				return nil, err
			}
		}
		if why != "" {
			logger.Info("Recreating load balancer", "reason", why)
			if err := p.deleteLoadBalancer(ctx, st); err != nil {
				return nil, err
			}
			replaced = st
			st = nil
		}
	}
	fresh := st == nil
	if fresh {
		var kept map[string]*tgState
		if replaced != nil {
			kept = replaced.targetGroups
		}
		if st, err = p.createLoadBalancer(ctx, o, spec, subnets); err != nil {
			return nil, err
		}
		for name, tg := range kept {
			st.targetGroups[name] = tg // survived the old load balancer: reuse them
		}
	} else if err := p.loadListeners(ctx, st); err != nil {
		return nil, err
	}
	if err := p.ensureCrossZone(ctx, st, spec.crossZone, fresh); err != nil {
		return nil, err
	}
	tgs, err := p.ensureTargetGroups(ctx, o, st, spec, vpc)
	if err != nil {
		return nil, err
	}
	if err := p.ensureTags(ctx, o, st, spec, fresh); err != nil {
		return nil, err
	}
	if err := p.ensureTargets(ctx, spec, tgs, instanceIDs(instances)); err != nil {
		return nil, err
	}
	if err := p.ensureSecurityRules(ctx, o, spec, st, instances); err != nil {
		return nil, err
	}
	if err := p.ensureListeners(ctx, st, spec, tgs); err != nil {
		return nil, err
	}
	if err := p.deleteStaleTargetGroups(ctx, st, tgs); err != nil {
		return nil, err
	}
	return statusOf(st.lb), nil
}

// UpdateLoadBalancer brings the targets and the node security-group rules
// in line with nodes; everything else is EnsureLoadBalancer's job.
func (p *Provider) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	o := ownerOf(clusterName, svc)
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", o.service, "loadBalancer", o.loadBalancerName()))
	spec, err := parseService(svc)
	if err != nil {
		return err
	}
	if err := p.update(ctx, o, spec, nodes); err != nil {
		return retryLater(fmt.Errorf("updating load balancer %s for %s: %w", o.loadBalancerName(), o.service, err))
	}
	return nil
}

func (p *Provider) update(ctx context.Context, o owner, spec *serviceSpec, nodes []*v1.Node) error {
	instances, err := p.targetInstances(ctx, nodes, spec.targetNodeLabels)
	if err != nil {
		return err
	}
	st, err := p.loadState(ctx, o)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("the load balancer does not exist yet")
	}
	_, instances = p.vpcOf(ctx, st, instances)
	tgs := map[int32]*tgState{}
	for _, l := range spec.listeners {
		tg := st.targetGroups[o.targetGroupName(l)]
		if tg == nil {
			return fmt.Errorf("target group for port %d/%s is missing: the load balancer needs an Ensure first", l.port, l.protocol)
		}
		tgs[l.port] = tg
	}
	if err := p.ensureTargets(ctx, spec, tgs, instanceIDs(instances)); err != nil {
		return err
	}
	return p.ensureSecurityRules(ctx, o, spec, st, instances)
}

// needsRecreate says why the load balancer must be replaced (scheme, subnets
// or Elastic IPs differ: NLBs cannot change them in place), or "".
// subnets is nil when the annotation does not choose them.
func needsRecreate(lb *elbtypes.LoadBalancer, spec *serviceSpec, subnets []subnet) string {
	if scheme := schemeOf(spec); lb.Scheme != scheme {
		return fmt.Sprintf("scheme changes from %s to %s", lb.Scheme, scheme)
	}
	var have, haveEIPs []string
	for _, az := range lb.AvailabilityZones {
		have = append(have, aws.ToString(az.SubnetId))
		for _, a := range az.LoadBalancerAddresses {
			if a.AllocationId != nil {
				haveEIPs = append(haveEIPs, aws.ToString(a.AllocationId))
			}
		}
	}
	if subnets != nil {
		var want []string
		for _, s := range subnets {
			want = append(want, s.id)
		}
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(want, have) {
			return fmt.Sprintf("subnets change from %v to %v", have, want)
		}
	}
	want := slices.Clone(spec.eipAllocations)
	slices.Sort(want)
	slices.Sort(haveEIPs)
	if !slices.Equal(want, haveEIPs) {
		return fmt.Sprintf("Elastic IP allocations change from %v to %v", haveEIPs, want)
	}
	return ""
}

// sameSubnetIDs reports whether the annotated subnets are exactly the load
// balancer's, by ID (names need a lookup, so they never match here).
func sameSubnetIDs(annotated []string, lb *elbtypes.LoadBalancer) bool {
	var have []string
	for _, az := range lb.AvailabilityZones {
		have = append(have, aws.ToString(az.SubnetId))
	}
	want := slices.Clone(annotated)
	slices.Sort(want)
	slices.Sort(have)
	return slices.Equal(want, have)
}

func schemeOf(spec *serviceSpec) elbtypes.LoadBalancerSchemeEnum {
	if spec.internal {
		return elbtypes.LoadBalancerSchemeEnumInternal
	}
	return elbtypes.LoadBalancerSchemeEnumInternetFacing
}

func (p *Provider) createLoadBalancer(ctx context.Context, o owner, spec *serviceSpec, subnets []subnet) (*lbState, error) {
	tags := o.tags()
	for k, v := range spec.extraTags {
		tags[k] = v
	}
	in := &elb.CreateLoadBalancerInput{
		Name:          aws.String(o.loadBalancerName()),
		Type:          elbtypes.LoadBalancerTypeEnumNetwork,
		Scheme:        schemeOf(spec),
		IpAddressType: elbtypes.IpAddressTypeIpv4,
		Tags:          elbTags(tags),
	}
	for i, s := range subnets {
		m := elbtypes.SubnetMapping{SubnetId: aws.String(s.id)}
		if len(spec.eipAllocations) > 0 {
			m.AllocationId = aws.String(spec.eipAllocations[i])
		}
		in.SubnetMappings = append(in.SubnetMappings, m)
	}
	out, err := p.elb.CreateLoadBalancer(ctx, in)
	if errorCode(err) == "DuplicateLoadBalancerName" {
		return nil, &notOursError{kind: "load balancer", name: o.loadBalancerName()}
	}
	if err != nil {
		return nil, fmt.Errorf("creating load balancer: %w", err)
	}
	if len(out.LoadBalancers) != 1 {
		return nil, fmt.Errorf("creating load balancer: AWS returned %d load balancers", len(out.LoadBalancers))
	}
	klog.FromContext(ctx).Info("Created load balancer", "dnsName", aws.ToString(out.LoadBalancers[0].DNSName))
	return &lbState{lb: &out.LoadBalancers[0], tags: tags, targetGroups: map[string]*tgState{}, listeners: map[int32]elbtypes.Listener{}}, nil
}

// ensureCrossZone sets the cross-zone attribute; a new load balancer has it
// off, so it needs no read then.
func (p *Provider) ensureCrossZone(ctx context.Context, st *lbState, want, fresh bool) error {
	if fresh && !want {
		return nil
	}
	if !fresh {
		out, err := p.elb.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: st.lb.LoadBalancerArn})
		if err != nil {
			return fmt.Errorf("reading load balancer attributes: %w", err)
		}
		for _, a := range out.Attributes {
			if aws.ToString(a.Key) == crossZoneAttribute && aws.ToString(a.Value) == strconv.FormatBool(want) {
				return nil
			}
		}
	}
	_, err := p.elb.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{
		LoadBalancerArn: st.lb.LoadBalancerArn,
		Attributes:      []elbtypes.LoadBalancerAttribute{{Key: aws.String(crossZoneAttribute), Value: aws.String(strconv.FormatBool(want))}},
	})
	if err != nil {
		return fmt.Errorf("setting %s: %w", crossZoneAttribute, err)
	}
	return nil
}

// ensureTags adds the additional tags to the load balancer and target groups
// that lack them (tags removed from the annotation are left in place).
func (p *Provider) ensureTags(ctx context.Context, o owner, st *lbState, spec *serviceSpec, fresh bool) error {
	want := o.tags()
	for k, v := range spec.extraTags {
		want[k] = v
	}
	lacks := func(have map[string]string) bool {
		for k, v := range want {
			if have[k] != v {
				return true
			}
		}
		return false
	}
	var arns []string
	if !fresh && lacks(st.tags) {
		arns = append(arns, st.arn())
	}
	for _, name := range sortedKeys(st.targetGroups) {
		if tg := st.targetGroups[name]; !tg.fresh && lacks(tg.tags) {
			arns = append(arns, aws.ToString(tg.tg.TargetGroupArn))
		}
	}
	for start := 0; start < len(arns); start += 20 {
		chunk := arns[start:min(start+20, len(arns))]
		if _, err := p.elb.AddTags(ctx, &elb.AddTagsInput{ResourceArns: chunk, Tags: elbTags(want)}); err != nil {
			return fmt.Errorf("tagging %v: %w", chunk, err)
		}
	}
	return nil
}
