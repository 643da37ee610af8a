-- Objects the benchmark uses; loaded once into a fresh cluster by bench/run.sh.
CREATE EXTENSION snowflake_id;
-- contrib isn, for isn_weak(): a C function that only returns a setting, the cost of calling any
-- extension's C function (bench/run.sh compares snowflake_nextval() with it).
CREATE EXTENSION isn;

-- Sequences: the usual per-table counter (cache 1, the default, and cache 100), and the
-- MySQL auto_increment_increment/auto_increment_offset pattern for multi-master: every node
-- counts in steps of the node count (here 1024, as many as Snowflake allows) from its own offset.
CREATE SEQUENCE bench_seq_c1 CACHE 1;
CREATE SEQUENCE bench_seq_c100 CACHE 100;
CREATE SEQUENCE bench_seq_offset INCREMENT BY 1024 START WITH 1 CACHE 1;

-- The Instagram-style Snowflake in PL/pgSQL (2012 engineering blog pattern): 41 bits of
-- milliseconds, 13 bits of shard id, 10 bits of nextval() % 1024. Same epoch as snowflake_id.
CREATE SEQUENCE bench_insta_seq;
CREATE FUNCTION bench_insta_id(OUT result bigint) LANGUAGE plpgsql AS $$
DECLARE
    our_epoch  bigint := 1735689600000;
    seq_id     bigint;
    now_millis bigint;
    shard_id   int := 1;
BEGIN
    SELECT nextval('bench_insta_seq') % 1024 INTO seq_id;
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) INTO now_millis;
    result := (now_millis - our_epoch) << 23;
    result := result | (shard_id << 10);
    result := result | seq_id;
END
$$;

-- Audit tables for the 8-client INSERT runs, one per key type.
CREATE TABLE bench_audit_sf (
    id         bigint PRIMARY KEY DEFAULT snowflake_nextval(),
    user_id    int NOT NULL,
    action     text NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_audit_serial (
    id         bigserial PRIMARY KEY,
    user_id    int NOT NULL,
    action     text NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_audit_uuid (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    int NOT NULL,
    action     text NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The same three for the growth run (filled to 20M rows).
CREATE TABLE bench_grow_sf (LIKE bench_audit_sf INCLUDING ALL);
CREATE TABLE bench_grow_serial (
    id         bigserial PRIMARY KEY,
    user_id    int NOT NULL,
    action     text NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_grow_uuid (LIKE bench_audit_uuid INCLUDING ALL);

-- Where the duplicate checks collect IDs (no index: the check is count(DISTINCT)).
CREATE UNLOGGED TABLE bench_dup (v text);
