package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AgentSettings are the attributes of a host's agent an admin may change (Neutron's
// writable agent attributes). An agent nobody changed has the defaults: admin_state_up
// true, no description.
type AgentSettings struct {
	AdminStateUp bool
	Description  *string
}

// DefaultAgentSettings are the settings of an agent nobody changed.
func DefaultAgentSettings() AgentSettings { return AgentSettings{AdminStateUp: true} }

// AgentSettingsSpec holds an agent update; nil means "not given". Description null
// clears it.
type AgentSettingsSpec struct {
	AdminStateUp *bool
	Description  **string
}

// ListAgentSettings returns the settings of every agent an admin changed, by agent ID.
func (s *Store) ListAgentSettings(ctx context.Context) (map[string]AgentSettings, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, admin_state_up, description FROM agent_settings`)
	if err != nil {
		return nil, fmt.Errorf("list agent settings: %w", err)
	}
	out := map[string]AgentSettings{}
	var id string
	var a AgentSettings
	if _, err := pgx.ForEachRow(rows, []any{&id, &a.AdminStateUp, &a.Description}, func() error {
		out[id] = a
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list agent settings: %w", err)
	}
	return out, nil
}

// UpdateAgentSettings applies spec to agent id of host and returns its settings. The
// agent's state is host status, not topology: no revision, no change-log row. The host
// must be registered (HostNotFound otherwise); its agents' settings go with it.
func (s *Store) UpdateAgentSettings(ctx context.Context, id, host string, spec AgentSettingsSpec) (*AgentSettings, error) {
	a := DefaultAgentSettings()
	var setDesc bool
	if spec.AdminStateUp != nil {
		a.AdminStateUp = *spec.AdminStateUp
	}
	if spec.Description != nil {
		setDesc, a.Description = true, *spec.Description
	}
	err := s.pool.QueryRow(ctx, `
INSERT INTO agent_settings (id, host, admin_state_up, description)
SELECT $1, host, $3, $4 FROM hosts WHERE host = $2
ON CONFLICT (id) DO UPDATE SET
  admin_state_up = CASE WHEN $5 THEN excluded.admin_state_up ELSE agent_settings.admin_state_up END,
  description    = CASE WHEN $6 THEN excluded.description ELSE agent_settings.description END
RETURNING admin_state_up, description`,
		id, host, a.AdminStateUp, a.Description, spec.AdminStateUp != nil, setDesc).Scan(&a.AdminStateUp, &a.Description)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("HostNotFound", "Host %s could not be found.", host)
	}
	if err != nil {
		return nil, fmt.Errorf("update agent %s: %w", id, err)
	}
	return &a, nil
}
