package controller

import (
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restart pacing. A controller that starts (a restart, a rolling update, a
// leader hand-over) knows nothing of what the last run did, and would call
// the provider for every Service at once. The ready condition the last run
// wrote says which Services it left ensured, and for which version of them
// (the fingerprint in its message): those are re-checked at
// RestartResyncQPS, after the new and changed ones.

// ensuredMessage is the message of the Ensured condition for fp.
func ensuredMessage(fp uint64) string {
	return fmt.Sprintf("The load balancer matches the Service (fingerprint %016x)", fp)
}

// leftEnsured reports whether the last run's condition says svc, as it is
// now, has an up-to-date load balancer: ours, True at this generation, with
// this fingerprint, and an address.
func (c *Controller) leftEnsured(svc *v1.Service) bool {
	if !c.markedOurs(svc) || len(svc.Status.LoadBalancer.Ingress) == 0 {
		return false
	}
	cond := meta.FindStatusCondition(svc.Status.Conditions, ConditionLoadBalancerReady)
	return cond != nil && cond.Status == metav1.ConditionTrue && cond.Reason == ReasonEnsured &&
		cond.ObservedGeneration == svc.Generation && cond.Message == ensuredMessage(serviceFingerprint(svc))
}

// restartPacer holds the keys of Services left ensured, seen before the
// caches synced, until Run releases them.
type restartPacer struct {
	mu       sync.Mutex
	released bool
	keys     []string
}

// hold keeps key for later and reports true, or reports false once the
// pacer was released (the Service is then queued as usual).
func (p *restartPacer) hold(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return false
	}
	p.keys = append(p.keys, key)
	return true
}

// release returns the held keys with their delays, qps apart, and lets
// later events through.
func (p *restartPacer) release(qps float64) (keys []string, delays []time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.released = true
	keys, p.keys = p.keys, nil
	delays = make([]time.Duration, len(keys))
	for i := range keys {
		if qps > 0 {
			delays[i] = time.Duration(float64(i) / qps * float64(time.Second))
		}
	}
	return keys, delays
}

// releasePaced queues the held Services, spread out.
func (c *Controller) releasePaced() {
	keys, delays := c.pacer.release(c.cfg.RestartResyncQPS)
	for i, key := range keys {
		if delays[i] == 0 {
			c.queue.Add(key)
		} else {
			c.queue.AddAfter(key, delays[i])
		}
	}
}
