-- The node id cannot be changed by any session, and the prefix is reserved.
\set SHOW_CONTEXT never
SHOW snowflake_id.node_id;
SET snowflake_id.node_id = 5;
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('snowflake_id.node_id', '5', false);
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE regress_plain SET snowflake_id.node_id = 5;
\echo :LAST_ERROR_SQLSTATE
SET snowflake_id.nodeid = 5;
\echo :LAST_ERROR_SQLSTATE
SET snowflake_id.max_drift_ms = 10;
\echo :LAST_ERROR_SQLSTATE
SHOW snowflake_id.node_id;
SELECT snowflake_node(snowflake_nextval());
-- What standbys read from this server: a primary shows its own node id; no session sets it.
SHOW snowflake_id.node_id_chain;
SET snowflake_id.node_id_chain = '5';
\echo :LAST_ERROR_SQLSTATE
