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
		p := &proxiedConn{client: client, upstream: c.(*net.TCPConn), b: b}
		if !b.track(p) {
			reset(p.client)
			reset(p.upstream)
			return
		}
		b.workers.run(func() { p.copyHalf(p.upstream, p.client) })
		p.copyHalf(p.client, p.upstream)
		return
	}
	b.count(tcpNoBackend)
	reset(client)
}

// proxiedConn is a forwarded connection: the client's socket and the one to
// the backend, with one goroutine copying each direction (see relay). A
// clean EOF in one direction is passed
// on as a half-close (CloseWrite) while the other direction keeps flowing;
// an error in either direction resets both. The direction that ends last
// closes both sockets, so neither goroutine waits for the other.
type proxiedConn struct {
	client, upstream *net.TCPConn
	b                *Balancer
	// ended counts the directions that have ended.
	ended atomic.Int32
}

// copyHalf copies src to dst until src ends.
func (p *proxiedConn) copyHalf(dst, src *net.TCPConn) {
	err := p.b.relay(dst, src)
	if p.ended.Add(1) == 2 {
		_ = p.client.Close()
		_ = p.upstream.Close()
		p.b.untrack(p)
		return
	}
	if err != nil {
		// Unblock the other direction: the connection is broken.
		reset(dst)
		reset(src)
		return
	}
	_ = dst.CloseWrite()
}

// relayBufferSize is the size of the buffer a direction copies through
// until a read fills it.
const relayBufferSize = 8 << 10

// relay copies src to dst until src ends (nil) or fails. Small reads, as in
// a request–response exchange or a greeting, go through a buffer: one
// read(2) and one write(2) per message cost less than splicing it through a
// pipe (two splice(2) calls, and the pipe). From the first read that fills
// the buffer on, io.Copy splices (between two *net.TCPConn it uses
// splice(2) on Linux, through TCPConn.ReadFrom), so the bytes of a bulk
// transfer never enter user space.
func (b *Balancer) relay(dst, src *net.TCPConn) error {
	bp := b.relayBuffers.Get().(*[]byte)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				b.relayBuffers.Put(bp)
				return werr
			}
		}
		if err != nil {
			b.relayBuffers.Put(bp)
			if err == io.EOF {
				return nil
			}
			return err
		}
		if n == len(buf) {
			break
		}
	}
	b.relayBuffers.Put(bp)
	_, err := io.Copy(dst, src)
	return err
}
