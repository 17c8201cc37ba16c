package providertest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// session is one Cloud under test in one subtest. Every provider call goes
// through it, and each checks that the call left its arguments unchanged.
type session struct {
	t *testing.T
	h *Harness
	c *Cloud
}

// newSession builds a Cloud with build (Harness.New when nil).
func newSession(t *testing.T, h *Harness, build func(*testing.T) *Cloud) *session {
	t.Helper()
	if build == nil {
		build = h.New
	}
	c := build(t)
	switch {
	case c == nil || c.LB == nil:
		t.Fatal("providertest: New returned no provider")
	case len(c.Nodes) < 2:
		t.Fatalf("providertest: New returned %d nodes, the suite needs at least 2", len(c.Nodes))
	case c.Inventory == nil || c.Writes == nil:
		t.Fatal("providertest: Cloud.Inventory and Cloud.Writes are required")
	}
	return &session{t: t, h: h, c: c}
}

// firstNodes are the nodes the suite ensures with: all but the last.
func (s *session) firstNodes() []*v1.Node { return s.c.Nodes[:len(s.c.Nodes)-1] }

// otherNodes are the nodes the suite updates to: all but the first.
func (s *session) otherNodes() []*v1.Node { return s.c.Nodes[1:] }

func (s *session) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.t.Context(), s.h.Timeout)
}

func (s *session) get(svc *v1.Service) (st *v1.LoadBalancerStatus, exists bool, err error) {
	s.readOnly(OpGet, svc, nil, func(ctx context.Context) {
		st, exists, err = s.c.LB.GetLoadBalancer(ctx, s.h.ClusterName, svc)
	})
	return st, exists, err
}

func (s *session) ensure(svc *v1.Service, nodes []*v1.Node) (st *v1.LoadBalancerStatus, err error) {
	s.readOnly(OpEnsure, svc, nodes, func(ctx context.Context) {
		st, err = s.c.LB.EnsureLoadBalancer(ctx, s.h.ClusterName, svc, nodes)
	})
	return st, err
}

func (s *session) update(svc *v1.Service, nodes []*v1.Node) (err error) {
	s.readOnly(OpUpdate, svc, nodes, func(ctx context.Context) {
		err = s.c.LB.UpdateLoadBalancer(ctx, s.h.ClusterName, svc, nodes)
	})
	return err
}

func (s *session) delete(svc *v1.Service) (err error) {
	s.readOnly(OpDelete, svc, nil, func(ctx context.Context) {
		err = s.c.LB.EnsureLoadBalancerDeleted(ctx, s.h.ClusterName, svc)
	})
	return err
}

// call runs op with svc and nodes (nodes are ignored by Get and Delete)
// and returns its error.
func (s *session) call(op Op, svc *v1.Service, nodes []*v1.Node) error {
	switch op {
	case OpGet:
		_, _, err := s.get(svc)
		return err
	case OpEnsure:
		_, err := s.ensure(svc, nodes)
		return err
	case OpUpdate:
		return s.update(svc, nodes)
	case OpDelete:
		return s.delete(svc)
	}
	s.t.Fatalf("providertest: unknown op %q", op)
	return nil
}

func (s *session) mustEnsure(svc *v1.Service, nodes []*v1.Node) *v1.LoadBalancerStatus {
	s.t.Helper()
	st, err := s.ensure(svc, nodes)
	if err != nil {
		s.t.Fatalf("EnsureLoadBalancer(%s) with nodes %v: %v", key(svc), names(nodes), err)
	}
	if st == nil {
		s.t.Fatalf("EnsureLoadBalancer(%s) returned a nil status and no error", key(svc))
	}
	return st
}

func (s *session) mustDelete(svc *v1.Service) {
	s.t.Helper()
	if err := s.delete(svc); err != nil {
		s.t.Fatalf("EnsureLoadBalancerDeleted(%s): %v", key(svc), err)
	}
}

// readOnly runs call and reports any change it made to svc or nodes
// (including the order of the node slice).
func (s *session) readOnly(op Op, svc *v1.Service, nodes []*v1.Node, call func(context.Context)) {
	s.t.Helper()
	svcBefore := svc.DeepCopy()
	nodesBefore := make([]*v1.Node, len(nodes))
	for i, n := range nodes {
		nodesBefore[i] = n.DeepCopy()
	}
	ctx, cancel := s.context()
	defer cancel()
	call(ctx)
	if !equality.Semantic.DeepEqual(svcBefore, svc) {
		s.t.Errorf("%s modified its Service argument %s:\nbefore: %s\nafter:  %s", op, key(svcBefore), toJSON(svcBefore), toJSON(svc))
	}
	if was, now := names(nodesBefore), names(nodes); !slices.Equal(was, now) {
		s.t.Errorf("%s reordered its nodes argument from %v to %v", op, was, now)
		return
	}
	for i := range nodes {
		if !equality.Semantic.DeepEqual(nodesBefore[i], nodes[i]) {
			s.t.Errorf("%s modified its nodes argument at [%d]:\nbefore: %s\nafter:  %s", op, i, toJSON(nodesBefore[i]), toJSON(nodes[i]))
		}
	}
}

// inventory returns the fake's inventory.
func (s *session) inventory() map[string]string {
	s.t.Helper()
	inv := s.c.Inventory(s.t)
	if inv == nil {
		inv = map[string]string{}
	}
	return inv
}

// writeCount returns how many writes the fake has received so far.
func (s *session) writeCount() int {
	s.t.Helper()
	return len(s.c.Writes(s.t))
}

// noWritesSince reports the writes after the first n, saying what made
// them.
func (s *session) noWritesSince(n int, what string) {
	s.t.Helper()
	if all := s.c.Writes(s.t); len(all) > n {
		s.t.Errorf("%s wrote to the cloud %d times: %s", what, len(all)-n, strings.Join(all[n:], ", "))
	}
}

// sameInventory reports a difference between two inventories.
func (s *session) sameInventory(want, got map[string]string, what string) {
	s.t.Helper()
	if d := diffInventory(want, got); d != "" {
		s.t.Errorf("%s changed the fake's inventory (- before, + after):\n%s", what, d)
	}
}

// sameStatus reports a difference between two load-balancer statuses.
func (s *session) sameStatus(want, got *v1.LoadBalancerStatus, what string) {
	s.t.Helper()
	if !equality.Semantic.DeepEqual(want, got) {
		s.t.Errorf("%s returned status %s, want %s", what, toJSON(got), toJSON(want))
	}
}

// diffInventory lists what differs between two inventories, one resource a
// line, or returns "".
func diffInventory(before, after map[string]string) string {
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		was, inBefore := before[k]
		now, inAfter := after[k]
		switch {
		case !inAfter:
			fmt.Fprintf(&b, "- %s: %s\n", k, was)
		case !inBefore:
			fmt.Fprintf(&b, "+ %s: %s\n", k, now)
		case was != now:
			fmt.Fprintf(&b, "- %s: %s\n+ %s: %s\n", k, was, k, now)
		}
	}
	return b.String()
}

// reversed returns the nodes in the opposite order, in a new slice.
func reversed(nodes []*v1.Node) []*v1.Node {
	out := slices.Clone(nodes)
	slices.Reverse(out)
	return out
}

func names(nodes []*v1.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func key(svc *v1.Service) string { return svc.Namespace + "/" + svc.Name }

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
