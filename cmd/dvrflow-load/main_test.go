package main

import (
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"--hosts", "50", "--json-out", "x.json"},
		env(map[string]string{"DVRFLOW_TOKEN": "tok", "DVRFLOW_HOSTS": "70", "DVRFLOW_ROUTERS": "10", "DVRFLOW_NETWORKS": "40"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.opt.Hosts != 50 || c.client.Token != "tok" || c.opt.Routers != 10 || c.opt.Networks != 40 || c.jsonOut != "x.json" || c.opt.SNATHosts != 10 {
		t.Fatalf("config %+v", c)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--routers", "3000"}, nil, "routers"},
		{[]string{"--batch-size", "-5"}, nil, "batch size"},
		{nil, map[string]string{"DVRFLOW_HOSTS": "many"}, "DVRFLOW_HOSTS"},
		{[]string{"extra"}, nil, "unexpected"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
	} {
		if _, err := parseFlags(tc.args, env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%v, %v) = %v, want an error about %q", tc.args, tc.env, err, tc.want)
		}
	}
}
