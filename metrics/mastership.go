package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvrflow/dvrflow/mastership"
)

// mastershipCollector exports the mastership loop's state, read once per scrape. Its
// series are per controller at most (a handful), never per host or switch.
type mastershipCollector struct {
	status func() mastership.Status

	live, acting, lease, byController                 *prometheus.Desc
	claimed, handedOff, lapses, stale, hostTableReads *prometheus.Desc
	asked, slow, renewal                              *prometheus.Desc
}

func newMastershipCollector(status func() mastership.Status) *mastershipCollector {
	return &mastershipCollector{
		status: status,
		live: prometheus.NewDesc("dvrflow_controllers_live",
			"Controllers whose mastership lease ran at this controller's last read.", nil, nil),
		acting: prometheus.NewDesc("dvrflow_mastership_hosts",
			"Hosts whose switches this controller masters.", nil, nil),
		lease: prometheus.NewDesc("dvrflow_mastership_lease_remaining_seconds",
			"Time until this controller stops mastering unless it renews its lease (0: lapsed or not yet held).", nil, nil),
		byController: prometheus.NewDesc("dvrflow_controller_masterships",
			"Hosts each controller masters, as this controller last read them.", []string{"controller"}, nil),
		claimed: prometheus.NewDesc("dvrflow_mastership_claimed_total",
			"Hosts this controller claimed, each in a new term.", nil, nil),
		handedOff: prometheus.NewDesc("dvrflow_mastership_handed_off_total",
			"Hosts this controller handed to another live controller.", nil, nil),
		lapses: prometheus.NewDesc("dvrflow_mastership_lapses_total",
			"Times this controller's lease ran out before a renewal, so it stopped mastering.", nil, nil),
		stale: prometheus.NewDesc("dvrflow_mastership_stale_refusals_total",
			"Role requests switches refused as stale (a newer master exists).", nil, nil),
		hostTableReads: prometheus.NewDesc("dvrflow_mastership_host_reads_total",
			"Reads of the host and mastership tables by the mastership loop.", nil, nil),
		asked: prometheus.NewDesc("dvrflow_mastership_lease_asked_seconds",
			"The lease this controller's last renewal asked for: --lease, longer while renewals are slow, up to --lease-max.", nil, nil),
		slow: prometheus.NewDesc("dvrflow_mastership_slow_renewals_total",
			"Lease renewals that came back later than half of --lease after they were due.", nil, nil),
		renewal: prometheus.NewDesc("dvrflow_mastership_renewal_seconds",
			"Lease renewals by their time from due to reply.", nil, nil),
	}
}

// Describe sends the descriptors (prometheus.Collector).
func (c *mastershipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.live, c.acting, c.lease, c.byController, c.claimed, c.handedOff,
		c.lapses, c.stale, c.hostTableReads, c.asked, c.slow, c.renewal} {
		ch <- d
	}
}

// Collect reads the loop's status once and sends every series (prometheus.Collector).
func (c *mastershipCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.live, float64(len(st.Live)))
	gauge(c.acting, float64(st.Acting))
	gauge(c.lease, max(0, time.Until(st.Deadline).Seconds()))
	hosts := make(map[string]int, len(st.Live))
	for _, id := range st.Live {
		hosts[id] = 0
	}
	for _, hm := range st.Hosts {
		if hm.Controller != "" {
			hosts[hm.Controller]++
		}
	}
	for id, n := range hosts {
		gauge(c.byController, float64(n), id)
	}
	counter(c.claimed, st.Stats.Claimed)
	counter(c.handedOff, st.Stats.HandedOff)
	counter(c.lapses, st.Stats.Lapses)
	counter(c.stale, st.Stats.Stale)
	counter(c.hostTableReads, st.Stats.Reads)
	gauge(c.asked, st.Stats.Lease.Seconds())
	counter(c.slow, st.Stats.Slow)
	buckets := make(map[float64]uint64, len(mastership.RenewBuckets))
	var n uint64
	for i, b := range mastership.RenewBuckets {
		n += st.Stats.RenewLatency[i]
		buckets[b.Seconds()] = n
	}
	ch <- prometheus.MustNewConstHistogram(c.renewal, st.Stats.Renewals, st.Stats.RenewTime.Seconds(), buckets)
}
