package status

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var templates = map[string]*template.Template{
	"index":  parsePage("index.html"),
	"switch": parsePage("switch.html"),
	"host":   parsePage("host.html"),
}

func parsePage(name string) *template.Template {
	return template.Must(template.New("layout.html").Funcs(template.FuncMap{
		"resources": func(anchor, title string, rows []resourceRow) resourceSection {
			return resourceSection{Anchor: anchor, Title: title, Rows: rows}
		},
		"short": func(id string) string {
			if len(id) > 8 {
				return id[:8]
			}
			return id
		},
	}).ParseFS(templateFS, "templates/layout.html", "templates/"+name))
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/status/static/", http.FileServer(http.FS(sub)))
}

// page is what every page's layout needs.
type page struct {
	Title     string
	Refresh   int    // seconds; 0: no reload
	Query     string // "?refresh=0" while not reloading: links keep it
	Generated string
	Revision  int64
}

func (s *Server) newPage(c echo.Context, title string) page {
	p := page{Title: title, Refresh: int(s.cfg.Refresh / time.Second), Generated: time.Now().UTC().Format(time.RFC3339)}
	if c.QueryParam("refresh") == "0" {
		p.Refresh, p.Query = 0, "?refresh=0"
	}
	return p
}

func (s *Server) render(c echo.Context, name string, data any) error {
	var buf bytes.Buffer
	if err := templates[name].Execute(&buf, data); err != nil {
		return fmt.Errorf("rendering %s page: %w", name, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

func (s *Server) errorPage(c echo.Context, code int, msg string) error {
	p := s.newPage(c, "dvrflow status")
	p.Refresh = 0
	var buf bytes.Buffer
	if err := templates["index"].ExecuteTemplate(&buf, "error", struct {
		page
		Message string
	}{p, msg}); err != nil {
		return fmt.Errorf("rendering error page: %w", err)
	}
	return c.HTMLBlob(code, buf.Bytes())
}

// hostRow is a host with its realization state.
type hostRow struct {
	Name, Mode, TunnelIP, DVRMAC, Heartbeat string
	// Dead: no heartbeat for longer than the agent down time; HeartbeatAgo says how long.
	Dead             bool
	HeartbeatAgo     string
	Bridges          []bridgeLink
	HasPlan          bool
	PlanRev, Applied int64
	Namespaces       []string
	FlowDrift        int
}

type bridgeLink struct {
	Bridge, DPID string
	Connected    bool
	Drift        bool
}

type resourceSection struct {
	Anchor, Title string
	Rows          []resourceRow
}

// PlanBehindBy is how many revisions the applied plan is behind.
func (h hostRow) PlanBehindBy() int64 { return h.PlanRev - h.Applied }

// PlanBehind: the helper has not applied the host's current plan.
func (h hostRow) PlanBehind() bool { return h.HasPlan && h.Applied < h.PlanRev }

// OK: the host runs its current plan and its bridges hold exactly their desired flows.
func (h hostRow) OK() bool { return !h.Dead && !h.PlanBehind() && h.FlowDrift == 0 }

// resourceRow is a network, subnet, router, port or floating IP with the hosts realizing it.
type resourceRow struct {
	ID, Name, Status, Detail string
	Revision                 int64
	Hosts                    []hostBadge
}

type hostBadge struct {
	Name, Title string
	OK          bool
}

type indexData struct {
	page
	Switches                                       []switchapi.Switch
	Drifted                                        int
	Hosts                                          []hostRow
	Networks, Subnets, Routers, Ports, FloatingIPs []resourceRow
	Plans                                          []plan.Plan

	Controllers []controllerRow
	Masterless  int // hosts whose master's lease does not run, or that have none
}

// topology reads the store and the engine once for a page.
func (s *Server) topology(ctx context.Context) (*topology.Topology, int64, map[string]plan.Plan, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topo, rev, err := s.cfg.Store.Snapshot(ctx)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("reading the topology: %w", err)
	}
	plans := map[string]plan.Plan{}
	if s.cfg.Engine != nil {
		plans = s.cfg.Engine.Plans()
	}
	return topo, rev, plans, nil
}

func (s *Server) hostRows(topo *topology.Topology, plans map[string]plan.Plan, sw []switchapi.Switch) []hostRow {
	byDPID := map[string]switchapi.Switch{}
	for _, w := range sw {
		byDPID[w.DPID] = w
	}
	rows := make([]hostRow, 0, len(topo.Hosts))
	for _, h := range topo.Hosts {
		r := hostRow{Name: h.Name, Mode: string(h.Mode), TunnelIP: h.TunnelIP, DVRMAC: h.MACAddress, Applied: h.AppliedRevision}
		if !h.Heartbeat.IsZero() {
			r.Heartbeat = h.Heartbeat.UTC().Format(time.RFC3339)
			ago := time.Since(h.Heartbeat)
			r.Dead, r.HeartbeatAgo = ago > s.cfg.AgentDownTime, ago.Round(time.Second).String()
		}
		for _, br := range topology.Bridges() {
			id, ok := h.Bridges[string(br)]
			if !ok {
				continue
			}
			bl := bridgeLink{Bridge: string(br), DPID: id}
			if dpid, err := ofproto.ParseDPID(id); err == nil {
				bl.DPID = dpid.String()
			}
			if w, ok := byDPID[bl.DPID]; ok {
				bl.Connected, bl.Drift = true, w.Drift()
				r.FlowDrift += w.FlowsMissing + w.FlowsExtra
			}
			r.Bridges = append(r.Bridges, bl)
		}
		if p, ok := plans[h.Name]; ok {
			r.HasPlan, r.PlanRev = true, p.Revision
			for _, ns := range p.Namespaces {
				r.Namespaces = append(r.Namespaces, ns.Name)
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b hostRow) int { return strings.Compare(a.Name, b.Name) })
	return rows
}

func badges(hosts []string, byName map[string]hostRow) []hostBadge {
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	out := make([]hostBadge, 0, len(hosts))
	for _, h := range hosts {
		r, ok := byName[h]
		b := hostBadge{Name: h, OK: ok && r.OK()}
		switch {
		case !ok:
			b.Title = "host not registered"
		case r.PlanBehind():
			b.Title = fmt.Sprintf("plan revision %d, applied %d", r.PlanRev, r.Applied)
		case r.FlowDrift > 0:
			b.Title = fmt.Sprintf("%d flows drifted on its bridges", r.FlowDrift)
		default:
			b.Title = fmt.Sprintf("applied revision %d", r.Applied)
		}
		out = append(out, b)
	}
	return out
}

func (s *Server) page(c echo.Context) error {
	topo, rev, plans, err := s.topology(c.Request().Context())
	if err != nil {
		s.log.Warn("status page", zap.Error(err))
		return s.errorPage(c, http.StatusServiceUnavailable, err.Error())
	}
	cs, ms, err := s.controllers(c.Request().Context())
	if err != nil {
		s.log.Warn("status page", zap.Error(err))
		return s.errorPage(c, http.StatusServiceUnavailable, err.Error())
	}
	d := indexData{page: s.newPage(c, "dvrflow status"), Switches: s.switches(), Controllers: controllerRows(cs, time.Now())}
	d.Revision = rev
	for _, m := range ms {
		if !m.Live {
			d.Masterless++
		}
	}
	for _, w := range d.Switches {
		if w.Drift() {
			d.Drifted++
		}
	}
	d.Hosts = s.hostRows(topo, plans, d.Switches)
	byName := map[string]hostRow{}
	for _, h := range d.Hosts {
		byName[h.Name] = h
	}

	netHosts, routerHosts, fipHost := map[string][]string{}, map[string][]string{}, map[string]string{}
	s.withView(func(v *topology.View) {
		for _, n := range topo.Networks {
			netHosts[n.ID] = slices.Clone(v.HostsWithNetwork(n.ID))
		}
		for _, r := range topo.Routers {
			hs := slices.Clone(v.HostsOfRouter(r.ID))
			if h, ok := v.SNATHost(r.ID); ok {
				hs = append(hs, h)
			}
			routerHosts[r.ID] = hs
		}
		for _, f := range v.FloatingIPs() {
			fipHost[f.ID] = f.Host
		}
	})
	for _, n := range topo.Networks {
		detail := n.NetworkType
		if n.SegmentationID != 0 {
			detail += " " + strconv.FormatInt(n.SegmentationID, 10)
		}
		if n.External {
			detail += ", external"
		}
		d.Networks = append(d.Networks, resourceRow{ID: n.ID, Name: n.Name, Status: n.Status, Detail: detail,
			Revision: n.RevisionNumber, Hosts: badges(netHosts[n.ID], byName)})
	}
	for _, sn := range topo.Subnets {
		detail := sn.CIDR
		if sn.GatewayIP != "" {
			detail += " gw " + sn.GatewayIP
		}
		d.Subnets = append(d.Subnets, resourceRow{ID: sn.ID, Name: sn.Name, Status: "", Detail: detail,
			Revision: sn.RevisionNumber, Hosts: badges(slices.Clone(netHosts[sn.NetworkID]), byName)})
	}
	for _, r := range topo.Routers {
		detail := "centralized"
		if r.Distributed {
			detail = "distributed"
		}
		if r.Gateway != nil {
			detail += ", gateway on " + r.Gateway.NetworkID[:min(8, len(r.Gateway.NetworkID))]
		}
		d.Routers = append(d.Routers, resourceRow{ID: r.ID, Name: r.Name, Status: r.Status, Detail: detail,
			Revision: r.RevisionNumber, Hosts: badges(routerHosts[r.ID], byName)})
	}
	for _, p := range topo.Ports {
		var ips []string
		for _, ip := range p.FixedIPs {
			ips = append(ips, ip.IPAddress)
		}
		detail := strings.TrimSpace(p.DeviceOwner + " " + p.MACAddress + " " + strings.Join(ips, ","))
		var hosts []string
		switch {
		case p.HostID != "":
			hosts = []string{p.HostID}
		case p.DeviceOwner == topology.OwnerRouterInterfaceDistributed:
			hosts = slices.Clone(routerHosts[p.DeviceID]) // on every host of its router
		}
		d.Ports = append(d.Ports, resourceRow{ID: p.ID, Name: p.Name, Status: string(p.Status), Detail: detail,
			Revision: p.RevisionNumber, Hosts: badges(hosts, byName)})
	}
	for _, f := range topo.FloatingIPs {
		detail := f.FloatingIPAddress
		if f.FixedIPAddress != "" {
			detail += " -> " + f.FixedIPAddress
		}
		var hosts []string
		if h := fipHost[f.ID]; h != "" {
			hosts = []string{h}
		}
		d.FloatingIPs = append(d.FloatingIPs, resourceRow{ID: f.ID, Name: f.Description, Status: f.Status, Detail: detail,
			Revision: f.RevisionNumber, Hosts: badges(hosts, byName)})
	}
	for _, h := range d.Hosts {
		if p, ok := plans[h.Name]; ok {
			d.Plans = append(d.Plans, p)
		}
	}
	return s.render(c, "index", d)
}

type switchData struct {
	page
	Switch switchapi.Switch
	Flows  switchapi.Flows
	Tables []flowTable
	Drops  uint64 // packets dropped by the tables' miss flows
	Error  string
}

type flowTable struct {
	Name     string
	Flows    []switchapi.Flow
	MissDrop bool   // the table drops what no flow matches
	Drops    uint64 // packets its miss flow dropped
}

func (s *Server) switchPage(c echo.Context) error {
	id, err := ofproto.ParseDPID(c.Param("dpid"))
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	dpid := uint64(id)
	w, _, ok := s.lookup(dpid)
	if !ok {
		return s.errorPage(c, http.StatusNotFound, "switch "+id.String()+" is not connected")
	}
	d := switchData{page: s.newPage(c, "dvrflow: "+w.Host+" "+w.Bridge+" "+w.DPID), Switch: w}
	fl, err := s.flows(c.Request().Context(), dpid, w)
	switch {
	case errors.Is(err, controller.ErrNotConnected):
		d.Error = "the switch disconnected"
	case err != nil:
		d.Error = err.Error()
	default:
		d.Flows = fl
		// The audit refreshed the reconciler's counters: show them, with the drift the
		// flows below show (a repair may have run since).
		if w2, _, ok := s.lookup(dpid); ok {
			d.Switch = w2
		}
		d.Switch.FlowsMissing, d.Switch.FlowsExtra = fl.Missing, fl.Extra
		missDrop := map[uint8]bool{}
		for _, t := range apps.Tables(topology.Bridge(w.Bridge)) {
			missDrop[t.ID] = t.Miss == apps.MissDrop
		}
		for _, f := range fl.Flows {
			if n := len(d.Tables); n == 0 || d.Tables[n-1].Name != f.TableName {
				d.Tables = append(d.Tables, flowTable{Name: f.TableName, MissDrop: missDrop[f.Table]})
			}
			t := &d.Tables[len(d.Tables)-1]
			t.Flows = append(t.Flows, f)
			if t.MissDrop && f.Priority == apps.PrioMiss && f.State != switchapi.StateMissing {
				t.Drops += f.Packets
				d.Drops += f.Packets
			}
		}
	}
	return s.render(c, "switch", d)
}

type hostData struct {
	page
	Host     hostRow
	Plan     *plan.Plan
	PlanJSON string
}

func (s *Server) hostPage(c echo.Context) error {
	name := c.Param("host")
	topo, rev, plans, err := s.topology(c.Request().Context())
	if err != nil {
		return s.errorPage(c, http.StatusServiceUnavailable, err.Error())
	}
	rows := s.hostRows(topo, plans, s.switches())
	i := slices.IndexFunc(rows, func(h hostRow) bool { return h.Name == name })
	if i < 0 {
		return s.errorPage(c, http.StatusNotFound, "host "+name+" is not registered")
	}
	d := hostData{page: s.newPage(c, "dvrflow: host "+name), Host: rows[i]}
	d.Revision = rev
	if p, ok := plans[name]; ok {
		d.Plan = &p
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding plan of %s: %w", name, err)
		}
		d.PlanJSON = string(b)
	}
	return s.render(c, "host", d)
}
