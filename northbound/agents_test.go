package northbound_test

import (
	"net/http"
	"testing"
)

// TestAgentDelete: deleting an agent forgets its host's registration as Neutron forgets
// a deleted agent (both of the host's agents go), refused while a port is bound there;
// to a project the agent does not exist, and an unknown agent is 404.
func TestAgentDelete(t *testing.T) {
	a := newAPI(t)
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1",
		map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.1", "mode": "dvr"}})
	agents := list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents")
	if len(agents) != 2 {
		t.Fatalf("agents of one host: %v", agents)
	}
	path := "/v2.0/agents/" + agents[0]["id"].(string)
	net := a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})["id"].(string)
	port := a.create("ports", "port", map[string]any{"network_id": net, "tenant_id": "proj-a", "binding:host_id": "compute1"})["id"].(string)

	code, out := a.do(tokenA, "DELETE", path, nil)
	wantError(t, code, out, http.StatusNotFound, "AgentNotFound")
	code, out = a.do(adminToken, "DELETE", path, nil)
	wantError(t, code, out, http.StatusConflict, "HostInUse")
	code, out = a.do(adminToken, "DELETE", "/v2.0/agents/5b7c2f5e-0000-4000-8000-000000000000", nil)
	wantError(t, code, out, http.StatusNotFound, "AgentNotFound")
	if got := list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents"); len(got) != 2 {
		t.Fatalf("refused deletes removed agents: %v", got)
	}

	a.admin(http.StatusNoContent, "DELETE", "/v2.0/ports/"+port, nil)
	a.admin(http.StatusNoContent, "DELETE", path, nil)
	if got := list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents"); len(got) != 0 {
		t.Fatalf("agents after the delete: %v", got)
	}
	code, out = a.do(adminToken, "GET", "/v2.0/dvr-hosts/compute1", nil)
	wantError(t, code, out, http.StatusNotFound, "HostNotFound")
}
