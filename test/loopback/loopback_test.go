package loopback

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
)

func TestBlocksAreDistinctAndHeld(t *testing.T) {
	a, b := Reserve(t), Reserve(t)
	if a.Prefix() == b.Prefix() {
		t.Fatalf("two reservations got the same block %s", a)
	}
	for _, blk := range []Block{a, b} {
		if !blockRange.Contains(blk.Addr(0)) || blk.Prefix().Bits() != 24 {
			t.Errorf("block %s is not a /24 of %s", blk, blockRange)
		}
		// Another holder (here: a second socket) cannot have it.
		_, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(blk.AddrPort(0, sentinelPort)))
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("binding %s's sentinel again: %v, want EADDRINUSE", blk, err)
		}
	}
	if ip := a.Addr(7); !a.Prefix().Contains(ip) || ip.As4()[3] != 7 || a.IP(7) != ip.String() {
		t.Errorf("Addr(7) = %s in block %s", ip, a)
	}
	if got := a.Sub(4, 30); got != netip.PrefixFrom(a.Addr(4), 30) {
		t.Errorf("Sub(4, 30) = %s", got)
	}
}

func TestBlockHeldElsewhereIsSkipped(t *testing.T) {
	Reserve(t) // starts the sequence
	mu.Lock()
	i := next
	mu.Unlock()
	a := blockRange.Addr().As4()
	a[1] += byte(i >> 8)
	a[2] = byte(i)
	taken := netip.AddrFrom4(a)
	// Someone else (another process, as far as this one can tell) holds the
	// block Reserve would try next.
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(taken, sentinelPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := Reserve(t); got.Prefix().Contains(taken) {
		t.Fatalf("Reserve returned %s, held by another socket", got)
	}
}

func TestFreePortIsOnTheBlock(t *testing.T) {
	b := Reserve(t)
	ap := b.FreePort(t, 1)
	if ap.Addr() != b.Addr(1) || ap.Port() == 0 {
		t.Fatalf("FreePort = %s, want a port on %s", ap, b.Addr(1))
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		t.Fatalf("listening on the free port: %v", err)
	}
	ln.Close()
}
