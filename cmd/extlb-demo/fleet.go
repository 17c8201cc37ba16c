package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/fake/nodeagent"
)

// NodeInfo describes one simulated node.
type NodeInfo struct {
	Name string
	IP   netip.Addr
}

// fleet is the demo's simulated nodes: a Node object and a node agent for
// each. It keeps the agents serving every node port of every Service and
// places each externalTrafficPolicy: Local Service's endpoints on one node.
type fleet struct {
	nodes []NodeInfo
	// agents are indexed like nodes.
	agents []*nodeagent.Agent
	out    *printer

	mu sync.Mutex
	// announced records the Local Services whose endpoint node was printed.
	announced map[string]bool
}

// startFleet creates count Node objects named node-1.. with InternalIPs
// first, first+1, ... and an agent on each address.
func startFleet(ctx context.Context, client kubernetes.Interface, count int, first netip.Addr, out *printer) (*fleet, error) {
	f := &fleet{out: out, announced: map[string]bool{}}
	ip := first
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("node-%d", i)
		agent, err := nodeagent.New(name, ip.String())
		if err != nil {
			f.close()
			return nil, err
		}
		f.nodes = append(f.nodes, NodeInfo{Name: name, IP: ip})
		f.agents = append(f.agents, agent)
		if err := createNode(ctx, client, name, ip); err != nil {
			f.close()
			return nil, err
		}
		ip = ip.Next()
	}
	return f, nil
}

// createNode registers a Ready Node with an InternalIP.
func createNode(ctx context.Context, client kubernetes.Interface, name string, ip netip.Addr) error {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "extlb.io/demo": "true"}},
		Status: v1.NodeStatus{
			Addresses:  []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip.String()}, {Type: v1.NodeHostName, Address: name}},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "DemoNodeAgent", Message: "simulated by extlb-demo", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	return nil
}

// endpointNode is the node that runs the endpoints of the Local Service
// key: one chosen by a hash of the key, so it stays the same across runs.
func (f *fleet) endpointNode(key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return f.nodes[int(h.Sum32()%uint32(len(f.nodes)))].Name
}

// sync makes every agent serve exactly the node ports of svcs and report
// the Local Services' endpoints on their chosen node.
func (f *fleet) sync(ctx context.Context, svcs []*v1.Service) error {
	var served []nodeagent.ServicePorts
	local := make([]map[string]int, len(f.nodes))
	for i := range local {
		local[i] = map[string]int{}
	}
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		sp := nodeagent.ServicePorts{Name: key}
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 || (p.Protocol != v1.ProtocolTCP && p.Protocol != v1.ProtocolUDP) {
				continue
			}
			sp.Ports = append(sp.Ports, nodeagent.Port{Protocol: string(p.Protocol), NodePort: int(p.NodePort)})
		}
		if isLocal(svc) && svc.Spec.HealthCheckNodePort != 0 {
			sp.HealthCheckNodePort = int(svc.Spec.HealthCheckNodePort)
			node := f.endpointNode(key)
			for i, n := range f.nodes {
				if n.Name == node {
					local[i][key] = 1
				}
			}
			f.announce(key, node)
		}
		if len(sp.Ports) > 0 || sp.HealthCheckNodePort != 0 {
			served = append(served, sp)
		}
	}
	var errs []error
	for i, a := range f.agents {
		a.SetLocalEndpoints(local[i])
		if err := a.SetServices(served); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Node agents synced", "services", len(served))
	return nil
}

func (f *fleet) announce(key, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.announced[key] {
		return
	}
	f.announced[key] = true
	f.out.Printf("%s has externalTrafficPolicy: Local; its endpoint runs on %s, so only %s passes the load balancer's health check\n", key, node, node)
}

// syncLoop runs sync with the lister's Services each time trigger fires,
// until ctx ends.
func (f *fleet) syncLoop(ctx context.Context, lister corelisters.ServiceLister, trigger <-chan struct{}) {
	logger := klog.FromContext(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		}
		svcs, err := lister.List(labels.Everything())
		if err != nil {
			logger.Error(err, "Listing Services for the node agents")
			continue
		}
		if err := f.sync(ctx, svcs); err != nil {
			f.out.Printf("node agents: %v\n", err)
		}
	}
}

// close stops every agent.
func (f *fleet) close() {
	for _, a := range f.agents {
		_ = a.Close()
	}
}

func isLocal(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
}
