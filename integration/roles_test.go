//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

// roleController is one controller with roles enabled, behind a proxy that counts its
// flow-mods, recording the events it gives subscribers and the stale refusals.
type roleController struct {
	name   string
	srv    *controller.Server
	proxy  *ofProxy
	stale  atomic.Int64
	mu     sync.Mutex
	events []string
}

func startRoleController(t *testing.T, log *zap.Logger, name string, dpid uint64, desired []ofproto.Flow) *roleController {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &roleController{name: name, proxy: startProxy(t)}
	c.proxy.target.Store(ln.Addr().String())
	c.srv = controller.NewServer(log.Named(name), controller.Config{Reconciler: controller.ReconcilerConfig{
		CookieMask: ofOwnMask, CookieValue: ofOwnValue, BundleThreshold: 64}})
	c.srv.EnableRoles(func(uint64) { c.stale.Add(1) })
	// As the engine does: a switch that becomes this controller's gets its desired set.
	c.srv.Subscribe(func(ev controller.Event) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch ev.(type) {
		case controller.SwitchConnected:
			c.events = append(c.events, "connected")
			if err := c.srv.Reconciler(dpid).SetDesired(desired); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case controller.SwitchDisconnected:
			c.events = append(c.events, "disconnected")
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.srv.Serve(ctx, ln); err != nil {
			t.Errorf("%s: serve: %v", name, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *roleController) eventLog() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, ",")
}

// ovsRoles returns the role OVS gives each controller target of the bridge.
func ovsRoles(t *testing.T, ctx context.Context, inst *ovsinst.Instance, bridge string) map[string]string {
	t.Helper()
	out, err := inst.Vsctl(ctx, "--format=csv", "--data=bare", "--no-headings", "--columns=target,role,is_connected", "list", "controller")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, ",")
		if len(f) == 3 && f[2] == "true" {
			roles[strings.TrimPrefix(f[0], "tcp:")] = f[1]
		}
	}
	return roles
}

func waitRoles(t *testing.T, ctx context.Context, inst *ovsinst.Instance, bridge string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ovsRoles(t, ctx, inst, bridge)
		same := len(got) == len(want)
		for k, v := range want {
			same = same && got[k] == v
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("OVS roles %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two controllers with OpenFlow roles on one real OVS bridge: the master installs the
// flows; mastership moving to the other sends 0 flow-mods (it dumps and finds them); the
// old master is a slave that OVS refuses to let write (OFPBRC_IS_SLAVE), and its master
// request in the older term is refused as stale (OFPRRFC_STALE), so it never writes again.
func TestOFRolesRealOVS(t *testing.T) {
	ofNeedOVS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	inst := startOVS(t, ctx, log)
	const dpid = 0xd1f10002
	flows := ofsim.GenerateFlows(500, ofOwnValue|1)
	a := startRoleController(t, log, "ctl-a", dpid, flows)
	b := startRoleController(t, log, "ctl-b", dpid, flows)
	bridge := fmt.Sprintf("ofr%d", os.Getpid()%100000)
	ofBridge(t, ctx, inst, bridge, dpid, a.proxy.ln.Addr().String())
	t.Cleanup(func() {
		if _, err := inst.Vsctl(context.Background(), "del-br", bridge); err != nil {
			t.Errorf("deleting bridge: %v", err)
		}
	})
	aT, bT := a.proxy.ln.Addr().String(), b.proxy.ln.Addr().String()
	if _, err := inst.Vsctl(ctx, "set-controller", bridge, "tcp:"+aT, "tcp:"+bT); err != nil {
		t.Fatal(err)
	}
	waitRoles(t, ctx, inst, bridge, map[string]string{aT: "other", bT: "other"})

	// Term 5: a is master, b a slave.
	a.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Master: true, Term: 5}})
	b.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Term: 5}})
	waitRoles(t, ctx, inst, bridge, map[string]string{aT: "master", bT: "slave"})
	waitFlows(t, ctx, inst, bridge, len(flows))
	if got := b.proxy.flowMods.Load(); got != 0 {
		t.Errorf("the slave sent %d flow-mods", got)
	}
	if a.eventLog() != "connected" || b.eventLog() != "" {
		t.Errorf("events: a %q, b %q; want connected and none", a.eventLog(), b.eventLog())
	}

	// Term 6: b takes over. The switch holds its flows: b sends none.
	before := a.proxy.flowMods.Load()
	b.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Master: true, Term: 6}})
	waitRoles(t, ctx, inst, bridge, map[string]string{aT: "slave", bT: "master"})
	waitSynced(t, b.srv, dpid)
	if got := b.proxy.flowMods.Load(); got != 0 {
		t.Errorf("the new master sent %d flow-mods to a switch that held its flows", got)
	}

	// a, not told yet, still thinks it is master: OVS refuses its writes.
	sess, ok := a.srv.Session(dpid)
	if !ok {
		t.Fatal("a lost its session")
	}
	f := ofsim.GenerateFlows(501, ofOwnValue|1)[500]
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := sess.Request(rctx, ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &f, 0), ofproto.TypeBarrierReply)
	rcancel()
	var oe *controller.OFError
	if !errors.As(err, &oe) || oe.Type != 1 || oe.Code != 10 { // OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE
		t.Errorf("a flow-mod from the old master: %v, want OFPBRC_IS_SLAVE", err)
	}
	// Told, a is a slave; asking for mastership again in its old term is refused as stale.
	a.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Term: 6}})
	waitRoles(t, ctx, inst, bridge, map[string]string{aT: "slave", bT: "master"})
	a.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Master: true, Term: 5}})
	deadline := time.Now().Add(5 * time.Second)
	for a.stale.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a.stale.Load() == 0 {
		t.Error("a master request in an older term was not refused as stale")
	}
	a.srv.SetRoles(map[uint64]controller.Mastership{dpid: {Term: 6}})
	waitRoles(t, ctx, inst, bridge, map[string]string{aT: "slave", bT: "master"})
	if a.proxy.flowMods.Load() != before+1 { // the one refused above
		t.Errorf("the old master sent %d flow-mods after losing mastership", a.proxy.flowMods.Load()-before-1)
	}
	if a.eventLog() != "connected,disconnected" || b.eventLog() != "connected" {
		t.Errorf("events: a %q, b %q; want connected,disconnected and connected", a.eventLog(), b.eventLog())
	}
	waitFlows(t, ctx, inst, bridge, len(flows))
}

func waitFlows(t *testing.T, ctx context.Context, inst *ovsinst.Instance, bridge string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := len(dumpFlows(t, ctx, inst, bridge))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge holds %d flows, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitSynced(t *testing.T, srv *controller.Server, dpid uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, ok := srv.ReconcilerOf(dpid); ok {
			if st := r.Stats(); st.Dumps > 0 && st.Reconciles > 0 && st.LastError == "" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new master's reconciler never completed a pass")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
