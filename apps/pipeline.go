package apps

import (
	"fmt"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// App identifies the app that owns a table (and the flows in it). Its value is the cookie's
// app byte, so `ovs-ofctl dump-flows` tells who wrote each flow.
type App uint8

// The apps. Values are stable: they are written into cookies on every switch.
const (
	AppL2       App = 0x01 // local switching, VNI<->local VLAN, l2population unicast and flooding
	AppDVR      App = 0x02 // DVR host MAC rewrite (br-tun) and restore (br-int)
	AppARP      App = 0x03 // ARP requests for known addresses, answered by the controller
	AppMiss     App = 0x04 // table-miss flows, built from the declarations below
	AppFirewall App = 0x05 // security groups and port security on br-int (firewall.go)
	AppDHCP     App = 0x06 // DHCPv4 and DHCPv6 client requests to the controller, which answers them (dhcp.go, dhcp6.go)
	AppND       App = 0x07 // IPv6 neighbour solicitations for known addresses, answered by the controller (nd.go)
	AppRA       App = 0x08 // IPv6 router solicitations, answered with router advertisements by the controller (ra.go)
)

func (a App) String() string {
	switch a {
	case AppL2:
		return "l2"
	case AppDVR:
		return "dvr"
	case AppARP:
		return "arp"
	case AppMiss:
		return "miss"
	case AppFirewall:
		return "firewall"
	case AppDHCP:
		return "dhcp"
	case AppND:
		return "nd"
	case AppRA:
		return "ra"
	}
	return fmt.Sprintf("app%d", uint8(a))
}

// Cookie bit layout of every flow dvrflow installs:
//
//	bits 63..56  CookieOwner (0xd7): the flow belongs to dvrflow; the reconciler deletes
//	             only flows carrying it and never touches anything else on a bridge
//	bits 55..48  App: who computed the flow (l2=1, dvr=2, arp=3, miss=4, firewall=5,
//	             dhcp=6, nd=7, ra=8)
//	bits 47..0   0, reserved (a future incremental engine may put an object hash here)
const (
	CookieOwner     uint64 = 0xd7 << 56
	CookieOwnerMask uint64 = 0xff << 56
	CookieAppMask   uint64 = 0xff << 48
)

// Cookie returns the cookie of the flows of app.
func Cookie(app App) uint64 { return CookieOwner | uint64(app)<<48 }

// CookieApp returns the app that wrote a flow with this cookie, and whether it is ours.
func CookieApp(cookie uint64) (App, bool) {
	if cookie&CookieOwnerMask != CookieOwner {
		return 0, false
	}
	return App(cookie >> 48 & 0xff), true
}

// MeterController is the OpenFlow meter every flow sending packets to the controller goes
// through, on every bridge: a storm on one host is cut at its own switch.
const MeterController uint32 = 1

// MissKind is what a table does with a packet no flow matched.
type MissKind int

// Miss behaviours.
const (
	MissDrop       MissKind = iota // drop; the miss flow's counters count the drops
	MissGoto                       // continue in Table.MissNext
	MissController                 // packet-in through MeterController (the controller acts on it)
)

// Priorities used across tables. Named so that the relation between flows of one table reads
// at a glance.
const (
	PrioMiss uint16 = 0
	PrioBase uint16 = 1
	// PrioDHCPUnknown is LOCAL_SWITCHING's flow for the DHCP requests of ports without
	// flows yet: under every port's, above the patch port's (tagged frames only).
	PrioDHCPUnknown uint16 = 2
	PrioFlood       uint16 = 5
	PrioRemote      uint16 = 10
	PrioLocal       uint16 = 20
	PrioDHCP        uint16 = 25
	PrioDVRMAC      uint16 = 30
	PrioDropDVR     uint16 = 40
	PrioARPAll      uint16 = 50
	PrioARP         uint16 = 100
)

// Table declares one OpenFlow table of one bridge: the single place a table's number, name,
// owner and miss behaviour are written. Miss flows are built from it; every flow an app
// computes is checked against it (Check) in tests.
//
// To add a table: add a Table here (keep Neutron's number when the role matches one of
// dvr-reference.md section 1.2), write its flows in the owning app's file, list the fields
// it matches in Fields and the tables it may go to in Next, and add its section to
// docs/pipeline.md with a dump excerpt.
type Table struct {
	Bridge   topology.Bridge
	ID       uint8
	Name     string
	App      App
	Also     []App // other apps allowed to add flows here (each says why in its file)
	Miss     MissKind
	MissNext uint8     // with MissGoto
	Fields   []FieldID // fields its flows may match
	Next     []uint8   // tables its flows may goto
}

// FieldID names a match field by its OXM class and type.
type FieldID struct {
	Class uint16
	Type  uint8
}

func basic(t uint8) FieldID { return FieldID{ofproto.ClassBasic, t} }

var (
	fInPort  = basic(ofproto.OXMInPort)
	fEthDst  = basic(ofproto.OXMEthDst)
	fEthSrc  = basic(ofproto.OXMEthSrc)
	fEthType = basic(ofproto.OXMEthType)
	fVLAN    = basic(ofproto.OXMVLANVID)
	fARPOp   = basic(ofproto.OXMARPOp)
	fARPTPA  = basic(ofproto.OXMARPTPA)
	fTunID   = basic(ofproto.OXMTunnelID)
	fIPProto = basic(ofproto.OXMIPProto)
	fIPSrc   = basic(ofproto.OXMIPv4Src)
	fIPDst   = basic(ofproto.OXMIPv4Dst)
	fARPSPA  = basic(ofproto.OXMARPSPA)
	fTCPDst  = basic(ofproto.OXMTCPDst)
	fUDPSrc  = basic(ofproto.OXMUDPSrc)
	fUDPDst  = basic(ofproto.OXMUDPDst)
	fICMPT   = basic(ofproto.OXMICMPv4Type)
	fICMPC   = basic(ofproto.OXMICMPv4Code)
	fIPv6Src = basic(ofproto.OXMIPv6Src)
	fIPv6Dst = basic(ofproto.OXMIPv6Dst)
	fICMP6T  = basic(ofproto.OXMICMPv6Type)
	fICMP6C  = basic(ofproto.OXMICMPv6Code)
	fNDTgt   = basic(ofproto.OXMIPv6NDTarget)
	fRegPort = FieldID{ofproto.ClassNXM1, ofproto.NXMReg0 + RegPort}
	fRegZone = FieldID{ofproto.ClassNXM1, ofproto.NXMReg0 + RegZone}
	fCTState = FieldID{ofproto.ClassNXM1, ofproto.NXMCTState}
	fCTZone  = FieldID{ofproto.ClassNXM1, ofproto.NXMCTZone}
	fCTMark  = FieldID{ofproto.ClassNXM1, ofproto.NXMCTMark}
	fConjID  = FieldID{ofproto.ClassNXM1, ofproto.NXMConjID}

	// fRules are the fields of the firewall's rules tables.
	fRules = []FieldID{fRegPort, fEthType, fIPProto, fIPSrc, fIPDst, fTCPDst, fUDPDst, fICMPT, fICMPC,
		fIPv6Src, fIPv6Dst, fICMP6T, fICMP6C, fCTState, fCTZone, fCTMark, fConjID}
)

// Table numbers. br-int and br-tun keep Neutron's numbers and names where the role is the
// same (dvr-reference.md 1.2), so an operator who knows Neutron reads the dumps as before.
// The firewall's egress tables are the exception: Neutron's 71-73 return to TRANSIENT by
// resubmit, and dvrflow's pipeline only goes forward (goto_table), so they sit before
// ARP_RESPONDER and TRANSIENT as 11-13; its ingress tables keep Neutron's 81, 82 and 92.
const (
	IntLocalSwitching  uint8 = 0  // classify: local port -> tag local VLAN; tunnel; uplink
	IntDVRToSrcMAC     uint8 = 1  // frames routed by a remote host: restore the gateway MAC
	IntBaseEgress      uint8 = 11 // firewall: a firewalled port's own addresses, ARP, ND -> conntrack
	IntRulesEgress     uint8 = 12 // firewall: the port's egress rules, connection states
	IntAcceptedEgress  uint8 = 13 // firewall: commit new egress connections, on to TRANSIENT
	IntARPResponder    uint8 = 21 // ARP requests and IPv6 neighbour and router solicitations for known addresses -> controller
	IntTransient       uint8 = 60 // exact L2 forwarding within a local VLAN, and flooding
	IntBaseIngress     uint8 = 81 // firewall: ARP, ND and DHCP offers to the port pass; IPv4 and IPv6 -> conntrack
	IntRulesIngress    uint8 = 82 // firewall: the port's ingress rules, connection states
	IntAcceptedIngress uint8 = 92 // firewall: commit new ingress connections
	IntDHCPv4          uint8 = 77 // DHCPv4 client requests of local ports -> controller
	IntDHCPv6          uint8 = 78 // DHCPv6 client messages of local ports -> controller
	IntDeliver         uint8 = 95 // firewall: out to the port

	TunClassifier   uint8 = 0  // from patch-int -> DVR_PROCESS; from the VXLAN port -> VXLAN_TUN_TO_LV
	TunDVRProcess   uint8 = 1  // routed frames leave with this host's DVR MAC
	TunPatchLVToTun uint8 = 2  // unicast -> UCAST_TO_TUN, broadcast/multicast -> FLOOD_TO_TUN
	TunVXLANToLV    uint8 = 4  // VNI -> local VLAN, to br-int
	TunUcastToTun   uint8 = 20 // l2population: known MAC -> its host's VTEP
	TunFloodToTun   uint8 = 22 // BUM traffic -> only the hosts with ports on the network

	ExPhysical           uint8 = 0 // br-ex: from br-int -> DVR_PROCESS_PHYSICAL; from an uplink -> br-int
	ExDVRProcessPhysical uint8 = 1 // routed frames leave with this host's DVR MAC (VLAN and flat networks)
	ExToPhysical         uint8 = 2 // out by the uplinks
)

// pipeline is every table of every bridge. It is data, never modified: read it through
// Tables and TableOf.
var pipeline = []Table{
	{Bridge: topology.BrInt, ID: IntLocalSwitching, Name: "LOCAL_SWITCHING", App: AppL2, Also: []App{AppDVR, AppDHCP}, Miss: MissDrop,
		Fields: []FieldID{fInPort, fVLAN, fEthSrc, fIPProto, fUDPSrc, fUDPDst},
		Next:   []uint8{IntDVRToSrcMAC, IntARPResponder, IntTransient, IntBaseEgress, IntDHCPv4, IntDHCPv6}},
	{Bridge: topology.BrInt, ID: IntDVRToSrcMAC, Name: "DVR_TO_SRC_MAC", App: AppDVR, Miss: MissDrop,
		Fields: []FieldID{fVLAN, fEthDst}, Next: []uint8{IntTransient}},
	{Bridge: topology.BrInt, ID: IntARPResponder, Name: "ARP_RESPONDER", App: AppARP, Also: []App{AppND, AppRA}, Miss: MissGoto, MissNext: IntTransient,
		Fields: []FieldID{fVLAN, fEthType, fARPOp, fARPTPA, fEthSrc, fIPProto, fICMP6T, fNDTgt}, Next: []uint8{IntTransient}},
	{Bridge: topology.BrInt, ID: IntTransient, Name: "TRANSIENT", App: AppL2, Also: []App{AppDHCP}, Miss: MissController,
		Fields: []FieldID{fVLAN, fEthDst}, Next: []uint8{IntBaseIngress}},
	{Bridge: topology.BrInt, ID: IntBaseEgress, Name: "BASE_EGRESS", App: AppFirewall, Miss: MissDrop,
		Fields: []FieldID{fRegPort, fEthType, fEthSrc, fARPSPA, fIPSrc, fIPProto, fUDPSrc, fUDPDst, fIPv6Src, fICMP6T, fNDTgt},
		Next:   []uint8{IntARPResponder, IntRulesEgress, IntAcceptedEgress}},
	{Bridge: topology.BrInt, ID: IntRulesEgress, Name: "RULES_EGRESS", App: AppFirewall, Miss: MissDrop,
		Fields: fRules, Next: []uint8{IntAcceptedEgress}},
	{Bridge: topology.BrInt, ID: IntAcceptedEgress, Name: "ACCEPTED_EGRESS", App: AppFirewall, Miss: MissGoto, MissNext: IntTransient,
		Fields: []FieldID{fEthType, fCTState}, Next: []uint8{IntTransient}},
	{Bridge: topology.BrInt, ID: IntBaseIngress, Name: "BASE_INGRESS", App: AppFirewall, Miss: MissDrop,
		Fields: []FieldID{fRegZone, fEthType, fIPProto, fUDPSrc, fUDPDst, fCTState, fICMP6T}, Next: []uint8{IntRulesIngress, IntDeliver}},
	{Bridge: topology.BrInt, ID: IntRulesIngress, Name: "RULES_INGRESS", App: AppFirewall, Miss: MissDrop,
		Fields: fRules, Next: []uint8{IntAcceptedIngress}},
	{Bridge: topology.BrInt, ID: IntAcceptedIngress, Name: "ACCEPTED_INGRESS", App: AppFirewall, Miss: MissGoto, MissNext: IntDeliver,
		Fields: []FieldID{fEthType, fCTState}, Next: []uint8{IntDeliver}},
	{Bridge: topology.BrInt, ID: IntDHCPv4, Name: "DHCP_IPV4", App: AppDHCP, Miss: MissDrop,
		Fields: []FieldID{fIPProto, fUDPSrc, fUDPDst}},
	{Bridge: topology.BrInt, ID: IntDHCPv6, Name: "DHCP_IPV6", App: AppDHCP, Miss: MissDrop,
		Fields: []FieldID{fIPProto, fUDPSrc, fUDPDst}},
	{Bridge: topology.BrInt, ID: IntDeliver, Name: "DELIVER", App: AppFirewall, Miss: MissDrop,
		Fields: []FieldID{fRegPort, fVLAN}},

	{Bridge: topology.BrTun, ID: TunClassifier, Name: "CLASSIFIER", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fInPort}, Next: []uint8{TunDVRProcess, TunVXLANToLV}},
	{Bridge: topology.BrTun, ID: TunDVRProcess, Name: "DVR_PROCESS", App: AppDVR, Miss: MissGoto, MissNext: TunPatchLVToTun,
		Fields: []FieldID{fVLAN, fEthSrc, fEthDst}, Next: []uint8{TunPatchLVToTun}},
	{Bridge: topology.BrTun, ID: TunPatchLVToTun, Name: "PATCH_LV_TO_TUN", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fEthDst}, Next: []uint8{TunUcastToTun, TunFloodToTun}},
	{Bridge: topology.BrTun, ID: TunVXLANToLV, Name: "VXLAN_TUN_TO_LV", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fTunID}},
	{Bridge: topology.BrTun, ID: TunUcastToTun, Name: "UCAST_TO_TUN", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fVLAN, fEthDst}},
	{Bridge: topology.BrTun, ID: TunFloodToTun, Name: "FLOOD_TO_TUN", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fVLAN}},

	{Bridge: topology.BrEx, ID: ExPhysical, Name: "PHYSICAL", App: AppL2, Miss: MissDrop,
		Fields: []FieldID{fInPort}, Next: []uint8{ExDVRProcessPhysical}},
	{Bridge: topology.BrEx, ID: ExDVRProcessPhysical, Name: "DVR_PROCESS_PHYSICAL", App: AppDVR, Miss: MissGoto, MissNext: ExToPhysical,
		Fields: []FieldID{fVLAN, fEthSrc, fEthDst}, Next: []uint8{ExToPhysical}},
	{Bridge: topology.BrEx, ID: ExToPhysical, Name: "TO_PHYSICAL", App: AppL2, Miss: MissDrop},
}

