package keystone_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/keystone"
	ksbed "github.com/dvrflow/dvrflow/testbed/keystone"
)

// ks is the private Keystone of the tests that need one (nil: they skip, with skipWhy).
var (
	ks      *ksbed.Server
	skipWhy string
)

const (
	svcUser, svcPassword, svcProject = "dvrflow", "dvrflow-pw", "service"
	memberUser, memberPassword       = "alice", "alice-pw"
	projectA                         = "project-a"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if skipWhy = ksbed.Unavailable(); skipWhy != "" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if ks, err = ksbed.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keystone:", err)
		return 1
	}
	defer ks.Close()
	if err := setUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keystone set-up:", err, "\n", ks.Log())
		return 1
	}
	return m.Run()
}

// setUp creates the service user (role service in project service, as a deployment
// gives Neutron's user) and a member of project-a.
func setUp(ctx context.Context) error {
	adm, err := ks.Admin(ctx)
	if err != nil {
		return err
	}
	svc, err := adm.CreateProject(ctx, svcProject)
	if err != nil {
		return err
	}
	if _, err := adm.CreateUser(ctx, svcUser, svcPassword, svc, "service"); err != nil {
		return err
	}
	a, err := adm.CreateProject(ctx, projectA)
	if err != nil {
		return err
	}
	_, err = adm.CreateUser(ctx, memberUser, memberPassword, a, "member")
	return err
}

func needKeystone(t *testing.T) {
	t.Helper()
	if ks == nil {
		t.Skip(skipWhy)
	}
}

// counter counts the requests that reach Keystone, by method.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// clock is a settable clock.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

func validator(t *testing.T, cache time.Duration, now func() time.Time) (*keystone.Validator, *counter) {
	t.Helper()
	cfg := keystone.DefaultConfig()
	cfg.AuthURL = ks.URL
	cfg.Username, cfg.Password, cfg.Project = svcUser, svcPassword, svcProject
	cfg.CacheTime = cache
	cfg.Now = now
	cnt := &counter{n: map[string]int{}}
	cfg.Client = &http.Client{Transport: cnt, Timeout: 10 * time.Second}
	v, err := keystone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, cnt
}

func TestValidate(t *testing.T) {
	needKeystone(t)
	ctx := context.Background()
	v, cnt := validator(t, time.Minute, nil)
	tok, err := ks.Token(ctx, memberUser, memberPassword, projectA)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Validate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !id.ProjectScoped || id.ProjectName != projectA || id.ProjectID == "" || id.UserName != memberUser || id.UserID == "" {
		t.Fatalf("identity %+v", id)
	}
	// Keystone's default roles: member implies reader; not admin.
	if !id.HasRole("member") || !id.HasRole("reader") || id.HasRole("admin") {
		t.Fatalf("roles %v: want member and reader", id.Roles)
	}
	if d := time.Until(id.ExpiresAt); d < 50*time.Minute || d > 61*time.Minute {
		t.Fatalf("expires in %s: want Keystone's default 1 h", d)
	}
	// One service token, one validation; the second answer comes from the cache.
	if _, err := v.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if cnt.get("POST") != 1 || cnt.get("GET") != 1 {
		t.Fatalf("requests to Keystone %v: want one POST (service token) and one GET", cnt.n)
	}
	for _, bad := range []string{"", "not-a-token", tok[:len(tok)-4] + "AAAA"} {
		if _, err := v.Validate(ctx, bad); !errors.Is(err, keystone.ErrInvalidToken) {
			t.Errorf("token %q: %v, want ErrInvalidToken", bad, err)
		}
	}
}

