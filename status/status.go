// Package status serves what an operator looks at: the switch API (/v2.0/dvr-switches, with
// each bridge's flows compared with what the controller wants there) and the status page
// (/status), a server-rendered, self-refreshing HTML view of switch sessions, hosts,
// resources with their realization on each host, namespace plans and flow tables with drift
// in red. With several dvrflowd against one database it shows every controller, its lease
// and the hosts it masters (/v2.0/dvr-controllers, admin only), and each switch's master.
// Everything here is read-only.
package status

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
)

// Engine is what the status page reads from the control loop (engine.Engine).
type Engine interface {
	// ReadView calls fn with the current topology view (nil before the first one).
	ReadView(fn func(v *topology.View))
	// Plans returns every host's current namespace plan.
	Plans() map[string]plan.Plan
}

// Config says where the status comes from.
type Config struct {
	// Switches is the OpenFlow server whose sessions and reconcilers are shown.
	Switches *controller.Server
	// Engine is the control loop (nil: switches are shown without host or bridge, and
	// hosts without plans).
	Engine Engine
	// Store is the topology store (resources, hosts and their applied revisions).
	Store *db.Store
	// AuditAge bounds how often a bridge is dumped for its flows page or API (default 3s).
	AuditAge time.Duration
	// Refresh is how often the page reloads itself (default 10s).
	Refresh time.Duration
	// AgentDownTime is how long after its last heartbeat a host counts as dead (default
	// 75s, as the API's agents).
	AgentDownTime time.Duration
	// Mastership is this controller's mastership loop (nil: none; switches are shown
	// without a master and no controller as this one).
	Mastership Mastership
}

// Mastership is what the status server reads of the mastership lease (mastership.Loop).
type Mastership interface {
	Status() mastership.Status
}

// Server serves the status page and the switch API. Create it with New.
type Server struct {
	log *zap.Logger
	cfg Config

	mu    sync.Mutex
	rates map[*controller.Session]*pinSample
}

// pinSample is the packet-in count of a session when the rate was last computed.
type pinSample struct {
	at    time.Time
	count uint64
	rate  float64
}

// rateWindow is the shortest interval a packet-in rate is computed over.
const rateWindow = 5 * time.Second

// New returns a status server.
func New(log *zap.Logger, cfg Config) (*Server, error) {
	if cfg.Switches == nil || cfg.Store == nil {
		return nil, fmt.Errorf("status: a switch server and a store are required")
	}
	if cfg.AuditAge <= 0 {
		cfg.AuditAge = 3 * time.Second
	}
	if cfg.AgentDownTime <= 0 {
		cfg.AgentDownTime = 75 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Second
	}
	return &Server{log: log.Named("status"), cfg: cfg, rates: map[*controller.Session]*pinSample{}}, nil
}

// Mount adds the page (without a token) to e and the switch and controller APIs to v2 (the
// authenticated /v2.0 group; the controller API for admins only); it fits
// northbound.Config.Mount.
func (s *Server) Mount(e *echo.Echo, v2 *echo.Group) {
	e.GET("/status", s.page)
	e.GET("/status/", s.page)
	e.GET("/status/switches/:dpid", s.switchPage)
	e.GET("/status/hosts/:host", s.hostPage)
	e.GET("/status/static/*", echo.WrapHandler(staticHandler()))
	v2.GET("/dvr-switches", s.listSwitches, northbound.AdminOnly)
	v2.GET("/dvr-switches/:dpid", s.showSwitch, northbound.AdminOnly)
	v2.GET("/dvr-switches/:dpid/flows", s.showFlows, northbound.AdminOnly)
	v2.GET("/dvr-controllers", s.listControllers, northbound.AdminOnly)
	v2.GET("/dvr-controllers/masterships", s.listMasterships, northbound.AdminOnly)
}

// switches returns every session, sorted by host, bridge and DPID.
func (s *Server) switches() []switchapi.Switch {
	sessions := s.cfg.Switches.Sessions()
	now := time.Now()
	out := make([]switchapi.Switch, 0, len(sessions))
	for _, sess := range sessions {
		out = append(out, s.describe(sess, now))
	}
	s.withView(func(v *topology.View) {
		for i, sess := range sessions {
			if host, br, ok := v.HostOfDPID(sess.DPID()); ok {
				out[i].Host, out[i].Bridge = host, string(br)
			}
		}
	})
	masters := s.masters()
	for i, sess := range sessions {
		setMaster(&out[i], masters, sess.DPID())
	}
	s.pruneRates(sessions)
	slices.SortFunc(out, func(a, b switchapi.Switch) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if c := strings.Compare(a.Bridge, b.Bridge); c != 0 {
			return c
		}
		return strings.Compare(a.DPID, b.DPID)
	})
	return out
}

// lookup returns the switch dpid, if connected.
func (s *Server) lookup(dpid uint64) (switchapi.Switch, *controller.Session, bool) {
	sess, ok := s.cfg.Switches.Session(dpid)
	if !ok {
		return switchapi.Switch{}, nil, false
	}
	w := s.describe(sess, time.Now())
	s.withView(func(v *topology.View) {
		if host, br, ok := v.HostOfDPID(dpid); ok {
			w.Host, w.Bridge = host, string(br)
		}
	})
	setMaster(&w, s.masters(), dpid)
	return w, sess, true
}

func (s *Server) withView(fn func(v *topology.View)) {
	if s.cfg.Engine == nil {
		return
	}
	s.cfg.Engine.ReadView(func(v *topology.View) {
		if v != nil {
			fn(v)
		}
	})
}

