package ofproto

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// A packed flow encodes the same flow-mod bytes as the flow (those of ovs-ofctl, from the
// fixtures), unpacks to an equal flow, and compares by bytes like SameInstructions.
func TestPackedFlowRoundTrip(t *testing.T) {
	flows := readLines(t, "flows.txt")
	mods := readHex(t, "flowmods.hex")
	for i, line := range flows {
		f := mustParse(t, line)
		f.Match = f.Match.Canonical()
		p := Pack(&f)
		want := AppendFlowMod(nil, 7, FlowAdd, &f, binary.BigEndian.Uint16(mods[i][44:]))
		if got := p.AppendFlowMod(nil, 7, FlowAdd, binary.BigEndian.Uint16(mods[i][44:])); !bytes.Equal(got, want) {
			t.Errorf("%q: packed flow-mod\n got  %x\n want %x", line, got, want)
		}
		for _, cmd := range []FlowModCommand{FlowDeleteStrict, FlowModifyStrict} {
			if got, want := p.AppendFlowMod(nil, 9, cmd, 0), AppendFlowMod(nil, 9, cmd, &f, 0); !bytes.Equal(got, want) {
				t.Errorf("%q: packed %v\n got  %x\n want %x", line, cmd, got, want)
			}
		}
		u, err := p.Unpack()
		if err != nil {
			t.Fatalf("%q: unpack: %v", line, err)
		}
		if !u.Equal(&f) || u.String() != f.String() || p.String() != f.String() {
			t.Errorf("%q: unpacked to %s", line, u.String())
		}
		q := Pack(&u)
		if p != q {
			t.Errorf("%q: repacked differs", line)
		}
		g := f
		g.Cookie++
		if r := Pack(&g); p == r {
			t.Errorf("%q: another cookie compares the same", line)
		}
	}
}

func TestPackedFlowRejectsGarbage(t *testing.T) {
	p := PackedFlow{Key: FlowKey{Match: "\x80\x00"}}
	if _, err := p.Unpack(); err == nil {
		t.Error("truncated match unpacked")
	}
	p = PackedFlow{Instructions: "\x00\x04\x00\x03"}
	if _, err := p.Unpack(); err == nil {
		t.Error("truncated instructions unpacked")
	}
}

func BenchmarkPack(b *testing.B) {
	f := typicalFlow()
	for b.Loop() {
		Pack(&f)
	}
}
