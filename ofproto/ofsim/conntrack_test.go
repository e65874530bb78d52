package ofsim

import (
	"os"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
)

// The fake switch stores and dumps the connection tracking, conjunction and register
// flows of a stateful firewall exactly as Open vSwitch does: the ct/conjunction lines of
// ofproto's fixtures (cookies 0x30-0x3f), installed here, dump as OVS 3.1 printed them.
func TestStoresAndDumpsFirewallFlowsLikeOVS(t *testing.T) {
	read := func(name string) []string {
		b, err := os.ReadFile("../testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "cookie=0x3") {
				out = append(out, l)
			}
		}
		return out
	}
	in, want := read("flows.txt"), read("dump-flows.txt")
	if len(in) < 7 || len(in) != len(want) {
		t.Fatalf("fixtures: %d flows, %d dumped", len(in), len(want))
	}
	s := sim(t, Config{NumTables: 20})
	for _, l := range in {
		f, err := ofproto.ParseFlow(l)
		if err != nil {
			t.Fatal(err)
		}
		add(t, s, f)
	}
	if got := flowsText(t, s); sortedLines(got) != sortedLines(strings.Join(want, "\n")) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
