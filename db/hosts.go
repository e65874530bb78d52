package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// HostSpec registers a host.
type HostSpec struct {
	Name     string
	TunnelIP string
	Mode     topology.HostMode
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
	if spec.Mode != topology.HostModeDVR && spec.Mode != topology.HostModeDVRSNAT {
		return invalid("mode %q must be dvr or dvr_snat", spec.Mode)
	}
	out := make(map[string]string, len(spec.Bridges))
	for name, dpid := range spec.Bridges {
		if name == "" || len(name) > 15 {
			return invalid("bridge name %q must be 1-15 characters", name)
		}
		d, err := ofproto.ParseDPID(dpid)
		if err != nil {
			return invalid("datapath ID %q of bridge %s is not a 64-bit hex number", dpid, name)
		}
		out[name] = d.String()
	}
	spec.Bridges = out
	return nil
}

// RegisterHost creates or updates a host and refreshes its heartbeat. A new host gets a
// DVR host MAC from the DVR base MAC; an existing host keeps its MAC. created reports
// whether the host is new. A registration that changes nothing only refreshes the
// heartbeat (host status, not topology: no revision).
func (s *Store) RegisterHost(ctx context.Context, spec HostSpec) (h *topology.Host, created bool, err error) {
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
		var out topology.Host
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
			out = topology.Host{Name: spec.Name, TunnelIP: spec.TunnelIP, Mode: spec.Mode, Bridges: spec.Bridges,
				MACAddress: mac, CreatedAt: w.now, UpdatedAt: w.now}
			w.exec(`INSERT INTO hosts (host, mac_address, obj, heartbeat) VALUES ($1, $2, $3, now())`,
				out.Name, out.MACAddress, mustJSON(out))
			w.record(topology.KindHost, out.Name, topology.OpCreate, out)
			if out.Mode == topology.HostModeDVRSNAT {
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
		wasSNAT := out.Mode == topology.HostModeDVRSNAT
		out.TunnelIP, out.Mode, out.Bridges, out.UpdatedAt = spec.TunnelIP, spec.Mode, spec.Bridges, w.now
		w.exec(`UPDATE hosts SET obj = $2, heartbeat = now() WHERE host = $1`, out.Name, mustJSON(out))
		w.record(topology.KindHost, out.Name, topology.OpUpdate, out)
		switch {
		case wasSNAT && out.Mode != topology.HostModeDVRSNAT:
			_, err := w.moveSNAT(ctx, out.Name)
			return err
		case out.Mode == topology.HostModeDVRSNAT:
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
		var h topology.Host
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
		w.record(topology.KindHost, name, topology.OpDelete, h)
		_, err = w.moveSNAT(ctx, name)
		return err
	})
	return err
}

const hostColumns = `obj, heartbeat, applied_revision`

func scanHost(r pgx.CollectableRow) (topology.Host, error) {
	var raw []byte
	var h topology.Host
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
func (s *Store) GetHost(ctx context.Context, name string) (*topology.Host, error) {
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
func (s *Store) ListHosts(ctx context.Context) ([]topology.Host, error) {
	return listHosts(ctx, s.pool.Query)
}

func listHosts(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error)) ([]topology.Host, error) {
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
