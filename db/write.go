package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Writes go through one writer goroutine per store that groups the writes waiting at the
// same time into one transaction (group commit): each write runs inside its own
// savepoint and gets its own revision, a rejected write rolls back to its savepoint
// without touching the others, and the batch costs one revision lock and one commit
// (one WAL flush) in all. Across processes, writers still serialize on the revision row.

// maxGroup bounds the writes committed together.
const maxGroup = 64

// maxWriteAttempts bounds retries of a write that lost a race on a random MAC.
const maxWriteAttempts = 20

type writeFn func(ctx context.Context, w *wtx) error

type writeReq struct {
	ctx  context.Context
	fn   writeFn
	done chan writeResult
	// constraint is the caller's revision constraint (nil: none).
	constraint *RevisionConstraint
}

type writeResult struct {
	rev int64
	err error
}

// wtx is one write inside the group transaction. Statements whose results are not needed
// are queued with exec and sent together with the next read (or at the end of the
// write), so a write costs few round trips.
type wtx struct {
	cfg     Config
	tx      pgx.Tx
	rev     int64
	now     time.Time
	batch   *pgx.Batch
	carried int  // leading statements of batch carried from the previous write
	sent    bool // statements of this write (its SAVEPOINT first) have been sent
	changes []pendingChange
	// defaultGroups caches the projects' default security groups this write has seen.
	defaultGroups map[string]string
	// constraint is the write's revision constraint (nil: none); constraintChecked says
	// its resource was loaded and checked.
	constraint        *RevisionConstraint
	constraintChecked bool
}

type pendingChange struct {
	kind topology.Kind
	id   string
	op   topology.Op
	obj  any
}

// write runs fn as one atomic topology write and returns the revision it committed (0
// if fn recorded no change: then it wrote nothing).
func (s *Store) write(ctx context.Context, fn writeFn) (int64, error) {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1), constraint: revisionConstraintOf(ctx)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.closing:
		return 0, errors.New("store closed")
	}
	select {
	case r := <-req.done:
		return r.rev, r.err
	case <-ctx.Done():
		// The write may still commit; the caller only stops waiting.
		return 0, ctx.Err()
	}
}

// writer is the store's single writer goroutine.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var group []*writeReq
		select {
		case r := <-s.writes:
			group = append(group, r)
		case <-s.closing:
			return
		}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup runs a group of writes in one transaction and answers each.
//
// Round trips are what a write costs on a busy machine, so the statements a write needs
// no answer to (its inserts, updates, change-log rows and the RELEASE of its savepoint)
// are carried over and sent with the next write's first query, or with the final batch.
// Every check a carried statement could fail is made by a query before (a random MAC
// is checked, not caught as a unique violation), so a carried statement failing means
// something is wrong with the database: the whole group then fails and nothing commits.
func (s *Store) commitGroup(group []*writeReq) {
	// SQL runs on the writer's own context: one caller giving up must not break the
	// transaction of the others.
	ctx := context.Background()
	results := make([]writeResult, len(group))
	fail := func(err error) {
		for i := range results {
			results[i] = writeResult{err: err}
		}
	}
	defer func() {
		for i, r := range group {
			r.done <- results[i]
		}
	}()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		fail(fmt.Errorf("begin write: %w", err))
		return
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var cur int64
	if err := tx.QueryRow(ctx, `SELECT revision FROM topology_revision WHERE id = 1 FOR UPDATE`).Scan(&cur); err != nil {
		fail(fmt.Errorf("lock topology revision: %w", err))
		return
	}
	start := cur
	now := time.Now().UTC().Truncate(time.Second)
	carry := &pgx.Batch{}
	for i, req := range group {
		if err := req.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		rev, next, err := s.runOne(ctx, tx, req, cur+1, now, carry)
		if errors.Is(err, errTxBroken) {
			s.log.Error("write group failed", zap.Error(err))
			fail(err)
			return
		}
		carry = next
		results[i] = writeResult{rev: rev, err: err}
		if err == nil && rev != 0 {
			cur = rev
		}
	}
	if cur == start {
		return // nothing to commit: the rollback discards any no-op work
	}
	carry.Queue(`UPDATE topology_revision SET revision = $1 WHERE id = 1`, cur)
	carry.Queue(`SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatInt(cur, 10))
	w := &wtx{tx: tx, batch: carry, carried: carry.Len()}
	err = w.flush(ctx)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		err = fmt.Errorf("commit revisions %d-%d: %w", start+1, cur, err)
		s.log.Error("group commit failed", zap.Error(err))
		for i := range results {
			if results[i].err == nil {
				results[i] = writeResult{err: err}
			}
		}
	}
}

// errTxBroken marks a failure that leaves the group transaction unusable.
var errTxBroken = errors.New("write transaction broken")

// errRetry asks for a write to be run again from its savepoint (a random choice, such as
// a MAC, collided).
var errRetry = errors.New("retry write")

// runOne runs req's write in a savepoint after the statements carried from the previous write.
// On success it returns the write's revision (0 without changes) and the statements to
// carry on (its own writes, change-log rows and RELEASE).
func (s *Store) runOne(ctx context.Context, tx pgx.Tx, req *writeReq, rev int64, now time.Time, carry *pgx.Batch) (int64, *pgx.Batch, error) {
	for attempt := 1; ; attempt++ {
		w := &wtx{cfg: s.cfg, tx: tx, rev: rev, now: now, batch: carry, carried: carry.Len(), constraint: req.constraint}
		w.exec(`SAVEPOINT write`)
		err := req.fn(ctx, w)
		if err == nil {
			err = w.constraintUnchecked()
		}
		if err == nil {
			w.exec(`RELEASE SAVEPOINT write`)
			if len(w.changes) == 0 {
				return 0, w.batch, nil
			}
			if err := w.queueChanges(); err != nil {
				return 0, nil, err
			}
			return rev, w.batch, nil
		}
		if errors.Is(err, errTxBroken) {
			return 0, nil, err
		}
		if !w.sent {
			// Nothing was sent: the savepoint does not exist yet. Keep only the
			// carried statements.
			w.batch.QueuedQueries = w.batch.QueuedQueries[:w.carried]
			carry = w.batch
		} else {
			if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT write`); rerr != nil {
				return 0, nil, fmt.Errorf("%w: %w (after %w)", errTxBroken, rerr, err)
			}
			carry = &pgx.Batch{}
		}
		if errors.Is(err, errRetry) && attempt < maxWriteAttempts {
			continue
		}
		if errors.Is(err, errRetry) {
			return 0, carry, newError(ClassUnavailable, "MacAddressGenerationFailure", "Unable to generate a unique MAC address")
		}
		return 0, carry, err
	}
}

