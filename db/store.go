// Package db is dvrflow's topology store: PostgreSQL through pgx, schema as embedded
// migrations, a change log with a gap-free topology revision, and the allocation of
// everything Neutron allocates (fixed IPs, MACs, VNIs, DVR host MACs, router ports,
// link-local /31s, local VLANs), and the ports Neutron's agents would make (DHCP ports).
//
// Every write is one transaction that first locks the single topology_revision row, so
// writers are serialized (across processes too), revisions are gap-free and ordered, and
// allocation queries cannot race. The transaction appends its changes to the change log
// and ends with pg_notify('dvrflow_topology', revision).
package db

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

//go:embed migrations/*.sql
var migrations embed.FS

// NotifyChannel is the LISTEN/NOTIFY channel that carries new revisions.
const NotifyChannel = "dvrflow_topology"

// Config holds the allocation settings of a store.
type Config struct {
	// VNIMin and VNIMax bound the VXLAN IDs given to tenant networks (inclusive).
	VNIMin, VNIMax int64
	// BaseMAC is the base of port MACs (Neutron's base_mac).
	BaseMAC net.HardwareAddr
	// DVRBaseMAC is the base of DVR host MACs (Neutron's dvr_base_mac).
	DVRBaseMAC net.HardwareAddr
	// PollInterval is how often Listen reports the current revision even without a
	// notification, so a lost NOTIFY delays a reader by at most this much.
	PollInterval time.Duration
	// AgentDownTime is how long after its last heartbeat a host is dead: SNAT is never
	// scheduled on a dead host and moves off one (Neutron's agent_down_time).
	AgentDownTime time.Duration
	// GlobalPhysnetMTU is the MTU of the physical network (Neutron's global_physnet_mtu):
	// the MTU of flat and VLAN networks, and of VXLAN networks less the VXLAN overhead
	// (MaxMTU).
	GlobalPhysnetMTU int
	// QuotaDefaults are the default limits of a project's resources by QuotaResources
	// name (-1: unlimited); a resource missing here has Neutron's default.
	QuotaDefaults map[string]int64
}

// MTU limits: IPv4's minimum, and what VXLAN over an IPv4 underlay adds to a frame
// (Neutron's VXLAN_ENCAP_OVERHEAD, 30, and the IPv4 header, 20).
const (
	minIPv4MTU    = 68
	vxlanOverhead = 50
	maxIPv4MTU    = 65535
)

// MaxMTU returns the largest MTU a network of type networkType may have, and the MTU of
// a new one that asks for none (Neutron's type drivers): GlobalPhysnetMTU for flat and
// VLAN networks, GlobalPhysnetMTU less the VXLAN overhead (50) for VXLAN ones.
func (c Config) MaxMTU(networkType string) int {
	if networkType == topology.NetworkTypeVXLAN {
		return c.GlobalPhysnetMTU - vxlanOverhead
	}
	return c.GlobalPhysnetMTU
}

// DefaultConfig returns Neutron's defaults (global_physnet_mtu 1500) and a VNI range of
// 1001-65535.
func DefaultConfig() Config {
	return Config{
		VNIMin:           1001,
		VNIMax:           65535,
		BaseMAC:          net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 0},
		DVRBaseMAC:       net.HardwareAddr{0xfa, 0x16, 0x3f, 0, 0, 0},
		PollInterval:     5 * time.Second,
		AgentDownTime:    75 * time.Second,
		GlobalPhysnetMTU: 1500,
		QuotaDefaults:    DefaultQuotas(),
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.VNIMin < 1 || c.VNIMax > 1<<24-1 || c.VNIMin > c.VNIMax {
		return fmt.Errorf("vni range %d:%d: must be within 1:16777215 and ordered", c.VNIMin, c.VNIMax)
	}
	if len(c.BaseMAC) != 6 || len(c.DVRBaseMAC) != 6 {
		return errors.New("base MACs must be 6-byte Ethernet addresses")
	}
	if c.BaseMAC[0]&1 == 1 || c.DVRBaseMAC[0]&1 == 1 {
		return errors.New("base MACs must be unicast")
	}
	if c.BaseMAC.String()[:8] == c.DVRBaseMAC.String()[:8] {
		return fmt.Errorf("base MAC %s and DVR base MAC %s must differ in their first three octets", c.BaseMAC, c.DVRBaseMAC)
	}
	if c.PollInterval <= 0 {
		return errors.New("poll interval must be positive")
	}
	if c.AgentDownTime <= 0 {
		return errors.New("agent down time must be positive")
	}
	if c.GlobalPhysnetMTU < minIPv4MTU+vxlanOverhead || c.GlobalPhysnetMTU > maxIPv4MTU {
		return fmt.Errorf("global physnet MTU %d: must be %d-%d (a VXLAN network's MTU, %d less, must be at least IPv4's %d)",
			c.GlobalPhysnetMTU, minIPv4MTU+vxlanOverhead, maxIPv4MTU, vxlanOverhead, minIPv4MTU)
	}
	if err := validateQuotaDefaults(c.QuotaDefaults); err != nil {
		return err
	}
	return nil
}

