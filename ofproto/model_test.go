package ofproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// TestRequestsMatchOVS: flow-stats requests and deletes equal what ovs-ofctl sent for
// testdata/requests.txt.
func TestRequestsMatchOVS(t *testing.T) {
	reqs := readHex(t, "requests.hex")
	cases := []struct {
		name string
		enc  func(xid uint32) []byte
	}{
		{"dump table=2,cookie=0x5/-1", func(x uint32) []byte {
			return AppendFlowStatsRequest(nil, x, 2, 5, ^uint64(0), nil)
		}},
		{"dump cookie=0x8.../0x8...", func(x uint32) []byte {
			return AppendFlowStatsRequest(nil, x, TableAll, 1<<63, 1<<63, nil)
		}},
		{"dump table=1,in_port=3", func(x uint32) []byte {
			return AppendFlowStatsRequest(nil, x, 1, 0, 0, Match{InPort(3)})
		}},
		{"strict delete", func(x uint32) []byte {
			f := mustParse(t, "table=1,priority=4,dl_vlan=101,dl_dst=fa:16:3e:00:00:01 actions=drop")
			return AppendFlowDelete(nil, x, f.Table, f.Priority, f.Match, 0, 0, true)
		}},
		{"delete by cookie", func(x uint32) []byte {
			return AppendFlowDelete(nil, x, TableAll, DefaultPriority, nil, 1<<63, 0xf<<60, false)
		}},
		{"strict delete with cookie", func(x uint32) []byte {
			f := mustParse(t, "cookie=0x8,table=4,priority=5,ip,dl_vlan=101,nw_dst=10.0.1.0/24 actions=drop")
			return AppendFlowDelete(nil, x, f.Table, f.Priority, f.Match, f.Cookie, ^uint64(0), true)
		}},
	}
	if len(reqs) != len(cases) {
		t.Fatalf("%d requests in fixture, %d cases", len(reqs), len(cases))
	}
	for i, c := range cases {
		want := reqs[i]
		if got := c.enc(binary.BigEndian.Uint32(want[4:])); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %x\n want %x", c.name, got, want)
		}
	}
	// The strict delete decodes as such (the fake switch relies on it).
	fm, err := DecodeFlowMod(reqs[5])
	if err != nil || fm.Command != FlowDeleteStrict || fm.CookieMask != ^uint64(0) || fm.Flow.Cookie != 8 {
		t.Fatalf("decode strict delete: %+v, %v", fm, err)
	}
}

func TestMatchCanonicalAndKey(t *testing.T) {
	mac := macA
	a := Match{EthDst(mac), Metadata(1), Reg(2, 7), InPort(4), VLANVID(10)}
	b := Match{InPort(4), Reg(2, 7), VLANVID(10), Metadata(1), EthDst(mac)}
	fa := Flow{Table: 1, Priority: 5, Match: a}
	fb := Flow{Table: 1, Priority: 5, Match: b}
	if fa.Key() != fb.Key() {
		t.Fatal("key depends on field order")
	}
	if !a.Equal(Match{EthDst(mac), Metadata(1), Reg(2, 7), InPort(4), VLANVID(10)}) {
		t.Fatal("Key modified the flow's match")
	}
	a.Canonical()
	b.Canonical()
	if !a.Equal(b) {
		t.Fatal("canonical orders differ")
	}
	want := []uint8{OXMInPort, OXMEthDst, OXMVLANVID, NXMReg0 + 2, OXMMetadata}
	for i, f := range a {
		if f.Type != want[i] {
			t.Fatalf("canonical order %v", a)
		}
	}
	if !a.Has(ClassNXM1, 2) || a.Has(ClassNXM1, 3) || !a.Has(ClassBasic, OXMInPort) {
		t.Fatal("Has")
	}
	for _, g := range []Flow{
		{Table: 2, Priority: 5, Match: b},
		{Table: 1, Priority: 6, Match: b},
		{Table: 1, Priority: 5, Match: Match{InPort(4)}},
		{Table: 1, Priority: 5, Match: Match{InPort(4), Reg(2, 7), VLANVID(11), Metadata(1), EthDst(mac)}},
	} {
		if g.Key() == fa.Key() {
			t.Errorf("%s has the key of %s", g.String(), fa.String())
		}
	}
	// An all-ones mask is an exact match, as OVS reports it back.
	full := Flow{Table: 1, Priority: 5, Match: Match{InPort(4), Reg(2, 7), VLANVID(10), MetadataMasked(1, ^uint64(0)), EthDst(mac)}}
	if full.Key() != fa.Key() {
		t.Fatal("all-ones mask changes the key")
	}
	if m := (Match{RegMasked(1, 5, 0xffffffff)}).Canonical(); m[0].Mask != nil {
		t.Fatal("Canonical kept an all-ones mask")
	}
	keys := map[FlowKey]bool{fa.Key(): true}
	if !keys[fb.Key()] {
		t.Fatal("key not usable as map key")
	}
}

