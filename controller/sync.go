package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

// sync makes one Service's load balancer match the Service: ensure it when
// the Service is ours and wants one, delete it when it no longer does.
func (c *Controller) sync(ctx context.Context, key string) error {
	name, err := cache.ParseObjectName(key)
	if err != nil {
		return nil // not a key we made; nothing can fix it
	}
	logger := klog.FromContext(ctx).WithValues("service", key)
	ctx = klog.NewContext(ctx, logger)
	svc, err := c.services.Services(name.Namespace).Get(name.Name)
	switch {
	case apierrors.IsNotFound(err):
		return c.forget(ctx, key)
	case err != nil:
		return fmt.Errorf("getting service %s from cache: %w", key, err)
	}
	if prev := c.applied.get(key); prev != nil && prev.service.UID != svc.UID {
		// Deleted and created again under the same name, both seen in one
		// sync: the old Service's load balancer goes first. The new one
		// may not even be ours.
		logger.Info("Service was re-created; deleting the old one's load balancer", "oldUID", prev.service.UID, "uid", svc.UID)
		if err := c.forget(ctx, key); err != nil {
			return err
		}
	}
	if c.serves(svc) && svc.DeletionTimestamp == nil {
		return c.ensure(ctx, key, svc)
	}
	return c.cleanup(ctx, key, svc)
}

// ensure makes the provider's load balancer match svc and the node set.
func (c *Controller) ensure(ctx context.Context, key string, svc *v1.Service) error {
	logger := klog.FromContext(ctx)
	prev := c.applied.get(key)
	if prev != nil && prev.elsewhere {
		if prev.fingerprint == serviceFingerprint(svc) {
			return nil // another component implements it; quiet until the Service changes
		}
		c.applied.delete(key)
		prev = nil
	}
	if c.caps.TargetsNodePorts && len(missingNodePorts(svc)) > 0 {
		updated, err := c.ensureNodePorts(ctx, key, svc)
		if err != nil || updated == nil {
			return err
		}
		svc = updated
	}
	nodes := c.nodes.current()
	if err := providers.ValidateService(svc); err != nil {
		c.keepLastGoodUpToDate(ctx, key, prev, nodes)
		return c.failEnsure(ctx, svc, retryNever, err)
	}
	fp := serviceFingerprint(svc)
	var ownWrites []string
	if prev != nil && prev.fingerprint == fp {
		// Up to date: the Service still shows what we wrote, or the cache
		// has not yet delivered our own write (its update requeues us).
		upToDate := slices.Contains(prev.ownWrites, svc.ResourceVersion) ||
			(hasFinalizer(svc) && statusEqual(&prev.status, &svc.Status.LoadBalancer) && conditionCurrent(svc, prev.condition))
		if upToDate {
			if prev.nodeFingerprint == nodes.fingerprint {
				return nil // nothing changed: no provider call, no write
			}
			return c.updateNodes(ctx, key, svc, prev, nodes)
		}
	}
	if !c.markedOurs(svc) {
		// The finalizer goes on before anything exists in the cloud, so a
		// deleted Service can never leave a load balancer behind.
		ownWrites = append(ownWrites, svc.ResourceVersion)
		updated, err := c.addFinalizer(ctx, svc)
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile; nothing was created
		}
		if err != nil {
			return err
		}
		svc = updated
	}
	if len(nodes.nodes) == 0 {
		c.recorder.Event(svc, v1.EventTypeWarning, EventUnAvailableLoadBalancer, "There are no available nodes for LoadBalancer")
	}

	logger.V(2).Info("Ensuring load balancer", "nodes", len(nodes.nodes))
	stop := c.noticeIfSlow(svc, EventEnsuringLoadBalancer, "Ensuring load balancer")
	start := time.Now()
	status, err := c.provider.EnsureLoadBalancer(ctx, c.cfg.ClusterName, svc, nodes.nodes)
	stop()
	c.metrics.observeProviderCall("ensure", err, time.Since(start))
	if errors.Is(err, cloudprovider.ImplementedElsewhere) {
		return c.handOver(ctx, key, svc)
	}
	if err == nil && status == nil {
		// Upstream treats it as an error too: success without a status
		// would clear the address.
		err = errNoStatus
	}
	if err != nil {
		policy := retryBackoff
		if _, ok := providers.IsInputError(err); ok {
			c.keepLastGoodUpToDate(ctx, key, prev, nodes)
			policy = retrySlow
		}
		return c.failEnsure(ctx, svc, policy, err)
	}
	sent := c.withIPMode(status)
	stored := svc.Status.LoadBalancer.DeepCopy()
	cond := readyCondition(svc, metav1.ConditionTrue, ReasonEnsured, ensuredMessage(fp))
	alreadyStored := statusEqual(sent, &svc.Status.LoadBalancer) ||
		// The API server may normalise what we send (an older one drops
		// ipMode): what it stored for the same status counts as written.
		(prev != nil && statusEqual(sent, &prev.sent) && statusEqual(&prev.status, &svc.Status.LoadBalancer))
	wrote := !alreadyStored || !conditionCurrent(svc, cond)
	if wrote {
		// The address and the condition in one write.
		ownWrites = append(ownWrites, svc.ResourceVersion)
		out, err := c.patchStatus(ctx, svc, statusPatch{loadBalancer: sent, condition: &cond})
		if apierrors.IsNotFound(err) {
			// Its finalizer was removed by hand while we were creating
			// the load balancer: nothing else will delete it.
			return c.deleteOrphan(ctx, key, svc)
		}
		if err != nil {
			return err
		}
		stored = out.Status.LoadBalancer.DeepCopy()
	}
	if wrote || prev != nil {
		// A re-check after a start that found everything as the last run
		// left it is not news: no Event (one write fewer per Service).
		c.recorder.Event(svc, v1.EventTypeNormal, EventEnsuredLoadBalancer, "Ensured load balancer")
	}
	c.applied.set(key, &applied{service: svc.DeepCopy(), fingerprint: fp, nodeFingerprint: nodes.fingerprint, status: *stored, sent: *sent, condition: cond, ownWrites: ownWrites})
	logger.V(2).Info("Ensured load balancer", "ingress", sent.Ingress)
	c.requeueIfNodesMoved(key, nodes)
	return nil
}

