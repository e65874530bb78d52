package ofproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/netrack/openflow/ofp"
)

// samplePacketIn is a packet-in as OVS sends it from the ARP responder: in_port among
// pipeline fields (metadata, a register, tunnel fields) and a tagged ARP frame.
func samplePacketIn(match Match) []byte {
	frame := []byte("\xff\xff\xff\xff\xff\xff\xfa\x16\x3e\x00\x00\x01\x81\x00\x00\x05\x08\x06 arp payload")
	return AppendPacketIn(nil, &PacketIn{Xid: 77, BufferID: NoBuffer, TotalLen: uint16(len(frame)), Reason: ReasonAction,
		Table: 21, Cookie: 0x0300000000000abc, Match: match, Data: frame})
}

func TestReadPacketInMatchesDecodePacketIn(t *testing.T) {
	matches := map[string]Match{
		"in_port only":  {InPort(9)},
		"in_port first": {InPort(0xfffffffe), Metadata(0x1234), Reg(6, 3)},
		"in_port last":  {TunnelID(0x3eb), TunIPv4Src(netip.MustParseAddr("192.168.1.1")), Reg(0, 1), InPort(4)},
		"padded 8":      {InPort(1), EthType(0x0806)},
	}
	for name, m := range matches {
		t.Run(name, func(t *testing.T) {
			msg := samplePacketIn(m)
			want, err := DecodePacketIn(msg)
			if err != nil {
				t.Fatal(err)
			}
			var got PacketInRef
			if err := ReadPacketIn(msg, &got); err != nil {
				t.Fatal(err)
			}
			if got.Xid != want.Xid || got.BufferID != want.BufferID || got.TotalLen != want.TotalLen ||
				got.Reason != want.Reason || got.Table != want.Table || got.Cookie != want.Cookie ||
				got.InPort != want.InPort() || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("ReadPacketIn %+v\nDecodePacketIn %+v (in_port %d)", got, want, want.InPort())
			}
			if len(got.Data) > 0 && &got.Data[len(got.Data)-1] != &msg[len(msg)-1] {
				t.Fatal("Data does not alias the message")
			}
		})
	}
}

func TestReadPacketInRejects(t *testing.T) {
	good := samplePacketIn(Match{Metadata(1), InPort(3)})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	setLen := func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(len(b))); return b }
	// The match of good is 4 + 12 + 8 = 24 bytes at offset 24; its first OXM is metadata.
	cases := map[string]struct {
		msg  []byte
		want error
	}{
		"empty":              {nil, ErrTruncated},
		"header only":        {setLen(append([]byte(nil), good[:8]...)), ErrBadLength},
		"no match":           {setLen(append([]byte(nil), good[:24]...)), ErrBadLength},
		"truncated":          {good[:len(good)-1], ErrBadLength},
		"length too long":    {mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+1)); return b }), ErrBadLength},
		"not a packet-in":    {mutate(func(b []byte) []byte { b[1] = byte(TypePacketOut); return b }), ErrMalformed},
		"version 1.0":        {mutate(func(b []byte) []byte { b[0] = 1; return b }), ErrMalformed},
		"OF1.0 match type":   {mutate(func(b []byte) []byte { b[25] = 0; return b }), ErrMalformed},
		"match length 3":     {mutate(func(b []byte) []byte { b[27] = 3; return b }), ErrBadLength},
		"match past end":     {mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[26:], uint16(len(b))); return b }), ErrBadLength},
		"no pad after match": {setLen(append([]byte(nil), good[:24+24+1]...)), ErrBadLength},
		"OXM past match":     {mutate(func(b []byte) []byte { b[28+3] = 40; return b }), ErrBadLength},
		"OXM header cut":     {mutate(func(b []byte) []byte { b[27] = 4 + 12 + 2; return b }), ErrTruncated},
		"in_port masked":     {mutate(func(b []byte) []byte { b[28+12+2] |= 1; return b }), ErrMalformed},
		"in_port 2 bytes": {setLen(append(append([]byte(nil), good[:24]...),
			0, 1, 0, 10, 0x80, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0)), ErrMalformed},
		"missing in_port": {samplePacketIn(Match{Metadata(1), EthType(0x806)}), ErrNoInPort},
		"empty match": {setLen(append(append([]byte(nil), good[:24]...),
			0, 1, 0, 4, 0, 0, 0, 0, 0, 0)), ErrNoInPort},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			before := PacketInRef{Xid: 1, InPort: 2}
			p := before
			err := ReadPacketIn(c.msg, &p)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if p.Xid != before.Xid || p.InPort != before.InPort || p.Data != nil {
				t.Fatalf("a rejected message changed the result: %+v", p)
			}
		})
	}
	// Every cut of a valid message, with its header length following or not, is rejected.
	for n := range len(good) - 2 - len(samplePacketInFrame(good)) {
		var p PacketInRef
		if err := ReadPacketIn(good[:n], &p); err == nil {
			t.Fatalf("%d-byte prefix accepted", n)
		}
		if n >= 8 {
			if err := ReadPacketIn(setLen(append([]byte(nil), good[:n]...)), &p); err == nil {
				t.Fatalf("%d-byte prefix with its length accepted", n)
			}
		}
	}
}

// samplePacketInFrame returns the frame of a packet-in made by samplePacketIn.
func samplePacketInFrame(msg []byte) []byte {
	p, err := DecodePacketIn(msg)
	if err != nil {
		panic(err)
	}
	return p.Data
}

