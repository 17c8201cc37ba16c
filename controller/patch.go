package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// patchStatus replaces status.loadBalancer on the status subresource and
// returns the Service as the API server stored it.
func (c *Controller) patchStatus(ctx context.Context, svc *v1.Service, status *v1.LoadBalancerStatus) (*v1.Service, error) {
	ingress := status.Ingress
	if ingress == nil {
		ingress = []v1.LoadBalancerIngress{}
	}
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{"loadBalancer": map[string]any{"ingress": ingress}},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return c.patchService(ctx, svc, patch, "status")
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
