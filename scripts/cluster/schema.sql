-- Run on every node before it joins (engine-neutral: the cluster tool creates pglogical where it
-- is the engine): the extension, the audit table, and the same table with the broken
-- timestamp-string ID, plus the phase markers used to tell when replication caught up.
CREATE EXTENSION IF NOT EXISTS snowflake_id;

-- The audit log as snowflake_id means it: the ID comes from the node that wrote the row.
CREATE TABLE audit_log (
  id            bigint PRIMARY KEY DEFAULT snowflake_nextval(),
  user_id       int         NOT NULL,
  changed_field text        NOT NULL,
  old_value     text,
  new_value     text,
  changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The approach snowflake_id replaces: the ID is the yyyyMMddHHmmssSSS time of the change.
CREATE TABLE audit_log_ts (
  id            bigint PRIMARY KEY,
  user_id       int         NOT NULL,
  changed_field text        NOT NULL,
  old_value     text,
  new_value     text,
  changed_at    timestamptz NOT NULL,
  written_on    int         NOT NULL DEFAULT current_setting('snowflake_id.node_id')::int
);

-- Every snowflake ID a node wrote, logged by the same statement that wrote it (the load's
-- INSERT ... RETURNING feeds it). Not replicated and without a key: the same ID issued on two
-- nodes lands once in each node's log, so the demo can count duplicates across nodes by
-- collecting the three logs into demo_issued_all on node 1 (audit_log's primary key would only
-- show one of them, after replication silently resolved the conflict). UNLOGGED: no WAL to write, nor
-- for the nodes' logical decoding to read and skip; a crash would empty it, and the check would
-- then fail on held IDs missing from the logs.
CREATE UNLOGGED TABLE issued_ids (id bigint NOT NULL);
CREATE UNLOGGED TABLE demo_issued_all (node int NOT NULL, id bigint NOT NULL);

-- A node inserts its marker for a phase after its load; a node that has every node's marker
-- has applied everything those nodes wrote before (a subscription applies in commit order).
-- Markers travel with the tables they vouch for: demo_marker in the audit group (audit_log),
-- demo_marker_ts in the ts group (audit_log_ts), each group its own subscriptions.
CREATE TABLE demo_marker (
  node  int  NOT NULL,
  phase text NOT NULL,
  at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (node, phase)
);
CREATE TABLE demo_marker_ts (LIKE demo_marker INCLUDING ALL);

-- The motivating scenario: the same user's profile changes at the same millisecond through two
-- nodes. Each node spins until `p_at` (microsecond precision, no sleep granularity), takes the
-- time of the change, draws a Snowflake ID right after it, and writes the change to both tables:
-- audit_log with the Snowflake ID, audit_log_ts with that time as a yyyyMMddHHmmssSSS number.
-- The first pass of the loop only warms up the two expressions (plans them), so that in the
-- second they cost microseconds; it wastes one ID, which is harmless.
CREATE FUNCTION demo_change_at(p_user int, p_new text, p_at timestamptz)
RETURNS TABLE (snowflake_id bigint, timestamp_id bigint, changed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE t timestamptz; sid bigint;
BEGIN
  FOR pass IN 1..2 LOOP
    IF pass = 2 THEN
      IF p_at - clock_timestamp() > interval '20 ms' THEN
        PERFORM pg_sleep_until(p_at - interval '10 ms');
      END IF;
      WHILE clock_timestamp() < p_at LOOP END LOOP;
    END IF;
    t := clock_timestamp();
    sid := snowflake_nextval();
  END LOOP;
  INSERT INTO audit_log (id, user_id, changed_field, old_value, new_value, changed_at)
  VALUES (sid, p_user, 'email', 'old@example.com', p_new, t);
  INSERT INTO issued_ids VALUES (sid);
  timestamp_id := to_char(t, 'YYYYMMDDHH24MISSMS')::bigint;
  INSERT INTO audit_log_ts (id, user_id, changed_field, old_value, new_value, changed_at)
  VALUES (timestamp_id, p_user, 'email', 'old@example.com', p_new, t)
  ON CONFLICT (id) DO NOTHING;
  snowflake_id := sid;
  changed_at := t;
  RETURN NEXT;
END $$;
