-- snowflake_id 0.5.0 -> 0.6.0: the state file becomes required. CREATE EXTENSION (and this
-- update) creates it when the server has none, so that a file missing later is known to be
-- lost: the server then refuses IDs until the file is restored or a superuser states a floor
-- with snowflake_restore_floor(), instead of starting from the clock.
-- Must create exactly what a fresh CREATE EXTENSION of 0.6.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.6.0'" to load this file. \quit

CREATE FUNCTION "snowflake_restore_floor"(
	"floor" timestamp with time zone
) RETURNS timestamp with time zone
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'snowflake_restore_floor_wrapper';
REVOKE ALL ON FUNCTION snowflake_restore_floor(timestamptz) FROM PUBLIC;

CREATE FUNCTION "snowflake_id_create_state_file"() RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'snowflake_id_create_state_file_wrapper';
SELECT snowflake_id_create_state_file();
DROP FUNCTION snowflake_id_create_state_file();
