package bench

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
)

// scaleProvider answers like fake/memory, with the same capabilities and a
// fixed latency per call, but keeps only a node count per load balancer and
// call counters. At thousands of nodes fake/memory's call log keeps a
// sorted copy of every call's node names (at 5000 nodes 164 KB and 0.17 ms
// per call for a sorted list, 1 ms for an unsorted one, under one mutex),
// which would be most of what a benchmark of the controllers' CPU and
// memory measures.
type scaleProvider struct {
	latency time.Duration
	caps    providers.Capabilities

	mu        sync.Mutex
	lbs       map[types.UID]*scaleLB
	withNodes map[int]int // how many load balancers have n nodes
	nextAddr  netip.Addr

	calls   [4]atomic.Int64 // by op, in the order of scaleOps
	touched sync.Map        // Services (UIDs) called since the last reset
	nTouch  atomic.Int64
}

type scaleLB struct {
	nodes int
	addr  string
}

var scaleOps = [4]memory.Op{memory.OpGet, memory.OpEnsure, memory.OpUpdate, memory.OpDelete}

var _ providers.LoadBalancer = (*scaleProvider)(nil)
var _ providers.Describer = (*scaleProvider)(nil)

func newScaleProvider(latency time.Duration) *scaleProvider {
	return &scaleProvider{
		latency:   latency,
		caps:      memory.New().Capabilities(),
		lbs:       map[types.UID]*scaleLB{},
		withNodes: map[int]int{},
		nextAddr:  netip.MustParseAddr("198.18.0.1"),
	}
}

func (p *scaleProvider) Capabilities() providers.Capabilities { return p.caps }

func (p *scaleProvider) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return fmt.Sprintf("%s-%s", clusterName, svc.UID)
}

// enter counts the call and waits out the latency.
func (p *scaleProvider) enter(ctx context.Context, op int, svc *v1.Service) error {
	p.calls[op].Add(1)
	if _, loaded := p.touched.LoadOrStore(svc.UID, struct{}{}); !loaded {
		p.nTouch.Add(1)
	}
	t := time.NewTimer(p.latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (p *scaleProvider) GetLoadBalancer(ctx context.Context, _ string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if err := p.enter(ctx, 0, svc); err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[svc.UID]
	if !ok {
		return nil, false, nil
	}
	return p.status(lb), true, nil
}

func (p *scaleProvider) EnsureLoadBalancer(ctx context.Context, _ string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := p.enter(ctx, 1, svc); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[svc.UID]
	if !ok {
		lb = &scaleLB{nodes: -1, addr: p.nextAddr.String()}
		p.nextAddr = p.nextAddr.Next()
		p.lbs[svc.UID] = lb
	}
	p.setNodes(lb, len(nodes))
	return p.status(lb), nil
}

func (p *scaleProvider) UpdateLoadBalancer(ctx context.Context, _ string, svc *v1.Service, nodes []*v1.Node) error {
	if err := p.enter(ctx, 2, svc); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[svc.UID]
	if !ok {
		return fmt.Errorf("load balancer for service %s/%s does not exist", svc.Namespace, svc.Name)
	}
	p.setNodes(lb, len(nodes))
	return nil
}

func (p *scaleProvider) EnsureLoadBalancerDeleted(ctx context.Context, _ string, svc *v1.Service) error {
	if err := p.enter(ctx, 3, svc); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if lb, ok := p.lbs[svc.UID]; ok {
		p.setNodes(lb, -1)
		delete(p.lbs, svc.UID)
	}
	return nil
}

// setNodes records lb's node count; p.mu must be held.
func (p *scaleProvider) setNodes(lb *scaleLB, n int) {
	if lb.nodes >= 0 {
		p.withNodes[lb.nodes]--
	}
	lb.nodes = n
	if n >= 0 {
		p.withNodes[n]++
	}
}

func (p *scaleProvider) status(lb *scaleLB) *v1.LoadBalancerStatus {
	mode := p.caps.IPMode
	if mode == "" {
		mode = v1.LoadBalancerIPModeVIP
	}
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: lb.addr, IPMode: &mode}}}
}

// countWithNodes is how many load balancers have exactly n nodes.
func (p *scaleProvider) countWithNodes(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.withNodes[n]
}

// callCounts returns the calls since the last reset, by op, and how many
// Services they were for.
func (p *scaleProvider) callCounts() (byOp map[memory.Op]int64, total int64, services int64) {
	byOp = map[memory.Op]int64{}
	for i, op := range scaleOps {
		byOp[op] = p.calls[i].Load()
		total += byOp[op]
	}
	return byOp, total, p.nTouch.Load()
}

func (p *scaleProvider) resetCalls() {
	for i := range p.calls {
		p.calls[i].Store(0)
	}
	p.touched.Clear()
	p.nTouch.Store(0)
}
