package northbound

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dvrflow/dvrflow/plan"
	"github.com/labstack/echo/v4"
)

// PlanSource gives a host its namespace plan: the controller's engine.
type PlanSource interface {
	// WaitPlan returns host's plan once its revision is above after, or ctx's error when
	// nothing newer came before ctx ended.
	WaitPlan(ctx context.Context, host string, after int64) (plan.Plan, error)
}

const (
	defaultPlanWait = 30 * time.Second
	maxPlanWait     = 5 * time.Minute
)

// beats remembers when each host's heartbeat was last written by a poll.
type beats struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether host's heartbeat should be written at now, and if so notes it.
func (b *beats) due(host string, now time.Time, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.last[host]; ok && now.Sub(t) < every {
		return false
	}
	if b.last == nil {
		b.last = map[string]time.Time{}
	}
	b.last[host] = now
	return true
}

// showPlan is the host helper's long poll:
// GET /v2.0/dvr-hosts/{host}/plan?after_revision=N&timeout=S answers {"plan": ...} as soon
// as the host's plan is newer than N, or 304 Not Modified after S seconds (default 30).
func (s *Server) showPlan(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	if s.cfg.Plans == nil {
		return &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "this dvrflowd runs no controller: no plans"}
	}
	host := c.Param("host")
	if _, err := s.store.GetHost(c.Request().Context(), host); err != nil {
		return err
	}
	// A helper that polls is alive: its poll is its heartbeat (written at most every
	// AgentDownTime/4 per host, so thousands of hosts polling do not load PostgreSQL).
	if s.beats.due(host, time.Now(), s.cfg.AgentDownTime/4) {
		if err := s.store.Heartbeat(c.Request().Context(), host); err != nil {
			return err
		}
	}
	after := int64(-1)
	if q := c.QueryParam("after_revision"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < -1 {
			return badBody("after_revision %q: want an integer >= -1", q)
		}
		after = n
	}
	wait := defaultPlanWait
	if q := c.QueryParam("timeout"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			return badBody("timeout %q: want seconds >= 0", q)
		}
		wait = min(time.Duration(n)*time.Second, maxPlanWait)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
	defer cancel()
	p, err := s.cfg.Plans.WaitPlan(ctx, host, after)
	switch {
	case err == nil:
		return c.JSON(http.StatusOK, map[string]any{"plan": p})
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return c.NoContent(http.StatusNotModified)
	default:
		return &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "plan of " + host + ": " + err.Error()}
	}
}
