package metrics

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/mastership"
)

// TestMastershipSeries: the mastership loop's status becomes gauges and counters, one
// series per controller at most, read afresh at every scrape.
func TestMastershipSeries(t *testing.T) {
	st := mastership.Status{
		ID:       "ctl-a",
		Deadline: time.Now().Add(time.Hour),
		Live:     []string{"ctl-a", "ctl-b", "ctl-idle"},
		Hosts: []db.HostMaster{
			{Host: "compute1", DPIDs: []uint64{1, 2, 3}, Controller: "ctl-a", Term: 4},
			{Host: "compute2", DPIDs: []uint64{4, 5, 6}, Controller: "ctl-a", Term: 5},
			{Host: "network", DPIDs: []uint64{7, 8, 9}, Controller: "ctl-dead", Term: 2},
			{Host: "compute3", DPIDs: []uint64{10}},
		},
		Acting: 2,
		Stats: mastership.Stats{Claimed: 7, HandedOff: 3, Lapses: 1, Reads: 12, Stale: 2,
			Renewals: 10, Slow: 2, Lease: 2500 * time.Millisecond, RenewTime: 4 * time.Second,
			RenewLatency: [len(mastership.RenewBuckets) + 1]uint64{6, 1, 0, 0, 1, 0, 1, 0, 1}},
	}
	m := New(zaptest.NewLogger(t), Sources{Mastership: func() mastership.Status { return st }})
	body := scrape(t, m)
	wantLines(t, body,
		`dvrflow_controllers_live 3`,
		`dvrflow_mastership_hosts 2`,
		`dvrflow_controller_masterships{controller="ctl-a"} 2`,
		`dvrflow_controller_masterships{controller="ctl-b"} 0`,
		`dvrflow_controller_masterships{controller="ctl-idle"} 0`,
		`dvrflow_controller_masterships{controller="ctl-dead"} 1`,
		`dvrflow_mastership_claimed_total 7`,
		`dvrflow_mastership_handed_off_total 3`,
		`dvrflow_mastership_lapses_total 1`,
		`dvrflow_mastership_stale_refusals_total 2`,
		`dvrflow_mastership_host_reads_total 12`,
		`dvrflow_mastership_lease_asked_seconds 2.5`,
		`dvrflow_mastership_slow_renewals_total 2`,
		`dvrflow_mastership_renewal_seconds_bucket{le="0.025"} 6`,
		`dvrflow_mastership_renewal_seconds_bucket{le="0.05"} 7`,
		`dvrflow_mastership_renewal_seconds_bucket{le="0.5"} 8`,
		`dvrflow_mastership_renewal_seconds_bucket{le="2.5"} 9`,
		`dvrflow_mastership_renewal_seconds_bucket{le="5"} 9`,
		`dvrflow_mastership_renewal_seconds_bucket{le="+Inf"} 10`,
		`dvrflow_mastership_renewal_seconds_sum 4`,
		`dvrflow_mastership_renewal_seconds_count 10`,
	)
	if v := sample(t, body, "dvrflow_mastership_lease_remaining_seconds"); v < 3590 || v > 3600 {
		t.Errorf("lease remaining %v, want about an hour", v)
	}
	if strings.Contains(body, "compute1") || strings.Contains(body, "dpid") || strings.Contains(body, `controller=""`) {
		t.Errorf("a series per host or switch, or for no controller:\n%s", body)
	}

	// The lease lapsed and ctl-b left: the next scrape says so.
	st.Deadline, st.Live, st.Acting = time.Now().Add(-time.Second), []string{"ctl-a"}, 0
	body = scrape(t, m)
	wantLines(t, body, `dvrflow_controllers_live 1`, `dvrflow_mastership_hosts 0`,
		`dvrflow_mastership_lease_remaining_seconds 0`)
	if strings.Contains(body, `controller="ctl-b"`) {
		t.Error("a controller gone from the live set and mastering nothing still has a series")
	}
}

// TestNoMastershipSeries: without a mastership source no mastership series is exported.
func TestNoMastershipSeries(t *testing.T) {
	if body := scrape(t, New(zaptest.NewLogger(t), Sources{})); strings.Contains(body, "mastership") ||
		strings.Contains(body, "dvrflow_controllers_live") {
		t.Errorf("mastership series without a source:\n%s", body)
	}
}

// sample returns the value of the series name without labels.
func sample(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}
