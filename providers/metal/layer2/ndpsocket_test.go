package layer2

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// solicitationPacket builds an IPv6 packet carrying a neighbor solicitation
// for target from src to dst, with a correct checksum.
func solicitationPacket(t *testing.T, src, dst, target netip.Addr) []byte {
	t.Helper()
	icmp, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macClient}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(icmp))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(icmp)))
	b[6], b[7] = protoICMPv6, ndpHopLimit
	copy(b[8:24], src.AsSlice())
	copy(b[24:40], dst.AsSlice())
	b = append(b, icmp...)
	binary.BigEndian.PutUint16(b[ipv6HeaderLen+2:], icmpv6Checksum(b[8:24], b[24:40], b[ipv6HeaderLen:]))
	return b
}

func TestParseSolicitation(t *testing.T) {
	src := netip.MustParseAddr("2001:db8::100")
	good := solicitationPacket(t, src, vip6, vip6) // unicast, as a NUD probe
	mutate := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	tests := []struct {
		desc string
		b    []byte
		ok   bool
	}{
		{desc: "unicast probe for the address", b: good, ok: true},
		{desc: "multicast solicitation", b: solicitationPacket(t, src, netip.MustParseAddr("ff02::1:ff00:200"), vip6), ok: true},
		{desc: "hop limit below 255 (forwarded, maybe off-link)", b: mutate(7, 64)},
		{desc: "corrupted checksum", b: mutate(ipv6HeaderLen+2, good[ipv6HeaderLen+2]^0xff)},
		{desc: "corrupted target", b: mutate(ipv6HeaderLen+8+15, 0x99)},
		{desc: "ICMPv6 code not 0", b: mutate(ipv6HeaderLen+1, 1)},
		{desc: "not ICMPv6", b: mutate(6, 17)},
		{desc: "IPv4 version nibble", b: mutate(0, 4<<4)},
		{desc: "truncated", b: good[:len(good)-9]},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			msg, from, err := parseSolicitation(tc.b)
			if !tc.ok {
				if !errors.Is(err, errNotSolicitation) {
					t.Fatalf("parseSolicitation accepted it (err %v)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSolicitation: %v", err)
			}
			ns := msg.(*ndp.NeighborSolicitation)
			if ns.TargetAddress != vip6 || from != src {
				t.Errorf("got target %s from %s, want %s from %s", ns.TargetAddress, from, vip6, src)
			}
		})
	}
}

func TestSolicitationFilterAssembles(t *testing.T) {
	if _, err := solicitationFilter(); err != nil {
		t.Fatal(err)
	}
}