func (s *Server) describe(sess *controller.Session, now time.Time) switchapi.Switch {
	up := sess.ConnectedAt()
	w := switchapi.Switch{
		DPID:               ofproto.DPID(sess.DPID()).String(),
		Address:            sess.Remote(),
		Role:               sess.Role().String(),
		ConnectedAt:        up.UTC().Format(time.RFC3339),
		UptimeSeconds:      roundTo(now.Sub(up).Seconds(), 1),
		Errors:             sess.ErrorsReceived(),
		PacketInsPerSecond: roundTo(s.pinRate(sess, now), 2),
	}
	if rec, ok := s.cfg.Switches.ReconcilerOf(sess.DPID()); ok {
		st := rec.Stats()
		w.FlowsInstalled = st.Installed - st.Foreign
		w.FlowsDesired = st.Desired
		w.FlowsMissing, w.FlowsExtra = st.Missing, st.Extra
		w.FlowsForeign, w.FlowsDecoded = st.Foreign, st.DumpDecoded
		w.RealizedRevision, w.DesiredRevision = st.RealizedRevision, st.DesiredRevision
		if !st.LastAt.IsZero() {
			w.LastReconcileAt = st.LastAt.UTC().Format(time.RFC3339)
			w.LastReconcileMS = roundTo(float64(st.LastDuration.Microseconds())/1000, 3)
		}
	}
	return w
}

func roundTo(v float64, digits int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', digits, 64), 64)
	return f
}

// pinRate is the session's packet-in rate over the last rateWindow or more (since the
// session started, until a window has passed).
func (s *Server) pinRate(sess *controller.Session, now time.Time) float64 {
	n := sess.PacketIns()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.rates[sess]
	if p == nil {
		since := now.Sub(sess.ConnectedAt()).Seconds()
		p = &pinSample{at: now, count: n}
		if since > 0 {
			p.rate = float64(n) / since
		}
		s.rates[sess] = p
		return p.rate
	}
	if dt := now.Sub(p.at); dt >= rateWindow {
		p.rate = float64(n-p.count) / dt.Seconds()
		p.at, p.count = now, n
	}
	return p.rate
}

func (s *Server) pruneRates(live []*controller.Session) {
	keep := make(map[*controller.Session]bool, len(live))
	for _, x := range live {
		keep[x] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for x := range s.rates {
		if !keep[x] {
			delete(s.rates, x)
		}
	}
}

// errNoReconciler: a switch that no registered host claims has no desired set to compare.
var errNoReconciler = fmt.Errorf("the switch has no reconciler: it belongs to no registered host")

// flows audits bridge w (dumping the switch at most once per AuditAge).
func (s *Server) flows(ctx context.Context, dpid uint64, w switchapi.Switch) (switchapi.Flows, error) {
	rec, ok := s.cfg.Switches.ReconcilerOf(dpid)
	if !ok {
		return switchapi.Flows{}, errNoReconciler
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := rec.Audit(ctx, s.cfg.AuditAge)
	if err != nil {
		return switchapi.Flows{}, fmt.Errorf("flows of %s: %w", w.DPID, err)
	}
	names := apps.TableNames(topology.Bridge(w.Bridge))
	out := switchapi.Flows{DPID: w.DPID, Host: w.Host, Bridge: w.Bridge, DumpAt: a.At.UTC().Format(time.RFC3339),
		Missing: a.Missing, Extra: a.Extra, Flows: make([]switchapi.Flow, 0, len(a.Flows))}
	for i := range a.Flows {
		f := &a.Flows[i].Flow
		name := names[f.Table]
		if name == "" {
			name = strconv.Itoa(int(f.Table))
		}
		out.Flows = append(out.Flows, switchapi.Flow{Table: f.Table, TableName: name, Priority: f.Priority,
			Cookie: fmt.Sprintf("0x%016x", f.Cookie), Text: f.Format(names), State: flowState(a.Flows[i].State),
			Packets: a.Flows[i].Packets, Bytes: a.Flows[i].Bytes})
	}
	return out, nil
}

// flowState is the switch API's name of an audited flow's state.
func flowState(st controller.FlowState) string {
	switch st {
	case controller.FlowOK:
		return switchapi.StateOK
	case controller.FlowMissing:
		return switchapi.StateMissing
	}
	return switchapi.StateExtra
}

// BridgeOf names the bridge dpid ("" when no registered host claims it): a
// metrics.Sources.BridgeOf.
func (s *Server) BridgeOf(dpid uint64) string {
	var b string
	s.withView(func(v *topology.View) {
		if _, br, ok := v.HostOfDPID(dpid); ok {
			b = string(br)
		}
	})
	return b
}

// Revision is the topology revision of the engine's view (0 before the first one).
func (s *Server) Revision() int64 {
	var rev int64
	s.withView(func(v *topology.View) { rev = v.Revision })
	return rev
}

// Sessions counts the connected switches.
func (s *Server) Sessions() int { return len(s.cfg.Switches.Sessions()) }

// HostLag returns, for every registered host with a plan, how many revisions the plan its
// helper applied is behind its current plan (0: in sync).
func (s *Server) HostLag(ctx context.Context) (map[string]int64, error) {
	hosts, err := s.cfg.Store.ListHosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	plans := map[string]plan.Plan{}
	if s.cfg.Engine != nil {
		plans = s.cfg.Engine.Plans()
	}
	out := make(map[string]int64, len(hosts))
	for _, h := range hosts {
		if p, ok := plans[h.Name]; ok {
			out[h.Name] = max(0, p.Revision-h.AppliedRevision)
		}
	}
	return out, nil
}
