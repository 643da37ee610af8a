"""psycopg 3: an audit table keyed by snowflake_nextval(), keys read back with RETURNING.

Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
"""

import os

import psycopg

from common import check_against_server, report

# prepare_threshold=None: no server-side prepared statements, which a PgBouncer in transaction
# mode cannot keep (the next transaction may run on another server connection).
with psycopg.connect(os.environ["SNOWFLAKE_DSN"], prepare_threshold=None) as conn:
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE audit_psycopg ("
        " id bigint PRIMARY KEY DEFAULT snowflake_nextval(),"
        " ref text NOT NULL UNIQUE, note text)"
    )
    rows: dict[str, int] = {}

    # One row: the key comes back with RETURNING as a Python int (exact: ints are unbounded).
    cur.execute("INSERT INTO audit_psycopg (ref, note) VALUES (%s, %s) RETURNING id", ("psycopg-0", "one"))
    rows["psycopg-0"] = cur.fetchone()[0]

    # Many rows in one statement (one round trip): arrays in, (ref, id) pairs out. Match rows by
    # a column of your own, not by position.
    refs = [f"psycopg-{i}" for i in range(1, 501)]
    cur.execute(
        "INSERT INTO audit_psycopg (ref, note) SELECT r, 'batch' FROM unnest(%s::text[]) AS r RETURNING ref, id",
        (refs,),
    )
    rows.update(dict(cur.fetchall()))

    # executemany(returning=True) pipelines the statements: one round trip for the batch.
    more = [(f"psycopg-{i}", "pipelined") for i in range(501, 601)]
    cur.executemany("INSERT INTO audit_psycopg (ref, note) VALUES (%s, %s) RETURNING ref, id", more, returning=True)
    while True:
        ref, id_ = cur.fetchone()
        rows[ref] = id_
        if not cur.nextset():
            break

    # A bulk loader reserving N keys in one round trip (then COPY with explicit ids).
    cur.execute("SELECT snowflake_nextval() FROM generate_series(1, %s)", (1000,))
    reserved = [r[0] for r in cur.fetchall()]
    with cur.copy("COPY audit_psycopg (id, ref, note) FROM STDIN") as copy:
        for i, id_ in enumerate(reserved):
            copy.write_row((id_, f"psycopg-copy-{i}", "copied"))
    rows.update({f"psycopg-copy-{i}": id_ for i, id_ in enumerate(reserved)})

    conn.commit()
    # The reserved keys are the ones that were issued: distinct, increasing, each read back as
    # the server's own text of it.
    cur.execute("SELECT id, id::text FROM (SELECT snowflake_nextval() AS id FROM generate_series(1, 1000)) s")
    pairs = cur.fetchall()
    assert all(i == int(t) for i, t in pairs), "an ID read as int differs from its text"
    assert len(set(reserved)) == 1000 and reserved == sorted(reserved), "reserved IDs not distinct and increasing"
    check_against_server(cur, "audit_psycopg", rows)
    report("audit_psycopg", rows)
