package northbound_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/keystone"
)

// fakeToken is who a token of the fake Keystone is: its project and roles.
type fakeToken struct {
	project string
	roles   []string
}

// fakeKeystone serves the two calls of keystone.Validator as Keystone v3 answers them:
// POST /v3/auth/tokens gives the service its token, GET /v3/auth/tokens describes the
// X-Subject-Token among tokens (404 for any other).
func fakeKeystone(t *testing.T, tokens map[string]fakeToken) *keystone.Validator {
	t.Helper()
	doc := func(w http.ResponseWriter, code int, user string, tok fakeToken) {
		var roles []map[string]string
		for _, r := range tok.roles {
			roles = append(roles, map[string]string{"name": r})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		err := json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"user":       map[string]string{"id": user, "name": user},
			"project":    map[string]string{"id": tok.project, "name": tok.project},
			"roles":      roles,
		}})
		if err != nil {
			t.Errorf("fake keystone: %v", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Subject-Token", "service-token")
		doc(w, http.StatusCreated, "dvrflow", fakeToken{project: "service", roles: []string{"service"}})
	})
	mux.HandleFunc("GET /v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "service-token" {
			http.Error(w, "service token required", http.StatusUnauthorized)
			return
		}
		sub := r.Header.Get("X-Subject-Token")
		tok, ok := tokens[sub]
		if !ok {
			http.NotFound(w, r)
			return
		}
		doc(w, http.StatusOK, "user-"+sub, tok)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := keystone.DefaultConfig()
	cfg.AuthURL, cfg.Username, cfg.Password, cfg.Project = srv.URL+"/v3", "dvrflow", "dvrflow-pw", "service"
	v, err := keystone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
