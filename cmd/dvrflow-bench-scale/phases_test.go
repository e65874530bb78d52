package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// switchFlows are the flows that switch port no both ways, as the l2 app's egress (table
// 0, in_port) and ingress (table 60, output) of a local port.
func switchFlows(no uint32) []ofproto.Flow {
	return []ofproto.Flow{
		{Table: 0, Priority: 10, Match: ofproto.Match{ofproto.InPort(no)}, Goto: 60, HasGoto: true},
		{Table: 60, Priority: 10, Match: ofproto.Match{ofproto.VLANVID(uint16(no))},
			Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: no}}},
	}
}

var benchPorts = []ofsim.Port{{No: 1, Name: "patch-tun"}, {No: 10, Name: "tapvm"}, {No: 11, Name: "tqr-a"}, {No: 12, Name: "tqr-b"}}

// A port bound on a host that gains a qrouter: the controller switches the VM's tap, then
// (after the helper plugs the qrouter's qr- links) the qr- ports, in waves, egress first.
// The change is not over before the last wave: stopping earlier made the benchmark count
// those flows for the next port, on a host outside its set (issue 17).
func TestAwaitSwitchedWaitsForEveryPluggedPort(t *testing.T) {
	waves := [][]ofproto.Flow{
		switchFlows(10),
		append(switchFlows(10), switchFlows(11)[0], switchFlows(12)[0]), // qr- egress only
		slices.Concat(switchFlows(10), switchFlows(11), switchFlows(12)),
	}
	const readsPerWave = 3
	calls := 0
	state := func() ([]ofsim.Port, []ofproto.Flow, error) {
		calls++
		return benchPorts, waves[min((calls-1)/readsPerWave, len(waves)-1)], nil
	}
	if err := awaitSwitched(context.Background(), state, []string{"tapvm", "tqr-a", "tqr-b"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if last := readsPerWave*(len(waves)-1) + 1; calls != last {
		t.Fatalf("returned after %d reads, want %d (the first read of the last wave)", calls, last)
	}
}

func TestAwaitSwitchedNamesWhatNeverGotFlows(t *testing.T) {
	state := func() ([]ofsim.Port, []ofproto.Flow, error) {
		return benchPorts, append(switchFlows(10), switchFlows(11)[0]), nil
	}
	err := awaitSwitched(context.Background(), state, []string{"tapvm", "tqr-a", "tqr-b"}, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "tqr-a, tqr-b not switched") {
		t.Fatalf("err = %v, want tqr-a and tqr-b named", err)
	}
}

func TestUnswitched(t *testing.T) {
	flows := slices.Concat(switchFlows(10), switchFlows(11)[:1], switchFlows(12)[1:])
	got := unswitched(benchPorts, flows, []string{"tapvm", "tqr-a", "tqr-b", "tapgone"})
	if want := []string{"tqr-a", "tqr-b", "tapgone"}; !slices.Equal(got, want) {
		t.Fatalf("unswitched = %v, want %v (in_port only, output only, not on the bridge)", got, want)
	}
}
