-- psql: keys read back with RETURNING; psql prints bigints as text, exactly.
-- Run by tests/tests/clients.rs as `psql -X -v ON_ERROR_STOP=1 -f recipe.sql "$SNOWFLAKE_DSN"`;
-- quoted in docs/clients.md. The decoding with shifts is the layout's:
-- sign (1 bit, 0) | ms since 2025-01-01 UTC (41) | node id (10) | sequence (12).
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' '
CREATE TABLE audit_psql (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), ref text NOT NULL UNIQUE, note text);

-- One row, its key into a psql variable (text: exact).
INSERT INTO audit_psql (ref, note) VALUES ('psql-0', 'one') RETURNING id AS one_id \gset
SELECT 'row', 'audit_psql', 'psql-0', :'one_id', (:'one_id'::bigint >> 22) + 1735689600000,
       (:'one_id'::bigint >> 12) & 1023, :'one_id'::bigint & 4095;

-- Many rows in one statement, (ref, id) back.
INSERT INTO audit_psql (ref, note)
SELECT 'psql-' || i, 'batch' FROM generate_series(1, 500) AS i
RETURNING 'row', 'audit_psql', ref, id, (id >> 22) + 1735689600000, (id >> 12) & 1023, id & 4095;
