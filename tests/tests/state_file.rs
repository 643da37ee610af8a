//! The floor across what operators do to a data directory, on real servers: a state file lost
//! after a clean stop or a checkpoint, replay of a long WAL history (the file written at
//! checkpoints, not per record), and a rewound former primary rejoining under its node id.
//! Clusters `sf-*`.

use postgres::error::SqlState;
use postgres::Client;
use snowflake_core::layout;
use snowflake_it::clock::{self, ServerClock, Shim};
use snowflake_it::draw::insert_audit;
use snowflake_it::{count_duplicates, wait_for, wait_replayed, Cluster};
use std::fs;
use std::time::Duration;

const HOUR_MS: i64 = 3_600_000;

/// A server with node id `node_id` on `clock` (if any), the extension created and a table
/// keyed by `DEFAULT snowflake_nextval()`.
fn server(name: &str, node_id: u16, settings: &[&str], clock: Option<&Shim>) -> Cluster {
    let mut lines = vec![format!("snowflake_id.node_id = {node_id}")];
    lines.extend(settings.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut node = Cluster::init(name, &refs);
    if let Some(clock) = clock {
        node.env = clock.env();
    }
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v int NOT NULL)",
    );
    node
}

fn max_id(c: &mut Client) -> i64 {
    c.query_one("SELECT max(id) FROM audit", &[])
        .unwrap()
        .get(0)
}

fn stat(c: &mut Client, column: &str) -> i64 {
    c.query_one(&format!("SELECT {column} FROM snowflake_stats()"), &[])
        .unwrap()
        .get(0)
}

