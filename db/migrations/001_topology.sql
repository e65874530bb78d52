-- dvrflow topology schema. Resources are stored as their full JSON state (obj) plus the
-- columns that constraints and lookups need. All topology writers serialize on the single
-- topology_revision row, so allocation queries below never race.

CREATE TABLE topology_revision (
    id       int PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL
);
INSERT INTO topology_revision (id, revision) VALUES (1, 0);

CREATE TABLE changes (
    revision bigint      NOT NULL,
    seq      int         NOT NULL,
    kind     text        NOT NULL,
    id       text        NOT NULL,
    op       text        NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    object   jsonb       NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (revision, seq)
);

CREATE TABLE networks (
    id         text PRIMARY KEY,
    project_id text NOT NULL,
    obj        jsonb NOT NULL
);

-- One row per network segment: (vxlan, '', VNI), (vlan, physnet, VLAN), (flat, physnet, 0).
CREATE TABLE segments (
    network_type     text   NOT NULL,
    physical_network text   NOT NULL,
    segmentation_id  bigint NOT NULL,
    network_id       text   NOT NULL UNIQUE REFERENCES networks (id) ON DELETE CASCADE,
    PRIMARY KEY (network_type, physical_network, segmentation_id)
);

CREATE TABLE subnets (
    id         text PRIMARY KEY,
    network_id text NOT NULL REFERENCES networks (id),
    project_id text NOT NULL,
    obj        jsonb NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id);

CREATE TABLE ports (
    id           text PRIMARY KEY,
    network_id   text NOT NULL REFERENCES networks (id),
    project_id   text NOT NULL,
    mac_address  text NOT NULL,
    device_owner text NOT NULL,
    device_id    text NOT NULL,
    host         text NOT NULL,
    obj          jsonb NOT NULL,
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_device ON ports (device_id);
CREATE INDEX ports_host ON ports (host) WHERE host <> '';

-- IPv4 addresses as bigint: one row per allocated address.
CREATE TABLE ip_allocations (
    subnet_id text   NOT NULL REFERENCES subnets (id),
    ip        bigint NOT NULL,
    -- Deferred: a write allocates the address before it inserts the port.
    port_id   text   NOT NULL REFERENCES ports (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);

-- Free list: ranges [first, last] of pool addresses not allocated.
CREATE TABLE ip_free_ranges (
    id        bigserial PRIMARY KEY,
    subnet_id text   NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    first     bigint NOT NULL,
    last      bigint NOT NULL CHECK (last >= first)
);
CREATE INDEX ip_free_ranges_subnet ON ip_free_ranges (subnet_id, first);

CREATE TABLE routers (
    id         text PRIMARY KEY,
    project_id text NOT NULL,
    obj        jsonb NOT NULL
);

CREATE TABLE router_linklocal (
    router_id text PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
    cidr      text NOT NULL UNIQUE,
    idx       int  NOT NULL UNIQUE CHECK (idx >= 0 AND idx < 8192)
);

CREATE TABLE floatingips (
    id                  text PRIMARY KEY,
    project_id          text NOT NULL,
    floating_network_id text NOT NULL REFERENCES networks (id),
    port_id             text NOT NULL DEFAULT '',
    router_id           text NOT NULL DEFAULT '',
    obj                 jsonb NOT NULL
);
CREATE INDEX floatingips_port ON floatingips (port_id) WHERE port_id <> '';
CREATE INDEX floatingips_router ON floatingips (router_id) WHERE router_id <> '';

-- heartbeat and applied_revision are host status, not topology: they change without a
-- revision.
CREATE TABLE hosts (
    host             text PRIMARY KEY,
    mac_address      text NOT NULL UNIQUE,
    obj              jsonb NOT NULL,
    heartbeat        timestamptz NOT NULL DEFAULT now(),
    applied_revision bigint NOT NULL DEFAULT 0
);

CREATE TABLE local_vlans (
    host       text NOT NULL,
    network_id text NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    vlan       int  NOT NULL CHECK (vlan BETWEEN 1 AND 4094),
    PRIMARY KEY (host, network_id),
    UNIQUE (host, vlan)
);
