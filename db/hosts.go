package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// HostSpec registers a host.
type HostSpec struct {
	Name     string
	TunnelIP string
	Mode     string
	Bridges  map[string]string // bridge name -> datapath ID (hex)
}

func validateHost(spec *HostSpec) error {
	if spec.Name == "" || len(spec.Name) > 255 || strings.ContainsAny(spec.Name, "/ \t\n") {
		return invalid("host name %q must be 1-255 characters without '/' or spaces", spec.Name)
	}
	ip, ok := parseIPv4(spec.TunnelIP)
	if !ok {
		return invalid("tunnel_ip '%s' is not a valid IPv4 address", spec.TunnelIP)
	}
	spec.TunnelIP = ipString(ip)
	if spec.Mode != HostModeDVR && spec.Mode != HostModeDVRSNAT {
		return invalid("mode %q must be dvr or dvr_snat", spec.Mode)
	}
	out := make(map[string]string, len(spec.Bridges))
	for name, dpid := range spec.Bridges {
		if name == "" || len(name) > 15 {
			return invalid("bridge name %q must be 1-15 characters", name)
		}
		h := strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(dpid, ":", "")), "0x")
		v, err := strconv.ParseUint(h, 16, 64)
		if err != nil || h == "" || len(h) > 16 {
			return invalid("datapath ID %q of bridge %s is not a 64-bit hex number", dpid, name)
		}
		out[name] = fmt.Sprintf("%016x", v)
	}
	spec.Bridges = out
	return nil
}

// RegisterHost creates or updates a host and refreshes its heartbeat. A new host gets a
// DVR host MAC from the DVR base MAC; an existing host keeps its MAC. created reports
// whether the host is new. A registration that changes nothing only refreshes the
// heartbeat (host status, not topology: no revision).
func (s *Store) RegisterHost(ctx context.Context, spec HostSpec) (h *Host, created bool, err error) {
	if err := validateHost(&spec); err != nil {
		return nil, false, err
	}
	if cur, err := s.GetHost(ctx, spec.Name); err == nil && cur.TunnelIP == spec.TunnelIP && cur.Mode == spec.Mode &&
		sameBridges(cur.Bridges, spec.Bridges) {
		if _, err := s.pool.Exec(ctx, `UPDATE hosts SET heartbeat = now() WHERE host = $1`, spec.Name); err != nil {
			return nil, false, fmt.Errorf("heartbeat of host %s: %w", spec.Name, err)
		}
		h, err = s.GetHost(ctx, spec.Name)
		return h, false, err
	} else if err != nil && !IsNotFound(err) {
		return nil, false, err
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		created = false
		var other string
		err := w.queryRow(ctx, `SELECT host FROM hosts WHERE obj->>'tunnel_ip' = $1 AND host <> $2 LIMIT 1`,
			spec.TunnelIP, spec.Name).Scan(&other)
		if err == nil {
			return conflict("TunnelIPInUse", "Tunnel IP %s is already used by host %s.", spec.TunnelIP, other)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("check tunnel IP %s: %w", spec.TunnelIP, err)
		}
		var out Host
		var raw []byte
		err = w.queryRow(ctx, `SELECT obj FROM hosts WHERE host = $1`, spec.Name).Scan(&raw)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
			mac := randomMAC(w.cfg.DVRBaseMAC)
			var used bool
			if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hosts WHERE mac_address = $1)`, mac).Scan(&used); err != nil {
				return fmt.Errorf("check DVR MAC %s: %w", mac, err)
			}
			if used {
				return errRetry
			}
			out = Host{Name: spec.Name, TunnelIP: spec.TunnelIP, Mode: spec.Mode, Bridges: spec.Bridges,
				MACAddress: mac, CreatedAt: w.now, UpdatedAt: w.now}
			w.exec(`INSERT INTO hosts (host, mac_address, obj, heartbeat) VALUES ($1, $2, $3, now())`,
				out.Name, out.MACAddress, mustJSON(out))
			w.record(KindHost, out.Name, OpCreate, out)
			if out.Mode == HostModeDVRSNAT {
				// Routers that got a gateway while no dvr_snat host was live get this one.
				_, err := w.moveSNAT(ctx, "")
				return err
			}
			return nil
		case err != nil:
			return fmt.Errorf("load host %s: %w", spec.Name, err)
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("decode host %s: %w", spec.Name, err)
		}
		wasSNAT := out.Mode == HostModeDVRSNAT
		out.TunnelIP, out.Mode, out.Bridges, out.UpdatedAt = spec.TunnelIP, spec.Mode, spec.Bridges, w.now
		w.exec(`UPDATE hosts SET obj = $2, heartbeat = now() WHERE host = $1`, out.Name, mustJSON(out))
		w.record(KindHost, out.Name, OpUpdate, out)
		switch {
		case wasSNAT && out.Mode != HostModeDVRSNAT:
			_, err := w.moveSNAT(ctx, out.Name)
			return err
		case out.Mode == HostModeDVRSNAT:
			_, err := w.moveSNAT(ctx, "")
			return err
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	h, err = s.GetHost(ctx, spec.Name)
	return h, created, err
}

func sameBridges(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Heartbeat records that host's helper is alive (host status: no revision bump).
func (s *Store) Heartbeat(ctx context.Context, host string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET heartbeat = now() WHERE host = $1`, host)
	if err != nil {
		return fmt.Errorf("heartbeat of host %s: %w", host, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("HostNotFound", "Host %s could not be found.", host)
	}
	return nil
}

