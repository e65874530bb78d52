package controller

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// With roles, a switch is this controller's only as its master: no event, no packet-in
// and no reconciler before its role request in the mastership's term succeeded, and none
// once it is a slave again. A master role request the switch refuses as stale is
// reported, and leaves the switch someone else's.
func TestRolesGateTheSwitch(t *testing.T) {
	var stale atomic.Int64
	h := newHarnessWith(t, Config{}, func(s *Server) { s.EnableRoles(func(uint64) { stale.Add(1) }) })
	var handled atomic.Int64
	h.srv.HandlePacketIn(5, 0, 0, func(*PacketIn) { handled.Add(1) })
	const dpid = 0x77
	sw := newSwitch(t, dpid, ofsim.Port{No: 1, Name: "tap1"})
	sess := h.connect(sw)
	sendPin := func() {
		t.Helper()
		if err := sw.SendPacketIn(5, 0, 1, make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
	}

	// Not named by the mastership yet: equal, unused.
	sendPin()
	eventually(t, "the packet-in dropped", func() bool { return h.srv.PacketInsNotMaster() == 1 })
	if n := h.count(isConnected(dpid)); n != 0 || handled.Load() != 0 {
		t.Fatalf("before any role: %d connected events, %d packet-ins handled", n, handled.Load())
	}
	if r, _ := sw.Role(); r != uint32(RoleEqual) && r != 0 {
		t.Fatalf("switch role %d before any role request", r)
	}

	// Master in term 3.
	h.srv.SetRoles(map[uint64]Mastership{dpid: {Master: true, Term: 3}})
	ev := h.waitEvent("connected", isConnected(dpid)).(SwitchConnected)
	if len(ev.Ports) != 1 || sess.MasterTerm() != 3 {
		t.Fatalf("connected %+v, term %d", ev, sess.MasterTerm())
	}
	if r, gen := sw.Role(); r != uint32(RoleMaster) || gen != 3 {
		t.Fatalf("switch role %d generation %d, want master 3", r, gen)
	}
	h.srv.Reconciler(dpid) // as the engine's first push
	if r, ok := h.srv.ReconcilerOf(dpid); !ok || !r.bound(sess) {
		t.Fatal("the master's reconciler is not attached")
	}
	sendPin()
	eventually(t, "the packet-in handled", func() bool { return handled.Load() == 1 })

	// A slave in term 4: disconnected for the subscribers, its reconciler gone.
	h.srv.SetRoles(map[uint64]Mastership{dpid: {Term: 4}})
	h.waitEvent("disconnected", isDisconnected(dpid))
	eventually(t, "the switch a slave in term 4", func() bool {
		r, gen := sw.Role()
		return r == uint32(RoleSlave) && gen == 4
	})
	if _, ok := h.srv.ReconcilerOf(dpid); ok {
		t.Error("a slave's switch kept its reconciler (and its desired set of the earlier term)")
	}
	h.srv.Reconciler(dpid) // a push in flight: created, never attached
	if r, _ := h.srv.ReconcilerOf(dpid); r.bound(sess) {
		t.Error("a reconciler was attached to a switch this controller is a slave of")
	}
	sendPin() // a slave gets none from the switch (as OVS); had it come, the gate drops it
	time.Sleep(50 * time.Millisecond)
	if handled.Load() != 1 {
		t.Errorf("%d packet-ins handled, want only the master's one", handled.Load())
	}

	// Master again in term 3, older than the switch's 4: refused as stale.
	h.srv.SetRoles(map[uint64]Mastership{dpid: {Master: true, Term: 3}})
	eventually(t, "the stale refusal reported", func() bool { return stale.Load() == 1 })
	if n := h.count(isConnected(dpid)); n != 1 || sess.MasterTerm() != 0 {
		t.Fatalf("after a stale refusal: %d connected events, term %d", n, sess.MasterTerm())
	}
	if r, gen := sw.Role(); r != uint32(RoleSlave) || gen != 4 {
		t.Fatalf("switch role %d generation %d after the stale request, want slave 4", r, gen)
	}

	// Master in term 5: connected again with a fresh reconciler.
	h.srv.SetRoles(map[uint64]Mastership{dpid: {Master: true, Term: 5}})
	eventually(t, "connected again", func() bool { return h.count(isConnected(dpid)) == 2 })
	if r, gen := sw.Role(); r != uint32(RoleMaster) || gen != 5 {
		t.Fatalf("switch role %d generation %d, want master 5", r, gen)
	}
	if r, ok := h.srv.ReconcilerOf(dpid); ok && r.Stats().Desired != 0 {
		t.Error("the new mastership found a desired set of an earlier one")
	}
}
