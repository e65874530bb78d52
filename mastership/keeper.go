package mastership

// The lease keeper: a small process of its own that registers the controller and renews
// its lease, so that no backlog of the controller's goroutines delays a renewal. At 5,000
// hosts with three controllers on two cores, a controller's Go scheduler had up to 16,568
// goroutines runnable during cold start, and a renewal's reply, back from PostgreSQL in
// milliseconds, waited up to 10 s for its goroutine to run: the lease lapsed however long
// it was asked for. The keeper has a handful of goroutines; what delays it is only the
// machine and PostgreSQL, which the lease's stretching covers.
//
// The controller process starts it (Config.Keeper), hands it its configuration in
// $DVRFLOW_KEEPER_SPEC and a word of shared memory as file descriptor 3, and reads its
// renewals, one JSON line each, from its standard output. The keeper publishes the
// deadline in the shared word with every renewal, so the controller acts as master until
// the true deadline even while its own goroutines are behind in reading renewals. The
// controller writes "kick" to the keeper's standard input for a renewal at once, and
// closes it to stop: the keeper then releases the lease and exits. The controller dying
// closes it too, so the others take over at once. The controller also beats a heartbeat
// in the shared memory, every Renew: a controller process that has not run for
// heartbeatLimit (stopped, or hung whole) gets no renewal, and its hosts go to the others.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
)

// KeeperCommand starts a lease keeper process: Path run with Args, in this process's
// environment with Env added (the database URL). The program runs RunKeeper.
type KeeperCommand struct {
	Path string
	Args []string
	Env  []string
}

// KeeperEnv is the environment variable that carries a keeper's configuration.
const KeeperEnv = "DVRFLOW_KEEPER_SPEC"

// keeperSpec is what a keeper is told.
type keeperSpec struct {
	Config   Config
	Instance string
}

// keeperRecord is what a keeper tells of a renewal that held the lease.
type keeperRecord struct {
	Lease  db.Lease
	Lapsed bool  // the deadline passed before it (or before one not written)
	Stats  Stats // the keeper's renewal counters
}

// keeperNice is the keeper's nice value.
const keeperNice = -10

// keeperStop bounds how long a keeper has to release the lease and exit.
const keeperStop = 3 * time.Second

// heartbeatLimit is how long the controller process's heartbeat may be silent, in
// MaxLeases, before its keeper stops renewing: an overloaded controller's timers fired up
// to 7 s late at 5,000 hosts with three controllers on two cores, which must not pass for
// a hang.
const heartbeatLimit = 4

// errNoHeartbeat refuses a renewal for a controller process that stopped running.
var errNoHeartbeat = errors.New("the controller process has not run for four times the longest lease: not renewing its lease")

// runWithKeeper is Run with a keeper process registering and renewing the lease.
func (l *Loop) runWithKeeper(ctx context.Context) error {
	k, err := startKeeper(l.cfg.Keeper, keeperSpec{Config: l.cfg, Instance: l.instance})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.remote = k
	l.mu.Unlock()
	l.log.Info("lease keeper started", zap.Int("pid", k.cmd.Process.Pid), zap.Duration("lease", l.cfg.Lease),
		zap.Duration("renew", l.cfg.Renew))
	ctx, cancel := context.WithCancel(ctx)
	k.mem.beat()
	beat := time.NewTicker(l.cfg.Renew)
	defer beat.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				k.mem.beat()
			}
		}
	}()
	syncs, stopSyncs := l.startSyncs(ctx)
	defer func() {
		cancel()
		stopSyncs() // before the lease is released: no claim after the release
		l.stop()
		if err := k.end(); err != nil {
			l.log.Warn("lease keeper", zap.Error(err))
		}
		l.mu.Lock()
		l.readDeadlineLocked()
		l.remote = nil
		l.mu.Unlock()
		k.mem.close()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
			k.kick()
		case rec, ok := <-k.records:
			if !ok {
				err := k.end()
				return fmt.Errorf("mastership: lease keeper exited: %w", err)
			}
			offer(syncs, l.apply(rec))
		}
	}
}

// apply takes in a renewal the keeper made.
func (l *Loop) apply(rec keeperRecord) renewal {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.takeRenewals(rec.Stats)
	l.readDeadlineLocked()
	l.armLocked()
	if rec.Lapsed {
		l.force = true
	}
	return renewal{lease: rec.Lease, need: l.needLocked(rec.Lease)}
}

