// Package engine drives dvrflow's control loop: it follows the topology in PostgreSQL, turns
// each revision into an topology.View, gives every connected bridge the flows the apps compute
// for it (the controller's reconcilers send only the difference), answers ARP, IPv6
// neighbour and router solicitations and DHCP packet-ins, sends router advertisements,
// marks ports ACTIVE when their device appears on their host, allocates local VLANs, and
// publishes each host's namespace plan to the host helpers.
//
// It follows the change log: each batch of changes is applied to the View, which says which
// hosts it can affect, and only those hosts' bridges, plans and port statuses are computed
// again (a snapshot is taken at start and whenever the log cannot be followed). The
// reconcilers then send only the difference.
package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// Config tunes the engine.
type Config struct {
	// MeterRate is the packet-in budget of the controller meter on every bridge, in
	// packets per second (default 1000), with a burst of MeterBurst (default MeterRate).
	MeterRate, MeterBurst uint32
	// DHCP is what DHCP answers take besides the topology (apps.DefaultDHCPConfig when
	// its lease time is 0).
	DHCP apps.DHCPConfig
	// RAMinInterval and RAMaxInterval bound the random wait between two rounds of
	// unsolicited router advertisements (default 10 and 30 s).
	RAMinInterval, RAMaxInterval time.Duration
}

// Engine is the control loop. Create it with New, start it with Run.
type Engine struct {
	log   *zap.Logger
	cfg   Config
	store *db.Store
	sw    *controller.Server

	// view is written only by the control loop (Apply, under viewMu) and read by it
	// without the lock; other goroutines (ARP packet-ins, the status page) read it under
	// viewMu's read lock.
	viewMu sync.RWMutex
	view   *topology.View
	kick   chan struct{} // a switch event or a topology notification: run a pass

	// Carried between passes of the control loop (its goroutine only).
	pendingAll   bool
	pendingHosts map[string]bool            // hosts to recompute whole
	pendingParts map[string]map[string]bool // other hosts: flow parts to recompute
	pendingPlans map[string]map[string]bool // other hosts: namespaces of their plans to recompute
	pendingMoves map[string]string          // VM ports whose binding moved -> the host they left
	allocatedAt  int64                      // view revision of the last pass that allocated local VLANs
	shared       sharedParts                // the shared parts' newest versions

	mu         sync.Mutex
	bridges    map[uint64]*bridge // connected switches by DPID
	dirtyDPIDs map[uint64]bool    // switches connected (true: push every part) or whose ports changed (false: apps.PortParts) since the last pass
	plans      map[string]*hostPlan
	planCh     chan struct{}                // closed and replaced whenever a plan changes
	heldARP    heldList[ofproto.ARPRequest] // ARP requests waiting for the view to know their address
	heldDHCP   heldList[*dhcp4.Message]     // DHCP messages waiting for the view to know their port
	heldDHCPv6 heldList[*dhcp6.Message]     // DHCPv6 messages likewise
	raPending  map[uint64]bool              // br-int bridges whose new ports may not have heard router advertisements
	raKick     chan struct{}                // raPending has bridges
	dhcpCounts dhcpCounts
	dhcpCount6 dhcp6Counts
	stats      Stats
}

type bridge struct {
	dpid           uint64
	sess           *controller.Session
	ports          map[string]uint32
	names          map[uint32]string // ports by number (replaced with ports, never changed in place)
	meter          bool              // the controller meter is installed
	host           string            // the registered host it was last given flows for
	unknownCounted atomic.Bool       // counted once in Stats.UnknownSwitches
}

// Stats are the engine's counters, for the status page and metrics.
type Stats struct {
	Revision        int64
	Recomputes      uint64 // passes that computed something
	Snapshots       uint64 // full rebuilds of the view from a snapshot
	LastRecompute   time.Duration
	LastHosts       int // hosts the last pass recomputed
	LastBridges     int // bridges the last pass handed desired flows
	ARPAnswered     uint64
	ARPUnknown      uint64
	NDAnswered      uint64 // neighbour solicitations answered
	NDUnanswered    uint64 // neighbour solicitations that reached the controller and were not answered (DAD of its own address)
	RASent          uint64 // router advertisements sent, solicited or not
	MissPacketIns   uint64
	UnknownSwitches uint64            // switches seen connecting that belong to no registered host
	DHCP            map[string]uint64 // DHCP client messages by outcome (apps.DHCPOffered, ...)
	DHCPv6          map[string]uint64 // DHCPv6 client messages by outcome (apps.DHCPv6Advertised, ...)
}

