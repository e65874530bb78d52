package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// arpConfig is what `ofbench arp` runs.
type arpConfig struct {
	Switches    int
	Duration    time.Duration
	Window      int      // requests in flight per switch
	Controllers []string // dvrflow, osken, testcontroller, in this order
	HostsPerNet int      // hosts sharing one network
	VMsPerHost  int
	Dvrflowd    string // path of the dvrflowd binary
	PGScript    string // deploy/scripts/pg.sh
	OskenApp    string // deploy/bench/osken_arp.py
	ProfileDir  string // when set: CPU profiles of dvrflowd and of the generator while measured
}

// The controllers `ofbench arp` knows.
const (
	ctlDvrflow = "dvrflow"
	ctlOsken   = "osken"
	ctlTestCtl = "testcontroller"
)

// testControllerMaxSwitches is how many switches one ovs-testcontroller serves
// (MAX_SWITCHES in its source): the load is spread over as many processes as needed.
const testControllerMaxSwitches = 16

// arpTimeout is when an unanswered request is counted lost and its slot reused.
const arpTimeout = 10 * time.Second

// arpVM is one VM port of the benchmark topology.
type arpVM struct {
	Host   int
	Net    int
	PortNo uint32
	IP     netip.Addr
	MAC    net.HardwareAddr
	ID     string // Neutron port ID (dvrflow only)
}

// arpTopology is the generated topology: hosts (one switch each), networks of HostsPerNet
// hosts, VMsPerHost VMs per host.
type arpTopology struct {
	Hosts int
	Nets  int
	VMs   []arpVM  // by host, then VM
	ByNet [][]int  // VM indexes of each network
	VLAN  []uint16 // local VLAN of each host's network (learned from dvrflow's flows)
	Names []string // host names
	DPIDs []uint64 // br-int datapath id of each host
	Nw    []string // Neutron network IDs
	Sub   []string // Neutron subnet IDs
	Cook  uint64   // cookie of the packet-ins
	Table uint8    // table of the packet-ins
	Miss  bool     // packet-ins are table misses (OFPR_NO_MATCH), not OFPR_ACTION
	per   int      // VMs per host
}

func newARPTopology(cfg arpConfig) *arpTopology {
	t := &arpTopology{Hosts: cfg.Switches, Nets: (cfg.Switches + cfg.HostsPerNet - 1) / cfg.HostsPerNet,
		Cook: apps.Cookie(apps.AppARP), Table: apps.IntARPResponder, per: cfg.VMsPerHost}
	t.ByNet = make([][]int, t.Nets)
	t.VLAN = make([]uint16, t.Hosts)
	for h := range t.Hosts {
		t.Names = append(t.Names, fmt.Sprintf("arpbench-%04d", h))
		t.DPIDs = append(t.DPIDs, uint64(0xa7000000+h))
		n := h / cfg.HostsPerNet
		t.VLAN[h] = uint16(n%4000 + 1)
		for v := range cfg.VMsPerHost {
			k := (h%cfg.HostsPerNet)*cfg.VMsPerHost + v + 10
			ip := netip.AddrFrom4([4]byte{10, byte(100 + n/250), byte(n % 250), byte(k)})
			// The MAC the API would allocate is only known for dvrflow; the others use this one.
			mac := net.HardwareAddr{0xfa, 0x16, 0x3e, byte(h >> 8), byte(h), byte(v)}
			t.ByNet[n] = append(t.ByNet[n], len(t.VMs))
			t.VMs = append(t.VMs, arpVM{Host: h, Net: n, PortNo: uint32(v + 1), IP: ip, MAC: mac})
		}
	}
	return t
}

// netOf returns the network of host h.
func (t *arpTopology) netOf(h int) int { return t.VMs[h*t.per].Net }

func (t *arpTopology) subnet(n int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + n/250), byte(n % 250), 0}), 24)
}

// arpKey identifies a request by what its reply carries back.
type arpKey struct {
	sha      [6]byte
	spa, tpa [4]byte
}

// arpCombo is one request a switch sends: from a local VM to another address of its network.
type arpCombo struct {
	key    arpKey
	msg    []byte // the whole PACKET_IN
	inPort uint32
	want   [6]byte // the MAC of the target
}

type arpPending struct {
	combo int
	sent  time.Time
}