/// The ceiling in the state file, as Unix ms.
fn file_ceiling(node: &Cluster) -> i64 {
    let text = fs::read_to_string(node.data().join("snowflake_id.state")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ceiling_unix_ms "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap()
}

fn unix_ms_of(id: i64) -> i64 {
    layout::unix_ms(layout::decode(id).unwrap().ms)
}

/// The ERROR of `snowflake_nextval()` (panics with the ID if one is issued).
fn refusal(c: &mut Client, what: &str) -> postgres::error::DbError {
    match c.query_one("SELECT snowflake_nextval()", &[]) {
        Ok(row) => panic!(
            "{what}: issued ID {} (at {} Unix ms)",
            row.get::<_, i64>(0),
            unix_ms_of(row.get(0))
        ),
        Err(e) => e.as_db_error().expect("a server error").clone(),
    }
}

/// The scenario: IDs an hour ahead of the clock, the clock set right (IDs stay above),
/// a clean stop, the file removed. Then the same after a checkpoint and a crash (nothing to
/// replay after the checkpoint's redo point). Both refuse IDs until a floor is restored; the
/// HINT's command restores it.
#[test]
fn a_state_file_lost_after_a_clean_stop_or_a_checkpoint_refuses_ids_until_restored() {
    let name = "sf-lost";
    let clock = Shim::beside(name);
    let node = server(name, 5, &["checkpoint_timeout = '1h'"], Some(&clock));
    assert!(
        node.data().join("snowflake_id.state").exists(),
        "CREATE EXTENSION created the state file"
    );
    let mut c = node.connect();
    clock.set_offset_ms(HOUR_MS);
    clock::wait_until_server_offset(&mut c, HOUR_MS);
    wait_for("IDs an hour ahead", Duration::from_secs(60), || {
        c.query_one(
            "SELECT snowflake_timestamp(snowflake_nextval()) > now() - interval '1 minute'",
            &[],
        )
        .unwrap()
        .get::<_, bool>(0)
        .then_some(())
    });
    insert_audit(&mut c, 3, 10_000);
    clock.set_offset_ms(0);
    clock::wait_until_server_offset(&mut c, 0);
    insert_audit(&mut c, 1, 1_000);
    let max_before = max_id(&mut c);
    assert!(
        unix_ms_of(max_before) > clock::real_unix_ms() + HOUR_MS / 2,
        "IDs stayed above the hour after the clock was set right"
    );
    drop(c);

    // 1. Clean stop, file removed.
    node.stop();
    fs::remove_file(node.data().join("snowflake_id.state")).unwrap();
    node.start();
    let mut c = node.connect();
    for _ in 0..2 {
        let e = refusal(&mut c, "after a clean stop without the state file");
        assert_eq!(e.code(), &SqlState::UNDEFINED_FILE, "{}", e.message());
        assert!(
            e.message().contains("state file is missing"),
            "{}",
            e.message()
        );
        assert!(
            e.hint().unwrap_or("").contains("snowflake_restore_floor("),
            "{:?}",
            e.hint()
        );
    }
    assert_eq!(stat(&mut c, "issued"), 0);
    // The HINT's command, on the table.
    c.query_one(
        "SELECT snowflake_restore_floor(snowflake_timestamp(max(id)) + interval '1 second') FROM audit",
        &[],
    )
    .unwrap();
    insert_audit(&mut c, 1, 1_000);
    let lowest_new: i64 = c
        .query_one("SELECT min(id) FROM audit WHERE id > $1", &[&max_before])
        .unwrap()
        .get(0);
    let count_new: i64 = c
        .query_one("SELECT count(*) FROM audit WHERE id > $1", &[&max_before])
        .unwrap()
        .get(0);
    assert_eq!(
        count_new, 1_000,
        "every ID after the restore is above the old ones"
    );
    assert!(lowest_new > max_before);
    let max_before = max_id(&mut c);

    // 2. A checkpoint, a crash, the file removed: crash recovery replays nothing before the
    //    checkpoint's redo point.
    c.batch_execute("CHECKPOINT").unwrap();
    drop(c);
    node.kill9_postmaster();
    fs::remove_file(node.data().join("snowflake_id.state")).unwrap();
    node.start();
    let mut c = node.connect();
    let e = refusal(
        &mut c,
        "after a checkpoint and a crash without the state file",
    );
    assert_eq!(e.code(), &SqlState::UNDEFINED_FILE, "{}", e.message());

    // 3. A corrupted file: its HINT says what deleting it costs.
    fs::write(node.data().join("snowflake_id.state"), "garbage\n").unwrap();
    let e = refusal(&mut c, "with a corrupted state file");
    assert_eq!(e.code(), &SqlState::DATA_CORRUPTED);
    let hint = e.hint().unwrap_or("");
    assert!(
        hint.contains("Deleting it does not bring IDs back"),
        "{hint}"
    );
    // The restore replaces the corrupted file too.
    c.query_one(
        "SELECT snowflake_restore_floor(snowflake_timestamp(max(id)) + interval '1 second') FROM audit",
        &[],
    )
    .unwrap();
    let next: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(next > max_before, "{next} is not above {max_before}");
    assert!(file_ceiling(&node) > unix_ms_of(next));
    eprintln!(
        "[lost] clean stop and checkpoint+crash without the file: ERROR 58P01 until \
         snowflake_restore_floor(); corrupted file replaced by it; IDs above the old ones"
    );
}

/// Declares the test-only emitter of ceiling records from the library.
fn declare_emitter(c: &mut Client) {
    c.batch_execute(
        "CREATE FUNCTION emit_ceilings(n int, first_unix_ms bigint, step_ms int) RETURNS bigint
         LANGUAGE c STRICT AS '$libdir/snowflake_id', 'snowflake_emit_ceilings_wrapper'",
    )
    .unwrap();
}

fn emit(c: &mut Client, n: i32, first_unix_ms: i64, step_ms: i32) -> i64 {
    c.query_one(
        "SELECT emit_ceilings($1, $2, $3)",
        &[&n, &first_unix_ms, &step_ms],
    )
    .unwrap();
    first_unix_ms + (n as i64 - 1) * step_ms as i64
}

/// Replay keeps the floor in shared memory: a standby replaying 500 ceiling records writes its
/// state file only at the next checkpoint record, and a restartpoint there followed by a crash
/// keeps the floor. Crash recovery of 400 records writes the file once, at its end.
#[test]
fn replay_writes_the_state_file_at_checkpoints_and_at_the_end_not_per_record() {
    let name = "sf-replay";
    let settings = ["checkpoint_timeout = '1h'", "max_wal_size = '4GB'"];
    let p = server(name, 6, &settings, None);
    let mut pc = p.connect();
    declare_emitter(&mut pc);
    insert_audit(&mut pc, 1, 1_000);
    pc.batch_execute("CHECKPOINT").unwrap();
    let s = Cluster::standby_of(
        &p,
        &format!("{name}-standby"),
        &["snowflake_id.node_id = 7"],
    );
    s.start();
    let mut sc = s.connect();
    wait_replayed(&mut pc, &mut sc);
    let writes_before = stat(&mut sc, "ceiling_writes");
    let file_before = fs::read(s.data().join("snowflake_id.state")).unwrap();

    let first = clock::real_unix_ms() + HOUR_MS;
    let last = emit(&mut pc, 500, first, 10);
    wait_replayed(&mut pc, &mut sc);
    let replayed = stat(&mut sc, "wal_records_replayed");
    assert!(replayed >= 500, "{replayed} records replayed");
    assert_eq!(
        stat(&mut sc, "ceiling_writes") - writes_before,
        0,
        "the standby wrote its state file while replaying {replayed} records"
    );
    assert_eq!(
        fs::read(s.data().join("snowflake_id.state")).unwrap(),
        file_before,
        "the state file changed before a checkpoint record"
    );
    // A checkpoint record: the floor goes to the file, once.
    pc.batch_execute("CHECKPOINT").unwrap();
    wait_replayed(&mut pc, &mut sc);
    assert_eq!(stat(&mut sc, "ceiling_writes") - writes_before, 1);
    assert_eq!(file_ceiling(&s), last);

    // More records, a checkpoint, a restartpoint on the standby there, a crash of the standby:
    // the WAL before the restartpoint may be gone; the file holds the floor.
    let last = emit(&mut pc, 300, last + 10, 10);
    pc.batch_execute("CHECKPOINT").unwrap();
    wait_replayed(&mut pc, &mut sc);
    sc.batch_execute("CHECKPOINT").unwrap();
    drop(sc);
    s.kill9_postmaster();
    assert_eq!(
        file_ceiling(&s),
        last,
        "the restartpoint's floor is in the file"
    );
    s.start();
    // Promoted (the primary gone), its first ID is above every replayed ceiling.
    drop(pc);
    p.kill9_postmaster();
    s.promote();
    let mut sc = s.connect();
    let id: i64 = sc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(unix_ms_of(id) >= last, "{} < {last}", unix_ms_of(id));

    // Crash recovery of 400 records on the promoted server: one write, at the end.
    sc.batch_execute("CHECKPOINT").unwrap();
    let last = emit(&mut sc, 400, last + 10, 10);
    drop(sc);
    s.kill9_postmaster();
    s.start();
    let mut sc = s.connect();
    let replayed = stat(&mut sc, "wal_records_replayed");
    assert!(replayed >= 400, "{replayed}");
    assert_eq!(
        stat(&mut sc, "ceiling_writes"),
        1,
        "crash recovery of {replayed} records"
    );
    assert_eq!(file_ceiling(&s), last);
    let id: i64 = sc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(unix_ms_of(id) >= last);
    eprintln!(
        "[replay] standby: 500 records, 0 file writes until the checkpoint record, then 1; \
         crash recovery of {replayed} records: 1 file write"
    );
}

/// What is promised for a rewound former primary rejoining under its own node id: it starts
/// above everything in the WAL it shares with the new primary, above the new primary's state
/// file, and above its own clock plus `max_drift_ms`, which covers the IDs it issued that
/// never reached the new primary (pg_rewind discards that WAL) as long as they were within the
/// drift bound of its clock (see docs/operations.md).
#[test]
fn a_rewound_primary_rejoining_under_its_node_id_stays_above_its_lost_ids() {
    let name = "sf-rewind";
    let settings = ["wal_log_hints = on", "wal_keep_size = '512MB'"];
    let old = server(name, 1, &settings, None);
    let mut oc = old.connect();
    insert_audit(&mut oc, 2, 10_000);
    let new = Cluster::standby_of(&old, &format!("{name}-new"), &["snowflake_id.node_id = 2"]);
    new.start();
    let mut nc = new.connect();
    wait_replayed(&mut oc, &mut nc);
    // The standby stops; the old primary goes on alone: these IDs exist only in its WAL.
    drop(nc);
    new.stop();
    insert_audit(&mut oc, 5, 20_000);
    let lost_max = max_id(&mut oc);
    drop(oc);
    old.kill9_postmaster();
    new.start();
    new.promote();
    let mut nc = new.connect();
    insert_audit(&mut nc, 2, 10_000);
    nc.batch_execute("CHECKPOINT").unwrap();
    let out = snowflake_it::as_postgres(snowflake_it::pg_bin("pg_rewind"))
        .arg("--target-pgdata")
        .arg(old.data())
        .arg("--source-server")
        .arg(new.conninfo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_rewind: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    old.configure_copy(&[
        "snowflake_id.node_id = 1",
        &format!("primary_conninfo = '{}'", new.conninfo()),
    ]);
    {
        use std::io::Write;
        let mut auto = fs::OpenOptions::new()
            .append(true)
            .open(old.data().join("postgresql.auto.conf"))
            .unwrap();
        writeln!(auto, "primary_conninfo = '{}'", new.conninfo()).unwrap();
    }
    old.signal("standby.signal");
    old.start();
    let mut oc = old.connect();
    wait_replayed(&mut nc, &mut oc);
    drop(nc);
    new.kill9_postmaster();
    old.promote();
    let mut oc = old.connect();
    insert_audit(&mut oc, 2, 10_000);
    let ids: Vec<i64> = oc
        .query(
            "SELECT id FROM audit WHERE snowflake_node(id) = 1 ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(count_duplicates(&ids), 0);
    let above = ids.iter().filter(|&&i| i > lost_max).count();
    // The table holds the replicated IDs of node 1 (20,000, below) and the 20,000 new ones.
    assert_eq!(
        above, 20_000,
        "every ID after the rejoin is above the lost ones"
    );
    assert!(
        old.log().contains("the state file was written by"),
        "the copied state file was reported"
    );
}
