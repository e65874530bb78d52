package controller

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// harness runs a Server on a loopback port and records its events.
type harness struct {
	t      *testing.T
	srv    *Server
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, nil)
}

// newHarnessWith is newHarness calling before with the server before it serves.
func newHarnessWith(t *testing.T, cfg Config, before func(*Server)) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, srv: NewServer(zaptest.NewLogger(t), cfg), addr: ln.Addr().String(), ctx: ctx,
		cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	h.srv.Subscribe(func(e Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
		select {
		case h.notify <- struct{}{}:
		default:
		}
	})
	if before != nil {
		before(h.srv)
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ctx, ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// waitEvent waits until pred holds for one recorded event and returns it.
func (h *harness) waitEvent(what string, pred func(Event) bool) Event {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		h.mu.Lock()
		for _, e := range h.events {
			if pred(e) {
				h.mu.Unlock()
				return e
			}
		}
		h.mu.Unlock()
		select {
		case <-h.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; events: %#v", what, h.snapshot())
		}
	}
}

func (h *harness) snapshot() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

func (h *harness) count(pred func(Event) bool) int {
	n := 0
	for _, e := range h.snapshot() {
		if pred(e) {
			n++
		}
	}
	return n
}

func isConnected(dpid uint64) func(Event) bool {
	return func(e Event) bool { c, ok := e.(SwitchConnected); return ok && c.DPID == dpid }
}

func isDisconnected(dpid uint64) func(Event) bool {
	return func(e Event) bool { c, ok := e.(SwitchDisconnected); return ok && c.DPID == dpid }
}

// runSwitch connects sw to the harness in the background; the returned channel gets Run's
// error when the connection ends.
func (h *harness) runSwitch(sw *ofsim.Switch) <-chan error {
	ctx, cancel := context.WithCancel(h.ctx)
	h.t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- sw.Run(ctx, h.addr) }()
	return errc
}

// connect connects a switch and returns its session.
func (h *harness) connect(sw *ofsim.Switch) *Session {
	h.t.Helper()
	h.runSwitch(sw)
	return h.waitSession(sw.DPID(), nil)
}

