// Controllers: every dvrflowd registered against the database, its lease and the hosts it
// masters (GET /v2.0/dvr-controllers), each host's master (GET
// /v2.0/dvr-controllers/masterships), and each switch's master in the switch API.

package status

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/switchapi"
)

// timeMillis formats the controllers' and masterships' times: a lease lasts about a
// second, so they keep milliseconds.
const timeMillis = "2006-01-02T15:04:05.000Z07:00"

// masters returns the master of every switch the mastership loop knows, by datapath ID
// (nil without a loop).
func (s *Server) masters() map[uint64]db.HostMaster {
	if s.cfg.Mastership == nil {
		return nil
	}
	hosts := s.cfg.Mastership.Status().Hosts
	out := make(map[uint64]db.HostMaster, 3*len(hosts))
	for _, hm := range hosts {
		for _, id := range hm.DPIDs {
			out[id] = hm
		}
	}
	return out
}

// setMaster fills in the master of switch dpid.
func setMaster(w *switchapi.Switch, masters map[uint64]db.HostMaster, dpid uint64) {
	if hm, ok := masters[dpid]; ok {
		w.Master, w.MasterTerm = hm.Controller, hm.Term
	}
}

// selfID is this controller's id ("" without a mastership loop).
func (s *Server) selfID() string {
	if s.cfg.Mastership == nil {
		return ""
	}
	return s.cfg.Mastership.Status().ID
}

// controllers reads the registered controllers and every host's master from the
// database, both by name.
func (s *Server) controllers(ctx context.Context) ([]switchapi.Controller, []switchapi.Mastership, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs, err := s.cfg.Store.Controllers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the controllers: %w", err)
	}
	hms, err := s.cfg.Store.HostMasters(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the masterships: %w", err)
	}
	self, now := s.selfID(), time.Now()
	live := make(map[string]bool, len(cs))
	hosts := make(map[string][]string, len(cs))
	for _, c := range cs {
		live[c.ID] = c.Live
	}
	ms := make([]switchapi.Mastership, 0, len(hms))
	for _, hm := range hms {
		m := switchapi.Mastership{Host: hm.Host, Controller: hm.Controller, Term: hm.Term,
			Live: hm.Controller != "" && live[hm.Controller], DPIDs: make([]string, 0, len(hm.DPIDs))}
		if hm.Controller != "" {
			m.ClaimedAt = hm.ClaimedAt.UTC().Format(timeMillis)
			hosts[hm.Controller] = append(hosts[hm.Controller], hm.Host)
		}
		ids := slices.Clone(hm.DPIDs)
		slices.Sort(ids)
		for _, id := range ids {
			m.DPIDs = append(m.DPIDs, ofproto.DPID(id).String())
		}
		ms = append(ms, m)
	}
	out := make([]switchapi.Controller, 0, len(cs))
	for _, c := range cs {
		w := switchapi.Controller{ID: c.ID, OFAddr: c.OFAddr, APIURL: c.APIURL,
			StartedAt: c.StartedAt.UTC().Format(timeMillis), ExpiresAt: c.ExpiresAt.UTC().Format(timeMillis),
			Live: c.Live, Self: c.ID == self, Hosts: hosts[c.ID]}
		if w.Hosts == nil {
			w.Hosts = []string{}
		}
		if c.Live {
			w.LeaseRemainingSeconds = roundTo(max(0, c.ExpiresAt.Sub(now).Seconds()), 3)
		}
		if w.Self {
			st := s.cfg.Mastership.Status().Stats
			w.Renewals = &switchapi.Renewals{Count: st.Renewals, Slow: st.Slow,
				SlowestMS:    roundTo(float64(st.Slowest)/float64(time.Millisecond), 3),
				LeaseSeconds: st.Lease.Seconds(), LongestLeaseSeconds: st.LongestLease.Seconds(), Lapses: st.Lapses}
		}
		out = append(out, w)
	}
	return out, ms, nil
}

func (s *Server) listControllers(c echo.Context) error {
	cs, _, err := s.controllers(c.Request().Context())
	if err != nil {
		return s.unavailable(c, err)
	}
	return c.JSON(http.StatusOK, switchapi.ControllerList{Controllers: cs})
}

func (s *Server) listMasterships(c echo.Context) error {
	_, ms, err := s.controllers(c.Request().Context())
	if err != nil {
		return s.unavailable(c, err)
	}
	return c.JSON(http.StatusOK, switchapi.MastershipList{Masterships: ms})
}

func (s *Server) unavailable(c echo.Context, err error) error {
	s.log.Warn("controller API", zap.String("route", c.Path()), zap.Error(err))
	return neutronError(c, http.StatusServiceUnavailable, "HTTPServiceUnavailable", err.Error())
}

// controllerRow is a controller on the status page.
type controllerRow struct {
	switchapi.Controller
	Lease string // "in 1.05s", or "expired 12s ago"
}

// controllerRows are the page's rows of cs.
func controllerRows(cs []switchapi.Controller, now time.Time) []controllerRow {
	out := make([]controllerRow, 0, len(cs))
	for _, c := range cs {
		r := controllerRow{Controller: c}
		switch exp, err := time.Parse(time.RFC3339, c.ExpiresAt); {
		case err != nil:
			r.Lease = c.ExpiresAt
		case c.Live:
			r.Lease = fmt.Sprintf("in %.2fs", c.LeaseRemainingSeconds)
		default:
			r.Lease = "expired " + now.Sub(exp).Round(time.Second).String() + " ago"
		}
		out = append(out, r)
	}
	return out
}