// arpResults are one switch's counters.
type arpResults struct {
	answered, flooded, wrong, unmatched, lost uint64
	lat                                       []uint32 // microseconds, answered or flooded
}

// arpSwitch is one simulated switch of the load generator.
type arpSwitch struct {
	sw     *ofsim.Switch
	gen    *arpGen
	combos []arpCombo

	mu      sync.Mutex
	next    int
	pending []arpPending
	window  int
	res     arpResults
}

// arpGen is the load generator: the switches, the phase and the counters.
type arpGen struct {
	log        *zap.Logger
	sims       []*arpSwitch
	running    atomic.Bool
	measuring  atomic.Bool
	reconnects atomic.Int64 // connections dropped by the controller and dialled again
	// onMeasure, when set, runs on its own goroutine as the measured period starts.
	onMeasure func(ctx context.Context, d time.Duration)
}

func (g *arpGen) newSwitch(t *arpTopology, h int) *arpSwitch {
	var ports []ofsim.Port
	for _, vi := range t.ByNet[t.netOf(h)] {
		vm := t.VMs[vi]
		if vm.Host != h {
			continue
		}
		name := fmt.Sprintf("tap%d-%d", h, vm.PortNo)
		if vm.ID != "" {
			name = "tap" + vm.ID[:min(11, len(vm.ID))]
		}
		ports = append(ports, ofsim.Port{No: vm.PortNo, Name: name,
			HWAddr: net.HardwareAddr{0xfe, 0x16, 0x3e, byte(h >> 8), byte(h), byte(vm.PortNo)}})
	}
	s := &arpSwitch{gen: g, sw: ofsim.New(g.log, ofsim.Config{DPID: t.DPIDs[h], Ports: ports})}
	return s
}

// setCombos builds the switch's requests: each local VM asks for every other address of
// its network, round robin.
func (s *arpSwitch) setCombos(t *arpTopology, h int) {
	s.combos = s.combos[:0]
	for _, vi := range t.ByNet[t.netOf(h)] {
		src := t.VMs[vi]
		if src.Host != h {
			continue
		}
		for _, ti := range t.ByNet[src.Net] {
			dst := t.VMs[ti]
			if ti == vi {
				continue
			}
			c := arpCombo{inPort: src.PortNo}
			copy(c.key.sha[:], src.MAC)
			c.key.spa, c.key.tpa = src.IP.As4(), dst.IP.As4()
			copy(c.want[:], dst.MAC)
			frame := arpRequestFrame(t.VLAN[h], src.MAC, src.IP, dst.IP)
			c.msg = ofsim.AppendPacketIn(nil, t.Table, t.Cook, src.PortNo, frame)
			if t.Miss {
				c.msg[14] = 0 // ofp_packet_in.reason: OFPR_NO_MATCH
			}
			s.combos = append(s.combos, c)
		}
	}
}

// arpRequestFrame is a VLAN-tagged broadcast ARP request, as br-int's ARP_RESPONDER sends
// it to the controller after LOCAL_SWITCHING tagged it.
func arpRequestFrame(vlan uint16, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	b := make([]byte, 0, 46)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, sha...)
	b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeVLAN)
	b = binary.BigEndian.AppendUint16(b, vlan&0x0fff)
	b = binary.BigEndian.AppendUint16(b, ofproto.EthTypeARP)
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
	b = append(b, sha...)
	s4, t4 := spa.As4(), tpa.As4()
	b = append(b, s4[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, t4[:]...)
	return b
}

// sendLocked picks the next request not in flight and returns its message.
func (s *arpSwitch) sendLocked(now time.Time) []byte {
	for range len(s.combos) {
		c := s.next % len(s.combos)
		s.next++
		if !slices.ContainsFunc(s.pending, func(p arpPending) bool { return p.combo == c }) {
			s.pending = append(s.pending, arpPending{combo: c, sent: now})
			return s.combos[c].msg
		}
	}
	return nil
}

// fill sends requests until the window is full, in one write.
func (s *arpSwitch) fill() {
	if !s.gen.running.Load() {
		return
	}
	var buf []byte
	now := time.Now()
	s.mu.Lock()
	for len(s.pending) < s.window {
		msg := s.sendLocked(now)
		if msg == nil {
			break
		}
		buf = append(buf, msg...)
	}
	s.mu.Unlock()
	if len(buf) == 0 {
		return
	}
	if err := s.sw.SendRaw(buf); err != nil {
		// The connection dropped: its requests time out as lost, the switch dials again.
		s.gen.log.Debug("sending requests", zap.Uint64("dpid", s.sw.DPID()), zap.Error(err))
	}
}

