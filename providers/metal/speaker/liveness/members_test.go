package liveness

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseMessage(t *testing.T) {
	key := []byte("secret")
	good := message{kind: kindHeartbeat, instance: 7, seq: 9, node: "node-1"}
	signed, _ := good.marshal(key)
	unsigned, _ := good.marshal(nil)
	tests := []struct {
		desc    string
		b       []byte
		key     []byte
		wantErr error
	}{
		{desc: "signed heartbeat", b: signed, key: key},
		{desc: "unsigned heartbeat without key", b: unsigned},
		{desc: "unsigned heartbeat when a key is required", b: unsigned, key: key, wantErr: errBadLength},
		{desc: "wrong key", b: signed, key: []byte("other"), wantErr: errBadSigature},
		{desc: "tampered name", b: withByte(signed, headerLen, 'N'), key: key, wantErr: errBadSigature},
		{desc: "truncated", b: unsigned[:len(unsigned)-1], wantErr: errBadLength},
		{desc: "foreign datagram", b: []byte("GET / HTTP/1.1\r\n\r\n-----"), wantErr: errNotOurs},
		{desc: "unknown kind", b: withByte(unsigned, 4, 9), wantErr: errBadKind},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m, err := parseMessage(tc.b, tc.key)
			if err != tc.wantErr {
				t.Fatalf("parseMessage error = %v, want %v", err, tc.wantErr)
			}
			if err == nil && m != good {
				t.Errorf("parseMessage = %+v, want %+v", m, good)
			}
		})
	}
}

// withByte returns a copy of b with b[i] = v.
func withByte(b []byte, i int, v byte) []byte {
	out := append([]byte(nil), b...)
	out[i] = v
	return out
}

func TestAcceptRejectsReplays(t *testing.T) {
	m := newMembers(t, "node-1", time.Second, nil)
	now := time.Now()
	hb := message{kind: kindHeartbeat, instance: 1, seq: 5, node: "node-2"}
	if !m.accept(hb, now) {
		t.Fatal("first heartbeat should make node-2 live")
	}
	m.update(now)
	if m.accept(hb, now) {
		t.Error("replayed heartbeat accepted as news")
	}
	if m.accept(message{kind: kindLeave, instance: 1, seq: 4, node: "node-2"}, now) {
		t.Error("leave with an old sequence number accepted")
	}
	m.update(now)
	if !m.Live()["node-2"] {
		t.Fatal("node-2 dropped by a replayed leave")
	}
	if !m.accept(message{kind: kindLeave, instance: 1, seq: 6, node: "node-2"}, now) {
		t.Error("fresh leave not accepted")
	}
	m.update(now)
	if m.Live()["node-2"] {
		t.Fatal("node-2 live after leaving")
	}
	if m.accept(message{kind: kindHeartbeat, instance: 1, seq: 7, node: "node-2"}, now) {
		t.Error("heartbeat of the instance that left revived it")
	}
	if !m.accept(message{kind: kindHeartbeat, instance: 2, seq: 1, node: "node-2"}, now) {
		t.Error("heartbeat of a restarted speaker (new instance) not accepted")
	}
	m.update(now)
	if !m.Live()["node-2"] {
		t.Error("restarted node-2 not live")
	}
}

// newMembers returns Members on a loopback UDP socket (not running).
func newMembers(t *testing.T, name string, deadAfter time.Duration, key []byte) *Members {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(context.Background(), Config{NodeName: name, Interval: 20 * time.Millisecond, DeadAfter: deadAfter, Key: key, Registerer: prometheus.NewRegistry()}, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func addrOf(m *Members) netip.AddrPort {
	return m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// cluster starts members that know each other, on loopback.
func cluster(t *testing.T, deadAfter time.Duration, keys ...[]byte) []*Members {
	t.Helper()
	var ms []*Members
	peers := map[string]netip.AddrPort{}
	for i, key := range keys {
		m := newMembers(t, "node-"+string(rune('1'+i)), deadAfter, key)
		ms = append(ms, m)
		peers[m.name] = addrOf(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, m := range ms {
		m.SetPeers(peers)
		go m.Run(ctx)
	}
	return ms
}

// waitFor polls cond for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

func liveSet(m *Members) string {
	var names []string
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if m.Live()[n] {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

func TestPeersSeeEachOther(t *testing.T) {
	ms := cluster(t, 200*time.Millisecond, nil, nil, nil)
	for _, m := range ms {
		waitFor(t, m.name+" to see all three", func() bool { return liveSet(m) == "node-1,node-2,node-3" && m.Ready() })
	}
}

func TestCrashIsDetectedAfterSilence(t *testing.T) {
	const deadAfter = 200 * time.Millisecond
	ms := cluster(t, deadAfter, nil, nil, nil)
	waitFor(t, "node-1 to see all", func() bool { return liveSet(ms[0]) == "node-1,node-2,node-3" })
	ms[2].Close()
	dropped := waitFor(t, "node-1 to drop node-3", func() bool { return liveSet(ms[0]) == "node-1,node-2" })
	// Dropping a peer earlier than its silence allows would mean flapping.
	// The silence starts at the last heartbeat node-1 heard, which a loaded
	// machine may have sent well before the Close: measured from there, not
	// from the Close, the bound holds however late heartbeats were.
	ms[0].mu.Lock()
	lastHeard := ms[0].state["node-3"].seen
	ms[0].mu.Unlock()
	if d := dropped.Sub(lastHeard); d < deadAfter {
		t.Errorf("node-3 declared dead %v after node-1 last heard it, before dead-after %v", d, deadAfter)
	}
	// node-2 notices on its own clock, a little earlier or later.
	waitFor(t, "node-2 to drop node-3", func() bool { return liveSet(ms[1]) == "node-1,node-2" })
}

func TestLeaveIsActedOnAtOnce(t *testing.T) {
	// A dead-after far beyond the test's wait: only the leave datagram can
	// explain a drop at all, so no stopwatch is needed to tell it from an
	// expiry.
	const deadAfter = time.Hour
	ms := cluster(t, deadAfter, nil, nil, nil)
	waitFor(t, "node-1 to see all", func() bool { return liveSet(ms[0]) == "node-1,node-2,node-3" })
	ms[2].Leave()
	waitFor(t, "node-1 to drop node-3 on its leave", func() bool { return liveSet(ms[0]) == "node-1,node-2" })
	if ms[2].Live()["node-3"] {
		t.Error("a leaving speaker still counts itself live")
	}
}

func TestWrongKeyIsNotHeard(t *testing.T) {
	ms := cluster(t, 200*time.Millisecond, []byte("k1"), []byte("k1"), []byte("k2"))
	waitFor(t, "node-1 to hear node-2", func() bool { return ms[0].Live()["node-2"] })
	reg := prometheus.NewRegistry()
	reg.MustRegister(ms[0].received)
	waitFor(t, "node-1 to reject node-3's datagrams", func() bool {
		fams, _ := reg.Gather()
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				if m.GetLabel()[0].GetValue() == "rejected" && m.GetCounter().GetValue() >= 3 {
					return true
				}
			}
		}
		return false
	})
	if ms[0].Live()["node-3"] {
		t.Error("node-1 hears node-3, whose key differs")
	}
}
