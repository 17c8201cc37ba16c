package aws

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"

	fakeaws "github.com/extlb/extlb/fake/aws"
)

// BenchmarkAPICalls counts the API calls (reads, writes) the provider makes
// for a 3-port Service through its life, and compares the idle Ensure and
// the one-node change with a per-resource reference: the reads an
// implementation makes that re-describes every load balancer part, target
// group, subnet, instance and security group on its own (the pattern behind
// "Rate exceeded" reports against the in-tree provider). The reference's
// calls go to the same fake through the same SDK clients.
func BenchmarkAPICalls(b *testing.B) {
	for _, nodeCount := range []int{3, 50} {
		b.Run(fmt.Sprintf("nodes=%d", nodeCount), func(b *testing.B) {
			for range b.N {
				e := newEnv(b)
				e.ctx = logr.NewContext(e.ctx, logr.Discard()) // keep the figures readable
				e.p.opts.TargetChunkSize = 100
				nodes := benchNodes(e, nodeCount)
				svc := newService("web", withThreePorts())
				count := func(phase string, run func()) (int, int) {
					e.fake.ResetCalls()
					run()
					r, w := e.fake.CallCounts()
					b.ReportMetric(float64(r), phase+"-reads")
					b.ReportMetric(float64(w), phase+"-writes")
					return r, w
				}
				cr, cw := count("create", func() { e.ensure(svc, nodes) })
				ir, iw := count("idle", func() { e.ensure(svc, nodes) })
				refIdle := naiveReads(b, e, svc, nodes)
				nr, nw := count("node", func() { e.ensure(svc, nodes[1:]) })
				refNode := naiveReads(b, e, svc, nodes[1:])
				ur, uw := count("update", func() {
					if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, nodes); err != nil {
						b.Fatal(err)
					}
				})
				dr, dw := count("delete", func() {
					if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
						b.Fatal(err)
					}
				})
				b.ReportMetric(float64(refIdle)/float64(ir), "idle-ref/ours")
				b.ReportMetric(float64(refNode)/float64(nr), "node-ref/ours")
				b.Logf("%d nodes, 3-port Service (reads/writes): create %d/%d, idle Ensure %d/%d (reference %d reads, %.1fx), one node removed via Ensure %d/%d (reference %d reads, %.1fx), node re-added via UpdateLoadBalancer %d/%d, delete %d/%d",
					nodeCount, cr, cw, ir, iw, refIdle, float64(refIdle)/float64(ir), nr, nw, refNode, float64(refNode)/float64(nr), ur, uw, dr, dw)
			}
		})
	}
}

// benchNodes seeds n instances (beyond the env's own) and returns their nodes.
func benchNodes(e *testEnv, n int) []*v1.Node {
	nodes := threeNodes()
	for i := len(nodes); i < n; i++ {
		id := fmt.Sprintf("i-%016x", 0x1000+i)
		e.fake.AddInstance(fakeaws.Instance{ID: id, VPCID: testVPC, SubnetID: "subnet-a", AvailabilityZone: "us-east-1a", SecurityGroupIDs: []string{nodesSG}})
		nodes = append(nodes, newNode(fmt.Sprintf("n%d", i), "aws:///us-east-1a/"+id))
	}
	return nodes[:n]
}

// naiveReads issues the reads of the per-resource reference for one sync
// and returns how many it made: the load balancer, its tags, attributes and
// listeners; per listener its target group, the group's tags and targets;
// the subnets; per node its instance; per instance its security groups.
func naiveReads(b *testing.B, e *testEnv, svc *v1.Service, nodes []*v1.Node) int {
	b.Helper()
	e.fake.ResetCalls()
	ctx, o := e.ctx, ownerOf(testCluster, svc)
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	lbs, err := e.p.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{o.loadBalancerName()}})
	if err != nil {
		b.Fatal(err)
	}
	lb := lbs.LoadBalancers[0]
	must(e.p.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{aws.ToString(lb.LoadBalancerArn)}}))
	must(e.p.elb.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: lb.LoadBalancerArn}))
	ls, err := e.p.elb.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: lb.LoadBalancerArn})
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range ls.Listeners {
		arn := l.DefaultActions[0].TargetGroupArn
		must(e.p.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{aws.ToString(arn)}}))
		must(e.p.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{aws.ToString(arn)}}))
		must(e.p.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: arn}))
	}
	var subnets []string
	for _, az := range lb.AvailabilityZones {
		subnets = append(subnets, aws.ToString(az.SubnetId))
	}
	must(e.p.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: subnets}))
	for _, n := range nodes {
		id, _ := instanceID(n.Spec.ProviderID)
		out, err := e.p.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			b.Fatal(err)
		}
		var groups []string
		for _, g := range out.Reservations[0].Instances[0].SecurityGroups {
			groups = append(groups, aws.ToString(g.GroupId))
		}
		must(e.p.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: groups}))
	}
	reads, _ := e.fake.CallCounts()
	return reads
}
