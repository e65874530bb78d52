// The simulated bridges in several processes (-sim-procs): a worker is this binary run
// again with -sim-worker. It gets its bridges and their configuration on its stdin (gob),
// runs them with ofsim, writes every event of their hooks to its stdout as a fixed-size
// record carrying the time it happened there, answers what the harness does to a bridge
// (ports and flows, port added, IS_SLAVE count) by net/rpc over a socket pair, and logs to
// its stderr (a file next to dvrflowd's). It ends when its stdin ends (the harness is gone)
// or, through PR_SET_PDEATHSIG, when the harness dies; the harness kills it at the end.

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// simFDMargin is the open files a simulator process keeps for other things than its
// bridges' sessions when -sim-procs picks the number of processes.
const simFDMargin = 2000

// procsFor returns how many processes simulate hosts' bridges, each with a session to
// every one of controllers, when each process may open limit files: asked when it is not
// 0, else the fewest that hold at most limit - simFDMargin sessions each. It fails when
// asked processes would not fit.
func procsFor(asked, hosts, controllers int, limit uint64) (int, error) {
	perHost := uint64(3 * controllers)
	room := uint64(0)
	if limit > simFDMargin {
		room = limit - simFDMargin
	}
	n := asked
	if n == 0 {
		if room < perHost {
			return 0, fmt.Errorf("open files limit %d: not even one host's %d sessions fit in a process", limit, perHost)
		}
		hostsPer := room / perHost
		n = int((uint64(hosts) + hostsPer - 1) / hostsPer)
	}
	n = max(1, min(n, hosts))
	if per := uint64((hosts+n-1)/n) * perHost; per > room {
		return 0, fmt.Errorf("-sim-procs %d: %d sessions a process, more than the %d its open files limit %d leaves (-sim-procs 0 picks enough processes)",
			asked, per, room, limit)
	}
	return n, nil
}

// simProcsFor raises the open files limit for the simulator and returns how many processes
// run it. One process (the harness's own, as before -sim-procs) when asked is 1, or is 0
// and the limit can be raised to a session per bridge and controller plus some; otherwise
// the soft limit is raised to the hard one, which worker processes and dvrflowd inherit.
func simProcsFor(asked, hosts, controllers int) (int, error) {
	sessions := uint64(3 * hosts * controllers)
	if asked <= 1 {
		err := raiseFileLimit(sessions + 1024)
		if err == nil || asked == 1 {
			return 1, err
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("open files limit: %w", err)
	}
	// dvrflowd holds a session per bridge.
	if err := raiseFileLimit(max(lim.Max, uint64(3*hosts)+1024)); err != nil {
		return 0, err
	}
	return procsFor(asked, hosts, controllers, lim.Max)
}

// workerCommand is how a worker process is started: this binary with -sim-worker (tests:
// the test binary, told by its environment).
type workerCommand struct {
	path string
	args []string
	env  []string
	dir  string // where the workers' logs go
}

// workerConfig is what a worker is sent on its stdin.
type workerConfig struct {
	Index            int
	Addrs            []string
	Rate, BundleRate float64
	ConnectRate      float64
	MaxBackoff       time.Duration
	LogLevel         int8 // zapcore.Level
	Bridges          []workerBridge
}

// workerBridge is one bridge a worker simulates, with the ports it starts with.
type workerBridge struct {
	DPID  uint64
	Ports []ofsim.Port
}

// eventRecordLen is the size of an event record: kind, table, command, controller (index
// in Addrs, noAddr if none), N (4 bytes), DPID, cookie and the time it happened in Unix
// nanoseconds (8 bytes each), big-endian.
const eventRecordLen = 32

const noAddr = 0xff

// appendEventRecord appends e, which happened at (Unix ns), on the session to controller
// addr (an index in the workers' Addrs, or noAddr).
func appendEventRecord(b []byte, e ofsim.Event, addr uint8, at int64) []byte {
	b = append(b, byte(e.Kind), e.Table, byte(e.Command), addr)
	b = binary.BigEndian.AppendUint32(b, uint32(e.N))
	b = binary.BigEndian.AppendUint64(b, e.DPID)
	b = binary.BigEndian.AppendUint64(b, e.Cookie)
	return binary.BigEndian.AppendUint64(b, uint64(at))
}

// decodeEventRecord decodes an event record; addrs names the controllers.
func decodeEventRecord(r []byte, addrs []string) (ofsim.Event, time.Time) {
	e := ofsim.Event{Kind: ofsim.EventKind(r[0]), Table: r[1], Command: ofproto.FlowModCommand(r[2]),
		N: int(binary.BigEndian.Uint32(r[4:])), DPID: binary.BigEndian.Uint64(r[8:]), Cookie: binary.BigEndian.Uint64(r[16:])}
	if int(r[3]) < len(addrs) {
		e.Addr = addrs[r[3]]
	}
	return e, time.Unix(0, int64(binary.BigEndian.Uint64(r[24:])))
}

// readEvents records the events of a worker's stream until it ends, counting them in n.
func (f *fleet) readEvents(r io.Reader, addrs []string, n *atomic.Int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var rec [eventRecordLen]byte
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("event stream: %w", err)
		}
		e, at := decodeEventRecord(rec[:], addrs)
		f.hook(e, at)
		n.Add(1)
	}
}

