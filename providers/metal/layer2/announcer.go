// Package layer2 announces load-balancer addresses on the local network: it
// answers ARP requests (IPv4) and neighbor solicitations (IPv6) for the
// addresses it is told to announce, with the MAC of the interface whose
// subnet holds the address, and sends gratuitous ARP / unsolicited neighbor
// advertisements when it takes an address over so that neighbors switch at
// once. Which node announces which address is decided elsewhere (package
// election); this package only speaks the protocols.
package layer2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// DefaultGratuitousSchedule is when, after taking an address over, the
// announcer sends gratuitous ARP (or unsolicited neighbor advertisements):
//
//   - at once: this is the failover itself; neighbors that cache the old
//     node's MAC switch on receipt.
//   - after 200 ms: covers a lost first frame and a neighbor that was in the
//     middle of its own probe when the first one arrived.
//   - after 1 s: outlasts the Linux ARP "locktime" (1 s by default), during
//     which a kernel that does not recognise the frame as gratuitous ignores
//     a second, different answer for the same address.
//
// Three frames per address per take-over keep a mass failover of hundreds of
// addresses within a few hundred frames per second.
var DefaultGratuitousSchedule = []time.Duration{0, 200 * time.Millisecond, time.Second}

// Config configures an Announcer.
type Config struct {
	// Interfaces, when not empty, restricts announcing to these interface
	// names. An address is announced on those of them whose subnet holds it,
	// or on all of them when none does. When empty, an address is announced
	// on every interface whose subnet holds it, and on no other.
	Interfaces []string
	// Network opens the sockets; nil means SystemNetwork.
	Network Network
	// Registerer receives the announcer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// GratuitousSchedule overrides DefaultGratuitousSchedule when not nil.
	GratuitousSchedule []time.Duration
}

// Announcer answers for the addresses of the balancers it was given. It is
// safe for concurrent use.
type Announcer struct {
	log      logr.Logger
	ifaces   []string
	network  Network
	metrics  *metrics
	schedule []time.Duration

	mu         sync.Mutex
	closed     bool
	balancers  map[string]netip.Addr
	placement  map[netip.Addr][]*responder // where each address is announced
	responders map[string]*responder       // by interface and protocol
}

// New returns an Announcer that announces nothing yet. The logger comes from
// ctx.
func New(ctx context.Context, cfg Config) (*Announcer, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register layer2 metrics: %w", err)
	}
	a := &Announcer{
		log:        klog.FromContext(ctx).WithName("layer2"),
		ifaces:     cfg.Interfaces,
		network:    cfg.Network,
		metrics:    m,
		schedule:   cfg.GratuitousSchedule,
		balancers:  map[string]netip.Addr{},
		placement:  map[netip.Addr][]*responder{},
		responders: map[string]*responder{},
	}
	if a.network == nil {
		a.network = SystemNetwork{}
	}
	if a.schedule == nil {
		a.schedule = DefaultGratuitousSchedule
	}
	return a, nil
}

// ErrClosed is returned by SetBalancer after Close.
var ErrClosed = errors.New("announcer closed")

// SetBalancer makes the announcer answer for ip on behalf of the balancer
// name (a Service's namespace/name), replacing the address name had before.
// Several balancers may share one address; it is announced while any of them
// holds it. When ip was not announced before, gratuitous frames go out at
// once. On error nothing changed for ip (name no longer holds its previous
// address, if it had a different one).
func (a *Announcer) SetBalancer(name string, ip netip.Addr) error {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return fmt.Errorf("balancer %s: invalid address", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if old, ok := a.balancers[name]; ok {
		if old == ip {
			return nil
		}
		a.deleteLocked(name)
	}
	if _, ok := a.placement[ip]; ok {
		a.balancers[name] = ip
		return nil
	}
	all, err := a.network.Links()
	if err != nil {
		return fmt.Errorf("balancer %s: announce %s: %w", name, ip, err)
	}
	links, err := a.linksFor(ip, all)
	if err != nil {
		return fmt.Errorf("balancer %s: announce %s: %w", name, ip, err)
	}
	if err := a.placeLocked(ip, links); err != nil {
		return fmt.Errorf("balancer %s: %w", name, err)
	}
	a.balancers[name] = ip
	a.log.V(2).Info("Announcing address", "balancer", name, "address", ip, "interfaces", linkNames(links))
	return nil
}

// placeLocked starts answering for ip on links and sends the gratuitous
// frames. On error ip is announced nowhere.
func (a *Announcer) placeLocked(ip netip.Addr, links []Link) error {
	var placed []*responder
	for _, link := range links {
		r, err := a.responderLocked(link, ip.Is4())
		if err == nil {
			err = r.add(ip)
		}
		if err != nil {
			for _, p := range placed {
				p.remove(ip)
			}
			a.closeIdleLocked()
			return fmt.Errorf("announce %s on %s: %w", ip, link.Name, err)
		}
		placed = append(placed, r)
	}
	a.placement[ip] = placed
	for _, r := range placed {
		r.announce(ip)
	}
	return nil
}

// Refresh re-reads the interfaces and moves every address whose interfaces
// changed since it was taken over (an interface replaced or renumbered, an
// address moved to another interface), with gratuitous frames on the new
// ones. An address that no interface can hold any more stays where it is,
// and the error says so.
func (a *Announcer) Refresh() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	all, err := a.network.Links()
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	current := map[string]Link{}
	for _, l := range all {
		current[l.Name] = l
	}
	// A responder whose interface vanished or was recreated holds a socket
	// bound to something else: close it and place its addresses again.
	for key, r := range a.responders {
		if l, ok := current[r.link.Name]; ok && l.Index == r.link.Index && bytes.Equal(l.MAC, r.link.MAC) {
			continue
		}
		delete(a.responders, key)
		if err := r.close(); err != nil {
			a.log.Error(err, "Closing socket of a changed interface", "interface", r.link.Name)
		}
		for ip, placed := range a.placement {
			a.placement[ip] = slices.DeleteFunc(slices.Clone(placed), func(p *responder) bool { return p == r })
		}
	}
	var errs []error
	for ip, placed := range a.placement {
		links, err := a.linksFor(ip, all)
		if err != nil {
			errs = append(errs, fmt.Errorf("address %s: %w", ip, err))
			continue
		}
		if slices.Equal(linkNames(links), responderNames(placed)) {
			continue
		}
		for _, r := range placed {
			r.remove(ip)
		}
		delete(a.placement, ip)
		if err := a.placeLocked(ip, links); err != nil {
			errs = append(errs, err)
			continue
		}
		a.log.Info("Moved address to other interfaces", "address", ip, "interfaces", linkNames(links))
	}
	a.closeIdleLocked()
	return errors.Join(errs...)
}

