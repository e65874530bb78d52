package metrics

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
)

// TestBridgeLabelCached: BridgeOf is asked once per datapath and TTL, not per packet-in, and
// a host registering shows in the labels once the cached label expires.
func TestBridgeLabelCached(t *testing.T) {
	var calls atomic.Int64
	var br atomic.Value
	br.Store("")
	m := New(zaptest.NewLogger(t), Sources{BridgeOf: func(dpid uint64) string {
		calls.Add(1)
		if dpid != 5 {
			t.Errorf("BridgeOf(%d)", dpid)
		}
		return br.Load().(string)
	}})
	for range 100 {
		m.PacketIn(5, apps.IntARPResponder, false)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("BridgeOf called %d times for 100 packet-ins", n)
	}
	br.Store("br-int") // the host registers: the cached "unknown" stays until it expires
	m.PacketIn(5, apps.IntARPResponder, false)
	if got := m.bridge(5); got != "unknown" {
		t.Fatalf("label %q before expiry", got)
	}
	for dpid, l := range m.bridges.labels { // as if bridgeTTL had passed
		l.until = 0
		m.bridges.labels[dpid] = l
	}
	m.PacketIn(5, apps.IntARPResponder, false)
	m.PacketIn(5, 200, false)
	if got := m.bridge(5); got != "br-int" {
		t.Fatalf("label %q after expiry", got)
	}
	wantLines(t, scrape(t, m),
		`dvrflow_packet_ins_total{table="21"} 101`,
		`dvrflow_packet_ins_total{table="ARP_RESPONDER"} 1`,
		`dvrflow_packet_ins_total{table="200"} 1`,
	)
}

func TestPacketInNoAllocs(t *testing.T) {
	m := New(zaptest.NewLogger(t), Sources{BridgeOf: func(uint64) string { return "br-int" }})
	m.PacketIn(1, apps.IntTransient, false)
	if n := testing.AllocsPerRun(1000, func() { m.PacketIn(1, apps.IntTransient, false) }); n != 0 {
		t.Fatalf("%v allocations per packet-in", n)
	}
}
