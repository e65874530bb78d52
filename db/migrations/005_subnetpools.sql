-- Subnet pools (Neutron's subnet_allocation and default-subnetpools extensions). A pool is
-- API state only; its obj holds the normalized prefixes and the prefix length bounds.
-- Subnets allocated from a pool name it in subnetpool_id (also in their obj), so a pool
-- with subnets cannot be deleted and its allocations are found by index. At most one
-- pool per IP version is the default.

CREATE TABLE subnetpools (
    id         text PRIMARY KEY,
    project_id text    NOT NULL,
    ip_version int     NOT NULL CHECK (ip_version IN (4, 6)),
    is_default boolean NOT NULL DEFAULT false,
    obj        jsonb   NOT NULL
);
CREATE UNIQUE INDEX subnetpools_default ON subnetpools (ip_version) WHERE is_default;

ALTER TABLE subnets ADD COLUMN subnetpool_id text REFERENCES subnetpools (id);
CREATE INDEX subnets_subnetpool ON subnets (subnetpool_id) WHERE subnetpool_id IS NOT NULL;
