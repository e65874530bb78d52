-- Several dvrflowd against one database: each registers a row in controllers and renews
-- its lease there; each host's switches have one master, named in masterships with the
-- term it claimed them in. The term is the OpenFlow generation_id the master sends in its
-- ROLE_REQUEST, so it comes from one sequence: it only grows, for every host, even one
-- deleted and registered again (its switches remember the last generation they saw).

CREATE TABLE controllers (
    id         text PRIMARY KEY,
    instance   text NOT NULL,            -- a process's random nonce: two live processes never share an id
    of_addr    text NOT NULL DEFAULT '', -- where its switches reach it (informational)
    api_url    text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL      -- the lease, in the database's clock
);

CREATE SEQUENCE mastership_term;

-- No foreign key to hosts: a host deleted and registered again keeps its row, so its
-- next term is still greater than any its switches saw.
CREATE TABLE masterships (
    host          text PRIMARY KEY,
    controller_id text   NOT NULL,
    term          bigint NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX masterships_controller ON masterships (controller_id);

-- One counter that every change to the host registry (not heartbeats) or to masterships
-- bumps, so a controller's lease renewal learns in the same statement whether it must
-- read them again.
CREATE TABLE mastership_generation (
    one bool PRIMARY KEY DEFAULT true CHECK (one),
    gen bigint NOT NULL
);
INSERT INTO mastership_generation VALUES (true, 1);

CREATE FUNCTION bump_mastership_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mastership_generation SET gen = gen + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER hosts_mastership_generation
    AFTER INSERT OR DELETE OR UPDATE OF obj ON hosts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_mastership_generation();
CREATE TRIGGER masterships_generation
    AFTER INSERT OR DELETE OR UPDATE ON masterships
    FOR EACH STATEMENT EXECUTE FUNCTION bump_mastership_generation();
CREATE TRIGGER controllers_generation
    AFTER INSERT OR DELETE ON controllers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_mastership_generation();
