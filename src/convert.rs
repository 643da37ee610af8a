//! `snowflake_convert_column(tbl regclass, col text)`: switches an existing `serial`,
//! `bigserial`, identity or plain integer key column to `DEFAULT snowflake_nextval()`.
//!
//! * keeps every row and value; widens `smallint`/`integer` to `bigint`;
//! * drops the identity (and its sequence) or the column's `serial` default and the sequence the
//!   column owns; a default taken from a sequence the column does not own is only detached;
//! * refuses (SQLSTATE, message, HINT) when the result would not be a Snowflake key: existing
//!   values at or above the first Snowflake ID of now (they would not sort below new IDs), a
//!   non-integer or generated column, a default that is not a sequence, a foreign key in another
//!   table whose column is narrower than `bigint`, a relation that is not a table.
//!
//! Runs as one transaction step under an ACCESS EXCLUSIVE lock, so no row can slip in between
//! the check and the change. Only the table's owner may convert it, checked before the lock is
//! taken or a row read. The function pins `search_path` to `pg_catalog, pg_temp` and qualifies
//! every name it uses: nothing another role planted on the caller's path runs.

use crate::errors::{self, raise};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::PgSqlErrorCode;
use snowflake_core::clock::SystemClock;
use snowflake_core::layout;

fn spi_err(e: pgrx::spi::SpiError) -> ! {
    errors::spi("snowflake_convert_column", e)
}

fn exec(client: &mut SpiClient<'_>, sql: &str) {
    client.update(sql, None, &[]).unwrap_or_else(|e| spi_err(e));
}

struct Column {
    table: String,
    relkind: String,
    type_name: String,
    identity: String,
    generated: String,
    owned_sequence: Option<String>,
    default_expr: Option<String>,
}

/// Converts `tbl.col` to `bigint DEFAULT snowflake_nextval()`; returns what was done.
#[pg_extern(
    volatile,
    sql = r#"
CREATE FUNCTION snowflake_convert_column(tbl regclass, col text) RETURNS text
    VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c
    SET search_path TO pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION snowflake_convert_column(regclass, text) IS
  'snowflake_id: switch a serial/bigserial/identity/integer column to bigint DEFAULT snowflake_nextval(), keeping its rows';
"#
)]
fn snowflake_convert_column(tbl: pg_sys::Oid, col: &str) -> String {
    Spi::connect_mut(|client| convert(client, tbl, col))
}

