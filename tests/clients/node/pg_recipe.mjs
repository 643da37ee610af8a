// node-postgres (pg): bigint columns arrive as strings, exact; keys read back with RETURNING.
// Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
import pg from "pg";
import { checkAgainstServer, report } from "./common.mjs";

const client = new pg.Client({ connectionString: process.env.SNOWFLAKE_DSN });
await client.connect();
await client.query(`CREATE TABLE audit_pg (
  id bigint PRIMARY KEY DEFAULT snowflake_nextval(), ref text NOT NULL UNIQUE, note text)`);
const rows = new Map();

// One row: id is a string such as "254652797994160128" (pg's default parser for int8).
const one = await client.query("INSERT INTO audit_pg (ref, note) VALUES ($1, $2) RETURNING id", ["pg-0", "one"]);
if (typeof one.rows[0].id !== "string") throw new Error(`id arrived as ${typeof one.rows[0].id}`);
rows.set("pg-0", one.rows[0].id);

// Many rows, one statement, one round trip: an array parameter, (ref, id) pairs back.
const refs = Array.from({ length: 500 }, (_, i) => `pg-${i + 1}`);
const many = await client.query(
  "INSERT INTO audit_pg (ref, note) SELECT r, 'batch' FROM unnest($1::text[]) AS r RETURNING ref, id",
  [refs],
);
for (const r of many.rows) rows.set(r.ref, r.id);

// A bulk loader reserving N keys in one round trip; as BigInt for arithmetic.
const reserved = (await client.query("SELECT snowflake_nextval() AS id FROM generate_series(1, $1)", [1000])).rows.map(
  (r) => BigInt(r.id),
);
if (new Set(reserved).size !== 1000 || reserved.some((v, i) => i > 0 && v <= reserved[i - 1]))
  throw new Error("reserved IDs are not distinct and increasing");
await client.query(
  "INSERT INTO audit_pg (id, ref, note) SELECT i, 'pg-reserved-' || n, 'reserved' FROM unnest($1::bigint[]) WITH ORDINALITY AS u(i, n)",
  [reserved.map(String)],
);
reserved.forEach((v, n) => rows.set(`pg-reserved-${n + 1}`, String(v)));

await checkAgainstServer(async (sql) => (await client.query(sql)).rows, "audit_pg", rows);
report("audit_pg", rows);
await client.end();
