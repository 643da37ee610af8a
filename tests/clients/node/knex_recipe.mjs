// Knex (query builder, on node-postgres): the key is the column's database default, read back
// with .returning(); bigints stay strings.
// Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
import knexFactory from "knex";
import { checkAgainstServer, report } from "./common.mjs";

const knex = knexFactory({ client: "pg", connection: process.env.SNOWFLAKE_DSN, pool: { min: 1, max: 1 } });
await knex.schema.createTable("audit_knex", (t) => {
  // Not t.bigIncrements(): that is an IDENTITY/serial column. A bigint with the extension's default.
  t.bigInteger("id").primary().defaultTo(knex.raw("snowflake_nextval()"));
  t.text("ref").notNullable().unique();
  t.text("note");
});
const rows = new Map();

const [one] = await knex("audit_knex").insert({ ref: "knex-0", note: "one" }).returning("id");
rows.set("knex-0", one.id);

// An array of rows is one multi-row INSERT ... RETURNING: one round trip.
const batch = Array.from({ length: 500 }, (_, i) => ({ ref: `knex-${i + 1}`, note: "batch" }));
for (const r of await knex("audit_knex").insert(batch).returning(["ref", "id"])) rows.set(r.ref, r.id);

await checkAgainstServer(async (sql) => (await knex.raw(sql)).rows, "audit_knex", rows);
report("audit_knex", rows);
await knex.destroy();
