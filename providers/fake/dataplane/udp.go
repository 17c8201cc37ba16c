package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

const maxDatagram = 64 << 10

// udpListener serves one UDP port of a balancer. Each client address gets a
// flow: its own connected socket towards one backend, so replies find their
// way back and one client's packets stay on one backend. A flow ends after
// the idle timeout with no packet in either direction.
type udpListener struct {
	b           *Balancer
	conn        *net.UDPConn
	port        int
	backendPort atomic.Int32

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
}

type udpFlow struct {
	client   netip.AddrPort
	target   *target
	upstream *net.UDPConn
	// lastSeen is the time of the last packet, in UnixNano.
	lastSeen atomic.Int64
	closed   atomic.Bool
}

func (l *udpListener) setBackendPort(p int) { l.backendPort.Store(int32(p)) }

func (l *udpListener) close() error {
	err := l.conn.Close()
	l.mu.Lock()
	l.closed = true
	for _, f := range l.flows {
		f.closed.Store(true)
		_ = f.upstream.Close()
	}
	l.mu.Unlock()
	return err
}

func (l *udpListener) serve(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("protocol", "UDP", "port", l.port)
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			logger.V(3).Info("Read failed", "err", err)
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		f := l.flowFor(ctx, src)
		if f == nil {
			continue
		}
		f.lastSeen.Store(time.Now().UnixNano())
		if _, err := f.upstream.Write(buf[:n]); err != nil {
			logger.V(3).Info("Forward failed", "backend", f.target.name, "err", err)
		}
	}
}

// flowFor returns the client's flow, creating it when there is none or when
// its backend is gone or unhealthy. It returns nil when the packet is to be
// dropped.
func (l *udpListener) flowFor(ctx context.Context, src netip.AddrPort) *udpFlow {
	b := l.b
	pol := b.policy.Load()
	// Every packet is checked: source ranges narrowed by an update apply to
	// existing flows too.
	if !pol.allows(src.Addr()) {
		b.count(udpRefusedSource)
		return nil
	}
	l.mu.Lock()
	f := l.flows[src]
	l.mu.Unlock()
	if f != nil && f.target.usable() && !f.closed.Load() {
		b.picker.touch(src.Addr(), pol.affinity)
		return f
	}
	if f != nil {
		l.endFlow(f)
	}
	t := b.picker.pick(src.Addr(), pol.affinity, nil)
	if t == nil {
		b.count(udpNoBackend)
		return nil
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.addr, uint16(l.backendPort.Load())))
	up, err := net.DialUDP("udp", nil, dst)
	if err != nil {
		b.count(udpDialFailed)
		return nil
	}
	f = &udpFlow{client: src, target: t, upstream: up}
	f.lastSeen.Store(time.Now().UnixNano())
	l.mu.Lock()
	if l.closed {
		// The port was removed or the balancer closed meanwhile.
		l.mu.Unlock()
		_ = up.Close()
		return nil
	}
	l.flows[src] = f
	l.mu.Unlock()
	b.count(udpForwarded)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		l.relayReplies(ctx, f)
	}()
	return f
}

func (l *udpListener) endFlow(f *udpFlow) {
	l.mu.Lock()
	if l.flows[f.client] == f {
		delete(l.flows, f.client)
	}
	l.mu.Unlock()
	if f.closed.CompareAndSwap(false, true) {
		_ = f.upstream.Close()
	}
}

// relayReplies sends the backend's datagrams back to the client from the
// load balancer's address, and ends the flow when it has been idle.
func (l *udpListener) relayReplies(ctx context.Context, f *udpFlow) {
	defer l.endFlow(f)
	idle := l.b.opts.UDPIdleTimeout
	buf := make([]byte, maxDatagram)
	for {
		last := time.Unix(0, f.lastSeen.Load())
		_ = f.upstream.SetReadDeadline(last.Add(idle))
		n, err := f.upstream.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if time.Since(time.Unix(0, f.lastSeen.Load())) >= idle {
					return
				}
				continue
			}
			// ECONNREFUSED from an ICMP port unreachable: keep the flow,
			// the backend may come back; anything else ends it.
			if f.closed.Load() || ctx.Err() != nil || !isRefused(err) {
				return
			}
			continue
		}
		f.lastSeen.Store(time.Now().UnixNano())
		if _, err := l.conn.WriteToUDPAddrPort(buf[:n], f.client); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
