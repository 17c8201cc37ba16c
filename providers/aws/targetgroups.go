package aws

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// ensureTargetGroups makes one target group per listener with the wanted
// health check and returns them by listener port. Target groups are named
// after protocol, port and node port, so a change of those makes a new one
// (the old one goes in deleteStaleTargetGroups).
func (p *Provider) ensureTargetGroups(ctx context.Context, o owner, st *lbState, spec *serviceSpec, vpc string) (map[int32]*tgState, error) {
	out := map[int32]*tgState{}
	var created []string
	for _, l := range spec.listeners {
		name := o.targetGroupName(l)
		hc := spec.healthCheck
		if tg := st.targetGroups[name]; tg != nil {
			if !healthCheckMatches(tg.tg, hc) {
				if err := p.modifyHealthCheck(ctx, tg, hc); err != nil {
					return nil, err
				}
			}
			out[l.port] = tg
			continue
		}
		tags := o.tags()
		for k, v := range spec.extraTags {
			tags[k] = v
		}
		in := &elb.CreateTargetGroupInput{
			Name:                       aws.String(name),
			Protocol:                   elbtypes.ProtocolEnum(l.protocol),
			Port:                       aws.Int32(l.nodePort),
			VpcId:                      aws.String(vpc),
			TargetType:                 elbtypes.TargetTypeEnumInstance,
			HealthCheckProtocol:        elbtypes.ProtocolEnum(hc.protocol),
			HealthCheckPort:            aws.String(hc.port),
			HealthCheckIntervalSeconds: aws.Int32(hc.interval),
			HealthCheckTimeoutSeconds:  aws.Int32(hc.timeout),
			HealthyThresholdCount:      aws.Int32(hc.healthy),
			UnhealthyThresholdCount:    aws.Int32(hc.unhealthy),
			Tags:                       elbTags(tags),
		}
		if hc.path != "" {
			in.HealthCheckPath = aws.String(hc.path)
		}
		res, err := p.elb.CreateTargetGroup(ctx, in)
		if errorCode(err) == "DuplicateTargetGroupName" {
			// Left over with other settings, ours or not: look before touching.
			found, ferr := p.findTargetGroupsByName(ctx, o, []string{name})
			if ferr != nil {
				return nil, ferr
			}
			tg := found[name]
			if tg == nil {
				return nil, fmt.Errorf("creating target group %s: %w", name, err)
			}
			if tg.tg.Protocol != elbtypes.ProtocolEnum(l.protocol) || aws.ToInt32(tg.tg.Port) != l.nodePort {
				return nil, fmt.Errorf("target group %s exists with protocol %s port %d, want %s port %d", name, tg.tg.Protocol, aws.ToInt32(tg.tg.Port), l.protocol, l.nodePort)
			}
			if !healthCheckMatches(tg.tg, hc) {
				if err := p.modifyHealthCheck(ctx, tg, hc); err != nil {
					return nil, err
				}
			}
			st.targetGroups[name], out[l.port] = tg, tg
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating target group %s for port %d/%s: %w", name, l.port, l.protocol, err)
		}
		if len(res.TargetGroups) != 1 {
			return nil, fmt.Errorf("creating target group %s: AWS returned %d target groups", name, len(res.TargetGroups))
		}
		tg := &tgState{tg: res.TargetGroups[0], tags: tags, fresh: true}
		st.targetGroups[name], out[l.port] = tg, tg
		created = append(created, aws.ToString(tg.tg.TargetGroupArn))
		klog.FromContext(ctx).Info("Created target group", "targetGroup", name, "port", l.port, "protocol", l.protocol)
	}
	if len(created) > 0 {
		// CreateTargetGroup returns an existing group of the same name and
		// settings instead of failing: make sure those are ours.
		tags, err := p.describeTags(ctx, created)
		if err != nil {
			return nil, fmt.Errorf("reading the tags of new target groups: %w", err)
		}
		for _, arn := range created {
			if !o.owns(tags[arn]) {
				for name, tg := range st.targetGroups {
					if aws.ToString(tg.tg.TargetGroupArn) == arn {
						delete(st.targetGroups, name)
						return nil, &notOursError{kind: "target group", name: name}
					}
				}
			}
		}
	}
	return out, nil
}