// eventStream is a worker's side of the events: the hook appends records, pump writes
// them out as they come.
type eventStream struct {
	addrs map[string]uint8

	mu   sync.Mutex
	buf  []byte
	seq  int64 // records appended
	kick chan struct{}
}

func newEventStream(addrs []string) *eventStream {
	s := &eventStream{addrs: map[string]uint8{}, kick: make(chan struct{}, 1)}
	for i, a := range addrs {
		s.addrs[a] = uint8(i)
	}
	return s
}

func (s *eventStream) hook(e ofsim.Event) {
	at := time.Now().UnixNano()
	addr, ok := s.addrs[e.Addr]
	if !ok {
		addr = noAddr
	}
	s.mu.Lock()
	s.buf = appendEventRecord(s.buf, e, addr, at)
	s.seq++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// appended returns the number of records appended so far.
func (s *eventStream) appended() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// pump writes the records to w until ctx ends.
func (s *eventStream) pump(ctx context.Context, w io.Writer) error {
	var out []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		}
		s.mu.Lock()
		out, s.buf = s.buf, out[:0]
		s.mu.Unlock()
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
}

// SimService is what a worker answers over net/rpc.
type SimService struct {
	log     *zap.Logger
	fleet   *ofsim.Fleet
	byDPID  map[uint64]*ofsim.Switch
	events  *eventStream
	ctx     context.Context
	started sync.Once
	failed  chan error
}

// BridgeState is a bridge's ports and its flows as AppendFlowMods writes them.
type BridgeState struct {
	Ports    []ofsim.Port
	FlowMods []byte
}

// PortAdd adds Port to the bridge DPID.
type PortAdd struct {
	DPID uint64
	Port ofsim.Port
}

func (s *SimService) bridge(dpid uint64) (*ofsim.Switch, error) {
	if sw := s.byDPID[dpid]; sw != nil {
		return sw, nil
	}
	return nil, fmt.Errorf("no bridge %016x in this worker", dpid)
}

// Start connects the bridges (once).
func (s *SimService) Start(_ int, _ *int) error {
	s.started.Do(func() {
		go func() {
			if err := s.fleet.Run(s.ctx); err != nil {
				s.failed <- err
			}
		}()
	})
	return nil
}

// Sync returns the number of event records written or about to be.
func (s *SimService) Sync(_ int, seq *int64) error {
	*seq = s.events.appended()
	return nil
}

// State returns a bridge's ports and flows.
func (s *SimService) State(dpid uint64, st *BridgeState) error {
	sw, err := s.bridge(dpid)
	if err != nil {
		return err
	}
	st.Ports, st.FlowMods = sw.Ports(), sw.AppendFlowMods(nil)
	return nil
}

