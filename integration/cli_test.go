//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// testOpenStackCLI runs the openstack CLI commands the demo prints (scenario.OpenStack),
// with Debian's python3-openstackclient, against the bed's API: each must succeed and
// show the seed's objects. Before: the demo printed `openstack --os-url ... --os-token`,
// which the client rejects ("'--os-url ...' is not an openstack command").
func testOpenStackCLI(t *testing.T, d *dvrBed) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("python3-openstackclient is not installed (make deps installs it)")
	}
	cli := d.s.OpenStack()
	want := map[string]string{
		"network list":              "net1",
		"port list --host compute1": d.topo.VMs["VM1"].MACAddress,
		"router show R1":            d.topo.Router.ID,
		"floating ip list":          "172.24.4.5",
	}
	for _, argv := range cli.Commands {
		key := strings.Join(argv[1:], " ")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), cli.Env...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			continue
		}
		if w := want[key]; w == "" || !strings.Contains(string(out), w) {
			t.Errorf("%s: output lacks %q:\n%s", strings.Join(argv, " "), w, out)
		}
	}
}