// SetHostApplied records the revision a host's helper has applied (host status: no
// revision bump).
func (s *Store) SetHostApplied(ctx context.Context, host string, rev int64) error {
	if rev < 0 {
		return invalid("revision %d must not be negative", rev)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET applied_revision = $2, heartbeat = now() WHERE host = $1`, host, rev)
	if err != nil {
		return fmt.Errorf("set applied revision of host %s: %w", host, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("HostNotFound", "Host %s could not be found.", host)
	}
	return nil
}

// DeleteHost removes a host and its local VLANs; it refuses while ports are bound to it.
func (s *Store) DeleteHost(ctx context.Context, name string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var raw []byte
		err := w.queryRow(ctx, `SELECT obj FROM hosts WHERE host = $1`, name).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("HostNotFound", "Host %s could not be found.", name)
		}
		if err != nil {
			return fmt.Errorf("load host %s: %w", name, err)
		}
		var h Host
		if err := json.Unmarshal(raw, &h); err != nil {
			return fmt.Errorf("decode host %s: %w", name, err)
		}
		var bound int
		if err := w.queryRow(ctx, `SELECT count(*) FROM ports WHERE host = $1`, name).Scan(&bound); err != nil {
			return fmt.Errorf("count ports on host %s: %w", name, err)
		}
		if bound > 0 {
			return conflict("HostInUse", "Host %s still has %d bound ports.", name, bound)
		}
		if _, err := w.deleteLocalVLANs(ctx, name, nil); err != nil {
			return err
		}
		w.exec(`DELETE FROM hosts WHERE host = $1`, name)
		w.record(KindHost, name, OpDelete, h)
		_, err = w.moveSNAT(ctx, name)
		return err
	})
	return err
}

const hostColumns = `obj, heartbeat, applied_revision`

func scanHost(r pgx.CollectableRow) (Host, error) {
	var raw []byte
	var h Host
	var hb time.Time
	var applied int64
	if err := r.Scan(&raw, &hb, &applied); err != nil {
		return h, err
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("decode host: %w", err)
	}
	h.Heartbeat, h.AppliedRevision = hb.UTC(), applied
	return h, nil
}

// GetHost returns one host.
func (s *Store) GetHost(ctx context.Context, name string) (*Host, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+hostColumns+` FROM hosts WHERE host = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("get host %s: %w", name, err)
	}
	hs, err := pgx.CollectRows(rows, scanHost)
	if err != nil {
		return nil, fmt.Errorf("get host %s: %w", name, err)
	}
	if len(hs) == 0 {
		return nil, notFound("HostNotFound", "Host %s could not be found.", name)
	}
	return &hs[0], nil
}