// NumFlows returns the number of a bridge's flows.
func (s *SimService) NumFlows(dpid uint64, n *int) error {
	sw, err := s.bridge(dpid)
	if err != nil {
		return err
	}
	*n = sw.NumFlows()
	return nil
}

// AddPort adds a port to a bridge.
func (s *SimService) AddPort(a PortAdd, _ *int) error {
	sw, err := s.bridge(a.DPID)
	if err != nil {
		return err
	}
	return sw.AddPort(a.Port)
}

// SlaveRefused sums the messages the worker's bridges refused with OFPBRC_IS_SLAVE.
func (s *SimService) SlaveRefused(_ int, n *uint64) error {
	for _, sw := range s.byDPID {
		*n += sw.Counts().SlaveRefused
	}
	return nil
}

// workerMain is a worker process: its configuration on stdin, events to stdout, net/rpc on
// conn, logs to stderr. It returns when stdin ends or ctx does.
func workerMain(ctx context.Context, stdin io.Reader, stdout io.Writer, stderr zapcore.WriteSyncer, conn net.Conn) error {
	var cfg workerConfig
	if err := gob.NewDecoder(stdin).Decode(&cfg); err != nil {
		return fmt.Errorf("worker configuration: %w", err)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Development, zc.DisableStacktrace = false, true
	zc.Level = zap.NewAtomicLevelAt(zapcore.Level(cfg.LogLevel))
	enc := zapcore.NewConsoleEncoder(zc.EncoderConfig)
	log := zap.New(zapcore.NewCore(enc, stderr, zc.Level)).Named("sim-worker").With(zap.Int("worker", cfg.Index), zap.Int("pid", os.Getpid()))
	defer func() { _ = log.Sync() }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The harness never writes after the configuration: the end of stdin is its end.
		_, _ = io.Copy(io.Discard, stdin)
		log.Info("stdin closed: the harness is gone")
		cancel()
	}()
	events := newEventStream(cfg.Addrs)
	svc := &SimService{log: log, byDPID: map[uint64]*ofsim.Switch{}, events: events, ctx: ctx, failed: make(chan error, 1),
		fleet: ofsim.NewFleet(log, ofsim.FleetConfig{Addrs: cfg.Addrs, ConnectRate: cfg.ConnectRate, MaxBackoff: cfg.MaxBackoff})}
	for _, b := range cfg.Bridges {
		sw := ofsim.New(log, ofsim.Config{DPID: b.DPID, Ports: b.Ports, FlowModRate: cfg.Rate,
			BundleFlowModRate: cfg.BundleRate, Hook: events.hook})
		svc.byDPID[b.DPID] = sw
		svc.fleet.Add(sw)
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Sim", svc); err != nil {
		return err
	}
	go func() {
		srv.ServeConn(conn)
		cancel() // the harness closed its end
	}()
	pumped := make(chan error, 1)
	go func() { pumped <- events.pump(ctx, stdout) }()
	log.Info("worker started", zap.Int("bridges", len(cfg.Bridges)), zap.Strings("controllers", cfg.Addrs))
	select {
	case <-ctx.Done():
		return nil
	case err := <-pumped:
		return err
	case err := <-svc.failed:
		return err
	}
}

// workerProcess runs a worker on this process's stdin, stdout, stderr and file descriptor
// 3 (the socket to the harness), and returns its exit code.
func workerProcess() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := net.FileConn(os.NewFile(3, "harness"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-scale -sim-worker: socket to the harness (fd 3):", err)
		return 2
	}
	if err := workerMain(ctx, os.Stdin, os.Stdout, zapcore.Lock(os.Stderr), conn); err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-scale -sim-worker:", err)
		return 1
	}
	return 0
}

// simProc is one worker process, seen from the harness.
type simProc struct {
	index   int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	client  *rpc.Client
	logPath string
	read    atomic.Int64 // event records recorded
	done    chan struct{}
	exitErr error // once done is closed
	killed  atomic.Bool
}

// simProcs are the worker processes of a fleet.
type simProcs struct {
	log   *zap.Logger
	procs []*simProc
}

