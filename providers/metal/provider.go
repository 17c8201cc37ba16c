package metal

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal/pool"
)

// Provider hands out IPPool addresses to LoadBalancer Services.
type Provider struct {
	alloc      *pool.Allocator
	pools      poolStore
	services   corelisters.ServiceLister
	namespaces corelisters.NamespaceLister
	synced     []namedSync
	status     *statusWriter

	retryInterval time.Duration
	syncTimeout   time.Duration

	// initMu guards ready: the allocator is rebuilt from Service status once,
	// before the first call that needs it.
	initMu sync.Mutex
	ready  bool

	// poolsMu serializes pool reloads and guards problems (pool name →
	// why it is not used).
	poolsMu  sync.Mutex
	problems map[string]string
}

var (
	_ providers.LoadBalancer = (*Provider)(nil)
	_ providers.Describer    = (*Provider)(nil)
)

// config is what newProvider needs; Build fills it from the Env, tests from
// fakes.
type config struct {
	pools      poolStore
	services   corelisters.ServiceLister
	namespaces corelisters.NamespaceLister
	// synced are the informers to wait for before the first allocation
	// (Services, Namespaces, IPPools).
	synced         []namedSync
	retryInterval  time.Duration
	statusInterval time.Duration
	syncTimeout    time.Duration
}

// newProvider returns a provider and starts its status writer, which stops
// with ctx.
func newProvider(ctx context.Context, c config) *Provider {
	p := &Provider{
		alloc:         pool.NewAllocator(),
		pools:         c.pools,
		services:      c.services,
		namespaces:    c.namespaces,
		synced:        c.synced,
		retryInterval: c.retryInterval,
		syncTimeout:   c.syncTimeout,
		problems:      map[string]string{},
	}
	p.status = newStatusWriter(c.pools, p.desiredStatus, c.statusInterval)
	go p.status.run(ctx)
	return p
}

// Capabilities implements providers.Describer: the speaker announces the
// address on the nodes themselves, so no node ports are needed.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{TargetsNodePorts: false, IPMode: v1.LoadBalancerIPModeVIP}
}