func TestSameInstructions(t *testing.T) {
	base := typicalFlow()
	if c := base; !base.SameInstructions(&c) {
		t.Fatal("a flow differs from its copy")
	}
	mut := []func(f *Flow){
		func(f *Flow) { f.Actions = f.Actions[:2] },
		func(f *Flow) { f.Actions = []Action{PopVLAN{}, SetEthSrc(macA), Output{Port: 3}} },
		func(f *Flow) { f.Actions = []Action{PopVLAN{}, SetEthSrc(macB), Output{Port: 4}} },
		func(f *Flow) { f.Goto = 3 },
		func(f *Flow) { f.HasGoto = false },
		func(f *Flow) { f.Meter = 1 },
		func(f *Flow) { f.HasMetadata, f.Metadata, f.MetadataMask = true, 1, 1 },
		func(f *Flow) { f.OtherInstructions = []byte{0, 5, 0, 8, 0, 0, 0, 0} },
	}
	for i, m := range mut {
		g := typicalFlow()
		m(&g)
		if base.SameInstructions(&g) {
			t.Errorf("mutation %d not detected", i)
		}
	}
	g := typicalFlow()
	g.Cookie, g.IdleTimeout = 99, 5
	if !base.SameInstructions(&g) {
		t.Error("cookie or timeout compared as instructions")
	}
	if base.Equal(&g) {
		t.Error("Equal ignores the cookie")
	}
}

