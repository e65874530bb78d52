package topogen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/northbound/topogen"
	"github.com/dvrflow/dvrflow/topology"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

const token = "admin-secret"

// serve runs a dvrflow API on a fresh database.
func serve(t *testing.T) (*db.Store, string) {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	st, err := db.Open(context.Background(), pg.NewDatabase(t), db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = token
	s, err := northbound.New(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return st, srv.URL
}

func TestLoad(t *testing.T) {
	ctx := context.Background()
	st, url := serve(t)
	opt := topogen.Options{Hosts: 50, VMsPerHost: 4, Networks: 20, Routers: 8, FIPPercent: 10, SNATHosts: 2, Seed: 3, BatchSize: 37}
	res, err := topogen.Load(ctx, zaptest.NewLogger(t), topogen.Client{URL: url, Token: token}, opt)
	if err != nil {
		t.Fatal(err)
	}
	topo, _, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Hosts: as returned, registered with their bridges.
	if len(res.Hosts) != 50 || len(topo.Hosts) != 50 {
		t.Fatalf("%d hosts in result, %d registered", len(res.Hosts), len(topo.Hosts))
	}
	stored := map[string]topology.Host{}
	for _, h := range topo.Hosts {
		stored[h.Name] = h
	}
	modes := map[string]int{}
	for _, h := range res.Hosts {
		modes[h.Mode]++
		sh, ok := stored[h.Name]
		if !ok || string(sh.Mode) != h.Mode || sh.TunnelIP != h.TunnelIP || len(sh.Bridges) != 3 {
			t.Fatalf("host %+v stored as %+v", h, sh)
		}
		for br, dpid := range h.DPIDs {
			if want := fmtDPID(dpid); sh.Bridges[br] != want {
				t.Fatalf("host %s bridge %s DPID %s, want %s", h.Name, br, sh.Bridges[br], want)
			}
		}
	}
	if modes["dvr_snat"] != 2 || modes["dvr"] != 48 {
		t.Fatalf("modes %v", modes)
	}
	// Ports by owner.
	owners := map[string]int{}
	byID := map[string]topology.Port{}
	for _, p := range topo.Ports {
		owners[p.DeviceOwner]++
		byID[p.ID] = p
	}
	fipHosts := map[string]bool{}
	vms, fips := 0, 0
	for _, h := range res.Hosts {
		if len(h.Ports) != 4 {
			t.Fatalf("host %s has %d VM ports, want 4", h.Name, len(h.Ports))
		}
		for _, p := range h.Ports {
			vms++
			sp, ok := byID[p.ID]
			if !ok || sp.HostID != h.Name || sp.MACAddress != p.MAC || sp.NetworkID != p.Network || len(p.IPs) != 1 || sp.FixedIPs[0].IPAddress != p.IPs[0] {
				t.Fatalf("result port %+v on %s, stored %+v", p, h.Name, sp)
			}
			if p.FloatingIP != "" {
				fips++
				fipHosts[h.Name] = true
				if !netip.MustParsePrefix("172.16.0.0/24").Contains(netip.MustParseAddr(p.FloatingIP)) {
					t.Fatalf("floating IP %s outside the external subnet", p.FloatingIP)
				}
			}
		}
	}
	want := map[string]int{"compute:nova": 200, topology.OwnerRouterInterfaceDistributed: 16, topology.OwnerRouterCentralizedSNAT: 16,
		topology.OwnerRouterGateway: 8, topology.OwnerFloatingIP: 20, topology.OwnerFloatingIPAgentGateway: len(fipHosts)}
	for o, n := range want {
		if owners[o] != n {
			t.Errorf("%d ports of %s, want %d (all: %v)", owners[o], o, n, owners)
		}
	}
	if vms != 200 || fips != 20 || len(topo.FloatingIPs) != 20 || len(topo.Routers) != 8 || len(topo.Networks) != 21 || len(topo.Subnets) != 21 {
		t.Fatalf("%d VMs, %d FIPs (%d stored), %d routers, %d networks, %d subnets", vms, fips, len(topo.FloatingIPs),
			len(topo.Routers), len(topo.Networks), len(topo.Subnets))
	}
	// Placement: every network's 10 VMs on a few hosts, not one and not ten.
	hostsOfNet := map[string]map[string]bool{}
	for _, h := range res.Hosts {
		for _, p := range h.Ports {
			if hostsOfNet[p.Network] == nil {
				hostsOfNet[p.Network] = map[string]bool{}
			}
			hostsOfNet[p.Network][h.Name] = true
		}
	}
	if len(hostsOfNet) != 20 {
		t.Fatalf("VMs on %d networks, want 20", len(hostsOfNet))
	}
	for n, hs := range hostsOfNet {
		if len(hs) < 2 || len(hs) > 10 {
			t.Fatalf("network %s on %d hosts", n, len(hs))
		}
	}
	// Requests: 50 hosts, 2 external, 1+1 bulk networks/subnets, 6 port batches, 8
	// routers, 16 interfaces, 20 floating IPs.
	if res.Requests != 50+2+1+1+6+8+16+20 || res.Objects != 50+2+20+20+8+16+200+20 {
		t.Fatalf("%d requests, %d objects", res.Requests, res.Objects)
	}
	raw, err := json.Marshal(res)
	if err != nil || len(raw) == 0 {
		t.Fatalf("result does not encode: %v", err)
	}
}

func TestLoadFailsCleanly(t *testing.T) {
	_, url := serve(t)
	opt := topogen.Options{Hosts: 4, VMsPerHost: 1, Networks: 2, Routers: 1, SNATHosts: 1}
	_, err := topogen.Load(context.Background(), zaptest.NewLogger(t), topogen.Client{URL: url, Token: "wrong"}, opt)
	if err == nil {
		t.Fatal("load with a bad token succeeded")
	}
	if _, err := topogen.Load(context.Background(), zaptest.NewLogger(t), topogen.Client{URL: url, Token: token}, topogen.Options{}); err == nil {
		t.Fatal("load of empty options succeeded")
	}
}

func fmtDPID(d uint64) string { return fmt.Sprintf("%016x", d) }
