package gce

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/googleapi"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
)

// quotaRetryAfter is how long the controller waits before retrying a
// Service that hit a quota.
const quotaRetryAfter = 5 * time.Minute

// OperationError is a compute operation that finished with an error.
type OperationError struct {
	// Resource names what the operation was changing ("forwarding rule x").
	Resource string
	// HTTPStatus is the operation's httpErrorStatusCode.
	HTTPStatus int
	// Code and Message are its first error.
	Code, Message string
}

func (e *OperationError) Error() string {
	return fmt.Sprintf("operation on %s failed: %s (%d): %s", e.Resource, e.Code, e.HTTPStatus, e.Message)
}

// requestID returns a fresh UUID for a mutation's requestId, which makes a
// retried POST idempotent on GCE's side.
func requestID() *string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	return &s
}

// waitRegion waits for a regional mutation. err is the mutation's own error.
func (p *Provider) waitRegion(ctx context.Context, op *compute.Operation, err error, what string) error {
	if err != nil {
		return wrapCallError(err, what)
	}
	return p.wait(ctx, op.Proto(), false, what)
}

// waitGlobal waits for a global mutation.
func (p *Provider) waitGlobal(ctx context.Context, op *compute.Operation, err error, what string) error {
	if err != nil {
		return wrapCallError(err, what)
	}
	return p.wait(ctx, op.Proto(), true, what)
}

// wait blocks until the operation is DONE, using the operations' wait
// method (which returns when the operation completes or after about two
// minutes), and returns the operation's error naming what it changed.
func (p *Provider) wait(ctx context.Context, op *computepb.Operation, global bool, what string) error {
	name := op.GetName()
	for op.GetStatus() != computepb.Operation_DONE {
		var err error
		if global {
			op, err = p.cloud.globalOperations.Wait(ctx, &computepb.WaitGlobalOperationRequest{Project: p.project, Operation: name}, noGAXRetry())
		} else {
			op, err = p.cloud.regionOperations.Wait(ctx, &computepb.WaitRegionOperationRequest{Project: p.project, Region: p.region, Operation: name}, noGAXRetry())
		}
		if err != nil {
			return fmt.Errorf("waiting for operation %s on %s: %w", name, what, err)
		}
	}
	if e := op.GetError(); e != nil && len(e.GetErrors()) > 0 {
		first := e.GetErrors()[0]
		opErr := &OperationError{Resource: what, HTTPStatus: int(op.GetHttpErrorStatusCode()), Code: first.GetCode(), Message: first.GetMessage()}
		if first.GetCode() == "QUOTA_EXCEEDED" {
			return errors.Join(opErr, api.NewRetryError(opErr.Error(), quotaRetryAfter))
		}
		return opErr
	}
	klog.FromContext(ctx).V(4).Info("Compute operation done", "operation", name, "resource", what)
	return nil
}

// wrapCallError names the resource in an API error; quota errors also ask
// the controller to retry later instead of hot-looping.
func wrapCallError(err error, what string) error {
	if hasReason(err, http.StatusForbidden, "quotaExceeded") || hasReason(err, http.StatusForbidden, "QUOTA_EXCEEDED") {
		return errors.Join(fmt.Errorf("%s: quota exceeded: %w", what, err), api.NewRetryError("GCE quota exceeded for "+what, quotaRetryAfter))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// httpCode returns the HTTP status of a compute API error, or 0.
func httpCode(err error) int {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code
	}
	return 0
}

func isNotFound(err error) bool { return httpCode(err) == http.StatusNotFound }

// hasReason reports whether err is an API error with the status and one of
// its errors[].reason equal to reason (case-insensitive).
func hasReason(err error, code int, reason string) bool {
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) || gerr.Code != code {
		return false
	}
	for _, item := range gerr.Errors {
		if strings.EqualFold(item.Reason, reason) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(gerr.Message), strings.ToLower(reason))
}