// take sees every message the controller sends the switch; it keeps the PACKET_OUTs.
func (s *arpSwitch) take(msg []byte) bool {
	if ofproto.MsgType(msg[1]) != ofproto.TypePacketOut {
		return false
	}
	now := time.Now()
	key, inPort, flood, ok := parseARPPacketOut(msg)
	s.mu.Lock()
	i := -1
	if ok {
		i = slices.IndexFunc(s.pending, func(p arpPending) bool { return s.combos[p.combo].key == key.key })
	}
	measuring := s.gen.measuring.Load()
	if i < 0 {
		if measuring {
			s.res.unmatched++
		}
		s.mu.Unlock()
		return true
	}
	p := s.pending[i]
	s.pending = slices.Delete(s.pending, i, i+1)
	c := &s.combos[p.combo]
	if measuring {
		switch {
		case flood:
			s.res.flooded++
			s.res.lat = append(s.res.lat, uint32(now.Sub(p.sent)/time.Microsecond))
		case key.sha != c.want || inPort != c.inPort:
			s.res.wrong++
		default:
			s.res.answered++
			s.res.lat = append(s.res.lat, uint32(now.Sub(p.sent)/time.Microsecond))
		}
	}
	s.mu.Unlock()
	return true // the Tap's After refills the window once the whole read is taken
}

// arpReplyKey is what a PACKET_OUT tells: the request it answers and the MAC it gives.
type arpReplyKey struct {
	key arpKey  // of the request answered
	sha [6]byte // the MAC the reply gives for key.tpa
}

// parseARPPacketOut parses a PACKET_OUT carrying an ARP reply (or, from a learning switch,
// the request itself, flood reports that) and returns the request it answers and the port
// of its first output action.
func parseARPPacketOut(msg []byte) (k arpReplyKey, outPort uint32, flood, ok bool) {
	if len(msg) < 24 {
		return k, 0, false, false
	}
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return k, 0, false, false
	}
	acts, data := msg[24:24+alen], msg[24+alen:]
	if len(acts) >= 8 && binary.BigEndian.Uint16(acts) == 0 {
		outPort = binary.BigEndian.Uint32(acts[4:])
	}
	if len(data) < 14 {
		return k, 0, false, false
	}
	et, off := binary.BigEndian.Uint16(data[12:]), 14
	if et == ofproto.EthTypeVLAN && len(data) >= 18 {
		et, off = binary.BigEndian.Uint16(data[16:]), 18
	}
	a := data[off:]
	if et != ofproto.EthTypeARP || len(a) < 28 {
		return k, 0, false, false
	}
	switch binary.BigEndian.Uint16(a[6:]) {
	case 1: // the request, flooded
		copy(k.key.sha[:], a[8:14])
		copy(k.key.spa[:], a[14:18])
		copy(k.key.tpa[:], a[24:28])
		return k, outPort, true, true
	case 2:
		// The reply: to the asker (tha, tpa), from the address asked for (sha, spa), and the
		// Ethernet header must agree.
		if !bytes.Equal(data[0:6], a[18:24]) || !bytes.Equal(data[6:12], a[8:14]) {
			return k, outPort, false, false
		}
		copy(k.key.sha[:], a[18:24])
		copy(k.key.spa[:], a[24:28])
		copy(k.key.tpa[:], a[14:18])
		copy(k.sha[:], a[8:14])
		return k, outPort, false, true
	}
	return k, 0, false, false
}

// sweep counts requests unanswered for arpTimeout as lost and refills their slots.
func (g *arpGen) sweep(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, s := range g.sims {
				s.mu.Lock()
				n := len(s.pending)
				s.pending = slices.DeleteFunc(s.pending, func(p arpPending) bool { return now.Sub(p.sent) > arpTimeout })
				if g.measuring.Load() {
					s.res.lost += uint64(n - len(s.pending))
				}
				s.mu.Unlock()
				s.fill()
			}
		}
	}
}

// arpRow is one controller's figures.
type arpRow struct {
	name                                      string
	procs                                     int
	answered, flooded, wrong, unmatched, lost uint64
	perSec                                    float64
	p50, p99                                  time.Duration
	reconnects                                int64
	cpu                                       float64 // CPU seconds the controller used while measured
	note                                      string
}

