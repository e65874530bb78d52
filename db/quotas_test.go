package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
)

// TestQuotaStore sets, lists, details and resets limits, with configured defaults.
func TestQuotaStore(t *testing.T) {
	ctx := context.Background()
	cfg := db.DefaultConfig()
	cfg.QuotaDefaults["router"] = 3
	s, err := db.Open(ctx, pg.NewDatabase(t), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if d := s.DefaultQuotas(); d["router"] != 3 || d["network"] != 100 || d["subnetpool"] != -1 {
		t.Fatalf("defaults %v: want router 3 (configured), network 100, subnetpool -1", d)
	}
	if got := ok(s.ListQuotas(ctx))(t); len(got) != 0 {
		t.Fatalf("quotas listed before any was set: %v", got)
	}
	q := ok(s.SetQuotas(ctx, "p", map[string]int64{"network": 1, "port": -1}, false))(t)
	if q["network"] != 1 || q["port"] != -1 || q["router"] != 3 {
		t.Fatalf("limits after set %v", q)
	}
	_, err = s.SetQuotas(ctx, "p", map[string]int64{"network": 2, "bogus": 1}, false)
	wantErrType(t, err, "BadRequest")
	_, err = s.SetQuotas(ctx, "p", map[string]int64{"network": -2}, false)
	wantErrType(t, err, "InvalidInput")
	if q := ok(s.Quotas(ctx, "p"))(t); q["network"] != 1 {
		t.Fatalf("a refused set changed the limit: %v", q)
	}
	ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	_, err = s.SetQuotas(ctx, "p", map[string]int64{"network": 0}, true)
	wantErrType(t, err, "BadRequest")
	d := ok(s.QuotaDetails(ctx, "p"))(t)
	if d["network"] != (db.QuotaDetail{Limit: 1, Used: 1}) || d["port"] != (db.QuotaDetail{Limit: -1}) {
		t.Fatalf("details %v", d)
	}
	if l := ok(s.ListQuotas(ctx))(t); len(l) != 1 || l[0].ProjectID != "p" || l[0].Limits["network"] != 1 || l[0].Limits["router"] != 3 {
		t.Fatalf("list %v", l)
	}
	if err := s.DeleteQuotas(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	wantErrType(t, s.DeleteQuotas(ctx, "p"), "TenantQuotaNotFound")
	if q := ok(s.Quotas(ctx, "p"))(t); q["network"] != 100 {
		t.Fatalf("limits after reset %v", q)
	}
}

// TestBulkPortQuotaPerProject counts a bulk create's ports against each of their
// projects: one project past its limit refuses the whole batch.
func TestBulkPortQuotaPerProject(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", Shared: ptr(true)}))(t)
	ok(s.SetQuotas(ctx, "q", map[string]int64{"port": 1}, false))(t)
	specs := []db.PortSpec{{NetworkID: n.ID, ProjectID: "p"}, {NetworkID: n.ID, ProjectID: "q"}, {NetworkID: n.ID, ProjectID: "q"}}
	_, err := s.CreatePorts(ctx, specs)
	wantErrType(t, err, "OverQuota")
	if !strings.Contains(err.Error(), "Quota exceeded for resources: ['port'].") {
		t.Fatalf("error %v", err)
	}
	if ports := ok(s.ListPorts(ctx))(t); len(ports) != 0 {
		t.Fatalf("%d ports after a refused bulk create", len(ports))
	}
	ok(s.CreatePorts(ctx, specs[:2]))(t)
}

func TestQuotaDefaultsValidated(t *testing.T) {
	for _, q := range []map[string]int64{{"network": -2}, {"network": 1 << 31}, {"bogus": 1}} {
		cfg := db.DefaultConfig()
		cfg.QuotaDefaults = q
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "quota") {
			t.Errorf("defaults %v: %v, want refused", q, err)
		}
	}
}
