package aws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// instance is what the provider needs to know about one node's instance.
type instance struct {
	id     string
	vpc    string
	groups []string // security group IDs
}

// targetInstances returns the running instances behind the nodes selected by
// labels, in instance-ID order: one DescribeInstances call per 200 nodes.
// vpcOf then drops those outside the load balancer's VPC.
func (p *Provider) targetInstances(ctx context.Context, nodes []*v1.Node, labels map[string]string) ([]instance, error) {
	logger := klog.FromContext(ctx)
	ids := targetInstanceIDs(logger, nodes, labels)
	found := map[string]instance{}
	for start := 0; start < len(ids); start += 200 {
		chunk := ids[start:min(start+200, len(ids))]
		in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("instance-id"), Values: chunk},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		}}
		for {
			out, err := p.ec2.DescribeInstances(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("describing instances %v: %w", chunk, err)
			}
			for _, r := range out.Reservations {
				for _, i := range r.Instances {
					inst := instance{id: aws.ToString(i.InstanceId), vpc: aws.ToString(i.VpcId)}
					for _, g := range i.SecurityGroups {
						inst.groups = append(inst.groups, aws.ToString(g.GroupId))
					}
					found[inst.id] = inst
				}
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	var out []instance
	for _, id := range ids {
		inst, ok := found[id]
		if !ok {
			logger.Info("Skipping node whose instance is not running", "instance", id)
			continue
		}
		out = append(out, inst)
	}
	return out, nil
}

// vpcOf returns the VPC to build in: the flag, the load balancer's, or the
// first instance's. Instances in another VPC are dropped from the targets.
func (p *Provider) vpcOf(ctx context.Context, st *lbState, instances []instance) (string, []instance) {
	vpc := p.opts.VPCID
	if vpc == "" && st != nil {
		vpc = aws.ToString(st.lb.VpcId)
	}
	if vpc == "" && len(instances) > 0 {
		vpc = instances[0].vpc
	}
	var in []instance
	for _, i := range instances {
		if i.vpc == vpc {
			in = append(in, i)
		} else {
			klog.FromContext(ctx).Info("Skipping instance outside the load balancer's VPC", "instance", i.id, "vpc", i.vpc)
		}
	}
	return vpc, in
}

func instanceIDs(instances []instance) []string {
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.id
	}
	return ids
}
