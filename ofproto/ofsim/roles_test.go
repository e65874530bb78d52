package ofsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
)

// dialTCP connects s to a new controller listening on its own TCP address, as a switch
// with several controller targets does, and returns the controller's side.
func dialTCP(t *testing.T, s *Switch) (*client, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, addr) }()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = a.Close(); <-done })
	c := &client{t: t, c: a, r: bufio.NewReader(a)}
	if h, _ := c.read(); h.Type != ofproto.TypeHello {
		t.Fatalf("first message %v", h.Type)
	}
	c.send(append(ofproto.AppendHeader(nil, ofproto.Header{Version: 4, Type: ofproto.TypeHello, Length: 16, Xid: 1}), 0, 1, 0, 8, 0, 0, 0, 0x10))
	// A barrier round trip: the switch has handled the HELLO.
	c.send(ofproto.AppendBarrierRequest(nil, 2))
	if h, _ := c.read(); h.Type != ofproto.TypeBarrierReply {
		t.Fatalf("barrier answered with %v", h.Type)
	}
	return c, addr
}

// role sends a ROLE_REQUEST and returns the role and generation of the reply, or the
// error's type and code.
func (c *client) role(xid, role uint32, gen uint64) (gotRole uint32, gotGen uint64, errType, errCode uint16) {
	c.t.Helper()
	c.send(ofproto.AppendRoleRequest(nil, xid, role, gen))
	h, msg := c.read()
	switch {
	case h.Xid != xid:
		c.t.Fatalf("reply xid %d to %d", h.Xid, xid)
	case h.Type == ofproto.TypeRoleReply:
		return binary.BigEndian.Uint32(msg[8:]), binary.BigEndian.Uint64(msg[16:]), 0, 0
	case h.Type == ofproto.TypeError:
		return 0, 0, binary.BigEndian.Uint16(msg[8:]), binary.BigEndian.Uint16(msg[10:])
	}
	c.t.Fatalf("role request answered with %v", h.Type)
	return
}

func roles(s *Switch) []uint32 {
	var out []uint32
	for _, c := range s.Conns() {
		out = append(out, c.Role)
	}
	return out
}

// TestRolesLikeOVS: every connection starts equal; a new master demotes the old one to
// slave; a master or slave request with an older generation id is refused as stale, an
// equal generation is not; NOCHANGE reports the connection's role and the generation.
func TestRolesLikeOVS(t *testing.T) {
	s := sim(t, Config{DPID: 1})
	a, _ := dialTCP(t, s)
	b, _ := dialTCP(t, s)
	c, _ := dialTCP(t, s)
	if got := roles(s); !slices.Equal(got, []uint32{roleEqual, roleEqual, roleEqual}) {
		t.Fatalf("roles at connect %v, want all equal", got)
	}
	if r, g, et, _ := a.role(10, roleMaster, 5); et != 0 || r != roleMaster || g != 5 {
		t.Fatalf("a master 5: role %d gen %d error %d", r, g, et)
	}
	if r, g, et, _ := b.role(11, roleMaster, 6); et != 0 || r != roleMaster || g != 6 {
		t.Fatalf("b master 6: role %d gen %d error %d", r, g, et)
	}
	if got := roles(s); !slices.Equal(got, []uint32{roleSlave, roleMaster, roleEqual}) {
		t.Fatalf("after b became master: %v, want a demoted to slave", got)
	}
	for _, tc := range []struct {
		role uint32
		gen  uint64
	}{{roleSlave, 4}, {roleMaster, 5}} {
		if _, _, et, ec := c.role(12, tc.role, tc.gen); et != errRoleRequestFailed || ec != codeStale {
			t.Fatalf("role %d with stale generation %d: error %d/%d, want OFPRRFC_STALE", tc.role, tc.gen, et, ec)
		}
	}
	if r, g, et, _ := c.role(13, roleNoChange, 0); et != 0 || r != roleEqual || g != 6 {
		t.Fatalf("c nochange: role %d gen %d error %d, want equal 6", r, g, et)
	}
	// The stale requests changed nothing; a master of the same generation takes over.
	if r, _, et, _ := a.role(14, roleMaster, 6); et != 0 || r != roleMaster {
		t.Fatalf("a master 6: role %d error %d", r, et)
	}
	if got := roles(s); !slices.Equal(got, []uint32{roleMaster, roleSlave, roleEqual}) {
		t.Fatalf("after a took over: %v", got)
	}
	if _, g := s.Role(); g != 6 {
		t.Fatalf("generation %d, want 6", g)
	}
}

