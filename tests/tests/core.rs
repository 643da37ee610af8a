//! The extension on one real server, in normal operation: many connections at once (8 x 50,000
//! and 16 x 1,000,000 IDs, no duplicate, each connection's IDs increasing) and the
//! configuration errors an operator meets (library not preloaded, node id unset or out of
//! range).

use postgres::binary_copy::BinaryCopyOutIter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::Client;
use snowflake_core::layout;
use snowflake_it::draw::{decreases, id_unix_ms, stat_i64};
use snowflake_it::{count_duplicates, Cluster};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

fn draw(conninfo: &str, batches: usize, per_batch: i64) -> Vec<i64> {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let mut out = Vec::with_capacity(batches * per_batch as usize);
    for _ in 0..batches {
        for row in c
            .query(
                "SELECT snowflake_nextval() FROM generate_series(1, $1::bigint)",
                &[&per_batch],
            )
            .unwrap()
        {
            out.push(row.get(0));
        }
    }
    out
}

#[test]
fn eight_connections_draw_400k_ids_without_a_duplicate() {
    let node = Cluster::init("core-concurrency", &["snowflake_id.node_id = 17"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let conninfo = node.conninfo();
            thread::spawn(move || draw(&conninfo, 100, 500))
        })
        .collect();
    let per_conn: Vec<Vec<i64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut all = Vec::new();
    for ids in &per_conn {
        assert_eq!(ids.len(), 50_000);
        let decreases = ids.windows(2).filter(|w| w[0] >= w[1]).count();
        assert_eq!(
            decreases, 0,
            "IDs not strictly increasing within a connection"
        );
        all.extend_from_slice(ids);
    }
    assert_eq!(count_duplicates(&all), 0);
    assert!(all.iter().all(|&id| layout::decode(id).unwrap().node == 17));
    // The connections really interleaved: the ranges they drew overlap in time.
    let spans: Vec<(i64, i64)> = per_conn
        .iter()
        .map(|v| (v[0], *v.last().unwrap()))
        .collect();
    let overlapping = spans.iter().enumerate().any(|(i, a)| {
        spans
            .iter()
            .enumerate()
            .any(|(j, b)| i != j && a.0 < b.1 && b.0 < a.1)
    });
    assert!(
        overlapping,
        "connections did not run concurrently: {spans:?}"
    );
    let issued: i64 = node
        .connect()
        .query_one("SELECT issued FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert_eq!(issued, 400_000);
}

/// Streams `sql` (a COPY ... TO STDOUT (FORMAT binary) of one int8 column) and returns the IDs.
fn copy_ids(c: &mut Client, sql: &str) -> Vec<i64> {
    let reader = c.copy_out(sql).unwrap();
    let mut rows = BinaryCopyOutIter::new(reader, &[Type::INT8]);
    let mut ids = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        ids.push(row.get::<i64>(0));
    }
    ids
}

#[test]
fn sixteen_connections_draw_a_million_ids_each() {
    const CONNECTIONS: usize = 16;
    const PER_CONNECTION: usize = 1_000_000;
    let node = Cluster::init("faults-16m", &["snowflake_id.node_id = 5"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let clients: Vec<Client> = (0..CONNECTIONS).map(|_| node.connect()).collect();
    let go = Arc::new(std::sync::Barrier::new(CONNECTIONS + 1));
    let workers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let go = go.clone();
            thread::spawn(move || {
                go.wait();
                let mut ids = Vec::with_capacity(PER_CONNECTION);
                // 10 statements of 100,000 per connection.
                for _ in 0..10 {
                    ids.extend(copy_ids(
                        &mut c,
                        "COPY (SELECT snowflake_nextval() FROM (SELECT generate_series(1, 100000)) s) \
                         TO STDOUT (FORMAT binary)",
                    ));
                }
                ids
            })
        })
        .collect();
    go.wait();
    let t = Instant::now();
    let per_conn: Vec<Vec<i64>> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = t.elapsed();
    let mut all = Vec::with_capacity(CONNECTIONS * PER_CONNECTION);
    for ids in &per_conn {
        assert_eq!(ids.len(), PER_CONNECTION);
        assert_eq!(
            decreases(ids),
            0,
            "IDs not strictly increasing within a connection"
        );
        all.extend_from_slice(ids);
    }
    let dups = count_duplicates(&all);
    assert_eq!(dups, 0, "duplicate IDs");
    let mut c = node.connect();
    let issued = stat_i64(&mut c, "issued");
    assert_eq!(issued, (CONNECTIONS * PER_CONNECTION) as i64);
    let (lo, hi) = (*all.iter().min().unwrap(), *all.iter().max().unwrap());
    let span_ms = id_unix_ms(hi) - id_unix_ms(lo) + 1;
    let borrowed = stat_i64(&mut c, "max_borrowed_ms");
    let waits = stat_i64(&mut c, "drift_waits");
    eprintln!(
        "[16x1M] {} IDs in {elapsed:.2?} = {:.0} IDs/s ({:.0}/ms; format limit 4,096/ms), IDs span \
         {span_ms} ms, max borrowed {borrowed} ms, drift waits {waits}, duplicates {dups}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64() / 1000.0
    );
}

