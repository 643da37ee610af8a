-- Decoders and snowflake_from_timestamp(): bad input is an ERROR with a HINT, never a wrong answer.
\set SHOW_CONTEXT never
SELECT snowflake_timestamp(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_node(-9223372036854775808);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM snowflake_parse(-2);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_sequence(-3);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_from_timestamp('2024-12-31 23:59:59.999+00');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_from_timestamp('2094-09-07 15:47:35.552+00');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_from_timestamp('infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_from_timestamp('-infinity');
\echo :LAST_ERROR_SQLSTATE
-- Far past 2094: the conversion to Unix time overflows 64 bits; an ERROR, not a wrapped value.
SELECT snowflake_from_timestamp('294270-01-01 00:00:00+00');
\echo :LAST_ERROR_SQLSTATE
-- The edges that are valid.
SELECT snowflake_from_timestamp('2025-01-01 00:00:00+00') AS first_id,
       snowflake_from_timestamp('2094-09-07 15:47:35.551+00') AS last_ms_id;
SELECT * FROM snowflake_parse(9223372036854775807);
SELECT snowflake_node(1 << 12), snowflake_sequence(4095), snowflake_timestamp(0);
