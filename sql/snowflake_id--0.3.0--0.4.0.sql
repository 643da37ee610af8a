-- snowflake_id 0.3.0 -> 0.4.0: the ceiling travels in the WAL (standbys, restores, crash
-- recovery). snowflake_stats() gains four columns: the floor received from replayed WAL, how
-- many ceiling records were replayed, the last ceiling this server logged, and how many it
-- logged. A function's result columns cannot be altered, so it is dropped and created again
-- (a view built on it must be dropped first and made again after). The generator, its state
-- file and column defaults are untouched.
-- Must create exactly what a fresh CREATE EXTENSION of 0.4.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.4.0'" to load this file. \quit

DROP FUNCTION snowflake_stats();

CREATE FUNCTION snowflake_stats() RETURNS TABLE (
	"node_id" INT,
	"last_id" bigint,
	"last_id_time" timestamp with time zone,
	"issued" bigint,
	"drift_ms" bigint,
	"max_borrowed_ms" bigint,
	"drift_waits" bigint,
	"drift_wait_ms" double precision,
	"clock_steps" bigint,
	"clock_behind_ms" bigint,
	"ceiling" timestamp with time zone,
	"ceiling_writes" bigint,
	"ceiling_waits" bigint,
	"started_at" timestamp with time zone,
	"state_file" TEXT,
	"wal_floor" timestamp with time zone,
	"wal_records_replayed" bigint,
	"wal_ceiling" timestamp with time zone,
	"wal_records_written" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'snowflake_stats_v2_wrapper';

REVOKE ALL ON FUNCTION snowflake_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowflake_stats() TO pg_monitor;