func healthCheckMatches(tg elbtypes.TargetGroup, hc healthCheck) bool {
	path := aws.ToString(tg.HealthCheckPath)
	if hc.protocol == "TCP" {
		path = ""
	}
	return string(tg.HealthCheckProtocol) == hc.protocol && aws.ToString(tg.HealthCheckPort) == hc.port && path == hc.path &&
		aws.ToInt32(tg.HealthCheckIntervalSeconds) == hc.interval && aws.ToInt32(tg.HealthCheckTimeoutSeconds) == hc.timeout &&
		aws.ToInt32(tg.HealthyThresholdCount) == hc.healthy && aws.ToInt32(tg.UnhealthyThresholdCount) == hc.unhealthy
}

func (p *Provider) modifyHealthCheck(ctx context.Context, tg *tgState, hc healthCheck) error {
	in := &elb.ModifyTargetGroupInput{
		TargetGroupArn:             tg.tg.TargetGroupArn,
		HealthCheckProtocol:        elbtypes.ProtocolEnum(hc.protocol),
		HealthCheckPort:            aws.String(hc.port),
		HealthCheckIntervalSeconds: aws.Int32(hc.interval),
		HealthCheckTimeoutSeconds:  aws.Int32(hc.timeout),
		HealthyThresholdCount:      aws.Int32(hc.healthy),
		UnhealthyThresholdCount:    aws.Int32(hc.unhealthy),
	}
	if hc.path != "" {
		in.HealthCheckPath = aws.String(hc.path)
	}
	out, err := p.elb.ModifyTargetGroup(ctx, in)
	if err != nil {
		return fmt.Errorf("updating the health check of target group %s: %w", aws.ToString(tg.tg.TargetGroupName), err)
	}
	if len(out.TargetGroups) == 1 {
		tg.tg = out.TargetGroups[0]
	}
	klog.FromContext(ctx).Info("Updated health check", "targetGroup", aws.ToString(tg.tg.TargetGroupName), "protocol", hc.protocol, "port", hc.port, "path", hc.path)
	return nil
}

// ensureTargets registers the missing instances and deregisters the extra
// ones, in chunks, in every target group.
func (p *Provider) ensureTargets(ctx context.Context, spec *serviceSpec, tgs map[int32]*tgState, ids []string) error {
	for _, l := range spec.listeners {
		tg := tgs[l.port]
		arn := tg.tg.TargetGroupArn
		have := map[elbtypes.TargetDescription]bool{}
		if !tg.fresh {
			out, err := p.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: arn})
			if err != nil {
				return fmt.Errorf("listing the targets of %s: %w", aws.ToString(tg.tg.TargetGroupName), err)
			}
			for _, d := range out.TargetHealthDescriptions {
				if d.TargetHealth != nil && d.TargetHealth.State == elbtypes.TargetHealthStateEnumDraining {
					continue // already being deregistered
				}
				have[elbtypes.TargetDescription{Id: d.Target.Id, Port: d.Target.Port}] = true
			}
		}
		var add, remove []elbtypes.TargetDescription
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
			if !hasTarget(have, id, l.nodePort) {
				add = append(add, elbtypes.TargetDescription{Id: aws.String(id), Port: aws.Int32(l.nodePort)})
			}
		}
		for t := range have {
			if !want[aws.ToString(t.Id)] || aws.ToInt32(t.Port) != l.nodePort {
				remove = append(remove, elbtypes.TargetDescription{Id: t.Id, Port: t.Port})
			}
		}
		for start := 0; start < len(add); start += p.opts.TargetChunkSize {
			chunk := add[start:min(start+p.opts.TargetChunkSize, len(add))]
			if _, err := p.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: arn, Targets: chunk}); err != nil {
				return fmt.Errorf("registering %d targets in %s: %w", len(chunk), aws.ToString(tg.tg.TargetGroupName), err)
			}
		}
		for start := 0; start < len(remove); start += p.opts.TargetChunkSize {
			chunk := remove[start:min(start+p.opts.TargetChunkSize, len(remove))]
			if _, err := p.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: arn, Targets: chunk}); err != nil {
				return fmt.Errorf("deregistering %d targets from %s: %w", len(chunk), aws.ToString(tg.tg.TargetGroupName), err)
			}
		}
		if len(add)+len(remove) > 0 {
			klog.FromContext(ctx).Info("Updated targets", "targetGroup", aws.ToString(tg.tg.TargetGroupName), "registered", len(add), "deregistered", len(remove))
		}
	}
	return nil
}

