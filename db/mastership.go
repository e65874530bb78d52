package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dvrflow/dvrflow/ofproto"
)

// ControllerSpec is what a dvrflowd registers of itself.
type ControllerSpec struct {
	ID       string // stable across its restarts (--controller-id)
	Instance string // random per process
	OFAddr   string // where its switches reach it
	APIURL   string
}

// Controller is a registered dvrflowd and its lease.
type Controller struct {
	ID        string    `json:"id"`
	OFAddr    string    `json:"of_addr"`
	APIURL    string    `json:"api_url"`
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Live      bool      `json:"live"` // the lease had not expired when read
}

// Lease is what a lease renewal learns.
type Lease struct {
	// Held: the row is still this process's (false: another process of the same id
	// registered after this one's lease expired).
	Held bool
	// Gen changes whenever the host registry, the masterships or the set of registered
	// controllers changed.
	Gen int64
	// Live are the controllers whose lease runs and has settled, by id, sorted.
	Live []string
	// Settled says whether this controller is among Live: its lease has run without a
	// gap for the settling time.
	Settled bool
	// Received is when PostgreSQL received the renewal (statement_timestamp()): with the
	// times the controller sent it and read the reply, it tells where a slow renewal spent
	// its time.
	Received time.Time
}

// HostMaster is a registered host, its bridges and its master (Controller "" when it has
// none yet).
type HostMaster struct {
	Host       string
	DPIDs      []uint64 // its bridges' datapath IDs
	Controller string
	Term       int64
	ClaimedAt  time.Time
}

// LeaseConns is how many lease statements Leases run at once, on connections of their
// own: the renewals a controller may have out.
const LeaseConns = 4

// Leases runs the statements of the mastership leases (register, renew, release) on
// connections of their own. A Store has them; a lease keeper process opens them alone
// (OpenLeases).
type Leases struct {
	pool *pgxpool.Pool
}

// OpenLeases connects the lease statements to PostgreSQL at dsn (as Open does, to the
// first host that accepts writes), without the rest of a Store: the database must have
// been migrated by a Store first. Close them with Close.
func OpenLeases(ctx context.Context, dsn string) (*Leases, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if pcfg.ConnConfig.ValidateConnect == nil {
		pcfg.ConnConfig.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
	}
	return openLeases(ctx, pcfg)
}

func openLeases(ctx context.Context, pcfg *pgxpool.Config) (*Leases, error) {
	lcfg := pcfg.Copy()
	lcfg.MaxConns = LeaseConns
	// A lease renewal does not wait for its commit to reach the disk (or a synchronous
	// standby): behind a bulk load's WAL that took seconds, longer than a lease. Others
	// see it at once all the same. A renewal lost in a crash of PostgreSQL only makes the
	// lease look shorter to the others, and a claim in a new term is safe whenever it
	// happens: the switches refuse the older term.
	lcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SET synchronous_commit TO off"); err != nil {
			return fmt.Errorf("lease connection: %w", err)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, lcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database for leases: %w", err)
	}
	return &Leases{pool: pool}, nil
}

// Close closes the leases' connections.
func (s *Leases) Close() { s.pool.Close() }

// ErrControllerIDInUse is returned by RegisterController while another live process
// holds the id.
var ErrControllerIDInUse = errors.New("another live dvrflowd holds this controller id")

