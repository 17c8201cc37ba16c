package dataplane

import (
	"net/netip"
	"os"
	"syscall"
)

// connectEarly is the backend dialer's Control function: it starts the
// connection itself, right after the socket is created. On loopback the
// handshake completes within that connect(2) call, so the dialer's own
// connect then finds the socket connected (EISCONN) and returns at once,
// instead of parking the goroutine until the poller reports the socket
// writable — a park, a poller wake-up and a deadline timer saved per
// connection. A handshake still in progress is left to the dialer, which
// then waits for it with its timeout as usual (its connect reports
// EALREADY); a failure is reported by either connect.
func connectEarly(network, address string, c syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || ap.Addr().Zone() != "" {
		return nil // leave it to the dialer
	}
	var sa syscall.Sockaddr
	switch network {
	case "tcp4":
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	case "tcp6":
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	default:
		return nil
	}
	var connErr error
	if err := c.Control(func(fd uintptr) { connErr = syscall.Connect(int(fd), sa) }); err != nil {
		return err
	}
	switch connErr {
	case nil, syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
		return nil
	}
	return os.NewSyscallError("connect", connErr)
}
