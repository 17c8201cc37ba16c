// Package netns builds small, throw-away networks out of Linux network
// namespaces for tests that need real packets: hosts (a client, nodes) that
// each live in a namespace of their own, attached by veth pairs to bridges
// that live in a further namespace. Nothing in the root namespace is touched:
// no interface, route or sysctl of the machine running the test changes.
//
// Every namespace gets a unique name and is deleted in t.Cleanup, also when
// the test fails. Addresses come from the documentation ranges
// (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32).
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips t in -short mode and when the process cannot create
// network namespaces, and otherwise logs a RAN-PRIVILEGED line that CI
// collects (.ci/summarize.sh) to show these tests really ran.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping in -short mode: network-namespace test (needs root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: network-namespace test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run as root to exercise real packets")
	}
	t.Logf("RAN-PRIVILEGED: %s (network namespaces, real packets)", t.Name())
}

// Lab is a set of namespaces created for one test.
type Lab struct {
	t      testing.TB
	prefix string
	bridge *Host // namespace holding the bridges; not a test host

	mu       sync.Mutex
	nextPort int
	segments byte
}

// Segment is one layer-2 network: a bridge with an IPv4 and an IPv6 subnet.
type Segment struct {
	Name   string
	IPv4   netip.Prefix
	IPv6   netip.Prefix
	bridge string
	index  byte
}

// Host is a network namespace standing for one machine.
type Host struct {
	// Name is the role given to New... ("client", "node-1").
	Name   string
	nsName string
	ns     netns.NsHandle
	handle *netlink.Handle

	mu    sync.Mutex
	links []Link
}

// Link is an interface of a host, attached to a segment.
type Link struct {
	Name    string
	Index   int
	MAC     net.HardwareAddr
	IPv4    netip.Prefix
	IPv6    netip.Prefix
	Segment *Segment
}

// New creates an empty lab. Call RequireRoot first.
func New(t testing.TB) *Lab {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random lab name: %v", err)
	}
	l := &Lab{t: t, prefix: "extlb-" + hex.EncodeToString(b[:])}
	l.bridge = l.newHost("bridges", map[string]string{
		// The bridge namespace only switches frames.
		"net/ipv6/conf/all/disable_ipv6":     "1",
		"net/ipv6/conf/default/disable_ipv6": "1",
	})
	return l
}

// linkCounter numbers the links of the process (see Attach).
var linkCounter atomic.Int64

// hostSysctls make addresses usable at once: no duplicate address detection
// delaying IPv6 addresses (including link-local ones) by a second or more.
var hostSysctls = map[string]string{
	"net/ipv6/conf/all/accept_dad":     "0",
	"net/ipv6/conf/default/accept_dad": "0",
}

// NewHost creates a host namespace with its loopback up.
func (l *Lab) NewHost(name string) *Host {
	l.t.Helper()
	return l.newHost(name, hostSysctls)
}

func (l *Lab) newHost(name string, sysctls map[string]string) *Host {
	t := l.t
	t.Helper()
	h := &Host{Name: name, nsName: l.prefix + "-" + name}
	ns, err := createNamed(h.nsName)
	if err != nil {
		t.Fatalf("create network namespace %s: %v", h.nsName, err)
	}
	h.ns = ns
	t.Cleanup(func() {
		if h.handle != nil {
			h.handle.Close()
		}
		h.ns.Close()
		if err := netns.DeleteNamed(h.nsName); err != nil {
			t.Errorf("delete network namespace %s: %v", h.nsName, err)
		}
	})
	if err := h.Do(func() error { return writeSysctls(sysctls) }); err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	if h.handle, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatalf("netlink handle in %s: %v", h.nsName, err)
	}
	lo, err := h.handle.LinkByName("lo")
	if err != nil {
		t.Fatalf("host %s: find lo: %v", name, err)
	}
	if err := h.handle.LinkSetUp(lo); err != nil {
		t.Fatalf("host %s: set lo up: %v", name, err)
	}
	return h
}

// createNamed creates a named namespace from a throw-away OS thread, so the
// calling thread never changes namespace.
func createNamed(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: Go discards it when the goroutine
		// ends, together with its namespace.
		runtime.LockOSThread()
		ns, err := netns.NewNamed(name)
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

func writeSysctls(values map[string]string) error {
	for key, value := range values {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
	}
	return nil
}

// NewSegment creates a bridge (multicast snooping off, so neighbor
// solicitations reach every port) in the lab's bridge namespace.
func (l *Lab) NewSegment(name, ipv4, ipv6 string) *Segment {
	t := l.t
	t.Helper()
	s := &Segment{Name: name, IPv4: netip.MustParsePrefix(ipv4), IPv6: netip.MustParsePrefix(ipv6)}
	l.mu.Lock()
	l.segments++
	s.index = l.segments
	s.bridge = fmt.Sprintf("br%d", s.index)
	l.mu.Unlock()
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.bridge}, MulticastSnooping: &snooping}
	if err := l.bridge.handle.LinkAdd(br); err != nil {
		t.Fatalf("segment %s: add bridge: %v", name, err)
	}
	if err := l.bridge.handle.LinkSetUp(br); err != nil {
		t.Fatalf("segment %s: set bridge up: %v", name, err)
	}
	return s
}

