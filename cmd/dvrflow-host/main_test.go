package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var base = map[string]string{
	"DVRFLOW_HOST": "compute1", "DVRFLOW_API": "http://10.0.0.254:9696", "DVRFLOW_TOKEN": "secret",
	"DVRFLOW_TUNNEL_IP": "192.168.248.1", "DVRFLOW_CONTROLLER": "tcp:10.0.0.254:6653,tcp:10.0.0.253:6653",
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestParseRunFromEnvironment(t *testing.T) {
	rc, err := parseRun(nil, env(with(base, "DVRFLOW_MODE", "dvr_snat", "DVRFLOW_DATAPATH_TYPE", "netdev",
		"DVRFLOW_POLL_TIMEOUT", "5s", "DVRFLOW_OVSDB", "tcp:127.0.0.1:6640", "DVRFLOW_HOST_NETNS", "ovs-h1")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a := rc.agent
	if a.Host != "compute1" || !slices.Equal(a.APIs, []string{"http://10.0.0.254:9696"}) || a.Token != "secret" || a.TunnelIP != "192.168.248.1" ||
		a.Mode != "dvr_snat" || a.DatapathType != "netdev" || a.PollTimeout != 5*time.Second ||
		!slices.Equal(a.Controllers, []string{"tcp:10.0.0.254:6653", "tcp:10.0.0.253:6653"}) ||
		rc.ovsdb != "tcp:127.0.0.1:6640" || rc.hostNetns != "ovs-h1" || a.ExtBridge != "br-ex" {
		t.Fatalf("got %+v", rc)
	}
}

func TestParseRunFlagsWin(t *testing.T) {
	rc, err := parseRun([]string{"--host", "compute9", "--controller", "tcp:1.2.3.4:6653", "--mode=dvr"},
		env(with(base, "DVRFLOW_MODE", "dvr_snat")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rc.agent.Host != "compute9" || rc.agent.Mode != "dvr" || !slices.Equal(rc.agent.Controllers, []string{"tcp:1.2.3.4:6653"}) {
		t.Fatalf("got %+v", rc.agent)
	}
}

// --api takes every dvrflowd's URL: repeated, comma separated, or in DVRFLOW_API.
func TestParseRunSeveralAPIs(t *testing.T) {
	rc, err := parseRun([]string{"--api", "http://10.0.0.1:9696", "--api", "http://10.0.0.2:9696, https://ctl3:9696"}, env(base), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://10.0.0.1:9696", "http://10.0.0.2:9696", "https://ctl3:9696"}; !slices.Equal(rc.agent.APIs, want) {
		t.Fatalf("flags: APIs %v, want %v", rc.agent.APIs, want)
	}
	rc, err = parseRun(nil, env(with(base, "DVRFLOW_API", "http://10.0.0.1:9696,http://10.0.0.2:9696")), io.Discard)
	if err != nil || !slices.Equal(rc.agent.APIs, []string{"http://10.0.0.1:9696", "http://10.0.0.2:9696"}) {
		t.Fatalf("DVRFLOW_API: %v %+v", err, rc)
	}
}

// The variable of older helpers still works, after DVRFLOW_CONTROLLER and the flag.
func TestParseRunLegacyControllers(t *testing.T) {
	old := with(base, "DVRFLOW_CONTROLLER", "", "DVRFLOW_CONTROLLERS", "tcp:10.0.0.1:6653,tcp:10.0.0.2:6653")
	rc, err := parseRun(nil, env(old), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rc.agent.Controllers, []string{"tcp:10.0.0.1:6653", "tcp:10.0.0.2:6653"}) {
		t.Fatalf("controllers %v", rc.agent.Controllers)
	}
	rc, err = parseRun(nil, env(with(old, "DVRFLOW_CONTROLLER", "tcp:10.0.0.3:6653")), io.Discard)
	if err != nil || !slices.Equal(rc.agent.Controllers, []string{"tcp:10.0.0.3:6653"}) {
		t.Fatalf("DVRFLOW_CONTROLLER did not win over DVRFLOW_CONTROLLERS: %v %v", err, rc)
	}
}

func TestParseRunErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, with(base, "DVRFLOW_POLL_TIMEOUT", "soon"), `DVRFLOW_POLL_TIMEOUT="soon"`},
		{nil, with(base, "DVRFLOW_CONTROLLER", "tcp:a,,tcp:b"), "DVRFLOW_CONTROLLER"},
		{nil, with(base, "DVRFLOW_MODE", "central"), `mode "central"`},
		{nil, with(base, "DVRFLOW_HOST", ""), "empty host"},
		{nil, with(base, "DVRFLOW_CONTROLLER", ""), "no controller"},
		{nil, with(base, "DVRFLOW_API", ""), "no API URL"},
		{nil, with(base, "DVRFLOW_API", "http://10.0.0.1:9696,,http://10.0.0.2:9696"), "DVRFLOW_API"},
		{nil, with(base, "DVRFLOW_API", "http://10.0.0.1"), `API URL "http://10.0.0.1": want http(s)://host:port`},
		{[]string{"--api", "http://10.0.0.1:9696", "--api", "http://10.0.0.1:9696/"}, base, `API URL "http://10.0.0.1:9696/" given twice`},
		{[]string{"extra"}, base, "unexpected arguments"},
	} {
		if _, err := parseRun(c.args, env(c.env), io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

func TestParseRunMetadata(t *testing.T) {
	rc, err := parseRun(nil, env(base), io.Discard)
	if err != nil || rc.metadata.NovaURL != "" {
		t.Fatalf("no metadata flags: %v, %+v; want no proxy", err, rc)
	}
	rc, err = parseRun([]string{"--netns-prefix", "bed-h1-"}, env(with(base, "DVRFLOW_METADATA_URL", "http://nova:8775",
		"DVRFLOW_METADATA_SECRET", "s3cret")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m := rc.metadata; m.NovaURL != "http://nova:8775" || m.Secret != "s3cret" || m.NamePrefix != "bed-h1-" {
		t.Errorf("metadata %+v", m)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err = parseRun([]string{"--metadata-url", "https://nova.example:8775", "--metadata-secret-file", file}, env(base), io.Discard)
	if err != nil || rc.metadata.Secret != "from-file" {
		t.Errorf("secret file: %v, secret %q", err, rc.metadata.Secret)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{with(base, "DVRFLOW_METADATA_URL", "nova:8775"), `Nova metadata URL "nova:8775"`},
		{with(base, "DVRFLOW_METADATA_URL", "http://nova:8775", "DVRFLOW_METADATA_SECRET", "a",
			"DVRFLOW_METADATA_SECRET_FILE", file), "both --metadata-secret and --metadata-secret-file"},
		{with(base, "DVRFLOW_METADATA_URL", "http://nova:8775", "DVRFLOW_METADATA_SECRET_FILE", file+".missing"), "metadata secret"},
	} {
		if _, err := parseRun(nil, env(c.env), io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.env, err, c.want)
		}
	}
}

func TestRunHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parseRun([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, v := range []string{"DVRFLOW_HOST", "DVRFLOW_API", "DVRFLOW_TOKEN", "DVRFLOW_TUNNEL_IP", "DVRFLOW_MODE",
		"DVRFLOW_CONTROLLER", "DVRFLOW_DATAPATH_TYPE", "DVRFLOW_OVSDB", "DVRFLOW_EXTERNAL_BRIDGE", "DVRFLOW_EXTERNAL_UPLINK",
		"DVRFLOW_NETNS_PREFIX", "DVRFLOW_HOST_NETNS", "DVRFLOW_POLL_TIMEOUT", "DVRFLOW_METADATA_URL",
		"DVRFLOW_METADATA_SECRET", "DVRFLOW_METADATA_SECRET_FILE", "dvrflow-host plug"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help lacks %s:\n%s", v, out.String())
		}
	}
}