// bulkChanges is the number of changes from which a write's change-log rows go in one
// statement (arrays through unnest) rather than one INSERT each.
const bulkChanges = 16

// queueChanges queues the change-log rows of the write.
func (w *wtx) queueChanges() error {
	if len(w.changes) < bulkChanges {
		for i, c := range w.changes {
			obj, err := json.Marshal(c.obj)
			if err != nil {
				return fmt.Errorf("%w: encode %s %s: %v", errTxBroken, c.kind, c.id, err)
			}
			w.exec(`INSERT INTO changes (revision, seq, kind, id, op, object, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				w.rev, i, c.kind, c.id, c.op, obj, w.now)
		}
		return nil
	}
	n := len(w.changes)
	seqs := make([]int32, n)
	kinds, ids, ops, objs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range w.changes {
		obj, err := json.Marshal(c.obj)
		if err != nil {
			return fmt.Errorf("%w: encode %s %s: %v", errTxBroken, c.kind, c.id, err)
		}
		seqs[i], kinds[i], ids[i], ops[i], objs[i] = int32(i), string(c.kind), c.id, string(c.op), string(obj)
	}
	w.exec(`INSERT INTO changes (revision, seq, kind, id, op, object, at)
SELECT $1, s, k, i, o, j::jsonb, $2 FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[]) AS c(s, k, i, o, j)`,
		w.rev, w.now, seqs, kinds, ids, ops, objs)
	return nil
}

// exec queues a statement whose result is not needed.
func (w *wtx) exec(sql string, args ...any) { w.batch.Queue(sql, args...) }

// sendQueued sends the queued statements, then sql if not empty, in one round trip, and
// checks the queued statements' results. A failing carried statement breaks the group.
func (w *wtx) sendQueued(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	b := w.batch
	w.batch = &pgx.Batch{}
	n, carried := b.Len(), w.carried
	w.carried = 0
	w.sent = true
	if sql != "" {
		b.Queue(sql, args...)
	}
	br := w.tx.SendBatch(ctx, b)
	for i := 0; i < n; i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			if i < carried {
				return nil, fmt.Errorf("%w: carried statement: %w", errTxBroken, err)
			}
			return nil, fmt.Errorf("write revision %d: %w", w.rev, err)
		}
	}
	return br, nil
}

// flush sends the queued statements.
func (w *wtx) flush(ctx context.Context) error {
	if w.batch.Len() == 0 {
		return nil
	}
	br, err := w.sendQueued(ctx, "")
	if err != nil {
		return err
	}
	return br.Close()
}

// query sends the queued statements and a query in one round trip.
func (w *wtx) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if w.batch.Len() == 0 {
		return w.tx.Query(ctx, sql, args...)
	}
	br, err := w.sendQueued(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// queryRow sends the queued statements and a single-row query in one round trip.
func (w *wtx) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if w.batch.Len() == 0 {
		return w.tx.QueryRow(ctx, sql, args...)
	}
	br, err := w.sendQueued(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return batchRow{row: br.QueryRow(), br: br}
}

// batchRows closes its batch with the rows.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dst ...any) error {
	err := r.row.Scan(dst...)
	if cerr := r.br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// record appends a change; obj is the full state of the resource after the change
// (its last state for a delete).
func (w *wtx) record(kind topology.Kind, id string, op topology.Op, obj any) {
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
