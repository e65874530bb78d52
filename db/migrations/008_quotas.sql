-- Per-project quota limits that an admin set (PUT /v2.0/quotas/{project_id}), as
-- Neutron's quotas table: a project without a row for a resource has the default
-- limit. DELETE /v2.0/quotas/{project_id} removes the project's rows. (Numbered 008:
-- the migrations run in name order and a gap is harmless.)

CREATE TABLE quotas (
    project_id text   NOT NULL,
    resource   text   NOT NULL,
    hard_limit bigint NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- Security group rules carry their project in obj only; the quota counts them by it.
CREATE INDEX security_group_rules_project ON security_group_rules ((obj ->> 'project_id'));
CREATE INDEX ports_project ON ports (project_id);
