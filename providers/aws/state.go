package aws

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// lbState is what exists in AWS for one Service.
type lbState struct {
	lb   *elbtypes.LoadBalancer
	tags map[string]string
	// targetGroups are our target groups attached to the load balancer, by name.
	targetGroups map[string]*tgState
	// listeners by port; nil until loadListeners.
	listeners map[int32]elbtypes.Listener
}

// tgState is one of our target groups.
type tgState struct {
	tg   elbtypes.TargetGroup
	tags map[string]string
	// fresh is true for a target group created in this call: it has no
	// targets yet, so there is nothing to describe.
	fresh bool
}

func (s *lbState) arn() string { return aws.ToString(s.lb.LoadBalancerArn) }

// notOursError says a resource with our deterministic name exists but does
// not carry our ownership tags, so we leave it alone.
type notOursError struct {
	kind, name string
}

func (e *notOursError) Error() string {
	return fmt.Sprintf("%s %s exists but is not tagged as this Service's; refusing to modify it", e.kind, e.name)
}

// loadState reads the Service's load balancer, its target groups and their
// tags: three calls (DescribeLoadBalancers, DescribeTargetGroups,
// DescribeTags). It returns nil when there is no load balancer, and a
// notOursError when the name is taken by one we do not own.
func (p *Provider) loadState(ctx context.Context, o owner) (*lbState, error) {
	name := o.loadBalancerName()
	lb, err := p.describeLoadBalancer(ctx, name)
	if err != nil || lb == nil {
		return nil, err
	}
	st := &lbState{lb: lb, targetGroups: map[string]*tgState{}}
	tgs, err := p.describeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{LoadBalancerArn: lb.LoadBalancerArn})
	if err != nil {
		return nil, fmt.Errorf("describing the target groups of load balancer %s: %w", name, err)
	}
	arns := []string{st.arn()}
	for _, tg := range tgs {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	tags, err := p.describeTags(ctx, arns)
	if err != nil {
		return nil, fmt.Errorf("reading the tags of load balancer %s: %w", name, err)
	}
	st.tags = tags[st.arn()]
	if !o.owns(st.tags) {
		return nil, &notOursError{kind: "load balancer", name: name}
	}
	for _, tg := range tgs {
		t := tags[aws.ToString(tg.TargetGroupArn)]
		if o.owns(t) {
			st.targetGroups[aws.ToString(tg.TargetGroupName)] = &tgState{tg: tg, tags: t}
		}
	}
	return st, nil
}

// loadListeners reads the load balancer's listeners.
func (p *Provider) loadListeners(ctx context.Context, st *lbState) error {
	st.listeners = map[int32]elbtypes.Listener{}
	in := &elb.DescribeListenersInput{LoadBalancerArn: st.lb.LoadBalancerArn}
	for {
		out, err := p.elb.DescribeListeners(ctx, in)
		if err != nil {
			return fmt.Errorf("describing the listeners of load balancer %s: %w", aws.ToString(st.lb.LoadBalancerName), err)
		}
		for _, l := range out.Listeners {
			st.listeners[aws.ToInt32(l.Port)] = l
		}
		if aws.ToString(out.NextMarker) == "" {
			return nil
		}
		in.Marker = out.NextMarker
	}
}

func (p *Provider) describeTargetGroups(ctx context.Context, in *elb.DescribeTargetGroupsInput) ([]elbtypes.TargetGroup, error) {
	var all []elbtypes.TargetGroup
	for {
		out, err := p.elb.DescribeTargetGroups(ctx, in)
		if err != nil {
			return nil, err
		}
		all = append(all, out.TargetGroups...)
		if aws.ToString(out.NextMarker) == "" {
			return all, nil
		}
		in.Marker = out.NextMarker
	}
}

// findTargetGroupsByName looks up target groups by name outside the load
// balancer (left over from an interrupted call): one call for all names, or
// one per name when some do not exist. It returns ours by name, and a
// notOursError when a name is taken by a target group we do not own.
func (p *Provider) findTargetGroupsByName(ctx context.Context, o owner, names []string) (map[string]*tgState, error) {
	found := map[string]*tgState{}
	if len(names) == 0 {
		return found, nil
	}
	tgs, err := p.describeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: names})
	if isNotFound(err) && len(names) > 1 {
		tgs = nil
		for _, n := range names {
			one, err := p.describeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{n}})
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("describing target group %s: %w", n, err)
			}
			tgs = append(tgs, one...)
		}
	} else if isNotFound(err) {
		return found, nil
	} else if err != nil {
		return nil, fmt.Errorf("describing target groups %v: %w", names, err)
	}
	if len(tgs) == 0 {
		return found, nil
	}
	var arns []string
	for _, tg := range tgs {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	tags, err := p.describeTags(ctx, arns)
	if err != nil {
		return nil, fmt.Errorf("reading the tags of target groups %v: %w", names, err)
	}
	var foreign error
	for _, tg := range tgs {
		name := aws.ToString(tg.TargetGroupName)
		t := tags[aws.ToString(tg.TargetGroupArn)]
		if !o.owns(t) {
			foreign = &notOursError{kind: "target group", name: name}
			continue
		}
		found[name] = &tgState{tg: tg, tags: t}
	}
	return found, foreign
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
