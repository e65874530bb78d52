package northbound_test

import (
	"net/http"
	"reflect"
	"testing"
)

// TestShowExtension checks that every listed extension is shown by its alias with the
// same fields as in the list, and that an unknown alias is Neutron's 404.
func TestShowExtension(t *testing.T) {
	a := newAPI(t)
	exts := list(a.admin(http.StatusOK, "GET", "/v2.0/extensions", nil), "extensions")
	if len(exts) == 0 {
		t.Fatal("no extensions listed")
	}
	for _, x := range exts {
		got := a.admin(http.StatusOK, "GET", "/v2.0/extensions/"+x["alias"].(string), nil)["extension"]
		if !reflect.DeepEqual(got, x) {
			t.Errorf("extension %v: shown %v, listed %v", x["alias"], got, x)
		}
	}
	code, out := a.do(adminToken, "GET", "/v2.0/extensions/no-such-ext", nil)
	wantError(t, code, out, http.StatusNotFound, "HTTPNotFound")
	if m := out["NeutronError"].(map[string]any)["message"]; m != "Extension with alias no-such-ext does not exist" {
		t.Errorf("message %q", m)
	}
	code, _ = a.do("", "GET", "/v2.0/extensions/router", nil)
	if code != http.StatusUnauthorized {
		t.Errorf("without a token: %d", code)
	}
}

// hasExtension reports whether the API lists alias.
func hasExtension(a *api, alias string) bool {
	for _, x := range list(a.admin(http.StatusOK, "GET", "/v2.0/extensions", nil), "extensions") {
		if x["alias"] == alias {
			return true
		}
	}
	return false
}
