-- snowflake_id 0.2.0 -> 0.3.0: hardening. The functions that run SQL pin search_path, so objects
-- another role planted on the caller's path never run with the caller's rights;
-- snowflake_stats() (which shows the data directory) is for pg_monitor only; pg_dump keeps the
-- rows of snowflake_nodes. The generator, its state file and column defaults are untouched.
-- Must create exactly what a fresh CREATE EXTENSION of 0.3.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.3.0'" to load this file. \quit

ALTER FUNCTION snowflake_register_node() SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION snowflake_check_nodes() SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION snowflake_convert_column(regclass, text) SET search_path TO pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION snowflake_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowflake_stats() TO pg_monitor;

SELECT pg_catalog.pg_extension_config_dump('snowflake_nodes', '');
