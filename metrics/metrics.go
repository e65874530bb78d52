// Package metrics exports dvrflow's Prometheus metrics: switch sessions, flow-mods by app and
// bridge, reconcile latency, packet-ins and their drops, API latency, the topology revision,
// each host's lag behind its plan, and the mastership lease: live controllers, the hosts
// each masters, this controller's lease and its claims, hand-offs, lapses and stale refusals. It is the controller's Observer (the controller
// package itself does not know Prometheus) and an Echo middleware for the API.
//
// No series is labelled by datapath ID: a controller may hold 15,000 switches, so bridges are
// labelled by bridge (br-int, br-tun, br-ex) only.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// Sources are where the sampled metrics come from. Every function must be safe for
// concurrent use; nil ones leave their metric out.
type Sources struct {
	// BridgeOf names the bridge dpid ("br-int", "br-tun", "br-ex"), or "" when the
	// switch belongs to no registered host (reported as "unknown").
	BridgeOf func(dpid uint64) string
	// Sessions counts the connected switches.
	Sessions func() int
	// Revision is the topology revision the controller last computed flows from.
	Revision func() int64
	// HostLag returns, by host, how many revisions the plan the host applied is behind its
	// current plan (0: up to date).
	HostLag func(ctx context.Context) (map[string]int64, error)
	// Mastership is what the mastership loop knows (mastership.Loop.Status).
	Mastership func() mastership.Status
}

// Metrics holds dvrflow's registry and collectors. Create it with New.
type Metrics struct {
	log *zap.Logger
	src Sources
	reg *prometheus.Registry

	flowMods    *prometheus.CounterVec
	reconcile   *prometheus.HistogramVec
	reconFails  *prometheus.CounterVec
	packetIns   *prometheus.CounterVec
	pinByBridge map[string]*tableCounters // packet-in counters by bridge, built by New
	pinNumbers  *tableCounters            // packet-in counters of bridges of no known br
	bridges     bridgeCache
	pinDrops    prometheus.Counter
	api         *prometheus.HistogramVec
	hostLag     *prometheus.GaugeVec
}

var _ controller.Observer = (*Metrics)(nil)

// New registers dvrflow's metrics (and the Go runtime's and the process's) on a registry
// of their own.
func New(log *zap.Logger, src Sources) *Metrics {
	m := &Metrics{
		log: log.Named("metrics"),
		src: src,
		reg: prometheus.NewRegistry(),
		flowMods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dvrflow_flow_mods_total",
			Help: "Flow-mods sent to switches, by the app owning the flow (cookie) and bridge.",
		}, []string{"app", "bridge"}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dvrflow_reconcile_duration_seconds",
			Help:    "Duration of reconcile passes (diff, flow-mods, barrier), by bridge.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"bridge"}),
		reconFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dvrflow_reconcile_failures_total",
			Help: "Reconcile passes that failed (they are retried), by bridge.",
		}, []string{"bridge"}),
		packetIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dvrflow_packet_ins_total",
			Help: "Packet-ins received from switches within their budget, by table name (number on an unknown switch).",
		}, []string{"table"}),
		pinDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dvrflow_packet_in_drops_total",
			Help: "Packet-ins dropped because their switch was over its packet-in budget.",
		}),
		api: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dvrflow_api_request_duration_seconds",
			Help:    "Duration of HTTP requests to the API, status page and metrics, by method, route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "route", "code"}),
		hostLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dvrflow_host_revision_lag",
			Help: "Revisions between a host's current plan and the plan its helper reported applied.",
		}, []string{"host"}),
	}
	m.pinByBridge = map[string]*tableCounters{}
	for _, b := range topology.Bridges() {
		m.pinByBridge[string(b)] = &tableCounters{names: apps.TableNames(b)}
	}
	m.pinNumbers = &tableCounters{}
	m.bridges.labels = map[uint64]bridgeLabel{}

	m.reg.MustRegister(m.flowMods, m.reconcile, m.reconFails, m.packetIns, m.pinDrops, m.api, m.hostLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Sessions != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dvrflow_switch_sessions",
			Help: "OpenFlow switch sessions connected to this controller.",
		}, func() float64 { return float64(src.Sessions()) }))
	}
	if src.Revision != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dvrflow_topology_revision",
			Help: "Topology revision the controller last computed flows and plans from.",
		}, func() float64 { return float64(src.Revision()) }))
	}
	if src.Mastership != nil {
		m.reg.MustRegister(newMastershipCollector(src.Mastership))
	}
	return m
}

// Registry returns the registry, for registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// bridgeTTL is how long the bridge Sources.BridgeOf gave for a datapath is used before it is
// asked again: a host registering or leaving shows in the labels within this time, and
// BridgeOf (a read of the topology view under its lock) is not called per packet-in.
const bridgeTTL = time.Second

