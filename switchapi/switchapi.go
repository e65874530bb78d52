// Package switchapi holds the shapes of the switch API, /v2.0/dvr-switches: what the status
// server answers and what dvrctl reads.
package switchapi

// Switch is one switch session (GET /v2.0/dvr-switches lists them under "dvr_switches",
// GET /v2.0/dvr-switches/{dpid} answers one under "dvr_switch").
type Switch struct {
	DPID           string  `json:"dpid"`
	Host           string  `json:"host"`
	Bridge         string  `json:"bridge"`
	Address        string  `json:"address"`
	Role           string  `json:"role"`
	ConnectedAt    string  `json:"connected_at"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	FlowsInstalled int     `json:"flows_installed"`
	FlowsDesired   int     `json:"flows_desired"`
	FlowsMissing   int     `json:"flows_missing"`
	FlowsExtra     int     `json:"flows_extra"`
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
