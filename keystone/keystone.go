// Package keystone validates OpenStack tokens against Keystone v3 as keystonemiddleware's
// auth_token does for every OpenStack service: the service holds its own credentials and
// token (POST /v3/auth/tokens, renewed before it expires), asks Keystone about each client
// token (GET /v3/auth/tokens with X-Auth-Token: its own and X-Subject-Token: the client's),
// and caches the answer: a valid token for CacheTime but never past its expiry, an invalid
// one briefly (keystonemiddleware's negative cache).
package keystone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrInvalidToken is the answer for a token Keystone does not know, or that expired.
var ErrInvalidToken = errors.New("keystone: invalid or expired token")

// ErrUnavailable wraps every failure to reach Keystone or to get an answer from it.
var ErrUnavailable = errors.New("keystone unavailable")

const (
	// negativeCacheTime is how long an invalid token is remembered as such (at most
	// CacheTime), so that a client retrying a bad token does not reach Keystone each time.
	negativeCacheTime = 10 * time.Second
	// renewBefore: the service's own token is renewed this long before it expires
	// (keystoneauth's stale token duration).
	renewBefore = 30 * time.Second
	// maxCached bounds the cache; beyond it, expired entries are swept and, if that is not
	// enough, the cache starts over.
	maxCached = 100000
)

// Config is the service's identity in Keystone and the cache's settings.
type Config struct {
	// AuthURL is Keystone's identity endpoint, e.g. http://keystone:5000/v3 ("/v3" is
	// added when missing).
	AuthURL string
	// Username and Password are the service user's (e.g. "neutron").
	Username, Password string
	// Project is the name of the service user's project (e.g. "service").
	Project string
	// UserDomain and ProjectDomain are the names of the user's and project's domains.
	UserDomain, ProjectDomain string
	// CacheTime is how long a validated token is trusted without asking Keystone again
	// (never past the token's expiry); keystonemiddleware's token_cache_time.
	CacheTime time.Duration
	// Client sends the requests to Keystone (nil: a client with a 10 s timeout).
	Client *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// DefaultConfig returns keystonemiddleware's defaults: domains "Default", a 5 min cache.
func DefaultConfig() Config {
	return Config{UserDomain: "Default", ProjectDomain: "Default", CacheTime: 5 * time.Minute}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.AuthURL == "":
		return errors.New("an auth URL is required")
	case !strings.HasPrefix(c.AuthURL, "http://") && !strings.HasPrefix(c.AuthURL, "https://"):
		return fmt.Errorf("auth URL %q: want http:// or https://", c.AuthURL)
	case c.Username == "" || c.Password == "" || c.Project == "":
		return errors.New("a user, a password and a project are required")
	case c.UserDomain == "" || c.ProjectDomain == "":
		return errors.New("user and project domains are required")
	case c.CacheTime < 0:
		return errors.New("the token cache time must not be negative")
	}
	return nil
}

// Identity is what a valid token says about its bearer.
type Identity struct {
	UserID, UserName string
	// ProjectID and ProjectName are empty unless the token is project-scoped.
	ProjectID, ProjectName string
	ProjectScoped          bool
	// Roles are the names of the token's roles, implied ones included (Keystone's
	// defaults: admin implies member, member implies reader).
	Roles     []string
	ExpiresAt time.Time
}

// HasRole reports whether the token carries role name.
func (id *Identity) HasRole(name string) bool { return slices.Contains(id.Roles, name) }

// Validator validates client tokens; it is safe for concurrent use.
type Validator struct {
	cfg     Config
	authURL string // ends in /v3
	client  *http.Client
	now     func() time.Time

	svcMu     sync.Mutex // held while the service token is got
	svcToken  string
	svcExpiry time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
}

type cached struct {
	id    *Identity // nil: invalid
	until time.Time
}