// waitSession waits for a session of dpid other than not.
func (h *harness) waitSession(dpid uint64, not *Session) *Session {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := h.srv.Session(dpid); ok && s != not {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("switch %016x did not connect", dpid)
	return nil
}

func newSwitch(t *testing.T, dpid uint64, ports ...ofsim.Port) *ofsim.Switch {
	return ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: dpid, NumTables: 32, Ports: ports})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandshakeFeaturesPortsBarrierRole(t *testing.T) {
	h := newHarness(t, Config{})
	sw := newSwitch(t, 0xabc, ofsim.Port{No: 1, Name: "tap1", HWAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		ofsim.Port{No: 2, Name: "patch-tun"})
	s := h.connect(sw)
	ev := h.waitEvent("connected", isConnected(0xabc)).(SwitchConnected)
	if len(ev.Ports) != 2 || ev.Session != s {
		t.Fatalf("connected event %+v", ev)
	}
	names := map[uint32]string{}
	for _, p := range s.Ports() {
		names[p.No] = p.Name
	}
	if names[1] != "tap1" || names[2] != "patch-tun" {
		t.Fatalf("ports %v (names must lose their NUL padding)", names)
	}
	if s.NumTables() != 32 {
		t.Fatalf("tables %d", s.NumTables())
	}
	ctx := context.Background()
	if err := s.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sw.MissSendLen(); got != ofproto.ControllerMaxLenNoBuffer {
		t.Fatalf("miss_send_len %#x", got)
	}
	role, gen, err := s.RoleRequest(ctx, RoleMaster, 7)
	if err != nil || role != RoleMaster || gen != 7 {
		t.Fatalf("role %v gen %d err %v", role, gen, err)
	}
	// A stale generation is refused, and the error is routed to the request.
	_, _, err = s.RoleRequest(ctx, RoleMaster, 3)
	var ofe *OFError
	if !errors.As(err, &ofe) || ofe.Type != 11 {
		t.Fatalf("stale role request: %v", err)
	}
	if s.ErrorsReceived() != 1 {
		t.Fatalf("errors counted %d", s.ErrorsReceived())
	}
	// Echo the other way: the switch asks, the controller answers with the same xid.
	if err := sw.SendRaw(ofproto.AppendEcho(nil, ofproto.TypeEchoRequest, 99, []byte("ping"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "echo reply", func() bool { return sw.Counts().EchoReplies == 1 })
}

func TestControllerSendsEchoWhenIdle(t *testing.T) {
	h := newHarness(t, Config{Session: SessionConfig{EchoInterval: 20 * time.Millisecond, DeadTimeout: time.Minute}})
	sw := newSwitch(t, 13)
	h.connect(sw)
	// Nothing else is sent on an idle session: the switch sees the controller's echo
	// requests (and answers them, which keeps the session alive).
	eventually(t, "3 echo requests from the controller", func() bool { return sw.Counts().EchoRequests >= 3 })
	if _, ok := h.srv.Session(13); !ok {
		t.Fatal("the idle session was dropped")
	}
}

func TestRequestErrorRoutedByXID(t *testing.T) {
	h := newHarness(t, Config{})
	s := h.connect(newSwitch(t, 1))
	// A multipart type the switch does not serve: OFPBRC_BAD_MULTIPART for this xid only.
	_, err := s.RequestMultipart(context.Background(), ofproto.AppendMultipartRequest(nil, 0, 99, nil))
	var ofe *OFError
	if !errors.As(err, &ofe) || ofe.Type != ofproto.ErrTypeBadRequest || ofe.Code != 2 {
		t.Fatalf("got %v", err)
	}
	if err := s.Barrier(context.Background()); err != nil {
		t.Fatalf("session unusable after an error: %v", err)
	}
}

func TestHelloWithoutOF13IsRefused(t *testing.T) {
	h := newHarness(t, Config{})
	old := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: 10, HelloBitmap: 1 << 1})
	errc := h.runSwitch(old)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("OF1.0-only switch was not refused")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OF1.0-only switch still connected")
	}
	if _, ok := h.srv.Session(10); ok {
		t.Fatal("session registered for a switch without OpenFlow 1.3")
	}
	h.connect(newSwitch(t, 11)) // the server is fine
}

func TestEchoTimeoutClosesSession(t *testing.T) {
	h := newHarness(t, Config{Session: SessionConfig{EchoInterval: 20 * time.Millisecond, DeadTimeout: 150 * time.Millisecond}})
	sw := newSwitch(t, 2)
	s := h.connect(sw)
	// Alive across several echo intervals while the switch answers.
	time.Sleep(200 * time.Millisecond)
	if s.Err() != nil {
		t.Fatalf("session closed while the switch answered echoes: %v", s.Err())
	}
	sw.Mute(true)
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session of a silent switch not closed")
	}
	h.waitEvent("disconnected", isDisconnected(2))
	if _, ok := h.srv.Session(2); ok {
		t.Fatal("dead session still registered")
	}
}

func TestMalformedMessageDropsOnlyThatSession(t *testing.T) {
	h := newHarness(t, Config{})
	good := h.connect(newSwitch(t, 3))
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"length below header", []byte{4, 0, 0, 4, 0, 0, 0, 1}},
		{"short port status", []byte{4, byte(ofproto.TypePortStatus), 0, 12, 0, 0, 0, 0, 1, 0, 0, 0}},
		{"short error", []byte{4, byte(ofproto.TypeError), 0, 10, 0, 0, 0, 0, 1, 0}},
		{"wrong version", []byte{1, byte(ofproto.TypeEchoRequest), 0, 8, 0, 0, 0, 5}},
		{"short multipart", []byte{4, byte(ofproto.TypeMultipartReply), 0, 10, 0, 0, 0, 5, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := newSwitch(t, 4)
			s := h.connect(sw)
			if err := sw.SendRaw(tc.msg); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Done():
				if !errors.Is(s.Err(), errMalformed) && !errors.Is(s.Err(), ofproto.ErrBadLength) && !errors.Is(s.Err(), ofproto.ErrBadVersion) {
					t.Fatalf("closed for %v", s.Err())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("malformed message did not drop the session")
			}
			eventually(t, "unregistered", func() bool { _, ok := h.srv.Session(4); return !ok })
		})
	}
	if err := good.Barrier(context.Background()); err != nil {
		t.Fatalf("other session hurt: %v", err)
	}
}