// workerSwitch is a bridge a worker process simulates.
type workerSwitch struct {
	p    *simProc
	dpid uint64
}

func (w *workerSwitch) PortsAndFlows() ([]ofsim.Port, []ofproto.Flow, error) {
	var st BridgeState
	if err := w.p.call("Sim.State", w.dpid, &st); err != nil {
		return nil, nil, err
	}
	flows, err := ofsim.DecodeFlowMods(st.FlowMods)
	if err != nil {
		return nil, nil, err
	}
	return st.Ports, flows, nil
}

func (w *workerSwitch) NumFlows() (int, error) {
	var n int
	err := w.p.call("Sim.NumFlows", w.dpid, &n)
	return n, err
}

func (w *workerSwitch) AddPort(p ofsim.Port) error {
	return w.p.call("Sim.AddPort", PortAdd{DPID: w.dpid, Port: p}, new(int))
}

// call makes a call to the worker; when it exited, the error says how.
func (p *simProc) call(method string, args, reply any) error {
	if err := p.client.Call(method, args, reply); err != nil {
		// A broken socket is the worker's end, which its exit follows closely.
		select {
		case <-p.done:
		case <-time.After(time.Second):
		}
		if aerr := p.alive(); aerr != nil {
			return aerr
		}
		return fmt.Errorf("simulator worker %d: %s: %w", p.index, method, err)
	}
	return nil
}

// alive reports the worker's exit, unless it was killed on purpose, with the end of its log.
func (p *simProc) alive() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	if p.killed.Load() {
		return fmt.Errorf("simulator worker %d: stopped", p.index)
	}
	return fmt.Errorf("simulator worker %d (pid %d) exited (%v); the end of %s:\n%s", p.index, p.cmd.Process.Pid, p.exitErr, p.logPath, tail(p.logPath, 2048))
}

// tail returns the last n bytes of the file at path (or why it cannot).
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// startProcs starts cfg.procs worker processes and deals the hosts out among them in turn
// (all three bridges of a host in one), each connecting at its share of the connect rate.
func (f *fleet) startProcs(log *zap.Logger, cfg fleetConfig) (err error) {
	ps := &simProcs{log: log}
	defer func() {
		if err != nil {
			ps.kill()
		}
	}()
	cfgs := make([]workerConfig, cfg.procs)
	for i := range cfgs {
		cfgs[i] = workerConfig{Index: i + 1, Addrs: cfg.addrs, Rate: cfg.rate, BundleRate: cfg.bundleRate,
			ConnectRate: cfg.connectRate / float64(cfg.procs), MaxBackoff: cfg.maxBackoff, LogLevel: int8(log.Level())}
	}
	owner := make([]int, 0, len(f.names))
	for i, n := range f.names {
		w := i % cfg.procs
		owner = append(owner, w)
		for _, b := range f.bridgesOf(n) {
			cfgs[w].Bridges = append(cfgs[w].Bridges, workerBridge{DPID: b.dpid, Ports: b.initial})
		}
	}
	for i := range cfgs {
		p, err := startProc(f, cfg.worker, cfgs[i])
		if err != nil {
			return err
		}
		ps.procs = append(ps.procs, p)
	}
	for i, n := range f.names {
		for _, b := range f.bridgesOf(n) {
			b.sw, b.initial = &workerSwitch{p: ps.procs[owner[i]], dpid: b.dpid}, nil
		}
	}
	f.procs = ps
	log.Info("simulator worker processes started", zap.Int("procs", len(ps.procs)), zap.Int("hosts", len(f.names)))
	return nil
}

