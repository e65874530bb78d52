// Package systemd_test checks dvrflow's systemd units and their example environment files.
package systemd_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/internal/envflag"
)

var units = []struct {
	unit, env, binary string
	want              []string // directives the unit must have
}{
	{"dvrflowd.service", "dvrflowd.env", "dvrflowd", []string{
		"EnvironmentFile=/etc/dvrflow/dvrflowd.env", "ExecStart=/usr/local/bin/dvrflowd\n", "Restart=on-failure",
		"After=network-online.target postgresql.service", "DynamicUser=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
		"WantedBy=multi-user.target",
	}},
	{"dvrflow-host.service", "dvrflow-host.env", "dvrflow-host", []string{
		"EnvironmentFile=/etc/dvrflow/dvrflow-host.env", "ExecStart=/usr/local/bin/dvrflow-host run\n", "Restart=on-failure",
		"Requires=openvswitch-switch.service", "After=network-online.target openvswitch-switch.service",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN", "RestrictNamespaces=net mnt", "NoNewPrivileges=yes",
		"WantedBy=multi-user.target",
	}},
}

// build compiles the commands the units start, so that the verifier checks real
// executables and the example files are checked against their real flags.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../../cmd/dvrflowd", "../../cmd/dvrflow-host")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestUnitsVerify runs systemd-analyze verify on the units, with ExecStart and
// EnvironmentFile pointed at the built commands and the example files. Any complaint
// (an unknown or malformed directive is only a warning to systemd) fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: units not verified")
	}
	bin := build(t)
	dir := t.TempDir()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, u := range units {
		raw, err := os.ReadFile(u.unit)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		for _, w := range u.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q", u.unit, w)
			}
		}
		text = strings.ReplaceAll(text, "/usr/local/bin/", bin+"/")
		text = strings.ReplaceAll(text, "EnvironmentFile=/etc/dvrflow/", "EnvironmentFile="+here+"/")
		p := filepath.Join(dir, u.unit)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var out bytes.Buffer
	cmd := exec.Command(analyze, append([]string{"verify"}, paths...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	// Units this machine lacks (postgresql, openvswitch-switch) are not the units' fault, nor
	// what it says about the machine's own units (Debian's keystone.service orders itself
	// after itself: "keystone.service: Dependency After=keystone.service is dropped").
	var complaints []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" || regexp.MustCompile(`(postgresql|openvswitch-switch)\.service.*(not found|No such file)`).MatchString(l) {
			continue
		}
		if m := regexp.MustCompile(`^([\w@.-]+)\.service: `).FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[1], "dvrflow") {
			continue
		}
		complaints = append(complaints, l)
	}
	// It exits 1 for the missing units alone: an error with nothing else said is theirs.
	if len(complaints) > 0 || (err != nil && strings.TrimSpace(out.String()) == "") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(complaints, "\n"))
	}
}

var helpFlag = regexp.MustCompile(`(?m)^\s+--?([a-z0-9][a-z0-9.-]*)`)

// TestEnvFilesNameRealFlags checks that every variable of the example environment files,
// commented out or not, is the variable of a flag of the command (from its --help).
func TestEnvFilesNameRealFlags(t *testing.T) {
	bin := build(t)
	for _, u := range units {
		help, _ := exec.Command(filepath.Join(bin, u.binary), "--help").CombinedOutput()
		known := map[string]bool{}
		for _, m := range helpFlag.FindAllStringSubmatch(string(help), -1) {
			known[envflag.Var("DVRFLOW", m[1])] = true
		}
		if len(known) < 5 {
			t.Fatalf("%s --help lists %d flags:\n%s", u.binary, len(known), help)
		}
		raw, err := os.ReadFile(u.env)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range regexp.MustCompile(`(?m)^#?(DVRFLOW_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(raw), -1) {
			n++
			if !known[m[1]] {
				t.Errorf("%s sets %s, which is no flag of %s", u.env, m[1], u.binary)
			}
		}
		if n == 0 {
			t.Errorf("%s sets no variable", u.env)
		}
	}
}

// mountIsolating are the directives that make systemd run a service in a mount namespace
// of its own (systemd.exec(5): each implies one).
var mountIsolating = []string{
	"PrivateTmp", "PrivateDevices", "PrivateMounts", "PrivateNetwork", "PrivateUsers", "PrivateIPC",
	"ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
	"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
	"ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
	"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory", "RootImage",
	"MountAPIVFS", "MountFlags", "NetworkNamespacePath", "DynamicUser",
}

// TestHostUnitSharesTheHostsMounts: the helper mounts the namespaces it creates under
// /run/netns; in a mount namespace of its own those mounts would be invisible to the host
// and die with the helper (the namespaces vanish on restart).
func TestHostUnitSharesTheHostsMounts(t *testing.T) {
	b, err := os.ReadFile("dvrflow-host.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, _, _ := strings.Cut(l, "=")
		for _, bad := range mountIsolating {
			if key == bad {
				t.Errorf("dvrflow-host.service: %q gives the helper a mount namespace of its own", l)
			}
		}
	}
}
