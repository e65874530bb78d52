// Package keystone runs a private Keystone for tests, from Debian's keystone package: a
// configuration in a temporary directory (SQLite database, fernet tokens, fernet and
// credential keys there too), `keystone-manage db_sync` and `bootstrap` (user admin in
// project admin with roles admin, member and reader, region RegionOne, the identity
// endpoint), and Keystone's public WSGI application served by uwsgi's python3 plugin on a
// loopback port. Close kills uwsgi by its process group and removes the directory.
//
// It needs root (keystone-manage hands the key repositories to a user) and the packages
// keystone and uwsgi-plugin-python3; Unavailable says why it cannot run. The Server's
// methods are a small client of Keystone's v3 admin API for setting tests up: projects,
// users with a role, roles.
package keystone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	// AdminUser, AdminProject and Region are what bootstrap creates.
	AdminUser    = "admin"
	AdminProject = "admin"
	Region       = "RegionOne"
	// Domain is the default domain's name.
	Domain = "Default"
)

// Unavailable returns why a private Keystone cannot run here, or "" if it can.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "a private Keystone needs root (keystone-manage fernet_setup hands keys to a user)"
	}
	for _, p := range []string{"keystone-manage", "uwsgi"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " is not installed (make deps installs keystone)"
		}
	}
	if _, err := os.Stat(wsgiFile); err != nil {
		return wsgiFile + " is missing (Debian package keystone)"
	}
	return ""
}

const wsgiFile = "/usr/bin/keystone-wsgi-public"

// Server is a running private Keystone.
type Server struct {
	// URL is the identity endpoint, http://127.0.0.1:PORT/v3.
	URL string
	// AdminPassword is the bootstrap admin's password.
	AdminPassword string

	dir  string
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start sets a Keystone up in a new temporary directory and serves it; the caller must
// Close it.
func Start(ctx context.Context) (*Server, error) {
	if why := Unavailable(); why != "" {
		return nil, errors.New(why)
	}
	dir, err := os.MkdirTemp("", "dvrflow-keystone-")
	if err != nil {
		return nil, fmt.Errorf("keystone dir: %w", err)
	}
	s := &Server{dir: dir, AdminPassword: "admin-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if err := s.setUp(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) setUp(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.URL = "http://" + s.addr + "/v3"
	conf := fmt.Sprintf(`[DEFAULT]
log_dir =
use_stderr = true
[database]
connection = sqlite:///%[1]s/keystone.db
[identity]
password_hash_rounds = 4
[token]
provider = fernet
[fernet_tokens]
key_repository = %[1]s/fernet-keys
[credential]
key_repository = %[1]s/credential-keys
`, s.dir)
	if err := os.WriteFile(s.conf(), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("keystone config: %w", err)
	}
	for _, d := range []string{"fernet-keys", "credential-keys"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			return fmt.Errorf("keystone keys: %w", err)
		}
	}
	// The key repositories do not depend on the database: set them up beside db_sync.
	errc := make(chan error, 2)
	for _, sub := range []string{"fernet_setup", "credential_setup"} {
		go func() { errc <- s.manage(ctx, sub, "--keystone-user", "root", "--keystone-group", "root") }()
	}
	err = s.manage(ctx, "db_sync")
	for range 2 {
		err = errors.Join(err, <-errc)
	}
	if err != nil {
		return err
	}
	// Write-ahead logging: a request that still holds a read transaction on one of the
	// pool's connections does not fail the next one's commit with "database is locked".
	// The mode is kept in the database file.
	wal := exec.CommandContext(ctx, "python3", "-c",
		`import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL").fetchone()[0])`,
		filepath.Join(s.dir, "keystone.db"))
	if out, err := wal.CombinedOutput(); err != nil || string(bytes.TrimSpace(out)) != "wal" {
		return fmt.Errorf("keystone database in WAL mode: %v: %s", err, out)
	}
	return s.manage(ctx, "bootstrap", "--bootstrap-password", s.AdminPassword,
		"--bootstrap-username", AdminUser, "--bootstrap-project-name", AdminProject,
		"--bootstrap-region-id", Region, "--bootstrap-public-url", s.URL)
}

func (s *Server) conf() string { return filepath.Join(s.dir, "keystone.conf") }

func (s *Server) manage(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "keystone-manage", append([]string{"--config-file", s.conf()}, args...)...)
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("keystone-manage %s: %w\n%s", args[0], err, tail(out))
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Restart serves Keystone (again, after Stop) on its address and waits until it answers.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("keystone is running")
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "uwsgi.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("keystone log: %w", err)
	}
	defer logf.Close()
	// One worker, one thread: Keystone's threads on one SQLite database fail with
	// "database is locked". One request per connection, said so to the clients.
	cmd := exec.Command("uwsgi", "--http-socket", s.addr, "--plugin", "python3",
		"--wsgi-file", wsgiFile, "--master", "--processes", "1", "--lazy-apps", "--die-on-term",
		"--buffer-size", "65535", "--add-header", "Connection: close")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "OS_KEYSTONE_CONFIG_DIR="+s.dir, "OS_KEYSTONE_CONFIG_FILES=keystone.conf")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start uwsgi: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // the exit is seen through exited
	s.cmd, s.exited = cmd, exited
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.dir, "uwsgi.log"))
			return fmt.Errorf("uwsgi exited before Keystone answered:\n%s", tail(log))
		case <-ctx.Done():
			s.stopLocked()
			return fmt.Errorf("waiting for Keystone: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills uwsgi (its whole process group) and waits for it; the data stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // it may have exited
	<-s.exited
	s.cmd = nil
}

