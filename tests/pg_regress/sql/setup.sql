-- The SQL surface's contracts: every ERROR a caller can cause with its SQLSTATE, message,
-- DETAIL and HINT, and which roles may execute which function. Run by `cargo pgrx regress`
-- (scripts/test.sh) on a server that preloads the library with snowflake_id.node_id = 42.
-- psql prints the SQLSTATE of each error through :LAST_ERROR_SQLSTATE, not VERBOSITY verbose,
-- whose LOCATION lines name Rust source lines that move with every edit.
CREATE EXTENSION snowflake_id;
CREATE ROLE regress_plain LOGIN;
CREATE ROLE regress_monitor LOGIN IN ROLE pg_monitor;