// run connects the switches to addrs (switch i to addrs[i*len(addrs)/n]), waits until each
// switch had one request answered, then loads them with window requests each for d.
//
// pids are the controller's processes: the CPU time they use while measured is reported.
func (g *arpGen) run(ctx context.Context, addrs []string, pids []int, window int, d time.Duration, ready func(context.Context) error) (arpRow, error) {
	var row arpRow
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, len(g.sims))
	for i, s := range g.sims {
		addr := addrs[i*len(addrs)/len(g.sims)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Like OVS: a dropped connection is dialled again, after a pause.
			for attempt := 0; ; attempt++ {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					tap := ofsim.NewTap(c, s.take)
					tap.After = s.fill
					err = s.sw.Serve(ctx, tap)
				}
				if ctx.Err() != nil {
					return
				}
				g.reconnects.Add(1)
				if attempt == 20 {
					errc <- fmt.Errorf("switch %016x: 20 reconnections, the last: %w", s.sw.DPID(), err)
					return
				}
				g.log.Debug("switch reconnecting", zap.Uint64("dpid", s.sw.DPID()), zap.Error(err))
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
				}
			}
		}()
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // do not overflow the listen backlog
		}
	}
	if ready != nil {
		if err := ready(ctx); err != nil {
			return row, err
		}
	}
	// Warm-up: one request in flight per switch until every switch had one answered.
	g.running.Store(true)
	defer g.running.Store(false)
	for _, s := range g.sims {
		s.mu.Lock()
		s.window, s.pending, s.res = 1, nil, arpResults{}
		s.mu.Unlock()
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.sweep(ctx) }()
	g.measuring.Store(true)
	for _, s := range g.sims {
		s.fill()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		waiting := 0
		for _, s := range g.sims {
			s.mu.Lock()
			if s.res.answered+s.res.flooded == 0 {
				waiting++
			}
			s.mu.Unlock()
		}
		if waiting == 0 {
			break
		}
		select {
		case err := <-errc:
			return row, err
		case <-ctx.Done():
			return row, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return row, fmt.Errorf("%d of %d switches had no request answered in 3 minutes", waiting, len(g.sims))
		}
	}
	// Load: the full window for a second, then measure.
	g.measuring.Store(false)
	for _, s := range g.sims {
		s.mu.Lock()
		s.window = window
		s.mu.Unlock()
		s.fill()
	}
	time.Sleep(time.Second)
	for _, s := range g.sims {
		s.mu.Lock()
		s.res = arpResults{lat: s.res.lat[:0]}
		s.mu.Unlock()
	}
	cpu0, err := procCPU(pids)
	if err != nil {
		return row, err
	}
	start := time.Now()
	g.measuring.Store(true)
	if g.onMeasure != nil {
		wg.Add(1)
		go func() { defer wg.Done(); g.onMeasure(ctx, d) }()
	}
	select {
	case err := <-errc:
		return row, err
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(d):
	}
	g.measuring.Store(false)
	took := time.Since(start)
	cpu1, err := procCPU(pids)
	if err != nil {
		return row, err
	}
	row.cpu = (cpu1 - cpu0).Seconds()
	var lat []uint32
	for _, s := range g.sims {
		s.mu.Lock()
		r := s.res
		row.answered += r.answered
		row.flooded += r.flooded
		row.wrong += r.wrong
		row.unmatched += r.unmatched
		row.lost += r.lost
		lat = append(lat, r.lat...)
		s.mu.Unlock()
	}
	row.perSec = float64(row.answered+row.flooded) / took.Seconds()
	row.reconnects = g.reconnects.Load()
	slices.Sort(lat)
	if len(lat) > 0 {
		row.p50 = time.Duration(lat[len(lat)/2]) * time.Microsecond
		row.p99 = time.Duration(lat[len(lat)*99/100]) * time.Microsecond
	}
	return row, nil
}

