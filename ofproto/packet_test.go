package ofproto

import (
	"bytes"
	"net/netip"
	"testing"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

func TestPacketOutMatchesNetrack(t *testing.T) {
	frame := []byte("\xff\xff\xff\xff\xff\xff\xfa\x16\x3e\x00\x00\x01\x08\x06 some arp")
	acts := []Action{SetEthSrc(macA), Output{Port: 3}}
	got := AppendPacketOut(nil, 9, PortController, acts, frame)
	req := of.NewRequest(of.TypePacketOut, &ofp.PacketOut{
		Buffer: ofp.NoBuffer, InPort: ofp.PortController, Data: frame,
		Actions: ofp.Actions{&ofp.ActionSetField{Field: xm(SetEthSrc(macA).Field)}, &ofp.ActionOutput{Port: 3}},
	})
	req.Header.Transaction = 9
	var want bytes.Buffer
	if _, err := req.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("\n got  %x\n want %x", got, want.Bytes())
	}
	po, err := DecodePacketOut(got)
	if err != nil || po.InPort != PortController || po.BufferID != NoBuffer || !bytes.Equal(po.Data, frame) ||
		len(po.Actions) != 2 || po.Actions[0].String() != acts[0].String() || po.Actions[1] != acts[1] {
		t.Fatalf("decode: %+v %v", po, err)
	}
	// Nicira actions, which netrack cannot encode, go through too.
	nx := []Action{SetTunDst(netip.MustParseAddr("192.168.1.1")), RegMove{Src: RefEthSrc, Dst: RefEthDst, NBits: 48}, Output{Port: PortInPort}}
	po, err = DecodePacketOut(AppendPacketOut(nil, 1, 5, nx, nil))
	if err != nil || len(po.Actions) != 3 || po.Actions[1] != nx[1] || len(po.Data) != 0 {
		t.Fatalf("nicira packet-out: %+v %v", po, err)
	}
	for _, bad := range [][]byte{got[:20], append(append([]byte(nil), got[:16]...), 0xff, 0xff)} {
		b := append([]byte(nil), bad...)
		b[2], b[3] = 0, byte(len(b))
		if _, err := DecodePacketOut(b); err == nil {
			t.Errorf("bad packet-out %x decoded", b)
		}
	}
}

func TestPacketInRoundTrip(t *testing.T) {
	in := PacketIn{Xid: 0, BufferID: NoBuffer, TotalLen: 14, Reason: ReasonAction, Table: 3, Cookie: 0x42,
		Match: Match{InPort(7), TunnelID(5), Reg(0, 1)}.Canonical(), Data: []byte("0123456789abcd")}
	msg := AppendPacketIn(nil, &in)
	got, err := DecodePacketIn(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.InPort() != 7 || got.Table != 3 || got.Cookie != 0x42 || got.Reason != ReasonAction ||
		!got.Match.Equal(in.Match) || !bytes.Equal(got.Data, in.Data) || got.TotalLen != 14 {
		t.Fatalf("got %+v", got)
	}
	// netrack decodes our packet-in identically.
	var p ofp.PacketIn
	if _, err := p.ReadFrom(bytes.NewReader(msg[8:])); err != nil {
		t.Fatal(err)
	}
	if uint64(p.Cookie) != in.Cookie || uint8(p.Table) != in.Table || !bytes.Equal(p.Data, in.Data) || len(p.Match.Fields) != 3 {
		t.Fatalf("netrack reads %+v", p)
	}
	for n := 8; n < len(msg)-len(in.Data); n++ {
		b := append([]byte(nil), msg[:n]...)
		b[2], b[3] = 0, byte(n)
		if _, err := DecodePacketIn(b); err == nil {
			t.Errorf("packet-in truncated to %d bytes decoded", n)
		}
	}
}

func TestDecodeError(t *testing.T) {
	req := AppendFlowMod(nil, 77, FlowAdd, new(typicalFlow()), 0)
	msg := []byte{4, 1, 0, 0, 0, 0, 0, 77, 0, 5, 0, 1}
	msg = append(msg, req[:64]...)
	msg[3] = byte(len(msg))
	e, err := DecodeError(msg)
	if err != nil || e.Xid != 77 || e.Type != ErrTypeFlowModFailed || e.Code != 1 || !bytes.Equal(e.Data, req[:64]) {
		t.Fatalf("%+v %v", e, err)
	}
	if s := e.Error(); s != "OFPT_ERROR FLOW_MOD_FAILED code 1 (xid 77)" {
		t.Fatalf("Error() = %q", s)
	}
	if _, err := DecodeError(msg[:10]); err == nil {
		t.Fatal("short error decoded")
	}
}
