// Package providertest checks that a provider keeps the contract written in
// package providers, against the provider's own fake cloud. It is a test
// harness, like net/http/httptest: only _test.go files import it.
//
// A provider package describes how to build itself against an empty fake,
// how to list what the fake holds and how to count the writes it received,
// and calls Run from a test:
//
//	func TestContract(t *testing.T) {
//		providertest.Run(t, providertest.Harness{
//			New: func(t *testing.T) *providertest.Cloud {
//				e := newEnv(t)
//				return &providertest.Cloud{LB: e.p, Nodes: threeNodes(), Inventory: e.inventory, Writes: e.writeLog}
//			},
//		})
//	}
//
// Run runs one subtest per behaviour (see the Check constants); each builds
// its own Cloud, so the checks share nothing.
package providertest

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// DefaultClusterName is the cluster name passed to every provider call when
// the Harness gives none.
const DefaultClusterName = "contract"

// DefaultTimeout bounds every provider call the suite makes.
const DefaultTimeout = 2 * time.Minute

// Harness is what a provider package hands to Run.
type Harness struct {
	// ClusterName is passed to every call; "" means DefaultClusterName.
	ClusterName string
	// New returns the provider against a fresh, empty fake (seeded only
	// with what the nodes need, such as instances). It is called once per
	// subtest; cleanup goes through t.Cleanup. Required.
	New func(t *testing.T) *Cloud
	// Service returns a Service the provider serves; every call must
	// return a fresh object. nil means DefaultService.
	Service func() *v1.Service
	// Invalid are Services the provider must reject with an InputError,
	// in addition to the suite's own (an invalid source range). Each is
	// the valid Service changed by a tweak.
	Invalid []Invalid
	// Triggers make the provider fail with a RetryError or
	// cloudprovider.ImplementedElsewhere; the suite checks that the error
	// reaches the caller intact. A harness without triggers gets no such
	// subtest (the suite logs that instead of skipping).
	Triggers []Trigger
	// Omit names checks this provider does not run, each with the reason
	// (a known bug, say). The suite logs every omission.
	Omit map[Check]string
	// Timeout bounds every provider call; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Cloud is one provider against its own fake.
type Cloud struct {
	// LB is the provider under test.
	LB providers.LoadBalancer
	// Nodes are the cluster's nodes, at least two, valid for LB (their
	// instances exist in the fake). The suite ensures with all but the
	// last and updates to all but the first.
	Nodes []*v1.Node
	// Inventory returns everything the fake holds that a provider can
	// create or change (load balancers, listeners, rules, pools,
	// addresses, allocations, ...), one entry per resource: a stable key
	// and a description that changes when the resource does. Required.
	Inventory func(t *testing.T) map[string]string
	// Writes returns every mutating call the fake has received since the
	// Cloud was built, in order, each described in a few words (for
	// example "elasticloadbalancing:ModifyListener"); failed calls count.
	// Required.
	Writes func(t *testing.T) []string
}

// Invalid is a Service a provider cannot serve.
type Invalid struct {
	Desc string
	// Tweak turns the valid Service into the invalid one.
	Tweak fixtures.ServiceTweak
	// Field, when set, is a prefix the InputError's Field must have.
	Field string
}

// Want is the kind of error a Trigger must produce.
type Want int

const (
	// WantRetry: the error wraps an *api.RetryError
	// (k8s.io/cloud-provider/api).
	WantRetry Want = iota + 1
	// WantImplementedElsewhere: errors.Is(err,
	// cloudprovider.ImplementedElsewhere). The provider must also write
	// nothing: another component owns the load balancer.
	WantImplementedElsewhere
)

func (w Want) String() string {
	switch w {
	case WantRetry:
		return "RetryError"
	case WantImplementedElsewhere:
		return "ImplementedElsewhere"
	}
	return "unknown Want"
}

// Op names a method of cloudprovider.LoadBalancer.
type Op string

// The methods the suite calls.
const (
	OpGet    Op = "GetLoadBalancer"
	OpEnsure Op = "EnsureLoadBalancer"
	OpUpdate Op = "UpdateLoadBalancer"
	OpDelete Op = "EnsureLoadBalancerDeleted"
)

// Trigger is one way to make the provider return a RetryError or
// ImplementedElsewhere.
type Trigger struct {
	Desc string
	Want Want
	// New builds the provider with the trigger armed (a fake that
	// throttles, a full pool, ...); nil means Harness.New.
	New func(t *testing.T) *Cloud
	// Tweak changes the valid Service to pull the trigger (an
	// annotation, ...); nil leaves it as it is.
	Tweak fixtures.ServiceTweak
	// Ops are the methods that must return the error, each called on a
	// fresh Cloud; empty means EnsureLoadBalancer only.
	Ops []Op
}

// Check names one behaviour the suite checks; it is the subtest's name.
type Check string

// The checks, in the order Run runs them.
const (
	// CheckEnsureIdempotent: a second Ensure with the same Service and
	// nodes (also in another order) returns the same status, writes
	// nothing and leaves the same inventory.
	CheckEnsureIdempotent Check = "EnsureIsIdempotent"
	// CheckDeleteNeverCreated: EnsureLoadBalancerDeleted of a load
	// balancer that never existed returns nil and writes nothing.
	CheckDeleteNeverCreated Check = "DeleteOfNeverCreatedIsNoop"
	// CheckInputError: an invalid Service is an InputError before any
	// write, for a new Service and for one whose load balancer exists.
	CheckInputError Check = "InvalidServiceIsInputErrorBeforeAnyWrite"
	// CheckErrorsPassThrough: the Triggers' RetryError and
	// ImplementedElsewhere reach the caller.
	CheckErrorsPassThrough Check = "RetryAndImplementedElsewherePassThrough"
	// CheckArgumentsReadOnly: no method changes its Service or Node
	// arguments.
	CheckArgumentsReadOnly Check = "ArgumentsAreNotModified"
	// CheckDeleteLeavesNothing: after Ensure and Delete the fake's
	// inventory is what it was before, and Get reports exists=false.
	CheckDeleteLeavesNothing Check = "DeleteLeavesNothing"
	// CheckUpdateNodes: Get after Ensure reports the Ensure's status;
	// Update to another node set succeeds; Ensure after it is idempotent.
	CheckUpdateNodes Check = "UpdateNodesThenEnsureIsIdempotent"
)

// Checks lists every check, in the order Run runs them.
var Checks = []Check{
	CheckEnsureIdempotent, CheckDeleteNeverCreated, CheckInputError, CheckErrorsPassThrough,
	CheckArgumentsReadOnly, CheckDeleteLeavesNothing, CheckUpdateNodes,
}

// DefaultService is the Service the suite uses when the Harness gives none:
// default/contract-web with a UID, one TCP port 80 on node port 30080 and
// the Cluster traffic policy.
func DefaultService() *v1.Service {
	return fixtures.Service("default", "contract-web",
		fixtures.WithUID("uid-contract-web"), fixtures.WithClusterPolicy(),
		fixtures.WithPorts(fixtures.TCP(80, 30080)))
}

// DefaultNodes returns three ready nodes, contract-n1..3, with InternalIPs
// 192.0.2.1..3.
func DefaultNodes() []*v1.Node {
	var nodes []*v1.Node
	for i, name := range []string{"contract-n1", "contract-n2", "contract-n3"} {
		nodes = append(nodes, fixtures.Node(name, fixtures.WithInternalIP(fmt.Sprintf("192.0.2.%d", i+1)), fixtures.WithReady()))
	}
	return nodes
}

// suiteInvalid are the invalid Services every provider must reject.
var suiteInvalid = []Invalid{
	{Desc: "source range is not a CIDR", Tweak: fixtures.WithSourceRanges("not-a-cidr"), Field: "spec.loadBalancerSourceRanges"},
	// extlb's own annotation namespace: what a provider does not implement
	// is refused, never ignored (providers.Annotations).
	{Desc: "unknown extlb annotation", Tweak: fixtures.WithAnnotation("extlb.io/no-such-setting", "on"), Field: "metadata.annotations[extlb.io/no-such-setting]"},
}

// Run checks the provider the Harness describes; see the Check constants.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("providertest: Harness.New is required")
	}
	if h.ClusterName == "" {
		h.ClusterName = DefaultClusterName
	}
	if h.Service == nil {
		h.Service = DefaultService
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultTimeout
	}
	for check := range h.Omit {
		if !known(check) {
			t.Errorf("providertest: Harness.Omit names unknown check %q", check)
		}
	}
	runs := map[Check]func(*testing.T, *Harness){
		CheckEnsureIdempotent:    checkEnsureIdempotent,
		CheckDeleteNeverCreated:  checkDeleteNeverCreated,
		CheckInputError:          checkInputError,
		CheckErrorsPassThrough:   checkErrorsPassThrough,
		CheckArgumentsReadOnly:   checkArgumentsReadOnly,
		CheckDeleteLeavesNothing: checkDeleteLeavesNothing,
		CheckUpdateNodes:         checkUpdateNodes,
	}
	for _, check := range Checks {
		if why, omitted := h.Omit[check]; omitted {
			if why == "" {
				t.Errorf("providertest: Harness.Omit[%s] gives no reason", check)
			}
			t.Logf("%s: not run for this provider: %s", check, why)
			continue
		}
		if check == CheckErrorsPassThrough && len(h.Triggers) == 0 {
			t.Logf("%s: not run: the harness has no trigger for a RetryError or ImplementedElsewhere", check)
			continue
		}
		run := runs[check]
		t.Run(string(check), func(t *testing.T) { run(t, &h) })
	}
}

func known(c Check) bool {
	for _, k := range Checks {
		if k == c {
			return true
		}
	}
	return false
}
