-- Security groups and port security (Neutron's security-group, port-security,
-- allowed-address-pairs and stateful-security-group extensions). A port's groups, its
-- port_security_enabled and its allowed address pairs live in its obj.

CREATE TABLE security_groups (
    id         text PRIMARY KEY,
    project_id text NOT NULL,
    obj        jsonb NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id);

-- The group every project gets on first use, named "default".
CREATE TABLE default_security_groups (
    project_id        text PRIMARY KEY,
    security_group_id text NOT NULL UNIQUE REFERENCES security_groups (id) ON DELETE CASCADE
);

-- rule_key is what makes two rules of a group the same (direction, ethertype, protocol
-- number, ports, remote): a second one is refused, even from concurrent creates.
CREATE TABLE security_group_rules (
    id                text PRIMARY KEY,
    security_group_id text NOT NULL REFERENCES security_groups (id),
    remote_group_id   text REFERENCES security_groups (id),
    rule_key          text NOT NULL,
    obj               jsonb NOT NULL,
    UNIQUE (security_group_id, rule_key)
);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id) WHERE remote_group_id IS NOT NULL;

CREATE INDEX ports_security_groups ON ports USING gin ((obj -> 'security_groups'));

-- What Neutron's port-security migration did: existing networks and ports have it on.
UPDATE networks SET obj = obj || '{"port_security_enabled": true}';
UPDATE ports SET obj = obj || '{"port_security_enabled": true, "security_groups": [], "allowed_address_pairs": []}';
