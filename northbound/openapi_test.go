package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/metrics"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/status"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap/zaptest"
)

type openAPIOp struct {
	OperationID string           `json:"operationId"`
	Parameters  []map[string]any `json:"parameters"`
	Responses   map[string]any   `json:"responses"`
	Security    *[]any           `json:"security"`
}

type openAPIDoc struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(northbound.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi version %q, want 3.0.x", doc.OpenAPI)
	}
	return doc
}

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// openAPIPath turns an Echo route path into an OpenAPI one: /ports/:id -> /ports/{id},
// /static/* -> /static/{path}.
func openAPIPath(p string) string {
	p = echoParam.ReplaceAllString(p, "{$1}")
	if strings.HasSuffix(p, "*") {
		p = strings.TrimSuffix(p, "*") + "{path}"
	}
	return p
}

// TestOpenAPICoversEveryRoute walks the routes of the API, with the status page, the
// switch API and the metrics mounted as dvrflowd mounts them: every route must be in the
// document, and every operation of the document must be a route.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	log := zaptest.NewLogger(t)
	a := newAPI(t)
	st, err := status.New(log, status.Config{Switches: controller.NewServer(log, controller.Config{}), Store: a.store})
	if err != nil {
		t.Fatal(err)
	}
	mx := metrics.New(log, metrics.Sources{
		BridgeOf: st.BridgeOf, Sessions: st.Sessions, Revision: st.Revision, HostLag: st.HostLag,
	})
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = adminToken
	cfg.Mount = func(e *echo.Echo, v2 *echo.Group) {
		st.Mount(e, v2)
		e.GET("/metrics", echo.WrapHandler(mx.Handler()))
	}
	s, err := northbound.New(a.store, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		method, path := strings.ToLower(r.Method), openAPIPath(r.Path)
		routes[method+" "+path] = true
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("route %s %s is not in openapi.json", r.Method, r.Path)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !routes[method+" "+path] {
				t.Errorf("openapi.json has %s %s, which no route serves", strings.ToUpper(method), path)
			}
		}
	}
}

