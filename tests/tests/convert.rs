//! `snowflake_convert_column()` on real servers: serial, bigserial and identity columns
//! converted (rows kept, new IDs of the node), then dumped and restored onto another server;
//! generated columns and other defaults refused, plain integer columns converted.

use postgres::error::SqlState;
use postgres::Client;
use snowflake_core::layout;
use snowflake_it::dump::{self, Format};
use snowflake_it::Cluster;

fn sql_err(client: &mut Client, sql: &str) -> postgres::error::DbError {
    let e = client.batch_execute(sql).expect_err(sql);
    e.as_db_error()
        .unwrap_or_else(|| panic!("{sql}: {e}"))
        .clone()
}

/// (type, default, is_identity) of a column.
fn column(client: &mut Client, table: &str, col: &str) -> (String, Option<String>, String) {
    let r = client
        .query_one(
            "SELECT data_type::text, column_default::text, is_identity::text FROM information_schema.columns
             WHERE table_name = $1 AND column_name = $2",
            &[&table, &col],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn ids(client: &mut Client, table: &str) -> Vec<i64> {
    client
        .query(&format!("SELECT id::bigint FROM {table} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn convert_serial_bigserial_and_identity_columns_then_dump_and_restore() {
    let src = Cluster::init("cluster-convert", &["snowflake_id.node_id = 11"]);
    src.start();
    let mut c = src.connect();
    c.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE t_serial (id serial PRIMARY KEY, v text);
         CREATE TABLE t_bigserial (id bigserial PRIMARY KEY, v text);
         CREATE TABLE t_identity (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
         CREATE TABLE t_child (id bigserial PRIMARY KEY, parent bigint REFERENCES t_bigserial(id));
         INSERT INTO t_serial (v) SELECT 's' || g FROM generate_series(1, 500) g;
         INSERT INTO t_bigserial (v) SELECT 'b' || g FROM generate_series(1, 500) g;
         INSERT INTO t_identity (v) SELECT 'i' || g FROM generate_series(1, 500) g;
         DELETE FROM t_serial WHERE id % 7 = 0;
         INSERT INTO t_child (parent) SELECT id FROM t_bigserial WHERE id <= 100;",
    )
    .unwrap();
    let before: Vec<Vec<i64>> = ["t_serial", "t_bigserial", "t_identity"]
        .iter()
        .map(|t| ids(&mut c, t))
        .collect();

    // Refusals first: each leaves the table as it was.
    c.batch_execute("CREATE TABLE t_narrow_child (p int REFERENCES t_serial(id))")
        .unwrap();
    let e = sql_err(&mut c, "SELECT snowflake_convert_column('t_serial', 'id')");
    assert_eq!(e.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert!(
        e.message().contains("t_narrow_child.p (integer)"),
        "{}",
        e.message()
    );
    assert!(e.hint().unwrap_or("").contains("TYPE bigint"));
    assert_eq!(
        column(&mut c, "t_serial", "id").0,
        "integer",
        "a refused conversion changed the column"
    );
    c.batch_execute("DROP TABLE t_narrow_child").unwrap();

    let e = sql_err(&mut c, "SELECT snowflake_convert_column('t_serial', 'v')");
    assert_eq!(e.code(), &SqlState::DATATYPE_MISMATCH);
    let e = sql_err(
        &mut c,
        "SELECT snowflake_convert_column('t_serial', 'nope')",
    );
    assert_eq!(e.code(), &SqlState::UNDEFINED_COLUMN);
    let e = sql_err(
        &mut c,
        "SELECT snowflake_convert_column('no_such_table', 'id')",
    );
    assert_eq!(e.code(), &SqlState::UNDEFINED_TABLE);
    c.batch_execute("CREATE VIEW v_serial AS SELECT * FROM t_serial")
        .unwrap();
    let e = sql_err(&mut c, "SELECT snowflake_convert_column('v_serial', 'id')");
    assert_eq!(e.code(), &SqlState::WRONG_OBJECT_TYPE);
    c.batch_execute("DROP VIEW v_serial").unwrap();

    // Values that would not sort below new IDs: a row written a minute ahead of the clock.
    c.batch_execute(
        "CREATE TABLE t_high (id bigserial PRIMARY KEY);
         INSERT INTO t_high VALUES (DEFAULT), (snowflake_from_timestamp(now() + interval '1 minute'));",
    )
    .unwrap();
    let e = sql_err(&mut c, "SELECT snowflake_convert_column('t_high', 'id')");
    assert_eq!(e.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert!(
        e.message().contains("at or above the first Snowflake ID"),
        "{}",
        e.message()
    );
    assert!(
        e.hint().unwrap_or("").contains("renumber"),
        "{:?}",
        e.hint()
    );
    let (_, default, _) = column(&mut c, "t_high", "id");
    assert!(
        default.unwrap_or_default().starts_with("nextval("),
        "refused conversion kept the sequence"
    );

    // The three conversions.
    for (table, dropped) in [
        ("t_serial", "widened integer to bigint"),
        ("t_bigserial", "sequence public.t_bigserial_id_seq"),
        ("t_identity", "dropped the identity"),
    ] {
        let done: String = c
            .query_one(
                "SELECT snowflake_convert_column($1::text::regclass, 'id')",
                &[&table],
            )
            .unwrap()
            .get(0);
        assert!(done.contains(dropped), "{table}: {done}");
        let (ty, default, identity) = column(&mut c, table, "id");
        assert_eq!(ty, "bigint", "{table}");
        assert_eq!(default.as_deref(), Some("snowflake_nextval()"), "{table}");
        assert_eq!(identity, "NO", "{table}");
    }
    let seqs: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relkind = 'S' AND relname LIKE 't\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(seqs, 2, "only t_child's and t_high's sequences are left");
    let after: Vec<Vec<i64>> = ["t_serial", "t_bigserial", "t_identity"]
        .iter()
        .map(|t| ids(&mut c, t))
        .collect();
    assert_eq!(before, after, "existing rows changed");
    // Converting again is a no-op.
    let again: String = c
        .query_one("SELECT snowflake_convert_column('t_serial', 'id')", &[])
        .unwrap()
        .get(0);
    assert!(again.contains("nothing changed"), "{again}");

    // New rows get Snowflake IDs of this node, above every old value.
    c.batch_execute(
        "INSERT INTO t_serial (v) VALUES ('new');
         INSERT INTO t_bigserial (v) VALUES ('new');
         INSERT INTO t_identity (v) VALUES ('new');",
    )
    .unwrap();
    for (i, table) in ["t_serial", "t_bigserial", "t_identity"].iter().enumerate() {
        let all = ids(&mut c, table);
        let new = *all.last().unwrap();
        assert!(new > *before[i].last().unwrap());
        assert_eq!(layout::decode(new).unwrap().node, 11, "{table}");
        assert_eq!(all.len(), before[i].len() + 1);
    }

    // pg_dump / pg_restore onto another server (node 12): the column keeps its default.
    let dump = src.dir.join("convert.dump");
    dump::dump(&src.conninfo(), &dump, Format::Custom);
    let dst = Cluster::init("cluster-convert-restored", &["snowflake_id.node_id = 12"]);
    dst.start();
    dump::restore(&dst.conninfo(), &dump);
    let mut r = dst.connect();
    for (i, table) in ["t_serial", "t_bigserial", "t_identity"].iter().enumerate() {
        let (ty, default, _) = column(&mut r, table, "id");
        assert_eq!(
            (ty.as_str(), default.as_deref()),
            ("bigint", Some("snowflake_nextval()")),
            "{table}"
        );
        let restored = ids(&mut r, table);
        assert_eq!(
            restored,
            ids(&mut c, table),
            "{table} differs after restore"
        );
        r.batch_execute(&format!(
            "INSERT INTO {table} (v) SELECT 'restored' || g FROM generate_series(1, 100) g"
        ))
        .unwrap();
        let all = ids(&mut r, table);
        assert_eq!(all.len(), before[i].len() + 101);
        let fresh = &all[all.len() - 100..];
        assert!(
            fresh
                .iter()
                .all(|&id| layout::decode(id).unwrap().node == 12),
            "{table}"
        );
        assert!(fresh[0] > restored[restored.len() - 1]);
    }
}

#[test]
fn convert_refuses_generated_columns_and_other_defaults_and_converts_plain_integer_columns() {
    let node = Cluster::init("cluster-convert-more", &["snowflake_id.node_id = 13"]);
    node.start();
    let mut c = node.connect();
    c.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE t_gen (a bigint PRIMARY KEY, id bigint GENERATED ALWAYS AS (a * 2) STORED);
         CREATE TABLE t_const (id bigint PRIMARY KEY DEFAULT 42, v text);
         CREATE TABLE t_expr (id int PRIMARY KEY DEFAULT (random() * 1000)::int, v text);
         CREATE TABLE t_plain (id int PRIMARY KEY, v text);
         INSERT INTO t_gen (a) SELECT generate_series(1, 10);
         INSERT INTO t_plain SELECT g, 'p' || g FROM generate_series(1, 300) g;",
    )
    .unwrap();
    // A generated column: refused, left as it was.
    let e = sql_err(&mut c, "SELECT snowflake_convert_column('t_gen', 'id')");
    assert_eq!(
        e.code(),
        &SqlState::FEATURE_NOT_SUPPORTED,
        "{}",
        e.message()
    );
    assert!(e.message().contains("generated"), "{}", e.message());
    assert!(
        e.hint().unwrap_or("").contains("DROP EXPRESSION"),
        "{:?}",
        e.hint()
    );
    let generated: String = c
        .query_one(
            "SELECT attgenerated::text FROM pg_attribute WHERE attrelid = 't_gen'::regclass AND attname = 'id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(generated, "s");
    // Defaults that are not a sequence: refused, default kept.
    for (table, default) in [
        ("t_const", "42"),
        ("t_expr", "((random() * (1000)::double precision))::integer"),
    ] {
        let e = sql_err(
            &mut c,
            &format!("SELECT snowflake_convert_column('{table}', 'id')"),
        );
        assert_eq!(
            e.code(),
            &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{table}: {}",
            e.message()
        );
        assert!(
            e.message().contains("not a sequence"),
            "{table}: {}",
            e.message()
        );
        assert!(
            e.hint().is_some_and(|h| h.contains("drop the default")),
            "{table}: {:?}",
            e.hint()
        );
        assert_eq!(
            column(&mut c, table, "id").1.as_deref(),
            Some(default),
            "{table}"
        );
    }
    // A plain integer column without a default: widened, given the default, rows kept.
    let before = ids(&mut c, "t_plain");
    let done: String = c
        .query_one("SELECT snowflake_convert_column('t_plain', 'id')", &[])
        .unwrap()
        .get(0);
    assert!(done.contains("widened integer to bigint"), "{done}");
    let (ty, default, _) = column(&mut c, "t_plain", "id");
    assert_eq!(
        (ty.as_str(), default.as_deref()),
        ("bigint", Some("snowflake_nextval()"))
    );
    assert_eq!(ids(&mut c, "t_plain"), before);
    c.batch_execute("INSERT INTO t_plain (v) VALUES ('new')")
        .unwrap();
    let new = *ids(&mut c, "t_plain").last().unwrap();
    assert!(new > 300);
    assert_eq!(layout::decode(new).unwrap().node, 13);
}