// runARP runs the ARP benchmark against each controller in turn.
func runARP(ctx context.Context, log *zap.Logger, cfg arpConfig) error {
	dir, err := os.MkdirTemp("", "ofbench-arp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user must reach its cluster inside
		return err
	}
	topo := newARPTopology(cfg)
	fmt.Printf("arp: %d simulated OF1.3 switches (one process, this one), %d networks of %d hosts, %d VMs per host;\n",
		cfg.Switches, topo.Nets, cfg.HostsPerNet, cfg.VMsPerHost)
	fmt.Printf("     each switch keeps %d ARP requests in flight as PACKET_INs (table %d, cookie %#x, in_port the VM's;\n",
		cfg.Window, apps.IntARPResponder, topo.Cook)
	fmt.Println("     to ovs-testcontroller the same frames as table-0 misses, the only packet-ins a learning switch handles)")
	fmt.Printf("     for the other addresses of its network; %v measured after a warm-up; lost = unanswered for %v\n", cfg.Duration, arpTimeout)
	var rows []arpRow
	for _, name := range cfg.Controllers {
		var row arpRow
		switch name {
		case ctlDvrflow:
			row, err = arpDvrflow(ctx, log, cfg, topo, dir)
		case ctlOsken:
			row, err = arpOsken(ctx, log, cfg, topo, dir)
		case ctlTestCtl:
			row, err = arpTestController(ctx, log, cfg, topo, dir)
		default:
			return fmt.Errorf("unknown controller %q (want %s, %s or %s)", name, ctlDvrflow, ctlOsken, ctlTestCtl)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		row.name = name
		rows = append(rows, row)
		fmt.Printf("  %s done: %.0f/s\n", name, row.perSec)
	}
	fmt.Printf("\n%-16s %6s %12s %10s %10s %8s %12s %7s %7s %7s %7s  %s\n", "controller", "procs", "answered/s", "p50", "p99",
		"ctl CPU", "per CPU-s", "lost", "wrong", "stray", "redials", "note")
	perSec, perCPUs := map[string]float64{}, map[string]float64{}
	for _, r := range rows {
		perSec[r.name] = r.perSec
		if r.cpu > 0 {
			perCPUs[r.name] = r.perSec * cfg.Duration.Seconds() / r.cpu
		}
		perCPU := 0.0
		if r.cpu > 0 {
			perCPU = r.perSec * cfg.Duration.Seconds() / r.cpu
		}
		fmt.Printf("%-16s %6d %12.0f %10v %10v %7.2fs %12.0f %7d %7d %7d %7d  %s\n", r.name, r.procs, r.perSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.cpu, perCPU,
			r.lost, r.wrong, r.unmatched, r.reconnects, r.note)
	}
	if d, o := perSec[ctlDvrflow], perSec[ctlOsken]; d > 0 && o > 0 {
		fmt.Printf("\nratio dvrflow/os-ken: %.1fx answered/s (target >= 20x)", d/o)
		if dc, oc := perCPUs[ctlDvrflow], perCPUs[ctlOsken]; dc > 0 && oc > 0 {
			fmt.Printf(", %.1fx answers per controller CPU-second", dc/oc)
		}
		fmt.Println()
	}
	fmt.Printf("(2 cores shared by the generator, the controller and anything else running: ctl CPU is the\n" +
		" controller's user+system CPU time while measured, per CPU-s its answers per CPU-second)\n")
	return nil
}

func (g *arpGen) init(t *arpTopology) {
	g.sims = g.sims[:0]
	for h := range t.Hosts {
		s := g.newSwitch(t, h)
		s.setCombos(t, h)
		g.sims = append(g.sims, s)
	}
}

// procCPU returns the user + system CPU time the processes pids have used so far.
func procCPU(pids []int) (time.Duration, error) {
	const clockTick = 100 // USER_HZ on Linux
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("controller CPU time: %w", err)
		}
		// Fields after the command name (which may hold spaces) in parentheses.
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, fmt.Errorf("controller CPU time: /proc/%d/stat: %q", pid, b)
		}
		var ut, st int64
		if _, err := fmt.Sscan(f[11], &ut); err != nil {
			return 0, fmt.Errorf("controller CPU time: utime %q: %w", f[11], err)
		}
		if _, err := fmt.Sscan(f[12], &st); err != nil {
			return 0, fmt.Errorf("controller CPU time: stime %q: %w", f[12], err)
		}
		total += time.Duration(ut+st) * time.Second / clockTick
	}
	return total, nil
}

// freeAddr returns a free TCP address on 127.0.0.1.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a controller process the benchmark started.
type proc struct {
	cmd  *exec.Cmd
	logf string
}

