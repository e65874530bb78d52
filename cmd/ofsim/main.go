// Command ofsim runs thousands of simulated Open vSwitch bridges in one process, three per
// host (br-int, br-tun, br-ex), each on its own OpenFlow 1.3 TCP session to the controller,
// with OVS's flow-mod semantics, errors and ingest rates (package ofproto/ofsim).
//
//	ofsim -controller 127.0.0.1:6653 -topology topo.json [-api http://127.0.0.1:9696 -token T]
//	      [-rate 10000 -bundle-rate 60000 -connect-rate 500] [-admin 127.0.0.1:6680]
//
// -topology is the JSON of a topogen.Result (hosts with their datapath IDs and VM ports);
// each VM port is a tap on its host's br-int from the start. With -api, ofsim also plays each
// host helper's part that the controller sees: it follows the host's namespace plan (long
// poll) and plugs or unplugs the plan's bridge links. The admin HTTP server plugs and
// unplugs ports by hand (the switch sends a port-status) and shows the switches:
//
//	POST   /hosts/{host}/ports   {"port_id":"<neutron port id>"} or {"name":"tapXXXX"}
//	DELETE /hosts/{host}/ports/{name}
//	GET    /switches             one line per switch: dpid host bridge connected flows flow-mods
//	GET    /switches/{dpid}/flows
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/northbound/topogen"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

type config struct {
	controller, topology, api, token, admin string
	rate, bundleRate, connectRate           float64
	maxBackoff                              time.Duration
	logLevel                                zapcore.Level
}

func parseFlags(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("ofsim", flag.ContinueOnError)
	c := &config{}
	fs.StringVar(&c.controller, "controller", "127.0.0.1:6653", "controller's OpenFlow address")
	fs.StringVar(&c.topology, "topology", "", "JSON file of a topogen.Result (required)")
	fs.StringVar(&c.api, "api", "", "dvrflowd API URL: follow each host's plan and plug its links")
	fs.StringVar(&c.token, "token", getenv("DVRFLOW_AUTH_TOKEN"), "X-Auth-Token for -api (env DVRFLOW_AUTH_TOKEN)")
	fs.StringVar(&c.admin, "admin", "", "admin HTTP address (plug/unplug, dumps); empty: none")
	fs.Float64Var(&c.rate, "rate", 10000, "flow-mods per second each bridge takes one by one (0: unlimited)")
	fs.Float64Var(&c.bundleRate, "bundle-rate", 60000, "flow-mods per second each bridge takes in bundles (0: as -rate)")
	fs.Float64Var(&c.connectRate, "connect-rate", 500, "sessions started per second (0: all at once)")
	fs.DurationVar(&c.maxBackoff, "max-backoff", 8*time.Second, "reconnection backoff cap (OVS's max_backoff)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.topology == "" {
		return nil, errors.New("-topology is required")
	}
	if _, _, err := net.SplitHostPort(c.controller); err != nil {
		return nil, fmt.Errorf("-controller: %w", err)
	}
	if c.rate < 0 || c.bundleRate < 0 || c.connectRate < 0 {
		return nil, errors.New("-rate, -bundle-rate and -connect-rate must not be negative")
	}
	var err error
	if c.logLevel, err = zapcore.ParseLevel(*level); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	return c, nil
}