// takeRenewals copies the renewal counters of from.
func (s *Stats) takeRenewals(from Stats) {
	s.Renewals, s.Slow, s.Slowest = from.Renewals, from.Slow, from.Slowest
	s.RenewLatency, s.RenewTime = from.RenewLatency, from.RenewTime
	s.Lease, s.LongestLease = from.Lease, from.LongestLease
}

// keeperProc is a running keeper, seen from the controller process.
type keeperProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mem     *deadlineMem
	records chan keeperRecord // closed when its output ends
	readErr error             // why the output ended, once records is closed
	ended   sync.Once
}

func startKeeper(kc *KeeperCommand, spec keeperSpec) (*keeperProc, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("mastership: lease keeper configuration: %w", err)
	}
	mem, f, err := newDeadlineMem()
	if err != nil {
		return nil, err
	}
	defer f.Close() // the keeper has its own copy once started
	cmd := exec.Command(kc.Path, kc.Args...)
	cmd.Env = append(append(os.Environ(), kc.Env...), KeeperEnv+"="+string(js))
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr // its log lines join this process's
	// Its own process group: a terminal's ^C reaches this process, which stops acting
	// before it ends the keeper, and the keeper only then releases the lease.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		mem.close()
		return nil, fmt.Errorf("mastership: lease keeper: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		mem.close()
		return nil, fmt.Errorf("mastership: lease keeper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		mem.close()
		return nil, fmt.Errorf("mastership: start lease keeper %s: %w", kc.Path, err)
	}
	k := &keeperProc{cmd: cmd, stdin: stdin, mem: mem, records: make(chan keeperRecord, 1)}
	go k.read(stdout)
	return k, nil
}

// read decodes the keeper's renewals until its output ends.
func (k *keeperProc) read(r io.Reader) {
	defer close(k.records)
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var rec keeperRecord
		if err := dec.Decode(&rec); err != nil {
			if !errors.Is(err, io.EOF) {
				k.readErr = fmt.Errorf("reading its renewals: %w", err)
			}
			return
		}
		k.records <- rec
	}
}

// kick asks for a renewal at once.
func (k *keeperProc) kick() {
	_, _ = io.WriteString(k.stdin, "kick\n") // a keeper gone is seen on its output
}

// wait waits for the keeper to exit, once its output ended, and says why it did.
func (k *keeperProc) wait() error {
	return errors.Join(k.cmd.Wait(), k.readErr)
}

// end closes the keeper's input, so that it releases the lease and exits, and waits for
// that (killing it after keeperStop).
func (k *keeperProc) end() error {
	var err error
	k.ended.Do(func() {
		_ = k.stdin.Close()
		t := time.AfterFunc(keeperStop, func() { _ = k.cmd.Process.Kill() })
		defer t.Stop()
		for range k.records { // to the end of its output
		}
		err = k.wait()
	})
	return err
}

// RunKeeper runs a lease keeper process (started by a Loop with Config.Keeper): it reads
// its configuration from $DVRFLOW_KEEPER_SPEC and the deadline's shared memory from file
// descriptor 3, registers the controller over leases and renews its lease, writing each
// renewal to standard output, until standard input ends; it then releases the lease.
func RunKeeper(ctx context.Context, log *zap.Logger, leases LeaseStore) error {
	var spec keeperSpec
	if err := json.Unmarshal([]byte(os.Getenv(KeeperEnv)), &spec); err != nil {
		return fmt.Errorf("lease keeper: $%s: %w", KeeperEnv, err)
	}
	mem, err := mapDeadline(os.NewFile(3, "lease-deadline"))
	if err != nil {
		return err
	}
	defer mem.close()
	// Every thread of the keeper's process group (itself alone) runs at a higher priority
	// than the controllers and everything else: on an overloaded machine (load 10-12 on two
	// cores, 5,000 hosts with three controllers) a keeper at the default priority once went
	// without a renewal for longer than the lease.
	if err := unix.Setpriority(unix.PRIO_PGRP, 0, keeperNice); err != nil {
		log.Warn("lease keeper: cannot raise its priority (CAP_SYS_NICE): renewals wait for the CPU like any process",
			zap.Int("nice", keeperNice), zap.Error(err))
	}
	return keep(ctx, log, spec, leases, os.Stdin, os.Stdout, mem)
}