func startProc(ctx context.Context, dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf := filepath.Join(dir, name+".log")
	f, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &proc{cmd: cmd, logf: logf}, nil
}

// stop ends the process (SIGTERM, then SIGKILL after 5s) and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// tail returns the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logf)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitListening waits until addr accepts TCP connections or the process exits.
func (p *proc) waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after 60s:\n%s", p.cmd.Path, addr, p.tail())
		}
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("%s exited:\n%s", p.cmd.Path, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// arpOsken runs the minimal os-ken app (osken-manager) with the address table.
func arpOsken(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	table := map[string]string{}
	for _, vm := range t.VMs {
		table[vm.IP.String()] = vm.MAC.String()
	}
	tf := filepath.Join(dir, "arp-table.json")
	b, err := json.Marshal(table)
	if err != nil {
		return arpRow{}, err
	}
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		return arpRow{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(ctx, dir, "osken", []string{"OFBENCH_ARP_TABLE=" + tf}, "osken-manager",
		"--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", port, cfg.OskenApp)
	if err != nil {
		return arpRow{}, err
	}
	defer p.stop()
	if err := p.waitListening(ctx, addr); err != nil {
		return arpRow{}, err
	}
	g := &arpGen{log: log}
	g.init(t)
	row, err := g.run(ctx, []string{addr}, []int{p.cmd.Process.Pid}, cfg.Window, cfg.Duration, nil)
	if err != nil {
		return row, fmt.Errorf("%w\nosken-manager log:\n%s", err, p.tail())
	}
	row.procs = 1
	row.note = "os-ken " + oskenVersion() + ": PACKET_OUT with the ARP reply"
	return row, nil
}

func oskenVersion() string {
	out, err := exec.Command("/usr/bin/python3", "-c", "import os_ken; print(os_ken.__version__)").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// arpTestController runs ovs-testcontroller, a learning switch: it does not answer ARP, it
// floods the request back in a PACKET_OUT, and that is what is counted.
func arpTestController(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	n := (cfg.Switches + testControllerMaxSwitches - 1) / testControllerMaxSwitches
	var addrs []string
	var procs []*proc
	var pids []int
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return arpRow{}, err
		}
		host, port, _ := net.SplitHostPort(addr)
		p, err := startProc(ctx, dir, fmt.Sprintf("testcontroller-%d", i), nil, "ovs-testcontroller",
			"-O", "OpenFlow13", "--unixctl="+filepath.Join(dir, fmt.Sprintf("tc%d.ctl", i)), "-vconsole:info",
			"ptcp:"+port+":"+host)
		if err != nil {
			return arpRow{}, err
		}
		defer p.stop()
		if err := p.waitListening(ctx, addr); err != nil {
			return arpRow{}, err
		}
		addrs = append(addrs, addr)
		procs = append(procs, p)
		pids = append(pids, p.cmd.Process.Pid)
	}
	// A learning switch ignores packet-ins that are not table misses (lswitch.c), so for it
	// the same frames come as table-0 misses.
	tc := *t
	tc.Table, tc.Cook, tc.Miss = 0, 0, true
	g := &arpGen{log: log}
	g.init(&tc)
	row, err := g.run(ctx, addrs, pids, cfg.Window, cfg.Duration, nil)
	if err != nil {
		return row, fmt.Errorf("%w\novs-testcontroller log (the first):\n%s", err, procs[0].tail())
	}
	row.procs = n
	row.note = fmt.Sprintf("learning switch, does not answer ARP: counts its flooding PACKET_OUT; %d switches per process (its MAX_SWITCHES)", testControllerMaxSwitches)
	return row, nil
}

// apiClient talks to dvrflowd's Neutron API.
type apiClient struct {
	url, token string
	hc         *http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding reply: %w", method, path, err)
		}
	}
	return nil
}