// RegisterController registers spec with a lease of lease. The row of spec.ID is taken
// over when it is the same instance or its lease expired; while another instance's lease
// runs it returns ErrControllerIDInUse.
func (s *Leases) RegisterController(ctx context.Context, spec ControllerSpec, lease time.Duration) error {
	if spec.ID == "" || len(spec.ID) > 255 || spec.Instance == "" {
		return invalid("controller id must be 1-255 characters and the instance set")
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO controllers (id, instance, of_addr, api_url, started_at, expires_at, live_since)
		VALUES ($1, $2, $3, $4, now(), now() + $5::interval, '-infinity')
		ON CONFLICT (id) DO UPDATE SET instance = EXCLUDED.instance, of_addr = EXCLUDED.of_addr,
			api_url = EXCLUDED.api_url, started_at = EXCLUDED.started_at, expires_at = EXCLUDED.expires_at,
			live_since = EXCLUDED.live_since
		WHERE controllers.instance = EXCLUDED.instance OR controllers.expires_at <= now()`,
		spec.ID, spec.Instance, spec.OFAddr, spec.APIURL, lease)
	if err != nil {
		return fmt.Errorf("register controller %s: %w", spec.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("register controller %s: %w", spec.ID, ErrControllerIDInUse)
	}
	return nil
}

// RenewLease extends the lease of controller id (instance) to lease from the database's
// now, and reads the generation and the live controllers in the same statement. Live
// holds only the controllers settled for settle: a controller whose lease had expired is
// live again at once but joins Live, and gets hosts, only after holding its lease for
// settle without a gap (Settled says whether this one has).
func (s *Leases) RenewLease(ctx context.Context, id, instance string, lease, settle time.Duration) (Lease, error) {
	var l Lease
	err := s.pool.QueryRow(ctx, `
		WITH r AS (UPDATE controllers SET
				live_since = CASE WHEN expires_at <= now() THEN now() ELSE live_since END,
				expires_at = now() + $3::interval
			WHERE id = $1 AND instance = $2 RETURNING live_since <= now() - $4::interval AS settled)
		SELECT EXISTS (SELECT 1 FROM r), coalesce((SELECT settled FROM r), false),
			(SELECT gen FROM mastership_generation),
			coalesce((SELECT array_agg(id ORDER BY id) FROM controllers
				WHERE expires_at > now() AND live_since <= now() - $4::interval AND id <> $1), '{}'),
			statement_timestamp()`,
		id, instance, lease, settle).Scan(&l.Held, &l.Settled, &l.Gen, &l.Live, &l.Received)
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease of controller %s: %w", id, err)
	}
	if l.Settled {
		// Its own row was just renewed, so it is live; the sub-select saw the old row.
		i, _ := slices.BinarySearch(l.Live, id)
		l.Live = slices.Insert(l.Live, i, id)
	}
	return l, nil
}

// ReleaseLease ends the lease of controller id (instance) now, so that the others take
// its hosts over at once (a graceful stop).
func (s *Leases) ReleaseLease(ctx context.Context, id, instance string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE controllers SET expires_at = now() WHERE id = $1 AND instance = $2`,
		id, instance); err != nil {
		return fmt.Errorf("release lease of controller %s: %w", id, err)
	}
	return nil
}

