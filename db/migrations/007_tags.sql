-- Tags of resources with standard attributes (Neutron's standard-attr-tag): a resource's
-- tags live in its obj as "tags", a list of distinct strings, absent when it has none.
-- Existing resources have none; the constraints keep whatever is stored a list.

ALTER TABLE networks ADD CONSTRAINT networks_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE subnets ADD CONSTRAINT subnets_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE subnetpools ADD CONSTRAINT subnetpools_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE ports ADD CONSTRAINT ports_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE routers ADD CONSTRAINT routers_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE floatingips ADD CONSTRAINT floatingips_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
ALTER TABLE security_groups ADD CONSTRAINT security_groups_tags CHECK (NOT obj ? 'tags' OR jsonb_typeof(obj -> 'tags') = 'array');
