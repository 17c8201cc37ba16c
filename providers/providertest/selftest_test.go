package providertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers/providertest"
)

// brokenEnv selects the broken provider TestBrokenProviderChild checks.
const brokenEnv = "PROVIDERTEST_BROKEN"

// TestSuiteFailsBrokenProviders shows that each check can fail: it runs the
// suite on the in-memory provider broken in one way at a time, in a child
// test process, and wants the check that guards against that breakage to
// fail there (and, for the unbroken provider, everything to pass).
func TestSuiteFailsBrokenProviders(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		mode  string
		fails []providertest.Check
	}{
		{desc: "unbroken", mode: "none"},
		{desc: "Ensure writes every time", mode: "writes-on-every-ensure", fails: []providertest.Check{providertest.CheckEnsureIdempotent, providertest.CheckUpdateNodes}},
		{desc: "Delete of a missing load balancer fails", mode: "fails-deleting-missing", fails: []providertest.Check{providertest.CheckDeleteNeverCreated}},
		{desc: "errors lose their type", mode: "flattens-errors", fails: []providertest.Check{providertest.CheckInputError, providertest.CheckErrorsPassThrough}},
		{desc: "Ensure annotates the Service", mode: "modifies-service", fails: []providertest.Check{providertest.CheckArgumentsReadOnly}},
		{desc: "Ensure sorts the nodes in place", mode: "sorts-nodes-in-place", fails: []providertest.Check{providertest.CheckArgumentsReadOnly}},
		{desc: "Delete leaves the load balancer", mode: "leaks-on-delete", fails: []providertest.Check{providertest.CheckDeleteLeavesNothing}},
		{desc: "Update fails", mode: "fails-update", fails: []providertest.Check{providertest.CheckUpdateNodes}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenProviderChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tc.mode)
			out, err := cmd.CombinedOutput()
			if len(tc.fails) == 0 {
				if err != nil {
					t.Fatalf("the suite failed the unbroken provider (%v):\n%s", err, out)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a provider whose %s (err %v):\n%s", tc.desc, err, out)
			}
			for _, check := range tc.fails {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenProviderChild/"+string(check)+" ") {
					t.Errorf("check %s did not fail for a provider whose %s:\n%s", check, tc.desc, out)
				}
			}
		})
	}
}

// TestBrokenProviderChild is the child process of
// TestSuiteFailsBrokenProviders; run directly it checks nothing.
func TestBrokenProviderChild(t *testing.T) {
	mode := os.Getenv(brokenEnv)
	if mode == "" {
		t.Log("runs only as the child of TestSuiteFailsBrokenProviders")
		return
	}
	cloud := func(p *memory.Provider) *providertest.Cloud {
		return &providertest.Cloud{
			LB:    &broken{Provider: p, mode: mode},
			Nodes: providertest.DefaultNodes(),
			Inventory: func(*testing.T) map[string]string {
				inv := map[string]string{}
				for _, lb := range p.LoadBalancers() {
					inv[lb.Name] = fmt.Sprintf("%s %v %s", lb.Service.ResourceVersion, lb.Nodes, lb.Address)
				}
				return inv
			},
			Writes: func(*testing.T) []string { return p.Writes() },
		}
	}
	providertest.Run(t, providertest.Harness{
		New: func(*testing.T) *providertest.Cloud { return cloud(memory.New()) },
		Triggers: []providertest.Trigger{{
			Desc: "injected RetryAfter", Want: providertest.WantRetry,
			New: func(*testing.T) *providertest.Cloud {
				p := memory.New()
				p.RetryAfter(memory.OpEnsure, time.Minute, 0)
				return cloud(p)
			},
		}},
	})
}

// broken is the in-memory provider with one defect, named by mode.
type broken struct {
	*memory.Provider
	mode    string
	ensures int
}

func (b *broken) EnsureLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	switch b.mode {
	case "writes-on-every-ensure":
		b.ensures++
		svc = svc.DeepCopy()
		svc.ResourceVersion = strconv.Itoa(b.ensures)
	case "modifies-service":
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations["touched"] = "yes"
	case "sorts-nodes-in-place":
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	}
	st, err := b.Provider.EnsureLoadBalancer(ctx, cluster, svc, nodes)
	if err != nil && b.mode == "flattens-errors" {
		return nil, errors.New(err.Error())
	}
	return st, err
}

func (b *broken) UpdateLoadBalancer(ctx context.Context, cluster string, svc *v1.Service, nodes []*v1.Node) error {
	if b.mode == "fails-update" {
		return errors.New("broken: update fails")
	}
	return b.Provider.UpdateLoadBalancer(ctx, cluster, svc, nodes)
}

func (b *broken) EnsureLoadBalancerDeleted(ctx context.Context, cluster string, svc *v1.Service) error {
	switch b.mode {
	case "leaks-on-delete":
		return nil
	case "fails-deleting-missing":
		if _, exists, _ := b.GetLoadBalancer(ctx, cluster, svc); !exists {
			return errors.New("broken: no such load balancer")
		}
	}
	return b.Provider.EnsureLoadBalancerDeleted(ctx, cluster, svc)
}
