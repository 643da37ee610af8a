// What every Node recipe prints and checks: an ID decoded on the client with BigInt shifts.
// Layout: sign (1 bit, 0) | ms since 2025-01-01 UTC (41) | node id (10) | sequence (12).
// An ID never goes through a JavaScript Number: above 2^53 (every ID since 2025-01-25) a Number
// is rounded to a neighbouring value. IDs stay strings (node-postgres' default for bigint) or
// BigInts.

export const EPOCH_UNIX_MS = 1735689600000n;

/** [unix ms, node, sequence] of an ID given as a decimal string or a BigInt. */
export function decode(id) {
  const v = BigInt(id);
  return [(v >> 22n) + EPOCH_UNIX_MS, (v >> 12n) & 0x3ffn, v & 0xfffn].map(String);
}

/** `row <table> <ref> <id> <unix ms> <node> <sequence>` per row, for tests/tests/clients.rs. */
export function report(table, rows) {
  for (const [ref, id] of rows) console.log(["row", table, ref, String(id), ...decode(id)].join(" "));
}

/** The client's IDs (a Map ref -> id string) and its decoding agree with what the server stored
 * and with snowflake_parse(). Throws on the first difference. */
export async function checkAgainstServer(query, table, rows) {
  const stored = await query(
    `SELECT t.ref, t.id::text AS id, ((extract(epoch FROM p.ts) * 1000)::bigint)::text AS ms,
            p.node::text AS node, p.sequence::text AS seq
     FROM ${table} t, snowflake_parse(t.id) p`,
  );
  if (stored.length !== rows.size) throw new Error(`${table}: server has ${stored.length} rows, client ${rows.size}`);
  for (const s of stored) {
    const id = rows.get(s.ref);
    if (id === undefined) throw new Error(`${table}: ${s.ref} stored, not seen by the client`);
    if (String(id) !== s.id) throw new Error(`${table} ${s.ref}: client has ${id}, server stored ${s.id}`);
    if (BigInt(id) <= 2n ** 53n) throw new Error(`${table} ${s.ref}: ${id} is not above 2^53`);
    const got = decode(id).join(" ");
    if (got !== [s.ms, s.node, s.seq].join(" ")) throw new Error(`${table} ${s.ref}: decoded ${got}, snowflake_parse ${s.ms} ${s.node} ${s.seq}`);
  }
}
