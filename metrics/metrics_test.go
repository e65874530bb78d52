package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("no line %q", l)
		}
	}
}

func TestObserverSeries(t *testing.T) {
	lag := map[string]int64{"compute1": 0, "compute2": 3}
	m := New(zaptest.NewLogger(t), Sources{
		BridgeOf: func(dpid uint64) string {
			switch dpid {
			case 1:
				return "br-tun"
			case 2:
				return "br-int"
			}
			return ""
		},
		Sessions: func() int { return 3 },
		Revision: func() int64 { return 42 },
		HostLag:  func(context.Context) (map[string]int64, error) { return lag, nil },
	})
	m.FlowModsSent(1, apps.Cookie(apps.AppL2), 5)
	m.FlowModsSent(1, apps.Cookie(apps.AppL2), 2)
	m.FlowModsSent(7, 0x1234, 1)
	m.PacketIn(7, 60, false) // a switch of no registered host: the table by number
	m.Reconciled(1, 3*time.Millisecond, nil)
	m.Reconciled(1, time.Millisecond, errors.New("switch went away"))
	m.PacketIn(1, 1, false) // br-tun table 1
	m.PacketIn(2, 21, false)
	m.PacketIn(2, 21, false)
	m.PacketIn(2, 60, false)
	m.PacketIn(1, 21, true)
	body := scrape(t, m)
	wantLines(t, body,
		`dvrflow_switch_sessions 3`,
		`dvrflow_topology_revision 42`,
		`dvrflow_flow_mods_total{app="l2",bridge="br-tun"} 7`,
		`dvrflow_flow_mods_total{app="foreign",bridge="unknown"} 1`,
		`dvrflow_reconcile_duration_seconds_count{bridge="br-tun"} 2`,
		`dvrflow_reconcile_duration_seconds_bucket{bridge="br-tun",le="0.002"} 1`,
		`dvrflow_reconcile_failures_total{bridge="br-tun"} 1`,
		`dvrflow_packet_ins_total{table="DVR_PROCESS"} 1`,
		`dvrflow_packet_ins_total{table="ARP_RESPONDER"} 2`,
		`dvrflow_packet_ins_total{table="TRANSIENT"} 1`,
		`dvrflow_packet_ins_total{table="60"} 1`,
		`dvrflow_packet_in_drops_total 1`,
		`dvrflow_host_revision_lag{host="compute1"} 0`,
		`dvrflow_host_revision_lag{host="compute2"} 3`,
	)
	// A host gone from the store is gone from the next scrape.
	lag = map[string]int64{"compute1": 1}
	body = scrape(t, m)
	wantLines(t, body, `dvrflow_host_revision_lag{host="compute1"} 1`)
	if strings.Contains(body, `host="compute2"`) {
		t.Error("a deleted host still has a lag series")
	}
}

func TestMiddlewareObservesRouteAndCode(t *testing.T) {
	m := New(zaptest.NewLogger(t), Sources{})
	e := echo.New()
	e.Use(m.Middleware())
	e.GET("/v2.0/ports/:id", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/teapot", func(c echo.Context) error { return echo.NewHTTPError(http.StatusTeapot, "short and stout") })
	srv := httptest.NewServer(e)
	defer srv.Close()
	for path, code := range map[string]int{"/v2.0/ports/a": 200, "/v2.0/ports/b": 200, "/teapot": 418, "/nowhere/x1": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("%s: %d %s, want %d", path, resp.StatusCode, b, code)
		}
	}
	body := scrape(t, m)
	wantLines(t, body,
		`dvrflow_api_request_duration_seconds_count{code="200",method="GET",route="/v2.0/ports/:id"} 2`,
		`dvrflow_api_request_duration_seconds_count{code="418",method="GET",route="/teapot"} 1`,
	)
	if strings.Contains(body, "x1") || strings.Contains(body, `route="/v2.0/ports/a"`) {
		t.Errorf("a raw path became a label:\n%s", body)
	}
	if !strings.Contains(body, `code="404"`) {
		t.Error("the 404 was not observed")
	}
	if strings.Contains(body, "dvrflow_switch_sessions") {
		t.Error("a series without a source was exported")
	}
}

func BenchmarkPacketIn(b *testing.B) {
	m := New(zaptest.NewLogger(b), Sources{BridgeOf: func(uint64) string { return "br-int" }})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.PacketIn(1, apps.IntTransient, false)
		}
	})
}
