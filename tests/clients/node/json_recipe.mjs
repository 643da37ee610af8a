// IDs in JSON for JavaScript: what corrupts them and what keeps them exact.
// A JavaScript Number holds 53 bits exactly; every Snowflake ID since 2025-01-25 is above 2^53,
// so an ID that passes through a Number (JSON.parse of a numeric field, to_json(id), a Number
// parser for int8) silently becomes a neighbouring value. The unsafe paths below must FAIL the
// exactness check (the program exits non-zero if they do not: the demonstration would be void);
// the safe paths must pass it.
// Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
import pg from "pg";
import { isSafeNumber, parse as losslessParse } from "lossless-json";
import { checkAgainstServer, decode, report } from "./common.mjs";

const dsn = process.env.SNOWFLAKE_DSN;
const client = new pg.Client({ connectionString: dsn });
await client.connect();
await client.query(`CREATE TABLE audit_json (
  id bigint PRIMARY KEY DEFAULT snowflake_nextval(), ref text NOT NULL UNIQUE, note text)`);
const refs = Array.from({ length: 200 }, (_, i) => `json-${i}`);
await client.query("INSERT INTO audit_json (ref, note) SELECT r, 'json' FROM unnest($1::text[]) AS r", [refs]);

// What the server stored, as its own text: the reference every path is compared with.
const stored = new Map(
  (await client.query("SELECT ref, id::text AS id FROM audit_json")).rows.map((r) => [r.ref, r.id]),
);

/** The rows whose id, as the path delivered it (string, BigInt or Number), is not the stored
 * ID: compared by value (BigInt of a Number is the double's exact value). */
function corrupted(got) {
  const bad = [];
  for (const [ref, want] of stored) {
    const v = got.get(ref);
    if (v === undefined || BigInt(v) !== BigInt(want)) bad.push([ref, want, v]);
  }
  return bad;
}
let failed = false;
function unsafePath(name, got) {
  const bad = corrupted(got);
  // A Number also prints differently (String(), JSON.stringify) even when the double happens to
  // be the ID: the shortest decimal that reads back as that double, digits cut to zeros.
  const misprinted = [...stored].filter(([ref, want]) => String(got.get(ref)) !== want).length;
  // Printed: path, IDs changed, IDs printed differently, IDs, one example (stored -> the
  // delivered value, exactly -> as JavaScript prints it).
  const ex = bad[0] ? [bad[0][1], BigInt(bad[0][2]).toString(), String(bad[0][2])] : [];
  console.log(["json-unsafe", name, bad.length, misprinted, stored.size, ...ex].join(" "));
  if (bad.length === 0) {
    console.error(`${name}: no ID was corrupted, the check would not see corruption`);
    failed = true;
  }
}
function safePath(name, got) {
  const bad = corrupted(got);
  console.log(["json-safe", name, bad.length, stored.size].join(" "));
  if (bad.length > 0) {
    console.error(`${name}: ${bad.length} IDs corrupted, e.g. ${bad[0][1]} -> ${bad[0][2]}`);
    failed = true;
  }
}

// --- Unsafe 1: node-postgres told to parse int8 as a Number.
const numeric = new pg.Client({
  connectionString: dsn,
  types: { getTypeParser: (oid, format) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) },
});
await numeric.connect();
const asNumber = (await numeric.query("SELECT ref, id FROM audit_json")).rows;
if (typeof asNumber[0].id !== "number") throw new Error("the Number parser was not used");
unsafePath("pg-int8-as-Number", new Map(asNumber.map((r) => [r.ref, r.id])));
await numeric.end();

// --- Unsafe 2: JSON built in SQL with to_json(bigint) (a JSON number), read with JSON.parse.
const docSql = "SELECT json_agg(json_build_object('ref', ref, 'id', id))::text AS doc FROM audit_json";
const doc = (await client.query(docSql)).rows[0].doc;
unsafePath("JSON.parse-of-to_json", new Map(JSON.parse(doc).map((r) => [r.ref, r.id])));

// --- Safe 1: node-postgres' default: int8 arrives as a string.
const asText = (await client.query("SELECT ref, id FROM audit_json")).rows;
safePath("pg-default-string", new Map(asText.map((r) => [r.ref, r.id])));

// --- Safe 2: the ID as a string in SQL-built JSON (id::text), JSON.parse is then harmless.
const textDoc = (
  await client.query("SELECT json_agg(json_build_object('ref', ref, 'id', id::text))::text AS doc FROM audit_json")
).rows[0].doc;
safePath("JSON.parse-of-id::text", new Map(JSON.parse(textDoc).map((r) => [r.ref, r.id])));

// --- Safe 3: snowflake_json(id): the ID as a string and its decoded fields.
const sj = (await client.query("SELECT ref, snowflake_json(id)::text AS j FROM audit_json")).rows;
const sjRows = sj.map((r) => [r.ref, JSON.parse(r.j)]);
safePath("snowflake_json", new Map(sjRows.map(([ref, j]) => [ref, j.id])));
for (const [ref, j] of sjRows) {
  const [ms, node, seq] = decode(j.id);
  const ts = new Date(Number(ms)).toISOString(); // ms since 1970 fit a Number exactly
  if (j.ts !== ts || String(j.node) !== node || String(j.sequence) !== seq)
    throw new Error(`${ref}: snowflake_json ${JSON.stringify(j)} but the client decodes ${ts} ${node} ${seq}`);
}

// --- Safe 4: a JSON document with numeric IDs (to_json(id)), read with a BigInt-aware parser.
const big = losslessParse(doc, null, (v) => (isSafeNumber(v) ? Number(v) : BigInt(v)));
if (typeof big[0].id !== "bigint") throw new Error("lossless-json did not give a BigInt");
safePath("lossless-json-BigInt", new Map(big.map((r) => [r.ref, r.id])));

// Sending IDs on as JSON: JSON.stringify throws on a BigInt; write it as a string.
const out = JSON.stringify(big, (k, v) => (typeof v === "bigint" ? v.toString() : v));
safePath("JSON.stringify-BigInt-as-string", new Map(JSON.parse(out).map((r) => [r.ref, r.id])));

const rows = new Map(asText.map((r) => [r.ref, r.id]));
await checkAgainstServer(async (sql) => (await client.query(sql)).rows, "audit_json", rows);
report("audit_json", rows);
await client.end();
if (failed) process.exit(1);
