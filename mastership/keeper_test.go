package mastership_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/mastership"
)

// keeperDBEnv passes the test database's URL to a keeper process: this test binary, run
// again (runTestKeeper).
const keeperDBEnv = "DVRFLOW_TEST_KEEPER_DB"

// runTestKeeper is the main of this binary run as a lease keeper.
func runTestKeeper() int {
	ctx := context.Background()
	leases, err := db.OpenLeases(ctx, os.Getenv(keeperDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer leases.Close()
	log, _ := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err := mastership.RunKeeper(ctx, log, leases); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// withKeeper returns cfg with a keeper process renewing the lease in database dsn.
func withKeeper(cfg mastership.Config, dsn string) mastership.Config {
	cfg.Keeper = &mastership.KeeperCommand{Path: os.Args[0], Env: []string{keeperDBEnv + "=" + dsn}}
	return cfg
}

func openStoreURL(t *testing.T) (*db.Store, string) {
	t.Helper()
	dsn := pg.NewDatabase(t)
	st, err := db.Open(context.Background(), dsn, db.DefaultConfig(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, dsn
}

// A controller whose keeper process renews its lease masters its share like one renewing
// in its own process, sees the keeper's renewals in its status, and, stopping, has the
// keeper release the lease: the other controller takes its hosts at once, not a lease
// later, and the keeper process is gone.
func TestKeeperRenewsForTheController(t *testing.T) {
	st, dsn := openStoreURL(t)
	dpids := registerHosts(t, st, 40)
	cfg := testConfig()
	cfg.Lease, cfg.Renew = 3*time.Second, 100*time.Millisecond // a takeover within a second comes from the release
	cfg.MaxLease = cfg.Lease
	a, b := start(t, st, "ctl-a", withKeeper(cfg, dsn)), start(t, st, "ctl-b", cfg)
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-a", "ctl-b"}, 5*time.Second)
	pid := a.loop.KeeperPID()
	if pid == 0 || pid == os.Getpid() {
		t.Fatalf("keeper pid %d", pid)
	}
	time.Sleep(500 * time.Millisecond)
	if nices := threadNices(t, pid); len(nices) < 2 || slices.ContainsFunc(nices, func(n int) bool { return n != -10 }) {
		t.Errorf("the keeper's threads run at nice %v, want all -10", nices)
	}
	st1 := a.loop.Status()
	if st1.Stats.Renewals < 5 || st1.Stats.Lease != cfg.Lease || time.Until(st1.Deadline) < cfg.Lease/2 || st1.Stats.Lapses != 0 {
		t.Errorf("status with a keeper: %d renewals, lease %s, deadline in %s, %d lapses", st1.Stats.Renewals,
			st1.Stats.Lease, time.Until(st1.Deadline), st1.Stats.Lapses)
	}
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatalf("Run with a keeper: %v", err)
	}
	a.done <- nil // for the cleanup
	waitSpread(t, dpids, []*ctl{a, b}, []string{"ctl-b"}, time.Second)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("keeper %d still running after the controller stopped", pid)
	}
	checkOneWriter(t, []*ctl{a, b})
}

// A keeper whose controller does not read its renewals (a controller process whose
// goroutines are far behind) keeps renewing and publishing the deadline: the controller
// acts on the true deadline, never on how far it has read.
func TestKeeperRenewsWhileItsRenewalsAreNotRead(t *testing.T) {
	st, _ := openStoreURL(t)
	cfg := testConfig()
	cfg.ID = "ctl-a"
	inR, inW := io.Pipe()
	outR, outW := io.Pipe() // never read
	defer outR.Close()
	ctx := context.Background()
	k, err := mastership.KeepInProcess(ctx, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), cfg,
		"instance-1", st, inR, outW)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		time.Sleep(cfg.Lease)
		k.Beat()
		if left := time.Until(k.Deadline()); left < cfg.Lease/2 {
			t.Fatalf("deadline in %s with renewals unread, want at least %s", left, cfg.Lease/2)
		}
	}
	cs, err := st.Controllers(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Live {
		t.Fatalf("controllers %+v %v: want ctl-a live", cs, err)
	}
	inW.Close() // the controller is gone
	select {
	case err := <-k.Done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("keeper still running 5 s after its input ended")
	}
	if cs, err = st.Controllers(ctx); err != nil || len(cs) != 1 || cs[0].Live {
		t.Fatalf("controllers %+v %v: want ctl-a's lease released", cs, err)
	}
}

// A keeper that dies ends its controller's Run with an error, its switches all slaves:
// the controller does not run on without a lease.
func TestKeeperDeathEndsRun(t *testing.T) {
	st, dsn := openStoreURL(t)
	dpids := registerHosts(t, st, 10)
	a := start(t, st, "ctl-a", withKeeper(testConfig(), dsn))
	waitSpread(t, dpids, []*ctl{a}, []string{"ctl-a"}, 5*time.Second)
	if err := syscall.Kill(a.loop.KeeperPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if err == nil {
			t.Fatal("Run returned nil when its keeper was killed")
		}
		a.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5 s after its keeper was killed")
	}
	if m := a.roles.masters(); len(m) != 0 {
		t.Errorf("still master of %d switches without a keeper", len(m))
	}
}

// A controller process whose heartbeat is silent for four times the longest lease (stopped,
// or hung whole) gets no renewal: its lease expires and the others take its hosts. Beating
// again, it gets its lease back.
func TestKeeperStopsForASilentController(t *testing.T) {
	st, _ := openStoreURL(t)
	cfg := testConfig()
	cfg.ID, cfg.MaxLease = "ctl-a", cfg.Lease // silent after 4 x 600 ms
	inR, inW := io.Pipe()
	defer inW.Close()
	ctx := context.Background()
	k, err := mastership.KeepInProcess(ctx, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), cfg, "instance-1", st, inR, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	live := func() bool {
		cs, err := st.Controllers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(cs) == 1 && cs[0].Live
	}
	time.Sleep(time.Second)
	if !live() {
		t.Fatal("not live with its heartbeat beaten a second ago")
	}
	time.Sleep(4*cfg.MaxLease + cfg.Lease + 200*time.Millisecond)
	if live() {
		t.Fatalf("still live %s after the controller's last heartbeat", 4*cfg.MaxLease+cfg.Lease+1200*time.Millisecond)
	}
	k.Beat()
	time.Sleep(cfg.Lease)
	if !live() {
		t.Fatal("not live again after a heartbeat")
	}
}

// threadNices returns the nice value of every thread of process pid (/proc/PID/task/*/stat,
// field 19).
func threadNices(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		// After the command name in parentheses: field 3 onwards.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		n, err := strconv.Atoi(fields[19-3])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, n)
	}
	return out
}
