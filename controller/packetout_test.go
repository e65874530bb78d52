package controller

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// TestPacketOutPort: the single-output packet-out is the bytes PacketOut sends for the same
// action, queues without waiting, and fails (queuing nothing) on a full queue, oversized
// data and a closed session.
func TestPacketOutPort(t *testing.T) {
	srv := NewServer(zap.NewNop(), Config{Session: SessionConfig{QueueLen: 2}})
	a, b := net.Pipe()
	defer b.Close()
	s := srv.newSession(zap.NewNop(), a, 1, 1) // no writer: the queue only fills
	frame := bytes.Repeat([]byte{0x5a}, 42)
	for range 2 {
		if err := s.PacketOutPort(ofproto.PortController, 7, frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PacketOutPort(ofproto.PortController, 7, frame); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	for range 2 {
		got := <-s.out
		xid := ofproto.HeaderOf(got).Xid
		want := ofproto.AppendPacketOut(nil, xid, ofproto.PortController, []ofproto.Action{ofproto.Output{Port: 7}}, frame)
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got  %x\n want %x", got, want)
		}
	}
	if err := s.PacketOutPort(1, 2, make([]byte, 0x10000)); !errors.Is(err, ofproto.ErrBadLength) || len(s.out) != 0 {
		t.Fatalf("oversized frame: %v, %d queued", err, len(s.out))
	}
	s.Close()
	if err := s.PacketOutPort(1, 2, frame); !errors.Is(err, ErrSessionClosed) || len(s.out) != 0 {
		t.Fatalf("closed session: %v, %d queued", err, len(s.out))
	}
}

// TestDecodePacketIn: decodePacketIn takes in_port from the match and Data from
// the message, and rejects a packet-in without in_port.
func TestDecodePacketIn(t *testing.T) {
	msg := ofproto.AppendPacketIn(nil, &ofproto.PacketIn{BufferID: ofproto.NoBuffer, TotalLen: 3, Reason: ofproto.ReasonAction,
		Table: 21, Cookie: 0xabc, Match: ofproto.Match{ofproto.Metadata(5), ofproto.InPort(9)}, Data: []byte{1, 2, 3}})
	pi, err := decodePacketIn(msg)
	if err != nil || pi.InPort != 9 || pi.Table != 21 || pi.Cookie != 0xabc || pi.TotalLen != 3 ||
		pi.BufferID != ofproto.NoBuffer || pi.Reason != ofproto.ReasonAction || !bytes.Equal(pi.Data, []byte{1, 2, 3}) {
		t.Fatalf("%+v %v", pi, err)
	}
	noPort := ofproto.AppendPacketIn(nil, &ofproto.PacketIn{Table: 21, Match: ofproto.Match{ofproto.Metadata(5)}})
	if _, err := decodePacketIn(noPort); !errors.Is(err, errMalformed) || !errors.Is(err, ofproto.ErrNoInPort) {
		t.Fatalf("no in_port: %v", err)
	}
}
