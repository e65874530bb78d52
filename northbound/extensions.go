package northbound

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// extension is one API extension as Neutron lists it (alias, name and description as
// neutron-lib defines them).
type extension struct{ alias, name, description string }

// extensionsUpdated is the "updated" stamp of every extension.
const extensionsUpdated = "2026-11-23T00:00:00-00:00"

// extensions is every extension the API implements, in the order it lists them: both
// GET /v2.0/extensions and GET /v2.0/extensions/{alias} answer from it. An alias listed
// here is a promise tempest relies on (it skips or runs tests by alias).
var extensions = []extension{
	{"agent", "agent", "The agent management extension."},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
	{"dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."},
	{"external-net", "Neutron external network", "Adds external network attribute to network resource."},
	{"extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)"},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"},
	{"fields", "Fields", "Allows filtering of returned fields"},
	{"filter-validation", "Filter parameters validation", "Provides validation on filter parameters."},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."},
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
	{"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."},
	{"security-group", "security-group", "The security groups extension."},
	{"port-security", "Port Security", "Provides port security"},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
	{"stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"},
	{"standard-attr-tag", "Tag support for resources with standard attribute: network, subnet, subnetpool, port, router, floatingip, security_group", "Enables to set tag on resources with standard attribute."},
	{"tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation", "Allow to tag ports during bulk creation"},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."},
	{"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"},
	{"default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default."},
	{"revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported."},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."},
	{"quotas", "Quota management support", "Expose functions for quotas management per project"},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"},
	{"quota-check-limit", "Quota engine limit check", "Support for checking the resource usage before applying a new quota limit"},
	{"dvr-hosts", "dvrflow DVR hosts", "Host registration with tunnel IP, mode, bridges and DVR host MAC."},
}

func (x extension) shape() map[string]any {
	return map[string]any{"alias": x.alias, "name": x.name, "description": x.description,
		"updated": extensionsUpdated, "links": []any{}}
}

// extensions answers GET /v2.0/extensions.
func (s *Server) extensions(c echo.Context) error {
	out := make([]any, 0, len(extensions))
	for _, x := range extensions {
		out = append(out, x.shape())
	}
	return c.JSON(http.StatusOK, map[string]any{"extensions": out})
}

// showExtension answers GET /v2.0/extensions/{alias}: the extension as the list shows
// it, or Neutron's 404 for an alias it does not implement.
func (s *Server) showExtension(c echo.Context) error {
	alias := c.Param("alias")
	for _, x := range extensions {
		if x.alias == alias {
			return c.JSON(http.StatusOK, map[string]any{"extension": x.shape()})
		}
	}
	return &apiError{http.StatusNotFound, "HTTPNotFound", "Extension with alias " + alias + " does not exist"}
}