// requeueIfNodesMoved queues key again when the node set changed while a
// provider call for it was in flight: the fan-out (nodeSetChanged) misses
// a Service that was not in the applied store yet.
func (c *Controller) requeueIfNodesMoved(key string, used *nodeSet) {
	if c.nodes.current().fingerprint != used.fingerprint {
		c.queue.Add(key)
	}
}

// keepLastGoodUpToDate sends a changed node set to the load balancer of the
// last Service version that worked, while the current one cannot be
// served: a bad edit must not freeze a live load balancer's backends.
// Its failure is logged; the caller reports the edit's own error.
func (c *Controller) keepLastGoodUpToDate(ctx context.Context, key string, prev *applied, nodes *nodeSet) {
	if prev == nil || prev.elsewhere || prev.nodeFingerprint == nodes.fingerprint {
		return
	}
	if err := c.updateNodes(ctx, key, prev.service, prev, nodes); err != nil {
		klog.FromContext(ctx).Error(err, "Updating the nodes of the last good load balancer")
	}
}

// updateNodes tells the provider about a new node set for a load balancer
// whose Service has not changed.
func (c *Controller) updateNodes(ctx context.Context, key string, svc *v1.Service, prev *applied, nodes *nodeSet) error {
	logger := klog.FromContext(ctx)
	start := time.Now()
	err := c.provider.UpdateLoadBalancer(ctx, c.cfg.ClusterName, svc, nodes.nodes)
	c.metrics.observeProviderCall("update", err, time.Since(start))
	if errors.Is(err, cloudprovider.ImplementedElsewhere) {
		return c.handOver(ctx, key, svc)
	}
	if err != nil {
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventUpdateLoadBalancerFailed, "Error updating load balancer with new hosts %v: %v", abbreviate(nodes.Names()), err)
		return fmt.Errorf("updating load balancer of service %s with %d nodes: %w", key, len(nodes.nodes), err)
	}
	if len(nodes.nodes) == 0 {
		c.recorder.Event(svc, v1.EventTypeWarning, EventUnAvailableLoadBalancer, "There are no available nodes for LoadBalancer")
	}
	c.recorder.Eventf(svc, v1.EventTypeNormal, EventUpdatedLoadBalancer, "Updated load balancer with new hosts")
	next := *prev
	next.nodeFingerprint = nodes.fingerprint
	c.applied.set(key, &next)
	logger.V(2).Info("Updated load balancer nodes", "nodes", len(nodes.nodes))
	c.requeueIfNodesMoved(key, nodes)
	return nil
}

