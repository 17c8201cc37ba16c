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
		labels  bool
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
		{desc: "label changed, provider selects by label", labels: true, nodes: []*v1.Node{newNode("a"), newNode("b", fixtures.WithNodeLabel("pool", "x"))}, changed: true},
		{desc: "label changed, provider ignores labels", nodes: []*v1.Node{newNode("a"), newNode("b", fixtures.WithNodeLabel("pool", "x"))}, changed: false},
		{desc: "node removed", nodes: []*v1.Node{newNode("a")}, changed: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := fingerprintOf(tc.nodes, tc.labels) != fingerprintOf(base, tc.labels); got != tc.changed {
				t.Errorf("fingerprint changed = %v, want %v", got, tc.changed)
			}
		})
	}
}

// fingerprintOf is the fingerprint of a tracker fed nodes one by one.
func fingerprintOf(nodes []*v1.Node, labels bool) uint64 {
	tr := newNodeTracker(labels)
	for _, n := range nodes {
		tr.upsert(n)
	}
	return tr.current().fingerprint
}

// TestNodeTrackerFollowsEvents: the incremental set equals one built from
// scratch after any sequence of adds, updates and deletes, and it tells a
// change from a heartbeat.
func TestNodeTrackerFollowsEvents(t *testing.T) {
	tr := newNodeTracker(false)
	steps := []struct {
		desc    string
		apply   func() bool
		changed bool
		want    []string
	}{
		{desc: "add a", apply: func() bool { return tr.upsert(newNode("a")) }, changed: true, want: []string{"a"}},
		{desc: "add b", apply: func() bool { return tr.upsert(newNode("b")) }, changed: true, want: []string{"a", "b"}},
		{desc: "heartbeat of a", apply: func() bool {
			n := newNode("a")
			n.ResourceVersion = "7"
			return tr.upsert(n)
		}, want: []string{"a", "b"}},
		{desc: "exclude b", apply: func() bool {
			return tr.upsert(newNode("b", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "true")))
		}, changed: true, want: []string{"a"}},
		{desc: "excluded b updated again", apply: func() bool {
			return tr.upsert(newNode("b", fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "true")))
		}, want: []string{"a"}},
		{desc: "delete of an unknown node", apply: func() bool { return tr.remove("zz") }, want: []string{"a"}},
		{desc: "b back", apply: func() bool { return tr.upsert(newNode("b")) }, changed: true, want: []string{"a", "b"}},
		{desc: "delete a", apply: func() bool { return tr.remove("a") }, changed: true, want: []string{"b"}},
	}
	for _, s := range steps {
		if got := s.apply(); got != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.desc, got, s.changed)
		}
		cur := tr.current()
		if !slices.Equal(cur.Names(), s.want) {
			t.Errorf("%s: nodes %v, want %v", s.desc, cur.Names(), s.want)
		}
		var fresh []*v1.Node
		for _, n := range s.want {
			fresh = append(fresh, newNode(n))
		}
		if fp := fingerprintOf(fresh, false); cur.fingerprint != fp {
			t.Errorf("%s: incremental fingerprint %x, from scratch %x", s.desc, cur.fingerprint, fp)
		}
	}
}

func TestNodeSetChangeUpdatesLoadBalancers(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		change    func(f *fixture)
		wantNodes []string
	}{
		{desc: "node added", change: func(f *fixture) { f.addToCache(newNode("n3")) }, wantNodes: []string{"n1", "n2", "n3"}},
		{desc: "node removed", change: func(f *fixture) { f.removeNode("n2") }, wantNodes: []string{"n1"}},
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
			drainQueue(f)
			tc.change(f)
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
	drainQueue(f)
	n := newNode("n1")
	n.ResourceVersion = "2"
	n.Status.Conditions[0].Message = "kubelet is posting ready status"
	f.addToCache(n)
	if got := f.ctrl.queue.Len(); got != 0 {
		t.Errorf("queued services after a status-only node update = %d, want 0", got)
	}
}

func TestLabelChangeNoProviderSelectsOnQueuesNothing(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	drainQueue(f)
	f.addToCache(newNode("n1", fixtures.WithNodeLabel("team", "blue")))
	if got := f.ctrl.queue.Len(); got != 0 {
		t.Errorf("queued services after a label change no provider selects on = %d, want 0", got)
	}
}
