package controller

import (
	"context"
	"errors"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
)

// ConditionLoadBalancerReady is the condition the controller keeps in
// status.conditions of every Service it serves, so that a user or a tool
// can tell a provisioned load balancer from one still being provisioned
// and from one that failed, and why:
//
//   - True, reason Ensured: the load balancer matches the Service
//     (observedGeneration says which version of it).
//   - Unknown, reason Provisioning: the provider asked to be called again
//     later (still provisioning, throttled).
//   - False, reason InvalidService or ProviderRefused: the Service cannot
//     be served as written; the message names the field and the reason.
//   - False, reason ProviderError: the provider failed; retried with
//     backoff.
//
// On success it goes in the same status write as the address, so it costs
// no extra API call. A Service with extlb's finalizer and no condition yet
// is being provisioned for the first time. The condition is removed with
// the address when the Service stops being ours.
const ConditionLoadBalancerReady = "extlb.io/LoadBalancerReady"

// Reasons of ConditionLoadBalancerReady.
const (
	ReasonEnsured         = "Ensured"
	ReasonProvisioning    = "Provisioning"
	ReasonInvalidService  = "InvalidService"
	ReasonProviderRefused = "ProviderRefused"
	ReasonProviderError   = "ProviderError"
)

// readyCondition builds our condition for svc, keeping the transition time
// of the current one when the status does not change.
func readyCondition(svc *v1.Service, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	c := metav1.Condition{
		Type:               ConditionLoadBalancerReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: svc.Generation,
		LastTransitionTime: metav1.Now(),
	}
	if cur := meta.FindStatusCondition(svc.Status.Conditions, ConditionLoadBalancerReady); cur != nil && cur.Status == status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	return c
}

// conditionCurrent reports whether svc already carries want (all but the
// transition time).
func conditionCurrent(svc *v1.Service, want metav1.Condition) bool {
	cur := meta.FindStatusCondition(svc.Status.Conditions, want.Type)
	return cur != nil && cur.Status == want.Status && cur.Reason == want.Reason &&
		cur.Message == want.Message && cur.ObservedGeneration == want.ObservedGeneration
}

// failureCondition turns a failed ensure into our condition.
func failureCondition(svc *v1.Service, policy retryPolicy, err error) metav1.Condition {
	if _, ok := retryAfter(err); ok {
		return readyCondition(svc, metav1.ConditionUnknown, ReasonProvisioning, truncate(err.Error()))
	}
	if ie, ok := providers.IsInputError(err); ok {
		reason := ReasonProviderRefused
		if policy == retryNever {
			reason = ReasonInvalidService
		}
		return readyCondition(svc, metav1.ConditionFalse, reason, truncate(ie.Field+": "+ie.Reason))
	}
	return readyCondition(svc, metav1.ConditionFalse, ReasonProviderError, truncate(err.Error()))
}

// reportFailure writes the failure condition when it differs from the
// Service's. The write's own watch event does not sync the Service again
// (see ownStatusWrites), so a retry schedule is kept as handleErr sets it.
// A failed write is logged: the sync's own error is what matters.
func (c *Controller) reportFailure(ctx context.Context, svc *v1.Service, policy retryPolicy, err error) {
	cond := failureCondition(svc, policy, err)
	if conditionCurrent(svc, cond) {
		return
	}
	if _, werr := c.patchStatus(ctx, svc, statusPatch{condition: &cond}); werr != nil && !apierrors.IsNotFound(werr) {
		klog.FromContext(ctx).Error(werr, "Writing the failure condition")
	}
}

// truncate keeps a condition message within the API's 32 KiB limit.
func truncate(s string) string {
	const most = 4096
	if len(s) <= most {
		return s
	}
	return s[:most] + "…"
}

// errNoStatus is returned for a provider that answered (nil, nil).
var errNoStatus = errors.New("the provider returned neither a status nor an error")
