package ofsim

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// trickle writes b in pieces of n bytes, so that messages straddle reads.
func trickle(t *testing.T, c net.Conn, b []byte, n int) {
	t.Helper()
	for len(b) > 0 {
		k := min(n, len(b))
		if _, err := c.Write(b[:k]); err != nil {
			t.Errorf("write: %v", err)
			return
		}
		b = b[k:]
	}
}

func TestTapTakesMessagesAcrossReads(t *testing.T) {
	for _, piece := range []int{1, 3, 8, 13, 1 << 16} {
		ctl, sw := net.Pipe()
		var taken []ofproto.MsgType
		tap := NewTap(sw, func(msg []byte) bool {
			taken = append(taken, ofproto.MsgType(msg[1]))
			return ofproto.MsgType(msg[1]) == ofproto.TypePacketOut
		})
		afterAt := -1 // how many messages take had seen at the last After
		tap.After = func() { afterAt = len(taken) }
		hello := ofproto.AppendHello(nil, 1, 1<<ofproto.Version)
		po := ofproto.Begin(nil, ofproto.TypePacketOut, 7)
		po = append(po, make([]byte, 16)...)
		po = append(po, bytes.Repeat([]byte{0xab}, 300)...)
		po = ofproto.Finish(po, 0)
		barrier := ofproto.Finish(ofproto.Begin(nil, ofproto.TypeBarrierRequest, 9), 0)
		var stream []byte
		stream = append(stream, hello...)
		stream = append(stream, po...)
		stream = append(stream, barrier...)
		stream = append(stream, po...)
		go func() {
			trickle(t, ctl, stream, piece)
			_ = ctl.Close()
		}()
		got, err := io.ReadAll(tap)
		if err != nil && err != io.EOF {
			t.Fatalf("piece %d: read: %v", piece, err)
		}
		want := append(append([]byte{}, hello...), barrier...)
		if !bytes.Equal(got, want) {
			t.Fatalf("piece %d: the switch read %x, want %x", piece, got, want)
		}
		wantTaken := []ofproto.MsgType{ofproto.TypeHello, ofproto.TypePacketOut, ofproto.TypeBarrierRequest, ofproto.TypePacketOut}
		if len(taken) != len(wantTaken) {
			t.Fatalf("piece %d: take saw %v, want %v", piece, taken, wantTaken)
		}
		for i := range taken {
			if taken[i] != wantTaken[i] {
				t.Fatalf("piece %d: take saw %v, want %v", piece, taken, wantTaken)
			}
		}
		if afterAt != len(wantTaken) {
			t.Fatalf("piece %d: the last After came after %d messages, want %d", piece, afterAt, len(wantTaken))
		}
	}
}

func TestTapRefusesBadLength(t *testing.T) {
	ctl, sw := net.Pipe()
	tap := NewTap(sw, func([]byte) bool { return false })
	bad := ofproto.Begin(nil, ofproto.TypeHello, 1)
	binary.BigEndian.PutUint16(bad[2:], 4) // shorter than a header
	go func() { _, _ = ctl.Write(bad); _ = ctl.Close() }()
	if _, err := io.ReadAll(tap); err == nil {
		t.Fatal("a message length of 4 was accepted")
	}
}

func TestAppendPacketInMatchesSendPacketIn(t *testing.T) {
	ctl, sw := net.Pipe()
	s := New(zap.NewNop(), Config{DPID: 1})
	s.sessions = []*session{{c: sw, role: roleEqual}}
	data := []byte{1, 2, 3, 4, 5}
	go func() { _ = s.SendPacketIn(21, 0xd703000000000000, 4, data) }()
	buf := make([]byte, 256)
	n, err := io.ReadAtLeast(ctl, buf, 8)
	if err != nil {
		t.Fatal(err)
	}
	if l := int(binary.BigEndian.Uint16(buf[2:])); n < l {
		if _, err := io.ReadFull(ctl, buf[n:l]); err != nil {
			t.Fatal(err)
		}
		n = l
	}
	if want := AppendPacketIn(nil, 21, 0xd703000000000000, 4, data); !bytes.Equal(buf[:n], want) {
		t.Fatalf("SendPacketIn sent %x, AppendPacketIn gives %x", buf[:n], want)
	}
}
