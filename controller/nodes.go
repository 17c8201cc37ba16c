package controller

import (
	"encoding/json"
	"hash/fnv"
	"sort"
	"strconv"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
)

// nodeSet is an immutable snapshot of the nodes that back load balancers.
// Its fingerprint changes exactly when something a provider uses changes:
// membership, provider ID, addresses or labels.
type nodeSet struct {
	nodes       []*v1.Node // sorted by name; never modified
	fingerprint uint64
}

// newNodeSet filters all by providers.NodeExclusion and fingerprints the result.
func newNodeSet(all []*v1.Node) *nodeSet {
	nodes := make([]*v1.Node, 0, len(all))
	for _, n := range all {
		if providers.NodeExclusion(n) == "" {
			nodes = append(nodes, n)
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	h := fnv.New64a()
	for _, n := range nodes {
		writeNodeIdentity(h, n)
	}
	return &nodeSet{nodes: nodes, fingerprint: h.Sum64()}
}

type hashWriter interface{ Write([]byte) (int, error) }

func writeNodeIdentity(h hashWriter, n *v1.Node) {
	_, _ = h.Write([]byte(n.Name + "\x00" + n.Spec.ProviderID + "\x00"))
	for _, a := range n.Status.Addresses {
		_, _ = h.Write([]byte(string(a.Type) + "=" + a.Address + "\x00"))
	}
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, _ = h.Write([]byte(k + "=" + n.Labels[k] + "\x00"))
	}
	_, _ = h.Write([]byte("\x01"))
}

// Names returns the names of the nodes in the set.
func (s *nodeSet) Names() []string {
	names := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		names[i] = n.Name
	}
	return names
}

// serviceFingerprint hashes everything of a Service a provider may use to
// build its load balancer. Two Services with the same fingerprint need the
// same load balancer; status and metadata such as resourceVersion are left
// out so that a resync or a status write does not count as a change.
func serviceFingerprint(svc *v1.Service) uint64 {
	relevant := struct {
		UID         string
		Annotations map[string]string
		Spec        v1.ServiceSpec
	}{string(svc.UID), withoutOwnAnnotation(svc.Annotations), svc.Spec}
	// ClusterIPs are irrelevant to external load balancers and are
	// allocated by the API server; leave them out.
	relevant.Spec.ClusterIP, relevant.Spec.ClusterIPs = "", nil
	b, err := json.Marshal(relevant)
	if err != nil {
		// Cannot happen for API types; make every sync a change rather
		// than hide one.
		b = []byte(strconv.Quote(err.Error()) + svc.ResourceVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// withoutOwnAnnotation leaves out the annotation the controller writes
// itself, so that writing it does not count as a change of the Service.
func withoutOwnAnnotation(a map[string]string) map[string]string {
	if _, ok := a[AnnotationServedByClass]; !ok {
		return a
	}
	if len(a) == 1 {
		return nil // as for a Service without annotations
	}
	out := make(map[string]string, len(a)-1)
	for k, v := range a {
		if k != AnnotationServedByClass {
			out[k] = v
		}
	}
	return out
}
