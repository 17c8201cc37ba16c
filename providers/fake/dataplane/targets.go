package dataplane

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// target is one backend of a balancer with its current health.
type target struct {
	name    string
	addr    netip.Addr
	healthy atomic.Bool
	// removed is set when the target leaves the balancer, so flows and
	// affinity entries pinned to it move elsewhere.
	removed atomic.Bool
	// stopCheck ends its health checker; nil when there is none.
	stopCheck func()
}

func (t *target) usable() bool { return t.healthy.Load() && !t.removed.Load() }

// policy is the per-balancer traffic policy, replaced as a whole on update.
type policy struct {
	sourceRanges []netip.Prefix
	// affinity is zero when session affinity is off.
	affinity time.Duration
}

// allows reports whether a client address may use the balancer.
func (p *policy) allows(client netip.Addr) bool {
	if len(p.sourceRanges) == 0 {
		return true
	}
	client = client.Unmap()
	for _, r := range p.sourceRanges {
		if r.Contains(client) {
			return true
		}
	}
	return false
}

// picker chooses a healthy target for each new connection or flow: round
// robin, or the client's pinned target under ClientIP affinity.
type picker struct {
	targets atomic.Pointer[[]*target]
	next    atomic.Uint64

	mu       sync.Mutex
	pinned   map[netip.Addr]pin
	picks    int
	nowFunc  func() time.Time
	sweepGap int
}

type pin struct {
	target  *target
	expires time.Time
}

func newPicker() *picker {
	p := &picker{pinned: map[netip.Addr]pin{}, nowFunc: time.Now, sweepGap: 1024}
	p.targets.Store(&[]*target{})
	return p
}

func (p *picker) set(ts []*target) { p.targets.Store(&ts) }

func (p *picker) list() []*target { return *p.targets.Load() }

// roundRobin returns the next of the usable targets (exclude left out) in
// turn, or nil when none is usable. Turns are taken over the usable targets
// only, so an unhealthy target's share spreads evenly over the others.
func (p *picker) roundRobin(exclude *target) *target {
	ts := p.list()
	usable := 0
	for _, t := range ts {
		if t.usable() && t != exclude {
			usable++
		}
	}
	if usable == 0 {
		return nil
	}
	k := (p.next.Add(1) - 1) % uint64(usable)
	var first *target
	for _, t := range ts {
		if t.usable() && t != exclude {
			if k == 0 {
				return t
			}
			if first == nil {
				first = t
			}
			k--
		}
	}
	// Health changed between the two passes: any usable target will do.
	return first
}

// pick returns the target for a client, honouring affinity (zero: none).
// exclude is a target that just failed and should not be chosen again.
func (p *picker) pick(client netip.Addr, affinity time.Duration, exclude *target) *target {
	if affinity <= 0 {
		return p.roundRobin(exclude)
	}
	now := p.nowFunc()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.picks++
	if p.picks%p.sweepGap == 0 {
		for c, pn := range p.pinned {
			if now.After(pn.expires) {
				delete(p.pinned, c)
			}
		}
	}
	if pn, ok := p.pinned[client]; ok && now.Before(pn.expires) && pn.target.usable() && pn.target != exclude {
		p.pinned[client] = pin{target: pn.target, expires: now.Add(affinity)}
		return pn.target
	}
	t := p.roundRobin(exclude)
	if t == nil {
		delete(p.pinned, client)
		return nil
	}
	p.pinned[client] = pin{target: t, expires: now.Add(affinity)}
	return t
}

// touch extends a client's pin after traffic on an existing flow.
func (p *picker) touch(client netip.Addr, affinity time.Duration) {
	if affinity <= 0 {
		return
	}
	now := p.nowFunc()
	p.mu.Lock()
	if pn, ok := p.pinned[client]; ok {
		pn.expires = now.Add(affinity)
		p.pinned[client] = pn
	}
	p.mu.Unlock()
}
