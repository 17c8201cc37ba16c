package aws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// EnsureLoadBalancerDeleted deletes everything of the Service's: the load
// balancer (with its listeners), its target groups and the security-group
// rules. What does not exist counts as deleted; what is not tagged as ours
// is left alone.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	o := ownerOf(clusterName, svc)
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("service", o.service, "loadBalancer", o.loadBalancerName()))
	if err := p.delete(ctx, o, svc); err != nil {
		return retryLater(fmt.Errorf("deleting load balancer %s for %s: %w", o.loadBalancerName(), o.service, err))
	}
	return nil
}

func (p *Provider) delete(ctx context.Context, o owner, svc *v1.Service) error {
	logger := klog.FromContext(ctx)
	st, err := p.loadState(ctx, o)
	var notOurs *notOursError
	if errors.As(err, &notOurs) {
		logger.Info("Leaving alone a load balancer with our name that is not tagged as ours")
		st, err = nil, nil
	}
	if err != nil {
		return err
	}
	doomed := map[string]*tgState{}
	if st != nil {
		for name, tg := range st.targetGroups {
			doomed[name] = tg
		}
		if err := p.deleteLoadBalancer(ctx, st); err != nil {
			return err
		}
	}
	// Target groups named after the current ports that no listener holds
	// (left by an interrupted Ensure).
	if listeners, err := parsePorts(svc.Spec.Ports); err == nil {
		var names []string
		for _, l := range listeners {
			if name := o.targetGroupName(l); doomed[name] == nil {
				names = append(names, name)
			}
		}
		found, err := p.findTargetGroupsByName(ctx, o, names)
		if errors.As(err, &notOurs) {
			logger.Info("Leaving alone a target group with our name that is not tagged as ours", "targetGroup", notOurs.name)
		} else if err != nil {
			return err
		}
		for name, tg := range found {
			doomed[name] = tg
		}
	}
	for _, name := range sortedKeys(doomed) {
		if err := p.deleteTargetGroup(ctx, doomed[name]); err != nil {
			return err
		}
	}
	rules, err := p.ourRules(ctx, o)
	if err != nil {
		return err
	}
	if err := p.revoke(ctx, rules); err != nil {
		return err
	}
	if st != nil {
		logger.Info("Deleted load balancer and everything it used", "dnsName", aws.ToString(st.lb.DNSName), "targetGroups", len(doomed), "rules", len(rules))
	}
	return nil
}
