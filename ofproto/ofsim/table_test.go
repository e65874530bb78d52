package ofsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
)

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, last} }

// sim returns a switch and a flow-mod helper applying messages as if received.
func sim(t *testing.T, cfg Config) *Switch {
	t.Helper()
	if cfg.NumTables == 0 {
		cfg.NumTables = 10
	}
	return New(zaptest.NewLogger(t), cfg)
}

func (s *Switch) mod(t *testing.T, msg []byte) error {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flowModLocked(nil, s.flows, msg)
}

func add(t *testing.T, s *Switch, f ofproto.Flow) {
	t.Helper()
	if err := s.mod(t, ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &f, 0)); err != nil {
		t.Fatalf("add %s: %v", f.String(), err)
	}
}

func flowsText(t *testing.T, s *Switch) string {
	t.Helper()
	out, err := s.DumpFlows()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFlowModSemantics(t *testing.T) {
	base := func(t *testing.T) *Switch {
		s := sim(t, Config{})
		add(t, s, ofproto.Flow{Table: 0, Priority: 10, Cookie: 0x11, Match: ofproto.Match{ofproto.InPort(1)}, Actions: []ofproto.Action{ofproto.Output{Port: 2}}})
		add(t, s, ofproto.Flow{Table: 0, Priority: 10, Cookie: 0x12, Match: ofproto.Match{ofproto.InPort(1), ofproto.EthDst(mac(1))}, Actions: []ofproto.Action{ofproto.Output{Port: 3}}})
		add(t, s, ofproto.Flow{Table: 0, Priority: 20, Cookie: 0x21, Match: ofproto.Match{ofproto.InPort(2)}, Actions: []ofproto.Action{ofproto.Output{Port: 2}}})
		add(t, s, ofproto.Flow{Table: 1, Priority: 10, Cookie: 0x11, Match: ofproto.Match{ofproto.InPort(1)}, Actions: []ofproto.Action{ofproto.Output{Port: 4}}})
		return s
	}
	in1 := ofproto.Match{ofproto.InPort(1)}
	cases := []struct {
		name string
		msg  []byte
		want string
	}{
		{"add replaces same key", ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &ofproto.Flow{Table: 0, Priority: 10, Cookie: 0x99, Match: in1}, 0),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n" +
				"cookie=0x99, priority=10,in_port=1 actions=drop\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"delete non-strict takes more specific flows of the table", ofproto.AppendFlowDelete(nil, 1, 0, 0, in1, 0, 0, false),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"delete non-strict all tables with cookie mask", ofproto.AppendFlowDelete(nil, 1, ofproto.TableAll, 0, nil, 0x11, 0xff, false),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n"},
		{"delete strict needs the exact match and priority", ofproto.AppendFlowDelete(nil, 1, 0, 10, in1, 0, 0, true),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"delete strict with a wrong priority deletes nothing", ofproto.AppendFlowDelete(nil, 1, 0, 11, in1, 0, 0, true),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n" +
				"cookie=0x11, priority=10,in_port=1 actions=output:2\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"delete strict with a cookie that does not match deletes nothing", ofproto.AppendFlowDelete(nil, 1, 0, 10, in1, 0x55, ^uint64(0), true),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n" +
				"cookie=0x11, priority=10,in_port=1 actions=output:2\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"modify non-strict changes actions, keeps cookies, adds nothing",
			ofproto.AppendFlowMod(nil, 1, ofproto.FlowModify, &ofproto.Flow{Table: 0, Cookie: 0x77, Match: in1, Actions: []ofproto.Action{ofproto.Output{Port: 7}}}, 0),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:7\n" +
				"cookie=0x11, priority=10,in_port=1 actions=output:7\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
		{"modify strict of a missing flow adds nothing",
			ofproto.AppendFlowMod(nil, 1, ofproto.FlowModifyStrict, &ofproto.Flow{Table: 0, Priority: 99, Match: in1, Actions: []ofproto.Action{ofproto.Output{Port: 7}}}, 0),
			"cookie=0x21, priority=20,in_port=2 actions=output:2\n" +
				"cookie=0x12, priority=10,in_port=1,dl_dst=fa:16:3e:00:00:01 actions=output:3\n" +
				"cookie=0x11, priority=10,in_port=1 actions=output:2\n" +
				"cookie=0x11, table=1, priority=10,in_port=1 actions=output:4\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := base(t)
			if err := s.mod(t, tc.msg); err != nil {
				t.Fatal(err)
			}
			if got := flowsText(t, s); sortedLines(got) != sortedLines(tc.want) {
				t.Fatalf("got:\n%swant:\n%s", got, tc.want)
			}
		})
	}
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

func TestDeleteOutPortFilter(t *testing.T) {
	s := sim(t, Config{})
	add(t, s, ofproto.Flow{Priority: 1, Match: ofproto.Match{ofproto.InPort(1)}, Actions: []ofproto.Action{ofproto.Output{Port: 2}}})
	add(t, s, ofproto.Flow{Priority: 1, Match: ofproto.Match{ofproto.InPort(2)}, Actions: []ofproto.Action{ofproto.Output{Port: 3}}})
	msg := ofproto.AppendFlowDelete(nil, 1, ofproto.TableAll, 0, nil, 0, 0, false)
	binary.BigEndian.PutUint32(msg[36:], 3) // out_port 3
	if err := s.mod(t, msg); err != nil {
		t.Fatal(err)
	}
	if got := flowsText(t, s); got != "priority=1,in_port=1 actions=output:2\n" {
		t.Fatalf("got %q", got)
	}
}

func TestFlowModErrorsLikeOVS(t *testing.T) {
	s := sim(t, Config{NumTables: 5})
	for name, tc := range map[string]struct {
		f          ofproto.Flow
		typ, code  uint16
		deleteTest bool
	}{
		"table beyond the switch": {f: ofproto.Flow{Table: 7}, typ: errFlowModFailed, code: codeBadTableID},
		"goto backwards":          {f: ofproto.Flow{Table: 3, HasGoto: true, Goto: 1}, typ: errBadInstruction, code: codeBadTableID},
		"goto past the last table": {f: ofproto.Flow{Table: 3, HasGoto: true, Goto: 6},
			typ: errBadInstruction, code: codeBadTableID},
		"ip field without eth_type": {f: ofproto.Flow{Match: ofproto.Match{ofproto.IPv4Dst(netip.MustParseAddr("10.0.0.1"))}},
			typ: errBadMatch, code: codeBadPrereq},
	} {
		err := s.mod(t, ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &tc.f, 0))
		fe, ok := err.(*flowModError)
		if !ok || fe.typ != tc.typ || fe.code != tc.code {
			t.Errorf("%s: got %v (%+v)", name, err, fe)
		}
	}
	if s.NumFlows() != 0 {
		t.Fatalf("refused flow-mods installed %d flows", s.NumFlows())
	}
	// A truncated flow-mod is a decode error, not a panic.
	if err := s.mod(t, ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &ofproto.Flow{}, 0)[:40]); err == nil {
		t.Fatal("truncated flow-mod accepted")
	}
}

// client is the controller side of a net.Pipe to a switch.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSim(t *testing.T, s *Switch) *client {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, b) }()
	t.Cleanup(func() { cancel(); _ = a.Close(); <-done })
	c := &client{t: t, c: a, r: bufio.NewReader(a)}
	if h, _ := c.read(); h.Type != ofproto.TypeHello {
		t.Fatalf("first message %v", h.Type)
	}
	c.send(append(ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeHello, Length: 16, Xid: 1}), 0, 1, 0, 8, 0, 0, 0, 0x10))
	return c
}

func (c *client) send(b []byte) {
	c.t.Helper()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() (ofproto.Header, []byte) {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, msg, err := ofproto.ReadMessage(c.r, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return h, msg
}

func TestFlowStatsSplitWithReplyMore(t *testing.T) {
	s := sim(t, Config{})
	for i := range 3000 {
		add(t, s, ofproto.Flow{Table: 1, Priority: uint16(i), Cookie: uint64(i), Match: ofproto.Match{ofproto.InPort(uint32(i + 1)), ofproto.EthSrc(mac(byte(i)))},
			Actions: []ofproto.Action{ofproto.SetEthDst(mac(1)), ofproto.Output{Port: 2}}})
	}
	c := dialSim(t, s)
	c.send(ofproto.AppendFlowStatsRequest(nil, 77, ofproto.TableAll, 0, 0, nil))
	total, parts := 0, 0
	for {
		h, msg := c.read()
		if h.Type != ofproto.TypeMultipartReply || h.Xid != 77 {
			t.Fatalf("got %v xid %d", h.Type, h.Xid)
		}
		_, flags, body, err := ofproto.DecodeMultipartReply(msg)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := ofproto.DecodeFlowStatsReply(body)
		if err != nil {
			t.Fatal(err)
		}
		total += len(fs)
		parts++
		if flags&ofproto.MultipartReplyMore == 0 {
			break
		}
	}
	if total != 3000 || parts < 2 {
		t.Fatalf("%d flows in %d replies", total, parts)
	}
}

func TestBundleCommitIsAtomic(t *testing.T) {
	s := sim(t, Config{NumTables: 5})
	c := dialSim(t, s)
	good := ofproto.Flow{Table: 0, Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 1}}}
	bad := ofproto.Flow{Table: 9, Priority: 1}
	c.send(ofproto.AppendBundleControl(nil, 5, 1, ofproto.BundleOpenRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleOpenReply {
		t.Fatal("no open reply")
	}
	c.send(ofproto.AppendBundleAddFlowMod(nil, 6, 1, ofproto.BundleAtomic, ofproto.FlowAdd, &good, 0))
	c.send(ofproto.AppendBundleAddFlowMod(nil, 7, 1, ofproto.BundleAtomic, ofproto.FlowAdd, &bad, 0))
	c.send(ofproto.AppendBundleControl(nil, 8, 1, ofproto.BundleCommitRequest, ofproto.BundleAtomic))
	h, msg := c.read()
	if h.Type != ofproto.TypeError || h.Xid != 7 || binary.BigEndian.Uint16(msg[8:]) != errFlowModFailed {
		t.Fatalf("inner error: %v xid %d", h.Type, h.Xid)
	}
	if h, _ = c.read(); h.Type != ofproto.TypeError || h.Xid != 8 {
		t.Fatalf("commit error: %v xid %d", h.Type, h.Xid)
	}
	if s.NumFlows() != 0 {
		t.Fatal("failed bundle partly applied")
	}
	// A good bundle applies, and an unknown bundle id is refused.
	c.send(ofproto.AppendBundleControl(nil, 9, 2, ofproto.BundleOpenRequest, ofproto.BundleAtomic))
	c.read()
	c.send(ofproto.AppendBundleAddFlowMod(nil, 10, 2, ofproto.BundleAtomic, ofproto.FlowAdd, &good, 0))
	c.send(ofproto.AppendBundleControl(nil, 11, 2, ofproto.BundleCommitRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleCommitReply {
		t.Fatal("no commit reply")
	}
	if s.NumFlows() != 1 || s.Counts().Bundles != 1 {
		t.Fatalf("flows %d counts %+v", s.NumFlows(), s.Counts())
	}
	// As in OVS, an add to an unknown bundle opens it; a commit of an unknown one fails.
	c.send(ofproto.AppendBundleAddFlowMod(nil, 12, 3, ofproto.BundleAtomic, ofproto.FlowAdd, &good, 0))
	c.send(ofproto.AppendBundleControl(nil, 13, 3, ofproto.BundleCommitRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleCommitReply {
		t.Fatal("no commit reply for an implicitly opened bundle")
	}
	c.send(ofproto.AppendBundleControl(nil, 14, 4, ofproto.BundleCommitRequest, ofproto.BundleAtomic))
	if h, msg := c.read(); h.Type != ofproto.TypeError || h.Xid != 14 || binary.BigEndian.Uint16(msg[10:]) != codeBundleBadID {
		t.Fatalf("commit of an unknown bundle: %v %x", h.Type, msg)
	}
}

func mustBundle(t *testing.T, msg []byte) ofproto.BundleControl {
	t.Helper()
	bc, err := ofproto.DecodeBundleControl(msg)
	if err != nil {
		t.Fatal(err)
	}
	return bc
}

func TestBadMessagesGetOVSErrors(t *testing.T) {
	s := sim(t, Config{})
	c := dialSim(t, s)
	for name, tc := range map[string]struct {
		msg       []byte
		typ, code uint16
	}{
		"unknown type":           {ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: 99, Length: 8, Xid: 3}), errBadRequest, codeBadType},
		"unsupported get-config": {ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeGetConfigRequest, Length: 8, Xid: 3}), errBadRequest, codeBadType},
		"unknown multipart": {append(ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeMultipartRequest, Length: 16, Xid: 3}), 0, 99, 0, 0, 0, 0, 0, 0),
			errBadRequest, codeBadMultipart},
	} {
		c.send(tc.msg)
		h, msg := c.read()
		if h.Type != ofproto.TypeError || h.Xid != 3 || binary.BigEndian.Uint16(msg[8:]) != tc.typ || binary.BigEndian.Uint16(msg[10:]) != tc.code {
			t.Errorf("%s: got %v %x", name, h.Type, msg)
		}
	}
}

func TestFlowModRateLimitSpacesIngest(t *testing.T) {
	s := sim(t, Config{FlowModRate: 1000})
	c := dialSim(t, s)
	start := time.Now()
	for i := range 200 {
		f := ofproto.Flow{Priority: uint16(i)}
		c.send(ofproto.AppendFlowMod(nil, uint32(i), ofproto.FlowAdd, &f, 0))
	}
	c.send(ofproto.AppendBarrierRequest(nil, 999))
	if h, _ := c.read(); h.Type != ofproto.TypeBarrierReply {
		t.Fatalf("got %v", h.Type)
	}
	// 200 flow-mods at 1000/s cannot be done in less than ~200 ms (lower bound only).
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("200 flow-mods at 1000/s took %v", took)
	}
	if s.NumFlows() != 200 {
		t.Fatalf("%d flows", s.NumFlows())
	}
}

// The flows in wire form (for a harness in another process) decode to exactly what
// UnorderedFlows returns, instructions and timeouts included; a cut message is refused.
func TestAppendFlowModsDecodesToTheFlows(t *testing.T) {
	s := sim(t, Config{})
	add(t, s, ofproto.Flow{Table: 0, Priority: 10, Cookie: 0x11, IdleTimeout: 5, HardTimeout: 7,
		Match: ofproto.Match{ofproto.EthDst(mac(1)), ofproto.InPort(1)}, Actions: []ofproto.Action{ofproto.Output{Port: 2}}})
	add(t, s, ofproto.Flow{Table: 1, Priority: 0, Cookie: 0x12, HasGoto: true, Goto: 3,
		HasMetadata: true, Metadata: 0x10, MetadataMask: 0xff})
	add(t, s, ofproto.Flow{Table: 3, Priority: 5, Cookie: 0x13, Match: ofproto.Match{ofproto.InPort(4)}})
	want, err := s.UnorderedFlows()
	if err != nil {
		t.Fatal(err)
	}
	wire := s.AppendFlowMods([]byte("prefix"))
	if string(wire[:6]) != "prefix" {
		t.Fatal("AppendFlowMods did not append")
	}
	got, err := DecodeFlowMods(wire[6:])
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[ofproto.FlowKey]ofproto.Flow{}
	for _, f := range want {
		byKey[f.Key()] = f
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows decoded, want %d", len(got), len(want))
	}
	for i := range got {
		w, ok := byKey[got[i].Key()]
		if !ok || !w.Equal(&got[i]) || w.IdleTimeout != got[i].IdleTimeout || w.HardTimeout != got[i].HardTimeout {
			t.Errorf("decoded %s, want %s", got[i].String(), w.String())
		}
	}
	if fs, err := DecodeFlowMods(nil); err != nil || len(fs) != 0 {
		t.Fatalf("nothing: %v, %v", fs, err)
	}
	if _, err := DecodeFlowMods(wire[6 : len(wire)-3]); err == nil {
		t.Fatal("a cut flow-mod decoded")
	}
}