func linkNames(links []Link) []string {
	out := make([]string, 0, len(links))
	for _, l := range links {
		out = append(out, l.Name)
	}
	slices.Sort(out)
	return out
}

func responderNames(rs []*responder) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.link.Name)
	}
	slices.Sort(out)
	return out
}

// DeleteBalancer stops announcing name's address, unless another balancer
// shares it. Deleting an unknown name does nothing.
func (a *Announcer) DeleteBalancer(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deleteLocked(name)
	a.closeIdleLocked()
}

// Balancers returns the balancers the announcer holds, name to address.
func (a *Announcer) Balancers() map[string]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]netip.Addr, len(a.balancers))
	for k, v := range a.balancers {
		out[k] = v
	}
	return out
}

// Close stops answering for every address at once and closes the sockets.
// It sends nothing.
func (a *Announcer) Close() error {
	a.mu.Lock()
	a.closed = true
	rs := a.responders
	a.responders = map[string]*responder{}
	a.placement = map[netip.Addr][]*responder{}
	a.balancers = map[string]netip.Addr{}
	a.mu.Unlock()
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

func (a *Announcer) deleteLocked(name string) {
	ip, ok := a.balancers[name]
	if !ok {
		return
	}
	delete(a.balancers, name)
	for _, other := range a.balancers {
		if other == ip {
			return // still shared
		}
	}
	for _, r := range a.placement[ip] {
		r.remove(ip)
	}
	delete(a.placement, ip)
	a.log.V(2).Info("Stopped announcing address", "balancer", name, "address", ip)
}

// closeIdleLocked closes the sockets of responders left with no address.
func (a *Announcer) closeIdleLocked() {
	for key, r := range a.responders {
		if r.count() == 0 {
			delete(a.responders, key)
			if err := r.close(); err != nil {
				a.log.Error(err, "Closing idle socket", "interface", r.link.Name, "protocol", r.proto)
			}
		}
	}
}

// responderLocked returns the responder for link and family, opening its
// socket when there is none yet.
func (a *Announcer) responderLocked(link Link, v4 bool) (*responder, error) {
	proto := protoNDP
	if v4 {
		proto = protoARP
	}
	key := link.Name + "/" + proto
	if r, ok := a.responders[key]; ok {
		return r, nil
	}
	var r *responder
	var err error
	if v4 {
		r, err = newARPResponder(a.log, a.network, link, a.metrics, a.schedule)
	} else {
		r, err = newNDPResponder(a.log, a.network, link, a.metrics, a.schedule)
	}
	if err != nil {
		return nil, err
	}
	a.responders[key] = r
	return r, nil
}

// linksFor picks among links the interfaces that announce ip (see
// Config.Interfaces).
func (a *Announcer) linksFor(ip netip.Addr, links []Link) ([]Link, error) {
	var matching, configured []Link
	for _, link := range links {
		if len(a.ifaces) > 0 && !slices.Contains(a.ifaces, link.Name) {
			continue
		}
		configured = append(configured, link)
		if subnetHolds(link.Prefixes, ip) {
			matching = append(matching, link)
		}
	}
	switch {
	case len(matching) > 0:
		return matching, nil
	case len(a.ifaces) > 0 && len(configured) > 0:
		return configured, nil
	case len(a.ifaces) > 0:
		return nil, fmt.Errorf("none of the configured interfaces %v is up with an Ethernet address", a.ifaces)
	default:
		return nil, fmt.Errorf("no interface has a subnet holding the address; configure the interfaces to announce on")
	}
}

// subnetHolds reports whether one of the subnets holds ip. Host routes (/32,
// /128, as kube-proxy's IPVS dummy interface carries) define no subnet.
func subnetHolds(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Addr().Is4() == ip.Is4() && p.Bits() < p.Addr().BitLen() && p.Masked().Contains(ip) {
			return true
		}
	}
	return false
}
