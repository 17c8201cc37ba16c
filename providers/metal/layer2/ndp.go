package layer2

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/ndp"
)

// allNodes is where unsolicited neighbor advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

func newNDPResponder(log logr.Logger, network Network, link Link, m *metrics, schedule []time.Duration) (*responder, error) {
	conn, err := network.ListenNDP(link)
	if err != nil {
		return nil, err
	}
	r := newResponder(log, link, protoNDP, m, schedule)
	r.closeConn = conn.Close
	// Neighbor solicitations go to the target's solicited-node multicast
	// group; several addresses can share one group, so count members.
	groups := map[netip.Addr]int{}
	r.joined = func(ip netip.Addr) error {
		g, err := ndp.SolicitedNodeMulticast(ip)
		if err != nil {
			return err
		}
		if groups[g] == 0 {
			if err := conn.JoinGroup(g); err != nil {
				return fmt.Errorf("join solicited-node group %s: %w", g, err)
			}
		}
		groups[g]++
		return nil
	}
	r.left = func(ip netip.Addr) error {
		g, err := ndp.SolicitedNodeMulticast(ip)
		if err != nil {
			return err
		}
		groups[g]--
		if groups[g] > 0 {
			return nil
		}
		delete(groups, g)
		return conn.LeaveGroup(g)
	}
	r.sendGratuitous = func(ip netip.Addr) error {
		return conn.WriteTo(r.advertisement(ip, false), nil, allNodes)
	}
	go r.serveNDP(conn)
	return r, nil
}

// advertisement builds a neighbor advertisement for ip with the override
// flag set, so that neighbors replace what they cached.
func (r *responder) advertisement(ip netip.Addr, solicited bool) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      r.link.MAC,
		}},
	}
}

func (r *responder) serveNDP(conn NDPConn) {
	defer close(r.done)
	for {
		msg, _, src, err := conn.ReadFrom()
		if err != nil {
			if r.readFailed(err) {
				return
			}
			continue
		}
		if err := r.answerNDP(conn, msg, src); err != nil {
			r.log.Error(err, "Answering neighbor solicitation", "from", src)
		}
	}
}

// answerNDP answers a neighbor solicitation for an address the responder
// owns: to the sender, or to all nodes when the sender has no address yet
// (duplicate address detection).
func (r *responder) answerNDP(conn NDPConn, msg ndp.Message, src netip.Addr) error {
	ns, ok := msg.(*ndp.NeighborSolicitation)
	if !ok || !r.owns(ns.TargetAddress) {
		return nil
	}
	r.metrics.requests.WithLabelValues(r.link.Name, protoNDP).Inc()
	dst, solicited := src, true
	if src.WithZone("").IsUnspecified() {
		dst, solicited = allNodes, false
	}
	if err := conn.WriteTo(r.advertisement(ns.TargetAddress, solicited), nil, dst); err != nil {
		return fmt.Errorf("send advertisement for %s: %w", ns.TargetAddress, err)
	}
	r.metrics.responses.WithLabelValues(r.link.Name, protoNDP).Inc()
	return nil
}