// parallel runs fn(0..n-1) on c workers and returns the first error.
func parallel(n, c int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	var first atomic.Pointer[error]
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// createTopology registers the hosts and creates networks, subnets and VM ports through
// the API; the ports' MACs and IDs replace the generated ones.
func createTopology(ctx context.Context, c *apiClient, t *arpTopology) error {
	err := parallel(t.Hosts, 16, func(h int) error {
		body := map[string]any{"dvr_host": map[string]any{
			"tunnel_ip": fmt.Sprintf("192.168.%d.%d", 1+h/250, 1+h%250), "mode": "dvr",
			"bridges": map[string]string{"br-int": ofproto.DPID(t.DPIDs[h]).String()}}}
		return c.do(ctx, http.MethodPut, "/v2.0/dvr-hosts/"+t.Names[h], body, nil)
	})
	if err != nil {
		return err
	}
	t.Nw, t.Sub = make([]string, t.Nets), make([]string, t.Nets)
	err = parallel(t.Nets, 16, func(n int) error {
		var nw struct {
			Network struct{ ID string } `json:"network"`
		}
		if err := c.do(ctx, http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{
			"name": fmt.Sprintf("arpbench-%d", n), "admin_state_up": true}}, &nw); err != nil {
			return err
		}
		var sn struct {
			Subnet struct{ ID string } `json:"subnet"`
		}
		if err := c.do(ctx, http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
			"network_id": nw.Network.ID, "ip_version": 4, "cidr": t.subnet(n).String(), "enable_dhcp": false}}, &sn); err != nil {
			return err
		}
		t.Nw[n], t.Sub[n] = nw.Network.ID, sn.Subnet.ID
		return nil
	})
	if err != nil {
		return err
	}
	return parallel(len(t.VMs), 16, func(i int) error {
		vm := &t.VMs[i]
		var p struct {
			Port struct {
				ID  string `json:"id"`
				MAC string `json:"mac_address"`
			} `json:"port"`
		}
		if err := c.do(ctx, http.MethodPost, "/v2.0/ports", map[string]any{"port": map[string]any{
			"network_id": t.Nw[vm.Net], "name": fmt.Sprintf("vm-%d-%d", vm.Host, vm.PortNo),
			"device_owner": "compute:nova", "device_id": fmt.Sprintf("vm-%d-%d", vm.Host, vm.PortNo),
			"binding:host_id": t.Names[vm.Host],
			"fixed_ips":       []map[string]string{{"subnet_id": t.Sub[vm.Net], "ip_address": vm.IP.String()}}}}, &p); err != nil {
			return err
		}
		mac, err := net.ParseMAC(p.Port.MAC)
		if err != nil {
			return fmt.Errorf("port %s: mac %q: %w", p.Port.ID, p.Port.MAC, err)
		}
		vm.ID, vm.MAC = p.Port.ID, mac
		return nil
	})
}