func TestStringParseRoundTrip(t *testing.T) {
	ip := netip.MustParseAddr
	flows := []Flow{
		typicalFlow(),
		{Priority: 0},
		{Table: 9, Priority: DefaultPriority, Match: Match{InPort(PortLocal)}, Actions: []Action{Output{Port: PortNormal}}},
		{Table: 2, Priority: 10, Cookie: 0xabc, Match: Match{EthType(EthTypeARP), VLANVID(101), ARPTPA(ip("10.0.0.1")), ARPOp(1)}.Canonical(),
			Actions: []Action{RegMove{Src: RefEthSrc, Dst: RefEthDst, NBits: 48}, SetARPOp(2), SetARPSHA(macA), SetARPSPA(ip("10.0.0.1")),
				RegMove{Src: RefARPSHA, Dst: RefARPTHA, NBits: 48}, Output{Port: PortInPort}}},
		{Table: 3, Priority: 1, Match: Match{TunnelID(1001), TunIPv4Dst(ip("192.168.0.1"))}.Canonical(),
			Actions: []Action{PushVLAN{EtherType: EthTypeVLAN}, SetVLANVID(5), SetTunnelID(7), SetTunDst(ip("192.168.248.4")), Group{ID: 3}, DecNwTTL{}},
			Meter:   2, HasMetadata: true, Metadata: 1, MetadataMask: ^uint64(0), HasGoto: true, Goto: 4},
		{Table: 4, Priority: 2, IdleTimeout: 10, HardTimeout: 20, Match: Match{EthType(EthTypeIPv4), IPProto(6),
			IPv4SrcMasked(netip.MustParsePrefix("10.0.0.0/8")), TCPDst(443)}.Canonical(),
			Actions: []Action{Output{Port: PortController, MaxLen: 128}}},
		{Table: 5, Priority: 3, Match: Match{VLANNone(), EthDstMasked(macA, []byte{1, 0, 0, 0, 0, 0}), RegMasked(3, 0x10, 0xf0), MetadataMasked(2, 3)}.Canonical(),
			Actions: []Action{RegMove{Src: RefReg(0), Dst: FieldRef{Class: ClassNXM1, Type: 1, Bytes: 4, Ofs: 16}, NBits: 16}}},
		{Table: 6, Priority: 4, Match: Match{EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(135)}.Canonical(), Actions: []Action{Output{Port: PortFlood}}},
		{Table: 6, Priority: 5, Match: Match{EthType(EthTypeIPv4), IPProto(1), ICMPv4Type(8)}.Canonical()},
		{Table: 7, Priority: 6, Match: Match{EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(135), NDTarget(ip("2001:db8::f816:3eff:fe00:1")),
			IPv6Src(ip("fe80::1"))}.Canonical(), Actions: []Action{Output{Port: PortController, MaxLen: ControllerMaxLenNoBuffer}}},
		{Table: 7, Priority: 7, Match: Match{EthType(EthTypeIPv6), IPv6SrcMasked(netip.MustParsePrefix("2001:db8:1::/64")),
			IPv6Dst(ip("ff02::2"))}.Canonical()},
		// The firewall's IPv6 flows: conntrack, rules by prefix, port mask and ICMPv6 type
		// and code, advertisements for a prefix of targets.
		{Table: 11, Priority: 65, Match: Match{Reg(5, 10), EthType(EthTypeIPv6), EthSrc(macA), IPv6Src(ip("2001:db8:1::5"))}.Canonical(),
			Actions: []Action{CT{ZoneSrc: FieldRef{Class: ClassNXM1, Type: NXMReg0 + 6, Bytes: 4}, HasTable: true, Table: 12}}},
		{Table: 12, Priority: 70, Match: Match{Reg(5, 10), CTState(CTTrk|CTNew, CTTrk|CTNew|CTEst), EthType(EthTypeIPv6), IPProto(6),
			IPv6DstMasked(netip.MustParsePrefix("2001:db8::/48")), TCPDstMasked(0x1388, 0xfff8)}.Canonical(), HasGoto: true, Goto: 13},
		{Table: 12, Priority: 70, Match: Match{Reg(5, 10), EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(128), ICMPv6Code(0)}.Canonical(), HasGoto: true, Goto: 13},
		{Table: 12, Priority: 40, Match: Match{CTState(CTEst, CTEst), EthType(EthTypeIPv6)}.Canonical(),
			Actions: []Action{CT{Commit: true, ZoneSrc: FieldRef{Class: ClassNXM1, Type: NXMReg0 + 6, Bytes: 4}, Actions: []Action{SetCTMark(1)}}}},
		{Table: 12, Priority: 71, Match: Match{EthType(EthTypeIPv6), IPv6SrcMasked(netip.MustParsePrefix("2001:db8:1::/126"))}.Canonical(),
			Actions: []Action{Conjunction{ID: 3, Clause: 0, NClauses: 2}}},
		{Table: 11, Priority: 95, Match: Match{Reg(5, 10), EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(136),
			NDTargetMasked(netip.MustParsePrefix("2001:db8:1:0:8000::/65"))}.Canonical(), HasGoto: true, Goto: 21},
	}
	for _, f := range flows {
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", f.String(), err)
			continue
		}
		s := f.String()
		p, err := ParseFlow(s)
		if err != nil {
			t.Errorf("parse %q: %v", s, err)
			continue
		}
		if !p.Equal(&f) || !p.Match.Equal(f.Match) {
			t.Errorf("round trip of %q gave %q", s, p.String())
		}
		// And through the wire.
		fm, err := DecodeFlowMod(AppendFlowMod(nil, 1, FlowModifyStrict, &f, FlagSendFlowRem))
		if err != nil || !fm.Flow.Equal(&f) || fm.Command != FlowModifyStrict || fm.Flags != FlagSendFlowRem {
			t.Errorf("wire round trip of %q: %v %s", s, err, fm.Flow.String())
		}
	}
}

