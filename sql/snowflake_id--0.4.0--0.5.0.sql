-- snowflake_id 0.4.0 -> 0.5.0: snowflake_json(id), an ID's JSON form for APIs: the ID as a
-- string (JSON readers that map numbers to doubles, JavaScript's among them, round IDs above
-- 2^53) and its decoded fields, named as snowflake_parse()'s columns. Nothing else changes.
-- Must create exactly what a fresh CREATE EXTENSION of 0.5.0 creates: tests/tests/packaging.rs
-- compares the two, object by object.

\echo Use "ALTER EXTENSION snowflake_id UPDATE TO '0.5.0'" to load this file. \quit

CREATE FUNCTION "snowflake_json"(
	"id" bigint
) RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'snowflake_json_wrapper';