fn convert(client: &mut SpiClient<'_>, tbl: pg_sys::Oid, col: &str) -> String {
    // With search_path pinned, regclass output is schema-qualified.
    let found = client
        .select(
            "SELECT c.oid::pg_catalog.regclass::pg_catalog.text, \
                    pg_catalog.pg_has_role(c.relowner, 'USAGE') \
             FROM pg_catalog.pg_class c WHERE c.oid = $1",
            None,
            &[tbl.into()],
        )
        .unwrap_or_else(|e| spi_err(e));
    let (table_name, owner) = found
        .into_iter()
        .next()
        .map(|r| {
            let name: String = r.get(1).ok().flatten().unwrap_or_default();
            let owner: bool = r.get(2).ok().flatten().unwrap_or(false);
            (name, owner)
        })
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!(
                    "snowflake_id: relation with OID {} does not exist",
                    tbl.to_u32()
                ),
                None,
                "Pass an existing table, e.g. snowflake_convert_column('public.orders', 'id').",
            )
        });
    if !owner {
        errors::not_owner(&table_name);
    }
    exec(
        client,
        &format!("LOCK TABLE {table_name} IN ACCESS EXCLUSIVE MODE"),
    );

    let found = client
        .select(
            "SELECT c.relkind::pg_catalog.text, pg_catalog.format_type(a.atttypid, NULL), \
                    a.attidentity::pg_catalog.text, a.attgenerated::pg_catalog.text, \
                    pg_catalog.pg_get_serial_sequence($1::pg_catalog.regclass::pg_catalog.text, a.attname), \
                    pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
             WHERE c.oid = $1 AND a.attname = $2",
            None,
            &[tbl.into(), col.into()],
        )
        .unwrap_or_else(|e| spi_err(e));
    let Some(row) = found.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("snowflake_id: column \"{col}\" of relation {table_name} does not exist"),
            None,
            "Pass the column name as stored (case-sensitive, unquoted), e.g. 'id'.",
        )
    };
    let c = Column {
        table: table_name,
        relkind: row.get::<String>(1).ok().flatten().unwrap_or_default(),
        type_name: row.get::<String>(2).ok().flatten().unwrap_or_default(),
        identity: row.get::<String>(3).ok().flatten().unwrap_or_default(),
        generated: row.get::<String>(4).ok().flatten().unwrap_or_default(),
        owned_sequence: row.get::<String>(5).ok().flatten(),
        default_expr: row.get::<String>(6).ok().flatten(),
    };
    let qcol = quote_identifier(col);
    let what = format!("{}.{qcol}", c.table);

    if c.relkind != "r" && c.relkind != "p" {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("snowflake_id: {} is not a table", c.table),
            None,
            "Only columns of ordinary or partitioned tables can be converted.",
        );
    }
    if !matches!(c.type_name.as_str(), "smallint" | "integer" | "bigint") {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "snowflake_id: column {what} is of type {}, not an integer",
                c.type_name
            ),
            None,
            "Only smallint, integer and bigint columns (serial, bigserial, identity) can become \
             Snowflake ID columns; for other keys add a new bigint column instead.",
        );
    }
    if !c.generated.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("snowflake_id: column {what} is a generated column"),
            None,
            "Drop the generation expression first (ALTER TABLE ... ALTER COLUMN ... DROP EXPRESSION).",
        );
    }
    let new_default = format!(
        "{}.snowflake_nextval()",
        crate::registry::ext_schema(client)
    );

    let default = c.default_expr.clone().unwrap_or_default();
    if c.identity.is_empty() && default.contains("snowflake_nextval()") && c.type_name == "bigint" {
        return format!("{what} already is bigint DEFAULT {new_default}; nothing changed");
    }
    if c.identity.is_empty() && !default.is_empty() && !default.starts_with("nextval(") {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("snowflake_id: column {what} has the default {default}, not a sequence"),
            None,
            "Only serial, bigserial, identity columns or integer columns without a default are \
             converted; drop the default first if it should be replaced.",
        );
    }

    // Foreign keys elsewhere must hold 63-bit values too.
    let narrow_refs: Vec<String> = client
        .select(
            "SELECT pg_catalog.format('%s.%I (%s)', fk.conrelid::pg_catalog.regclass, a.attname, \
                                      pg_catalog.format_type(a.atttypid, NULL)) \
             FROM pg_catalog.pg_constraint fk \
             JOIN pg_catalog.pg_attribute pa ON pa.attrelid = fk.confrelid AND pa.attname = $2 \
             JOIN LATERAL unnest(fk.confkey, fk.conkey) AS k(ref, loc) ON k.ref = pa.attnum \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.loc \
             WHERE fk.contype = 'f' AND fk.confrelid = $1 AND a.atttypid <> 'pg_catalog.int8'::pg_catalog.regtype \
             ORDER BY 1",
            None,
            &[tbl.into(), col.into()],
        )
        .unwrap_or_else(|e| spi_err(e))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect();
    if !narrow_refs.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "snowflake_id: foreign keys referencing {what} are narrower than bigint: {}",
                narrow_refs.join(", ")
            ),
            Some("New Snowflake IDs would not fit into the referencing columns.".into()),
            "Widen the referencing columns first (ALTER TABLE ... ALTER COLUMN ... TYPE bigint).",
        );
    }

    // Existing values must sort below every new ID.
    let first_new = layout::first_id_at(SystemClock::unix_ms()).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("snowflake_id: {e}"),
            None,
            "Check the system clock.",
        )
    });
    let max_existing: Option<i64> = client
        .select(
            &format!(
                "SELECT pg_catalog.max({qcol})::pg_catalog.int8 FROM {}",
                c.table
            ),
            None,
            &[],
        )
        .and_then(|t| t.first().get_one())
        .unwrap_or_else(|e| spi_err(e));
    if let Some(max) = max_existing.filter(|&m| m >= first_new) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "snowflake_id: existing values of {what} reach {max}, at or above the first \
                 Snowflake ID of now ({first_new})"
            ),
            Some(
                "Snowflake IDs sort by time; new rows would get IDs below existing ones, and \
                 could even collide with them."
                    .into(),
            ),
            "Keep the sequence for this table, or renumber the existing rows below the first \
             Snowflake ID (see snowflake_from_timestamp(now())) before converting.",
        );
    }

    let mut done = Vec::new();
    if !c.identity.is_empty() {
        exec(
            client,
            &format!("ALTER TABLE {} ALTER COLUMN {qcol} DROP IDENTITY", c.table),
        );
        done.push(format!(
            "dropped the identity{}",
            c.owned_sequence
                .as_ref()
                .map(|s| format!(" and its sequence {s}"))
                .unwrap_or_default()
        ));
    } else if !default.is_empty() {
        exec(
            client,
            &format!("ALTER TABLE {} ALTER COLUMN {qcol} DROP DEFAULT", c.table),
        );
        match &c.owned_sequence {
            Some(seq) if default.contains(&strip_quotes_schema(seq)) => {
                exec(client, &format!("DROP SEQUENCE {seq}"));
                done.push(format!(
                    "dropped the default {default} and the sequence {seq}"
                ));
            }
            _ => done.push(format!("dropped the default {default}")),
        }
    }
    if c.type_name != "bigint" {
        exec(
            client,
            &format!("ALTER TABLE {} ALTER COLUMN {qcol} TYPE bigint", c.table),
        );
        done.push(format!("widened {} to bigint", c.type_name));
    }
    exec(
        client,
        &format!(
            "ALTER TABLE {} ALTER COLUMN {qcol} SET DEFAULT {new_default}",
            c.table
        ),
    );
    done.push(format!("set DEFAULT {new_default}"));
    format!(
        "{what}: {}; existing values (max {}) sort below new IDs (from {first_new})",
        done.join(", "),
        max_existing
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into())
    )
}

/// The relation part of a possibly schema-qualified sequence name, as it appears in a
/// `nextval('...'::regclass)` default.
fn strip_quotes_schema(seq: &str) -> String {
    seq.rsplit('.')
        .next()
        .unwrap_or(seq)
        .trim_matches('"')
        .to_string()
}
