package layer2

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

var _ NDPConn = (*ndpSocket)(nil)

// Link is a network interface the announcer may answer on.
type Link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	// Prefixes are the interface's addresses with their subnet lengths.
	Prefixes []netip.Prefix
}

// Network is the announcer's edge to the operating system: it lists the
// interfaces and opens the raw sockets. SystemNetwork is the real one; unit
// tests use an in-memory one.
type Network interface {
	// Links lists the interfaces that are up and have an Ethernet address.
	Links() ([]Link, error)
	// ListenARP opens a socket receiving and sending ARP frames on link.
	ListenARP(link Link) (ARPConn, error)
	// ListenNDP opens neighbor-discovery sockets on link; replies come
	// from its link-local address.
	ListenNDP(link Link) (NDPConn, error)
}

// ARPConn is the part of *arp.Client the announcer uses.
type ARPConn interface {
	Read() (*arp.Packet, *ethernet.Frame, error)
	WriteTo(p *arp.Packet, addr net.HardwareAddr) error
	Close() error
}

// NDPConn is the part of *ndp.Conn the announcer uses.
type NDPConn interface {
	ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error)
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

var _ ARPConn = (*arp.Client)(nil)

// SystemNetwork is the Network of the namespace the process runs in. Its
// sockets need CAP_NET_RAW.
type SystemNetwork struct{}

var _ Network = SystemNetwork{}

// Links implements Network.
func (SystemNetwork) Links() ([]Link, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var links []Link
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list addresses of interface %s: %w", ifi.Name, err)
		}
		link := Link{Name: ifi.Name, Index: ifi.Index, MAC: ifi.HardwareAddr}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipnet.IP)
			if !ok {
				continue
			}
			bits, _ := ipnet.Mask.Size()
			ip = ip.Unmap()
			if ip.Is4() && bits > 32 {
				bits -= 96
			}
			link.Prefixes = append(link.Prefixes, netip.PrefixFrom(ip, bits))
		}
		links = append(links, link)
	}
	return links, nil
}

// ListenARP implements Network.
func (SystemNetwork) ListenARP(link Link) (ARPConn, error) {
	ifi, err := net.InterfaceByIndex(link.Index)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link.Name, err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", link.Name, err)
	}
	return c, nil
}

// ListenNDP implements Network. Solicitations are read from a packet
// socket, replies sent from an ICMPv6 socket (see ndpSocket).
func (SystemNetwork) ListenNDP(link Link) (NDPConn, error) {
	ifi, err := net.InterfaceByIndex(link.Index)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link.Name, err)
	}
	return listenNDPSocket(ifi)
}
