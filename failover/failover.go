// Package failover moves routers' snat namespaces off dead dvr_snat hosts, as Neutron's
// allow_automatic_l3agent_failover does.
package failover

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/db"
)

// Store is the part of db.Store failover uses.
type Store interface {
	Ping(ctx context.Context) error
	RescheduleSNAT(ctx context.Context) ([]db.SNATMove, error)
}

// Config tunes failover.
type Config struct {
	// AgentDownTime is how long after its last heartbeat a host is dead (the store's).
	AgentDownTime time.Duration
}

// Run checks for routers to move every AgentDownTime/4 until ctx ends.
//
// Heartbeats reach the database through this process's API, so after this process or
// PostgreSQL was away every heartbeat may look stale: Run moves nothing until the
// database has answered for a whole AgentDownTime, time for every live helper to poll
// again. A controller or database restart therefore never moves a router.
func Run(ctx context.Context, log *zap.Logger, store Store, cfg Config) error {
	if cfg.AgentDownTime <= 0 {
		return errors.New("failover: agent down time must be positive")
	}
	interval := max(cfg.AgentDownTime/4, 250*time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	healthySince, last := time.Now(), time.Now()
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if now.Sub(last) > cfg.AgentDownTime {
				// This process did not run for a while (suspended): heartbeats it
				// would have served may be missing.
				healthySince = now
			}
			last = now
			if !healthy {
				if err := store.Ping(ctx); err != nil {
					continue
				}
				healthy, healthySince = true, now
				log.Info("snat failover: database back, waiting one agent down time before moving routers",
					zap.Duration("agent_down_time", cfg.AgentDownTime))
			}
			if now.Sub(healthySince) < cfg.AgentDownTime {
				continue
			}
			moves, err := store.RescheduleSNAT(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				healthy = false
				log.Warn("snat failover: reschedule failed", zap.Error(err))
				continue
			}
			for _, m := range moves {
				log.Warn("snat failover: router moved to a live dvr_snat host",
					zap.String("router", m.RouterID), zap.String("from", m.From), zap.String("to", m.To))
			}
		}
	}
}