// Attach connects h to s through a new veth pair. The host's end gets the
// addresses with host number n in the segment's subnets (n=11 gives
// 192.0.2.11/24 and 2001:db8::11/64) and the MAC 02:00:00:00:<segment>:<n>
// (locally administered).
//
// The host's end is named xlN, N counting every link of the process: Go
// resolves IPv6 zone names (fe80::1%eth0) through a process-wide cache that
// cannot tell namespaces apart, so a name must mean one interface in the
// whole process, and must not exist in the root namespace.
func (l *Lab) Attach(h *Host, s *Segment, n int) Link {
	t := l.t
	t.Helper()
	ifName := fmt.Sprintf("xl%d", linkCounter.Add(1))
	l.mu.Lock()
	port := fmt.Sprintf("p%d", l.nextPort)
	l.nextPort++
	l.mu.Unlock()

	mac := net.HardwareAddr{0x02, 0, 0, 0, s.index, byte(n)}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: port},
		PeerName:         ifName,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(h.ns)),
	}
	if err := l.bridge.handle.LinkAdd(veth); err != nil {
		t.Fatalf("attach %s to %s: add veth: %v", h.Name, s.Name, err)
	}
	br, err := l.bridge.handle.LinkByName(s.bridge)
	if err != nil {
		t.Fatalf("attach %s to %s: find bridge: %v", h.Name, s.Name, err)
	}
	if err := l.bridge.handle.LinkSetMaster(veth, br); err != nil {
		t.Fatalf("attach %s to %s: enslave port: %v", h.Name, s.Name, err)
	}
	if err := l.bridge.handle.LinkSetUp(veth); err != nil {
		t.Fatalf("attach %s to %s: set port up: %v", h.Name, s.Name, err)
	}

	link, err := h.handle.LinkByName(ifName)
	if err != nil {
		t.Fatalf("attach %s to %s: find %s: %v", h.Name, s.Name, ifName, err)
	}
	v4 := netip.PrefixFrom(nthAddr(s.IPv4.Addr(), n), s.IPv4.Bits())
	v6 := netip.PrefixFrom(nthAddr6(s.IPv6.Addr(), n), s.IPv6.Bits())
	for _, p := range []netip.Prefix{v4, v6} {
		addr := &netlink.Addr{IPNet: prefixToIPNet(p), Flags: unix.IFA_F_NODAD}
		if err := h.handle.AddrAdd(link, addr); err != nil {
			t.Fatalf("attach %s to %s: add %s: %v", h.Name, s.Name, p, err)
		}
	}
	if err := h.handle.LinkSetUp(link); err != nil {
		t.Fatalf("attach %s to %s: set %s up: %v", h.Name, s.Name, ifName, err)
	}
	// The bridge forwards through a port only once the kernel's link watcher
	// has seen its carrier, which can take up to a second; frames sent
	// before are lost.
	if err := waitOperUp(l.bridge.handle, port); err != nil {
		t.Fatalf("attach %s to %s: %v", h.Name, s.Name, err)
	}
	if err := waitOperUp(h.handle, ifName); err != nil {
		t.Fatalf("attach %s to %s: %v", h.Name, s.Name, err)
	}
	l2 := Link{Name: ifName, Index: link.Attrs().Index, MAC: mac, IPv4: v4, IPv6: v6, Segment: s}
	h.mu.Lock()
	h.links = append(h.links, l2)
	h.mu.Unlock()
	return l2
}

// waitOperUp polls until the link's operational state is up (5 s at most).
func waitOperUp(handle *netlink.Handle, name string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := handle.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is %s after 5s, want up", name, link.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nthAddr returns base+n; n is small, so only the last byte changes.
func nthAddr(base netip.Addr, n int) netip.Addr {
	b := base.AsSlice()
	b[len(b)-1] += byte(n)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nthAddr6 returns base + n written in decimal digits (n=100 gives ::100).
func nthAddr6(base netip.Addr, n int) netip.Addr {
	v, _ := strconv.ParseUint(strconv.Itoa(n), 16, 16)
	b := base.As16()
	b[14] += byte(v >> 8)
	b[15] += byte(v)
	return netip.AddrFrom16(b)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Links returns the host's links in the order they were attached.
func (h *Host) Links() []Link {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Link(nil), h.links...)
}

// Do runs fn on an OS thread switched into the host's namespace and returns
// its error. Sockets opened inside fn belong to the host's namespace for
// their whole life and can be used from any goroutine afterwards; fn must not
// start goroutines that expect to be inside the namespace.
func (h *Host) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in another namespace, is
		// discarded when this goroutine returns.
		runtime.LockOSThread()
		if err := netns.Set(h.ns); err != nil {
			ch <- fmt.Errorf("enter namespace %s: %w", h.nsName, err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}

// Interface returns the host's interface named name, as seen inside its
// namespace.
func (h *Host) Interface(name string) (*net.Interface, error) {
	var ifi *net.Interface
	err := h.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(name)
		return err
	})
	return ifi, err
}

// Neighbor returns the link-layer address the host's neighbor table holds for
// ip, and whether it holds a usable one (any state but FAILED/INCOMPLETE).
func (h *Host) Neighbor(ip netip.Addr) (net.HardwareAddr, bool, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := h.handle.NeighList(0, family)
	if err != nil {
		return nil, false, fmt.Errorf("list neighbors of %s: %w", h.Name, err)
	}
	for _, n := range neighs {
		nip, ok := netip.AddrFromSlice(n.IP)
		if !ok || nip.Unmap() != ip {
			continue
		}
		if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || len(n.HardwareAddr) == 0 {
			return nil, false, nil
		}
		return n.HardwareAddr, true, nil
	}
	return nil, false, nil
}

// SetSysctl writes a sysctl (key like "net/ipv6/neigh/xl1/delay_first_probe_time")
// inside the host's namespace.
func (h *Host) SetSysctl(key, value string) error {
	return h.Do(func() error { return writeSysctls(map[string]string{key: value}) })
}

// Netlink is a netlink handle bound to the host's namespace.
func (h *Host) Netlink() *netlink.Handle { return h.handle }

// NsName is the name of the host's namespace (as `ip netns list` shows it).
func (h *Host) NsName() string { return h.nsName }
