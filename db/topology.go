package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Snapshot returns every resource and the revision they are at, read in one
// REPEATABLE READ transaction so the view is consistent.
func (s *Store) Snapshot(ctx context.Context) (*topology.Topology, int64, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var rev int64
	if err := tx.QueryRow(ctx, `SELECT revision FROM topology_revision WHERE id = 1`).Scan(&rev); err != nil {
		return nil, 0, fmt.Errorf("snapshot: revision: %w", err)
	}
	t := &topology.Topology{}
	q := tx.Query
	if t.Networks, err = objs[topology.Network](ctx, q, `SELECT obj FROM networks ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: networks: %w", err)
	}
	if t.Subnets, err = objs[topology.Subnet](ctx, q, `SELECT obj FROM subnets ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: subnets: %w", err)
	}
	if t.Ports, err = objs[topology.Port](ctx, q, `SELECT obj FROM ports ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: ports: %w", err)
	}
	if t.Routers, err = objs[topology.Router](ctx, q, `SELECT obj FROM routers ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: routers: %w", err)
	}
	if t.FloatingIPs, err = objs[topology.FloatingIP](ctx, q, `SELECT obj FROM floatingips ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: floating IPs: %w", err)
	}
	if t.SecurityGroups, err = objs[topology.SecurityGroup](ctx, q, `SELECT obj FROM security_groups ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: security groups: %w", err)
	}
	if t.SecurityGroupRules, err = objs[topology.SecurityGroupRule](ctx, q, `SELECT obj FROM security_group_rules ORDER BY id`); err != nil {
		return nil, 0, fmt.Errorf("snapshot: security group rules: %w", err)
	}
	if t.Hosts, err = listHosts(ctx, q); err != nil {
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT host, network_id, vlan FROM local_vlans ORDER BY host, network_id`)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: local VLANs: %w", err)
	}
	var lv topology.LocalVLAN
	var v int
	if _, err := pgx.ForEachRow(rows, []any{&lv.Host, &lv.NetworkID, &v}, func() error {
		lv.VLAN = uint16(v)
		t.LocalVLANs = append(t.LocalVLANs, lv)
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("snapshot: local VLANs: %w", err)
	}
	return t, rev, nil
}

// Revision returns the current topology revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.pool.QueryRow(ctx, `SELECT revision FROM topology_revision WHERE id = 1`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read topology revision: %w", err)
	}
	return rev, nil
}

// ChangesSince returns the changes after revision rev in order, at most about limit of
// them: the last revision returned is always complete (all its changes), so a reader can
// continue from the last change's revision. limit <= 0 means no limit.
func (s *Store) ChangesSince(ctx context.Context, rev int64, limit int) ([]topology.Change, error) {
	sql := `SELECT revision, seq, kind, id, op, object, at FROM changes WHERE revision > $1 ORDER BY revision, seq`
	args := []any{rev}
	if limit > 0 {
		sql = `SELECT revision, seq, kind, id, op, object, at FROM changes
WHERE revision > $1 AND revision <= coalesce(
  (SELECT revision FROM changes WHERE revision > $1 ORDER BY revision, seq OFFSET $2 - 1 LIMIT 1),
  (SELECT max(revision) FROM changes))
ORDER BY revision, seq`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("changes since %d: %w", rev, err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (topology.Change, error) {
		var c topology.Change
		var raw []byte
		if err := r.Scan(&c.Revision, &c.Seq, &c.Kind, &c.ID, &c.Op, &raw, &c.At); err != nil {
			return c, err
		}
		c.At = c.At.UTC()
		obj, err := decodeRecord(c.Kind, raw)
		if err != nil {
			return c, fmt.Errorf("change %d.%d (%s %s %s): %w", c.Revision, c.Seq, c.Op, c.Kind, c.ID, err)
		}
		c.Object = obj
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("changes since %d: %w", rev, err)
	}
	return cs, nil
}

// Listen calls fn with the topology revision whenever a write is notified, and also
// every PollInterval and after each (re)connection with the current revision, so a lost
// notification delays a reader by at most PollInterval. fn may see a revision more than
// once and must treat it as "read the change log from where you are". Listen reconnects
// by itself and returns only when ctx ends (with ctx's error).
func (s *Store) Listen(ctx context.Context, fn func(rev int64)) error {
	log := s.log.With(zap.String("channel", NotifyChannel))
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		listened, err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listened {
			// The connection worked (until a failover, say): retry soon, the next
			// primary may already be there.
			backoff = minBackoff
		}
		log.Warn("listen connection lost, reconnecting", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce listens on one connection until it fails; listened says it got as far as
// listening and reporting the current revision.
func (s *Store) listenOnce(ctx context.Context, fn func(rev int64)) (listened bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire listen connection: %w", err)
	}
	// The connection carries a LISTEN: never hand it back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing
	if _, err := pc.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	wctx, stop := context.WithCancel(ctx)
	revs := make(chan int64, 1)
	failed := make(chan error, 1)
	waiterDone := make(chan struct{})
	defer func() { stop(); <-waiterDone }()
	go func() {
		defer close(waiterDone)
		for {
			n, err := pc.WaitForNotification(wctx)
			if err != nil {
				failed <- fmt.Errorf("wait for notification: %w", err)
				return
			}
			rev, err := strconv.ParseInt(n.Payload, 10, 64)
			if err != nil {
				s.log.Warn("bad notification payload", zap.String("payload", n.Payload))
				continue
			}
			select {
			case revs <- rev:
			case <-wctx.Done():
				return
			}
		}
	}()
	poll := func() error {
		rev, err := s.Revision(ctx)
		if err != nil {
			return err
		}
		fn(rev)
		return nil
	}
	if err := poll(); err != nil {
		return false, err
	}
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-failed:
			return true, err
		case rev := <-revs:
			fn(rev)
		case <-tick.C:
			if err := poll(); err != nil {
				return true, err
			}
		}
	}
}

// decodeRecord decodes a change's object, as record stored it, into the record of its kind.
func decodeRecord(kind topology.Kind, raw []byte) (topology.Record, error) {
	var rec topology.Record
	switch kind {
	case topology.KindNetwork:
		rec = new(topology.Network)
	case topology.KindSubnet:
		rec = new(topology.Subnet)
	case topology.KindPort:
		rec = new(topology.Port)
	case topology.KindRouter:
		rec = new(topology.Router)
	case topology.KindFloatingIP:
		rec = new(topology.FloatingIP)
	case topology.KindHost:
		rec = new(topology.Host)
	case topology.KindLocalVLAN:
		rec = new(topology.LocalVLAN)
	case topology.KindSecurityGroup:
		rec = new(topology.SecurityGroup)
	case topology.KindSecurityGroupRule:
		rec = new(topology.SecurityGroupRule)
	case topology.KindSubnetPool:
		rec = new(topology.SubnetPool)
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if err := json.Unmarshal(raw, rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return rec, nil
}
