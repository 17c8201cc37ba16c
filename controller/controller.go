// Package controller is extlb's service controller: it watches Services of
// type LoadBalancer and Nodes, and drives a provider (package providers) so
// that every Service it serves has an external load balancer whose backends
// are the current node set, with the address in status.loadBalancer.ingress.
//
// The reconcile loop is Run → worker → processNextItem → sync (sync.go).
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

// Controller reconciles LoadBalancer Services with a provider.
type Controller struct {
	cfg      Config
	client   kubernetes.Interface
	provider providers.LoadBalancer
	caps     providers.Capabilities
	recorder record.EventRecorder
	metrics  *Metrics

	services       corelisters.ServiceLister
	servicesSynced cache.InformerSynced
	nodesSynced    cache.InformerSynced

	queue workqueue.TypedRateLimitingInterface[string]
	// ownStatusWrites tells the watch events of our own status writes
	// from changes of the Service.
	ownStatusWrites ownWrites
	// pacer holds, until the caches synced, the Services the last run left
	// ensured (restart.go).
	pacer     restartPacer
	nodes     *nodeTracker
	applied   appliedStore
	allocator *NodePortAllocator
}

// New builds a controller. It registers event handlers on the factory's
// Service and Node informers; the caller starts the factory. metrics may be
// nil.
func New(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory, provider providers.LoadBalancer, recorder record.EventRecorder, metrics *Metrics) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	svcInformer := factory.Core().V1().Services()
	nodeInformer := factory.Core().V1().Nodes()
	c := &Controller{
		cfg:            cfg,
		client:         client,
		provider:       provider,
		caps:           providers.CapabilitiesOf(provider),
		recorder:       recorder,
		metrics:        metrics,
		services:       svcInformer.Lister(),
		servicesSynced: svcInformer.Informer().HasSynced,
		nodesSynced:    nodeInformer.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.MinRetryDelay, cfg.MaxRetryDelay),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "extlb_services", MetricsProvider: metrics.workqueueProvider()},
		),
		allocator: NewNodePortAllocator(cfg.NodePortRange, seedOrClock(cfg.NodePortSeed)),
	}
	c.nodes = newNodeTracker(c.caps.NodeLabels)
	if _, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onService(obj) },
		UpdateFunc: func(_, obj any) { c.onService(obj) },
		DeleteFunc: c.onServiceDelete,
	}); err != nil {
		return nil, fmt.Errorf("adding service event handler: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onNode,
		UpdateFunc: func(_, obj any) { c.onNode(obj) },
		DeleteFunc: c.onNodeDelete,
	}); err != nil {
		return nil, fmt.Errorf("adding node event handler: %w", err)
	}
	return c, nil
}

// Run waits for the caches, then runs cfg.Workers workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting service controller", "class", c.cfg.Class.Name, "defaultClass", c.cfg.Class.Default, "workers", c.cfg.Workers, "targetsNodePorts", c.caps.TargetsNodePorts)
	if !cache.WaitForNamedCacheSync("extlb-service", ctx.Done(), c.servicesSynced, c.nodesSynced) {
		return fmt.Errorf("caches did not sync: %w", ctx.Err())
	}
	c.metrics.setNodeSetSize(c.nodes.size())
	c.releasePaced()
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, c.worker, time.Second)
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	logger.Info("Stopped service controller")
	return nil
}

// HasSynced reports whether the informers have synced: the readiness probe.
func (c *Controller) HasSynced() bool { return c.servicesSynced() && c.nodesSynced() }

func (c *Controller) worker(ctx context.Context) {
	for c.processNextItem(ctx) {
	}
}

// processNextItem takes one key from the queue and syncs it. The workqueue
// never hands the same key to two workers at once.
func (c *Controller) processNextItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if ctx.Err() != nil {
		return false // stopping: start no new sync
	}
	start := time.Now()
	err := c.sync(ctx, key)
	c.metrics.observeReconcile(err, time.Since(start))
	c.metrics.setServicesHandled(c.applied.len())
	c.handleErr(ctx, key, err)
	return true
}

func (c *Controller) handleErr(ctx context.Context, key string, err error) {
	if err == nil {
		c.queue.Forget(key)
		return
	}
	logger := klog.FromContext(ctx)
	if d, ok := retryAfter(err); ok {
		logger.V(2).Info("Provider asked to retry later", "service", key, "after", d, "reason", err.Error())
		c.queue.Forget(key)
		c.queue.AddAfter(key, d)
		return
	}
	var se *syncError
	if errors.As(err, &se) {
		switch se.policy {
		case retryNever:
			// The Service cannot be served as written: retrying cannot
			// help. Its next change (or a restart) syncs it again.
			logger.V(2).Info("Service cannot be served until it changes; not retrying", "service", key)
			c.queue.Forget(key)
			return
		case retrySlow:
			logger.V(2).Info("Provider refused the Service; checking again later", "service", key, "after", c.cfg.MaxRetryDelay)
			c.queue.Forget(key)
			c.queue.AddAfter(key, c.cfg.MaxRetryDelay)
			return
		}
	}
	logger.Error(err, "Failed to sync service; will retry", "service", key, "retries", c.queue.NumRequeues(key))
	c.queue.AddRateLimited(key)
}

// serves reports whether svc is a LoadBalancer Service of our class.
func (c *Controller) serves(svc *v1.Service) bool { return c.cfg.Class.Serves(svc) }

func (c *Controller) onService(obj any) {
	svc, ok := obj.(*v1.Service)
	if !ok {
		return
	}
	key := cache.MetaObjectToName(svc).String()
	c.allocator.SetOwner(key, nodePortsOf(svc))
	if c.ownStatusWrites.seen(key, svc.ResourceVersion) {
		return // our own status write coming back: nothing changed
	}
	if c.serves(svc) || hasFinalizer(svc) || c.applied.has(key) {
		if c.cfg.RestartResyncQPS > 0 && !c.applied.has(key) && c.leftEnsured(svc) && c.pacer.hold(key) {
			return // re-checked at the restart pace
		}
		c.queue.Add(key)
	}
}

func (c *Controller) onServiceDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	svc, ok := obj.(*v1.Service)
	if !ok {
		return
	}
	key := cache.MetaObjectToName(svc).String()
	c.allocator.Release(key)
	c.ownStatusWrites.forget(key)
	if c.applied.has(key) {
		c.queue.Add(key)
	}
}

// onNode records a Node's add or update. Only a change of the eligible set
// (as the provider sees it) queues the Services that have a load balancer,
// so that the workers update them concurrently; a heartbeat costs the hash
// of one node.
func (c *Controller) onNode(obj any) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	if c.nodes.upsert(n) {
		c.nodeSetChanged()
	}
}

func (c *Controller) onNodeDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	n, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	if c.nodes.remove(n.Name) {
		c.nodeSetChanged()
	}
}

// nodeSetChanged queues every Service with a load balancer. A Service whose
// first ensure is in flight is not in the applied store yet; ensure checks
// the node set again when it ends (see requeueIfNodesMoved).
func (c *Controller) nodeSetChanged() {
	c.metrics.setNodeSetSize(c.nodes.size())
	for _, key := range c.applied.keys() {
		c.queue.Add(key)
	}
}

func nodePortsOf(svc *v1.Service) []int {
	var ports []int
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			ports = append(ports, int(p.NodePort))
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		ports = append(ports, int(svc.Spec.HealthCheckNodePort))
	}
	return ports
}

func seedOrClock(seed uint64) uint64 {
	if seed != 0 {
		return seed
	}
	return uint64(time.Now().UnixNano())
}
