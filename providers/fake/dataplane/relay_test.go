package dataplane

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/extlb/extlb/test/loopback"
)

// TestSmallMessagesAreRelayedThroughTheBuffer checks the other side of
// TestTCPForwardingUsesSplice: while no read fills the relay buffer, the
// balancer copies with read(2) and write(2) (cheaper than splicing through
// a pipe for a few bytes), so the bytes pass through read(2) twice — once
// in the balancer, once in the backend. The balancer runs in a child
// process, whose read count is its own (see proc_test.go).
func TestSmallMessagesAreRelayedThroughTheBuffer(t *testing.T) {
	const messages, size = 50, 20 // 1000 bytes in all: below relayBufferSize even if coalesced
	lo := loopback.Reserve(t)
	backend := sinkServer(t, lo.IP(1)+":0")
	b := startChild(t, childConfig{Mode: "balancer", Listen: lo.AddrPort(2, 9000), Backend: backend})

	before := b.readChars(t)
	c, err := net.Dial("tcp", lo.AddrPort(2, 9000).String())
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
	read := b.readChars(t) - before

	// The balancer's copies of the client's bytes and of the reply;
	// splicing would leave them out.
	if min := int64(messages * size); read < min {
		t.Fatalf("%d bytes passed through the balancer's read(2) for %d forwarded, want at least %d: small messages were not relayed through the buffer", read, messages*size, min)
	}
	t.Logf("%d bytes passed through the balancer's read(2) for %d forwarded", read, messages*size)
}