// HostMasters returns every registered host with its bridges and its master, by host name.
func (s *Store) HostMasters(ctx context.Context) ([]HostMaster, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT h.host, h.obj->'bridges', coalesce(m.controller_id, ''), coalesce(m.term, 0),
			coalesce(m.claimed_at, 'epoch'::timestamptz)
		FROM hosts h LEFT JOIN masterships m ON m.host = h.host ORDER BY h.host`)
	if err != nil {
		return nil, fmt.Errorf("read masterships: %w", err)
	}
	defer rows.Close()
	var out []HostMaster
	for rows.Next() {
		var hm HostMaster
		var bridges []byte
		if err := rows.Scan(&hm.Host, &bridges, &hm.Controller, &hm.Term, &hm.ClaimedAt); err != nil {
			return nil, fmt.Errorf("read masterships: %w", err)
		}
		var byName map[string]string
		if len(bridges) > 0 {
			if err := json.Unmarshal(bridges, &byName); err != nil {
				return nil, fmt.Errorf("bridges of host %s: %w", hm.Host, err)
			}
		}
		for _, d := range byName {
			id, err := ofproto.ParseDPID(d)
			if err != nil {
				return nil, fmt.Errorf("bridges of host %s: %w", hm.Host, err)
			}
			hm.DPIDs = append(hm.DPIDs, uint64(id))
		}
		out = append(out, hm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read masterships: %w", err)
	}
	return out, nil
}

// ClaimMasterships makes controller id (instance) the master of hosts, each in a new term,
// where it may: the host has no master yet, or its master is id itself (a restart, or a
// lease that lapsed), or its master's lease expired. Nothing is claimed unless id's own
// lease runs. It returns the hosts claimed and their terms.
func (s *Store) ClaimMasterships(ctx context.Context, id, instance string, hosts []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(hosts) == 0 {
		return out, nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var live bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM controllers
			WHERE id = $1 AND instance = $2 AND expires_at > now())`, id, instance).Scan(&live); err != nil {
			return fmt.Errorf("check own lease: %w", err)
		}
		if !live {
			return nil
		}
		// Rows first, locked in host order (two claimers never deadlock), then the hosts
		// without one. A host's term is drawn when it is claimed, so it exceeds every
		// term drawn before.
		rows, err := tx.Query(ctx, `
			UPDATE masterships m SET controller_id = $1, term = nextval('mastership_term'), claimed_at = now()
			FROM (SELECT host FROM masterships WHERE host = ANY($2) ORDER BY host FOR UPDATE) x
			WHERE m.host = x.host AND (m.controller_id = $1 OR NOT EXISTS (
				SELECT 1 FROM controllers c WHERE c.id = m.controller_id AND c.expires_at > now()))
			RETURNING m.host, m.term`, id, hosts)
		if err != nil {
			return fmt.Errorf("claim masterships: %w", err)
		}
		if err := collectTerms(rows, out); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			INSERT INTO masterships (host, controller_id, term)
			SELECT h, $1, nextval('mastership_term') FROM unnest($2::text[]) AS h
			WHERE h IN (SELECT host FROM hosts) ORDER BY h
			ON CONFLICT (host) DO NOTHING
			RETURNING host, term`, id, hosts)
		if err != nil {
			return fmt.Errorf("claim new masterships: %w", err)
		}
		return collectTerms(rows, out)
	})
	if err != nil {
		return nil, fmt.Errorf("controller %s: %w", id, err)
	}
	return out, nil
}

func collectTerms(rows pgx.Rows, out map[string]int64) error {
	defer rows.Close()
	for rows.Next() {
		var h string
		var t int64
		if err := rows.Scan(&h, &t); err != nil {
			return fmt.Errorf("claimed masterships: %w", err)
		}
		out[h] = t
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("claimed masterships: %w", err)
	}
	return nil
}

// HandOffMasterships gives hosts that controller id masters to other controllers (host
// -> controller); the new master claims each in a term of its own. A host id no longer
// masters is left alone. It returns how many it handed off.
func (s *Store) HandOffMasterships(ctx context.Context, id string, to map[string]string) (int, error) {
	if len(to) == 0 {
		return 0, nil
	}
	hosts := slices.Sorted(maps.Keys(to))
	targets := make([]string, len(hosts))
	for i, h := range hosts {
		targets[i] = to[h]
	}
	// Rows locked in host order, as ClaimMasterships locks them: a hand-off and a claim
	// of the same hosts never deadlock.
	tag, err := s.pool.Exec(ctx, `
		UPDATE masterships m SET controller_id = x.c, claimed_at = now()
		FROM unnest($2::text[], $3::text[]) AS x(h, c),
			(SELECT host FROM masterships WHERE host = ANY($2) ORDER BY host FOR UPDATE) l
		WHERE m.host = x.h AND l.host = x.h AND m.controller_id = $1`, id, hosts, targets)
	if err != nil {
		return 0, fmt.Errorf("controller %s: hand off %d masterships: %w", id, len(to), err)
	}
	return int(tag.RowsAffected()), nil
}

// Controllers returns every registered controller, by id.
func (s *Store) Controllers(ctx context.Context) ([]Controller, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, of_addr, api_url, started_at, expires_at, expires_at > now()
		FROM controllers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read controllers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Controller, error) {
		var c Controller
		err := r.Scan(&c.ID, &c.OFAddr, &c.APIURL, &c.StartedAt, &c.ExpiresAt, &c.Live)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read controllers: %w", err)
	}
	return out, nil
}