// Tables returns the declared tables of bridge b, in table order.
func Tables(b topology.Bridge) []Table {
	var out []Table
	for _, t := range pipeline {
		if t.Bridge == b {
			out = append(out, t)
		}
	}
	return out
}

// TableOf returns the declaration of table id on bridge b.
func TableOf(b topology.Bridge, id uint8) (Table, bool) {
	for _, t := range pipeline {
		if t.Bridge == b && t.ID == id {
			return t, true
		}
	}
	return Table{}, false
}

// TableNames maps table numbers of bridge b to their names, for rendering flows as
// `ovs-ofctl --names` would.
func TableNames(b topology.Bridge) ofproto.TableNames {
	names := ofproto.TableNames{}
	for _, t := range Tables(b) {
		names[t.ID] = t.Name
	}
	return names
}

// missFlows builds the table-miss flow of every table of bridge b from its declaration.
func missFlows(b topology.Bridge) []ofproto.Flow {
	var out []ofproto.Flow
	for _, t := range Tables(b) {
		f := ofproto.Flow{Table: t.ID, Priority: PrioMiss, Cookie: Cookie(AppMiss)}
		switch t.Miss {
		case MissGoto:
			f.Goto, f.HasGoto = t.MissNext, true
		case MissController:
			f.Meter = MeterController
			f.Actions = []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}
		}
		out = append(out, f)
	}
	return out
}

