package liveness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format of a datagram, all integers big-endian:
//
//	magic    4 bytes  "XLB1"
//	kind     1 byte   1 heartbeat, 2 leave
//	instance 8 bytes  random, chosen when the speaker starts
//	seq      8 bytes  counts up within an instance
//	nameLen  1 byte
//	name     nameLen bytes (the node name)
//	mac      32 bytes HMAC-SHA256 of everything before it, only with a key
var magic = [4]byte{'X', 'L', 'B', '1'}

type kind byte

const (
	kindHeartbeat kind = 1
	kindLeave     kind = 2
)

const headerLen = 4 + 1 + 8 + 8 + 1

type message struct {
	kind     kind
	instance uint64
	seq      uint64
	node     string
}

func (m message) marshal(key []byte) ([]byte, error) {
	if len(m.node) == 0 || len(m.node) > 255 {
		return nil, fmt.Errorf("node name %q: length must be 1..255", m.node)
	}
	b := make([]byte, 0, headerLen+len(m.node)+sha256.Size)
	b = append(b, magic[:]...)
	b = append(b, byte(m.kind))
	b = binary.BigEndian.AppendUint64(b, m.instance)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = append(b, byte(len(m.node)))
	b = append(b, m.node...)
	if len(key) > 0 {
		mac := hmac.New(sha256.New, key)
		mac.Write(b)
		b = mac.Sum(b)
	}
	return b, nil
}

var (
	errNotOurs     = errors.New("not a speaker heartbeat")
	errBadLength   = errors.New("bad length")
	errBadKind     = errors.New("unknown message kind")
	errBadSigature = errors.New("missing or wrong HMAC signature")
)

func parseMessage(b, key []byte) (message, error) {
	if len(b) < headerLen || [4]byte(b[:4]) != magic {
		return message{}, errNotOurs
	}
	n := int(b[headerLen-1])
	body := headerLen + n
	want := body
	if len(key) > 0 {
		want += sha256.Size
	}
	if n == 0 || len(b) != want {
		return message{}, errBadLength
	}
	if len(key) > 0 {
		mac := hmac.New(sha256.New, key)
		mac.Write(b[:body])
		if !hmac.Equal(mac.Sum(nil), b[body:]) {
			return message{}, errBadSigature
		}
	}
	m := message{
		kind:     kind(b[4]),
		instance: binary.BigEndian.Uint64(b[5:13]),
		seq:      binary.BigEndian.Uint64(b[13:21]),
		node:     string(b[headerLen:body]),
	}
	if m.kind != kindHeartbeat && m.kind != kindLeave {
		return message{}, errBadKind
	}
	return m, nil
}
