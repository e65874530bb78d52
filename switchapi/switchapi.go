// Package switchapi holds the shapes of the switch API, /v2.0/dvr-switches, and of the
// controller API, /v2.0/dvr-controllers: what the status server answers and what dvrctl
// reads.
package switchapi

// Switch is one switch session (GET /v2.0/dvr-switches lists them under "dvr_switches",
// GET /v2.0/dvr-switches/{dpid} answers one under "dvr_switch").
type Switch struct {
	DPID           string  `json:"dpid"`
	Host           string  `json:"host"`
	Bridge         string  `json:"bridge"`
	Address        string  `json:"address"`
	Role           string  `json:"role"`        // this controller's OpenFlow role on the switch
	Master         string  `json:"master"`      // the controller mastering its host ("": none known)
	MasterTerm     int64   `json:"master_term"` // the term Master claimed the host in
	ConnectedAt    string  `json:"connected_at"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	FlowsInstalled int     `json:"flows_installed"`
	FlowsDesired   int     `json:"flows_desired"`
	FlowsMissing   int     `json:"flows_missing"`
	FlowsExtra     int     `json:"flows_extra"`
	// FlowsForeign are the flows on the switch with no cookie of ours (left alone);
	// FlowsDecoded the dumped flows that had to be decoded, not byte for byte a desired
	// flow: on a restart or a mastership move it should be FlowsForeign at most.
	FlowsForeign int    `json:"flows_foreign"`
	FlowsDecoded uint64 `json:"flows_decoded"`
	// RealizedRevision is the topology revision whose desired flows the switch holds;
	// DesiredRevision the one its desired set was last computed at.
	RealizedRevision   int64   `json:"realized_revision"`
	DesiredRevision    int64   `json:"desired_revision"`
	LastReconcileAt    string  `json:"last_reconcile_at"` // "" before the first pass
	LastReconcileMS    float64 `json:"last_reconcile_ms"`
	PacketInsPerSecond float64 `json:"packet_ins_per_second"`
	Errors             uint64  `json:"errors"`
}

// Drift reports whether the switch holds other flows than desired.
func (w Switch) Drift() bool { return w.FlowsMissing+w.FlowsExtra > 0 }

// List is the body of GET /v2.0/dvr-switches.
type List struct {
	Switches []Switch `json:"dvr_switches"`
}

// Show is the body of GET /v2.0/dvr-switches/{dpid}.
type Show struct {
	Switch Switch `json:"dvr_switch"`
}

// A flow's state in Flows: on the switch as desired, desired but not on the switch, or on
// the switch with dvrflow's cookie but not desired.
const (
	StateOK      = "ok"
	StateMissing = "missing"
	StateExtra   = "extra"
)

// Flow is one flow of a bridge.
type Flow struct {
	Table     uint8  `json:"table"`
	TableName string `json:"table_name"`
	Priority  uint16 `json:"priority"`
	Cookie    string `json:"cookie"`
	Text      string `json:"text"`
	State     string `json:"state"`     // StateOK, StateMissing or StateExtra
	Packets   uint64 `json:"n_packets"` // the switch's counters at the dump
	Bytes     uint64 `json:"n_bytes"`
}

// Flows is the body of GET /v2.0/dvr-switches/{dpid}/flows: a bridge's flows compared with
// the desired set.
type Flows struct {
	DPID    string `json:"dpid"`
	Host    string `json:"host"`
	Bridge  string `json:"bridge"`
	DumpAt  string `json:"dumped_at"`
	Missing int    `json:"missing"`
	Extra   int    `json:"extra"`
	Flows   []Flow `json:"flows"`
}

// Controller is a dvrflowd registered against the database, with its lease (GET
// /v2.0/dvr-controllers lists them under "dvr_controllers").
type Controller struct {
	ID        string `json:"id"`
	OFAddr    string `json:"of_addr"`
	APIURL    string `json:"api_url"`
	StartedAt string `json:"started_at"`
	// ExpiresAt is the end of its lease, in the database's clock; LeaseRemainingSeconds
	// is how far away that is (0 once passed) and Live whether the database counted the
	// lease as running.
	ExpiresAt             string  `json:"expires_at"`
	LeaseRemainingSeconds float64 `json:"lease_remaining_seconds"`
	Live                  bool    `json:"live"`
	// Self: the controller that answered.
	Self bool `json:"self"`
	// Hosts are the hosts the masterships table names it the master of, by name.
	Hosts []string `json:"hosts"`
	// Renewals is how the answering controller's own lease renewals go (Self only).
	Renewals *Renewals `json:"renewals,omitempty"`
}

// Renewals is how a controller's lease renewals go, as it measures them: from when each
// was due to its reply.
type Renewals struct {
	Count uint64 `json:"count"` // renewals that came back
	// Slow came back later than half the configured lease; SlowestMS is the slowest.
	Slow      uint64  `json:"slow"`
	SlowestMS float64 `json:"slowest_ms"`
	// LeaseSeconds is the lease the last renewal asked for, LongestLeaseSeconds the
	// longest any asked for: the configured lease, longer while renewals are slow.
	LeaseSeconds        float64 `json:"lease_seconds"`
	LongestLeaseSeconds float64 `json:"longest_lease_seconds"`
	Lapses              uint64  `json:"lapses"` // times the lease ran out before a renewal
}

// ControllerList is the body of GET /v2.0/dvr-controllers.
type ControllerList struct {
	Controllers []Controller `json:"dvr_controllers"`
}

// Mastership is a registered host and its master (GET /v2.0/dvr-controllers/masterships
// lists every registered host under "dvr_masterships").
type Mastership struct {
	Host string `json:"host"`
	// Controller is its master and Term the term it claimed the host in ("" and 0: no
	// controller has claimed it yet); ClaimedAt is when ("" with no master).
	Controller string `json:"controller"`
	Term       int64  `json:"term"`
	ClaimedAt  string `json:"claimed_at"`
	// Live: the master's lease runs (false: the host waits for another controller to
	// claim it).
	Live  bool     `json:"live"`
	DPIDs []string `json:"dpids"` // the host's bridges' datapath IDs, sorted
}

// MastershipList is the body of GET /v2.0/dvr-controllers/masterships.
type MastershipList struct {
	Masterships []Mastership `json:"dvr_masterships"`
}
