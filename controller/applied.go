package controller

import (
	"sync"

	v1 "k8s.io/api/core/v1"
)

// applied is what the controller last made true for one Service: the
// provider has a load balancer for a Service with this fingerprint, backed by
// the node set with this fingerprint, and the Service's status says so.
type applied struct {
	service         *v1.Service // the Service as last ensured (for deletes)
	fingerprint     uint64
	nodeFingerprint uint64
	status          v1.LoadBalancerStatus
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
