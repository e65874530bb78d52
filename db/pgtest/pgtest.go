// Package pgtest starts a private, real PostgreSQL server for a test binary and hands
// out a fresh database per test.
//
// Use it from TestMain:
//
//	var pg *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
// and pg.NewDatabase(t) in each test. With DVRFLOW_TEST_DATABASE_URL set, that server is
// used instead of a private one (databases are still created per test, and dropped).
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "DVRFLOW_TEST_DATABASE_URL"

// binDirs are searched for initdb and pg_ctl (newest first), after $PATH.
var binDirs = []string{
	"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin",
	"/usr/lib/postgresql/14/bin", "/usr/lib/postgresql/13/bin",
}

// Server is a PostgreSQL server the tests may create databases on.
type Server struct {
	adminURL  string // a URL to the "postgres" database
	dir       string // private cluster's directory ("" for an external server)
	pgCtl     string
	runAs     string   // user to run pg_ctl as ("" for the current user)
	startArgs []string // pg_ctl start's arguments, for Resume
	port      int      // private server's TCP port on 127.0.0.1
	killed    []int    // pids Kill sent SIGKILL to, waited for by Stop
}

// Options tune a private server.
type Options struct {
	// Durable keeps fsync and synchronous_commit on, as in production (benchmarks).
	Durable bool
	// Settings are extra "-c name=value" server settings.
	Settings map[string]string
}

// Main starts a server (private unless DVRFLOW_TEST_DATABASE_URL is set), stores it in
// *srv, runs the tests and stops the server. It returns the exit code for os.Exit.
func Main(m *testing.M, srv **Server) int {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range binDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL's %s not found in $PATH or %s: install postgresql (make deps) or set %s", name, strings.Join(binDirs, ", "), EnvURL)
}

// Start starts a private PostgreSQL cluster in a temporary directory (initdb with trust
// auth, a unix socket in that directory and a free TCP port on 127.0.0.1), as the
// "postgres" user when running as root. With DVRFLOW_TEST_DATABASE_URL set it returns
// that server instead.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return &Server{adminURL: u}, nil
	}
	initdb, err := findBin("initdb")
	if err != nil {
		return nil, err
	}
	s, err := newPrivate()
	if err != nil {
		return nil, err
	}
	if out, err := s.run(ctx, initdb, "-D", s.data(), "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-sync"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := s.start(ctx, opts); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

// newPrivate finds pg_ctl, decides who runs PostgreSQL (the "postgres" user when running
// as root) and makes the server's directory.
func newPrivate() (*Server, error) {
	pgCtl, err := findBin("pg_ctl")
	if err != nil {
		return nil, err
	}
	s := &Server{pgCtl: pgCtl}
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		if _, err := user.Lookup(s.runAs); err != nil {
			return nil, fmt.Errorf("running as root needs the %q user to run PostgreSQL: %w", s.runAs, err)
		}
	}
	dir, err := os.MkdirTemp("", "dvrflow-pg-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s.dir = dir
	if err := s.chown(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// data is a private server's data directory.
func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// start starts the cluster in s.data() on a free port.
func (s *Server) start(ctx context.Context, opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": s.dir,
		"max_connections":         "200",
		"shared_buffers":          "128MB",
	}
	if !opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var o strings.Builder
	for k, v := range settings {
		fmt.Fprintf(&o, "-c %s=%s ", k, v)
	}
	s.startArgs = []string{"start", "-w", "-t", "60", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", o.String()}
	if out, err := s.run(ctx, s.pgCtl, s.startArgs...); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
	}
	s.port = port
	s.adminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return nil
}

func (s *Server) chown(path string) error {
	if s.runAs == "" {
		return nil
	}
	u, err := user.Lookup(s.runAs)
	if err != nil {
		return fmt.Errorf("look up %s: %w", s.runAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

func (s *Server) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.runAs, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the URL of database name on this server.
func (s *Server) URL(name string) string {
	u, err := url.Parse(s.adminURL)
	if err != nil {
		return s.adminURL
	}
	u.Path = "/" + name
	return u.String()
}

// CreateDatabase creates a database with a unique name and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (name, dsn string, err error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("random name: %w", err)
	}
	name = "dvrflow_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, s.URL(name), nil
}

// DropDatabase drops a database made by CreateDatabase.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// NewDatabase creates a fresh database for t, dropped when t ends, and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name, dsn, err := s.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// Pause stops a private server as an operator's `pg_ctl stop -m fast` does, keeping its
// data; Resume starts it again on the same port.
func (s *Server) Pause(ctx context.Context) error {
	if s.dir == "" {
		return errors.New("pgtest: an external server cannot be paused")
	}
	if out, err := s.run(ctx, s.pgCtl, "stop", "-w", "-m", "fast", "-D", filepath.Join(s.dir, "data")); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Resume starts a paused server again.
func (s *Server) Resume(ctx context.Context) error {
	if out, err := s.run(ctx, s.pgCtl, s.startArgs...); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// Stop stops a private server (or waits for the processes of a killed one to be gone)
// and removes its directory (no-op for an external one).
func (s *Server) Stop() error {
	if s.dir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if len(s.killed) > 0 {
		// Killed: nothing to stop, but its processes must be gone before its files.
		if err := s.waitKilled(); err != nil {
			errs = append(errs, err)
		}
	} else if out, err := s.run(ctx, s.pgCtl, "stop", "-w", "-m", "fast", "-D", filepath.Join(s.dir, "data")); err != nil {
		errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, out))
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}