func TestParseFlowWildcards(t *testing.T) {
	f := mustParse(t, "ip,nw_dst=0.0.0.0/0,reg0=0x5/0xffffffff actions=drop")
	want := Match{EthType(EthTypeIPv4), Reg(0, 5)}.Canonical()
	if !f.Match.Equal(want) {
		t.Fatalf("got %s", f.String())
	}
}

func TestFormatNames(t *testing.T) {
	f := Flow{Table: 0, Priority: 1, Cookie: 2, Match: Match{InPort(1)}, HasGoto: true, Goto: 3}
	got := f.Format(TableNames{0: "LOCAL_SWITCHING"})
	if want := "cookie=0x2, table=LOCAL_SWITCHING, priority=1,in_port=1 actions=goto_table:3"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got, want := f.String(), "cookie=0x2, priority=1,in_port=1 actions=goto_table:3"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseFlowErrors(t *testing.T) {
	bad := []string{
		"",
		"priority=1",
		"priority=1 action=drop",
		"priority=x actions=drop",
		"priority=70000 actions=drop",
		"table=256 actions=drop",
		"table=255 actions=drop",
		"in_port=3,in_port=4 actions=drop",
		"bogus=1 actions=drop",
		"frobnicate actions=drop",
		"dl_src=fa:16:3e actions=drop",
		"arp_tpa=10.0.0.1 actions=drop",
		"ip,arp_tpa=10.0.0.1 actions=drop",
		"tp_dst=80 actions=drop",
		"ip,tp_dst=80 actions=drop",
		"icmp_type=8 actions=drop",
		"nw_dst=10.0.0.0/33,ip actions=drop",
		"ip,nw_dst=fd00::1 actions=drop",
		"dl_vlan_pcp=3 actions=drop",
		"vlan_tci=0x1234 actions=drop",
		"actions=output:x",
		"actions=output:0",
		"actions=frob",
		"table=1 actions=goto_table:1",
		"table=2 actions=goto_table:3,output:1",
		"actions=set_field:1->nosuch",
		"actions=set_field:1",
		"actions=set_field:5->vlan_vid",
		"actions=pop_vlan",
		"actions=move:NXM_OF_ETH_SRC[]->NXM_NX_REG0[]",
		"actions=move:NXM_NX_REG0[0..40]->NXM_NX_REG1[]",
		"actions=move:NOPE[]->NXM_NX_REG1[]",
		"actions=meter:0",
		"actions=output:1,meter:1",
		"actions=write_metadata:0x1/0x0",
		"actions=drop,output:1",
		"actions=load:1->NXM_NX_REG0[]",
		"actions=push_vlan:0x0800",
	}
	for _, s := range bad {
		if f, err := ParseFlow(s); err == nil {
			t.Errorf("ParseFlow(%q) = %s, want an error", s, f.String())
		}
	}
}

func TestValidate(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	bad := []Flow{
		{Table: TableAll},
		{Match: Match{{Class: ClassBasic, Type: OXMInPort, Value: []byte{1, 2}}}},
		{Match: Match{{Class: ClassBasic, Type: OXMEthDst, Value: macA, Mask: []byte{1}}}},
		{Match: Match{{Class: ClassBasic, Type: OXMEthDst, Value: macA, Mask: make([]byte, 6)}}},
		{Match: Match{{Class: 0x1234, Type: 1}}},
		{Match: Match{ARPTPA(ip)}},
		{Match: Match{EthType(EthTypeIPv4), ARPTPA(ip)}},
		{Match: Match{EthType(EthTypeIPv4), TCPDst(80)}},
		{Match: Match{EthType(EthTypeIPv6), IPProto(1), ICMPv4Type(8)}},
		{Match: Match{InPort(1), InPort(1)}},
		{Table: 3, HasGoto: true, Goto: 3},
		{HasMetadata: true, Metadata: 3, MetadataMask: 1},
		{Actions: []Action{Output{Port: 0}}},
		{Actions: []Action{Output{Port: PortAny}}},
		{Actions: []Action{SetVLANVID(4)}},
		{Actions: []Action{PopVLAN{}}},
		{Match: Match{VLANVID(3)}, Actions: []Action{PopVLAN{}, SetVLANVID(4)}},
		{Actions: []Action{SetARPOp(2)}},
		{Actions: []Action{SetField{Field: MetadataMasked(1, 1)}}},
		{Actions: []Action{RegMove{Src: RefReg(0), Dst: RefReg(1)}}},
		{Actions: []Action{RegMove{Src: RefEthSrc, Dst: RefReg(1), NBits: 48}}},
		{Actions: []Action{RawAction{Bytes: []byte{0, 1, 0, 16}}}},
		{Match: Match{RegMasked(1, 0, 0)}},
		{Match: Match{EthType(EthTypeIPv4), IPv4DstMasked(netip.MustParsePrefix("0.0.0.0/0"))}},
		{Match: Match{EthType(EthTypeIPv6), IPProto(58), NDTarget(netip.MustParseAddr("2001:db8::1"))}},
		{Match: Match{EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(134), NDTarget(netip.MustParseAddr("2001:db8::1"))}},
	}
	for i, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("case %d (%s): no error", i, f.String())
		}
	}
	good := []Flow{
		typicalFlow(),
		{Match: Match{EthType(EthTypeARP), ARPTPA(ip)}, Actions: []Action{SetARPOp(2)}},
		{Actions: []Action{PushVLAN{EtherType: EthTypeVLAN}, SetVLANVID(4)}},
		{Match: Match{VLANVID(3), {Class: ClassBasic, Type: OXMVLANPCP, Value: []byte{3}}}},
		{Table: 1, HasGoto: true, Goto: 2, Actions: []Action{RegMove{Src: RefReg(0), Dst: RefReg(1), NBits: 32}}},
		{Match: Match{EthType(EthTypeIPv6), IPProto(58), ICMPv6Type(136), NDTarget(netip.MustParseAddr("2001:db8::1"))}},
	}
	for i, f := range good {
		if err := f.Validate(); err != nil {
			t.Errorf("good case %d (%s): %v", i, f.String(), err)
		}
	}
}