// legacyPacketOut is the encoding the controller used before AppendPacketOutPort: the
// action list cut out of an encoded flow-mod.
func legacyPacketOut(xid, inPort uint32, actions []Action, data []byte) []byte {
	fm := AppendFlowMod(nil, 0, FlowAdd, &Flow{Actions: actions}, 0)
	acts := fm[48+8+8:] // fixed part, empty match, apply-actions header
	b := appendHeader(nil, TypePacketOut, xid)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, inPort)
	b = appendU16(b, uint16(len(acts)))
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, acts...)
	b = append(b, data...)
	return finish(b, 0)
}

func TestAppendPacketOutPortMatchesOtherEncoders(t *testing.T) {
	arp := make([]byte, 42)
	for i := range arp {
		arp[i] = byte(i * 7)
	}
	for _, c := range []struct {
		xid, in, out uint32
		data         []byte
	}{
		{1, PortController, 3, arp},
		{0xfffffff0, 7, PortInPort, nil},
		{42, PortController, 0xfffffffb, bytes.Repeat([]byte{0xab}, 1500)},
	} {
		prefix := []byte("previous message")
		got, err := AppendPacketOutPort(append([]byte(nil), prefix...), c.xid, c.in, c.out, c.data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(prefix)], prefix) {
			t.Fatal("prefix overwritten")
		}
		got = got[len(prefix):]
		acts := []Action{Output{Port: c.out}}
		if want := legacyPacketOut(c.xid, c.in, acts, c.data); !bytes.Equal(got, want) {
			t.Fatalf("against the flow-mod cut:\n got  %x\n want %x", got, want)
		}
		if want := AppendPacketOut(nil, c.xid, c.in, acts, c.data); !bytes.Equal(got, want) {
			t.Fatalf("against AppendPacketOut:\n got  %x\n want %x", got, want)
		}
		po, err := DecodePacketOut(got)
		if err != nil || po.Xid != c.xid || po.InPort != c.in || len(po.Actions) != 1 || po.Actions[0] != acts[0] || !bytes.Equal(po.Data, c.data) {
			t.Fatalf("decode: %+v %v", po, err)
		}
	}
	b := []byte("keep")
	got, err := AppendPacketOutPort(b, 1, 2, 3, make([]byte, MaxPacketOutPortData+1))
	if !errors.Is(err, ErrBadLength) || string(got) != "keep" {
		t.Fatalf("oversized data: %q %v", got, err)
	}
	if got, err := AppendPacketOutPort(nil, 1, 2, 3, make([]byte, MaxPacketOutPortData)); err != nil || len(got) != 0xffff {
		t.Fatalf("largest data: %d bytes, %v", len(got), err)
	}
}

func TestPacketInHotPathAllocs(t *testing.T) {
	msg := samplePacketIn(Match{Metadata(1), InPort(3)})
	buf := make([]byte, 0, 256)
	var p PacketInRef
	n := testing.AllocsPerRun(100, func() {
		if err := ReadPacketIn(msg, &p); err != nil {
			t.Fatal(err)
		}
		var err error
		if buf, err = AppendPacketOutPort(buf[:0], 1, PortController, p.InPort, p.Data); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per packet-in and packet-out", n)
	}
}

// FuzzReadPacketIn: ReadPacketIn never panics, its Data lies within the message, and where
// the full decoder also accepts the message both agree.
func FuzzReadPacketIn(f *testing.F) {
	f.Add(samplePacketIn(Match{InPort(9)}))
	f.Add(samplePacketIn(Match{Metadata(1), Reg(2, 3), InPort(4)}))
	f.Add(samplePacketIn(Match{Metadata(1)}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var p PacketInRef
		err := ReadPacketIn(msg, &p)
		full, ferr := DecodePacketIn(msg)
		if err != nil {
			if ferr == nil && !errors.Is(err, ErrNoInPort) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodePacketIn accepts what ReadPacketIn rejects: %v", err)
			}
			return
		}
		if len(p.Data) > len(msg) || (len(p.Data) > 0 && &p.Data[len(p.Data)-1] != &msg[len(msg)-1]) {
			t.Fatal("Data is not the end of the message")
		}
		if ferr == nil && (p.Table != full.Table || p.Cookie != full.Cookie || p.InPort != full.InPort() || !bytes.Equal(p.Data, full.Data)) {
			t.Fatalf("ReadPacketIn %+v, DecodePacketIn %+v", p, full)
		}
	})
}

// BenchmarkReadPacketIn and BenchmarkNetrackPacketIn compare the in-place packet-in reader
// with netrack's reflection decoder the controller used before.
func BenchmarkReadPacketIn(b *testing.B) {
	msg := samplePacketIn(Match{Metadata(1), InPort(3)})
	var p PacketInRef
	b.ReportAllocs()
	for b.Loop() {
		if err := ReadPacketIn(msg, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNetrackPacketIn(b *testing.B) {
	msg := samplePacketIn(Match{Metadata(1), InPort(3)})
	b.ReportAllocs()
	for b.Loop() {
		var p ofp.PacketIn
		if _, err := p.ReadFrom(bytes.NewReader(msg[8:])); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPacketOutPort and BenchmarkLegacyPacketOut compare the direct packet-out
// encoder with the action list cut from an encoded flow-mod.
func BenchmarkAppendPacketOutPort(b *testing.B) {
	frame := make([]byte, 42)
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendPacketOutPort(buf[:0], 1, PortController, 3, frame)
	}
}

func BenchmarkLegacyPacketOut(b *testing.B) {
	frame := make([]byte, 42)
	acts := []Action{Output{Port: 3}}
	b.ReportAllocs()
	for b.Loop() {
		legacyPacketOut(1, PortController, acts, frame)
	}
}
