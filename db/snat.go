package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// SNAT scheduling: a router with a gateway runs its snat namespace on one dvr_snat host,
// stored as Router.SNATHost. setGateway picks the live dvr_snat host with the fewest
// routers; the host keeps them (adding a host or one coming back moves nothing) until it
// dies, is deleted or stops being dvr_snat, when RescheduleSNAT (or the delete or
// registration itself) moves them to the least loaded live one, as Neutron's
// allow_automatic_l3agent_failover does. A host is live while its heartbeat is younger
// than Config.AgentDownTime.

// liveSNATHostSQL is the condition on hosts h that makes h a live dvr_snat host: its mode
// is $2 (dvr_snat) and its heartbeat younger than $3 seconds (the agent down time).
const liveSNATHostSQL = `h.obj->>'mode' = $2 AND h.heartbeat > now() - make_interval(secs => $3)`

// SNATMove is one router moved by RescheduleSNAT.
type SNATMove struct {
	RouterID string
	From, To string // From is "" for a router that had no host
}

// liveSNATHost returns the live dvr_snat host other than exclude with the fewest
// scheduled routers (ties by name), or "" when there is none.
func (w *wtx) liveSNATHost(ctx context.Context, exclude string) (string, error) {
	var h string
	err := w.queryRow(ctx, `
SELECT h.host FROM hosts h
WHERE h.host <> $1 AND `+liveSNATHostSQL+`
ORDER BY (SELECT count(*) FROM routers r WHERE r.obj->>'snat_host' = h.host), h.host
LIMIT 1`, exclude, topology.HostModeDVRSNAT, w.cfg.AgentDownTime.Seconds()).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pick a live %s host: %w", topology.HostModeDVRSNAT, err)
	}
	return h, nil
}

// scheduleSNAT gives r (which has a gateway) a live dvr_snat host, unless it has one.
func (w *wtx) scheduleSNAT(ctx context.Context, r *topology.Router) error {
	if r.SNATHost != "" {
		var live bool
		if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hosts h WHERE h.host = $1 AND `+liveSNATHostSQL+`)`,
			r.SNATHost, topology.HostModeDVRSNAT, w.cfg.AgentDownTime.Seconds()).Scan(&live); err != nil {
			return fmt.Errorf("check snat host %s: %w", r.SNATHost, err)
		}
		if live {
			return nil
		}
	}
	h, err := w.liveSNATHost(ctx, "")
	if err != nil {
		return err
	}
	if h != "" {
		r.SNATHost = h
	}
	return nil
}

// moveSNAT moves the routers with a gateway whose snat host is not a live dvr_snat host
// (or is leaving, when leaving is not "") to the least loaded live one, each with a new
// revision. Routers stay where they are while no live host is left.
func (w *wtx) moveSNAT(ctx context.Context, leaving string) ([]SNATMove, error) {
	rs, err := objs[topology.Router](ctx, w.query, `
SELECT r.obj FROM routers r
WHERE r.obj ? 'gateway' AND (r.obj->>'snat_host' IS NULL OR r.obj->>'snat_host' = $1 OR NOT EXISTS (
  SELECT 1 FROM hosts h WHERE h.host = r.obj->>'snat_host' AND `+liveSNATHostSQL+`))
ORDER BY r.id FOR UPDATE`, leaving, topology.HostModeDVRSNAT, w.cfg.AgentDownTime.Seconds())
	if err != nil {
		return nil, fmt.Errorf("find routers to move off dead %s hosts: %w", topology.HostModeDVRSNAT, err)
	}
	var moves []SNATMove
	for i := range rs {
		r := &rs[i]
		to, err := w.liveSNATHost(ctx, leaving)
		if err != nil {
			return nil, err
		}
		if to == "" {
			break
		}
		moves = append(moves, SNATMove{RouterID: r.ID, From: r.SNATHost, To: to})
		r.SNATHost = to
		w.saveRouter(r) // the next pick's query sends it first, so it counts this router
	}
	return moves, nil
}

// RescheduleSNAT moves the snat namespaces of routers whose dvr_snat host is dead
// (heartbeat older than the agent down time), deleted or no longer dvr_snat, and of
// routers that got a gateway while no dvr_snat host was live, to the least loaded live
// dvr_snat host. With no live one, nothing moves.
func (s *Store) RescheduleSNAT(ctx context.Context) ([]SNATMove, error) {
	var moves []SNATMove
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var err error
		moves, err = w.moveSNAT(ctx, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	return moves, nil
}