// TestDecodeKeepsUnknownActions: an unknown experimenter action in the middle of an action
// list is kept verbatim and decoding goes on to the actions after it.
func TestDecodeKeepsUnknownActions(t *testing.T) {
	// NXAST_RESUBMIT_TABLE (subtype 14) to table 12, as OVS encodes resubmit(,12).
	resubmit := []byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 14, 0xff, 0xf8, 12, 0, 0, 0}
	f := Flow{Table: 1, Priority: 2, Actions: []Action{PopVLAN{}, RawAction{Bytes: resubmit}, Output{Port: 3}}}
	msg := AppendFlowStatsReplies(nil, 7, []FlowStats{{Flow: f, PacketCount: 3}})
	_, _, body, err := DecodeMultipartReply(msg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFlowStatsReply(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Actions) != 3 || !got[0].Equal(&f) {
		t.Fatalf("got %+v", got)
	}
	if ra, ok := got[0].Actions[1].(RawAction); !ok || !bytes.Equal(ra.Bytes, resubmit) {
		t.Fatalf("raw action %v", got[0].Actions[1])
	}
	// The decoded flow does not alias the input.
	for i := range body {
		body[i] = 0xee
	}
	if !got[0].Equal(&f) {
		t.Fatal("decoded flow aliases the reply buffer")
	}
}

