package gce

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	gax "github.com/googleapis/gax-go/v2"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	legacy "google.golang.org/api/compute/v1"
	"google.golang.org/api/option"
	"k8s.io/klog/v2"
)

// The narrow views of the compute clients the provider uses. The apiv1 REST
// clients satisfy them directly; tests may stub them.
type (
	addressesAPI interface {
		Get(context.Context, *computepb.GetAddressRequest, ...gax.CallOption) (*computepb.Address, error)
		List(context.Context, *computepb.ListAddressesRequest, ...gax.CallOption) *compute.AddressIterator
		Insert(context.Context, *computepb.InsertAddressRequest, ...gax.CallOption) (*compute.Operation, error)
		Delete(context.Context, *computepb.DeleteAddressRequest, ...gax.CallOption) (*compute.Operation, error)
	}
	firewallsAPI interface {
		Get(context.Context, *computepb.GetFirewallRequest, ...gax.CallOption) (*computepb.Firewall, error)
		Insert(context.Context, *computepb.InsertFirewallRequest, ...gax.CallOption) (*compute.Operation, error)
		Update(context.Context, *computepb.UpdateFirewallRequest, ...gax.CallOption) (*compute.Operation, error)
		Delete(context.Context, *computepb.DeleteFirewallRequest, ...gax.CallOption) (*compute.Operation, error)
	}
	targetPoolsAPI interface {
		Get(context.Context, *computepb.GetTargetPoolRequest, ...gax.CallOption) (*computepb.TargetPool, error)
		Insert(context.Context, *computepb.InsertTargetPoolRequest, ...gax.CallOption) (*compute.Operation, error)
		Delete(context.Context, *computepb.DeleteTargetPoolRequest, ...gax.CallOption) (*compute.Operation, error)
		AddInstance(context.Context, *computepb.AddInstanceTargetPoolRequest, ...gax.CallOption) (*compute.Operation, error)
		RemoveInstance(context.Context, *computepb.RemoveInstanceTargetPoolRequest, ...gax.CallOption) (*compute.Operation, error)
	}
	forwardingRulesAPI interface {
		Get(context.Context, *computepb.GetForwardingRuleRequest, ...gax.CallOption) (*computepb.ForwardingRule, error)
		Insert(context.Context, *computepb.InsertForwardingRuleRequest, ...gax.CallOption) (*compute.Operation, error)
		Delete(context.Context, *computepb.DeleteForwardingRuleRequest, ...gax.CallOption) (*compute.Operation, error)
	}
	instancesAPI interface {
		Get(context.Context, *computepb.GetInstanceRequest, ...gax.CallOption) (*computepb.Instance, error)
	}
	regionOperationsAPI interface {
		Wait(context.Context, *computepb.WaitRegionOperationRequest, ...gax.CallOption) (*computepb.Operation, error)
	}
	globalOperationsAPI interface {
		Wait(context.Context, *computepb.WaitGlobalOperationRequest, ...gax.CallOption) (*computepb.Operation, error)
	}
	// healthChecksAPI is the legacy global httpHealthChecks collection, the
	// only kind of health check a target pool accepts. The apiv1 module has
	// no client for it, so it goes through google.golang.org/api/compute/v1
	// (see legacyHealthChecks). Mutations return the operation's name.
	healthChecksAPI interface {
		Get(ctx context.Context, name string) (*legacy.HttpHealthCheck, error)
		Insert(ctx context.Context, hc *legacy.HttpHealthCheck, requestID string) (*computepb.Operation, error)
		Update(ctx context.Context, hc *legacy.HttpHealthCheck, requestID string) (*computepb.Operation, error)
		Delete(ctx context.Context, name, requestID string) (*computepb.Operation, error)
	}
)

