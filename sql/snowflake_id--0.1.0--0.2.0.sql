-- snowflake_id 0.1.0 -> 0.2.0: the node registry (snowflake_nodes, snowflake_register_node(),
-- snowflake_check_nodes()) and snowflake_convert_column(). Nothing of 0.1.0 changes: the
-- generator, its state file and every existing function and column default are kept as they are.
-- Must create exactly what a fresh CREATE EXTENSION of 0.2.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.2.0'" to load this file. \quit

CREATE TABLE snowflake_nodes (
    node_id           integer     NOT NULL CHECK (node_id BETWEEN 0 AND 1023),
    system_identifier bigint      NOT NULL,
    host              text,
    port              integer,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, system_identifier)
);
COMMENT ON TABLE snowflake_nodes IS
  'snowflake_id: servers issuing Snowflake IDs (one row per server); replicate it between the nodes of a cluster and run snowflake_check_nodes() to find node id clashes';

CREATE FUNCTION snowflake_register_node() RETURNS integer
    STRICT VOLATILE LANGUAGE c
    AS 'MODULE_PATHNAME', 'snowflake_register_node_wrapper';

CREATE FUNCTION snowflake_check_nodes() RETURNS TABLE (
    node_id integer,
    system_identifier bigint,
    host text,
    port integer,
    registered_at timestamp with time zone,
    is_this_server boolean
)
    STRICT VOLATILE LANGUAGE c
    AS 'MODULE_PATHNAME', 'snowflake_check_nodes_wrapper';

CREATE FUNCTION snowflake_convert_column(tbl regclass, col text) RETURNS text
    VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'snowflake_convert_column_wrapper';
COMMENT ON FUNCTION snowflake_convert_column(regclass, text) IS
  'snowflake_id: switch a serial/bigserial/identity/integer column to bigint DEFAULT snowflake_nextval(), keeping its rows';
