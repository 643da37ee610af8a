-- snowflake_json(): an ID's JSON form, the ID as a string, the fields as snowflake_parse()'s.
-- The output is the same whatever the session's TimeZone and DateStyle (ts is UTC with a Z):
-- the function is IMMUTABLE.
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SELECT snowflake_json(0);
SELECT snowflake_json(9223372036854775807);
-- An ID above 2^53 (every ID issued since 2025-01-25): its string is exact; to_json() of the
-- bigint is a JSON number, which a reader using doubles rounds (doubles of this size are 32
-- apart: JavaScript reads 254653193521221696).
SELECT snowflake_json(254653193521221695) AS j,
       to_json(254653193521221695::bigint) AS as_number;
-- The fields agree with snowflake_parse() and the ID's text, for IDs issued now.
SELECT count(*) AS ids,
       count(*) FILTER (WHERE j ->> 'id' = id::text
                          AND (j ->> 'ts')::timestamptz = p.ts
                          AND (j -> 'node')::int = p.node
                          AND (j -> 'sequence')::int = p.sequence
                          AND jsonb_typeof(j -> 'id') = 'string') AS agree
FROM (SELECT snowflake_nextval() AS id FROM generate_series(1, 1000)) s,
     LATERAL snowflake_json(s.id) j,
     LATERAL snowflake_parse(s.id) p;
SELECT snowflake_json(NULL) IS NULL AS strict;
SELECT provolatile, proparallel, proisstrict FROM pg_proc WHERE proname = 'snowflake_json';
RESET TimeZone;
RESET DateStyle;
-- Bad input: the decoders' ERROR.
\set SHOW_CONTEXT never
SELECT snowflake_json(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_json(-9223372036854775808);
\echo :LAST_ERROR_SQLSTATE