// TestSlaveMayNotChangeTheSwitch: a slave's flow-mod, group-mod, meter-mod, port-mod,
// packet-out, table-mod and bundle messages are refused with OFPBRC_IS_SLAVE and change
// nothing, while the master's flow-mod is applied and counted for its address.
func TestSlaveMayNotChangeTheSwitch(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	s := sim(t, Config{DPID: 1, Hook: func(e Event) {
		if e.Kind == EventFlowMods {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	}})
	master, masterAddr := dialTCP(t, s)
	slave, slaveAddr := dialTCP(t, s)
	master.role(1, roleMaster, 1)
	slave.role(2, roleSlave, 1)
	f := ofproto.Flow{Priority: 1, Actions: []ofproto.Action{ofproto.Output{Port: 1}}}
	hdr := func(typ ofproto.MsgType, body int) []byte {
		return ofproto.Finish(append(ofproto.Begin(nil, typ, 0), make([]byte, body)...), 0)
	}
	refused := map[string][]byte{
		"flow-mod":   ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &f, 0),
		"group-mod":  hdr(ofproto.TypeGroupMod, 8),
		"meter-mod":  ofproto.AppendMeterMod(nil, 0, ofproto.MeterAdd, 0, 1, []ofproto.MeterBandDrop{{Rate: 10}}),
		"port-mod":   hdr(ofproto.TypePortMod, 32),
		"packet-out": ofproto.AppendPacketOut(nil, 0, ofproto.PortController, []ofproto.Action{ofproto.Output{Port: 1}}, []byte{1, 2}),
		"table-mod":  hdr(ofproto.TypeTableMod, 8),
		"bundle-open": ofproto.AppendBundleControl(nil, 0, 7, ofproto.BundleOpenRequest,
			ofproto.BundleAtomic|ofproto.BundleOrdered),
		"bundle-add": ofproto.AppendBundleAddFlowMod(nil, 0, 7, ofproto.BundleAtomic|ofproto.BundleOrdered,
			ofproto.FlowAdd, &f, 0),
	}
	xid := uint32(100)
	for name, msg := range refused {
		xid++
		binary.BigEndian.PutUint32(msg[4:], xid)
		slave.send(msg)
		h, reply := slave.read()
		if h.Type != ofproto.TypeError || h.Xid != xid || binary.BigEndian.Uint16(reply[8:]) != errBadRequest ||
			binary.BigEndian.Uint16(reply[10:]) != codeIsSlave {
			t.Errorf("slave's %s: answered %v %x, want OFPBRC_IS_SLAVE", name, h.Type, reply)
		}
	}
	if n, m, p := s.NumFlows(), len(s.Meters()), len(s.TakePacketOuts()); n+m+p != 0 {
		t.Fatalf("refused messages changed the switch: %d flows, %d meters, %d packet-outs", n, m, p)
	}
	master.send(ofproto.AppendFlowMod(nil, 200, ofproto.FlowAdd, &f, 0))
	master.send(ofproto.AppendBarrierRequest(nil, 201))
	if h, _ := master.read(); h.Type != ofproto.TypeBarrierReply {
		t.Fatalf("master's flow-mod answered with %v", h.Type)
	}
	if s.NumFlows() != 1 {
		t.Fatal("the master's flow-mod was not applied")
	}
	from, fromSlave, all := s.CountsFrom(masterAddr), s.CountsFrom(slaveAddr), s.Counts()
	if from.Add != 1 || from.SlaveRefused != 0 || fromSlave.Add != 0 || fromSlave.SlaveRefused != uint64(len(refused)) ||
		all.Add != 1 || all.SlaveRefused != uint64(len(refused)) {
		t.Fatalf("counts: master %+v, slave %+v, all %+v", from, fromSlave, all)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Addr != masterAddr {
		t.Fatalf("flow-mod events %+v, want one from %s", events, masterAddr)
	}
}

// TestAsyncMessagesByRole: a packet-in goes to the master and equal connections, never
// to a slave; a port status goes to every connection; a reply only to the one that asked
// (the others' next message after the packet-in and port status is their own barrier's
// reply).
func TestAsyncMessagesByRole(t *testing.T) {
	s := sim(t, Config{DPID: 1})
	master, _ := dialTCP(t, s)
	slave, _ := dialTCP(t, s)
	equal, _ := dialTCP(t, s)
	master.role(1, roleMaster, 1)
	slave.role(2, roleSlave, 1)
	equal.send(ofproto.AppendEcho(nil, ofproto.TypeEchoRequest, 3, nil))
	if h, _ := equal.read(); h.Type != ofproto.TypeEchoReply || h.Xid != 3 {
		t.Fatalf("echo answered with %v", h.Type)
	}
	if err := s.SendPacketIn(0, 0, 1, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPort(Port{No: 9, Name: "tap9", HWAddr: mac(9)}); err != nil {
		t.Fatal(err)
	}
	want := map[*client][]ofproto.MsgType{
		master: {ofproto.TypePacketIn, ofproto.TypePortStatus},
		slave:  {ofproto.TypePortStatus},
		equal:  {ofproto.TypePacketIn, ofproto.TypePortStatus},
	}
	names := map[*client]string{master: "master", slave: "slave", equal: "equal"}
	for c, types := range want {
		for _, typ := range types {
			if h, _ := c.read(); h.Type != typ {
				t.Errorf("%s got %v, want %v", names[c], h.Type, typ)
			}
		}
		// Nothing else: a barrier is answered next.
		c.send(ofproto.AppendBarrierRequest(nil, 50))
		if h, _ := c.read(); h.Type != ofproto.TypeBarrierReply {
			t.Errorf("%s got %v, want only %v", names[c], h.Type, types)
		}
	}
}

// TestFleetConnectsToEveryController: with Addrs, each switch keeps a session to every
// controller; one controller dropping its sessions leaves the others' untouched, and its
// own come back on their backoff.
func TestFleetConnectsToEveryController(t *testing.T) {
	type ctl struct {
		ln    net.Listener
		conns chan net.Conn
	}
	var ctls []ctl
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c := ctl{ln: ln, conns: make(chan net.Conn, 8)}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				c.conns <- conn
			}
		}()
		ctls, addrs = append(ctls, c), append(addrs, ln.Addr().String())
	}
	fl := NewFleet(zaptest.NewLogger(t), FleetConfig{Addrs: addrs, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	for i := range 2 {
		fl.Add(sim(t, Config{DPID: uint64(i + 1)}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	var open []net.Conn
	defer func() {
		cancel()
		for _, c := range open {
			_ = c.Close()
		}
		for _, c := range ctls {
			_ = c.ln.Close()
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	first := []net.Conn{<-ctls[0].conns, <-ctls[0].conns}
	open = append(open, <-ctls[1].conns, <-ctls[1].conns)
	wait := func(what string, ok func(*Switch) bool) {
		t.Helper()
		for _, s := range fl.Switches() {
			deadline := time.Now().Add(5 * time.Second)
			for !ok(s) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if !ok(s) {
				t.Fatalf("switch %d: not %s: %+v", s.DPID(), what, s.Conns())
			}
		}
	}
	wait("connected to both", func(s *Switch) bool {
		got := []string{}
		for _, c := range s.Conns() {
			got = append(got, c.Addr)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(addrs))
		return slices.Equal(got, want)
	})
	for _, c := range first {
		_ = c.Close()
	}
	open = append(open, <-ctls[0].conns, <-ctls[0].conns)
	wait("reconnected to the first", func(s *Switch) bool {
		return s.CountsFrom(addrs[0]).Connections == 2 && len(s.Conns()) == 2
	})
	for _, s := range fl.Switches() {
		if n := s.CountsFrom(addrs[1]).Connections; n != 1 {
			t.Errorf("switch %d: %d sessions to the second controller, want 1 (untouched)", s.DPID(), n)
		}
		if n := s.Counts().Connections; n != 3 {
			t.Errorf("switch %d: %d sessions in all, want 3", s.DPID(), n)
		}
	}
}