// GetLoadBalancerName returns the name cloud providers derive from the
// Service's UID; metal creates no named objects, but events and logs use it.
func (p *Provider) GetLoadBalancerName(_ context.Context, _ string, svc *v1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

// GetLoadBalancer returns the addresses the Service holds.
func (p *Provider) GetLoadBalancer(ctx context.Context, _ string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if err := p.ensureReady(ctx); err != nil {
		return nil, false, err
	}
	ips := p.alloc.Assigned(serviceKey(svc))
	if len(ips) == 0 {
		return nil, false, nil
	}
	return statusFor(ips), true, nil
}

// EnsureLoadBalancer assigns the Service its addresses (the same ones on
// every call while the Service does not change) and returns them.
func (p *Provider) EnsureLoadBalancer(ctx context.Context, _ string, svc *v1.Service, _ []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := p.ensureReady(ctx); err != nil {
		return nil, err
	}
	req, err := requestFor(svc, p.namespaceLabels(svc.Namespace))
	if err != nil {
		return nil, err
	}
	before := p.alloc.Assigned(req.Key())
	ips, err := p.alloc.Assign(req.Request)
	if err != nil {
		return nil, p.explain(req, err)
	}
	if !sameAddrs(before, ips) {
		klog.FromContext(ctx).Info("Assigned load-balancer addresses", "service", klog.KObj(svc), "addresses", ips, "previous", before)
		p.status.kick()
	}
	return statusFor(ips), nil
}

// UpdateLoadBalancer has nothing to do: the speaker follows node changes.
func (p *Provider) UpdateLoadBalancer(context.Context, string, *v1.Service, []*v1.Node) error {
	return nil
}

// EnsureLoadBalancerDeleted frees the Service's addresses.
func (p *Provider) EnsureLoadBalancerDeleted(ctx context.Context, _ string, svc *v1.Service) error {
	if err := p.ensureReady(ctx); err != nil {
		return err
	}
	key := serviceKey(svc)
	if ips := p.alloc.Assigned(key); len(ips) > 0 {
		p.alloc.Release(key)
		klog.FromContext(ctx).Info("Released load-balancer addresses", "service", klog.KObj(svc), "addresses", ips)
		p.status.kick()
	}
	return nil
}

// ensureReady waits for the caches and rebuilds the allocator from Service
// status, once. Until the caches sync it returns a RetryError.
func (p *Provider) ensureReady(ctx context.Context) error {
	p.initMu.Lock()
	defer p.initMu.Unlock()
	if p.ready {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, p.syncTimeout)
	defer cancel()
	funcs := make([]cache.InformerSynced, len(p.synced))
	for i, s := range p.synced {
		funcs[i] = s.synced
	}
	if !cache.WaitForCacheSync(waitCtx.Done(), funcs...) {
		var waiting []string
		for _, s := range p.synced {
			if !s.synced() {
				waiting = append(waiting, s.name)
			}
		}
		return api.NewRetryError(fmt.Sprintf("metal provider: the caches of %s have not synced within %s (is the IPPool CRD installed? may the controller list and watch them?)",
			strings.Join(waiting, ", "), p.syncTimeout), 2*time.Second)
	}
	p.reloadPools(ctx)
	if err := p.restore(ctx); err != nil {
		return err
	}
	p.ready = true
	return nil
}

// explain turns an allocator error into the error the controller acts on:
// an InputError naming the field when the Service asks for something it
// cannot have, joined with a RetryError when a change elsewhere (a pool, the
// Service holding an address) can resolve it; a RetryError alone when the
// pools are exhausted.
func (p *Provider) explain(req *serviceRequest, err error) error {
	var e *pool.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("assigning addresses to Service %s: %w", req.Key(), err)
	}
	if e.Reason == pool.ReasonExhausted {
		return api.NewRetryError(fmt.Sprintf("Service %s: %s; retrying in %s", req.Key(), e.Msg, p.retryInterval), p.retryInterval)
	}
	input := providers.NewInputError(p.fieldOf(req, e), "%s", e.Msg)
	if e.Reason == pool.ReasonInvalid {
		return input
	}
	return &waitingInputError{input: input, retry: api.NewRetryError(input.Error(), p.retryInterval)}
}

func (p *Provider) fieldOf(req *serviceRequest, e *pool.Error) string {
	switch e.Subject {
	case pool.SubjectRequestedIP:
		if req.ipsField != "" {
			return req.ipsField
		}
		return fieldLoadBalancerIPs
	case pool.SubjectSharingKey:
		return fieldAllowSharedIP
	case pool.SubjectPort:
		return fmt.Sprintf("spec.ports[%d]", e.PortIndex)
	case pool.SubjectTrafficPolicy:
		return fieldExternalTrafficPolicy
	case pool.SubjectFamilies:
		return "spec.ipFamilyPolicy"
	default:
		return fieldIPPool
	}
}

// namedSync is an informer's HasSynced with a name for messages.
type namedSync struct {
	name   string
	synced cache.InformerSynced
}

// waitingInputError is an InputError that another object's change may
// resolve: it also wraps a RetryError so that the controller, after
// reporting the field, tries again after a modest delay.
type waitingInputError struct {
	input *providers.InputError
	retry *api.RetryError
}

func (e *waitingInputError) Error() string   { return e.input.Error() }
func (e *waitingInputError) Unwrap() []error { return []error{e.input, e.retry} }

func serviceKey(svc *v1.Service) string { return svc.Namespace + "/" + svc.Name }

func statusFor(ips []netip.Addr) *v1.LoadBalancerStatus {
	st := &v1.LoadBalancerStatus{}
	vip := v1.LoadBalancerIPModeVIP
	for _, ip := range ips {
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	return st
}

func sameAddrs(a, b []netip.Addr) bool { return slices.Equal(a, b) }
