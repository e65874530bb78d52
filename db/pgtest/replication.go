package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// standbyName is the standby's cluster_name, which its walreceiver reports as its
// application_name, and the primary's synchronous_standby_names.
const standbyName = "dvrflow_standby"

// StartReplicated starts a private primary and a hot standby streaming from it
// (pg_basebackup -R). The standby is synchronous: the primary runs with
// synchronous_commit=on and synchronous_standby_names naming it, so a commit returns only
// once the standby has the commit's WAL. It returns when the standby is streaming as the
// synchronous standby. Stop both when done. It needs a private server: it fails with
// DVRFLOW_TEST_DATABASE_URL set.
func StartReplicated(ctx context.Context) (primary, standby *Server, err error) {
	if os.Getenv(EnvURL) != "" {
		return nil, nil, fmt.Errorf("replication needs private servers: unset %s", EnvURL)
	}
	basebackup, err := findBin("pg_basebackup")
	if err != nil {
		return nil, nil, err
	}
	primary, err = Start(ctx, Options{Settings: map[string]string{
		"synchronous_commit":        "on",
		"synchronous_standby_names": standbyName,
		"full_page_writes":          "on",
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("primary: %w", err)
	}
	standby, err = newPrivate()
	if err != nil {
		_ = primary.Stop()
		return nil, nil, err
	}
	fail := func(err error) (*Server, *Server, error) {
		_ = standby.Stop()
		_ = primary.Stop()
		return nil, nil, err
	}
	if out, err := standby.run(ctx, basebackup, "-D", standby.data(), "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres"); err != nil {
		return fail(fmt.Errorf("pg_basebackup: %w: %s", err, out))
	}
	if err := standby.start(ctx, Options{Settings: map[string]string{"cluster_name": standbyName, "hot_standby": "on"}}); err != nil {
		return fail(fmt.Errorf("standby: %w", err))
	}
	if err := primary.waitSyncStandby(ctx); err != nil {
		return fail(err)
	}
	return primary, standby, nil
}

// waitSyncStandby waits until a standby streams from s as its synchronous standby.
func (s *Server) waitSyncStandby(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("connect to primary: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'`).Scan(&n)
		if err != nil {
			return fmt.Errorf("wait for the synchronous standby: %w", err)
		}
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the synchronous standby: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReplayed waits (up to 30 s) until standby s has replayed everything primary has
// written so far. A synchronous commit waits for the standby to have its WAL, not to
// have replayed it: a database just created on the primary is on the standby only
// after this.
func (s *Server) WaitReplayed(ctx context.Context, primary *Server) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var lsn string
	if err := queryRow(ctx, primary.adminURL, &lsn, `SELECT pg_current_wal_lsn()::text`); err != nil {
		return fmt.Errorf("primary's WAL position: %w", err)
	}
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("connect to standby: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			return fmt.Errorf("wait for the standby to replay %s: %w", lsn, err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the standby to replay %s: %w", lsn, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func queryRow(ctx context.Context, url string, dst any, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dst)
}

// Addr returns a private server's "127.0.0.1:port", as a multi-host URL lists it.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// MultiHostURL returns the URL of database name on servers, in that order, with
// target_session_attrs=read-write (pgx connects to the first that accepts writes).
func MultiHostURL(name string, servers ...*Server) string {
	hosts := make([]string, len(servers))
	for i, s := range servers {
		hosts[i] = s.Addr()
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/" + name + "?sslmode=disable&target_session_attrs=read-write"
}

// Kill sends SIGKILL to a private server's postmaster and all its children at once, as
// a crash of its machine would stop them: nothing is shut down cleanly.
func (s *Server) Kill() error {
	if s.dir == "" {
		return errors.New("pgtest: an external server cannot be killed")
	}
	raw, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return fmt.Errorf("postmaster.pid: %q: %w", first, err)
	}
	pids := append([]int{pid}, children(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d: %w", p, err)
		}
	}
	s.killed = append(s.killed, pids...)
	return nil
}

// children returns the pids of pid's child processes.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, st := range stats {
		raw, err := os.ReadFile(st)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if c, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// waitKilled waits (up to 10 s) until the processes Kill signalled are gone.
func (s *Server) waitKilled() error {
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range s.killed {
		for alive(p) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still runs after SIGKILL", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Promote promotes a standby to primary (pg_ctl promote) and waits until it accepts
// writes.
func (s *Server) Promote(ctx context.Context) error {
	if s.dir == "" {
		return errors.New("pgtest: an external server cannot be promoted")
	}
	if out, err := s.run(ctx, s.pgCtl, "promote", "-w", "-t", "60", "-D", s.data()); err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, out)
	}
	return nil
}
