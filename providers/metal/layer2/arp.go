package layer2

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// zeroMAC is the target hardware address of an ARP announcement (RFC 5227).
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

func newARPResponder(log logr.Logger, network Network, link Link, m *metrics, schedule []time.Duration) (*responder, error) {
	conn, err := network.ListenARP(link)
	if err != nil {
		return nil, err
	}
	r := newResponder(log, link, protoARP, m, schedule)
	r.closeConn = conn.Close
	r.sendGratuitous = func(ip netip.Addr) error {
		// An ARP announcement (RFC 5227): a broadcast request whose sender
		// and target IP are both ip. Linux treats it as gratuitous and
		// updates an existing entry even within its locktime.
		p, err := arp.NewPacket(arp.OperationRequest, link.MAC, ip, zeroMAC, ip)
		if err != nil {
			return err
		}
		return conn.WriteTo(p, ethernet.Broadcast)
	}
	go r.serveARP(conn)
	return r, nil
}

func (r *responder) serveARP(conn ARPConn) {
	defer close(r.done)
	for {
		p, _, err := conn.Read()
		if err != nil {
			if r.readFailed(err) {
				return
			}
			continue
		}
		if err := r.answerARP(conn, p); err != nil {
			r.log.Error(err, "Answering ARP request", "address", p.TargetIP, "from", p.SenderIP)
		}
	}
}

// answerARP replies to an ARP request for an address the responder owns.
func (r *responder) answerARP(conn ARPConn, p *arp.Packet) error {
	if p.Operation != arp.OperationRequest || bytes.Equal(p.SenderHardwareAddr, r.link.MAC) {
		return nil
	}
	if !r.owns(p.TargetIP) {
		return nil
	}
	r.metrics.requests.WithLabelValues(r.link.Name, protoARP).Inc()
	reply, err := arp.NewPacket(arp.OperationReply, r.link.MAC, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return fmt.Errorf("build reply: %w", err)
	}
	if err := conn.WriteTo(reply, p.SenderHardwareAddr); err != nil {
		return fmt.Errorf("send reply: %w", err)
	}
	r.metrics.responses.WithLabelValues(r.link.Name, protoARP).Inc()
	return nil
}
