package dataplane

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/extlb/extlb/providers/fake/api"
)

// Addresses: backend 127.201.32.1, VIP 127.202.32.1.

// TestSmallMessagesAreRelayedThroughTheBuffer checks the other side of
// TestTCPForwardingUsesSplice: while no read fills the relay buffer, the
// balancer copies with read(2) and write(2) (cheaper than splicing through
// a pipe for a few bytes), so the bytes pass through read(2) twice — once
// in the balancer, once in the backend.
func TestSmallMessagesAreRelayedThroughTheBuffer(t *testing.T) {
	const messages, size = 50, 20 // 1000 bytes in all: below relayBufferSize even if coalesced
	backend := sinkServer(t, "127.201.32.1:0")
	b := newTestBalancer(t, "127.202.32.1", api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: api.ProtocolTCP, Port: 9000, BackendPort: int(backend.Port())}},
		Backends: []api.Backend{{Name: "n", Address: "127.201.32.1"}},
	}, Options{})

	before := readChars(t)
	c, err := net.Dial("tcp", netip.AddrPortFrom(b.Address(), 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, size)
	for range messages {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(messages * size); string(reply) != want {
		t.Fatalf("backend counted %s bytes, want %s", reply, want)
	}
	read := readChars(t) - before

	// The backend's reads, the client's reply and the balancer's copies of
	// both; splicing would leave out the balancer's share (about half).
	if min := int64(2 * messages * size); read < min {
		t.Fatalf("%d bytes passed through read(2) for %d forwarded, want at least %d: small messages were not relayed through the buffer", read, messages*size, min)
	}
	t.Logf("%d bytes passed through read(2) for %d forwarded", read, messages*size)
}
