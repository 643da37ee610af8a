-- snowflake_id 0.4.0 -> 0.5.0: snowflake_json(id), an ID's JSON form for APIs: the ID as a
-- string (JSON readers that map numbers to doubles, JavaScript's among them, round IDs above
-- 2^53) and its decoded fields, named as snowflake_parse()'s columns; and the view
-- snowflake_node_clashes, node id clashes in the registry, readable by pg_monitor.
-- Must create exactly what a fresh CREATE EXTENSION of 0.5.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.5.0'" to load this file. \quit

CREATE FUNCTION "snowflake_json"(
	"id" bigint
) RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'snowflake_json_wrapper';

CREATE VIEW snowflake_node_clashes AS
  SELECT r.node_id, r.system_identifier, r.host, r.port, r.registered_at
  FROM snowflake_nodes r
  WHERE r.node_id IN (SELECT c.node_id FROM snowflake_nodes c GROUP BY c.node_id
                      HAVING pg_catalog.count(DISTINCT c.system_identifier) OPERATOR(pg_catalog.>) 1);
COMMENT ON VIEW snowflake_node_clashes IS
  'snowflake_id: registered servers whose node id another server also claims (read-only; for monitoring)';
GRANT SELECT ON snowflake_node_clashes TO pg_monitor;