func TestFlowStatsRepliesSplit(t *testing.T) {
	f := typicalFlow()
	st := make([]FlowStats, 1000)
	for i := range st {
		st[i].Flow = f
		st[i].Flow.Priority = uint16(i)
	}
	out := AppendFlowStatsReplies(nil, 9, st)
	r := bufio.NewReader(bytes.NewReader(out))
	var n, msgs int
	for {
		_, msg, err := ReadMessage(r, nil)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		_, flags, body, err := DecodeMultipartReply(msg)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := DecodeFlowStatsReply(body)
		if err != nil {
			t.Fatal(err)
		}
		for i := range fl {
			if fl[i].Priority != uint16(n+i) {
				t.Fatalf("flow %d has priority %d", n+i, fl[i].Priority)
			}
		}
		n += len(fl)
		if more := flags&MultipartReplyMore != 0; more != (n < len(st)) {
			t.Fatalf("message %d: more=%v after %d flows", msgs, more, n)
		}
	}
	if n != len(st) || msgs < 2 {
		t.Fatalf("%d flows in %d messages", n, msgs)
	}
	empty := AppendFlowStatsReplies(nil, 1, nil)
	if _, flags, body, err := DecodeMultipartReply(empty); err != nil || flags != 0 || len(body) != 0 {
		t.Fatalf("empty reply: %x", empty)
	}
}

func TestReadMessageErrors(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{"\x04\x0e\x00\x04\x00\x00\x00\x01", ErrBadLength},
		{"\x04\x0e\x00\x00\x00\x00\x00\x01", ErrBadLength},
		{"\x01\x0e\x00\x08\x00\x00\x00\x01", ErrBadVersion},
		{"\x04\x0e\x00\x10\x00\x00\x00\x01\x00", ErrTruncated},
		{"\x04\x0e\x00", ErrTruncated},
		{"\x04\x0e\xff\xff\x00\x00\x00\x01", io.ErrUnexpectedEOF},
		{"", io.EOF},
	}
	for _, c := range cases {
		_, _, err := ReadMessage(bufio.NewReader(strings.NewReader(c.in)), nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%x: %v, want %v", c.in, err, c.want)
		}
	}
	// A HELLO of another version is returned so the session can refuse it properly.
	h, msg, err := ReadMessage(bufio.NewReader(strings.NewReader("\x01\x00\x00\x08\x00\x00\x00\x05")), nil)
	if err != nil || h.Version != 1 || h.Type != TypeHello || len(msg) != 8 {
		t.Fatalf("old hello: %+v %v", h, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := AppendFlowMod(nil, 1, FlowAdd, new(typicalFlow()), 0)
	for n := 0; n < len(good); n++ {
		trunc := append([]byte(nil), good[:n]...)
		if n >= 4 {
			binary.BigEndian.PutUint16(trunc[2:], uint16(n))
		}
		// Cut at an instruction boundary it is a valid, shorter flow-mod; anywhere else
		// it must be refused.
		if fm, err := DecodeFlowMod(trunc); err == nil && (n != 88 && n != 136) {
			t.Errorf("flow-mod truncated to %d bytes decoded: %s", n, fm.Flow.String())
		}
	}
	bad := append([]byte(nil), good...)
	bad[25] = 9 // command
	if _, err := DecodeFlowMod(bad); err == nil {
		t.Error("bad command accepted")
	}
	bad = append([]byte(nil), good...)
	bad[49] = 0 // match type 0 (OF1.0 standard)
	if _, err := DecodeFlowMod(bad); err == nil {
		t.Error("standard match accepted")
	}
	if _, _, _, err := DecodeMultipartReply(good); err == nil {
		t.Error("flow-mod decoded as multipart reply")
	}
	if _, err := DecodeBundleControl(good); err == nil {
		t.Error("flow-mod decoded as bundle control")
	}
}
