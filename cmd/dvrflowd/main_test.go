package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# comment\ntok-a proj-a\n\ntok-b proj-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--project-tokens", tokens, "--vni-range", "5000:6000"},
		env(map[string]string{"DVRFLOW_DATABASE_URL": "postgres://x/y", "DVRFLOW_AUTH_TOKEN": "adm"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.AdminToken != "adm" || cfg.DatabaseURL != "postgres://x/y" || cfg.Store.VNIMin != 5000 || cfg.Store.VNIMax != 6000 ||
		cfg.API.ProjectTokens["tok-b"] != "proj-b" || len(cfg.API.ProjectTokens) != 2 || cfg.Store.GlobalPhysnetMTU != 1500 {
		t.Fatalf("config %+v", cfg)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--global-physnet-mtu", "9000"}, nil},
		{nil, map[string]string{"DVRFLOW_GLOBAL_PHYSNET_MTU": "9000"}},
	} {
		e := map[string]string{"DVRFLOW_DB_URL": "postgres://x", "DVRFLOW_NOAUTH": "true"}
		for k, v := range tc.env {
			e[k] = v
		}
		cfg, err := parseFlags(tc.args, env(e))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Store.MaxMTU("vxlan"); cfg.Store.GlobalPhysnetMTU != 9000 || got != 8950 {
			t.Fatalf("%v %v: global physnet MTU %d, VXLAN MTU %d; want 9000 and 8950", tc.args, tc.env, cfg.Store.GlobalPhysnetMTU, got)
		}
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "db-url"},
		{[]string{"--db-url", "postgres://x"}, nil, "noauth"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--vni-range", "7:3"}, nil, "vni range"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--vni-range", "x"}, nil, "vni range"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--dvr-base-mac", "fa:16:3e:00:00:00"}, nil, "must differ"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--base-mac", "zz"}, nil, "base-mac"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--log-level", "loud"}, nil, "log-level"},
		{[]string{"--db-url", "postgres://x", "--noauth", "extra"}, nil, "unexpected"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--project-tokens", "/nonexistent"}, nil, "project tokens"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--log-format", "xml"}, nil, "log-format"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--global-physnet-mtu", "100"}, nil, "global physnet MTU 100"},
		{[]string{"--db-url", "postgres://x", "--noauth", "--global-physnet-mtu", "70000"}, nil, "global physnet MTU 70000"},
		{[]string{"--db-url", "postgres://x", "--noauth"}, map[string]string{"DVRFLOW_GLOBAL_PHYSNET_MTU": "big"}, "DVRFLOW_GLOBAL_PHYSNET_MTU"},
		{[]string{"--db-url", "postgres://x", "--noauth"}, map[string]string{"DVRFLOW_PACKET_IN_RATE": "fast"}, "DVRFLOW_PACKET_IN_RATE"},
		{[]string{"--db-url", "postgres://x"}, map[string]string{"DVRFLOW_NOAUTH": "false"}, "noauth"},
	} {
		_, err := parseFlags(tc.args, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%v) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestDHCPFlags(t *testing.T) {
	env := func(k string) string { return map[string]string{"DVRFLOW_DNS_DOMAIN": "cloud.example"}[k] }
	cfg, err := parseFlags([]string{"--noauth", "--db-url", "postgres://x", "--dhcp-lease-duration", "10m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.DHCP.LeaseTime != 10*time.Minute || cfg.Engine.DHCP.Domain != "cloud.example" {
		t.Fatalf("DHCP config %+v", cfg.Engine.DHCP)
	}
	cfg, err = parseFlags([]string{"--noauth", "--db-url", "postgres://x"}, func(string) string { return "" })
	if err != nil || cfg.Engine.DHCP.LeaseTime != 24*time.Hour || cfg.Engine.DHCP.Domain != "openstacklocal" {
		t.Fatalf("DHCP defaults %+v, %v: want Neutron's 86400 s and openstacklocal", cfg.Engine.DHCP, err)
	}
	if _, err := parseFlags([]string{"--noauth", "--db-url", "postgres://x", "--dhcp-lease-duration", "30s"}, env); err == nil {
		t.Fatal("a 30 s lease accepted")
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"DVRFLOW_DB_URL":       "postgres://env/db",
		"DVRFLOW_NOAUTH":       "true",
		"DVRFLOW_LOG_LEVEL":    "debug",
		"DVRFLOW_LISTEN":       "127.0.0.1:1",
		"DVRFLOW_DEBUG_LISTEN": "127.0.0.1:6060",
		"DVRFLOW_LOG_FORMAT":   "console",
	}
	cfg, err := parseFlags([]string{"--listen", "127.0.0.1:2"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	// The command line wins over the environment.
	if cfg.DatabaseURL != "postgres://env/db" || !cfg.API.NoAuth || cfg.LogLevel.String() != "debug" ||
		cfg.Listen != "127.0.0.1:2" || cfg.DebugListen != "127.0.0.1:6060" || cfg.LogJSON {
		t.Fatalf("config %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--noauth", "--db-url", "postgres://x"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.LogJSON || cfg.DebugListen != "" {
		t.Fatalf("defaults: JSON logs and no debug listener, got %+v", cfg)
	}
}

func TestKeystoneFlags(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DVRFLOW_DB_URL":                 "postgres://x",
		"DVRFLOW_KEYSTONE_URL":           "http://keystone:5000",
		"DVRFLOW_KEYSTONE_USER":          "dvrflow",
		"DVRFLOW_KEYSTONE_PROJECT":       "service",
		"DVRFLOW_KEYSTONE_PASSWORD_FILE": pwFile,
		"DVRFLOW_KEYSTONE_TOKEN_CACHE":   "1m",
	}
	// Keystone alone is enough: no --auth-token, no --noauth.
	cfg, err := parseFlags(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Keystone
	if k.Password != "s3cret" || k.Username != "dvrflow" || k.Project != "service" || k.UserDomain != "Default" ||
		k.ProjectDomain != "Default" || k.CacheTime != time.Minute || cfg.API.Keystone == nil ||
		cfg.API.Keystone.AuthURL() != "http://keystone:5000/v3" {
		t.Fatalf("keystone config %+v", k)
	}
	cfg, err = parseFlags([]string{"--db-url", "postgres://x", "--noauth"}, func(string) string { return "" })
	if err != nil || cfg.API.Keystone != nil || cfg.Keystone.CacheTime != 5*time.Minute {
		t.Fatalf("without --keystone-url: validator %v, cache %s, %v; want none and keystonemiddleware's 300 s", cfg.API.Keystone, cfg.Keystone.CacheTime, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--keystone-user", "u"}, "need --keystone-url"},
		{[]string{"--keystone-url", "http://k/v3", "--keystone-user", "u", "--keystone-project", "p"}, "password"},
		{[]string{"--keystone-url", "k:5000", "--keystone-user", "u", "--keystone-password", "p", "--keystone-project", "p"}, "http://"},
		{[]string{"--keystone-url", "http://k/v3", "--keystone-user", "u", "--keystone-password", "p", "--keystone-password-file", pwFile}, "give one"},
		{[]string{"--keystone-url", "http://k/v3", "--keystone-user", "u", "--keystone-password", "p", "--keystone-project", "p", "--keystone-user-domain", ""}, "domains"},
	} {
		_, err := parseFlags(append([]string{"--db-url", "postgres://x"}, tc.args...), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%v) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestQuotaFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	base := map[string]string{"DVRFLOW_DB_URL": "postgres://x", "DVRFLOW_NOAUTH": "true"}
	cfg, err := parseFlags(nil, env(base))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"network": 100, "subnet": 100, "subnetpool": -1, "port": 500, "router": 10,
		"floatingip": 50, "security_group": 10, "security_group_rule": 100}
	for name, v := range want {
		if got := cfg.Store.QuotaDefaults[name]; got != v {
			t.Errorf("default quota of %s %d, want Neutron's %d", name, got, v)
		}
	}
	base["DVRFLOW_QUOTA_ROUTER"] = "3"
	cfg, err = parseFlags([]string{"--quota-network", "7", "--quota-security-group-rule", "-1"}, env(base))
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Store.QuotaDefaults; q["network"] != 7 || q["security_group_rule"] != -1 || q["router"] != 3 || q["port"] != 500 {
		t.Fatalf("quota defaults %v, want network 7, security_group_rule -1, router 3, port 500", q)
	}
	if _, err := parseFlags([]string{"--quota-port", "-2"}, env(base)); err == nil || !strings.Contains(err.Error(), "default quota of port -2") {
		t.Fatalf("--quota-port -2: %v, want the default quota refused", err)
	}
}

// The mastership lease is renewed by dvrflowd itself run as its lease keeper, told the
// database and the log settings; --lease-keeper=false renews in the process. --lease-max
// is at least --lease.
func TestLeaseKeeperFlags(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := parseFlags([]string{"--noauth", "--db-url", "postgres://x/db", "--log-level", "warn", "--log-format", "console",
		"--lease", "10s", "--lease-renew", "1s"}, env)
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Mastership.Keeper
	self, _ := os.Executable()
	if k == nil || k.Path != self || !slices.Equal(k.Args, []string{keeperArg, "--log-level", "warn", "--log-format", "console"}) ||
		!slices.Equal(k.Env, []string{keeperDBEnv + "=postgres://x/db"}) {
		t.Errorf("keeper %+v", k)
	}
	if cfg.Mastership.MaxLease != 10*time.Second {
		t.Errorf("--lease-max %s with --lease 10s, want raised to 10s", cfg.Mastership.MaxLease)
	}
	if cfg, err = parseFlags([]string{"--noauth", "--db-url", "postgres://x/db", "--lease-keeper=false"}, env); err != nil ||
		cfg.Mastership.Keeper != nil {
		t.Errorf("--lease-keeper=false: %v, keeper %+v", err, cfg.Mastership.Keeper)
	}
	if cfg, err = parseFlags([]string{"--noauth", "--db-url", "postgres://x/db", "--lease-max", "1s"}, env); err != nil ||
		cfg.Mastership.MaxLease != cfg.Mastership.Lease {
		t.Errorf("--lease-max 1s under the default --lease: %v, max lease %s", err, cfg.Mastership.MaxLease)
	}
}