// TestCacheUntilExpiry: with a cache time longer than the token's life, the validated
// token is served from the cache until its expiry, not a moment beyond: then Keystone is
// asked again and the token is refused (on a clock past its expiry).
func TestCacheUntilExpiry(t *testing.T) {
	needKeystone(t)
	ctx := context.Background()
	clk := newClock(time.Now())
	v, cnt := validator(t, 24*time.Hour, clk.now)
	tok, err := ks.Token(ctx, memberUser, memberPassword, projectA)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Validate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	clk.set(id.ExpiresAt.Add(-time.Second))
	if _, err := v.Validate(ctx, tok); err != nil || cnt.get("GET") != 1 {
		t.Fatalf("a second before expiry: %v after %d validations, want the cached identity", err, cnt.get("GET"))
	}
	clk.set(id.ExpiresAt)
	if _, err := v.Validate(ctx, tok); !errors.Is(err, keystone.ErrInvalidToken) {
		t.Fatalf("at expiry: %v, want ErrInvalidToken", err)
	}
	if cnt.get("GET") != 2 {
		t.Fatalf("at expiry Keystone was asked %d times in all, want 2", cnt.get("GET"))
	}
	// The service's own token (same life) was renewed before it was used again.
	if cnt.get("POST") != 2 {
		t.Fatalf("service tokens %d, want 2 (renewed at expiry)", cnt.get("POST"))
	}
}

// TestCacheTime: a valid token is asked about again after the cache time; an invalid one
// is remembered briefly.
func TestCacheTime(t *testing.T) {
	needKeystone(t)
	ctx := context.Background()
	clk := newClock(time.Now())
	v, cnt := validator(t, 2*time.Minute, clk.now)
	tok, err := ks.Token(ctx, memberUser, memberPassword, projectA)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		tok     string
		advance time.Duration
		gets    int
		valid   bool
	}{
		{tok, 0, 1, true},
		{tok, time.Minute, 1, true},
		{tok, time.Minute, 2, true}, // 2 min: the cache time is over
		{"bogus", 0, 3, false},
		{"bogus", 5 * time.Second, 3, false}, // negative cache
		{"bogus", 5 * time.Second, 4, false}, // 10 s: asked again
	} {
		clk.add(step.advance)
		_, err := v.Validate(ctx, step.tok)
		if (err == nil) != step.valid || cnt.get("GET") != step.gets {
			t.Fatalf("%+v: %v after %d validations", step, err, cnt.get("GET"))
		}
	}
}

func TestUnavailable(t *testing.T) {
	needKeystone(t)
	ctx := context.Background()
	cfg := keystone.DefaultConfig()
	cfg.AuthURL, cfg.Username, cfg.Password, cfg.Project = ks.URL, svcUser, "wrong", svcProject
	v, err := keystone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(ctx, "some-token"); !errors.Is(err, keystone.ErrUnavailable) {
		t.Fatalf("wrong service password: %v, want ErrUnavailable", err)
	}
	cfg.AuthURL, cfg.Password = "http://127.0.0.1:1/v3", svcPassword
	if v, err = keystone.New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(ctx, "some-token"); !errors.Is(err, keystone.ErrUnavailable) {
		t.Fatalf("nothing listening: %v, want ErrUnavailable", err)
	}
}

func TestConfig(t *testing.T) {
	good := keystone.DefaultConfig()
	good.AuthURL, good.Username, good.Password, good.Project = "https://k:5000/", "u", "p", "service"
	v, err := keystone.New(good)
	if err != nil || v.AuthURL() != "https://k:5000/v3" {
		t.Fatalf("New: %v, auth URL %q", err, v.AuthURL())
	}
	for _, bad := range []func(*keystone.Config){
		func(c *keystone.Config) { c.AuthURL = "" },
		func(c *keystone.Config) { c.AuthURL = "k:5000" },
		func(c *keystone.Config) { c.Password = "" },
		func(c *keystone.Config) { c.Project = "" },
		func(c *keystone.Config) { c.ProjectDomain = "" },
		func(c *keystone.Config) { c.CacheTime = -time.Second },
	} {
		c := good
		bad(&c)
		if _, err := keystone.New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	id := keystone.Identity{Roles: []string{"reader"}}
	if !id.HasRole("reader") || id.HasRole("member") || !slices.Equal(id.Roles, []string{"reader"}) {
		t.Fatal("HasRole")
	}
}