// ListHosts returns every host, by name.
func (s *Store) ListHosts(ctx context.Context) ([]Host, error) {
	return listHosts(ctx, s.pool.Query)
}

func listHosts(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error)) ([]Host, error) {
	rows, err := q(ctx, `SELECT `+hostColumns+` FROM hosts ORDER BY host`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	hs, err := pgx.CollectRows(rows, scanHost)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

// EnsureLocalVLANs returns the local VLAN of each network on host, allocating the lowest
// free VLAN (1-4094) for networks that have none. It is idempotent: existing VLANs are
// kept, and a call that allocates nothing writes nothing.
func (s *Store) EnsureLocalVLANs(ctx context.Context, host string, networkIDs []string) (map[string]uint16, error) {
	if host == "" {
		return nil, invalid("host must not be empty")
	}
	have, err := localVLANs(ctx, s.pool.Query, host)
	if err != nil {
		return nil, err
	}
	if out, ok := pick(have, networkIDs); ok {
		return out, nil
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		have, err = localVLANs(ctx, w.query, host)
		if err != nil {
			return err
		}
		used := make(map[uint16]bool, len(have))
		for _, v := range have {
			used[v] = true
		}
		next := uint16(1)
		ids := append([]string(nil), networkIDs...)
		sort.Strings(ids)
		for _, id := range ids {
			if _, ok := have[id]; ok {
				continue
			}
			var n Network
			if err := w.network(ctx, id, &n); err != nil {
				return err
			}
			for next <= 4094 && used[next] {
				next++
			}
			if next > 4094 {
				return newError(ClassUnavailable, "LocalVLANExhausted", "No free local VLAN left on host %s.", host)
			}
			used[next] = true
			have[id] = next
			lv := LocalVLAN{Host: host, NetworkID: id, VLAN: next}
			w.exec(`INSERT INTO local_vlans (host, network_id, vlan) VALUES ($1, $2, $3)`, host, id, int(next))
			w.record(KindLocalVLAN, lv.key(), OpCreate, lv)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, _ := pick(have, networkIDs)
	return out, nil
}

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

func localVLANs(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error), host string) (map[string]uint16, error) {
	rows, err := q(ctx, `SELECT network_id, vlan FROM local_vlans WHERE host = $1`, host)
	if err != nil {
		return nil, fmt.Errorf("local VLANs of host %s: %w", host, err)
	}
	out := map[string]uint16{}
	var id string
	var v int
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		out[id] = uint16(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local VLANs of host %s: %w", host, err)
	}
	return out, nil
}

// ReleaseLocalVLANs frees the local VLANs of the given networks on host (all of the
// host's when networkIDs is nil).
func (s *Store) ReleaseLocalVLANs(ctx context.Context, host string, networkIDs []string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		_, err := w.deleteLocalVLANs(ctx, host, networkIDs)
		return err
	})
	return err
}

func (w *wtx) deleteLocalVLANs(ctx context.Context, host string, networkIDs []string) ([]LocalVLAN, error) {
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
	lvs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LocalVLAN, error) {
		lv := LocalVLAN{Host: host}
		var v int
		err := r.Scan(&lv.NetworkID, &v)
		lv.VLAN = uint16(v)
		return lv, err
	})
	if err != nil {
		return nil, fmt.Errorf("release local VLANs of host %s: %w", host, err)
	}
	for _, lv := range lvs {
		w.record(KindLocalVLAN, lv.key(), OpDelete, lv)
	}
	return lvs, nil
}
