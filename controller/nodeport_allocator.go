package controller

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// takenTTL is how long a port the API server reported as allocated, with
// no Service in the informer holding it, is kept from being picked. Its
// owner normally shows up in the informer within that time and claims it;
// when none does (the Service that held it is gone), the port becomes free
// again instead of leaking from the range.
const takenTTL = time.Minute

// NodePortAllocator hands out node ports with the API server's semantics:
// one owner per port, explicitly requested ports honoured when free, and
// dynamic allocation from the upper band of the range first, leaving the
// lower band for explicit requests (KEP-3668). Its state is rebuilt from the
// Services in the informer: SetOwner is called for every Service seen.
type NodePortAllocator struct {
	r      PortRange
	offset int

	mu      sync.Mutex
	owner   map[int]string // port -> owner ("namespace/name")
	byOwner map[string][]int
	// taken are ports the API server reported allocated by someone the
	// informer has not shown yet, with when it said so (see takenTTL).
	taken map[int]time.Time
	rand  *rand.Rand
	now   func() time.Time
}

// ErrNoFreeNodePort is returned when every port of the range is taken.
var ErrNoFreeNodePort = fmt.Errorf("no free node port")

// NewNodePortAllocator returns an empty allocator for r. seed makes the
// choice of dynamic ports reproducible in tests.
func NewNodePortAllocator(r PortRange, seed uint64) *NodePortAllocator {
	return &NodePortAllocator{
		r:       r,
		offset:  bandOffset(r.Size),
		owner:   map[int]string{},
		byOwner: map[string][]int{},
		taken:   map[int]time.Time{},
		rand:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     time.Now,
	}
}

// bandOffset is the size of the lower band as the API server computes it:
// size/32, at least 16 and at most 128; none for ranges under 16.
func bandOffset(size int) int {
	const minOffset, maxOffset, step = 16, 128, 32
	if size < minOffset {
		return 0
	}
	return min(max(size/step, minOffset), maxOffset)
}

// SetOwner records that owner holds exactly ports (those outside the range
// are ignored), replacing what it held before. A port also claimed by
// another owner stays with the first: the API server never lets two Services
// hold one node port, so such a conflict is transient.
func (a *NodePortAllocator) SetOwner(owner string, ports []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked(owner)
	for _, p := range ports {
		a.claimLocked(owner, p)
	}
}

// Release frees every port owner holds.
func (a *NodePortAllocator) Release(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked(owner)
}

// Allocate gives port to owner, or explains why it cannot.
func (a *NodePortAllocator) Allocate(owner string, port int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.r.Contains(port) {
		return fmt.Errorf("port %d is outside the node port range %s", port, a.r)
	}
	if cur, owned := a.owner[port]; (owned && cur != owner) || (!owned && a.busyLocked(port)) {
		return fmt.Errorf("port %d is already allocated", port)
	}
	a.claimLocked(owner, port)
	return nil
}

// AllocateNext gives owner a free port: a random one from the upper band,
// or from the lower band when the upper one is full.
func (a *NodePortAllocator) AllocateNext(owner string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	upper := PortRange{Base: a.r.Base + a.offset, Size: a.r.Size - a.offset}
	lower := PortRange{Base: a.r.Base, Size: a.offset}
	for _, band := range []PortRange{upper, lower} {
		if p, ok := a.freeIn(band); ok {
			a.claimLocked(owner, p)
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w in range %s", ErrNoFreeNodePort, a.r)
}

// MarkTaken records port as held by someone unknown: the API server said it
// is allocated although no Service in the informer holds it yet. It is not
// picked for takenTTL, or until a Service claims it.
func (a *NodePortAllocator) MarkTaken(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, owned := a.owner[port]; !owned && a.r.Contains(port) {
		a.taken[port] = a.now()
	}
}

// busyLocked reports whether port is held, or recently reported taken.
func (a *NodePortAllocator) busyLocked(port int) bool {
	if _, owned := a.owner[port]; owned {
		return true
	}
	at, ok := a.taken[port]
	if !ok {
		return false
	}
	if a.now().Sub(at) < takenTTL {
		return true
	}
	delete(a.taken, port)
	return false
}

// freeIn picks a random free port in band: a random start, then a linear
// probe, so the cost stays bounded when the band is nearly full.
func (a *NodePortAllocator) freeIn(band PortRange) (int, bool) {
	if band.Size <= 0 {
		return 0, false
	}
	start := a.rand.IntN(band.Size)
	for i := 0; i < band.Size; i++ {
		p := band.Base + (start+i)%band.Size
		if !a.busyLocked(p) {
			return p, true
		}
	}
	return 0, false
}

func (a *NodePortAllocator) claimLocked(owner string, port int) {
	if !a.r.Contains(port) {
		return
	}
	if cur, owned := a.owner[port]; owned && cur != owner {
		return
	}
	delete(a.taken, port) // its owner showed up
	if a.owner[port] == owner {
		for _, p := range a.byOwner[owner] {
			if p == port {
				return
			}
		}
	}
	a.owner[port] = owner
	a.byOwner[owner] = append(a.byOwner[owner], port)
}

func (a *NodePortAllocator) releaseLocked(owner string) {
	for _, p := range a.byOwner[owner] {
		if a.owner[p] == owner {
			delete(a.owner, p)
		}
	}
	delete(a.byOwner, owner)
}