// New returns a validator for cfg; it does not reach Keystone until the first Validate.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("keystone config: %w", err)
	}
	v := &Validator{cfg: cfg, client: cfg.Client, now: cfg.Now, cache: map[[sha256.Size]byte]cached{}}
	v.authURL = strings.TrimSuffix(cfg.AuthURL, "/")
	if !strings.HasSuffix(v.authURL, "/v3") {
		v.authURL += "/v3"
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// AuthURL is Keystone's identity endpoint, as clients are told in WWW-Authenticate.
func (v *Validator) AuthURL() string { return v.authURL }

// Validate returns the identity of token: ErrInvalidToken if Keystone does not accept it
// or it has expired, an error wrapping ErrUnavailable if Keystone could not be asked.
func (v *Validator) Validate(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, ErrInvalidToken
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	e, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.id == nil {
			return nil, ErrInvalidToken
		}
		return e.id, nil
	}
	id, err := v.ask(ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		v.store(key, cached{until: now.Add(min(negativeCacheTime, v.cfg.CacheTime))})
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !now.Before(id.ExpiresAt) {
		return nil, ErrInvalidToken
	}
	v.store(key, cached{id: id, until: minTime(now.Add(v.cfg.CacheTime), id.ExpiresAt)})
	return id, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (v *Validator) store(key [sha256.Size]byte, e cached) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCached {
		now := v.now()
		for k, old := range v.cache {
			if !now.Before(old.until) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCached {
			clear(v.cache)
		}
	}
	v.cache[key] = e
}

// ask asks Keystone about token, renewing the service's token once if Keystone refuses it.
func (v *Validator) ask(ctx context.Context, token string) (*Identity, error) {
	for attempt := 0; ; attempt++ {
		svc, err := v.serviceToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.authURL+"/auth/tokens", nil)
		if err != nil {
			return nil, fmt.Errorf("keystone: validate token: %w", err)
		}
		req.Header.Set("X-Auth-Token", svc)
		req.Header.Set("X-Subject-Token", token)
		req.Header.Set("Accept", "application/json")
		resp, err := v.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w: validate token: %w", ErrUnavailable, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: validate token: %w", ErrUnavailable, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return parseToken(body)
		case resp.StatusCode == http.StatusNotFound:
			return nil, ErrInvalidToken
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			continue // our own token was revoked: get a new one
		}
		return nil, fmt.Errorf("%w: validate token: %s: %s", ErrUnavailable, resp.Status, bytes.TrimSpace(body))
	}
}

// serviceToken returns the service's own token, getting a new one when it is missing,
// about to expire, or renew is set.
func (v *Validator) serviceToken(ctx context.Context, renew bool) (string, error) {
	v.svcMu.Lock()
	defer v.svcMu.Unlock()
	if !renew && v.svcToken != "" && v.now().Add(renewBefore).Before(v.svcExpiry) {
		return v.svcToken, nil
	}
	tok, id, err := v.password(ctx)
	if err != nil {
		return "", err
	}
	v.svcToken, v.svcExpiry = tok, id.ExpiresAt
	return tok, nil
}

// password gets a project-scoped token for the service user (POST /v3/auth/tokens).
func (v *Validator) password(ctx context.Context) (string, *Identity, error) {
	c := v.cfg
	raw, err := json.Marshal(PasswordAuth(c.Username, c.Password, c.UserDomain, c.Project, c.ProjectDomain))
	if err != nil {
		return "", nil, fmt.Errorf("keystone: service token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.authURL+"/auth/tokens", bytes.NewReader(raw))
	if err != nil {
		return "", nil, fmt.Errorf("keystone: service token: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("%w: service token: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, fmt.Errorf("%w: service token: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusCreated {
		// Wrong service credentials also end here: no client token can be checked.
		return "", nil, fmt.Errorf("%w: service token for %s: %s: %s", ErrUnavailable, c.Username, resp.Status, bytes.TrimSpace(body))
	}
	id, err := parseToken(body)
	if err != nil {
		return "", nil, err
	}
	tok := resp.Header.Get("X-Subject-Token")
	if tok == "" {
		return "", nil, fmt.Errorf("%w: service token: no X-Subject-Token in Keystone's answer", ErrUnavailable)
	}
	return tok, id, nil
}

// PasswordAuth is the body of POST /v3/auth/tokens for a password scoped to a project,
// project and domains given by name.
func PasswordAuth(user, password, userDomain, project, projectDomain string) any {
	return map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "password": password, "domain": map[string]any{"name": userDomain}},
		}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"name": projectDomain}}},
	}}
}

// tokenBody is the part of Keystone's token document that is read.
type tokenBody struct {
	Token struct {
		ExpiresAt time.Time `json:"expires_at"`
		User      struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
		Project *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"project"`
		Roles []struct {
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

func parseToken(body []byte) (*Identity, error) {
	var tb tokenBody
	if err := json.Unmarshal(body, &tb); err != nil {
		return nil, fmt.Errorf("%w: token document: %w", ErrUnavailable, err)
	}
	t := tb.Token
	if t.User.ID == "" || t.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("%w: token document without user or expiry", ErrUnavailable)
	}
	id := &Identity{UserID: t.User.ID, UserName: t.User.Name, ExpiresAt: t.ExpiresAt}
	if t.Project != nil && t.Project.ID != "" {
		id.ProjectID, id.ProjectName, id.ProjectScoped = t.Project.ID, t.Project.Name, true
	}
	for _, r := range t.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	return id, nil
}
