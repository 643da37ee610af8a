//! Crashes and a damaged state file, on real servers: `kill -9` of backends and of the
//! postmaster under an insert load, a restart continuing above the last ID, a corrupted,
//! unreadable, unwritable or foreign state file (the file the generator keeps its ceiling in).
//! A state file deleted before crash recovery, where the WAL brings the ceiling back, is in
//! `failover.rs`.

use postgres::error::SqlState;
use snowflake_core::layout;
use snowflake_core::store::Writer;
use snowflake_it::clock;
use snowflake_it::draw::{
    connect_retrying, connection_lost, crash_restart, decreases, draw_increasing, id_unix_ms,
    nextval, reinitializations, stat_i64, wait_drawn,
};
use snowflake_it::state::{saved_ceiling_unix_ms, write_ceiling};
use snowflake_it::{count_duplicates, kill9, wait_for, Cluster};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct InsertLog {
    conn: i32,
    /// (seq, id) of every row whose INSERT the client saw committed.
    acked: Vec<(i64, i64)>,
    unexpected: Vec<String>,
    reconnects: usize,
}

const BATCH: i64 = 50;

/// One connection inserting batches of rows (autocommit) until `stop`, reconnecting after kills.
fn insert_until(
    conninfo: String,
    conn: i32,
    stop: Arc<AtomicBool>,
    acked_rows: Arc<AtomicU64>,
) -> InsertLog {
    let mut log = InsertLog {
        conn,
        acked: Vec::new(),
        unexpected: Vec::new(),
        reconnects: 0,
    };
    let mut next_seq = 0i64;
    'connect: while let Some(mut c) = connect_retrying(&conninfo, &stop) {
        log.reconnects += 1;
        while !stop.load(Ordering::Relaxed) {
            let from = next_seq;
            next_seq += BATCH;
            match c.query(
                "INSERT INTO t(conn, seq) SELECT $1, g FROM generate_series($2::bigint, $3::bigint) g \
                 RETURNING seq, id",
                &[&conn, &from, &(from + BATCH - 1)],
            ) {
                Ok(rows) => {
                    log.acked.extend(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))));
                    acked_rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
                }
                // The batch may or may not have committed; its seq range is not reused.
                Err(e) if connection_lost(&e) => continue 'connect,
                Err(e) => {
                    log.unexpected.push(e.to_string());
                    if log.unexpected.len() > 10 {
                        break 'connect;
                    }
                }
            }
        }
        break;
    }
    log.reconnects -= 1;
    log
}