// New returns an engine over store and the OpenFlow server sw.
func New(log *zap.Logger, cfg Config, store *db.Store, sw *controller.Server) *Engine {
	if cfg.MeterRate == 0 {
		cfg.MeterRate = 1000
	}
	if cfg.MeterBurst == 0 {
		cfg.MeterBurst = cfg.MeterRate
	}
	if cfg.DHCP.LeaseTime == 0 {
		cfg.DHCP = apps.DefaultDHCPConfig()
	}
	if cfg.RAMinInterval <= 0 || cfg.RAMaxInterval < cfg.RAMinInterval {
		cfg.RAMinInterval, cfg.RAMaxInterval = defaultRAMinInterval, defaultRAMaxInterval
	}
	return &Engine{
		log:          log.Named("engine"),
		cfg:          cfg,
		store:        store,
		sw:           sw,
		kick:         make(chan struct{}, 1),
		pendingHosts: map[string]bool{},
		pendingParts: map[string]map[string]bool{},
		pendingPlans: map[string]map[string]bool{},
		pendingMoves: map[string]string{},
		bridges:      map[uint64]*bridge{},
		dirtyDPIDs:   map[uint64]bool{},
		plans:        map[string]*hostPlan{},
		planCh:       make(chan struct{}),
		heldARP:      heldList[ofproto.ARPRequest]{max: maxHeldARP, keep: heldARPFor},
		heldDHCP:     heldList[*dhcp4.Message]{max: maxHeldDHCP, keep: heldDHCPFor},
		heldDHCPv6:   heldList[*dhcp6.Message]{max: maxHeldDHCP, keep: heldDHCPFor},
		raPending:    map[uint64]bool{},
		raKick:       make(chan struct{}, 1),
	}
}

// ReadView calls fn with the current topology view (nil before the first snapshot) while
// no change is being applied to it. fn must not keep v nor block.
func (e *Engine) ReadView(fn func(v *topology.View)) {
	e.viewMu.RLock()
	defer e.viewMu.RUnlock()
	fn(e.view)
}

// Plans returns every host's current namespace plan, by host name.
func (e *Engine) Plans() map[string]plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]plan.Plan, len(e.plans))
	for h, hp := range e.plans {
		out[h] = hp.plan
	}
	return out
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.DHCP = e.dhcpStats()
	s.DHCPv6 = e.dhcp6Stats()
	return s
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run follows the topology and the switches until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	cancelSub := e.sw.Subscribe(e.onEvent)
	defer cancelSub()
	cancelARP := e.sw.HandlePacketIn(apps.IntARPResponder, apps.Cookie(apps.AppARP), apps.CookieOwnerMask|apps.CookieAppMask, e.onARP)
	defer cancelARP()
	cancelMiss := e.sw.HandlePacketIn(apps.IntTransient, apps.Cookie(apps.AppMiss), apps.CookieOwnerMask|apps.CookieAppMask, e.onMiss)
	defer cancelMiss()
	cancelDHCP := e.sw.HandlePacketIn(apps.IntDHCPv4, apps.Cookie(apps.AppDHCP), apps.CookieOwnerMask|apps.CookieAppMask, e.onDHCP)
	defer cancelDHCP()
	cancelDHCPv6 := e.sw.HandlePacketIn(apps.IntDHCPv6, apps.Cookie(apps.AppDHCP), apps.CookieOwnerMask|apps.CookieAppMask, e.onDHCPv6)
	defer cancelDHCPv6()
	cancelND := e.sw.HandlePacketIn(apps.IntARPResponder, apps.Cookie(apps.AppND), apps.CookieOwnerMask|apps.CookieAppMask, e.onND)
	defer cancelND()
	cancelRS := e.sw.HandlePacketIn(apps.IntARPResponder, apps.Cookie(apps.AppRA), apps.CookieOwnerMask|apps.CookieAppMask, e.onRS)
	defer cancelRS()
	raCtx, stopRA := context.WithCancel(ctx)
	raDone := make(chan struct{})
	go func() { defer close(raDone); e.advertise(raCtx) }()
	defer func() { stopRA(); <-raDone }()

	listenErr := make(chan error, 1)
	go func() {
		listenErr <- e.store.Listen(ctx, func(rev int64) {
			var known int64 = -1
			e.ReadView(func(v *topology.View) {
				if v != nil {
					known = v.Revision
				}
			})
			if rev != known {
				e.poke()
			}
		})
	}()
	e.poke()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-listenErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("topology listener: %w", err)
		case <-e.kick:
			if err := e.pass(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.log.Warn("recompute failed, retrying", zap.Error(err))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				e.poke()
			}
		}
	}
}
