package layer2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// ndpSocket is the system's NDPConn. It writes through an ICMPv6 socket
// (the kernel fills in the IPv6 header and checksum) but reads neighbor
// solicitations from an AF_PACKET socket: a client re-checking a cached
// entry sends its solicitation unicast to the load-balancer address itself,
// which this node does not own, so the kernel drops it before any ICMPv6
// socket sees it. The packet socket sees those and the multicast ones alike.
type ndpSocket struct {
	*ndp.Conn
	raw    *packet.Conn
	ifName string
	buf    []byte
}

const (
	etherTypeIPv6          = 0x86dd
	ipv6HeaderLen          = 40
	protoICMPv6            = 58
	icmpNeighborSolicit    = 135
	ndpHopLimit            = 255
	minNeighborSolicitSize = ipv6HeaderLen + 24
)

// solicitationFilter passes IPv6 packets whose next header is ICMPv6 and
// whose ICMPv6 type is neighbor solicitation; offsets are from the IPv6
// header (a datagram packet socket strips the Ethernet header).
func solicitationFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: ipv6HeaderLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpNeighborSolicit, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
}

// tentativeWait bounds how long listenNDPSocket waits for the interface's
// link-local address to become usable: it is tentative, and cannot be
// bound (EADDRNOTAVAIL), until duplicate address detection ends, about a
// second after the link comes up (a node booting, a bond re-created).
const tentativeWait = 3 * time.Second

func listenNDPSocket(ifi *net.Interface) (*ndpSocket, error) {
	var c *ndp.Conn
	for deadline := time.Now().Add(tentativeWait); ; time.Sleep(50 * time.Millisecond) {
		var err error
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRNOTAVAIL) || time.Now().After(deadline) {
			return nil, fmt.Errorf("open ICMPv6 socket on %s: %w", ifi.Name, err)
		}
	}
	// Nothing is read from the ICMPv6 socket.
	var block ipv6.ICMPFilter
	block.SetAll(true)
	if err := c.SetICMPFilter(&block); err != nil {
		c.Close()
		return nil, fmt.Errorf("set ICMPv6 filter on %s: %w", ifi.Name, err)
	}
	filter, err := solicitationFilter()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("assemble solicitation filter: %w", err)
	}
	raw, err := packet.Listen(ifi, packet.Datagram, etherTypeIPv6, &packet.Config{Filter: filter})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open packet socket on %s: %w", ifi.Name, err)
	}
	return &ndpSocket{Conn: c, raw: raw, ifName: ifi.Name, buf: make([]byte, max(ifi.MTU, 1280))}, nil
}

// ReadFrom returns the next valid neighbor solicitation and its source.
func (s *ndpSocket) ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error) {
	for {
		n, _, err := s.raw.ReadFrom(s.buf)
		if err != nil {
			return nil, nil, netip.Addr{}, err
		}
		msg, src, err := parseSolicitation(s.buf[:n])
		if err != nil {
			continue
		}
		return msg, nil, src.WithZone(s.ifName), nil
	}
}

// Close closes both sockets.
func (s *ndpSocket) Close() error {
	return errors.Join(s.raw.Close(), s.Conn.Close())
}

var errNotSolicitation = errors.New("not a valid neighbor solicitation")

// parseSolicitation checks an IPv6 packet the way the kernel would before
// handing it to ICMPv6 (RFC 4861 section 7.1.1: hop limit 255, ICMP code 0,
// valid checksum, at least 24 bytes) and returns the solicitation and its
// source address.
func parseSolicitation(b []byte) (ndp.Message, netip.Addr, error) {
	if len(b) < minNeighborSolicitSize || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[7] != ndpHopLimit {
		return nil, netip.Addr{}, errNotSolicitation
	}
	payloadLen := int(binary.BigEndian.Uint16(b[4:6]))
	if payloadLen < minNeighborSolicitSize-ipv6HeaderLen || len(b) < ipv6HeaderLen+payloadLen {
		return nil, netip.Addr{}, errNotSolicitation
	}
	icmp := b[ipv6HeaderLen : ipv6HeaderLen+payloadLen]
	if icmp[0] != icmpNeighborSolicit || icmp[1] != 0 || icmpv6Checksum(b[8:24], b[24:40], icmp) != 0 {
		return nil, netip.Addr{}, errNotSolicitation
	}
	msg, err := ndp.ParseMessage(icmp)
	if err != nil {
		return nil, netip.Addr{}, errNotSolicitation
	}
	if _, ok := msg.(*ndp.NeighborSolicitation); !ok {
		return nil, netip.Addr{}, errNotSolicitation
	}
	src, _ := netip.AddrFromSlice(b[8:24])
	return msg, src, nil
}

// icmpv6Checksum is the one's-complement sum over the IPv6 pseudo-header and
// the ICMPv6 message (RFC 8200 section 8.1). Over a message carrying a
// correct checksum it is 0.
func icmpv6Checksum(src, dst, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	var lenNext [8]byte
	binary.BigEndian.PutUint32(lenNext[:4], uint32(len(msg)))
	lenNext[7] = protoICMPv6
	add(lenNext[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
