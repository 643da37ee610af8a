-- snowflake_convert_column(): what it refuses, with SQLSTATE and HINT, and what it does.
\set SHOW_CONTEXT never
CREATE TABLE regress_serial (id serial PRIMARY KEY, note text);
CREATE TABLE regress_text (id text PRIMARY KEY);
CREATE TABLE regress_generated (a int, id bigint GENERATED ALWAYS AS (a * 2) STORED);
CREATE TABLE regress_default (id int DEFAULT 7);
CREATE TABLE regress_big (id bigint PRIMARY KEY);
INSERT INTO regress_big VALUES (snowflake_from_timestamp(now() + interval '1 hour'));
CREATE TABLE regress_parent (id int PRIMARY KEY);
CREATE TABLE regress_child (parent_id int REFERENCES regress_parent (id));
CREATE VIEW regress_view AS SELECT 1 AS id;
-- Not the owner: refused before anything is locked or read.
GRANT ALL ON regress_serial TO regress_plain;
SET ROLE regress_plain;
SELECT snowflake_convert_column('regress_serial', 'id');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT snowflake_convert_column('regress_text', 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_convert_column('regress_serial', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_convert_column('regress_generated', 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_convert_column('regress_default', 'id');
\echo :LAST_ERROR_SQLSTATE
-- Values at or above the first ID of now (the message carries time-dependent numbers).
DO $$
DECLARE s text; h text;
BEGIN
  PERFORM snowflake_convert_column('regress_big', 'id');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, h = PG_EXCEPTION_HINT;
  RAISE WARNING 'refused with % (HINT: %)', s, h;
END $$;
SELECT snowflake_convert_column('regress_parent', 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_convert_column('regress_view', 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_convert_column(0, 'id');
\echo :LAST_ERROR_SQLSTATE
-- Converted, and converting again changes nothing.
INSERT INTO regress_serial (note) VALUES ('a'), ('b');
SELECT pg_catalog.regexp_replace(snowflake_convert_column('regress_serial', 'id'), 'from [0-9]+', 'from <first ID of now>');
SELECT snowflake_convert_column('regress_serial', 'id');
SELECT pg_catalog.format_type(atttypid, NULL) AS type, pg_catalog.pg_get_expr(adbin, adrelid) AS default
FROM pg_catalog.pg_attribute JOIN pg_catalog.pg_attrdef ON adrelid = attrelid AND adnum = attnum
WHERE attrelid = 'regress_serial'::pg_catalog.regclass AND attname = 'id';
INSERT INTO regress_serial (note) VALUES ('c');
SELECT note, id > 2 AS snowflake_id FROM regress_serial ORDER BY id;
