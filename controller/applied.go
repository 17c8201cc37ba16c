package controller

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// applied is what the controller last made true for one Service: the
// provider has a load balancer for a Service with this fingerprint, backed by
// the node set with this fingerprint, and the Service's status says so.
type applied struct {
	service         *v1.Service // the Service as last ensured (for deletes)
	fingerprint     uint64
	nodeFingerprint uint64
	// status is what the API server stored; sent is what we wrote to get
	// it (they differ when the server normalises, say drops ipMode).
	status v1.LoadBalancerStatus
	sent   v1.LoadBalancerStatus
	// condition is the ready condition written with it.
	condition metav1.Condition
	// elsewhere: the provider said another component implements this
	// Service's load balancer; fingerprint is the Service it said so for.
	elsewhere bool
	// ownWrites are the resourceVersions the Service had before each of our
	// own writes in that sync. An informer that still shows one of them
	// has not yet delivered our write: nothing to do until it does.
	ownWrites []string
}

// appliedStore remembers applied state per Service key, so that a sync that
// finds nothing changed calls nothing on the provider.
type appliedStore struct {
	mu sync.Mutex
	m  map[string]*applied
}

func (s *appliedStore) get(key string) *applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

func (s *appliedStore) has(key string) bool { return s.get(key) != nil }

func (s *appliedStore) set(key string, a *applied) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*applied{}
	}
	s.m[key] = a
}

func (s *appliedStore) delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

func (s *appliedStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys
}

func (s *appliedStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
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
	if len(a) == 0 {
		return nil // empty and absent annotations are the same Service
	}
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
