// Package liveness tells each speaker which of its peers are alive, fast.
//
// Every speaker sends a small UDP heartbeat to every peer each Interval and
// declares a peer dead when it has heard nothing from it for DeadAfter. A
// speaker that stops on purpose sends "leave" first, and its peers drop it at
// once. There is no gossip, no suspicion and no indirect probing: on a LAN
// that a failed speaker shares with its peers, silence is the signal, and the
// detection time is bounded by DeadAfter plus one check period whatever the
// cluster size. The price is N×(N-1) datagrams per Interval across the
// cluster (about 100 kB/s per node with 100 nodes at 100 ms).
package liveness

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// Defaults for Config.
const (
	DefaultInterval  = 100 * time.Millisecond
	DefaultDeadAfter = 600 * time.Millisecond
)

// leaveCopies is how many leave datagrams go to each peer: UDP may drop one,
// and a lost leave costs a DeadAfter of failover.
const leaveCopies = 3

// Config configures Members.
type Config struct {
	// NodeName names this speaker to its peers.
	NodeName string
	// Interval between heartbeats; DefaultInterval when zero.
	Interval time.Duration
	// DeadAfter is how long a silent peer stays alive; DefaultDeadAfter
	// when zero. It must exceed Interval.
	DeadAfter time.Duration
	// Key, when not empty, signs every datagram (HMAC-SHA256); datagrams
	// without a valid signature are dropped. All speakers need the same key.
	Key []byte
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Members tracks which peers are alive.
type Members struct {
	log       logr.Logger
	name      string
	interval  time.Duration
	deadAfter time.Duration
	key       []byte
	conn      net.PacketConn
	instance  uint64
	started   time.Time
	changes   chan struct{}
	received  *prometheus.CounterVec
	livePeers prometheus.Gauge

	mu      sync.Mutex
	seq     uint64
	peers   map[string]netip.AddrPort
	state   map[string]*peerState
	live    map[string]bool // last reported live set
	ready   bool
	leaving bool
	closed  bool
}

type peerState struct {
	instance uint64
	seq      uint64
	seen     time.Time
	left     bool
}

// New returns Members speaking on conn, a UDP socket bound to the heartbeat
// port. Members owns conn from now on. The logger comes from ctx.
func New(ctx context.Context, cfg Config, conn net.PacketConn) (*Members, error) {
	if cfg.NodeName == "" || len(cfg.NodeName) > 255 {
		return nil, fmt.Errorf("node name %q: length must be 1..255", cfg.NodeName)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.DeadAfter <= cfg.Interval {
		return nil, fmt.Errorf("dead-after %v must exceed the heartbeat interval %v", cfg.DeadAfter, cfg.Interval)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("choose instance id: %w", err)
	}
	m := &Members{
		log:       klog.FromContext(ctx).WithName("liveness"),
		name:      cfg.NodeName,
		interval:  cfg.Interval,
		deadAfter: cfg.DeadAfter,
		key:       cfg.Key,
		conn:      conn,
		instance:  binary.BigEndian.Uint64(b[:]),
		changes:   make(chan struct{}, 1),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extlb", Subsystem: "speaker", Name: "liveness_datagrams_received_total",
			Help: "Liveness datagrams received, by result (heartbeat, leave, rejected).",
		}, []string{"result"}),
		livePeers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "extlb", Subsystem: "speaker", Name: "liveness_live_peers",
			Help: "Peers currently heard from, this speaker excluded.",
		}),
		peers: map[string]netip.AddrPort{},
		state: map[string]*peerState{},
		live:  map[string]bool{cfg.NodeName: true},
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.received, m.livePeers} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register liveness metrics: %w", err)
			}
		}
	}
	return m, nil
}

// SetPeers replaces the set of peers heartbeats go to (node name to
// address). This speaker's own name is ignored.
func (m *Members) SetPeers(peers map[string]netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = make(map[string]netip.AddrPort, len(peers))
	for name, addr := range peers {
		if name != m.name {
			m.peers[name] = addr
		}
	}
}

// Changes receives a value whenever the live set or readiness changes.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// Ready reports whether DeadAfter has passed since Run started, so every
// live peer has been heard from: before that, a missing peer means nothing.
func (m *Members) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Live returns the names of the live speakers, this one included (unless it
// is leaving).
func (m *Members) Live() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.live)
}