// ParseVNIRange parses "min:max".
func ParseVNIRange(s string) (lo, hi int64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("vni range %q: want MIN:MAX", s)
	}
	if lo, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("vni range %q: %w", s, err)
	}
	if hi, err = strconv.ParseInt(b, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("vni range %q: %w", s, err)
	}
	return lo, hi, nil
}

// Store is the topology store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// Leases has the mastership leases' statements on connections of their own
	// (mastership.go): a renewal must never wait behind API, engine and heartbeat queries,
	// or a busy controller loses its lease while it is alive.
	*Leases
	cfg        Config
	log        *zap.Logger
	writes     chan *writeReq
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
}

// Open connects to PostgreSQL at dsn, applies the embedded migrations, gives the networks
// that lack it their DHCP port (SyncDHCPPorts) and returns a store.
//
// dsn may list several hosts (postgres://h1:p1,h2:p2/db): every connection, the first
// one (migrations) included, goes to the first host that accepts writes, as
// target_session_attrs=read-write asks, which is the default here (a store only works
// against a primary). After a standby's promotion new connections land on it; requests
// made while no host accepts writes fail with errors IsUnavailable recognizes.
func Open(ctx context.Context, dsn string, cfg Config, log *zap.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if pcfg.ConnConfig.ValidateConnect == nil {
		pcfg.ConnConfig.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	leases, err := openLeases(ctx, pcfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, Leases: leases, cfg: cfg, log: log.Named("db"),
		writes: make(chan *writeReq), closing: make(chan struct{}), writerDone: make(chan struct{})}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		leases.Close()
		return nil, err
	}
	go s.writer()
	if err := s.SyncDHCPPorts(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("DHCP ports: %w", err)
	}
	return s, nil
}

// Close stops the writer (after the group it is committing) and releases the store's
// connections. It is safe to call more than once.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		s.pool.Close()
		s.Leases.Close()
	})
}

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Ping checks the database connection.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// migrationLockKey is the advisory lock held while migrating ("dvrflow" in ASCII).
const migrationLockKey = 0x647672666c6f77

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, n := range done {
		applied[n] = true
	}
	for _, path := range names {
		name := strings.TrimPrefix(path, "migrations/")
		if applied[name] {
			continue
		}
		sql, err := migrations.ReadFile(path)
		if err != nil {
			return fmt.Errorf("migrate: read %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migrate: apply %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
			return fmt.Errorf("migrate: record %s: %w", name, err)
		}
		s.log.Info("applied migration", zap.String("migration", name))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomMAC returns a MAC as Neutron's get_random_mac builds it from base: octets 1-3
// copied, octet 4 copied when non-zero in the base, otherwise random; octets 5-6 random.
func randomMAC(base net.HardwareAddr) string {
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	m := net.HardwareAddr{base[0], base[1], base[2], base[3], r[1], r[2]}
	if base[3] == 0 {
		m[3] = r[0]
	}
	return m.String()
}
