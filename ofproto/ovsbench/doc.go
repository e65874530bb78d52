// Package ovsbench holds the benchmark that pushes a large flow set into a real Open vSwitch
// bridge with ofproto's encoders (one ONF bundle over the bridge's management socket) and
// times `ovs-ofctl -O OpenFlow13 --bundle add-flows` of the identical flow set in the same
// run. It needs root and Open vSwitch, so it only builds with the integration tag:
//
//	go test -tags integration -run XXX -bench . -benchtime 3x ./ofproto/ovsbench
//
// OVSBENCH_FLOWS sets the number of flows (default 100000).
package ovsbench
