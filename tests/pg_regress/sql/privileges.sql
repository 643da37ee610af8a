-- Which roles may execute which function, and what a function that runs SQL pins.
SELECT p.proname,
       pg_catalog.has_function_privilege('regress_plain', p.oid, 'EXECUTE') AS plain,
       pg_catalog.has_function_privilege('regress_monitor', p.oid, 'EXECUTE') AS pg_monitor,
       p.prosecdef AS security_definer,
       p.proconfig
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
  AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'snowflake_id'
ORDER BY 1;
-- The registry's rows are configuration that pg_dump keeps.
SELECT extconfig::pg_catalog.regclass[] AS config_tables, extcondition
FROM pg_catalog.pg_extension WHERE extname = 'snowflake_id';
\set SHOW_CONTEXT never
SET ROLE regress_plain;
SELECT node_id FROM snowflake_stats();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_monitor;
SELECT node_id, state_file IS NOT NULL AS shows_path FROM snowflake_stats();
RESET ROLE;
-- Node id clashes are readable by pg_monitor through a view, without the registry itself.
INSERT INTO snowflake_nodes (node_id, system_identifier, host, port) VALUES
  (7, 1001, 'a', 5432), (7, 1002, 'b', 5432), (8, 1003, 'c', 5432);
SET ROLE regress_monitor;
SELECT node_id, system_identifier, host FROM snowflake_node_clashes ORDER BY 2;
SELECT count(*) FROM snowflake_nodes;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_plain;
SELECT count(*) FROM snowflake_node_clashes;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DELETE FROM snowflake_nodes WHERE system_identifier IN (1001, 1002, 1003);
-- Only a superuser states a floor for a lost state file, even if EXECUTE is granted.
SET ROLE regress_plain;
SELECT snowflake_restore_floor(now());
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION snowflake_restore_floor(timestamptz) TO regress_plain;
SET ROLE regress_plain;
SELECT snowflake_restore_floor(now());
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION snowflake_restore_floor(timestamptz) FROM regress_plain;