// arpDvrflow runs dvrflowd on a private PostgreSQL, creates the topology through its API
// and loads it once every switch has its ARP_RESPONDER flows.
func arpDvrflow(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	pgDir := filepath.Join(dir, "pg")
	if out, err := exec.CommandContext(ctx, cfg.PGScript, "start", pgDir).CombinedOutput(); err != nil {
		return arpRow{}, fmt.Errorf("%s start: %w: %s", cfg.PGScript, err, out)
	}
	defer func() {
		if out, err := exec.Command(cfg.PGScript, "stop", pgDir).CombinedOutput(); err != nil {
			log.Warn("stopping PostgreSQL", zap.Error(err), zap.ByteString("output", out))
		}
	}()
	dsn, err := exec.CommandContext(ctx, cfg.PGScript, "dsn", pgDir).Output()
	if err != nil {
		return arpRow{}, fmt.Errorf("%s dsn: %w", cfg.PGScript, err)
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	ofAddr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	token := fmt.Sprintf("arpbench-%d", time.Now().UnixNano())
	args := []string{"--db-url", strings.TrimSpace(string(dsn)), "--listen", apiAddr, "--of-listen", ofAddr, "--log-level", "warn"}
	var debugAddr string
	if cfg.ProfileDir != "" {
		if debugAddr, err = freeAddr(); err != nil {
			return arpRow{}, err
		}
		args = append(args, "--debug-listen", debugAddr)
	}
	p, err := startProc(ctx, dir, "dvrflowd", []string{"DVRFLOW_AUTH_TOKEN=" + token}, cfg.Dvrflowd, args...)
	if err != nil {
		return arpRow{}, err
	}
	defer p.stop()
	if err := p.waitListening(ctx, apiAddr); err != nil {
		return arpRow{}, err
	}
	c := &apiClient{url: "http://" + apiAddr, token: token, hc: &http.Client{Timeout: time.Minute}}
	start := time.Now()
	if err := createTopology(ctx, c, t); err != nil {
		return arpRow{}, fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
	}
	fmt.Printf("  dvrflow: topology created through the API in %v (%d hosts, %d networks, %d ports)\n",
		time.Since(start).Round(time.Millisecond), t.Hosts, t.Nets, len(t.VMs))
	if err := p.waitListening(ctx, ofAddr); err != nil {
		return arpRow{}, err
	}
	g := &arpGen{log: log}
	g.init(t)
	if cfg.ProfileDir != "" {
		g.onMeasure = func(ctx context.Context, d time.Duration) {
			profileDuring(ctx, log, cfg.ProfileDir, "http://"+debugAddr, d)
		}
	}
	ready := func(ctx context.Context) error {
		start := time.Now()
		if err := arpFlowsReady(ctx, g, t); err != nil {
			return fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
		}
		fmt.Printf("  dvrflow: %d switches connected and programmed with their ARP_RESPONDER flows in %v\n",
			len(g.sims), time.Since(start).Round(time.Millisecond))
		return nil
	}
	row, err := g.run(ctx, []string{ofAddr}, []int{p.cmd.Process.Pid}, cfg.Window, cfg.Duration, ready)
	if err != nil {
		return row, fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
	}
	row.procs = 1
	row.note = "dvrflowd (private PostgreSQL): PACKET_OUT with the ARP reply"
	return row, nil
}

// profileDuring writes CPU profiles of dvrflowd (from its --debug-listen pprof) and of this
// generator, each over d, to dir/dvrflowd-arp.pprof and dir/ofbench-arp.pprof.
func profileDuring(ctx context.Context, log *zap.Logger, dir, debugURL string, d time.Duration) {
	secs := max(int(d/time.Second)-1, 1)
	if f, err := os.Create(filepath.Join(dir, "ofbench-arp.pprof")); err == nil {
		defer f.Close() // after StopCPUProfile has written the profile
		if err := pprof.StartCPUProfile(f); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debugURL, secs), nil)
	if err != nil {
		log.Warn("profile request", zap.Error(err))
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Warn("fetching dvrflowd's CPU profile", zap.Error(err))
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(dir, "dvrflowd-arp.pprof"))
	if err != nil {
		log.Warn("profile file", zap.Error(err))
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		log.Warn("writing dvrflowd's CPU profile", zap.Error(err))
	}
}

// arpFlowsReady waits until every switch holds an ARP_RESPONDER flow for each address its
// requests ask for, learns the local VLAN of its network from them, and rebuilds the
// requests with it.
func arpFlowsReady(ctx context.Context, g *arpGen, t *arpTopology) error {
	deadline := time.Now().Add(5 * time.Minute)
	done := make([]bool, len(g.sims))
	left := len(g.sims)
	for left > 0 {
		for h, s := range g.sims {
			if done[h] {
				continue
			}
			flows, err := s.sw.Flows()
			if err != nil {
				return err
			}
			have := map[[4]byte]uint16{}
			for i := range flows {
				f := &flows[i]
				if f.Table != apps.IntARPResponder || f.Cookie != t.Cook {
					continue
				}
				vf, okv := f.Match.Get(ofproto.ClassBasic, ofproto.OXMVLANVID)
				tf, okt := f.Match.Get(ofproto.ClassBasic, ofproto.OXMARPTPA)
				if okv && okt && len(vf.Value) == 2 && len(tf.Value) == 4 {
					have[[4]byte(tf.Value)] = binary.BigEndian.Uint16(vf.Value) & 0x0fff
				}
			}
			ok := len(s.combos) > 0
			for _, c := range s.combos {
				if _, found := have[c.key.tpa]; !found {
					ok = false
					break
				}
			}
			if ok {
				t.VLAN[h] = have[s.combos[0].key.tpa]
				s.setCombos(t, h)
				done[h] = true
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d switches still lack their ARP_RESPONDER flows after 5 minutes", left, len(g.sims))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// parseControllers parses the -controller list.
func parseControllers(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch c {
		case ctlDvrflow, ctlOsken, ctlTestCtl:
			if slices.Contains(out, c) {
				return nil, fmt.Errorf("controller %q given twice", c)
			}
			out = append(out, c)
		case "":
		default:
			return nil, fmt.Errorf("unknown controller %q (want %s, %s or %s)", c, ctlDvrflow, ctlOsken, ctlTestCtl)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no controller given")
	}
	return out, nil
}
