-- IPv6 addresses (issue 16). They get tables of their own, next to the IPv4 ones of 001,
-- rather than one table for both versions: the IPv4 tables keep their bigint addresses,
-- which the scale benchmarks' allocation queries are tuned for (8-byte integer keys and
-- arithmetic), while an IPv6 address needs 128 bits, which inet holds (PostgreSQL orders
-- inet and adds integers to it: "first + 1" as for bigint). The IPv4 rows are left as
-- they are, so an existing database migrates without copying or converting anything.
-- Addresses are stored as /128 host addresses.

-- One row per allocated IPv6 address (as ip_allocations).
CREATE TABLE ip6_allocations (
    subnet_id text NOT NULL REFERENCES subnets (id),
    ip        inet NOT NULL CHECK (family(ip) = 6 AND masklen(ip) = 128),
    -- Deferred: a write allocates the address before it inserts the port.
    port_id   text NOT NULL REFERENCES ports (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX ip6_allocations_port ON ip6_allocations (port_id);

-- Free list: ranges [first, last] of pool addresses not allocated (as ip_free_ranges).
CREATE TABLE ip6_free_ranges (
    id        bigserial PRIMARY KEY,
    subnet_id text NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    first     inet NOT NULL CHECK (family(first) = 6 AND masklen(first) = 128),
    last      inet NOT NULL CHECK (family(last) = 6 AND masklen(last) = 128),
    CHECK (last >= first)
);
CREATE INDEX ip6_free_ranges_subnet ON ip6_free_ranges (subnet_id, first);

-- Every allocation, of either version, for the queries that ask which ports have an
-- address on a subnet and not which address.
CREATE VIEW ip_allocations_all AS
    SELECT subnet_id, port_id FROM ip_allocations
    UNION ALL
    SELECT subnet_id, port_id FROM ip6_allocations;
