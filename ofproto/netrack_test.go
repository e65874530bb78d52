package ofproto

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

var (
	macA = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	macB = net.HardwareAddr{0xfa, 0x16, 0x3f, 0, 0, 2}
)

// typicalFlow is a typical DVR flow: 4 match fields, 3 actions and a goto.
func typicalFlow() Flow {
	return Flow{
		Table: 1, Priority: 4, Cookie: 0x8000000000000002,
		Match:   Match{InPort(3), VLANVID(101), EthDst(macA), EthSrc(macB)}.Canonical(),
		Actions: []Action{PopVLAN{}, SetEthSrc(macB), Output{Port: 3}},
		HasGoto: true, Goto: 2,
	}
}

func xm(f Field) ofp.XM {
	return ofp.XM{Class: ofp.XMClass(f.Class), Type: ofp.XMType(f.Type), Value: f.Value, Mask: f.Mask}
}

// netrackFlowMod builds the same flow-mod with github.com/netrack/openflow's ofp types.
func netrackFlowMod(f *Flow) *ofp.FlowMod {
	fields := make([]ofp.XM, len(f.Match))
	for i, m := range f.Match {
		fields[i] = xm(m)
	}
	var acts ofp.Actions
	for _, a := range f.Actions {
		switch a := a.(type) {
		case PopVLAN:
			acts = append(acts, &ofp.ActionPopVLAN{})
		case PushVLAN:
			acts = append(acts, &ofp.ActionPushVLAN{EtherType: a.EtherType})
		case SetField:
			acts = append(acts, &ofp.ActionSetField{Field: xm(a.Field)})
		case Output:
			acts = append(acts, &ofp.ActionOutput{Port: ofp.PortNo(a.Port), MaxLen: a.MaxLen})
		case Group:
			acts = append(acts, &ofp.ActionGroup{Group: ofp.Group(a.ID)})
		case DecNwTTL:
			acts = append(acts, &ofp.ActionDecNetworkTTL{})
		default:
			panic("netrack has no such action")
		}
	}
	ins := ofp.Instructions{}
	if f.Meter != 0 {
		ins = append(ins, &ofp.InstructionMeter{Meter: ofp.Meter(f.Meter)})
	}
	if len(acts) > 0 {
		ins = append(ins, &ofp.InstructionApplyActions{Actions: acts})
	}
	if f.HasMetadata {
		ins = append(ins, &ofp.InstructionWriteMetadata{Metadata: f.Metadata, MetadataMask: f.MetadataMask})
	}
	if f.HasGoto {
		ins = append(ins, &ofp.InstructionGotoTable{Table: ofp.Table(f.Goto)})
	}
	return &ofp.FlowMod{
		Cookie: f.Cookie, Table: ofp.Table(f.Table), Command: ofp.FlowAdd,
		IdleTimeout: f.IdleTimeout, HardTimeout: f.HardTimeout, Priority: f.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: fields},
		Instructions: ins,
	}
}

func netrackBytes(t testing.TB, fm *ofp.FlowMod, xid uint32) []byte {
	req := of.NewRequest(of.TypeFlowMod, fm)
	req.Header.Transaction = xid
	var buf bytes.Buffer
	if _, err := req.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFlowModMatchesNetrack: for flows netrack can express, our encoding is byte-for-byte
// netrack's.
func TestFlowModMatchesNetrack(t *testing.T) {
	typ := typicalFlow()
	flows := []Flow{
		typ,
		{Table: 0, Priority: 0},
		{Table: 3, Priority: 100, Cookie: 7, IdleTimeout: 5, HardTimeout: 60,
			Match: Match{EthType(EthTypeARP), ARPOp(1), ARPTPA(netip.MustParseAddr("10.0.0.1")),
				TunnelID(0x3e9), MetadataMasked(1, 0xff)}.Canonical(),
			Actions: []Action{SetTunnelID(0x3e9), SetTunDst(netip.MustParseAddr("192.168.248.4")),
				PushVLAN{EtherType: EthTypeVLAN}, SetVLANVID(5), Group{ID: 4}, DecNwTTL{},
				Output{Port: PortController, MaxLen: ControllerMaxLenNoBuffer}},
			Meter: 9, HasMetadata: true, Metadata: 5, MetadataMask: 0xff, HasGoto: true, Goto: 9},
		{Table: 2, Priority: 3, Match: Match{EthType(EthTypeIPv4),
			IPv4DstMasked(netip.MustParsePrefix("10.0.1.0/24")), Reg(0, 5), RegMasked(1, 3, 0xff)}.Canonical(),
			Actions: []Action{Output{Port: 2}}},
	}
	for _, f := range flows {
		got := AppendFlowMod(nil, 42, FlowAdd, &f, 0)
		want := netrackBytes(t, netrackFlowMod(&f), 42)
		if !bytes.Equal(got, want) {
			t.Errorf("flow %s:\n got  %x\n want %x", f.String(), got, want)
		}
	}
}

func BenchmarkAppendFlowMod(b *testing.B) {
	f := typicalFlow()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendFlowMod(buf[:0], uint32(i), FlowAdd, &f, 0)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendBundleAddFlowMod(b *testing.B) {
	f := typicalFlow()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendBundleAddFlowMod(buf[:0], uint32(i), 1, BundleAtomic|BundleOrdered, FlowAdd, &f, 0)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkNetrackFlowModWriteTo is the same flow-mod (header included) through netrack.
func BenchmarkNetrackFlowModWriteTo(b *testing.B) {
	f := typicalFlow()
	fm := netrackFlowMod(&f)
	var buf bytes.Buffer
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf.Reset()
		req := of.NewRequest(of.TypeFlowMod, fm)
		req.Header.Transaction = uint32(i)
		if _, err := req.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// BenchmarkNetrackFlowModBody is netrack's FlowMod.WriteTo alone (body, no header).
func BenchmarkNetrackFlowModBody(b *testing.B) {
	f := typicalFlow()
	fm := netrackFlowMod(&f)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if _, err := fm.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFlowMod(b *testing.B) {
	f := typicalFlow()
	msg := AppendFlowMod(nil, 1, FlowAdd, &f, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeFlowMod(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFlowStats(b *testing.B) {
	f := typicalFlow()
	st := make([]FlowStats, 400)
	for i := range st {
		st[i].Flow = f
		st[i].Flow.Priority = uint16(i)
	}
	msg := AppendFlowStatsReplies(nil, 1, st)
	_, _, body, err := DecodeMultipartReply(msg)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]FlowStats, 0, len(st))
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = DecodeFlowStats(dst[:0], body); err != nil || len(dst) != len(st) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(st)), "ns/flow")
}

func BenchmarkFlowKey(b *testing.B) {
	f := typicalFlow()
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Key()
	}
}
