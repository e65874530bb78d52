package main

import (
	"testing"
	"time"
)

func TestParseFlagsRefusesBadInput(t *testing.T) {
	c, err := parseFlags([]string{"-hosts", "50", "-ports", "7", "--", "--meter-rate", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if c.topo.Hosts != 50 || c.ports != 7 || c.topo.VMsPerHost != 20 || len(c.extraArgs) != 2 {
		t.Fatalf("config %+v", c)
	}
	for _, bad := range [][]string{
		{"-hosts", "0"}, {"-networks", "-1"}, {"-ports", "-2"}, {"-fip-percent", "101"},
		{"-rate", "-1"}, {"-log-level", "loud"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p50, p99, maxd := quantiles(ds)
	if p50 != 51*time.Millisecond || p99 != 100*time.Millisecond || maxd != 100*time.Millisecond {
		t.Fatalf("p50 %v p99 %v max %v", p50, p99, maxd)
	}
	if a, b, c := quantiles(nil); a != 0 || b != 0 || c != 0 {
		t.Fatal("quantiles of nothing")
	}
}

func TestControllersFlag(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil || c.controllers != 1 {
		t.Fatalf("default: %+v, %v; want 1 controller", c, err)
	}
	if c, err = parseFlags([]string{"-controllers", "3"}); err != nil || c.controllers != 3 {
		t.Fatalf("-controllers 3: %v", err)
	}
	for _, bad := range []string{"0", "-1"} {
		if _, err := parseFlags([]string{"-controllers", bad}); err == nil {
			t.Errorf("-controllers %s accepted", bad)
		}
	}
}