// readTopology reads and checks a topogen.Result.
func readTopology(path string) (*topogen.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var res topogen.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	if len(res.Hosts) == 0 {
		return nil, fmt.Errorf("topology %s: no hosts", path)
	}
	seen := map[uint64]string{}
	names := map[string]bool{}
	for _, h := range res.Hosts {
		if h.Name == "" || names[h.Name] {
			return nil, fmt.Errorf("topology %s: host name %q empty or repeated", path, h.Name)
		}
		names[h.Name] = true
		for _, br := range topology.Bridges() {
			dpid, ok := h.DPIDs[string(br)]
			if !ok || dpid == 0 {
				return nil, fmt.Errorf("topology %s: host %s has no datapath ID for %s", path, h.Name, br)
			}
			if other, dup := seen[dpid]; dup {
				return nil, fmt.Errorf("topology %s: datapath ID %016x of %s %s is also %s's", path, dpid, h.Name, br, other)
			}
			seen[dpid] = h.Name + " " + string(br)
		}
	}
	return &res, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofsim:", err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Development, zc.DisableStacktrace = false, true
	zc.Level = zap.NewAtomicLevelAt(cfg.logLevel)
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofsim: logger:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, cfg); err != nil {
		log.Error("ofsim failed", zap.Error(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, log *zap.Logger, cfg *config) error {
	topo, err := readTopology(cfg.topology)
	if err != nil {
		return err
	}
	sim := newSim(log, cfg, topo)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if cfg.admin != "" {
		ln, err := net.Listen("tcp", cfg.admin)
		if err != nil {
			return fmt.Errorf("admin listen: %w", err)
		}
		srv := &http.Server{Handler: sim.routes(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		context.AfterFunc(ctx, func() { _ = srv.Close() })
		log.Info("admin HTTP", zap.String("listen", ln.Addr().String()))
	}
	if cfg.api != "" {
		for _, h := range topo.Hosts {
			wg.Add(1)
			go func() { defer wg.Done(); sim.followPlan(ctx, h.Name) }()
		}
	}
	log.Info("simulating", zap.Int("hosts", len(topo.Hosts)), zap.Int("switches", 3*len(topo.Hosts)), zap.String("controller", cfg.controller))
	wg.Add(1)
	go func() { defer wg.Done(); errc <- sim.fleet.Run(ctx) }()
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	return first
}

// host is one simulated hypervisor's bridges.
type host struct {
	name    string
	bridges map[topology.Bridge]*ofsim.Switch

	mu      sync.Mutex
	next    map[topology.Bridge]uint32
	plugged map[string]topology.Bridge // OVS port name -> bridge, for plan links
}

type sim struct {
	log    *zap.Logger
	cfg    *config
	fleet  *ofsim.Fleet
	hosts  map[string]*host
	byDPID map[uint64]*ofsim.Switch
	where  map[uint64]string // dpid -> "host bridge"
	api    *apiclient.Client
}

// newSim builds every host's bridges with the ports the host helper creates: br-int with
// patch-tun, int-br-ex and the VM taps; br-tun with patch-int and vxlan0; br-ex with
// phy-br-ex and an uplink.
func newSim(log *zap.Logger, cfg *config, topo *topogen.Result) *sim {
	s := &sim{log: log, cfg: cfg, hosts: map[string]*host{}, byDPID: map[uint64]*ofsim.Switch{}, where: map[uint64]string{},
		fleet: ofsim.NewFleet(log, ofsim.FleetConfig{Addr: cfg.controller, ConnectRate: cfg.connectRate, MaxBackoff: cfg.maxBackoff}),
		api:   apiclient.New(cfg.api, cfg.token, &http.Client{Timeout: 2 * time.Minute})}
	for _, th := range topo.Hosts {
		h := &host{name: th.Name, bridges: map[topology.Bridge]*ofsim.Switch{}, next: map[topology.Bridge]uint32{}, plugged: map[string]topology.Bridge{}}
		for _, br := range topology.Bridges() {
			var ports []ofsim.Port
			add := func(name string, no uint32) { ports = append(ports, ofsim.Port{No: no, Name: name}) }
			next := uint32(3)
			switch br {
			case topology.BrInt:
				add(apps.PortPatchTun, 1)
				add(apps.PortIntBrEx, 2)
				next = 10
				for _, p := range th.Ports {
					add(apps.VMPortName(p.ID), next)
					next++
				}
			case topology.BrTun:
				add(apps.PortPatchInt, 1)
				add(apps.PortVXLAN, 2)
			case topology.BrEx:
				add(apps.PortPhyBrEx, 1)
				add("eth-ext", 2)
			}
			dpid := th.DPIDs[string(br)]
			sw := ofsim.New(log, ofsim.Config{DPID: dpid, Ports: ports, FlowModRate: cfg.rate, BundleFlowModRate: cfg.bundleRate})
			h.bridges[br], h.next[br] = sw, next
			s.byDPID[dpid], s.where[dpid] = sw, th.Name+" "+string(br)
			s.fleet.Add(sw)
		}
		s.hosts[th.Name] = h
	}
	return s
}

// plug adds a port to one of the host's bridges; the switch reports it with a port-status.
func (h *host) plug(br topology.Bridge, name string) (uint32, error) {
	sw, ok := h.bridges[br]
	if !ok {
		return 0, fmt.Errorf("host %s has no bridge %q", h.name, br)
	}
	for _, p := range sw.Ports() {
		if p.Name == name {
			return 0, fmt.Errorf("host %s %s already has a port %s (%d)", h.name, br, name, p.No)
		}
	}
	h.mu.Lock()
	no := h.next[br]
	h.next[br]++
	h.mu.Unlock()
	return no, sw.AddPort(ofsim.Port{No: no, Name: name})
}

// unplug removes a port by name.
func (h *host) unplug(br topology.Bridge, name string) error {
	sw, ok := h.bridges[br]
	if !ok {
		return fmt.Errorf("host %s has no bridge %q", h.name, br)
	}
	for _, p := range sw.Ports() {
		if p.Name == name {
			return sw.DelPort(p.No)
		}
	}
	return fmt.Errorf("host %s %s has no port %s", h.name, br, name)
}

// followPlan plays the host helper's part the controller sees: the OVS end of every
// bridge-plugged link of the host's plan is a port of that bridge, and goes with the link.
func (s *sim) followPlan(ctx context.Context, name string) {
	h := s.hosts[name]
	log := s.log.With(zap.String("host", name))
	after := int64(-1)
	for ctx.Err() == nil {
		p, code, err := s.fetchPlan(ctx, name, after)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("plan", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		if code == http.StatusNotModified {
			continue
		}
		after = p.Revision
		want := map[string]topology.Bridge{}
		for _, ns := range p.Namespaces {
			for _, l := range ns.Links {
				if l.Bridge != "" {
					want[plan.OVSPeerName(l.Name)] = topology.Bridge(l.Bridge)
				}
			}
		}
		h.mu.Lock()
		var add, del []string
		for n := range want {
			if _, ok := h.plugged[n]; !ok {
				add = append(add, n)
			}
		}
		for n := range h.plugged {
			if _, ok := want[n]; !ok {
				del = append(del, n)
			}
		}
		h.mu.Unlock()
		slices.Sort(add)
		for _, n := range add {
			if _, err := h.plug(want[n], n); err != nil {
				log.Warn("plug", zap.String("port", n), zap.Error(err))
			}
			h.mu.Lock()
			h.plugged[n] = want[n]
			h.mu.Unlock()
		}
		for _, n := range del {
			h.mu.Lock()
			br := h.plugged[n]
			delete(h.plugged, n)
			h.mu.Unlock()
			if err := h.unplug(br, n); err != nil {
				log.Warn("unplug", zap.String("port", n), zap.Error(err))
			}
		}
	}
}

func (s *sim) fetchPlan(ctx context.Context, host string, after int64) (plan.Plan, int, error) {
	var out struct {
		Plan plan.Plan `json:"plan"`
	}
	code, err := s.api.Do(ctx, http.MethodGet, fmt.Sprintf("/v2.0/dvr-hosts/%s/plan?after_revision=%d&timeout=30", host, after), nil, &out)
	if err != nil {
		return out.Plan, code, fmt.Errorf("plan of %s: %w", host, err)
	}
	return out.Plan, code, nil
}

// routes is the admin HTTP API.
func (s *sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hosts/{host}/ports", func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.hosts[r.PathValue("host")]
		if !ok {
			http.Error(w, "no such host", http.StatusNotFound)
			return
		}
		var body struct {
			PortID string `json:"port_id"`
			Name   string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		name := body.Name
		if body.PortID != "" {
			name = apps.VMPortName(body.PortID)
		}
		if name == "" || len(name) > 15 || (body.PortID != "" && body.Name != "") {
			http.Error(w, "give port_id or name (at most 15 characters), not both", http.StatusBadRequest)
			return
		}
		no, err := h.plug(topology.BrInt, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "ofport": no})
	})
	mux.HandleFunc("DELETE /hosts/{host}/ports/{name}", func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.hosts[r.PathValue("host")]
		if !ok {
			http.Error(w, "no such host", http.StatusNotFound)
			return
		}
		if err := h.unplug(topology.BrInt, r.PathValue("name")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /switches", func(w http.ResponseWriter, r *http.Request) {
		dpids := make([]uint64, 0, len(s.byDPID))
		for d := range s.byDPID {
			dpids = append(dpids, d)
		}
		slices.Sort(dpids)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, d := range dpids {
			sw := s.byDPID[d]
			c := sw.Counts()
			fmt.Fprintf(w, "%016x %s flows=%d flow_mods=%d sessions=%d errors=%d\n", d, s.where[d], sw.NumFlows(), c.Total(), c.Connections, c.Errors)
		}
	})
	mux.HandleFunc("GET /switches/{dpid}/flows", func(w http.ResponseWriter, r *http.Request) {
		d, err := strconv.ParseUint(strings.TrimPrefix(r.PathValue("dpid"), "0x"), 16, 64)
		if err != nil {
			http.Error(w, "dpid: want hex digits", http.StatusBadRequest)
			return
		}
		sw, ok := s.byDPID[d]
		if !ok {
			http.Error(w, "no such switch", http.StatusNotFound)
			return
		}
		out, err := sw.DumpFlows()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(out))
	})
	return mux
}
