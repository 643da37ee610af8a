//! pg_dump and restores on real servers, through the one helper `snowflake_it::dump`: column
//! defaults survive a dump into another database, and a fresh server with another node id
//! issues its own IDs, after the restored ones, into the restored tables; the node registry is
//! dumped with its rows. A column converted by `snowflake_convert_column()` and then dumped is
//! in `convert.rs`.

use postgres::{Client, NoTls};
use snowflake_it::dump::{self, Format};
use snowflake_it::{cargo_version, extversion, Cluster};
use std::collections::HashSet;

#[test]
fn column_default_survives_pg_dump_and_restore_into_another_database() {
    let node = Cluster::init("core-dump", &["snowflake_id.node_id = 4"]);
    node.start();
    node.psql("CREATE DATABASE src");
    node.psql("CREATE DATABASE dst");
    let src = node.conninfo().replace("dbname=postgres", "dbname=src");
    let dst = node.conninfo().replace("dbname=postgres", "dbname=dst");
    let mut c = postgres::Client::connect(&src, postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit_log(id bigint PRIMARY KEY DEFAULT snowflake_nextval(), user_id int, note text);
         INSERT INTO audit_log(user_id, note) SELECT g % 10, 'before' FROM generate_series(1, 1000) g;",
    )
    .unwrap();
    let dump = node.dir.join("src.dump");
    dump::dump(&src, &dump, Format::Custom);
    dump::restore(&dst, &dump);
    let mut d = postgres::Client::connect(&dst, postgres::NoTls).unwrap();
    d.batch_execute("INSERT INTO audit_log(user_id, note) SELECT g % 10, 'after' FROM generate_series(1, 1000) g")
        .unwrap();
    let rows = d
        .query("SELECT id, note FROM audit_log ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len(), 2000);
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2000);
    // Ordered by ID, every restored row comes before every new one.
    let notes: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert!(
        notes[..1000].iter().all(|n| n == "before") && notes[1000..].iter().all(|n| n == "after")
    );
    let default: String = d
        .query_one("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'audit_log'::regclass", &[])
        .unwrap()
        .get(0);
    assert!(default.contains("snowflake_nextval()"), "{default}");
}

#[test]
fn dump_and_restore_into_a_fresh_server_keeps_rows_and_defaults() {
    let src = Cluster::init("pkg-dump-src", &["snowflake_id.node_id = 21"]);
    let dst = Cluster::init("pkg-dump-dst", &["snowflake_id.node_id = 22"]);
    src.start();
    dst.start();
    let mut s = src.connect();
    s.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE SCHEMA app;
         CREATE TABLE app.audit_log (
           id bigint PRIMARY KEY DEFAULT snowflake_nextval(),
           note text NOT NULL,
           CHECK (snowflake_node(id) BETWEEN 0 AND 1023));
         CREATE INDEX audit_log_ts ON app.audit_log ((snowflake_timestamp(id)));
         CREATE TABLE app.child (id bigint PRIMARY KEY DEFAULT snowflake_nextval(),
                                 parent bigint NOT NULL REFERENCES app.audit_log);
         CREATE VIEW app.audit_log_decoded AS
           SELECT id, id::text AS id_text, (snowflake_parse(id)).* , note FROM app.audit_log;
         INSERT INTO app.audit_log (note) SELECT 'row ' || g FROM generate_series(1, 3000) g;
         INSERT INTO app.child (parent) SELECT id FROM app.audit_log WHERE note LIKE '%7';",
    )
    .unwrap();
    let checksum =
        "SELECT md5(string_agg(id::text || ':' || note, ',' ORDER BY id)) FROM app.audit_log";
    let src_sum: String = s.query_one(checksum, &[]).unwrap().get(0);
    let src_max: i64 = s
        .query_one("SELECT max(id) FROM app.audit_log", &[])
        .unwrap()
        .get(0);

    let dump = dst.dir.join("src.dump");
    dump::dump(&src.conninfo(), &dump, Format::Custom);
    // The dump creates the extension; its functions are not dumped as loose objects.
    let list = dump::contents(&dump);
    assert!(list.contains("EXTENSION - snowflake_id"), "{list}");
    assert!(
        !list
            .lines()
            .any(|l| l.contains(" FUNCTION ") && l.contains("snowflake_")),
        "{list}"
    );
    drop(s);
    src.stop();

    dump::restore(&dst.conninfo(), &dump);

    let mut d = dst.connect();
    let dst_sum: String = d.query_one(checksum, &[]).unwrap().get(0);
    assert_eq!(dst_sum, src_sum, "restored rows differ");
    let default: String = d
        .query_one(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'app.audit_log'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(default, "snowflake_nextval()");
    assert_eq!(extversion(&mut d), cargo_version());

    // The fresh server issues its own IDs into the restored tables: its node id, no clash.
    d.batch_execute(
        "INSERT INTO app.audit_log (note) SELECT 'new ' || g FROM generate_series(1, 2000) g;
         INSERT INTO app.child (parent) SELECT id FROM app.audit_log WHERE note = 'new 1';",
    )
    .unwrap();
    let r = d
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), count(*) FILTER (WHERE snowflake_node(id) = 22)
             FROM app.audit_log WHERE note LIKE 'new %'",
            &[],
        )
        .unwrap();
    let (n, distinct, min_new, on_22): (i64, i64, i64, i64) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    assert_eq!((n, distinct, on_22), (2000, 2000, 2000));
    assert!(
        min_new > src_max,
        "new IDs {min_new} not after the restored ones {src_max}"
    );
    let restored_nodes: Vec<i32> = d
        .query(
            "SELECT DISTINCT node FROM app.audit_log_decoded WHERE note LIKE 'row %'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(restored_nodes, vec![21]);
    let total: i64 = d
        .query_one("SELECT count(*) FROM app.audit_log", &[])
        .unwrap()
        .get(0);
    assert_eq!(total, 5000);
}

#[test]
fn pg_dump_keeps_the_node_registry() {
    let node = Cluster::init("hard-dump", &["snowflake_id.node_id = 7"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id; SELECT snowflake_register_node();");
    node.psql("INSERT INTO snowflake_nodes (node_id, system_identifier, host, port) VALUES (8, 42, 'other', 5432)");
    let file = node.dir.join("dump.sql");
    dump::dump(&node.conninfo(), &file, Format::Plain);
    node.psql("CREATE DATABASE restored");
    let restored = node
        .conninfo()
        .replace("dbname=postgres", "dbname=restored");
    dump::restore(&restored, &file);
    let mut c = Client::connect(&restored, NoTls).unwrap();
    let nodes: Vec<i32> = c
        .query("SELECT node_id FROM snowflake_nodes ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nodes, vec![7, 8]);
}
