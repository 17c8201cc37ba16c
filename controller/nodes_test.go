package controller

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestNodeSetFingerprint(t *testing.T) {
	base := []*v1.Node{newNode("a"), newNode("b")}
	for _, tc := range []struct {
		desc    string
		nodes   []*v1.Node
		changed bool
	}{
		{desc: "same nodes in another order", nodes: []*v1.Node{newNode("b"), newNode("a")}, changed: false},
		{desc: "heartbeat-only change", nodes: func() []*v1.Node {
			b := newNode("b")
			b.Status.Conditions[0].Reason = "KubeletReady"
			b.ResourceVersion = "99"
			return []*v1.Node{newNode("a"), b}
		}(), changed: false},
		{desc: "node added", nodes: []*v1.Node{newNode("a"), newNode("b"), newNode("c")}, changed: true},
		{desc: "node excluded", nodes: []*v1.Node{newNode("a"), newNode("b", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, ""))}, changed: true},
		{desc: "address changed", nodes: func() []*v1.Node {
			b := newNode("b")
			b.Status.Addresses[0].Address = "192.0.2.200"
			return []*v1.Node{newNode("a"), b}
		}(), changed: true},
		{desc: "label changed", nodes: []*v1.Node{newNode("a"), newNode("b", fixtures.WithNodeLabel("pool", "x"))}, changed: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := newNodeSet(tc.nodes).fingerprint != newNodeSet(base).fingerprint; got != tc.changed {
				t.Errorf("fingerprint changed = %v, want %v", got, tc.changed)
			}
		})
	}
}

func TestNodeSetChangeUpdatesLoadBalancers(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		change    func(f *fixture)
		wantNodes []string
	}{
		{desc: "node added", change: func(f *fixture) { f.addToCache(newNode("n3")) }, wantNodes: []string{"n1", "n2", "n3"}},
		{desc: "node removed", change: func(f *fixture) {
			_ = f.factory.Core().V1().Nodes().Informer().GetIndexer().Delete(newNode("n2"))
		}, wantNodes: []string{"n1"}},
		{desc: "node excluded by label", change: func(f *fixture) {
			f.addToCache(newNode("n2", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "true")))
		}, wantNodes: []string{"n1"}},
		{desc: "node tainted by the autoscaler", change: func(f *fixture) {
			f.addToCache(newNode("n1", withTaint(providers.TaintToBeDeletedByClusterAutoscaler)))
		}, wantNodes: []string{"n2"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web"), newService("api"), newNode("n1"), newNode("n2")})
			for _, name := range []string{"web", "api"} {
				if err := f.sync(name); err != nil {
					t.Fatalf("sync %s: %v", name, err)
				}
			}
			f.provider.ResetCalls()
			f.client.ClearActions()
			for f.ctrl.queue.Len() > 0 {
				k, _ := f.ctrl.queue.Get()
				f.ctrl.queue.Done(k)
			}
			tc.change(f)
			f.ctrl.recomputeNodeSet()
			if got := f.ctrl.queue.Len(); got != 2 {
				t.Errorf("queued services after the node change = %d, want 2", got)
			}
			for _, name := range []string{"web", "api"} {
				if err := f.sync(name); err != nil {
					t.Fatalf("sync %s: %v", name, err)
				}
				lb, _ := f.provider.LoadBalancerFor("default/" + name)
				if !slices.Equal(lb.Nodes, tc.wantNodes) {
					t.Errorf("%s backends = %v, want %v", name, lb.Nodes, tc.wantNodes)
				}
			}
			if n := f.provider.CountCalls(memory.OpUpdate); n != 2 {
				t.Errorf("UpdateLoadBalancer calls = %d, want 2", n)
			}
			if n := f.provider.CountCalls(memory.OpEnsure); n != 0 {
				t.Errorf("EnsureLoadBalancer calls = %d, want 0 for a node-only change", n)
			}
			if w := f.writes(); len(w) != 0 {
				t.Errorf("API writes for a node-only change = %v, want none", w)
			}
		})
	}
}

func TestHeartbeatDoesNotQueueServices(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	for f.ctrl.queue.Len() > 0 {
		k, _ := f.ctrl.queue.Get()
		f.ctrl.queue.Done(k)
	}
	n := newNode("n1")
	n.ResourceVersion = "2"
	n.Status.Conditions[0].Message = "kubelet is posting ready status"
	f.addToCache(n)
	f.ctrl.recomputeNodeSet()
	if got := f.ctrl.queue.Len(); got != 0 {
		t.Errorf("queued services after a status-only node update = %d, want 0", got)
	}
}