// cleanup deletes the load balancer of a Service that no longer wants one
// from us (deleted, type or class changed), clears the status we wrote and
// removes our finalizer, in that order.
func (c *Controller) cleanup(ctx context.Context, key string, svc *v1.Service) error {
	prev := c.applied.get(key)
	if prev != nil && prev.elsewhere && !c.ownedBy(svc) {
		c.applied.delete(key) // another component's load balancer: nothing of ours
		return nil
	}
	if !c.ownedBy(svc) && prev == nil {
		return nil // not ours (another extlb controller may own it)
	}
	logger := klog.FromContext(ctx)
	logger.V(2).Info("Deleting load balancer", "type", svc.Spec.Type, "deleting", svc.DeletionTimestamp != nil)
	c.recorder.Event(svc, v1.EventTypeNormal, EventDeletingLoadBalancer, "Deleting load balancer")
	start := time.Now()
	err := c.provider.EnsureLoadBalancerDeleted(ctx, c.cfg.ClusterName, svc)
	c.metrics.observeProviderCall("delete", err, time.Since(start))
	if err != nil && !errors.Is(err, cloudprovider.ImplementedElsewhere) {
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventDeleteLoadBalancerFailed, "Error deleting load balancer: %v", err)
		return fmt.Errorf("deleting load balancer of service %s: %w", key, err)
	}
	c.recorder.Event(svc, v1.EventTypeNormal, EventDeletedLoadBalancer, "Deleted load balancer")
	hasCondition := meta.FindStatusCondition(svc.Status.Conditions, ConditionLoadBalancerReady) != nil
	if svc.DeletionTimestamp == nil && (len(svc.Status.LoadBalancer.Ingress) > 0 || hasCondition) {
		// The Service stays but is no longer ours: our address and
		// condition go, in one write.
		if _, err := c.patchStatus(ctx, svc, statusPatch{loadBalancer: &v1.LoadBalancerStatus{}, dropCondition: hasCondition}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	if c.ownedBy(svc) {
		if err := c.removeFinalizer(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	c.applied.delete(key)
	return nil
}

// forget handles a Service that is gone from the API server (or was
// re-created with another UID) while we still remember a load balancer for
// it (its finalizer was removed by hand).
func (c *Controller) forget(ctx context.Context, key string) error {
	prev := c.applied.get(key)
	if prev == nil {
		return nil
	}
	if prev.elsewhere {
		c.applied.delete(key)
		return nil
	}
	klog.FromContext(ctx).Info("Service is gone; deleting its load balancer")
	err := c.provider.EnsureLoadBalancerDeleted(ctx, c.cfg.ClusterName, prev.service)
	if err != nil && !errors.Is(err, cloudprovider.ImplementedElsewhere) {
		return fmt.Errorf("deleting load balancer of deleted service %s: %w", key, err)
	}
	c.applied.delete(key)
	return nil
}

// deleteOrphan deletes the load balancer just ensured for a Service that
// disappeared during the call. If that fails, the Service is remembered so
// that the retry (forget) deletes it.
func (c *Controller) deleteOrphan(ctx context.Context, key string, svc *v1.Service) error {
	klog.FromContext(ctx).Info("Service was deleted while its load balancer was being created; deleting the load balancer")
	err := c.provider.EnsureLoadBalancerDeleted(ctx, c.cfg.ClusterName, svc)
	if err != nil && !errors.Is(err, cloudprovider.ImplementedElsewhere) {
		c.applied.set(key, &applied{service: svc.DeepCopy()})
		return fmt.Errorf("deleting load balancer of service %s, deleted during its creation: %w", key, err)
	}
	c.applied.delete(key)
	return nil
}

// handOver stops managing a Service whose load balancer the provider says
// another component implements, and remembers that until the Service
// changes, so that removing the finalizer does not start it all again.
func (c *Controller) handOver(ctx context.Context, key string, svc *v1.Service) error {
	prev := c.applied.get(key)
	if prev == nil || !prev.elsewhere {
		klog.FromContext(ctx).Info("Load balancer is implemented elsewhere; not managing it")
		c.recorder.Event(svc, v1.EventTypeNormal, EventLoadBalancerImplementedElsewhere, "The provider reports that another component implements this load balancer")
	}
	c.applied.set(key, &applied{service: svc.DeepCopy(), fingerprint: serviceFingerprint(svc), elsewhere: true})
	if hasFinalizer(svc) {
		if err := c.removeFinalizer(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// failEnsure reports a failed ensure (Event, log line, condition) and
// returns it with its retry policy.
func (c *Controller) failEnsure(ctx context.Context, svc *v1.Service, policy retryPolicy, err error) error {
	err = c.failSync(ctx, svc, err)
	c.reportFailure(ctx, svc, policy, err)
	return &syncError{policy: policy, err: err}
}

// failSync records a failed ensure on the Service and in the log. An
// InputError names the field at fault.
func (c *Controller) failSync(ctx context.Context, svc *v1.Service, err error) error {
	logger := klog.FromContext(ctx)
	if ie, ok := providers.IsInputError(err); ok {
		logger.Error(err, "Service cannot be served as written", "field", ie.Field, "reason", ie.Reason)
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventSyncLoadBalancerFailed, "Error syncing load balancer: %s: %s", ie.Field, ie.Reason)
	} else {
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventSyncLoadBalancerFailed, "Error syncing load balancer: %v", err)
	}
	return fmt.Errorf("ensuring load balancer of service %s/%s: %w", svc.Namespace, svc.Name, err)
}

// noticeIfSlow records an Event if the returned stop function is not called
// within cfg.SlowEnsureNotice, so that a user watching a slow provisioning
// sees that something is happening without every fast one costing a write.
func (c *Controller) noticeIfSlow(svc *v1.Service, reason, msg string) (stop func()) {
	if c.cfg.SlowEnsureNotice <= 0 {
		c.recorder.Event(svc, v1.EventTypeNormal, reason, msg)
		return func() {}
	}
	t := time.AfterFunc(c.cfg.SlowEnsureNotice, func() {
		c.recorder.Eventf(svc, v1.EventTypeNormal, reason, "%s (in progress for %s)", msg, c.cfg.SlowEnsureNotice)
	})
	return func() { t.Stop() }
}

// withIPMode fills in the provider's ipMode where an IP ingress lacks one.
func (c *Controller) withIPMode(status *v1.LoadBalancerStatus) *v1.LoadBalancerStatus {
	out := status.DeepCopy()
	for i := range out.Ingress {
		if out.Ingress[i].IP != "" && out.Ingress[i].IPMode == nil {
			mode := c.caps.IPMode
			out.Ingress[i].IPMode = &mode
		}
	}
	return out
}

func retryAfter(err error) (time.Duration, bool) {
	var re *api.RetryError
	if errors.As(err, &re) {
		return re.RetryAfter(), true
	}
	return 0, false
}

func abbreviate(names []string) []string {
	const most = 10
	if len(names) <= most {
		return names
	}
	return append(names[:most:most], fmt.Sprintf("... (%d more)", len(names)-most))
}

// retryPolicy says how a failed sync is retried.
type retryPolicy int

const (
	// retryBackoff: the per-Service exponential backoff.
	retryBackoff retryPolicy = iota
	// retryNever: the Service itself is invalid (the controller's own
	// checks); only its next change can fix it.
	retryNever
	// retrySlow: the provider refused the Service as input. The cause can
	// lie outside the Service (a subnet that does not exist yet), so it is
	// checked again, but only after MaxRetryDelay.
	retrySlow
)

// syncError carries the retry policy of a failed ensure. Errors of other
// paths (delete, node updates) are plain and back off, whatever they wrap.
type syncError struct {
	policy retryPolicy
	err    error
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }
