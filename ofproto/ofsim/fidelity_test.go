package ofsim

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
)

// expectError reads the next message and checks it is an OFPT_ERROR with xid, type, code.
func (c *client) expectError(what string, xid uint32, typ, code uint16) {
	c.t.Helper()
	h, msg := c.read()
	if h.Type != ofproto.TypeError || h.Xid != xid {
		c.t.Fatalf("%s: got %v xid %d, want an error with xid %d", what, h.Type, h.Xid, xid)
	}
	if gt, gc := binary.BigEndian.Uint16(msg[8:]), binary.BigEndian.Uint16(msg[10:]); gt != typ || gc != code {
		c.t.Fatalf("%s: error type %d code %d, want type %d code %d", what, gt, gc, typ, code)
	}
}

// expectAlive checks the session still works (a barrier is answered) after an error.
func (c *client) expectAlive(what string) {
	c.t.Helper()
	c.send(ofproto.AppendBarrierRequest(nil, 0xb0))
	if h, _ := c.read(); h.Type != ofproto.TypeBarrierReply || h.Xid != 0xb0 {
		c.t.Fatalf("%s: session does not answer a barrier after the error: %v", what, h.Type)
	}
}

func rawAction(typ uint16, body ...byte) ofproto.RawAction {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(body)))
	return ofproto.RawAction{Bytes: append(b, body...)}
}

// TestRejectsWhatOVSRejects sends what Open vSwitch 3.1 refuses and checks the error type
// and code it answers with (OpenFlow 1.3 numbering), that nothing was installed and that
// the session goes on, as OVS's does.
func TestRejectsWhatOVSRejects(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	drop := []ofproto.Action{ofproto.Output{Port: 1}}
	cases := []struct {
		name      string
		msg       []byte
		typ, code uint16
	}{
		{"bad version", ofproto.AppendHeader(nil, ofproto.Header{Version: 1, Type: ofproto.TypeEchoRequest, Length: 8, Xid: 9}),
			errBadRequest, codeBadVersion},
		{"unknown message type", ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: 77, Length: 8, Xid: 9}),
			errBadRequest, codeBadType},
		{"set-config of a wrong length", ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeSetConfig, Length: 8, Xid: 9}),
			errBadRequest, codeBadLen},
		{"flow-mod truncated before its match", func() []byte {
			b := ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Priority: 1}, 0)[:44]
			binary.BigEndian.PutUint16(b[2:], 44)
			return b
		}(), errBadRequest, codeBadLen},
		{"flow-mod into a table beyond the switch", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Table: 20, Actions: drop}, 0),
			errFlowModFailed, codeBadTableID},
		{"flow stats of a table beyond the switch", ofproto.AppendFlowStatsRequest(nil, 9, 20, 0, 0, nil),
			errBadRequest, codeBadTableIDReq},
		{"goto a lower table", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Table: 3, HasGoto: true, Goto: 1}, 0),
			errBadInstruction, codeBadTableID},
		{"goto the same table", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Table: 3, HasGoto: true, Goto: 3}, 0),
			errBadInstruction, codeBadTableID},
		{"goto past the last table", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Table: 3, HasGoto: true, Goto: 12}, 0),
			errBadInstruction, codeBadTableID},
		{"unknown action type", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Actions: []ofproto.Action{rawAction(99, 0, 0, 0, 0)}}, 0), errBadAction, codeBadActionType},
		{"experimenter action of an unknown vendor", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Actions: []ofproto.Action{rawAction(0xffff, 0, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, 0, 0, 0)}}, 0), errBadAction, codeBadActionExp},
		{"output to port 0", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Actions: []ofproto.Action{ofproto.Output{Port: 0}}}, 0), errBadAction, codeBadOutPort},
		{"unknown instruction", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{OtherInstructions: []byte{0, 99, 0, 8, 0, 0, 0, 0}}, 0), errBadInstruction, codeUnknownInst},
		{"experimenter instruction", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{OtherInstructions: []byte{0xff, 0xff, 0, 8, 0, 0, 0x23, 0x20}}, 0), errBadInstruction, codeBadInstExp},
		{"instruction given twice", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{OtherInstructions: []byte{0, 5, 0, 8, 0, 0, 0, 0, 0, 5, 0, 8, 0, 0, 0, 0}}, 0), errBadInstruction, codeDupInst},
		{"nw_src without dl_type=0x800", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Match: ofproto.Match{ofproto.IPv4Src(ip)}, Actions: drop}, 0), errBadMatch, codeBadPrereq},
		{"tcp_dst without ip_proto", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Match: ofproto.Match{ofproto.EthType(0x0800), ofproto.TCPDst(80)}, Actions: drop}, 0), errBadMatch, codeBadPrereq},
		{"match field given twice", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Match: ofproto.Match{ofproto.InPort(1), ofproto.InPort(2)}, Actions: drop}, 0), errBadMatch, codeDupField},
		{"meter instruction of a missing meter", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Meter: 7, Actions: drop}, 0), errMeterModFailed, codeInvalidMeter},
		{"overlapping add with CHECK_OVERLAP", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.InPort(1)}, Actions: drop}, flagCheckOverlap),
			errFlowModFailed, codeOverlap},
		{"identical add with CHECK_OVERLAP", ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd,
			&ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.EthDst(mac(1))}, Actions: drop}, flagCheckOverlap),
			errFlowModFailed, codeOverlap},
		{"unknown flow-mod command", func() []byte {
			b := ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &ofproto.Flow{Actions: drop}, 0)
			b[25] = 9
			return b
		}(), errFlowModFailed, codeBadCommand},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sim(t, Config{NumTables: 10})
			add(t, s, ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.EthDst(mac(1))}, Actions: drop})
			before := flowsText(t, s)
			c := dialSim(t, s)
			c.send(tc.msg)
			c.expectError(tc.name, 9, tc.typ, tc.code)
			c.expectAlive(tc.name)
			if got := flowsText(t, s); got != before {
				t.Fatalf("refused message changed the flows:\n%s", got)
			}
		})
	}
}

func TestCheckOverlapAcceptsDisjointFlows(t *testing.T) {
	s := sim(t, Config{NumTables: 10})
	drop := []ofproto.Action{ofproto.Output{Port: 1}}
	add(t, s, ofproto.Flow{Table: 1, Priority: 10, Match: ofproto.Match{ofproto.InPort(1)}, Actions: drop})
	for name, f := range map[string]ofproto.Flow{
		"other in_port":      {Table: 1, Priority: 10, Match: ofproto.Match{ofproto.InPort(2)}, Actions: drop},
		"other priority":     {Table: 1, Priority: 11, Match: ofproto.Match{ofproto.InPort(1)}, Actions: drop},
		"other table":        {Table: 2, Priority: 10, Match: ofproto.Match{ofproto.InPort(1)}, Actions: drop},
		"disjoint by prefix": {Table: 1, Priority: 10, Match: ofproto.Match{ofproto.InPort(3), ofproto.EthType(0x0800)}, Actions: drop},
	} {
		if err := s.mod(t, ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &f, flagCheckOverlap)); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}

// TestBundleErrorsLikeOVS walks a bundle through the errors of OVS's ONF bundle handling.
func TestBundleErrorsLikeOVS(t *testing.T) {
	s := sim(t, Config{NumTables: 5})
	c := dialSim(t, s)
	good := ofproto.Flow{Table: 0, Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 1}}}
	ordered := ofproto.BundleAtomic | ofproto.BundleOrdered
	c.send(ofproto.AppendBundleControl(nil, 1, 5, ofproto.BundleOpenRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleOpenReply {
		t.Fatal("no open reply")
	}
	c.send(ofproto.AppendBundleControl(nil, 2, 5, ofproto.BundleOpenRequest, ofproto.BundleAtomic))
	c.expectError("open an open bundle", 2, errBundleFailed, codeBundleExists)
	c.send(ofproto.AppendBundleAddFlowMod(nil, 3, 5, ordered, ofproto.FlowAdd, &good, 0))
	c.expectError("add with other flags", 3, errBundleFailed, codeBundleBadFlags)
	c.send(ofproto.AppendBundleControl(nil, 4, 5, ofproto.BundleCloseRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleCloseReply {
		t.Fatal("no close reply")
	}
	c.send(ofproto.AppendBundleControl(nil, 5, 5, ofproto.BundleCloseRequest, ofproto.BundleAtomic))
	c.expectError("close a closed bundle", 5, errBundleFailed, codeBundleClosed)
	c.send(ofproto.AppendBundleAddFlowMod(nil, 6, 5, ofproto.BundleAtomic, ofproto.FlowAdd, &good, 0))
	c.expectError("add to a closed bundle", 6, errBundleFailed, codeBundleClosed)
	c.send(ofproto.AppendBundleControl(nil, 7, 6, ofproto.BundleCloseRequest, ofproto.BundleAtomic))
	c.expectError("close an unknown bundle", 7, errBundleFailed, codeBundleBadID)
	c.send(ofproto.AppendBundleControl(nil, 8, 6, ofproto.BundleDiscardRequest, ofproto.BundleAtomic))
	c.expectError("discard an unknown bundle", 8, errBundleFailed, codeBundleBadID)
	c.send(ofproto.AppendBundleControl(nil, 9, 5, ofproto.BundleCommitRequest, ofproto.BundleAtomic))
	if _, msg := c.read(); mustBundle(t, msg).Type != ofproto.BundleCommitReply {
		t.Fatal("no commit reply")
	}
	// A bundle holding a non-flow-mod is refused at the add.
	c.send(ofproto.AppendBundleAdd(nil, 10, 7, ofproto.BundleAtomic, ofproto.AppendBarrierRequest(nil, 11)))
	c.expectError("bundle a barrier", 10, errBundleFailed, 10)
	// Another experimenter than ONF is OFPBRC_BAD_EXPERIMENTER.
	exp := append(ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeExperimenter, Length: 16, Xid: 12}), 0, 0, 0x23, 0x20, 0, 0, 0, 1)
	c.send(exp)
	c.expectError("Nicira experimenter message", 12, errBadRequest, 3)
	c.expectAlive("bundles")
	if s.NumFlows() != 0 || s.Counts().Bundles != 1 { // both adds to bundle 5 were refused
		t.Fatalf("flows %d, counts %+v", s.NumFlows(), s.Counts())
	}
}

// TestHookReportsFlowModsAndBarriers checks the events a harness times convergence with.
func TestHookReportsFlowModsAndBarriers(t *testing.T) {
	events := make(chan Event, 16)
	s := sim(t, Config{Hook: func(e Event) { events <- e }})
	c := dialSim(t, s)
	if e := <-events; e.Kind != EventConnected || e.DPID != s.DPID() {
		t.Fatalf("first event %+v", e)
	}
	f := ofproto.Flow{Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 1}}}
	c.send(ofproto.AppendFlowMod(nil, 1, ofproto.FlowAdd, &f, 0))
	c.send(ofproto.AppendBarrierRequest(nil, 2))
	c.read()
	if e := <-events; e.Kind != EventFlowMods || e.N != 1 {
		t.Fatalf("after a flow-mod: %+v", e)
	}
	if e := <-events; e.Kind != EventBarrier {
		t.Fatalf("after a barrier: %+v", e)
	}
	c.send(ofproto.AppendFlowStatsRequest(nil, 3, ofproto.TableAll, 0, 0, nil))
	c.read()
	if e := <-events; e.Kind != EventFlowStats || e.N != 1 {
		t.Fatalf("after a dump: %+v", e)
	}
	if got := s.Counts(); got.Barriers != 1 || got.FlowStatsRequests != 1 || got.Connections != 1 || got.Add != 1 {
		t.Fatalf("counts %+v", got)
	}
}

// TestFleetReconnectsAfterControllerLoss checks that fleet switches come back, keeping
// their flows, when the controller's listener goes away and returns on the same address.
func TestFleetReconnectsAfterControllerLoss(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	conns := make(chan net.Conn, 8)
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}
	go serve(ln)
	fl := NewFleet(zaptest.NewLogger(t), FleetConfig{Addr: addr, ConnectRate: 100, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	for i := range 2 {
		s := sim(t, Config{DPID: uint64(i + 1)})
		add(t, s, ofproto.Flow{Priority: 5, Actions: []ofproto.Action{ofproto.Output{Port: 1}}})
		fl.Add(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	first := []net.Conn{<-conns, <-conns}
	_ = ln.Close()
	for _, c := range first {
		_ = c.Close()
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s not reusable at once: %v", addr, err)
	}
	go serve(ln2)
	again := []net.Conn{<-conns, <-conns}
	for _, s := range fl.Switches() {
		deadline := time.Now().Add(5 * time.Second)
		for s.Counts().Connections < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if c := s.Counts().Connections; c < 2 {
			t.Errorf("switch %d: %d sessions", s.DPID(), c)
		}
		if s.NumFlows() != 1 {
			t.Errorf("switch %d lost its flows over the reconnection", s.DPID())
		}
	}
	cancel()
	for _, c := range again {
		_ = c.Close()
	}
	_ = ln2.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
