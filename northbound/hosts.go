package northbound

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

func (s *Server) listHosts(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	hs, err := s.store.ListHosts(c.Request().Context())
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([]map[string]any, 0, len(hs))
	for i := range hs {
		items = append(items, s.hostShape(&hs[i], now))
	}
	return respondList(c, "dvr_hosts", items)
}

func (s *Server) showHost(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	h, err := s.store.GetHost(c.Request().Context(), c.Param("host"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "dvr_host", s.hostShape(h, time.Now()))
}

// registerHost creates or updates a host (201 when created, 200 when updated) and
// refreshes its heartbeat.
func (s *Server) registerHost(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	b, err := readBody(c, "dvr_host", []string{"tunnel_ip", "mode", "bridges"},
		[]string{"host", "mac_address", "applied_revision", "heartbeat_timestamp", "alive", "created_at", "updated_at"})
	if err != nil {
		return err
	}
	spec := db.HostSpec{Name: c.Param("host")}
	tip, err := b.str("tunnel_ip")
	if err != nil {
		return err
	}
	mode, err := b.str("mode")
	if err != nil {
		return err
	}
	if tip == nil || mode == nil {
		return badBody("Invalid input for dvr_host. Reason: tunnel_ip and mode are required.")
	}
	spec.TunnelIP, spec.Mode = *tip, topology.HostMode(*mode)
	if _, err := b.decode("bridges", &spec.Bridges); err != nil {
		return err
	}
	h, created, err := s.store.RegisterHost(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return respondOne(c, code, "dvr_host", s.hostShape(h, time.Now()))
}

func (s *Server) deleteHost(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	if err := s.store.DeleteHost(c.Request().Context(), c.Param("host")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) setHostApplied(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBody))
	if err != nil {
		return badBody("Unable to read request body: %v", err)
	}
	var in struct {
		Revision *int64 `json:"revision"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Revision == nil {
		return badBody("Malformed request body: want {\"revision\": N}")
	}
	if err := s.store.SetHostApplied(c.Request().Context(), c.Param("host"), *in.Revision); err != nil {
		return err
	}
	h, err := s.store.GetHost(c.Request().Context(), c.Param("host"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "dvr_host", s.hostShape(h, time.Now()))
}

func (s *Server) listHostMACs(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	hs, err := s.store.ListHosts(c.Request().Context())
	if err != nil {
		return err
	}
	items := make([]map[string]any, 0, len(hs))
	for _, h := range hs {
		items = append(items, map[string]any{"host": h.Name, "mac_address": h.MACAddress})
	}
	return respondList(c, "dvr_host_macs", items)
}

func (s *Server) agents(c echo.Context) ([]map[string]any, error) {
	hs, err := s.store.ListHosts(c.Request().Context())
	if err != nil {
		return nil, err
	}
	settings, err := s.store.ListAgentSettings(c.Request().Context())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var items []map[string]any
	for i := range hs {
		items = append(items, s.agentShapes(&hs[i], settings, now)...)
	}
	return items, nil
}

// listAgents lists the agents to an admin; Neutron's get_agent policy is admin only and
// its list filters out what the policy refuses, so a project gets an empty list.
func (s *Server) listAgents(c echo.Context) error {
	if !callerOf(c).admin {
		return respondList(c, "agents", []map[string]any{})
	}
	items, err := s.agents(c)
	if err != nil {
		return err
	}
	if items == nil {
		items = []map[string]any{}
	}
	return respondList(c, "agents", items)
}

// showAgent shows an agent to an admin; to anyone else an agent does not exist (404), as
// Neutron answers a show its policy refuses.
func (s *Server) showAgent(c echo.Context) error {
	a, err := s.agent(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "agent", a)
}

// agent returns the shape of agent id, AgentNotFound when it does not exist or the
// caller is not an admin.
func (s *Server) agent(c echo.Context, id string) (map[string]any, error) {
	if !callerOf(c).admin {
		return nil, agentNotFound(id)
	}
	items, err := s.agents(c)
	if err != nil {
		return nil, err
	}
	for _, a := range items {
		if a["id"] == id {
			return a, nil
		}
	}
	return nil, agentNotFound(id)
}

// deleteAgent forgets an agent's host as Neutron forgets a deleted agent until its next
// report: the host's registration goes (DELETE /v2.0/dvr-hosts/{host}, refused while
// ports are bound to it: 409 HostInUse) and its helper registers it again at its next
// poll. Admin only; to anyone else the agent does not exist (404), as for a show.
func (s *Server) deleteAgent(c echo.Context) error {
	a, err := s.agent(c, c.Param("id"))
	if err != nil {
		return err
	}
	host, _ := a["host"].(string)
	if err := s.store.DeleteHost(c.Request().Context(), host); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// updateAgent changes an agent's admin_state_up or description (Neutron's writable agent
// attributes; the others are 400). It is admin only: to anyone else the agent does not
// exist (404), as for a show.
func (s *Server) updateAgent(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "agent", []string{"admin_state_up", "description"},
		[]string{"id", "agent_type", "binary", "topic", "host", "alive", "availability_zone", "configurations",
			"created_at", "started_at", "heartbeat_timestamp", "resources_synced"})
	if err != nil {
		return err
	}
	var spec db.AgentSettingsSpec
	if spec.AdminStateUp, err = b.boolean("admin_state_up"); err != nil {
		return err
	}
	if r, ok := b.fields["description"]; ok { // type:string_or_none
		var d *string
		if !isNull(r) {
			if d, err = b.str("description"); err != nil {
				return err
			}
		}
		spec.Description = &d
	}
	a, err := s.agent(c, id)
	if err != nil {
		return err
	}
	set, err := s.store.UpdateAgentSettings(c.Request().Context(), id, a["host"].(string), spec)
	if db.IsNotFound(err) { // the host went away meanwhile
		return agentNotFound(id)
	}
	if err != nil {
		return err
	}
	a["admin_state_up"], a["description"] = set.AdminStateUp, nil
	if set.Description != nil {
		a["description"] = *set.Description
	}
	return respondOne(c, http.StatusOK, "agent", a)
}

func agentNotFound(id string) error {
	return notFound("AgentNotFound", "Agent %s could not be found.", id)
}
