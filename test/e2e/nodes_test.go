package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/fake/cluster/clustertest"
	memprovider "github.com/extlb/extlb/fake/memory"
)

// TestNodeChangesUpdateLoadBalancers adds, removes and excludes Nodes and
// checks that every load balancer follows with UpdateLoadBalancer. It has
// a control plane of its own: Nodes are cluster-wide.
func TestNodeChangesUpdateLoadBalancers(t *testing.T) {
	c := clustertest.Start(t)
	admin := c.AdminClient()
	ns := clustertest.NewNamespace(t, c)
	class := uniqueClass(t)
	for _, n := range []string{"n1", "n2"} {
		if _, err := admin.CoreV1().Nodes().Create(t.Context(), newNode(n, "192.0.2.1", nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mem := memprovider.New()
	startController(t, installController(t, c), mem, class)
	for _, name := range []string{"web", "api"} {
		createService(t, admin, newService(ns, name, class))
	}
	waitNodes := func(what string, want ...string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func(context.Context) (bool, string) {
			for _, name := range []string{"web", "api"} {
				lb, ok := lbFor(mem, ns, name)
				if !ok || !slices.Equal(lb.Nodes, want) {
					return false, fmt.Sprintf("%s backends %v, want %v", name, lb.Nodes, want)
				}
			}
			return true, ""
		})
	}
	waitNodes("initial node set", "n1", "n2")
	ensures := mem.CountCalls(memprovider.OpEnsure)

	if _, err := admin.CoreV1().Nodes().Create(t.Context(), newNode("n3", "192.0.2.3", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNodes("node added", "n1", "n2", "n3")
	if err := admin.CoreV1().Nodes().Delete(t.Context(), "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNodes("node removed", "n1", "n3")
	n1, err := admin.CoreV1().Nodes().Get(t.Context(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n1.Labels = map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
	if _, err := admin.CoreV1().Nodes().Update(t.Context(), n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNodes("node excluded by label", "n3")

	if got := mem.CountCalls(memprovider.OpEnsure); got != ensures {
		t.Errorf("EnsureLoadBalancer calls during node changes = %d, want 0 (UpdateLoadBalancer only)", got-ensures)
	}
	if got := mem.CountCalls(memprovider.OpUpdate); got < 6 {
		t.Errorf("UpdateLoadBalancer calls = %d, want at least 3 changes x 2 Services", got)
	}
	evs := events(t.Context(), admin, ns, "web")
	if !hasEvent(evs, "Normal UpdatedLoadBalancer") {
		t.Errorf("events = %v, want UpdatedLoadBalancer", evs)
	}
}
