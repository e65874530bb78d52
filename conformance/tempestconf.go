package conformance

import (
	"fmt"
	"strings"
)

// Cloud is what tempest needs to know of the cloud under test.
type Cloud struct {
	KeystoneURL     string // identity v3, e.g. http://127.0.0.1:5000/v3
	Region          string
	AdminUser       string
	AdminPassword   string
	AdminProject    string
	Domain          string   // of the admin user and project
	PublicNetworkID string   // the external network routers' gateways use
	PublicNetwork   string   // its name
	Extensions      []string // exactly the aliases dvrflow lists
	LogFile         string
	LockPath        string // tempest's lock directory
}

// TempestConf returns tempest.conf for c: dynamic credentials made by the admin, only
// Keystone and Neutron available (no Nova, Glance, Cinder or Swift: tests needing them
// skip), the network API features dvrflow has (IPv6 subnets with their ipv6_ra_mode and
// ipv6_address_mode among them), and no validation over SSH.
func TempestConf(c Cloud) string {
	return fmt.Sprintf(`[DEFAULT]
log_file = %[1]s
use_stderr = false

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = %[2]s
admin_password = %[3]s
admin_project_name = %[4]s
admin_domain_name = %[5]s
default_credentials_domain_name = %[5]s

[identity]
uri_v3 = %[6]s
auth_version = v3
region = %[7]s
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = false

[service_available]
neutron = true
nova = false
glance = false
cinder = false
swift = false

[network]
region = %[7]s
endpoint_type = publicURL
public_network_id = %[8]s
floating_network_name = %[9]s
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
project_networks_reachable = false
shared_physical_network = false

[network-feature-enabled]
api_extensions = %[10]s
ipv6 = true
ipv6_subnet_attributes = true
port_security = true
floating_ips = true

[neutron_plugin_options]
available_type_drivers = vxlan,flat,vlan
provider_vlans =
specify_floating_ip_address_available = true
agent_availability_zone =

[validation]
run_validation = false

[oslo_concurrency]
lock_path = %[11]s

[enforce_scope]
neutron = false
`, c.LogFile, c.AdminUser, c.AdminPassword, c.AdminProject, c.Domain, c.KeystoneURL, c.Region,
		c.PublicNetworkID, c.PublicNetwork, strings.Join(c.Extensions, ","), c.LockPath)
}
