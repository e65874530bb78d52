package ovsinst

import (
	"slices"
	"testing"
)

func TestOfctlArgs(t *testing.T) {
	const sock = "/d/br-int.mgmt"
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"dump-flows"}, []string{"-O", "OpenFlow13", "dump-flows", "unix:" + sock}},
		{[]string{"--no-stats", "dump-flows", "table=0"}, []string{"-O", "OpenFlow13", "--no-stats", "dump-flows", "unix:" + sock, "table=0"}},
		{[]string{"add-flow", "table=0,actions=drop"}, []string{"-O", "OpenFlow13", "add-flow", "unix:" + sock, "table=0,actions=drop"}},
		{[]string{"add-flows", Switch, "-"}, []string{"-O", "OpenFlow13", "add-flows", "unix:" + sock, "-"}},
	}
	for _, c := range cases {
		got, err := ofctlArgs(sock, c.args)
		if err != nil {
			t.Fatalf("ofctlArgs(%q): %v", c.args, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ofctlArgs(%q) = %q, want %q", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{nil, {"--no-stats"}, {"add-flows", Switch, Switch}} {
		if got, err := ofctlArgs(sock, bad); err == nil {
			t.Errorf("ofctlArgs(%q) = %q, want error", bad, got)
		}
	}
}
