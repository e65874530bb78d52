//go:build integration

package integration

import (
	"os"
	"testing"

	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/internal/loadavg"
)

// pg is the private PostgreSQL of the integration tests that need one.
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// logLoad reports the machine's 1-minute load average now and when the function it
// returns is called (deferred by the benchmark) as the metrics load1-start and load1-end,
// beside the benchmark's figures, and logs all three averages.
func logLoad(b *testing.B) func() {
	start := loadavg.Minute()
	b.Logf("load average at start: %s", loadavg.Now())
	return func() {
		b.Logf("load average at end: %s", loadavg.Now())
		b.ReportMetric(start, "load1-start")
		b.ReportMetric(loadavg.Minute(), "load1-end")
	}
}
