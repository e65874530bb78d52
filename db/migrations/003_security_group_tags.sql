-- Every security group gets a tag, a number unique among groups and never reused: the
-- controller names the group with it in flows (conjunction IDs). Groups created before
-- this migration are tagged in creation order.

CREATE SEQUENCE security_group_tags MINVALUE 1 MAXVALUE 1073741823;

UPDATE security_groups g SET obj = g.obj || jsonb_build_object('tag', t.tag)
FROM (SELECT id, nextval('security_group_tags') AS tag
      FROM (SELECT id FROM security_groups ORDER BY obj->>'created_at', id) o) t
WHERE g.id = t.id;