// keep is RunKeeper's work, over in and out.
func keep(ctx context.Context, log *zap.Logger, spec keeperSpec, leases LeaseStore, in io.Reader, out io.Writer,
	mem *deadlineMem) error {
	cfg := spec.Config
	cfg.Keeper = nil
	l := &Loop{log: log.Named("lease-keeper").With(zap.String("controller", cfg.ID)), cfg: cfg,
		instance: spec.Instance, leases: leases, roles: noRoles{}, kick: make(chan struct{}, 1),
		acting: map[string]int64{}, shared: mem}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the controller's requests, until it stops or dies
		defer cancel()
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if sc.Text() == "kick" {
				l.poke()
			}
		}
	}()
	if err := l.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l.log.Info("controller registered", zap.Duration("lease", cfg.Lease), zap.Duration("renew", cfg.Renew))
	w := newRecordWriter(out)
	defer w.close() // nobody reads what is left: the controller is gone or stopping
	l.renewLoop(ctx, func(r renewal) { w.put(l.record(r)) })
	l.stop()
	rctx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancelRelease()
	if err := leases.ReleaseLease(rctx, cfg.ID, spec.Instance); err != nil {
		return fmt.Errorf("lease keeper: releasing the lease (the others take over when it expires): %w", err)
	}
	return nil
}

// record is what the keeper tells of renewal r.
func (l *Loop) record(r renewal) keeperRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return keeperRecord{Lease: r.lease, Lapsed: r.lapsed, Stats: l.stats}
}

// noRoles is the keeper's switches: none.
type noRoles struct{}

func (noRoles) SetRoles(map[uint64]controller.Mastership) {}

// recordWriter writes a keeper's renewals on a goroutine of its own, the newest replacing
// one not written yet (a lapse it told of kept): a controller slow to read them never
// holds up a renewal.
type recordWriter struct {
	mu    sync.Mutex
	next  *keeperRecord
	ready chan struct{}
}

func newRecordWriter(out io.Writer) *recordWriter {
	w := &recordWriter{ready: make(chan struct{}, 1)}
	go func() {
		enc := json.NewEncoder(out)
		for range w.ready {
			w.mu.Lock()
			rec := w.next
			w.next = nil
			w.mu.Unlock()
			if rec != nil && enc.Encode(rec) != nil {
				return // the controller is gone: its input ends too
			}
		}
	}()
	return w
}

func (w *recordWriter) put(rec keeperRecord) {
	w.mu.Lock()
	if w.next != nil && w.next.Lapsed {
		rec.Lapsed = true
	}
	w.next = &rec
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// close stops the writer; a write under way ends when the controller's end of the pipe
// closes.
func (w *recordWriter) close() { close(w.ready) }

// deadlineMem is the shared memory of a keeper and its controller: the deadline the
// keeper publishes and the controller reads, and the controller's heartbeat, both in
// CLOCK_MONOTONIC nanoseconds: one clock for both processes, which no change of the wall
// clock moves.
type deadlineMem struct {
	mem []byte
}

const deadlineMemSize = 16

func newDeadlineMem() (*deadlineMem, *os.File, error) {
	fd, err := unix.MemfdCreate("dvrflow-lease-deadline", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("mastership: lease deadline memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lease-deadline")
	if err := f.Truncate(deadlineMemSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mastership: lease deadline memory: %w", err)
	}
	m, err := mapDeadline(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return m, f, nil
}

func mapDeadline(f *os.File) (*deadlineMem, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, deadlineMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mastership: map lease deadline memory: %w", err)
	}
	return &deadlineMem{mem: mem}, nil
}

// word is the deadline (0: none yet); the mapping is page-aligned.
func (m *deadlineMem) word() *atomic.Int64 { return (*atomic.Int64)(unsafe.Pointer(&m.mem[0])) }

// heart is the controller's last heartbeat (0: none yet).
func (m *deadlineMem) heart() *atomic.Int64 { return (*atomic.Int64)(unsafe.Pointer(&m.mem[8])) }

// beat records that the controller process runs.
func (m *deadlineMem) beat() { m.heart().Store(monotonicNow()) }

// silent is how long the controller's heartbeat has been silent (0 before its first).
func (m *deadlineMem) silent() time.Duration {
	n := m.heart().Load()
	if n == 0 {
		return 0
	}
	return time.Duration(monotonicNow() - n)
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for this clock
	return ts.Nano()
}

func (m *deadlineMem) store(t time.Time) { m.word().Store(monotonicNow() + int64(time.Until(t))) }

func (m *deadlineMem) load() time.Time {
	n := m.word().Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Now().Add(time.Duration(n - monotonicNow()))
}

func (m *deadlineMem) close() { _ = unix.Munmap(m.mem) }
