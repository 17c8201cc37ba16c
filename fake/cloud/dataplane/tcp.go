package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// tcpListener serves one TCP port of a balancer.
type tcpListener struct {
	b           *Balancer
	ln          *net.TCPListener
	port        int
	backendPort atomic.Int32
}

func (l *tcpListener) close() error { return l.ln.Close() }

func (l *tcpListener) setBackendPort(p int) { l.backendPort.Store(int32(p)) }

func (l *tcpListener) serve(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("protocol", "TCP", "port", l.port)
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			logger.Error(err, "Accept failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		l.b.workers.run(func() { l.handle(ctx, c) })
	}
}

// reset closes c with an RST instead of a FIN, as a refused connection.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

func (l *tcpListener) handle(ctx context.Context, client *net.TCPConn) {
	b := l.b
	ra, ok := client.RemoteAddr().(*net.TCPAddr)
	if !ok {
		reset(client)
		return
	}
	src := ra.AddrPort().Addr().Unmap()
	pol := b.policy.Load()
	if !pol.allows(src) {
		b.count(tcpRefusedSource)
		reset(client)
		return
	}
	// Try a second backend when the first cannot be reached.
	var failed *target
	for attempt := 0; attempt < 2; attempt++ {
		t := b.picker.pick(src, pol.affinity, failed)
		if t == nil {
			break
		}
		dst := netip.AddrPortFrom(t.addr, uint16(l.backendPort.Load()))
		// DialContext, not DialTCP: DialTCP binds a zero local address
		// first, which takes an ephemeral port exclusively and runs out
		// under high connection rates (TIME_WAIT ports are not reused).
		c, err := b.dialer.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			klog.FromContext(ctx).V(3).Info("Backend dial failed", "backend", t.name, "address", dst, "err", err)
			b.count(tcpDialFailed)
			failed = t
			continue
		}
		b.count(tcpForwarded)
		upstream := c.(*net.TCPConn)
		if !b.track(client, upstream) {
			reset(client)
			reset(upstream)
			return
		}
		defer b.untrack(client, upstream)
		splice(client, upstream, b.workers)
		return
	}
	b.count(tcpNoBackend)
	reset(client)
}

// splice copies both directions between two TCP connections until both have
// ended, one of them on a goroutine from w. io.Copy between two *net.TCPConn uses splice(2) on Linux (through
// TCPConn.ReadFrom), so the bytes never enter user space. A clean EOF in one
// direction is passed on as a half-close (CloseWrite) while the other
// direction keeps flowing; an error in either direction resets both.
func splice(a, b *net.TCPConn, w *workers) {
	var ended atomic.Int32
	done := make(chan struct{})
	w.run(func() {
		defer close(done)
		copyHalf(b, a, &ended)
	})
	copyHalf(a, b, &ended)
	<-done
	_ = a.Close()
	_ = b.Close()
}

// copyHalf copies src to dst. The first direction to end half-closes dst;
// the second needs no shutdown(2) since both sockets are closed right after.
func copyHalf(dst, src *net.TCPConn, ended *atomic.Int32) {
	if _, err := io.Copy(dst, src); err != nil {
		// Unblock the other direction: the connection is broken.
		reset(dst)
		reset(src)
		return
	}
	if ended.Add(1) == 1 {
		_ = dst.CloseWrite()
	}
}