func TestReconnectReplacesSession(t *testing.T) {
	h := newHarness(t, Config{})
	first := h.connect(newSwitch(t, 5))
	second := newSwitch(t, 5)
	h.runSwitch(second)
	s2 := h.waitSession(5, first)
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("old session of the same datapath still open")
	}
	if err := s2.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.count(isDisconnected(5)); n != 0 {
		t.Fatalf("%d disconnect events for a replaced session", n)
	}
	if n := h.count(isConnected(5)); n != 2 {
		t.Fatalf("%d connect events", n)
	}
	// Operations on the replaced session fail cleanly.
	if err := first.Send(context.Background(), ofproto.AppendEmpty(nil, ofproto.TypeBarrierRequest, 1)); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("send on closed session: %v", err)
	}
	if err := first.Barrier(context.Background()); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("barrier on closed session: %v", err)
	}
}

func TestPortStatusEvents(t *testing.T) {
	h := newHarness(t, Config{})
	sw := newSwitch(t, 6, ofsim.Port{No: 1, Name: "tap-a"})
	s := h.connect(sw)
	if err := sw.AddPort(ofsim.Port{No: 2, Name: "tap-b"}); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("port added", func(e Event) bool {
		p, ok := e.(PortStatus)
		return ok && p.Reason == PortAdded && p.Port.No == 2 && p.Port.Name == "tap-b"
	})
	if err := sw.AddPort(ofsim.Port{No: 1, Name: "tap-renamed"}); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("port renamed", func(e Event) bool {
		p, ok := e.(PortStatus)
		return ok && p.Reason == PortRenamed && p.OldName == "tap-a" && p.Port.Name == "tap-renamed"
	})
	if err := sw.DelPort(2); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("port deleted", func(e Event) bool {
		p, ok := e.(PortStatus)
		return ok && p.Reason == PortDeleted && p.Port.No == 2
	})
	eventually(t, "port table updated", func() bool { return len(s.Ports()) == 1 })
}

func TestPacketInDispatchAndBudget(t *testing.T) {
	h := newHarness(t, Config{PacketInRate: 0.001, PacketInBurst: 3})
	var mu sync.Mutex
	var got []*PacketIn
	h.srv.HandlePacketIn(5, 0x100, 0xf00, func(pi *PacketIn) {
		mu.Lock()
		got = append(got, pi)
		mu.Unlock()
	})
	other := 0
	h.srv.HandlePacketIn(6, 0, 0, func(*PacketIn) { mu.Lock(); other++; mu.Unlock() })
	sw := newSwitch(t, 7)
	s := h.connect(sw)
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06}
	for range 10 {
		if err := sw.SendPacketIn(5, 0x1ab, 9, frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Barrier(context.Background()); err != nil { // packet-ins before it are handled
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || other != 0 {
		t.Fatalf("delivered %d (want the 3 of the burst), other handler %d", len(got), other)
	}
	if p := got[0]; p.InPort != 9 || p.Table != 5 || p.Cookie != 0x1ab || string(p.Data) != string(frame) || p.Session != s {
		t.Fatalf("packet-in %+v", p)
	}
	if s.PacketInsDropped() != 7 {
		t.Fatalf("dropped %d", s.PacketInsDropped())
	}
	if d, _ := h.srv.PacketInStats(); d != 7 {
		t.Fatalf("server dropped %d", d)
	}
}

func TestSendValidatesAndReserveXIDsSkipsZero(t *testing.T) {
	h := newHarness(t, Config{})
	s := h.connect(newSwitch(t, 9))
	if err := s.Send(context.Background(), []byte{4, 0}); err == nil {
		t.Fatal("short message accepted")
	}
	s.xid.Store(^uint32(0) - 1)
	first := s.ReserveXIDs(4)
	if first == 0 || first+3 < first {
		t.Fatalf("xid range %d..%d wraps or includes 0", first, first+3)
	}
}

func TestServerStopClosesSessions(t *testing.T) {
	h := newHarness(t, Config{})
	s := h.connect(newSwitch(t, 12))
	h.stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("session open after Serve returned")
	}
}