// bridgeCache holds, per datapath ID, what Sources.BridgeOf said about it.
type bridgeCache struct {
	mu     sync.RWMutex
	labels map[uint64]bridgeLabel
}

// bridgeLabel is a datapath's bridge label and packet-in counters, valid until its time.
type bridgeLabel struct {
	label string         // "br-int", "br-tun", "br-ex", or "unknown"
	pins  *tableCounters // by table
	until int64          // unix nanoseconds
}

// tableCounters are the packet-in counters of one bridge, by table, made on first use.
type tableCounters struct {
	names ofproto.TableNames // nil: tables labelled by number
	byNum [256]atomic.Pointer[prometheus.Counter]
}

// bridgeOf returns the cached label of bridge dpid, asking Sources.BridgeOf when it has
// none younger than bridgeTTL.
func (m *Metrics) bridgeOf(dpid uint64) bridgeLabel {
	now := time.Now().UnixNano()
	m.bridges.mu.RLock()
	l, ok := m.bridges.labels[dpid]
	m.bridges.mu.RUnlock()
	if ok && now < l.until {
		return l
	}
	l = bridgeLabel{label: "unknown", pins: m.pinNumbers, until: now + int64(bridgeTTL)}
	if m.src.BridgeOf != nil {
		if b := m.src.BridgeOf(dpid); b != "" {
			l.label = b
			if c := m.pinByBridge[b]; c != nil {
				l.pins = c
			}
		}
	}
	m.bridges.mu.Lock()
	if len(m.bridges.labels) >= maxCachedBridges {
		clear(m.bridges.labels) // datapaths that went away are dropped with the rest
	}
	m.bridges.labels[dpid] = l
	m.bridges.mu.Unlock()
	return l
}

// maxCachedBridges bounds the label cache (15,000 switches per controller fit).
const maxCachedBridges = 1 << 16

func (m *Metrics) bridge(dpid uint64) string { return m.bridgeOf(dpid).label }

// appName names the app of a flow cookie ("foreign" for flows dvrflow does not own).
func appName(cookie uint64) string {
	a, ours := apps.CookieApp(cookie)
	if !ours {
		return "foreign"
	}
	return a.String()
}

// FlowModsSent counts n flow-mods of a cookie sent to bridge dpid (controller.Observer).
func (m *Metrics) FlowModsSent(dpid, cookie uint64, n int) {
	m.flowMods.WithLabelValues(appName(cookie), m.bridge(dpid)).Add(float64(n))
}

// Reconciled observes one reconcile pass of bridge dpid (controller.Observer).
func (m *Metrics) Reconciled(dpid uint64, d time.Duration, err error) {
	b := m.bridge(dpid)
	m.reconcile.WithLabelValues(b).Observe(d.Seconds())
	if err != nil {
		m.reconFails.WithLabelValues(b).Inc()
	}
}

// PacketIn counts a packet-in from table of bridge dpid, or its drop (controller.Observer).
// It runs for every packet-in within the budget: a cached bridge label, a cached counter and
// an atomic add, no allocation.
func (m *Metrics) PacketIn(dpid uint64, table uint8, dropped bool) {
	if dropped {
		m.pinDrops.Inc()
		return
	}
	pins := m.bridgeOf(dpid).pins
	c := pins.byNum[table].Load()
	if c == nil {
		label := pins.names[table]
		if label == "" {
			label = tableNumbers[table]
		}
		ctr := m.packetIns.WithLabelValues(label)
		pins.byNum[table].CompareAndSwap(nil, &ctr)
		c = pins.byNum[table].Load()
	}
	(*c).Inc()
}

// tableNumbers are the labels of tables without a name, made once.
var tableNumbers = func() (out [256]string) {
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

// Middleware observes the duration of every request it wraps, labelled by method, route
// template (not the raw path: IDs would explode the series) and status code. It hands an
// error to Echo's error handler itself, so that the code observed is the one sent.
func (m *Metrics) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			code := c.Response().Status
			m.api.WithLabelValues(c.Request().Method, route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// Handler serves the metrics in Prometheus text format. It samples the hosts' revision lag
// first, within the request's context.
func (m *Metrics) Handler() http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(m.log)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.sampleHostLag(r.Context()); err != nil {
			m.log.Warn("sampling host revision lag", zap.Error(err))
		}
		prom.ServeHTTP(w, r)
	})
}

func (m *Metrics) sampleHostLag(ctx context.Context) error {
	if m.src.HostLag == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := m.src.HostLag(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil // the scraper went away
		}
		return err
	}
	m.hostLag.Reset()
	for h, lag := range lags {
		m.hostLag.WithLabelValues(h).Set(float64(lag))
	}
	return nil
}
