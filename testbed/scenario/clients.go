package scenario

import (
	"fmt"
	"strings"
)

// OpenStackCLI is how Debian's python3-openstackclient reaches the scenario's API with its
// static admin token (no Keystone): the environment to set, and the commands the demo
// prints. The integration tests run exactly these.
type OpenStackCLI struct {
	Env      []string   // KEY=value
	Commands [][]string // argv, each starting with "openstack"
}

// OpenStack returns the openstack CLI commands for the scenario's API.
func (s *Scenario) OpenStack() OpenStackCLI {
	return OpenStackCLI{
		Env: []string{"OS_AUTH_TYPE=admin_token", "OS_ENDPOINT=" + s.API, "OS_TOKEN=" + s.cfg.Token},
		Commands: [][]string{
			{"openstack", "network", "list"},
			{"openstack", "port", "list", "--host", "compute1"},
			{"openstack", "router", "show", "R1"},
			{"openstack", "floating", "ip", "list"},
		},
	}
}

// Lines renders the CLI as shell lines: one export, then each command.
func (c OpenStackCLI) Lines() []string {
	out := []string{"export " + strings.Join(c.Env, " ")}
	for _, argv := range c.Commands {
		out = append(out, strings.Join(argv, " "))
	}
	return out
}

// String is Lines indented for the demo's "Try" text.
func (c OpenStackCLI) String() string {
	var sb strings.Builder
	for _, l := range c.Lines() {
		fmt.Fprintf(&sb, "  %s\n", l)
	}
	return sb.String()
}
