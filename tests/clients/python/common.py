"""What every Python recipe prints and checks: an ID decoded on the client, with shifts.

Layout of a Snowflake ID (a signed 64-bit integer, always positive):
sign (1 bit, 0) | milliseconds since 2025-01-01 UTC (41) | node id (10) | sequence (12).
Python's int is arbitrary-precision, so IDs stay exact; the pitfall is elsewhere (JSON for
JavaScript, see docs/clients.md).
"""

import sys

EPOCH_UNIX_MS = 1_735_689_600_000


def decode(snowflake_id: int) -> tuple[int, int, int]:
    """(Unix milliseconds, node id, sequence) of an ID."""
    return ((snowflake_id >> 22) + EPOCH_UNIX_MS, (snowflake_id >> 12) & 0x3FF, snowflake_id & 0xFFF)


def report(table: str, rows: dict[str, int]) -> None:
    """Prints `row <table> <ref> <id> <unix ms> <node> <sequence>` per row, for the harness
    (tests/tests/clients.rs) to compare with what the server stored under that ref."""
    for ref, snowflake_id in rows.items():
        ms, node, seq = decode(snowflake_id)
        print(f"row {table} {ref} {snowflake_id} {ms} {node} {seq}")


def check_against_server(cur, table: str, rows: dict[str, int]) -> None:
    """The client's IDs and decoding agree with what the server stored and snowflake_parse()."""
    cur.execute(
        f"SELECT t.ref, t.id::text, (extract(epoch FROM p.ts) * 1000)::bigint, p.node, p.sequence "
        f"FROM {table} t, snowflake_parse(t.id) p"
    )
    stored = {r[0]: (int(r[1]), r[2], r[3], r[4]) for r in cur.fetchall()}
    if stored.keys() != rows.keys():
        sys.exit(f"{table}: the server holds refs {sorted(stored)[:3]}..., the client {sorted(rows)[:3]}...")
    for ref, snowflake_id in rows.items():
        sid, ms, node, seq = stored[ref]
        if snowflake_id != sid:
            sys.exit(f"{table} {ref}: client has {snowflake_id}, server stored {sid}")
        if snowflake_id <= 2**53:
            sys.exit(f"{table} {ref}: {snowflake_id} is not above 2^53")
        if decode(snowflake_id) != (ms, node, seq):
            sys.exit(f"{table} {ref}: decoded {decode(snowflake_id)}, snowflake_parse {(ms, node, seq)}")
