package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ARPClient is a raw ARP socket on one of a host's links, for tests that ask
// who has an address and watch the answers.
type ARPClient struct {
	*arp.Client
}

// ARPClient opens a raw ARP socket on the host's link named ifName.
func (h *Host) ARPClient(ifName string) (*ARPClient, error) {
	var c *arp.Client
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP socket on %s/%s: %w", h.Name, ifName, err)
	}
	return &ARPClient{c}, nil
}

// ARPAnswer is an ARP frame claiming an address: a reply or an announcement.
type ARPAnswer struct {
	MAC  net.HardwareAddr
	At   time.Time
	Kind arp.Operation
}

// Ask sends one request for ip and returns the MACs of every answer that
// arrives within wait (the socket's read deadline is changed).
func (c *ARPClient) Ask(ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	if err := c.Request(ip); err != nil {
		return nil, fmt.Errorf("request %s: %w", ip, err)
	}
	deadline := time.Now().Add(wait)
	var macs []net.HardwareAddr
	for {
		a, err := c.NextClaim(ip, deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return macs, nil
		}
		if err != nil {
			return macs, err
		}
		if a.Kind == arp.OperationReply {
			macs = append(macs, a.MAC)
		}
	}
}

// NextClaim returns the next ARP frame claiming ip (a reply for ip, or an
// announcement with sender and target ip), or os.ErrDeadlineExceeded.
func (c *ARPClient) NextClaim(ip netip.Addr, deadline time.Time) (ARPAnswer, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return ARPAnswer{}, err
	}
	for {
		p, _, err := c.Read()
		if err != nil {
			return ARPAnswer{}, err
		}
		if p.SenderIP != ip {
			continue
		}
		if p.Operation == arp.OperationReply || p.TargetIP == ip {
			return ARPAnswer{MAC: p.SenderHardwareAddr, At: time.Now(), Kind: p.Operation}, nil
		}
	}
}

// NDPClient is an ICMPv6 neighbor-discovery socket on one of a host's links.
type NDPClient struct {
	*ndp.Conn
	mac net.HardwareAddr
}

// NDPClient opens a neighbor-discovery socket on the host's link ifName.
func (h *Host) NDPClient(ifName string) (*NDPClient, error) {
	var c *NDPClient
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		conn, _, err := ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		if err := conn.SetICMPFilter(&f); err != nil {
			conn.Close()
			return err
		}
		c = &NDPClient{Conn: conn, mac: ifi.HardwareAddr}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("NDP socket on %s/%s: %w", h.Name, ifName, err)
	}
	return c, nil
}

// Ask sends a neighbor solicitation for ip to its solicited-node group and
// returns the target link-layer addresses of the advertisements for ip that
// arrive within wait.
func (c *NDPClient) Ask(ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, err
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: c.mac}},
	}
	if err := c.WriteTo(ns, nil, group); err != nil {
		return nil, fmt.Errorf("solicit %s: %w", ip, err)
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	var macs []net.HardwareAddr
	for {
		m, _, _, err := c.ReadFrom()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return macs, nil
		}
		if err != nil {
			return macs, err
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != ip || !na.Solicited {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				macs = append(macs, lla.Addr)
			}
		}
	}
}

// AskUntilAnswered asks for ip like Ask, window after window of wait,
// until a window brings an answer or timeout has passed, and returns the
// distinct MACs that answered in that window (none when nothing did).
// Use it where an answer is expected: a single window is a deadline on the
// answer, which a loaded machine can miss; a late answer to one request is
// read in the next window, together with the answer to the next request.
func (c *ARPClient) AskUntilAnswered(ip netip.Addr, wait, timeout time.Duration) ([]net.HardwareAddr, error) {
	return askUntilAnswered(func() ([]net.HardwareAddr, error) { return c.Ask(ip, wait) }, timeout)
}

// AskUntilAnswered is ARPClient.AskUntilAnswered for neighbor solicitations.
func (c *NDPClient) AskUntilAnswered(ip netip.Addr, wait, timeout time.Duration) ([]net.HardwareAddr, error) {
	return askUntilAnswered(func() ([]net.HardwareAddr, error) { return c.Ask(ip, wait) }, timeout)
}

func askUntilAnswered(ask func() ([]net.HardwareAddr, error), timeout time.Duration) ([]net.HardwareAddr, error) {
	deadline := time.Now().Add(timeout)
	for {
		macs, err := ask()
		if err != nil || len(macs) > 0 || time.Now().After(deadline) {
			var distinct []net.HardwareAddr
			for _, m := range macs {
				if !slices.ContainsFunc(distinct, func(d net.HardwareAddr) bool { return d.String() == m.String() }) {
					distinct = append(distinct, m)
				}
			}
			return distinct, err
		}
	}
}

// SendUDP makes the host's kernel send one UDP datagram to dst (port 9,
// discard), which makes it resolve dst's link-layer address into its
// neighbor table. dst must be an address inside the lab.
func (h *Host) SendUDP(dst netip.Addr) error {
	return h.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("extlb netns test"))
		return err
	})
}

// WaitNeighbor polls the host's neighbor table until it maps ip to mac, for
// at most timeout, and returns when it first saw it.
func (h *Host) WaitNeighbor(ip netip.Addr, mac net.HardwareAddr, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last net.HardwareAddr
	for {
		got, ok, err := h.Neighbor(ip)
		if err != nil {
			return time.Time{}, err
		}
		if ok && got.String() == mac.String() {
			return time.Now(), nil
		}
		if ok {
			last = got
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: neighbor entry for %s is %v after %v, want %s", h.Name, ip, last, timeout, mac)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
