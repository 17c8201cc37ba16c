package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/extlb/extlb/test/loopback"
)

// fullListener listens on a free port of ip with a backlog of zero and
// leaves one connection unaccepted, so that the kernel drops the next SYNs:
// a dial there stays in progress. It returns the address.
func fullListener(t *testing.T, ip netip.Addr) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip.As4()}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(ip, uint16(sa.(*syscall.SockaddrInet4).Port))
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full already
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	return addr
}

func TestBackendDialerConnectsEarlyAndKeepsTimeoutAndErrors(t *testing.T) {
	lo := loopback.Reserve(t)
	open, err := net.Listen("tcp", lo.IP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closedPort := lo.AddrPort(2, 9) // nothing listens on the block's addresses but this test
	full := fullListener(t, lo.Addr(3))

	d := net.Dialer{Timeout: 300 * time.Millisecond, KeepAlive: -1, Control: connectEarly}
	for _, tc := range []struct {
		desc    string
		addr    string
		wantErr func(error) bool
	}{
		{desc: "listening backend: connected", addr: open.Addr().String()},
		{desc: "closed port: refused", addr: closedPort.String(), wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		// The dialer's own deadline — context.DeadlineExceeded, or
		// os.ErrDeadlineExceeded when the socket's write deadline fires
		// first — not the kernel giving up on its SYN retries minutes later
		// (ETIMEDOUT, a timeout error too): which one ended the dial is in
		// the error, no stopwatch needed.
		{desc: "SYN dropped: the dialer's timeout ends it", addr: full.String(), wantErr: func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ETIMEDOUT) &&
				(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded))
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := d.Dial("tcp", tc.addr)
			if tc.wantErr != nil {
				if err == nil {
					_ = c.Close()
					t.Fatalf("dial %s succeeded, want an error", tc.addr)
				}
				if !tc.wantErr(err) {
					t.Fatalf("dial %s: %v, not the expected error", tc.addr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s: %v", tc.addr, err)
			}
			defer c.Close()
			if got := c.RemoteAddr().String(); got != tc.addr {
				t.Fatalf("remote address %s, want %s", got, tc.addr)
			}
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatalf("write on the dialed connection: %v", err)
			}
		})
	}
}

// On loopback the handshake is over when connectEarly returns, so the
// dialer has nothing left to wait for.
func TestConnectEarlyLeavesLoopbackSocketConnected(t *testing.T) {
	ln, err := net.Listen("tcp", loopback.Reserve(t).IP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var peerErr error
	d := net.Dialer{Timeout: time.Second, Control: func(network, address string, c syscall.RawConn) error {
		if err := connectEarly(network, address, c); err != nil {
			return err
		}
		return c.Control(func(fd uintptr) { _, peerErr = syscall.Getpeername(int(fd)) })
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if peerErr != nil {
		t.Fatalf("socket not connected when connectEarly returned: getpeername: %v", peerErr)
	}
}
