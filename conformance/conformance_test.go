package conformance

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestReadSkipList(t *testing.T) {
	skips, err := ReadSkipList(strings.NewReader(`# header
tempest\.api\.network\.test_ports\.PortsIpV6TestJSON  # IPv6 (issue 16)

neutron_tempest_plugin\.api\.test_qos # qos: extension not listed
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 2 || skips[0].Line != 2 || skips[0].Cause != "IPv6 (issue 16)" || skips[1].Line != 4 {
		t.Fatalf("skips = %+v", skips)
	}
	id := "tempest.api.network.test_ports.PortsIpV6TestJSON.test_create_port_in_allowed_allocation_pools[id-0435f278-40ae-48cb-a404-b8a087bc09b1]"
	if sk := Skipped(skips, id); sk == nil || sk.Line != 2 {
		t.Fatalf("Skipped(%s) = %+v", id, sk)
	}
	if sk := Skipped(skips, "tempest.api.network.test_ports.PortsTestJSON.test_list_ports"); sk != nil {
		t.Fatalf("an unlisted test is skipped by line %d", sk.Line)
	}
	for _, bad := range []string{"tempest\\.api\\.x\n", "tempest\\.api\\.x #  \n", "tempest(\\.api # unbalanced\n"} {
		if _, err := ReadSkipList(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadSkipList(%q) accepted it", bad)
		}
	}
}

// The repository's skip list parses, every line names a cause, and stestr reads the same
// regular expressions (no Go-only syntax).
func TestRepositorySkipList(t *testing.T) {
	raw, err := os.ReadFile("skip-list.txt")
	if err != nil {
		t.Fatal(err)
	}
	skips, err := ReadSkipList(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	pythonOnly := regexp.MustCompile(`\\[pPz]|\(\?P?<`)
	for _, sk := range skips {
		if pythonOnly.MatchString(sk.Regex.String()) {
			t.Errorf("line %d: %s is read differently by Go and Python", sk.Line, sk.Regex)
		}
	}
}

func TestReadResults(t *testing.T) {
	res, err := ReadResults(strings.NewReader(`test,status,start_time,stop_time
tempest.api.network.test_networks.NetworksTest.test_list_networks[id-1],success,2026-12-07 02:00:00+00:00,2026-12-07 02:00:01+00:00
tempest.api.network.test_networks.NetworksTest.test_update[id-2],failure,,
neutron_tempest_plugin.api.test_qos.QosTest.test_x[id-3],skip,,
setUpClass (neutron_tempest_plugin.api.test_trunk.TrunkTest),fail,,
tempest.api.network.test_networks.NetworksTest.test_update[id-2],success,,
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{"tempest.api.network.test_networks.NetworksTest.test_list_networks[id-1]", StatusPass},
		{"tempest.api.network.test_networks.NetworksTest.test_update[id-2]", StatusPass},
		{"neutron_tempest_plugin.api.test_qos.QosTest.test_x[id-3]", StatusSkip},
		{"setUpClass (neutron_tempest_plugin.api.test_trunk.TrunkTest)", StatusFail},
	}
	if len(res) != len(want) {
		t.Fatalf("results = %+v", res)
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	if _, err := ReadResults(strings.NewReader("a,b\n1,2\n")); err == nil {
		t.Error("ReadResults accepted a CSV without test,status")
	}
}

func TestSummarize(t *testing.T) {
	skips, err := ReadSkipList(strings.NewReader("test_ipv6 # IPv6\ntest_qos # qos\ntest_gone # a removed test\n"))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{
		"tempest.api.network.test_a.T.test_ok",
		"tempest.api.network.test_a.T.test_bad",
		"tempest.api.network.test_a.T.test_ipv6_x",
		"neutron_tempest_plugin.api.test_qos.T.test_1",
		"neutron_tempest_plugin.api.test_qos.T.test_2",
		"neutron_tempest_plugin.api.test_b.T.test_skipped",
		"neutron_tempest_plugin.api.test_d.D.test_1[id-1]",
		"neutron_tempest_plugin.api.test_d.D.test_2[id-2,negative]",
		"tempest.api.network.test_a.T.test_lost",
	}
	results := []Result{
		{"tempest.api.network.test_a.T.test_ok", StatusPass},
		{"tempest.api.network.test_a.T.test_bad", StatusFail},
		{"neutron_tempest_plugin.api.test_b.T.test_skipped", StatusSkip},
		{"setUpClass (neutron_tempest_plugin.api.test_c.T)", StatusFail},
		{"setUpClass (neutron_tempest_plugin.api.test_d.D)", StatusSkip},
	}
	rep := Summarize(all, results, skips)
	if c := *rep.Counts["tempest"]; c != (Count{Pass: 1, Fail: 2, Listed: 1}) {
		t.Errorf("tempest = %+v", c)
	}
	if c := *rep.Counts["neutron-tempest-plugin"]; c != (Count{Skip: 3, Listed: 2}) {
		t.Errorf("plugin = %+v", c)
	}
	if rep.Causes["IPv6"] != 1 || rep.Causes["qos"] != 2 {
		t.Errorf("causes = %v", rep.Causes)
	}
	if !slices.Equal(rep.Failed, []string{"setUpClass (neutron_tempest_plugin.api.test_c.T)",
		"tempest.api.network.test_a.T.test_bad", "tempest.api.network.test_a.T.test_lost (no result)"}) {
		t.Errorf("failed = %v", rep.Failed)
	}
	if len(rep.Unused) != 1 || rep.Unused[0].Cause != "a removed test" {
		t.Errorf("unused = %+v", rep.Unused)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"tempest ", "     2  qos", "3 failed tests are not on the skip list", "line 3 matches no test"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
}

func TestTempestConf(t *testing.T) {
	conf := TempestConf(Cloud{KeystoneURL: "http://127.0.0.1:5000/v3", Region: "RegionOne", AdminUser: "admin",
		AdminPassword: "pw", AdminProject: "admin", Domain: "Default", PublicNetworkID: "net-id",
		PublicNetwork: "public", Extensions: []string{"router", "security-group"}, LogFile: "/tmp/t.log"})
	for _, s := range []string{"uri_v3 = http://127.0.0.1:5000/v3", "public_network_id = net-id",
		"api_extensions = router,security-group", "nova = false", "use_dynamic_credentials = true",
		"ipv6 = true", "ipv6_subnet_attributes = true", "project_network_v6_cidr = 2001:db8::/48", "project_network_v6_mask_bits = 64"} {
		if !strings.Contains(conf, s) {
			t.Errorf("tempest.conf lacks %q", s)
		}
	}
}
