// Local VLANs: one per (host, network) present there, allocated in PostgreSQL.

package db

import (
	"context"
	"fmt"
	"sort"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// EnsureLocalVLANs returns, in one write, host -> network -> local VLAN for every
// network asked (host -> network IDs), allocating the lowest free VLAN (1-4094) of the
// host where one is missing. It is idempotent: existing VLANs are kept, and a call that
// allocates nothing writes nothing.
func (s *Store) EnsureLocalVLANs(ctx context.Context, want map[string][]string) (map[string]map[string]uint16, error) {
	hosts := make([]string, 0, len(want))
	for h := range want {
		if h == "" {
			return nil, invalid("host must not be empty")
		}
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	have, err := localVLANsOf(ctx, s.pool.Query, hosts)
	if err != nil {
		return nil, err
	}
	if out, ok := pickAll(have, want); ok {
		return out, nil
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		have, err = localVLANsOf(ctx, w.query, hosts)
		if err != nil {
			return err
		}
		var missing []string
		seen := map[string]bool{}
		for _, h := range hosts {
			for _, id := range want[h] {
				if _, ok := have[h][id]; !ok && !seen[id] {
					seen[id] = true
					missing = append(missing, id)
				}
			}
		}
		rows, err := w.query(ctx, `SELECT id FROM networks WHERE id = ANY($1)`, missing)
		if err != nil {
			return fmt.Errorf("check networks: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check networks: %w", err)
		}
		exists := make(map[string]bool, len(found))
		for _, id := range found {
			exists[id] = true
		}
		sort.Strings(missing)
		for _, id := range missing {
			if !exists[id] {
				return notFound("NetworkNotFound", "Network %s could not be found.", id)
			}
		}
		var hs, ns []string
		var vs []int32
		for _, h := range hosts {
			hv := have[h]
			if hv == nil {
				hv = map[string]uint16{}
				have[h] = hv
			}
			used := make(map[uint16]bool, len(hv))
			for _, v := range hv {
				used[v] = true
			}
			ids := append([]string(nil), want[h]...)
			sort.Strings(ids)
			next := uint16(1)
			for _, id := range ids {
				if _, ok := hv[id]; ok {
					continue
				}
				for next <= 4094 && used[next] {
					next++
				}
				if next > 4094 {
					return newError(ClassUnavailable, "LocalVLANExhausted", "No free local VLAN left on host %s.", h)
				}
				used[next] = true
				hv[id] = next
				hs, ns, vs = append(hs, h), append(ns, id), append(vs, int32(next))
				lv := topology.LocalVLAN{Host: h, NetworkID: id, VLAN: next}
				w.record(topology.KindLocalVLAN, lv.Key(), topology.OpCreate, lv)
			}
		}
		if len(hs) > 0 {
			w.exec(`INSERT INTO local_vlans (host, network_id, vlan) SELECT * FROM unnest($1::text[], $2::text[], $3::int[])`, hs, ns, vs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, _ := pickAll(have, want)
	return out, nil
}

// pick returns the VLANs of ids from have, or false when one is missing.
func pick(have map[string]uint16, ids []string) (map[string]uint16, bool) {
	out := make(map[string]uint16, len(ids))
	for _, id := range ids {
		v, ok := have[id]
		if !ok {
			return nil, false
		}
		out[id] = v
	}
	return out, true
}

// pickAll is pick for every host of want.
func pickAll(have map[string]map[string]uint16, want map[string][]string) (map[string]map[string]uint16, bool) {
	out := make(map[string]map[string]uint16, len(want))
	for h, ids := range want {
		m, ok := pick(have[h], ids)
		if !ok {
			return nil, false
		}
		out[h] = m
	}
	return out, true
}

func localVLANsOf(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error), hosts []string) (map[string]map[string]uint16, error) {
	rows, err := q(ctx, `SELECT host, network_id, vlan FROM local_vlans WHERE host = ANY($1)`, hosts)
	if err != nil {
		return nil, fmt.Errorf("local VLANs: %w", err)
	}
	out := map[string]map[string]uint16{}
	var h, id string
	var v int
	if _, err := pgx.ForEachRow(rows, []any{&h, &id, &v}, func() error {
		if out[h] == nil {
			out[h] = map[string]uint16{}
		}
		out[h][id] = uint16(v)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("local VLANs: %w", err)
	}
	return out, nil
}

// ReleaseLocalVLANs frees, in one write, the local VLANs of host -> networks (a nil list
// frees all of the host's).
func (s *Store) ReleaseLocalVLANs(ctx context.Context, release map[string][]string) error {
	var all, hs, ns []string
	for h, ids := range release {
		if ids == nil {
			all = append(all, h)
			continue
		}
		for _, id := range ids {
			hs, ns = append(hs, h), append(ns, id)
		}
	}
	if len(all) == 0 && len(hs) == 0 {
		return nil
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.query(ctx, `DELETE FROM local_vlans l WHERE l.host = ANY($1)
OR (l.host, l.network_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
RETURNING host, network_id, vlan`, all, hs, ns)
		if err != nil {
			return fmt.Errorf("release local VLANs: %w", err)
		}
		lvs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (topology.LocalVLAN, error) {
			var lv topology.LocalVLAN
			var v int
			err := r.Scan(&lv.Host, &lv.NetworkID, &v)
			lv.VLAN = uint16(v)
			return lv, err
		})
		if err != nil {
			return fmt.Errorf("release local VLANs: %w", err)
		}
		sort.Slice(lvs, func(i, j int) bool { return lvs[i].Key() < lvs[j].Key() })
		for _, lv := range lvs {
			w.record(topology.KindLocalVLAN, lv.Key(), topology.OpDelete, lv)
		}
		return nil
	})
	return err
}

// deleteLocalVLANs frees, within a write, the local VLANs of the given networks on host
// (all of the host's when networkIDs is nil).
func (w *wtx) deleteLocalVLANs(ctx context.Context, host string, networkIDs []string) ([]topology.LocalVLAN, error) {
	var rows pgx.Rows
	var err error
	if networkIDs == nil {
		rows, err = w.query(ctx, `DELETE FROM local_vlans WHERE host = $1 RETURNING network_id, vlan`, host)
	} else {
		rows, err = w.query(ctx, `DELETE FROM local_vlans WHERE host = $1 AND network_id = ANY($2) RETURNING network_id, vlan`, host, networkIDs)
	}
	if err != nil {
		return nil, fmt.Errorf("release local VLANs of host %s: %w", host, err)
	}
	lvs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (topology.LocalVLAN, error) {
		lv := topology.LocalVLAN{Host: host}
		var v int
		err := r.Scan(&lv.NetworkID, &v)
		lv.VLAN = uint16(v)
		return lv, err
	})
	if err != nil {
		return nil, fmt.Errorf("release local VLANs of host %s: %w", host, err)
	}
	for _, lv := range lvs {
		w.record(topology.KindLocalVLAN, lv.Key(), topology.OpDelete, lv)
	}
	return lvs, nil
}