#[test]
fn kill9_backends_and_postmaster_under_an_insert_load() {
    const CONNECTIONS: i32 = 6;
    const BACKEND_KILLS: usize = 12;
    const POSTMASTER_KILLS: usize = 5;
    let node = Cluster::init("faults-kill9", &["snowflake_id.node_id = 33"]);
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE t(id bigint NOT NULL DEFAULT snowflake_nextval(), conn int NOT NULL, seq bigint NOT NULL)",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|conn| {
            let (conninfo, stop, acked) = (node.conninfo(), stop.clone(), acked.clone());
            thread::spawn(move || insert_until(conninfo, conn, stop, acked))
        })
        .collect();

    let started = Instant::now();
    let mut kills = Vec::new();
    for round in 0..BACKEND_KILLS + POSTMASTER_KILLS {
        // The load is running (again): rows are being committed.
        wait_drawn(&acked, 2_000);
        let mut mon = node.connect();
        let max_before: i64 = mon
            .query_one("SELECT coalesce(max(id), 0) FROM t", &[])
            .unwrap()
            .get(0);
        // Postmaster kills interleaved with the backend kills: rounds 2, 5, 8, 11, 14.
        if round % 3 == 2 && kills.iter().filter(|k| **k == "postmaster").count() < POSTMASTER_KILLS
        {
            drop(mon);
            node.kill9_postmaster();
            node.start();
            kills.push("postmaster");
        } else {
            let reinit = reinitializations(&node);
            let pids = node.backend_pids(&mut mon);
            assert!(!pids.is_empty(), "no backend to kill");
            kill9(pids[round % pids.len()]);
            wait_for("the crash-restart", Duration::from_secs(60), || {
                (reinitializations(&node) > reinit).then_some(())
            });
            kills.push("backend");
        }
        // Every ID issued after the kill is above every ID committed before it.
        let mut c = node.connect();
        let after = nextval(&mut c);
        assert!(
            after > max_before,
            "after kill {round}: {after} is not above {max_before}"
        );
    }
    wait_drawn(&acked, 2_000);
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<InsertLog> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();
    let backend_kills = kills.iter().filter(|k| **k == "backend").count();
    let postmaster_kills = kills.len() - backend_kills;
    assert!(backend_kills >= 10 && postmaster_kills >= 5, "{kills:?}");

    for l in &logs {
        assert!(
            l.unexpected.is_empty(),
            "connection {}: unexpected errors {:?}",
            l.conn,
            l.unexpected
        );
    }
    let mut c = node.connect();
    let rows = c
        .query("SELECT conn, seq, id FROM t ORDER BY conn, seq", &[])
        .unwrap();
    let mut by_conn: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
    for r in &rows {
        by_conn
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2)));
    }
    let all: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
    let dups = count_duplicates(&all);
    assert_eq!(dups, 0, "duplicate IDs in the table");
    let mut lost_acks = 0;
    for l in &logs {
        let committed = by_conn.get(&l.conn).cloned().unwrap_or_default();
        // In the order a connection committed its rows, their IDs increase, across every crash.
        let ids: Vec<i64> = committed.iter().map(|(_, id)| *id).collect();
        assert_eq!(
            decreases(&ids),
            0,
            "connection {}: IDs not increasing in commit order",
            l.conn
        );
        // Every row the client saw committed is there, with the ID it was told.
        let in_table: HashMap<i64, i64> = committed.into_iter().collect();
        lost_acks += l
            .acked
            .iter()
            .filter(|(seq, id)| in_table.get(seq) != Some(id))
            .count();
    }
    assert_eq!(lost_acks, 0, "acknowledged rows missing or changed");
    let reconnects: usize = logs.iter().map(|l| l.reconnects).sum();
    eprintln!(
        "[kill9] {backend_kills} backend kills + {postmaster_kills} postmaster kills in {elapsed:.1?}, \
         {} rows in the table ({} acknowledged), {reconnects} reconnects, {dups} duplicate IDs, 0 decreases",
        all.len(),
        logs.iter().map(|l| l.acked.len()).sum::<usize>()
    );
}

