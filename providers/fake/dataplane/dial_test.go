package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// Addresses: 127.201.31.0/24.

// fullListener listens on addr with a backlog of zero and leaves one
// connection unaccepted, so that the kernel drops the next SYNs: a dial
// there stays in progress.
func fullListener(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return // the queue is full already
		}
		t.Cleanup(func() { _ = c.Close() })
	}
}

func TestBackendDialerConnectsEarlyAndKeepsTimeoutAndErrors(t *testing.T) {
	open, err := net.Listen("tcp", "127.201.31.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closedPort := netip.MustParseAddrPort("127.201.31.2:9")
	full := netip.MustParseAddrPort("127.201.31.3:30131")
	fullListener(t, full)

	d := net.Dialer{Timeout: 300 * time.Millisecond, KeepAlive: -1, Control: connectEarly}
	for _, tc := range []struct {
		desc    string
		addr    string
		wantErr func(error) bool
	}{
		{desc: "listening backend: connected", addr: open.Addr().String()},
		{desc: "closed port: refused", addr: closedPort.String(), wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{desc: "SYN dropped: the dialer's timeout ends it", addr: full.String(), wantErr: func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			start := time.Now()
			c, err := d.Dial("tcp", tc.addr)
			took := time.Since(start)
			if tc.wantErr != nil {
				if err == nil {
					_ = c.Close()
					t.Fatalf("dial %s succeeded, want an error", tc.addr)
				}
				if !tc.wantErr(err) {
					t.Fatalf("dial %s: %v, not the expected error", tc.addr, err)
				}
				if took > 5*time.Second {
					t.Fatalf("dial %s took %v", tc.addr, took)
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
	ln, err := net.Listen("tcp", "127.201.31.4:0")
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