func hasTarget(have map[elbtypes.TargetDescription]bool, id string, port int32) bool {
	for t := range have {
		if aws.ToString(t.Id) == id && aws.ToInt32(t.Port) == port {
			return true
		}
	}
	return false
}

// ensureListeners creates, repoints or deletes listeners so that there is
// exactly one per Service port, forwarding to its target group.
func (p *Provider) ensureListeners(ctx context.Context, st *lbState, spec *serviceSpec, tgs map[int32]*tgState) error {
	logger := klog.FromContext(ctx)
	wanted := map[int32]bool{}
	for _, l := range spec.listeners {
		wanted[l.port] = true
		tgARN := tgs[l.port].tg.TargetGroupArn
		action := []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}
		have, ok := st.listeners[l.port]
		if !ok {
			if _, err := p.elb.CreateListener(ctx, &elb.CreateListenerInput{
				LoadBalancerArn: st.lb.LoadBalancerArn, Port: aws.Int32(l.port), Protocol: elbtypes.ProtocolEnum(l.protocol), DefaultActions: action,
			}); err != nil {
				return fmt.Errorf("creating listener %d/%s: %w", l.port, l.protocol, err)
			}
			logger.Info("Created listener", "port", l.port, "protocol", l.protocol)
			continue
		}
		if string(have.Protocol) == l.protocol && len(have.DefaultActions) == 1 &&
			have.DefaultActions[0].Type == elbtypes.ActionTypeEnumForward && aws.ToString(have.DefaultActions[0].TargetGroupArn) == aws.ToString(tgARN) {
			continue
		}
		if _, err := p.elb.ModifyListener(ctx, &elb.ModifyListenerInput{
			ListenerArn: have.ListenerArn, Protocol: elbtypes.ProtocolEnum(l.protocol), DefaultActions: action,
		}); err != nil {
			return fmt.Errorf("updating listener %d/%s: %w", l.port, l.protocol, err)
		}
		logger.Info("Updated listener", "port", l.port, "protocol", l.protocol)
	}
	for port, have := range st.listeners {
		if wanted[port] {
			continue
		}
		if _, err := p.elb.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: have.ListenerArn}); err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting listener %d: %w", port, err)
		}
		logger.Info("Deleted listener", "port", port)
	}
	return nil
}

// deleteStaleTargetGroups deletes our target groups that no listener wants.
func (p *Provider) deleteStaleTargetGroups(ctx context.Context, st *lbState, tgs map[int32]*tgState) error {
	keep := map[*tgState]bool{}
	for _, tg := range tgs {
		keep[tg] = true
	}
	for _, name := range sortedKeys(st.targetGroups) {
		if tg := st.targetGroups[name]; !keep[tg] {
			if err := p.deleteTargetGroup(ctx, tg); err != nil {
				return err
			}
			delete(st.targetGroups, name)
		}
	}
	return nil
}

// deleteTargetGroup deletes one of our target groups. "Not found" is done;
// "in use" (AWS detaches target groups from a deleted listener or load
// balancer a little later) is retried a bounded number of times, then
// reported as a RetryError.
func (p *Provider) deleteTargetGroup(ctx context.Context, tg *tgState) error {
	name := aws.ToString(tg.tg.TargetGroupName)
	for try := 1; ; try++ {
		_, err := p.elb.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: tg.tg.TargetGroupArn})
		if err == nil || isNotFound(err) {
			klog.FromContext(ctx).Info("Deleted target group", "targetGroup", name)
			return nil
		}
		if errorCode(err) != "ResourceInUse" {
			return fmt.Errorf("deleting target group %s: %w", name, err)
		}
		if try >= p.opts.InUseRetries {
			return fmt.Errorf("deleting target group %s: %w", name, api.NewRetryError(fmt.Sprintf("target group %s is still in use: %v", name, err), 10*time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.opts.InUseDelay):
		}
	}
}

// deleteLoadBalancer deletes our load balancer; its listeners go with it.
func (p *Provider) deleteLoadBalancer(ctx context.Context, st *lbState) error {
	_, err := p.elb.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: st.lb.LoadBalancerArn})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting load balancer %s: %w", aws.ToString(st.lb.LoadBalancerName), err)
	}
	klog.FromContext(ctx).Info("Deleted load balancer", "loadBalancer", aws.ToString(st.lb.LoadBalancerName))
	return nil
}
