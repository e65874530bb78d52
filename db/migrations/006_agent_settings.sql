-- What an admin set on a host's agent (PUT /v2.0/agents/{id}): the agents themselves are
-- derived from the registered hosts; a row holds the writable attributes that differ from
-- Neutron's defaults (admin_state_up true, description null). It goes with its host.

CREATE TABLE agent_settings (
    id             text PRIMARY KEY,
    host           text NOT NULL REFERENCES hosts (host) ON DELETE CASCADE,
    admin_state_up boolean NOT NULL DEFAULT true,
    description    text
);
