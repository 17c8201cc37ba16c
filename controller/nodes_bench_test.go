package controller

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/test/fixtures"
)

// BenchmarkNodeEvent measures one Node event at 5000 nodes: a heartbeat
// (status-only update) and a node added, against the reference of
// rebuilding the whole set from a list, which is what every event cost
// before the tracker. It prints the ratios.
func BenchmarkNodeEvent(b *testing.B) {
	const n = 5000
	nodes := make([]*v1.Node, n)
	for i := range nodes {
		nodes[i] = fixtures.Node(fmt.Sprintf("node-%05d", i), fixtures.WithInternalIP(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)),
			fixtures.WithProviderID(fmt.Sprintf("aws:///us-east-1a/i-%017x", i)), fixtures.WithNodeLabel("kubernetes.io/hostname", fmt.Sprint(i)), fixtures.WithReady())
	}
	tr := newNodeTracker(false)
	for _, node := range nodes {
		tr.upsert(node)
	}
	tr.current()
	heartbeat := nodes[n/2].DeepCopy()
	heartbeat.ResourceVersion = "2"

	var perHeartbeat, perAdd, perRebuild float64
	b.Run("heartbeat", func(b *testing.B) {
		for b.Loop() {
			if tr.upsert(heartbeat) {
				b.Fatal("a heartbeat changed the set")
			}
		}
		perHeartbeat = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("add-and-snapshot", func(b *testing.B) {
		extra := fixtures.Node("node-extra", fixtures.WithInternalIP("10.99.0.1"))
		for b.Loop() {
			tr.upsert(extra)
			tr.current()
			tr.remove(extra.Name)
		}
		perAdd = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("reference-rebuild-from-list", func(b *testing.B) {
		for b.Loop() {
			ref := newNodeTracker(false)
			for _, node := range nodes {
				ref.upsert(node)
			}
			ref.current()
		}
		perRebuild = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if perRebuild > 0 {
		fmt.Printf("BenchmarkNodeEvent at %d nodes: heartbeat %.0f ns (%.5f× a rebuild), add+snapshot %.0f ns (%.3f× a rebuild), rebuild %.0f ns",
			n, perHeartbeat, perHeartbeat/perRebuild, perAdd, perAdd/perRebuild, perRebuild)
		fmt.Println()
	}
}
