// Package memory is an in-memory load-balancer provider. It keeps load
// balancers in a map, records every call, and injects errors, RetryErrors and
// latency per operation. Unit tests, e2e tests and benchmarks use it where a
// cloud would be; it forwards no traffic (fake/cloud does).
package memory

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/extlb/extlb/providers"
)

// Op names a provider operation, for the call log and fault injection.
type Op string

// The operations of cloudprovider.LoadBalancer.
const (
	OpGet    Op = "GetLoadBalancer"
	OpEnsure Op = "EnsureLoadBalancer"
	OpUpdate Op = "UpdateLoadBalancer"
	OpDelete Op = "EnsureLoadBalancerDeleted"
)

// Call is one recorded provider call.
type Call struct {
	Op      Op
	Service string // namespace/name
	Nodes   []string
	Err     error
	At      time.Time // when the call started
}

// LoadBalancer is the state of one load balancer the provider holds.
type LoadBalancer struct {
	Name    string
	Service *v1.Service // a copy of the Service as last ensured
	Nodes   []string    // node names, sorted
	Address string
	// HealthCheckNodePort is the port passed through for
	// externalTrafficPolicy: Local, 0 otherwise.
	HealthCheckNodePort int32
}

// Provider is the in-memory provider. The zero value is not usable; call New.
type Provider struct {
	caps providers.Capabilities

	mu       sync.Mutex
	lbs      map[string]*LoadBalancer
	calls    []Call
	faults   map[Op]*Fault
	nextAddr netip.Addr
	// writes logs every change to lbs, for Writes.
	writes []string
}

var _ providers.LoadBalancer = (*Provider)(nil)
var _ providers.Describer = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithCapabilities overrides what the provider reports through Describer.
func WithCapabilities(c providers.Capabilities) Option {
	return func(p *Provider) { p.caps = c }
}

// New returns an empty provider. Addresses come from 198.18.0.0/15, the
// range reserved for benchmarks; nothing is ever sent to them.
func New(opts ...Option) *Provider {
	p := &Provider{
		caps:     providers.DefaultCapabilities,
		lbs:      map[string]*LoadBalancer{},
		faults:   map[Op]*Fault{},
		nextAddr: netip.MustParseAddr("198.18.0.1"),
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Capabilities implements providers.Describer.
func (p *Provider) Capabilities() providers.Capabilities { return p.caps }

// GetLoadBalancerName returns a name derived from the cluster and Service UID.
func (p *Provider) GetLoadBalancerName(_ context.Context, clusterName string, svc *v1.Service) string {
	return fmt.Sprintf("%s-%s", clusterName, svc.UID)
}

// GetLoadBalancer implements cloudprovider.LoadBalancer.
func (p *Provider) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if err := p.enter(ctx, OpGet, svc, nil); err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[p.GetLoadBalancerName(ctx, clusterName, svc)]
	if !ok {
		return nil, false, nil
	}
	return p.statusOf(lb), true, nil
}

// EnsureLoadBalancer implements cloudprovider.LoadBalancer. It validates the
// Service first and creates nothing when the Service cannot be served.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := p.enter(ctx, OpEnsure, svc, nodes); err != nil {
		return nil, err
	}
	if err := validate(svc, p.caps.TargetsNodePorts); err != nil {
		p.setLastErr(err)
		return nil, fmt.Errorf("service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	name := p.GetLoadBalancerName(ctx, clusterName, svc)
	nodeSet := nodeNames(nodes)
	var hcPort int32
	if svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal {
		hcPort = svc.Spec.HealthCheckNodePort
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[name]
	if !ok {
		lb = &LoadBalancer{Name: name, Address: p.nextAddr.String()}
		p.nextAddr = p.nextAddr.Next()
		p.lbs[name] = lb
		p.wrote("create", name)
	} else if !equality.Semantic.DeepEqual(lb.Service, svc) || !slices.Equal(lb.Nodes, nodeSet) || lb.HealthCheckNodePort != hcPort {
		p.wrote("update", name)
	}
	lb.Service = svc.DeepCopy()
	lb.Nodes = nodeSet
	lb.HealthCheckNodePort = hcPort
	return p.statusOf(lb), nil
}

// UpdateLoadBalancer implements cloudprovider.LoadBalancer: it replaces the
// node set of an existing load balancer.
func (p *Provider) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	if err := p.enter(ctx, OpUpdate, svc, nodes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lb, ok := p.lbs[p.GetLoadBalancerName(ctx, clusterName, svc)]
	if !ok {
		err := fmt.Errorf("load balancer for service %s/%s does not exist", svc.Namespace, svc.Name)
		p.lastCall().Err = err
		return err
	}
	if nodeSet := nodeNames(nodes); !slices.Equal(lb.Nodes, nodeSet) {
		lb.Nodes = nodeSet
		p.wrote("update nodes", lb.Name)
	}
	return nil
}

// EnsureLoadBalancerDeleted implements cloudprovider.LoadBalancer.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	if err := p.enter(ctx, OpDelete, svc, nil); err != nil {
		return err
	}
	name := p.GetLoadBalancerName(ctx, clusterName, svc)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lbs[name]; ok {
		delete(p.lbs, name)
		p.wrote("delete", name)
	}
	return nil
}

