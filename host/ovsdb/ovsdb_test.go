package ovsdb

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/database/inmemory"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/server"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/host/ovsdb/vswitch"
)

// newServer starts libovsdb's in-memory OVSDB server with the Open_vSwitch schema and
// its root row, and returns a Client connected to it.
func newServer(t *testing.T) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	schema := vswitch.Schema()
	lg := logr.Discard()
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{schema.Name: clientModel}, &lg)
	dbModel, errs := model.NewDatabaseModel(schema, clientModel)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv, err := server.NewOvsdbServer(db, &lg, dbModel)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "db.sock")
	go func() { _ = srv.Serve("unix", sock) }()
	t.Cleanup(srv.Close)
	for !srv.Ready() {
		if ctx.Err() != nil {
			t.Fatal("in-memory ovsdb server never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c, err := Dial(ctx, zaptest.NewLogger(t), "unix:"+sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	root := &vswitch.OpenvSwitch{UUID: "root"}
	ops, err := c.cl.Create(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.transact(ctx, "root row", ops); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, func() bool { _, err := c.rootRow(ctx); return err == nil })
	return c
}

func waitFor(t *testing.T, c *Client, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := c.changes()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("condition never held")
		}
	}
}

// dump renders the rows our code writes, to compare database states.
func dump(t *testing.T, c *Client) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	var brs []vswitch.Bridge
	var ports []vswitch.Port
	var ifaces []vswitch.Interface
	var ctrls []vswitch.Controller
	for _, l := range []any{&brs, &ports, &ifaces, &ctrls} {
		if err := c.cl.List(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for _, x := range brs {
		lines = append(lines, fmt.Sprintf("bridge %s %s %v %v %d ports %v %v ctrl=%v", x.UUID, x.Name, x.DatapathType, *x.FailMode, len(x.Ports), x.OtherConfig, x.ExternalIDs, x.Controller))
	}
	for _, x := range ports {
		lines = append(lines, fmt.Sprintf("port %s %s %v", x.UUID, x.Name, x.Interfaces))
	}
	for _, x := range ifaces {
		lines = append(lines, fmt.Sprintf("iface %s %s %q %v %v", x.UUID, x.Name, x.Type, x.Options, x.ExternalIDs))
	}
	for _, x := range ctrls {
		lines = append(lines, fmt.Sprintf("controller %s %s %v", x.UUID, x.Target, *x.ConnectionMode))
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func brInt() Bridge {
	return Bridge{Name: "br-int", DatapathType: "netdev", FailMode: "secure", Protocols: []string{"OpenFlow13"},
		Controllers: []string{"tcp:192.168.248.254:6653"}, DatapathID: "00000000000000a1",
		ExternalIDs: map[string]string{"dvrflow-host": "compute1"}}
}

func TestEnsureBridge(t *testing.T) {
	c := newServer(t)
	ctx := context.Background()
	changed, err := c.EnsureBridge(ctx, brInt())
	if err != nil || !changed {
		t.Fatalf("first EnsureBridge = %v, %v; want changed", changed, err)
	}
	br, err := c.bridgeByName(ctx, "br-int")
	if err != nil || br == nil {
		t.Fatalf("bridge missing: %v", err)
	}
	if br.DatapathType != "netdev" || *br.FailMode != "secure" || !slices.Equal(br.Protocols, []string{"OpenFlow13"}) ||
		br.OtherConfig["datapath-id"] != "00000000000000a1" || br.ExternalIDs["dvrflow-host"] != "compute1" {
		t.Errorf("bridge = %+v", br)
	}
	if len(br.Ports) != 1 {
		t.Fatalf("bridge has %d ports, want its internal port", len(br.Ports))
	}
	if i, _ := c.ifaceByName(ctx, "br-int"); i == nil || i.Type != "internal" {
		t.Errorf("internal interface = %+v", i)
	}
	ctrl := &vswitch.Controller{UUID: br.Controller[0]}
	if err := c.cl.Get(ctx, ctrl); err != nil || ctrl.Target != "tcp:192.168.248.254:6653" || *ctrl.ConnectionMode != "out-of-band" {
		t.Errorf("controller = %+v, %v", ctrl, err)
	}

	before := dump(t, c)
	if changed, err := c.EnsureBridge(ctx, brInt()); err != nil || changed {
		t.Fatalf("second EnsureBridge = %v, %v; want no change", changed, err)
	}
	if after := dump(t, c); after != before {
		t.Errorf("idempotent call changed the database:\n%s\nvs\n%s", before, after)
	}

	// Changing the controllers, fail mode and datapath ID updates the same bridge.
	b := brInt()
	b.Controllers = []string{"tcp:192.168.248.254:6653", "tcp:192.168.248.253:6653"}
	b.FailMode = "standalone"
	b.DatapathID = "00000000000000b2"
	if changed, err := c.EnsureBridge(ctx, b); err != nil || !changed {
		t.Fatalf("EnsureBridge(update) = %v, %v", changed, err)
	}
	br2, _ := c.bridgeByName(ctx, "br-int")
	if br2.UUID != br.UUID || len(br2.Controller) != 2 || *br2.FailMode != "standalone" || br2.OtherConfig["datapath-id"] != "00000000000000b2" {
		t.Errorf("updated bridge = %+v", br2)
	}
	if changed, err := c.EnsureBridge(ctx, b); err != nil || changed {
		t.Fatalf("EnsureBridge(update again) = %v, %v; want no change", changed, err)
	}
}

func TestEnsureBridgeRejectsBadInput(t *testing.T) {
	c := newServer(t)
	ctx := context.Background()
	if _, err := c.EnsureBridge(ctx, brInt()); err != nil {
		t.Fatal(err)
	}
	before := dump(t, c)
	bad := map[string]func(*Bridge){
		"long name":       func(b *Bridge) { b.Name = "br-much-too-long-name" },
		"empty name":      func(b *Bridge) { b.Name = "" },
		"datapath type":   func(b *Bridge) { b.DatapathType = "dpdk" },
		"fail mode":       func(b *Bridge) { b.FailMode = "open" },
		"no protocols":    func(b *Bridge) { b.Protocols = nil },
		"protocol":        func(b *Bridge) { b.Protocols = []string{"OpenFlow16"} },
		"controller":      func(b *Bridge) { b.Controllers = []string{"tcp:192.168.248.254"} },
		"controller kind": func(b *Bridge) { b.Controllers = []string{"udp:1.2.3.4:6653"} },
		"controller dup":  func(b *Bridge) { b.Controllers = []string{"tcp:1.2.3.4:6653", "tcp:1.2.3.4:6653"} },
		"dpid short":      func(b *Bridge) { b.DatapathID = "a1" },
		"dpid hex":        func(b *Bridge) { b.DatapathID = "00000000000000g1" },
	}
	for name, mod := range bad {
		b := brInt()
		b.ExternalIDs = map[string]string{"marker": name}
		mod(&b)
		if changed, err := c.EnsureBridge(ctx, b); err == nil || changed {
			t.Errorf("%s: EnsureBridge = %v, %v; want an error and no change", name, changed, err)
		}
	}
	if after := dump(t, c); after != before {
		t.Errorf("rejected input changed the database:\n%s\nvs\n%s", before, after)
	}
}

func TestPortsPatchVXLANPlug(t *testing.T) {
	c := newServer(t)
	ctx := context.Background()
	for _, n := range []string{"br-int", "br-tun"} {
		b := brInt()
		b.Name = n
		if _, err := c.EnsureBridge(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func() (bool, error)
	}{
		{"patch", func() (bool, error) { return c.EnsurePatchPair(ctx, "br-int", "patch-tun", "br-tun", "patch-int") }},
		{"vxlan", func() (bool, error) { return c.EnsureVXLAN(ctx, "br-tun", "vxlan0", "192.168.248.1") }},
		{"plug", func() (bool, error) {
			return c.PlugPort(ctx, "br-int", "tap1", "8a7d5e2c-port", "FA:16:3E:00:00:01", "")
		}},
	}
	for _, s := range steps {
		if ch, err := s.do(); err != nil || !ch {
			t.Fatalf("%s: %v, %v; want changed", s.name, ch, err)
		}
		before := dump(t, c)
		if ch, err := s.do(); err != nil || ch {
			t.Fatalf("%s again: %v, %v; want no change", s.name, ch, err)
		}
		if dump(t, c) != before {
			t.Fatalf("%s again changed the database", s.name)
		}
	}
	pi, _ := c.ifaceByName(ctx, "patch-int")
	if pi == nil || pi.Type != "patch" || pi.Options["peer"] != "patch-tun" {
		t.Errorf("patch-int = %+v", pi)
	}
	vx, _ := c.ifaceByName(ctx, "vxlan0")
	if vx == nil || vx.Type != "vxlan" || vx.Options["remote_ip"] != "flow" || vx.Options["key"] != "flow" || vx.Options["local_ip"] != "192.168.248.1" {
		t.Errorf("vxlan0 = %+v", vx)
	}
	tap, _ := c.ifaceByName(ctx, "tap1")
	if tap == nil || tap.ExternalIDs[ExtIfaceID] != "8a7d5e2c-port" || tap.ExternalIDs[ExtAttachedMAC] != "fa:16:3e:00:00:01" || tap.ExternalIDs[ExtIfaceStatus] != "active" {
		t.Errorf("tap1 = %+v", tap)
	}
	if names, err := c.Ports(ctx, "br-int", ExtIfaceID); err != nil || !slices.Equal(names, []string{"tap1"}) {
		t.Errorf("Ports(br-int, iface-id) = %v, %v", names, err)
	}

	// Changing the local IP updates the same port.
	if ch, err := c.EnsureVXLAN(ctx, "br-tun", "vxlan0", "192.168.248.9"); err != nil || !ch {
		t.Fatalf("vxlan update: %v, %v", ch, err)
	}
	if vx, _ := c.ifaceByName(ctx, "vxlan0"); vx.Options["local_ip"] != "192.168.248.9" {
		t.Errorf("vxlan0 after update = %+v", vx)
	}

	before := dump(t, c)
	bad := map[string]func() (bool, error){
		"plug on other bridge": func() (bool, error) { return c.PlugPort(ctx, "br-tun", "tap1", "x", "fa:16:3e:00:00:01", "") },
		"plug bad mac":         func() (bool, error) { return c.PlugPort(ctx, "br-int", "tap2", "x", "fa:16:3e:00:00", "") },
		"plug no iface-id":     func() (bool, error) { return c.PlugPort(ctx, "br-int", "tap2", "", "fa:16:3e:00:00:02", "") },
		"plug bad status":      func() (bool, error) { return c.PlugPort(ctx, "br-int", "tap2", "x", "fa:16:3e:00:00:02", "up") },
		"plug no bridge":       func() (bool, error) { return c.PlugPort(ctx, "br-nope", "tap2", "x", "fa:16:3e:00:00:02", "") },
		"vxlan bad ip":         func() (bool, error) { return c.EnsureVXLAN(ctx, "br-tun", "vxlan1", "192.168.248") },
		"vxlan v6":             func() (bool, error) { return c.EnsureVXLAN(ctx, "br-tun", "vxlan1", "fd00::1") },
		"patch same bridge":    func() (bool, error) { return c.EnsurePatchPair(ctx, "br-int", "a", "br-int", "b") },
		"unplug wrong bridge":  func() (bool, error) { return c.UnplugPort(ctx, "br-tun", "tap1") },
	}
	for name, f := range bad {
		if ch, err := f(); err == nil || ch {
			t.Errorf("%s: %v, %v; want an error and no change", name, ch, err)
		}
	}
	if dump(t, c) != before {
		t.Errorf("rejected input changed the database")
	}

	if ch, err := c.UnplugPort(ctx, "br-int", "tap1"); err != nil || !ch {
		t.Fatalf("unplug: %v, %v", ch, err)
	}
	if ch, err := c.UnplugPort(ctx, "br-int", "tap1"); err != nil || ch {
		t.Fatalf("unplug again: %v, %v; want no change", ch, err)
	}
	if names, _ := c.Ports(ctx, "br-int", ExtIfaceID); len(names) != 0 {
		t.Errorf("ports with iface-id after unplug: %v", names)
	}
}

func TestOFPortWaitsForMonitor(t *testing.T) {
	c := newServer(t)
	ctx := context.Background()
	if _, err := c.EnsureBridge(ctx, brInt()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PlugPort(ctx, "br-int", "tap1", "p1", "fa:16:3e:00:00:01", ""); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if n, err := c.OFPort(short, "tap1"); err == nil {
		t.Fatalf("OFPort before OVS assigned one = %d, want a timeout", n)
	}
	// Play ovs-vswitchd: assign ofport 7 a little later.
	go func() {
		time.Sleep(50 * time.Millisecond)
		i, err := c.ifaceByName(ctx, "tap1")
		if err != nil || i == nil {
			return
		}
		seven := 7
		row := &vswitch.Interface{UUID: i.UUID, Ofport: &seven}
		ops, err := c.cl.Where(row).Update(row, &row.Ofport)
		if err == nil {
			_, _ = c.cl.Transact(ctx, ops...)
		}
	}()
	wctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	n, err := c.OFPort(wctx, "tap1")
	if err != nil || n != 7 {
		t.Fatalf("OFPort = %d, %v; want 7", n, err)
	}
}