// startProc starts one worker and sends it its configuration.
func startProc(f *fleet, wc workerCommand, cfg workerConfig) (*simProc, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("simulator worker %d: socket pair: %w", cfg.Index, err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "worker"), os.NewFile(uintptr(fds[1]), "harness")
	defer theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("simulator worker %d: socket: %w", cfg.Index, err)
	}
	p := &simProc{index: cfg.Index, logPath: filepath.Join(wc.dir, fmt.Sprintf("sim-worker-%d.log", cfg.Index)), done: make(chan struct{})}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("simulator worker log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(wc.path, wc.args...)
	cmd.Env = append(os.Environ(), wc.env...)
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		conn.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start simulator worker %d: %w", cfg.Index, err)
	}
	p.cmd = cmd
	p.client = rpc.NewClient(conn)
	go func() {
		rerr := f.readEvents(stdout, cfg.Addrs, &p.read)
		p.exitErr = errors.Join(rerr, cmd.Wait())
		close(p.done)
	}()
	if err := gob.NewEncoder(p.stdin).Encode(cfg); err != nil {
		p.kill()
		return nil, fmt.Errorf("simulator worker %d: configuration: %w; %v", cfg.Index, err, p.alive())
	}
	// Its first answer: it has built its bridges.
	if err := p.call("Sim.Sync", 0, new(int64)); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// kill kills the worker by its pid and waits for it.
func (p *simProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done: // exited by itself: alive keeps saying so
	default:
		p.killed.Store(true)
	}
	_ = p.cmd.Process.Kill()
	_ = p.stdin.Close()
	<-p.done
	_ = p.client.Close()
}

// kill kills every worker.
func (ps *simProcs) kill() {
	for _, p := range ps.procs {
		p.kill()
	}
}

// run connects every worker's bridges; it returns when ctx ends, having killed the
// workers, or when one exits.
func (ps *simProcs) run(ctx context.Context) error {
	defer ps.kill()
	for _, p := range ps.procs {
		if err := p.call("Sim.Start", 0, new(int)); err != nil {
			return err
		}
	}
	exited := make(chan *simProc, len(ps.procs))
	for _, p := range ps.procs {
		go func() {
			select {
			case <-p.done:
				exited <- p
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case p := <-exited:
		return p.alive()
	}
}

// alive reports a worker that exited.
func (ps *simProcs) alive() error {
	var errs []error
	for _, p := range ps.procs {
		errs = append(errs, p.alive())
	}
	return errors.Join(errs...)
}

// sync waits until the harness has recorded every event the workers had reported when it
// was called.
func (ps *simProcs) sync() error {
	for _, p := range ps.procs {
		var seq int64
		if err := p.call("Sim.Sync", 0, &seq); err != nil {
			return err
		}
		for p.read.Load() < seq {
			select {
			case <-p.done:
				return p.alive()
			case <-time.After(time.Millisecond):
			}
		}
	}
	return nil
}

// slaveRefused sums the messages the workers' bridges refused with OFPBRC_IS_SLAVE.
func (ps *simProcs) slaveRefused() (uint64, error) {
	var total uint64
	for _, p := range ps.procs {
		var n uint64
		if err := p.call("Sim.SlaveRefused", 0, &n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// simUsage is what the simulator's processes used: this one's when it runs the bridges,
// else the workers'.
type simUsage struct {
	procs    int
	sum, max int64 // peak RSS, bytes
	cpu      time.Duration
}

// usage reads the simulator's processes' usage.
func (f *fleet) usage() (simUsage, error) {
	if f.procs == nil {
		u, err := procUsage(os.Getpid())
		return simUsage{procs: 1, sum: u.HWM, max: u.HWM, cpu: u.CPU}, err
	}
	su := simUsage{procs: len(f.procs.procs)}
	for _, p := range f.procs.procs {
		if err := p.alive(); err != nil {
			return su, err
		}
		u, err := procUsage(p.cmd.Process.Pid)
		if err != nil {
			return su, fmt.Errorf("simulator worker %d: %w", p.index, err)
		}
		su.sum += u.HWM
		su.max = max(su.max, u.HWM)
		su.cpu += u.CPU
	}
	return su, nil
}

// cpu is the CPU time this process and the worker processes have used.
func (f *fleet) cpu() time.Duration {
	t := selfCPU()
	if f.procs != nil {
		if u, err := f.usage(); err == nil {
			t += u.cpu
		}
	}
	return t
}