// TestOpenAPIWellFormed checks what a client generator relies on: unique operation IDs,
// every path parameter declared, every $ref resolved, responses everywhere, and no token
// required on the public routes.
func TestOpenAPIWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)
	ids := map[string]bool{}
	public := []string{"/", "/openapi.json", "/v2.0/openapi.json", "/metrics", "/status", "/status/", "/status/hosts/{host}",
		"/status/switches/{dpid}", "/status/static/{path}"}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: operationId %q empty or duplicated", where, op.OperationID)
			}
			ids[op.OperationID] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for _, m := range regexp.MustCompile(`\{([a-z_]+)\}`).FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p map[string]any) bool { return p["name"] == m[1] && p["in"] == "path" }) {
					t.Errorf("%s: path parameter %s not declared", where, m[1])
				}
			}
			isPublic := op.Security != nil && len(*op.Security) == 0
			if isPublic != slices.Contains(public, path) {
				t.Errorf("%s: public %v, want %v", where, isPublic, !isPublic)
			}
			if !isPublic {
				if _, ok := op.Responses["401"]; !ok {
					t.Errorf("%s: needs a token but documents no 401", where)
				}
			}
		}
	}
	for _, ref := range regexp.MustCompile(`"\$ref": "#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(northbound.OpenAPI()), -1) {
		if _, ok := doc.Components.Schemas[ref[1]]; !ok {
			t.Errorf("$ref to undefined schema %s", ref[1])
		}
	}
	for _, kind := range []string{"Network", "Subnet", "Port", "Router", "FloatingIP", "Agent", "DVRHost", "Plan", "Switch",
		"SwitchFlows", "NeutronError"} {
		if _, ok := doc.Components.Schemas[kind]; !ok {
			t.Errorf("no schema %s", kind)
		}
	}
}

// TestOpenAPIServedWithoutToken fetches the document from both paths with no token.
func TestOpenAPIServedWithoutToken(t *testing.T) {
	a := newAPI(t)
	for _, p := range []string{"/openapi.json", "/v2.0/openapi.json"} {
		resp, err := http.Get(a.url + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			!bytes.Equal(body, northbound.OpenAPI()) {
			t.Fatalf("GET %s: %d %s, %d bytes", p, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	// The rest of /v2.0 still needs one.
	code, out := a.do("", "GET", "/v2.0/networks", nil)
	wantError(t, code, out, http.StatusUnauthorized, "NotAuthenticated")
}

// schemaChecker validates JSON values against the document's schemas: types, nullability,
// and no property the schema does not list (unless it allows additional ones). check
// returns what does not conform.
type schemaChecker struct {
	schemas map[string]any
}

func (sc schemaChecker) check(where string, schema map[string]any, v any) []string {
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		s, ok := sc.schemas[name].(map[string]any)
		if !ok {
			return []string{where + ": $ref to undefined " + name}
		}
		return sc.check(where, s, v)
	}
	if alts, ok := schema["oneOf"].([]any); ok {
		for _, alt := range alts {
			if len(sc.check(where, alt.(map[string]any), v)) == 0 {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s: %v matches none of the oneOf schemas", where, v)}
	}
	if v == nil {
		if schema["nullable"] != true {
			return []string{where + ": null, but the schema is not nullable"}
		}
		return nil
	}
	typ, _ := schema["type"].(string)
	var errs []string
	ok := true
	switch x := v.(type) {
	case string:
		ok = typ == "string"
	case bool:
		ok = typ == "boolean"
	case float64:
		ok = typ == "number" || (typ == "integer" && x == float64(int64(x)))
	case []any:
		if ok = typ == "array"; ok {
			items, _ := schema["items"].(map[string]any)
			for i, e := range x {
				errs = append(errs, sc.check(where+"["+strconv.Itoa(i)+"]", items, e)...)
			}
		}
	case map[string]any:
		if ok = typ == "object"; ok {
			props, _ := schema["properties"].(map[string]any)
			for k, e := range x {
				if p, known := props[k].(map[string]any); known {
					errs = append(errs, sc.check(where+"."+k, p, e)...)
					continue
				}
				switch extra := schema["additionalProperties"].(type) {
				case map[string]any:
					errs = append(errs, sc.check(where+"."+k, extra, e)...)
				case bool:
					if !extra {
						errs = append(errs, fmt.Sprintf("%s: property %q not in the schema", where, k))
					}
				default:
					if len(props) > 0 {
						errs = append(errs, fmt.Sprintf("%s: property %q not in the schema", where, k))
					}
				}
			}
		}
	}
	if !ok {
		errs = append(errs, fmt.Sprintf("%s: %T %v, schema says %s", where, v, v, typ))
	}
	return errs
}

// TestOpenAPIDescribesRealAnswers checks the answers of the API on the seed topology
// against the document's response schemas: every attribute the API returns must be
// described, with its type.
func TestOpenAPIDescribesRealAnswers(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(northbound.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t)
	topo, err := seed.Create(context.Background(), seed.NewClient(a.url, adminToken), seed.DefaultOptions())
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	sc := schemaChecker{schemas: doc.Components.Schemas}
	agentID := list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents")[0]["id"].(string)
	for _, c := range []struct{ path, route string }{
		{"/", "/"},
		{"/v2.0", "/v2.0"},
		{"/v2.0/extensions", "/v2.0/extensions"},
		{"/v2.0/networks", "/v2.0/networks"},
		{"/v2.0/networks/" + topo.External.ID, "/v2.0/networks/{id}"},
		{"/v2.0/subnets", "/v2.0/subnets"},
		{"/v2.0/subnets/" + topo.Subnet1.ID, "/v2.0/subnets/{id}"},
		{"/v2.0/ports", "/v2.0/ports"},
		{"/v2.0/ports/" + topo.VMs["VM1"].ID, "/v2.0/ports/{id}"},
		{"/v2.0/routers", "/v2.0/routers"},
		{"/v2.0/routers/" + topo.Router.ID, "/v2.0/routers/{id}"},
		{"/v2.0/floatingips", "/v2.0/floatingips"},
		{"/v2.0/floatingips/" + topo.FloatingIPs["VM1"].ID, "/v2.0/floatingips/{id}"},
		{"/v2.0/agents", "/v2.0/agents"},
		{"/v2.0/agents/" + agentID, "/v2.0/agents/{id}"},
		{"/v2.0/dvr-hosts", "/v2.0/dvr-hosts"},
		{"/v2.0/dvr-hosts/compute1", "/v2.0/dvr-hosts/{host}"},
		{"/v2.0/dvr-host-macs", "/v2.0/dvr-host-macs"},
		{"/v2.0/ports?limit=2", "/v2.0/ports"},
	} {
		body := a.admin(http.StatusOK, "GET", c.path, nil)
		schema := doc.Paths[c.route]["get"].Responses["200"].Content["application/json"].Schema
		if schema == nil {
			t.Errorf("GET %s: no 200 JSON schema", c.route)
			continue
		}
		var v any
		raw, _ := json.Marshal(body)
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		for _, e := range sc.check("GET "+c.path, schema, v) {
			t.Error(e)
		}
	}
	// An error answer.
	_, body := a.do(adminToken, "GET", "/v2.0/ports/nope", nil)
	var v any
	raw, _ := json.Marshal(body)
	_ = json.Unmarshal(raw, &v)
	for _, e := range sc.check("GET /v2.0/ports/nope", doc.Paths["/v2.0/ports/{id}"]["get"].Responses["404"].Content["application/json"].Schema, v) {
		t.Error(e)
	}
}
