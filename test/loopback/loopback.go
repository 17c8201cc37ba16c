// Package loopback hands tests addresses of their own on the loopback
// network. On Linux every address of 127.0.0.0/8 is local, so a test can
// listen on fixed ports (a load balancer's port 8080, a node port 30080) of
// an address nobody else uses instead of on 127.0.0.1, where any process
// may hold the port.
//
// Addresses come in blocks of 256 (a /24) out of 127.64.0.0/10, which the
// demo (127.0.1.0/24, 127.240.0.0/16) and the fake cloud's defaults stay
// clear of. A block is held by binding one UDP socket to its network
// address (127.a.b.0, port 65535): the kernel lets one socket at a time
// have it, in the whole network namespace, so two tests — of the same
// process, of two packages run in parallel, of two `go test` runs at once —
// never get the same block. The socket stays open until the process ends:
// a block is never handed out twice while the process that had it lives,
// so a test's straggling socket cannot meet the next user of its block.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
)

// blockRange is where blocks come from.
var blockRange = netip.MustParsePrefix("127.64.0.0/10")

// sentinelPort is the port of the socket that holds a block; tests must not
// use it on a block's network address.
const sentinelPort = 65535

var (
	mu   sync.Mutex
	next = -1 // index of the next block to try; random start per process
	held []*net.UDPConn
)

const blocks = 1 << (24 - 10) // /24s in blockRange

// Block is 256 loopback addresses, a.b.c.0/24, held by the calling process.
type Block struct{ prefix netip.Prefix }

// Reserve returns a block no other holder has. It fails t when every
// block is taken.
func Reserve(t testing.TB) Block {
	t.Helper()
	b, err := reserve()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reserve() (Block, error) {
	mu.Lock()
	defer mu.Unlock()
	if next < 0 {
		next = rand.IntN(blocks)
	}
	base := blockRange.Addr().As4()
	for range blocks {
		i := next
		next = (next + 1) % blocks
		a := base
		a[1] += byte(i >> 8)
		a[2] = byte(i)
		addr := netip.AddrFrom4(a)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, sentinelPort)))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue // someone else's
		}
		if err != nil {
			return Block{}, fmt.Errorf("reserving loopback block %s/24: %w", addr, err)
		}
		held = append(held, c)
		return Block{netip.PrefixFrom(addr, 24)}, nil
	}
	return Block{}, fmt.Errorf("every loopback block of %s is taken", blockRange)
}

// Prefix is the block, a /24.
func (b Block) Prefix() netip.Prefix { return b.prefix }

// String is the block in CIDR notation.
func (b Block) String() string { return b.prefix.String() }

// Addr returns the block's address with last byte host (1..254 for a
// host; 0 is the network address).
func (b Block) Addr(host byte) netip.Addr {
	a := b.prefix.Addr().As4()
	a[3] = host
	return netip.AddrFrom4(a)
}

// IP is Addr(host) as a string.
func (b Block) IP(host byte) string { return b.Addr(host).String() }

// AddrPort returns Addr(host) with port.
func (b Block) AddrPort(host byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(b.Addr(host), port)
}

// Sub returns the block's first addresses as a prefix of bits bits
// (bits >= 24), starting at Addr(first), which must be aligned to it.
func (b Block) Sub(first byte, bits int) netip.Prefix {
	return netip.PrefixFrom(b.Addr(first), bits).Masked()
}

// FreePort returns Addr(host) with a TCP port that is free there, for a
// process that must be told its listen address before it starts. The port
// is released before FreePort returns, but nothing else binds to the
// block's addresses; only a wildcard bind (0.0.0.0) of the same port in the
// meantime could take it.
func (b Block) FreePort(t testing.TB, host byte) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", b.AddrPort(host, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String())
}
