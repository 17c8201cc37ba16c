package controller

import (
	"hash/fnv"
	"sort"
	"sync"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
)

// nodeSet is an immutable snapshot of the nodes that back load balancers.
// Its fingerprint changes exactly when something a provider uses changes:
// membership, provider ID, addresses and, for a provider that selects
// nodes by label, labels.
type nodeSet struct {
	nodes       []*v1.Node // sorted by name; never modified
	fingerprint uint64
}

// Names returns the names of the nodes in the set.
func (s *nodeSet) Names() []string {
	names := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		names[i] = n.Name
	}
	return names
}

// nodeTracker keeps the set of eligible nodes up to date one Node event at
// a time: an event costs the hash of that one node, not a list of all of
// them, and the sorted snapshot the workers read is built at most once per
// change of the set. Heartbeats (status-only updates) change nothing.
type nodeTracker struct {
	// labels makes labels part of a node's identity (the provider selects
	// nodes by label).
	labels bool

	mu    sync.Mutex
	nodes map[string]trackedNode // eligible nodes by name
	// fingerprint is the sum of the eligible nodes' identities: order
	// independent, and updated in O(1) when one node changes.
	fingerprint uint64
	snapshot    *nodeSet // nil when the set changed since it was built
}

type trackedNode struct {
	node     *v1.Node
	identity uint64
}

func newNodeTracker(labels bool) *nodeTracker {
	return &nodeTracker{labels: labels, nodes: map[string]trackedNode{}}
}

// upsert records a Node's add or update and reports whether the set of
// eligible nodes, as a provider sees it, changed.
func (t *nodeTracker) upsert(n *v1.Node) bool {
	if providers.NodeExclusion(n) != "" {
		return t.remove(n.Name)
	}
	id := nodeIdentity(n, t.labels)
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.nodes[n.Name]
	t.nodes[n.Name] = trackedNode{node: n, identity: id}
	if had && old.identity == id {
		return false // a heartbeat, or a change no provider looks at
	}
	if had {
		t.fingerprint -= old.identity
	}
	t.fingerprint += id
	t.snapshot = nil
	return true
}

// remove records a Node's deletion (or exclusion) and reports whether it
// was in the set.
func (t *nodeTracker) remove(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.nodes[name]
	if !had {
		return false
	}
	delete(t.nodes, name)
	t.fingerprint -= old.identity
	t.snapshot = nil
	return true
}

// size is the number of eligible nodes, without building a snapshot.
func (t *nodeTracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

// current returns the snapshot of the eligible nodes.
func (t *nodeTracker) current() *nodeSet {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.snapshot == nil {
		nodes := make([]*v1.Node, 0, len(t.nodes))
		for _, tn := range t.nodes {
			nodes = append(nodes, tn.node)
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
		t.snapshot = &nodeSet{nodes: nodes, fingerprint: t.fingerprint}
	}
	return t.snapshot
}

// nodeIdentity hashes what a provider uses of a node: name, provider ID,
// addresses and, when labels is set, labels.
func nodeIdentity(n *v1.Node, labels bool) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(n.Name + "\x00" + n.Spec.ProviderID + "\x00"))
	for _, a := range n.Status.Addresses {
		_, _ = h.Write([]byte(string(a.Type) + "=" + a.Address + "\x00"))
	}
	if labels {
		keys := make([]string, 0, len(n.Labels))
		for k := range n.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_, _ = h.Write([]byte(k + "=" + n.Labels[k] + "\x00"))
		}
	}
	// Mix the result so that sums of identities do not cancel out for
	// similar nodes.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}