// Writes returns every change made to the load balancers the provider
// holds, in order ("create <name>", "update <name>", "update nodes <name>",
// "delete <name>"); calls that change nothing are not in it. It is the
// in-memory counterpart of a fake cloud's mutating calls.
func (p *Provider) Writes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.writes)
}

// wrote logs a change; p.mu must be held.
func (p *Provider) wrote(what, name string) { p.writes = append(p.writes, what+" "+name) }

// LoadBalancers returns copies of all load balancers, sorted by Service.
func (p *Provider) LoadBalancers() []LoadBalancer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]LoadBalancer, 0, len(p.lbs))
	for _, lb := range p.lbs {
		c := *lb
		c.Service = lb.Service.DeepCopy()
		c.Nodes = append([]string(nil), lb.Nodes...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i].Service) < key(out[j].Service) })
	return out
}

// LoadBalancerFor returns the load balancer of the Service with the given
// namespace/name, if one exists.
func (p *Provider) LoadBalancerFor(namespacedName string) (LoadBalancer, bool) {
	for _, lb := range p.LoadBalancers() {
		if key(lb.Service) == namespacedName {
			return lb, true
		}
	}
	return LoadBalancer{}, false
}

// Calls returns a copy of the call log.
func (p *Provider) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// CountCalls returns how many calls of op were made (all ops when op is "").
func (p *Provider) CountCalls(op Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if op == "" || c.Op == op {
			n++
		}
	}
	return n
}

// ResetCalls clears the call log.
func (p *Provider) ResetCalls() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}

// enter records the call, applies injected latency and returns an injected
// error, if any.
func (p *Provider) enter(ctx context.Context, op Op, svc *v1.Service, nodes []*v1.Node) error {
	p.mu.Lock()
	p.calls = append(p.calls, Call{Op: op, Service: key(svc), Nodes: nodeNames(nodes), At: time.Now()})
	f := p.faults[op]
	var delay time.Duration
	var err error
	if f != nil {
		delay, err = f.next()
	}
	p.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		case <-t.C:
		}
	}
	if err != nil {
		p.setLastErr(err)
	}
	return err
}

func (p *Provider) setLastErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastCall().Err = err
}

// lastCall returns the newest call; p.mu must be held.
func (p *Provider) lastCall() *Call { return &p.calls[len(p.calls)-1] }

func (p *Provider) statusOf(lb *LoadBalancer) *v1.LoadBalancerStatus {
	mode := p.caps.IPMode
	if mode == "" {
		mode = v1.LoadBalancerIPModeVIP
	}
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: lb.Address, IPMode: &mode}}}
}

func nodeNames(nodes []*v1.Node) []string {
	if nodes == nil {
		return nil
	}
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names
}

func key(svc *v1.Service) string {
	if svc == nil {
		return ""
	}
	return svc.Namespace + "/" + svc.Name
}

// validate rejects what a real cloud would reject before creating anything:
// protocols other than TCP and UDP, ports without a node port when the load
// balancer targets node ports, invalid source ranges, and annotations in
// extlb's namespaces.
func validate(svc *v1.Service, needNodePorts bool) error {
	for i, port := range svc.Spec.Ports {
		if port.Protocol != v1.ProtocolTCP && port.Protocol != v1.ProtocolUDP && port.Protocol != "" {
			return providers.NewInputError(fmt.Sprintf("spec.ports[%d].protocol", i), "protocol %s is not supported, only TCP and UDP", port.Protocol)
		}
		if needNodePorts && port.NodePort == 0 {
			return providers.NewInputError(fmt.Sprintf("spec.ports[%d].nodePort", i), "a node port is required")
		}
	}
	if _, err := providers.SourceRanges(svc); err != nil {
		return err
	}
	// It implements no annotation; one in extlb's namespaces is refused.
	return (providers.Annotations{}).Check(svc)
}

// CountWithNodes returns how many load balancers have exactly n backends.
// It copies nothing, so benchmarks can poll it.
func (p *Provider) CountWithNodes(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	count := 0
	for _, lb := range p.lbs {
		if len(lb.Nodes) == n {
			count++
		}
	}
	return count
}
