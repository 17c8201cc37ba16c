package layer2

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

const (
	protoARP = "arp"
	protoNDP = "ndp"
)

// readErrorBackoff slows down a read loop whose socket keeps failing (for
// example while its interface is being removed).
const readErrorBackoff = 100 * time.Millisecond

// responder answers for a set of addresses on one interface with one
// protocol. The protocol-specific parts (the read loop, the frames) live in
// arp.go and ndp.go.
type responder struct {
	log      logr.Logger
	link     Link
	proto    string
	metrics  *metrics
	schedule []time.Duration

	// sendGratuitous announces ip unsolicited.
	sendGratuitous func(ip netip.Addr) error
	// joined and left are called when ip is added or removed (NDP joins
	// the solicited-node multicast group); nil when not needed.
	joined, left func(ip netip.Addr) error
	closeConn    func() error

	mu      sync.RWMutex
	ips     map[netip.Addr][]*time.Timer // pending gratuitous frames
	closing atomic.Bool
	done    chan struct{}
}

func newResponder(log logr.Logger, link Link, proto string, m *metrics, schedule []time.Duration) *responder {
	return &responder{
		log:      log.WithValues("interface", link.Name, "protocol", proto),
		link:     link,
		proto:    proto,
		metrics:  m,
		schedule: schedule,
		ips:      map[netip.Addr][]*time.Timer{},
		done:     make(chan struct{}),
	}
}

// owns reports whether the responder answers for ip.
func (r *responder) owns(ip netip.Addr) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.ips[ip]
	return ok
}

func (r *responder) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ips)
}

func (r *responder) add(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ips[ip]; ok {
		return nil
	}
	if r.joined != nil {
		if err := r.joined(ip); err != nil {
			return err
		}
	}
	r.ips[ip] = nil
	r.metrics.announced.WithLabelValues(r.link.Name, r.proto).Set(float64(len(r.ips)))
	return nil
}

func (r *responder) remove(ip netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	timers, ok := r.ips[ip]
	if !ok {
		return
	}
	for _, t := range timers {
		t.Stop()
	}
	delete(r.ips, ip)
	r.metrics.announced.WithLabelValues(r.link.Name, r.proto).Set(float64(len(r.ips)))
	if r.left != nil {
		if err := r.left(ip); err != nil {
			r.log.Error(err, "Leaving multicast group", "address", ip)
		}
	}
}

// announce sends the gratuitous frames for ip on the schedule: the first
// (delay 0) before returning, the others from timers that stop when ip is
// removed.
func (r *responder) announce(ip netip.Addr) {
	var timers []*time.Timer
	for _, d := range r.schedule {
		if d <= 0 {
			r.gratuitous(ip)
			continue
		}
		timers = append(timers, time.AfterFunc(d, func() {
			if r.owns(ip) && !r.closing.Load() {
				r.gratuitous(ip)
			}
		}))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ips[ip]; !ok {
		for _, t := range timers {
			t.Stop()
		}
		return
	}
	r.ips[ip] = append(r.ips[ip], timers...)
}

func (r *responder) gratuitous(ip netip.Addr) {
	if err := r.sendGratuitous(ip); err != nil {
		r.log.Error(err, "Sending gratuitous announcement", "address", ip)
		return
	}
	r.metrics.gratuitous.WithLabelValues(r.link.Name, r.proto).Inc()
}

// readFailed handles an error from the read loop; it returns true when the
// loop should end because the responder is closing.
func (r *responder) readFailed(err error) bool {
	if r.closing.Load() {
		return true
	}
	r.log.Error(err, "Reading from raw socket")
	time.Sleep(readErrorBackoff)
	return r.closing.Load()
}

// close stops the pending frames, closes the socket and waits for the read
// loop to end.
func (r *responder) close() error {
	r.closing.Store(true)
	r.mu.Lock()
	for ip, timers := range r.ips {
		for _, t := range timers {
			t.Stop()
		}
		r.ips[ip] = nil
	}
	n := len(r.ips)
	r.mu.Unlock()
	err := r.closeConn()
	<-r.done
	if n > 0 {
		r.metrics.announced.WithLabelValues(r.link.Name, r.proto).Set(0)
	}
	return err
}