// cloud is the set of clients one provider uses.
type cloud struct {
	addresses        addressesAPI
	firewalls        firewallsAPI
	healthChecks     healthChecksAPI
	targetPools      targetPoolsAPI
	forwardingRules  forwardingRulesAPI
	instances        instancesAPI
	regionOperations regionOperationsAPI
	globalOperations globalOperationsAPI
	close            func()
}

// noGAXRetry turns off the retries of the apiv1 REST clients for one call.
//
// How retries compose: every request goes through one retryablehttp layer
// (newHTTPClient) that retries connection errors, 429 and 5xx (except 501)
// with capped exponential backoff, honouring Retry-After, up to
// --gce-http-retries times. The apiv1 REST clients add their own gax retry
// only where their default call options say so: in v1.75.0 Get and List
// (and AggregatedList) retry on 503 and 504 with 100ms..60s backoff for up to
// 600s, and Insert, Delete, Update, AddInstance, RemoveInstance and
// operations Wait do not retry. Left alone, a 503 on a Get would be retried
// by retryablehttp and then the whole retryablehttp sequence again by gax:
// the two multiply. Every call the provider makes therefore passes
// noGAXRetry, so retryablehttp is the single retry layer. The
// google.golang.org/api legacy client used for health checks sends each
// request once. Mutations carry a requestId, so a retried POST that GCE had
// already accepted returns the original operation instead of acting twice.
func noGAXRetry() gax.CallOption {
	return gax.WithRetry(func() gax.Retryer { return nil })
}

// httpOptions configure the shared HTTP stack.
type httpOptions struct {
	retries      int
	retryWaitMin time.Duration
	retryWaitMax time.Duration
	// anonymous skips credentials (plain-HTTP test endpoints).
	anonymous bool
}

// newHTTPClient builds the HTTP client every compute client shares:
//
//	compute client → retryablehttp (retries) → oauth2 (ADC token) → http.Transport
//
// Retries sit above the token source, so each attempt carries a valid
// token. The last failed response is passed through to the client, which
// turns Google's JSON error body into an error with code and reason.
func newHTTPClient(ctx context.Context, o httpOptions) (*http.Client, error) {
	var base http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if !o.anonymous {
		creds, err := google.FindDefaultCredentials(ctx, compute.DefaultAuthScopes()...)
		if err != nil {
			return nil, fmt.Errorf("finding Application Default Credentials for the compute API: %w", err)
		}
		base = &oauth2.Transport{Source: creds.TokenSource, Base: base}
	}
	logger := klog.FromContext(ctx).WithName("gce-http")
	rc := &retryablehttp.Client{
		// An operation wait may block for about two minutes on GCE's side.
		HTTPClient:   &http.Client{Transport: base, Timeout: 3 * time.Minute},
		RetryMax:     o.retries,
		RetryWaitMin: o.retryWaitMin,
		RetryWaitMax: o.retryWaitMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      retryablehttp.DefaultBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, attempt int) {
			if attempt > 0 {
				logger.V(2).Info("Retrying compute API request", "method", req.Method, "path", req.URL.Path, "attempt", attempt)
			}
		},
	}
	return &http.Client{Transport: &retryablehttp.RoundTripper{Client: rc}}, nil
}