// Run sends heartbeats and receives the peers' until ctx ends or the socket
// is closed. It does not send leave: call Leave for that.
func (m *Members) Run(ctx context.Context) error {
	m.mu.Lock()
	m.started = time.Now()
	m.mu.Unlock()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		m.receive()
	}()
	heartbeat := time.NewTicker(m.interval)
	defer heartbeat.Stop()
	// Expiry is checked more often than heartbeats are sent, so a dead peer
	// is noticed at most a quarter interval after DeadAfter.
	check := time.NewTicker(m.interval / 4)
	defer check.Stop()
	m.send(kindHeartbeat, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-recvDone:
			return nil
		case <-heartbeat.C:
			m.send(kindHeartbeat, 1)
		case now := <-check.C:
			m.update(now)
		}
	}
}

// Leave tells every peer that this speaker is going away, so they take over
// its addresses at once, and stops the heartbeats. The socket stays open
// until Close.
func (m *Members) Leave() {
	m.mu.Lock()
	m.leaving = true
	m.mu.Unlock()
	m.send(kindLeave, leaveCopies)
	m.update(time.Now())
}

// Close closes the socket without telling anyone: peers notice the silence
// after DeadAfter. Closing again does nothing.
func (m *Members) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.conn.Close()
}

func (m *Members) send(k kind, copies int) {
	m.mu.Lock()
	if m.closed || (k == kindHeartbeat && m.leaving) {
		m.mu.Unlock()
		return
	}
	peers := maps.Clone(m.peers)
	var msgs [][]byte
	for range copies {
		m.seq++
		b, err := message{kind: k, instance: m.instance, seq: m.seq, node: m.name}.marshal(m.key)
		if err != nil {
			m.mu.Unlock()
			m.log.Error(err, "Building liveness datagram")
			return
		}
		msgs = append(msgs, b)
	}
	m.mu.Unlock()
	for name, addr := range peers {
		for _, b := range msgs {
			if _, err := m.conn.WriteTo(b, net.UDPAddrFromAddrPort(addr)); err != nil && !errors.Is(err, net.ErrClosed) {
				m.log.V(4).Info("Sending to peer failed", "peer", name, "address", addr, "err", err)
			}
		}
	}
}

func (m *Members) receive() {
	buf := make([]byte, 512)
	for {
		n, from, err := m.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Error(err, "Reading liveness datagram")
			time.Sleep(m.interval)
			continue
		}
		msg, err := parseMessage(buf[:n], m.key)
		if err != nil {
			m.received.WithLabelValues("rejected").Inc()
			m.log.V(4).Info("Dropped datagram", "from", from, "err", err)
			continue
		}
		if msg.node == m.name {
			continue
		}
		if m.accept(msg, time.Now()) {
			m.update(time.Now())
		}
	}
}

// accept records msg; it returns true when msg may change the live set.
func (m *Members) accept(msg message, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.state[msg.node]
	switch {
	case !ok || st.instance != msg.instance:
		// A speaker we did not know, or one that restarted.
		st = &peerState{instance: msg.instance}
		m.state[msg.node] = st
	case msg.seq <= st.seq:
		m.received.WithLabelValues("rejected").Inc()
		return false // replayed or reordered
	}
	st.seq = msg.seq
	if msg.kind == kindLeave {
		m.received.WithLabelValues("leave").Inc()
		st.left = true
		return true
	}
	m.received.WithLabelValues("heartbeat").Inc()
	wasLive := !st.left && now.Sub(st.seen) <= m.deadAfter
	st.seen = now
	return !wasLive && !st.left
}

// update recomputes the live set and readiness and signals a change.
func (m *Members) update(now time.Time) {
	m.mu.Lock()
	live := map[string]bool{}
	if !m.leaving {
		live[m.name] = true
	}
	peers := 0
	for name, st := range m.state {
		if !st.left && now.Sub(st.seen) <= m.deadAfter {
			live[name] = true
			peers++
		}
	}
	ready := m.ready || (!m.started.IsZero() && now.Sub(m.started) >= m.deadAfter)
	changed := ready != m.ready || !maps.Equal(live, m.live)
	if changed {
		m.log.V(2).Info("Live speakers changed", "live", len(live), "ready", ready)
	}
	m.live, m.ready = live, ready
	m.mu.Unlock()
	m.livePeers.Set(float64(peers))
	if changed {
		select {
		case m.changes <- struct{}{}:
		default:
		}
	}
}