// Check verifies that flow f of bridge b obeys its table's declaration: the table exists,
// the flow matches only declared fields (prerequisite fields such as eth_type aside), its
// goto targets a declared next table, and its cookie names the table's owner (or the miss
// app for priority-0 flows with an empty match).
func Check(b topology.Bridge, f *ofproto.Flow) error {
	t, ok := TableOf(b, f.Table)
	if !ok {
		return fmt.Errorf("%s: flow in undeclared table %d: %s", b, f.Table, f)
	}
	app, ours := CookieApp(f.Cookie)
	if !ours {
		return fmt.Errorf("%s table %s: cookie %#x is not dvrflow's: %s", b, t.Name, f.Cookie, f)
	}
	isMiss := f.Priority == PrioMiss && len(f.Match) == 0
	switch {
	case isMiss && app != AppMiss:
		return fmt.Errorf("%s table %s: miss flow written by %s, not built from the declaration", b, t.Name, app)
	case !isMiss && app != t.App && !slices.Contains(t.Also, app):
		return fmt.Errorf("%s table %s is owned by %s, flow written by %s: %s", b, t.Name, t.App, app, f)
	}
	for _, fl := range f.Match {
		id := FieldID{fl.Class, fl.Type}
		if id == fEthType && !slices.Contains(t.Fields, id) {
			continue // a prerequisite of the declared fields (arp_*)
		}
		if !slices.Contains(t.Fields, id) {
			return fmt.Errorf("%s table %s: match on undeclared field %#04x:%d: %s", b, t.Name, fl.Class, fl.Type, f)
		}
	}
	if f.HasGoto && !isMiss {
		okNext := false
		for _, n := range t.Next {
			okNext = okNext || n == f.Goto
		}
		if !okNext {
			return fmt.Errorf("%s table %s: goto undeclared next table %d: %s", b, t.Name, f.Goto, f)
		}
	}
	return nil
}
