package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

func hasFinalizer(svc *v1.Service) bool {
	return slices.Contains(svc.Finalizers, Finalizer)
}

// ownedBy reports whether this controller put its finalizer on svc: the
// finalizer is there and the served-by annotation names our class. When
// someone removed the annotation, the finalizer counts as ours unless the
// Service is a LoadBalancer of a class we do not serve (so another extlb
// controller's): a Service must never be left stuck with our finalizer.
func (c *Controller) ownedBy(svc *v1.Service) bool {
	if !hasFinalizer(svc) {
		return false
	}
	if class, ok := svc.Annotations[AnnotationServedByClass]; ok {
		return class == c.cfg.Class.Name
	}
	return c.serves(svc) || svc.Spec.Type != v1.ServiceTypeLoadBalancer
}

// markedOurs reports whether svc carries our finalizer and annotation.
func (c *Controller) markedOurs(svc *v1.Service) bool {
	return hasFinalizer(svc) && svc.Annotations[AnnotationServedByClass] == c.cfg.Class.Name
}

// addFinalizer adds our finalizer, and the class we serve the Service
// under, with a strategic-merge patch, which merges into the list and so
// never drops another controller's finalizer.
func (c *Controller) addFinalizer(ctx context.Context, svc *v1.Service) (*v1.Service, error) {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"finalizers":  []string{Finalizer},
			"annotations": map[string]string{AnnotationServedByClass: c.cfg.Class.Name},
		},
	})
	return c.patchService(ctx, svc, patch, "")
}

// removeFinalizer removes only our finalizer and our annotation.
func (c *Controller) removeFinalizer(ctx context.Context, svc *v1.Service) error {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"$deleteFromPrimitiveList/finalizers": []string{Finalizer},
			"annotations":                         map[string]any{AnnotationServedByClass: nil},
		},
	})
	_, err := c.patchService(ctx, svc, patch, "")
	return err
}

// statusPatch is one write of the status subresource: the address, our
// condition, or both. Conditions merge by type, so another controller's
// conditions are never touched.
type statusPatch struct {
	// loadBalancer replaces status.loadBalancer when set.
	loadBalancer *v1.LoadBalancerStatus
	// condition sets ConditionLoadBalancerReady; dropCondition removes it.
	condition     *metav1.Condition
	dropCondition bool
}

// patchStatus writes p with a strategic-merge patch of the status
// subresource and returns the Service as the API server stored it. Its
// watch event does not sync the Service again (ownStatusWrites).
func (c *Controller) patchStatus(ctx context.Context, svc *v1.Service, p statusPatch) (*v1.Service, error) {
	status := map[string]any{}
	if p.loadBalancer != nil {
		ingress := p.loadBalancer.Ingress
		if ingress == nil {
			ingress = []v1.LoadBalancerIngress{}
		}
		status["loadBalancer"] = map[string]any{"ingress": ingress}
	}
	switch {
	case p.condition != nil:
		status["conditions"] = []metav1.Condition{*p.condition}
	case p.dropCondition:
		status["conditions"] = []map[string]string{{"type": ConditionLoadBalancerReady, "$patch": "delete"}}
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return nil, fmt.Errorf("encoding status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	out, err := c.patchService(ctx, svc, patch, "status")
	if err == nil {
		c.ownStatusWrites.record(cache.MetaObjectToName(out).String(), out.ResourceVersion)
	}
	return out, err
}

// ownWrites remembers, per Service, the resourceVersion of the controller's
// last status write, so that the watch event it causes is not taken for a
// change of the Service.
type ownWrites struct {
	mu sync.Mutex
	rv map[string]string
}

func (o *ownWrites) record(key, rv string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rv == nil {
		o.rv = map[string]string{}
	}
	o.rv[key] = rv
}

// seen reports whether rv is our last status write of key, and forgets it.
func (o *ownWrites) seen(key, rv string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rv[key] != rv {
		return false
	}
	delete(o.rv, key)
	return true
}

func (o *ownWrites) forget(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.rv, key)
}

func (c *Controller) patchService(ctx context.Context, svc *v1.Service, patch []byte, subresource string) (*v1.Service, error) {
	var subresources []string
	if subresource != "" {
		subresources = []string{subresource}
	}
	out, err := c.client.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, subresources...)
	c.metrics.observeAPIWrite("patch", subresource, err)
	if err != nil {
		return nil, fmt.Errorf("patching service %s/%s %s: %w", svc.Namespace, svc.Name, subresourceName(subresource), err)
	}
	klog.FromContext(ctx).V(4).Info("Patched service", "subresource", subresource, "patch", string(patch))
	return out, nil
}

func subresourceName(s string) string {
	if s == "" {
		return "metadata"
	}
	return s
}

// statusEqual compares load-balancer statuses, treating nil and empty
// ingress lists alike.
func statusEqual(a, b *v1.LoadBalancerStatus) bool {
	if len(a.Ingress) == 0 && len(b.Ingress) == 0 {
		return true
	}
	return apiequality.Semantic.DeepEqual(a.Ingress, b.Ingress)
}