/// Starts a fresh node with `settings`, creates the extension, and returns a connection and the
/// ERROR `snowflake_nextval()` raises there (panics if it returns an ID).
fn nextval_error(
    name: &str,
    settings: &[&str],
) -> (Cluster, postgres::Client, postgres::error::DbError) {
    let node = Cluster::init(name, settings);
    node.start();
    let mut c = node.connect();
    c.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let err = c
        .query_one("SELECT snowflake_nextval()", &[])
        .expect_err("snowflake_nextval() returned an ID");
    let db = err.as_db_error().expect("a server error").clone();
    assert_eq!(db.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    (node, c, db)
}

#[test]
fn not_preloaded_is_a_clear_error_and_the_backend_survives() {
    let (node, mut c, db) = nextval_error("core-no-preload", &["shared_preload_libraries = ''"]);
    assert!(
        db.message().contains("shared_preload_libraries"),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap_or("").contains("shared_preload_libraries"));
    // The HINT's command keeps the libraries already preloaded, and works: run as given, with a
    // node id and a restart, the server preloads both.
    let (other, mut oc, db) = nextval_error(
        "core-no-preload-list",
        &["shared_preload_libraries = 'plpgsql'"],
    );
    let hint = db.hint().unwrap_or("").to_string();
    let command = hint
        .split_once("keeping the libraries already there: ")
        .and_then(|(_, rest)| rest.split_once("; then"))
        .map(|(cmd, _)| cmd.to_string())
        .unwrap_or_else(|| panic!("no command in the HINT: {hint}"));
    assert!(command.contains("plpgsql"), "{command}");
    oc.batch_execute(&command).unwrap();
    assert!(hint.contains("postgresql.conf"), "{hint}");
    other.append_conf("snowflake_id.node_id = 9\n");
    drop(oc);
    other.stop();
    other.start();
    let mut oc = other.connect();
    let preloaded: String = oc
        .query_one("SHOW shared_preload_libraries", &[])
        .unwrap()
        .get(0);
    assert_eq!(preloaded, "plpgsql, snowflake_id");
    let id: i64 = oc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(id).unwrap().node, 9);
    // Same connection, still alive; decoders need no shared memory.
    let node_of: i32 = c
        .query_one("SELECT snowflake_node((5::bigint << 12))", &[])
        .unwrap()
        .get(0);
    assert_eq!(node_of, 5);
    assert!(c.query_one("SELECT * FROM snowflake_stats()", &[]).is_err());
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    assert!(
        !node.log().contains("terminated by signal"),
        "a backend crashed:\n{}",
        node.log()
    );
}

#[test]
fn unset_node_id_is_an_error_until_configured_and_restarted() {
    let (node, mut c, db) = nextval_error("core-no-node-id", &[]);
    assert!(db.message().contains("snowflake_id.node_id"));
    assert!(db.hint().unwrap_or("").contains("postgresql.conf"));
    // A reload does not apply it: a server never issues IDs under two node ids at once.
    c.batch_execute("ALTER SYSTEM SET snowflake_id.node_id = 321")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    snowflake_it::wait_for(
        "the reload to be refused",
        std::time::Duration::from_secs(30),
        || {
            node.log()
                .contains("cannot be changed without restarting the server")
                .then_some(())
        },
    );
    let mut c2 = node.connect();
    let err = c2
        .query_one("SELECT snowflake_nextval()", &[])
        .expect_err("a reload applied the node id");
    assert_eq!(
        err.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    // A restart does.
    drop((c, c2));
    node.stop();
    node.start();
    let id: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(id).unwrap().node, 321);
}

/// Whether a log line names the setting and the bad value 5000 (the ERROR of a call to
/// `snowflake_nextval()`, "node_id is not set", names neither the value nor comes from the file).
fn names_bad_node_id(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("snowflake_id.node_id") && l.contains("5000"))
}

#[test]
fn out_of_range_node_id_in_the_config_file_is_logged_at_start_and_at_reload() {
    // At start: the bad value is in postgresql.conf before the server first starts, so every
    // line of the log was written by that start; no session has run yet.
    let node = Cluster::init("core-bad-node-id", &["snowflake_id.node_id = 5000"]);
    node.start();
    let start_log = node.log();
    assert!(
        names_bad_node_id(&start_log),
        "the start did not log the bad setting:\n{start_log}"
    );
    let mut c = node.connect();
    c.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let err = c
        .query_one("SELECT snowflake_nextval()", &[])
        .expect_err("an ID under an invalid node id");
    assert_eq!(
        err.as_db_error().expect("a server error").code(),
        &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
    );

    // Fixed in the file, server restarted (the setting may need a restart): IDs, and this start
    // logs no complaint.
    let before_fix = node.log_len();
    node.append_conf("snowflake_id.node_id = 7\n");
    node.stop();
    node.start();
    let mut c = node.connect();
    let id: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(id).unwrap().node, 7);
    let fix_log = node.log_since(before_fix);
    assert!(!names_bad_node_id(&fix_log), "{fix_log}");

    // At reload: the bad value again, in the file. Only what the server logs after this point
    // counts; it must name the setting and the value.
    let before = node.log_len();
    node.append_conf("snowflake_id.node_id = 5000\n");
    node.reload();
    snowflake_it::wait_for(
        "the reload to log the bad setting",
        std::time::Duration::from_secs(30),
        || names_bad_node_id(&node.log_since(before)).then_some(()),
    );
    // The server keeps the node id it had: IDs go on under node 7.
    let mut c = node.connect();
    let v: String = c
        .query_one("SHOW snowflake_id.node_id", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "7");
    let next: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(next).unwrap().node, 7);
    assert!(next > id);
}