#[test]
fn restart_continues_above_the_last_id() {
    let node = Cluster::init("core-restart", &["snowflake_id.node_id = 1"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let before: i64 = node
        .psql("SELECT max(snowflake_nextval()) FROM generate_series(1, 100000)")
        .parse()
        .unwrap();
    node.stop();
    node.start();
    let after: i64 = node.psql("SELECT snowflake_nextval()").parse().unwrap();
    assert!(
        after > before,
        "{after} after restart is not above {before}"
    );
    let state = std::fs::read_to_string(node.data().join("snowflake_id.state")).unwrap();
    assert!(
        state.starts_with("snowflake_id state 2\n") && state.contains("\nnode_id 1\n"),
        "{state}"
    );
}

#[test]
fn corrupted_or_unreadable_state_file_is_an_error_until_restored() {
    let node = Cluster::init("faults-state", &["snowflake_id.node_id = 2"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    let (_, max_before) = draw_increasing(&mut c, 10_000);
    drop(c);
    let path = node.data().join("snowflake_id.state");
    let good = fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    // One digit of the ceiling changed: the checksum no longer matches.
    let line = text.lines().nth(1).unwrap();
    let last = line.chars().last().unwrap();
    let edited = text.replacen(
        line,
        &format!(
            "{}{}",
            &line[..line.len() - 1],
            if last == '9' { '8' } else { '9' }
        ),
        1,
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a changed digit", edited.into_bytes()),
        ("binary garbage", vec![0xff, 0xfe, 0x00, 0x13, 0x37]),
        ("an empty file", Vec::new()),
        ("a truncated file", good[..good.len() / 2].to_vec()),
    ];
    let mut errors = 0;
    for (i, (what, bytes)) in cases.iter().enumerate() {
        fs::write(&path, bytes).unwrap(); // same inode, still owned by postgres
        if i % 2 == 0 {
            crash_restart(&node);
        } else {
            node.stop();
            node.start();
        }
        let mut c = node.connect();
        for _ in 0..2 {
            let err = c.query_one("SELECT snowflake_nextval()", &[]).unwrap_err();
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{what}: not a server error: {err}"));
            assert_eq!(
                db.code(),
                &SqlState::DATA_CORRUPTED,
                "{what}: {}",
                db.message()
            );
            assert!(
                db.message().contains("is corrupted"),
                "{what}: {}",
                db.message()
            );
            // The path is for the server log: clients may not know the data directory.
            assert!(
                !db.message().contains(&path.display().to_string()),
                "{what}: {}",
                db.message()
            );
            assert!(
                !db.detail()
                    .unwrap_or("")
                    .contains(&path.display().to_string()),
                "{what}"
            );
            assert!(
                db.hint().unwrap_or("").contains("Restore the file"),
                "{what}: hint {:?}",
                db.hint()
            );
            errors += 1;
        }
        // The session survives, nothing was issued, the file was not reset behind our back.
        assert_eq!(stat_i64(&mut c, "issued"), 0, "{what}");
        assert_eq!(
            &fs::read(&path).unwrap(),
            bytes,
            "{what}: the file was rewritten"
        );
    }

    // Unreadable: an I/O error, not "no file".
    fs::write(&path, &good).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    crash_restart(&node);
    let mut c = node.connect();
    let err = c.query_one("SELECT snowflake_nextval()", &[]).unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::IO_ERROR, "{}", db.message());
    assert!(db.message().contains("could not read"), "{}", db.message());
    assert!(db.hint().is_some_and(|h| !h.is_empty()));
    errors += 1;

    assert!(
        node.log()
            .contains(&format!("snowflake_id state file \"{}\"", path.display())),
        "the server log names the file"
    );

    // Restored: IDs again, without a restart, above every ID before.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let after = nextval(&mut c);
    assert!(
        after > max_before,
        "{after} after the restore is not above {max_before}"
    );
    assert!(!node.log().contains("PANIC"), "{}", node.log());
    eprintln!(
        "[state] {} corruptions and 1 unreadable file: {errors} ERRORs (XX001 / 58030) with a HINT, 0 IDs issued; \
         restored file: next ID above the old ones",
        cases.len()
    );
}

#[test]
fn unwritable_state_file_fails_the_call_that_needs_a_new_ceiling_until_fixed() {
    let node = Cluster::init("faults-state-write", &["snowflake_id.node_id = 3"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    let first = nextval(&mut c);
    let ceiling = saved_ceiling_unix_ms(&node);
    assert!(id_unix_ms(first) < ceiling);
    // The ceiling is replaced through `<file>.tmp`: a directory there makes every save fail.
    let tmp = node.data().join("snowflake_id.state.tmp");
    fs::create_dir(&tmp).unwrap();
    // IDs go on below the saved ceiling; the call that needs a higher one fails (about a second
    // later, when the clock nears the ceiling).
    let mut ids = vec![first];
    let deadline = Instant::now() + Duration::from_secs(30);
    let db = loop {
        match c.query_one("SELECT snowflake_nextval()", &[]) {
            Ok(row) => ids.push(row.get(0)),
            Err(e) => {
                break e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("not a server error: {e}"))
                    .clone()
            }
        }
        assert!(
            Instant::now() < deadline,
            "no call failed in 30 s with an unwritable state file"
        );
    };
    assert_eq!(db.code(), &SqlState::IO_ERROR, "{}", db.message());
    assert!(
        db.message().contains("snowflake_id state file"),
        "{}",
        db.message()
    );
    assert!(db.hint().is_some_and(|h| !h.is_empty()));
    assert_eq!(
        saved_ceiling_unix_ms(&node),
        ceiling,
        "the ceiling changed although it could not be saved"
    );
    let top = *ids.iter().max().unwrap();
    assert!(
        id_unix_ms(top) < ceiling,
        "ID {top} issued beyond the saved ceiling {ceiling}"
    );
    assert_eq!(decreases(&ids), 0);
    // No ID while it stays unwritable: the counter stays where the last ID left it.
    let issued = stat_i64(&mut c, "issued");
    assert_eq!(issued, ids.len() as i64);
    for _ in 0..3 {
        let e = c
            .query_one("SELECT snowflake_nextval()", &[])
            .expect_err("an ID beyond an unsaved ceiling");
        assert_eq!(
            e.as_db_error().map(|d| d.code().clone()),
            Some(SqlState::IO_ERROR)
        );
    }
    assert_eq!(stat_i64(&mut c, "issued"), issued);

    // Fixed: the same session gets IDs again, above every earlier one and below the new ceiling.
    fs::remove_dir(&tmp).unwrap();
    let after = nextval(&mut c);
    assert!(after > top, "{after} is not above {top}");
    assert!(id_unix_ms(after) < saved_ceiling_unix_ms(&node));
    assert!(saved_ceiling_unix_ms(&node) > ceiling);
    eprintln!(
        "[state write] {} IDs below the saved ceiling, then 58030 until the file could be written; then IDs again",
        ids.len()
    );
}

/// `pg_rewind` and `pg_basebackup` copy the state file from another server: its ceiling is a
/// floor, and so is anything this server may have issued itself (which the copy lost).
#[test]
fn a_state_file_copied_from_another_server_never_lowers_the_floor() {
    let node = Cluster::init("hard-copied", &["snowflake_id.node_id = 12"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    let sysid: i64 = c
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .unwrap()
        .get(0);
    let me = Writer {
        system_identifier: sysid as u64,
        node_id: 12,
    };
    // The file records its writer.
    c.query_one("SELECT snowflake_nextval()", &[]).unwrap();
    let text = fs::read_to_string(node.data().join("snowflake_id.state")).unwrap();
    assert!(
        text.contains(&format!("system_identifier {sysid}\nnode_id 12\n")),
        "{text}"
    );

    // A burst leads the clock, then the file is replaced by an old one of another server.
    let max: i64 = c
        .query_one("SELECT max(x) FROM (SELECT snowflake_nextval() AS x FROM generate_series(1, 2000000)) s", &[])
        .unwrap()
        .get(0);
    drop(c);
    node.stop();
    let other = Writer {
        system_identifier: 4242,
        node_id: 13,
    };
    write_ceiling(&node, clock::real_unix_ms() - 60_000, Some(other));
    node.start();
    let mut c = node.connect();
    let first: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(
        first > max,
        "after the copy {first} is not above this server's last ID {max}"
    );
    assert!(
        node.log()
            .contains("the state file was written by system 4242 as node id 13"),
        "logged"
    );
    drop(c);

    // The other server's ceiling is far ahead (its clock was an hour fast): IDs start above it.
    node.stop();
    let ahead = clock::real_unix_ms() + 3_600_000;
    write_ceiling(&node, ahead, Some(other));
    node.start();
    let first: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(layout::unix_ms(layout::decode(first).unwrap().ms) >= ahead);
    // This server's own file: no warning, IDs go on above it.
    node.stop();
    let log_len = node.log().len();
    write_ceiling(&node, clock::real_unix_ms() + 3_700_000, Some(me));
    node.start();
    let next: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(next > first);
    assert!(
        !node.log()[log_len..].contains("the state file was written by"),
        "own file reported as foreign"
    );
}
