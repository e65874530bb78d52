package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// wtx is one topology write: a transaction holding the revision lock. Statements whose
// results are not needed are queued with exec and sent in one round trip before the next
// read (or at commit), so a write costs few round trips.
type wtx struct {
	cfg     Config
	tx      pgx.Tx
	rev     int64
	now     time.Time
	batch   *pgx.Batch
	changes []pendingChange
}

type pendingChange struct {
	kind, id, op string
	obj          any
}

// maxWriteAttempts bounds retries of a write that lost a race on a random MAC.
const maxWriteAttempts = 20

// retryableConstraints are unique constraints hit only by a random choice (a MAC).
var retryableConstraints = map[string]bool{
	"ports_network_id_mac_address_key": true,
	"hosts_mac_address_key":            true,
}

// write runs fn in a topology write transaction and returns the revision it committed
// (0 if fn recorded no change, in which case nothing was written).
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, w *wtx) error) (int64, error) {
	for attempt := 1; ; attempt++ {
		rev, err := s.writeOnce(ctx, fn)
		var pe *pgconn.PgError
		if err != nil && errors.As(err, &pe) && pe.Code == "23505" && retryableConstraints[pe.ConstraintName] {
			if attempt < maxWriteAttempts {
				continue
			}
			if pe.ConstraintName == "hosts_mac_address_key" {
				return 0, newError(ClassUnavailable, "HostMacAddressGenerationFailure",
					"Unable to generate unique DVR mac for host")
			}
			return 0, newError(ClassUnavailable, "MacAddressGenerationFailure",
				"Unable to generate unique mac on network")
		}
		return rev, err
	}
}

func (s *Store) writeOnce(ctx context.Context, fn func(ctx context.Context, w *wtx) error) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin write: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var cur int64
	if err := tx.QueryRow(ctx, `SELECT revision FROM topology_revision WHERE id = 1 FOR UPDATE`).Scan(&cur); err != nil {
		return 0, fmt.Errorf("lock topology revision: %w", err)
	}
	w := &wtx{cfg: s.cfg, tx: tx, rev: cur + 1, now: time.Now().UTC().Truncate(time.Second), batch: &pgx.Batch{}}
	if err := fn(ctx, w); err != nil {
		return 0, err
	}
	if len(w.changes) == 0 {
		return 0, nil
	}
	w.batch.Queue(`UPDATE topology_revision SET revision = $1 WHERE id = 1`, w.rev)
	for i, c := range w.changes {
		obj, err := json.Marshal(c.obj)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", c.kind, c.id, err)
		}
		w.batch.Queue(`INSERT INTO changes (revision, seq, kind, id, op, object, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			w.rev, i, c.kind, c.id, c.op, obj, w.now)
	}
	w.batch.Queue(`SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatInt(w.rev, 10))
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit revision %d: %w", w.rev, err)
	}
	return w.rev, nil
}

// exec queues a statement whose result is not needed.
func (w *wtx) exec(sql string, args ...any) { w.batch.Queue(sql, args...) }

// flush sends the queued statements.
func (w *wtx) flush(ctx context.Context) error {
	if w.batch.Len() == 0 {
		return nil
	}
	b := w.batch
	w.batch = &pgx.Batch{}
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write revision %d: %w", w.rev, err)
	}
	return nil
}

// query flushes the queue, then runs a query.
func (w *wtx) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := w.flush(ctx); err != nil {
		return nil, err
	}
	return w.tx.Query(ctx, sql, args...)
}

// queryRow flushes the queue, then runs a single-row query.
func (w *wtx) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := w.flush(ctx); err != nil {
		return errRow{err}
	}
	return w.tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// record appends a change; obj is the full state of the resource after the change
// (its last state for a delete).
func (w *wtx) record(kind, id, op string, obj any) {
	w.changes = append(w.changes, pendingChange{kind: kind, id: id, op: op, obj: obj})
}

// getObj loads one resource's JSON state from table by id into dst. It returns
// pgx.ErrNoRows when absent.
func (w *wtx) getObj(ctx context.Context, table, id string, dst any) error {
	var raw []byte
	if err := w.queryRow(ctx, `SELECT obj FROM `+table+` WHERE id = $1`, id).Scan(&raw); err != nil {
		return err
	}
	return json.Unmarshal(raw, dst)
}

// objs runs a query returning one jsonb column and decodes every row.
func objs[T any](ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error), sql string, args ...any) ([]T, error) {
	rows, err := q(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	out := make([]T, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, fmt.Errorf("decode stored object: %w", err)
		}
	}
	return out, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // plain structs always encode
	}
	return b
}
