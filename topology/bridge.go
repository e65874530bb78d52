package topology

// Bridge names one of the OVS bridges of a host (br-int, br-tun, br-ex).
type Bridge string

// The bridges of every host. br-ex carries flat external and provider networks.
const (
	BrInt Bridge = "br-int"
	BrTun Bridge = "br-tun"
	BrEx  Bridge = "br-ex"
)

// Bridges lists every bridge the controller programs, in the order a host sets them up.
func Bridges() []Bridge { return []Bridge{BrInt, BrTun, BrEx} }