// newCloud builds the clients against endpoint ("" for the real API).
func newCloud(ctx context.Context, project, endpoint string, o httpOptions) (*cloud, error) {
	httpClient, err := newHTTPClient(ctx, o)
	if err != nil {
		return nil, err
	}
	opts := []option.ClientOption{option.WithHTTPClient(httpClient)}
	legacyOpts := []option.ClientOption{option.WithHTTPClient(httpClient)}
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint))
		legacyOpts = append(legacyOpts, option.WithEndpoint(strings.TrimSuffix(endpoint, "/")+"/compute/v1/"))
	}
	var closers []func() error
	c := &cloud{}
	fail := func(what string, err error) (*cloud, error) {
		for _, cl := range closers {
			_ = cl()
		}
		return nil, fmt.Errorf("creating the compute %s client: %w", what, err)
	}
	addresses, err := compute.NewAddressesRESTClient(ctx, opts...)
	if err != nil {
		return fail("addresses", err)
	}
	closers = append(closers, addresses.Close)
	firewalls, err := compute.NewFirewallsRESTClient(ctx, opts...)
	if err != nil {
		return fail("firewalls", err)
	}
	closers = append(closers, firewalls.Close)
	pools, err := compute.NewTargetPoolsRESTClient(ctx, opts...)
	if err != nil {
		return fail("targetPools", err)
	}
	closers = append(closers, pools.Close)
	rules, err := compute.NewForwardingRulesRESTClient(ctx, opts...)
	if err != nil {
		return fail("forwardingRules", err)
	}
	closers = append(closers, rules.Close)
	instances, err := compute.NewInstancesRESTClient(ctx, opts...)
	if err != nil {
		return fail("instances", err)
	}
	closers = append(closers, instances.Close)
	regionOps, err := compute.NewRegionOperationsRESTClient(ctx, opts...)
	if err != nil {
		return fail("regionOperations", err)
	}
	closers = append(closers, regionOps.Close)
	globalOps, err := compute.NewGlobalOperationsRESTClient(ctx, opts...)
	if err != nil {
		return fail("globalOperations", err)
	}
	closers = append(closers, globalOps.Close)
	svc, err := legacy.NewService(ctx, legacyOpts...)
	if err != nil {
		return fail("httpHealthChecks", err)
	}
	c.addresses, c.firewalls, c.targetPools, c.forwardingRules = addresses, firewalls, pools, rules
	c.instances, c.regionOperations, c.globalOperations = instances, regionOps, globalOps
	c.healthChecks = &legacyHealthChecks{svc: legacy.NewHttpHealthChecksService(svc), project: project}
	c.close = func() {
		for _, cl := range closers {
			_ = cl()
		}
	}
	return c, nil
}

// legacyHealthChecks adapts google.golang.org/api's HttpHealthChecksService
// to healthChecksAPI.
type legacyHealthChecks struct {
	svc     *legacy.HttpHealthChecksService
	project string
}

func (l *legacyHealthChecks) Get(ctx context.Context, name string) (*legacy.HttpHealthCheck, error) {
	return l.svc.Get(l.project, name).Context(ctx).Do()
}

func (l *legacyHealthChecks) Insert(ctx context.Context, hc *legacy.HttpHealthCheck, requestID string) (*computepb.Operation, error) {
	return toOperation(l.svc.Insert(l.project, hc).RequestId(requestID).Context(ctx).Do())
}

func (l *legacyHealthChecks) Update(ctx context.Context, hc *legacy.HttpHealthCheck, requestID string) (*computepb.Operation, error) {
	return toOperation(l.svc.Update(l.project, hc.Name, hc).RequestId(requestID).Context(ctx).Do())
}

func (l *legacyHealthChecks) Delete(ctx context.Context, name, requestID string) (*computepb.Operation, error) {
	return toOperation(l.svc.Delete(l.project, name).RequestId(requestID).Context(ctx).Do())
}

// toOperation converts the legacy client's Operation to the computepb one
// the waiting code handles.
func toOperation(op *legacy.Operation, err error) (*computepb.Operation, error) {
	if err != nil {
		return nil, err
	}
	status := computepb.Operation_Status(computepb.Operation_Status_value[op.Status])
	out := &computepb.Operation{Name: &op.Name, Status: &status}
	if op.Error != nil && len(op.Error.Errors) > 0 {
		out.Error = &computepb.Error{}
		for _, e := range op.Error.Errors {
			out.Error.Errors = append(out.Error.Errors, &computepb.Errors{Code: &e.Code, Message: &e.Message})
		}
		code := int32(op.HttpErrorStatusCode)
		out.HttpErrorStatusCode = &code
	}
	return out, nil
}