// Log returns the end of Keystone's log (uwsgi's and Keystone's lines), for failures.
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "uwsgi.log"))
	if err != nil {
		return err.Error()
	}
	return string(tail(b))
}

// Close stops Keystone and removes its directory.
func (s *Server) Close() error {
	s.Stop()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove keystone dir: %w", err)
	}
	return nil
}

// Token returns a token for user scoped to project (both in the default domain).
func (s *Server) Token(ctx context.Context, user, password, project string) (string, error) {
	body := passwordAuth(user, password, project)
	resp, _, err := s.call(ctx, "", http.MethodPost, "/auth/tokens", body, http.StatusCreated)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("X-Subject-Token"), nil
}

func passwordAuth(user, password, project string) any {
	return map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "password": password, "domain": map[string]any{"name": Domain}},
		}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"name": Domain}}},
	}}
}

// Admin is a client of the v3 API acting as the bootstrap admin.
type Admin struct {
	s     *Server
	token string
}

// Admin gets an admin token.
func (s *Server) Admin(ctx context.Context) (*Admin, error) {
	tok, err := s.Token(ctx, AdminUser, s.AdminPassword, AdminProject)
	if err != nil {
		return nil, err
	}
	return &Admin{s: s, token: tok}, nil
}

// CreateProject creates a project in the default domain and returns its ID.
func (a *Admin) CreateProject(ctx context.Context, name string) (string, error) {
	var out struct{ Project struct{ ID string } }
	_, raw, err := a.s.call(ctx, a.token, http.MethodPost, "/projects",
		map[string]any{"project": map[string]any{"name": name, "domain_id": "default"}}, http.StatusCreated)
	if err != nil {
		return "", err
	}
	if err := decode(raw, &out, &out.Project.ID); err != nil {
		return "", err
	}
	return out.Project.ID, nil
}

// Role returns the ID of role name, creating it if it does not exist.
func (a *Admin) Role(ctx context.Context, name string) (string, error) {
	var out struct{ Roles []struct{ ID string } }
	_, raw, err := a.s.call(ctx, a.token, http.MethodGet, "/roles?name="+name, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("keystone roles: %w", err)
	}
	if len(out.Roles) > 0 {
		return out.Roles[0].ID, nil
	}
	var created struct{ Role struct{ ID string } }
	_, raw, err = a.s.call(ctx, a.token, http.MethodPost, "/roles",
		map[string]any{"role": map[string]any{"name": name}}, http.StatusCreated)
	if err != nil {
		return "", err
	}
	if err := decode(raw, &created, &created.Role.ID); err != nil {
		return "", err
	}
	return created.Role.ID, nil
}

// CreateUser creates a user in the default domain with role on projectID, and returns
// the user's ID.
func (a *Admin) CreateUser(ctx context.Context, name, password, projectID, role string) (string, error) {
	roleID, err := a.Role(ctx, role)
	if err != nil {
		return "", err
	}
	var out struct{ User struct{ ID string } }
	_, raw, err := a.s.call(ctx, a.token, http.MethodPost, "/users", map[string]any{"user": map[string]any{
		"name": name, "password": password, "domain_id": "default", "default_project_id": projectID}}, http.StatusCreated)
	if err != nil {
		return "", err
	}
	if err := decode(raw, &out, &out.User.ID); err != nil {
		return "", err
	}
	_, _, err = a.s.call(ctx, a.token, http.MethodPut,
		"/projects/"+projectID+"/users/"+out.User.ID+"/roles/"+roleID, nil, http.StatusNoContent)
	return out.User.ID, err
}

// RegisterService creates a service of type kind named name with a public endpoint url
// in Region, as `openstack service create` and `openstack endpoint create` do.
func (a *Admin) RegisterService(ctx context.Context, kind, name, url string) error {
	var out struct{ Service struct{ ID string } }
	_, raw, err := a.s.call(ctx, a.token, http.MethodPost, "/services",
		map[string]any{"service": map[string]any{"type": kind, "name": name}}, http.StatusCreated)
	if err != nil {
		return err
	}
	if err := decode(raw, &out, &out.Service.ID); err != nil {
		return err
	}
	_, _, err = a.s.call(ctx, a.token, http.MethodPost, "/endpoints", map[string]any{"endpoint": map[string]any{
		"service_id": out.Service.ID, "interface": "public", "region_id": Region, "url": url}}, http.StatusCreated)
	return err
}

func decode(raw []byte, dst any, id *string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("keystone answer: %w", err)
	}
	if *id == "" {
		return fmt.Errorf("keystone answer without an id: %s", raw)
	}
	return nil
}

// call sends a v3 request and requires status want.
func (s *Server) call(ctx context.Context, token, method, path string, body any, want int) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, nil, fmt.Errorf("keystone %s %s: %s, want %d: %s", method, path, resp.Status, want, raw)
	}
	return resp, raw, nil
}
