package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	cloudapi "k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/api"
)

// lbAPI is the part of the fake cloud's API the provider uses.
type lbAPI interface {
	getLoadBalancer(ctx context.Context, name string) (*api.LoadBalancer, error)
	putLoadBalancer(ctx context.Context, name string, spec api.LoadBalancerSpec) (*api.LoadBalancer, error)
	deleteLoadBalancer(ctx context.Context, name string) error
}

// defaultRetryAfter is used for a 503 without a Retry-After header.
const defaultRetryAfter = 5 * time.Second

// client talks to the fake cloud over HTTP with retries: connection errors,
// 5xx and 429 are retried (honouring Retry-After) while the request's
// context leaves time for the wait; after that the last answer is mapped to
// an error (see responseError).
type client struct {
	base  *url.URL
	token string
	http  *retryablehttp.Client
	// requestTimeout bounds a call whose context has no deadline.
	requestTimeout time.Duration
}

var _ lbAPI = (*client)(nil)

type clientOptions struct {
	endpoint       string
	token          string
	maxRetries     int
	retryWaitMin   time.Duration
	retryWaitMax   time.Duration
	requestTimeout time.Duration
	logger         klog.Logger
}

func newClient(o clientOptions) (*client, error) {
	u, err := url.Parse(o.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--fake-endpoint %q: want an http:// or https:// URL", o.endpoint)
	}
	rc := retryablehttp.NewClient()
	rc.Logger = klogAdapter{o.logger}
	rc.RetryMax = o.maxRetries
	rc.RetryWaitMin = o.retryWaitMin
	rc.RetryWaitMax = o.retryWaitMax
	rc.Backoff = retryablehttp.DefaultBackoff
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c := &client{base: u, token: o.token, http: rc, requestTimeout: o.requestTimeout}
	rc.CheckRetry = c.checkRetry
	return c, nil
}

// checkRetry retries what DefaultRetryPolicy retries (connection errors,
// 5xx except 501, 429) unless the wait before the next attempt would end
// after the context's deadline.
func (c *client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	retry, _ := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if !retry {
		return false, nil
	}
	wait := c.http.RetryWaitMin
	if ra, ok := retryAfter(resp); ok {
		wait = ra
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return false, nil
	}
	return true, nil
}

func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

func (c *client) do(ctx context.Context, method, name string, body any) (*http.Response, error) {
	if _, ok := ctx.Deadline(); !ok && c.requestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.requestTimeout)
		defer cancel()
	}
	u := c.base.JoinPath("v1", "loadbalancers", name)
	var raw any
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding load balancer %s: %w", name, err)
		}
		raw = data
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), raw)
	if err != nil {
		return nil, fmt.Errorf("fake cloud %s load balancer %s: %w", method, name, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		return nil, fmt.Errorf("fake cloud %s load balancer %s: %w", method, name, err)
	}
	// Read the whole body now: the context ends when do returns.
	data, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxBodyBytes))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("fake cloud %s load balancer %s: reading answer: %w", method, name, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

func (c *client) getLoadBalancer(ctx context.Context, name string) (*api.LoadBalancer, error) {
	resp, err := c.do(ctx, http.MethodGet, name, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	return decodeLoadBalancer(resp, http.MethodGet, name)
}

func (c *client) putLoadBalancer(ctx context.Context, name string, spec api.LoadBalancerSpec) (*api.LoadBalancer, error) {
	resp, err := c.do(ctx, http.MethodPut, name, api.LoadBalancer{Spec: spec})
	if err != nil {
		return nil, err
	}
	return decodeLoadBalancer(resp, http.MethodPut, name)
}

func (c *client) deleteLoadBalancer(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, name, nil)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return responseError(resp, http.MethodDelete, name)
}

func decodeLoadBalancer(resp *http.Response, method, name string) (*api.LoadBalancer, error) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, responseError(resp, method, name)
	}
	var lb api.LoadBalancer
	if err := json.NewDecoder(resp.Body).Decode(&lb); err != nil {
		return nil, fmt.Errorf("fake cloud %s load balancer %s: decoding answer: %w", method, name, err)
	}
	return &lb, nil
}

// responseError maps an unsuccessful answer to the error the controller
// acts on: 400 → providers.InputError (the field translated to the
// Service's), 429 and 503 → *api.RetryError after Retry-After, anything else
// a plain error.
func responseError(resp *http.Response, method, name string) error {
	var e api.Error
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &e); err != nil || e.Message == "" {
		e.Message = string(bytes.TrimSpace(data))
	}
	op := fmt.Sprintf("fake cloud %s load balancer %s", method, name)
	switch resp.StatusCode {
	case http.StatusBadRequest:
		reason := e.Reason
		if reason == "" {
			reason = e.Message
		}
		return fmt.Errorf("%s: %w", op, providers.NewInputError(serviceField(e.Field), "rejected by the fake cloud (%s): %s", orRequest(e.Field), reason))
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		wait, ok := retryAfter(resp)
		if !ok {
			wait = defaultRetryAfter
		}
		what := "throttled"
		if resp.StatusCode == http.StatusServiceUnavailable {
			what = "unavailable"
		}
		return fmt.Errorf("%s: %w", op, cloudapi.NewRetryError(fmt.Sprintf("fake cloud %s (%d %s), retry after %s", what, resp.StatusCode, e.Message, wait), wait))
	}
	return fmt.Errorf("%s: status %d: %s", op, resp.StatusCode, e.Message)
}

func orRequest(field string) string {
	if field == "" {
		return "request"
	}
	return field
}

// klogAdapter makes retryablehttp log through a klog.Logger, quietly: its
// per-request lines are debug output, its errors are retried ones.
type klogAdapter struct{ logger klog.Logger }

func (k klogAdapter) Error(msg string, kv ...any) { k.logger.V(3).Info(msg, kv...) }
func (k klogAdapter) Info(msg string, kv ...any)  { k.logger.V(4).Info(msg, kv...) }
func (k klogAdapter) Debug(msg string, kv ...any) { k.logger.V(5).Info(msg, kv...) }
func (k klogAdapter) Warn(msg string, kv ...any)  { k.logger.V(3).Info(msg, kv...) }
