//! Standbys, failover and restores on real servers: the ceiling travels in the WAL.
//! Streaming standbys made with `pg_basebackup -R` (`Cluster::standby`), a primary whose clock
//! runs an hour fast (the clock shim), `kill -9` and `pg_ctl promote`; an old primary rewound
//! by `pg_rewind` and promoted again; crash recovery with the state file deleted; point-in-time
//! recovery with the restored server's clock behind; recovery without the library.
//!
//! Then the standbys' share of the generator: a wait for a synchronous standby that is
//! cancelled, timed out or terminated (parallel workers included) leaves nothing locked and
//! issues no ID above an unconfirmed ceiling; a standby never issues IDs under a node id in use
//! upstream of it, however early it was cloned, cascades included; a promoted standby logs its
//! ceiling before its first ID as primary.

use postgres::error::{DbError, SqlState};
use postgres::{Client, NoTls};
use snowflake_core::layout;
use snowflake_it::clock::{self, ServerClock, Shim};
use snowflake_it::draw::insert_audit;
use snowflake_it::{count_duplicates, pg, wait_for, wait_replayed, Cluster};
use std::fs;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;

/// A primary on the clock shim, the extension created and an audit table keyed by
/// `DEFAULT snowflake_nextval()`.
fn primary(name: &str, node_id: u16, settings: &[&str], shim: &Shim) -> Cluster {
    let mut lines = vec![format!("snowflake_id.node_id = {node_id}")];
    lines.extend(settings.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut node = Cluster::init(name, &refs);
    node.env = shim.env();
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v int NOT NULL)",
    );
    node
}

/// Sets the server's clock an hour fast and waits until its IDs carry it: the generator takes a
/// forward jump as real time only once it has lasted 10 s (`FORWARD_CONFIRM_US`).
fn run_an_hour_fast(clock: &Shim, c: &mut Client) {
    clock.set_offset_ms(HOUR_MS);
    clock::wait_until_server_offset(c, HOUR_MS);
    // now() runs an hour fast too: IDs carry the jump once they stop lagging it by an hour.
    wait_for("IDs an hour ahead", Duration::from_secs(60), || {
        c.query_one(
            "SELECT snowflake_timestamp(snowflake_nextval()) > now() - interval '1 minute'",
            &[],
        )
        .unwrap()
        .get::<_, bool>(0)
        .then_some(())
    });
}

fn ids(c: &mut Client) -> Vec<i64> {
    c.query("SELECT id FROM audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn in_recovery(c: &mut Client) -> bool {
    c.query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get(0)
}

/// The scenario of the issue: a primary an hour fast writes through the column default, its
/// standby (own node id, or the primary's) replays, the primary is killed and the standby
/// promoted; every new ID must be above every replicated one.
fn promote_after_kill(name: &str, standby_node: u16) {
    let clock = Shim::beside(name);
    let p = primary(name, 1, &[], &clock);
    let mut pc = p.connect();
    run_an_hour_fast(&clock, &mut pc);
    insert_audit(&mut pc, 5, 2_000);
    // The standby's clock is right: the primary's IDs are an hour ahead of it.
    let standby = Cluster::standby(&p, &format!("{name}-standby"), Some(standby_node));
    let mut sc = standby.connect();
    assert!(in_recovery(&mut sc));
    // Writes after the copy arrive through the WAL only, bursts included (ceilings extended).
    insert_audit(&mut pc, 20, 20_000);
    wait_replayed(&mut pc, &mut sc);
    let replicated = ids(&mut sc);
    assert_eq!(replicated.len(), 410_000);
    let max_replicated = *replicated.last().unwrap();
    let records: i64 = sc
        .query_one("SELECT wal_records_replayed FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert!(records > 0, "the standby replayed no ceiling record");

    // Hot standby: its own node id issues IDs once it has learnt the node ids in use upstream;
    // its primary's is refused.
    if standby_node != 1 {
        wait_for(
            "the upstream's node id chain",
            Duration::from_secs(60),
            || {
                let chain: String = sc
                    .query_one("SHOW snowflake_id.node_id_chain", &[])
                    .unwrap()
                    .get(0);
                (chain != "unknown").then_some(())
            },
        );
    }
    let hot = sc.query_one("SELECT snowflake_nextval()", &[]);
    if standby_node == 1 {
        let e = hot.expect_err("a standby with its primary's node id issued an ID");
        let e = e.as_db_error().expect("a server error");
        assert_eq!(
            e.code(),
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            "{}",
            e.message()
        );
        assert!(e.message().contains("node id 1"), "{}", e.message());
        assert!(e.hint().unwrap_or("").contains("node id"), "{e:?}");
    } else {
        let id: i64 = hot
            .expect("a standby with its own node id issues IDs")
            .get(0);
        assert_eq!(layout::decode(id).unwrap().node, standby_node);
        assert!(
            id > max_replicated,
            "its IDs are above the replayed floor too"
        );
    }

    // The primary's last ceiling was at most its clock (an hour fast) + max_drift_ms + 1 s when
    // it died; the new primary's IDs go on from there.
    let killed = std::time::Instant::now();
    p.kill9_postmaster();
    standby.promote();
    let mut sc = standby.connect();
    assert!(!in_recovery(&mut sc));
    // The refusal ends with promotion; inserts succeed.
    insert_audit(&mut sc, 5, 10_000);
    let all = ids(&mut sc);
    assert_eq!(count_duplicates(&all), 0);
    let new: Vec<i64> = all
        .iter()
        .copied()
        .filter(|i| !replicated.contains(i))
        .collect();
    assert_eq!(new.len(), 50_000);
    let lowest_new = new.iter().min().unwrap();
    assert!(
        *lowest_new > max_replicated,
        "a new ID {lowest_new} is not above the last replicated ID {max_replicated}"
    );
    for id in &new {
        assert_eq!(layout::decode(*id).unwrap().node, standby_node);
    }
    // About an hour ahead of its own clock: the IDs did not wait for the clock (the inserts
    // above did not take an hour).
    let lead: i64 = sc
        .query_one(
            "SELECT (extract(epoch FROM snowflake_timestamp(max(id)) - clock_timestamp()) * 1000)::bigint FROM audit",
            &[],
        )
        .unwrap()
        .get(0);
    let since_kill = killed.elapsed().as_millis() as i64;
    assert!(
        lead > HOUR_MS - since_kill - 10_000,
        "new IDs lead the clock by {lead} ms only, {since_kill} ms after the kill"
    );
    eprintln!(
        "[{name}] standby node id {standby_node}: {} replicated IDs, {} new, lowest new - last replicated = {}, lead {lead} ms",
        replicated.len(),
        new.len(),
        lowest_new - max_replicated
    );
}

#[test]
fn a_promoted_standby_with_its_own_node_id_issues_above_every_replicated_id() {
    promote_after_kill("fo-own", 2);
}

#[test]
fn a_promoted_standby_with_the_primarys_node_id_issues_above_every_replicated_id() {
    promote_after_kill("fo-same", 1);
}

#[test]
fn crash_recovery_with_the_state_file_deleted_brings_the_floor_back_from_the_wal() {
    let name = "fo-crash";
    let clock = Shim::beside(name);
    let p = primary(name, 3, &[], &clock);
    let mut c = p.connect();
    run_an_hour_fast(&clock, &mut c);
    insert_audit(&mut c, 10, 20_000);
    let before = ids(&mut c);
    let max_before = *before.last().unwrap();
    drop(c);
    p.kill9_postmaster();
    fs::remove_file(p.data().join("snowflake_id.state")).unwrap();
    // The clock is right again: only the WAL knows the IDs an hour ahead.
    clock.set_offset_ms(0);
    p.start();
    let mut c = p.connect();
    let first: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(
        first > max_before,
        "after crash recovery without the state file, {first} is not above {max_before}"
    );
    assert!(
        p.data().join("snowflake_id.state").exists(),
        "replay wrote the floor back to the state file"
    );
    let replayed: i64 = c
        .query_one("SELECT wal_records_replayed FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert!(replayed > 0);
}

#[test]
fn point_in_time_recovery_issues_above_the_replayed_wal_with_its_clock_behind() {
    let name = "fo-pitr";
    let archive = snowflake_it::clusters_root().join(format!("{name}-archive"));
    let _ = fs::remove_dir_all(&archive);
    fs::create_dir_all(&archive).unwrap();
    snowflake_it::ensure_traversable(&archive.join("x"));
    std::process::Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&archive)
        .status()
        .unwrap();
    let clock = Shim::beside(name);
    // Copied under a temporary name and renamed: a file in the archive is complete.
    let archive_command = format!(
        "archive_command = 'cp %p {0}/%f.tmp && mv {0}/%f.tmp {0}/%f'",
        archive.display()
    );
    let p = primary(name, 4, &["archive_mode = on", &archive_command], &clock);
    let mut c = p.connect();
    insert_audit(&mut c, 2, 1_000);
    // The base backup, with the state file of that moment.
    let restored = Cluster::base_backup(&p, &format!("{name}-restored"));
    // Then the primary's clock runs an hour fast and it writes more: only the WAL has those.
    run_an_hour_fast(&clock, &mut c);
    insert_audit(&mut c, 10, 20_000);
    let before = ids(&mut c);
    let max_before = *before.last().unwrap();
    c.execute("SELECT pg_create_restore_point('after_load')", &[])
        .unwrap();
    // A write after the target: not restored.
    insert_audit(&mut c, 1, 100);
    // The WAL file holding the restore point, completed by the switch (the name of the switch's
    // end position is that of the file it ends).
    let last_wal: String = c
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .unwrap()
        .get(0);
    wait_for("the WAL to be archived", Duration::from_secs(60), || {
        archive.join(&last_wal).exists().then_some(())
    });
    drop(c);
    p.kill9_postmaster();

    // Restore: the restored server's clock is right, an hour behind the archived IDs.
    restored.configure_copy(&[
        &format!("restore_command = 'cp {}/%f %p'", archive.display()),
        "recovery_target_name = 'after_load'",
        "recovery_target_action = 'promote'",
        "archive_mode = off",
    ]);
    restored.signal("recovery.signal");
    restored.start();
    let mut r = restored.connect();
    wait_for("the restore to finish", Duration::from_secs(120), || {
        (!in_recovery(&mut r)).then_some(())
    });
    let restored_ids = ids(&mut r);
    assert_eq!(
        restored_ids.len(),
        before.len(),
        "restored up to the restore point"
    );
    assert_eq!(*restored_ids.last().unwrap(), max_before);
    insert_audit(&mut r, 2, 5_000);
    let after = ids(&mut r);
    assert_eq!(count_duplicates(&after), 0);
    let lowest_new = after.iter().copied().filter(|i| *i > max_before).count();
    assert_eq!(
        lowest_new, 10_000,
        "every new ID is above every restored one"
    );
}

/// The old primary, rewound with `pg_rewind` and restarted as a standby of the promoted one,
/// is promoted again later with its clock set right: its IDs stay above everything it and the
/// other server issued (the floor from the new primary's WAL).
#[test]
fn a_rewound_old_primary_promoted_again_stays_above_everything() {
    let name = "fo-rewind";
    let clock = Shim::beside(name);
    // pg_rewind needs hint bits in the WAL, and the WAL back to the last common checkpoint.
    let old = primary(
        name,
        1,
        &["wal_log_hints = on", "wal_keep_size = '512MB'"],
        &clock,
    );
    let mut oc = old.connect();
    run_an_hour_fast(&clock, &mut oc);
    let new = Cluster::standby(&old, &format!("{name}-new"), Some(2));
    let mut nc = new.connect();
    insert_audit(&mut oc, 10, 10_000);
    wait_replayed(&mut oc, &mut nc);
    drop(oc);
    old.kill9_postmaster();
    new.promote();
    let mut nc = new.connect();
    insert_audit(&mut nc, 10, 10_000);
    let everything_so_far = ids(&mut nc);
    let max_so_far = *everything_so_far.last().unwrap();

    // pg_rewind reads the new timeline from the source's control file: written by a checkpoint.
    nc.batch_execute("CHECKPOINT").unwrap();
    // pg_rewind of the old primary onto the new one's timeline; it copies the new primary's
    // configuration too, so the old one gets its port, node id and standby settings back.
    let out = snowflake_it::as_postgres(snowflake_it::pg_bin("pg_rewind"))
        .arg("--target-pgdata")
        .arg(old.data())
        .arg("--source-server")
        .arg(new.conninfo())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pg_rewind: {said}");
    assert!(!said.contains("no rewind required"), "pg_rewind: {said}");
    old.configure_copy(&["snowflake_id.node_id = 1"]);
    // The copied postgresql.auto.conf (read last) names the new primary's own primary, this
    // server: point it at the new primary.
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
    insert_audit(&mut nc, 5, 10_000);
    wait_replayed(&mut nc, &mut oc);
    let before_second_failover = ids(&mut oc);
    let max_before = *before_second_failover.last().unwrap();
    assert!(max_before > max_so_far);
    drop(nc);
    new.kill9_postmaster();
    // The old primary's clock is right now: only the WAL it replayed keeps it above.
    clock.set_offset_ms(0);
    old.promote();
    let mut oc = old.connect();
    clock::wait_until_server_offset(&mut oc, 0);
    insert_audit(&mut oc, 5, 10_000);
    let all = ids(&mut oc);
    assert_eq!(count_duplicates(&all), 0);
    let new_ids: Vec<i64> = all.iter().copied().filter(|i| *i > max_before).collect();
    assert_eq!(
        new_ids.len(),
        50_000,
        "every ID of the twice-promoted server is above everything before"
    );
    for id in &new_ids {
        assert_eq!(layout::decode(*id).unwrap().node, 1);
    }
}

/// WAL holding ceiling records needs the library to be replayed: without it in
/// shared_preload_libraries, recovery stops with PostgreSQL's message naming the resource
/// manager; with it back, recovery completes and IDs stay above.
#[test]
fn recovery_without_the_library_fails_clearly_and_succeeds_once_it_is_back() {
    let name = "fo-unload";
    let clock = Shim::beside(name);
    let p = primary(name, 5, &[], &clock);
    let mut c = p.connect();
    insert_audit(&mut c, 2, 10_000);
    let max_before = *ids(&mut c).last().unwrap();
    drop(c);
    p.kill9_postmaster();
    p.append_conf("shared_preload_libraries = ''\n");
    let offset = p.log_len();
    let out = p
        .pg_ctl()
        .arg("-l")
        .arg(p.log_path())
        .args(["-w", "-t", "60", "start"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "recovery without the library succeeded"
    );
    let log = p.log_since(offset);
    assert!(
        log.contains("resource manager with ID 211 not registered"),
        "{log}"
    );
    assert!(log.contains("shared_preload_libraries"), "{log}");
    p.append_conf("shared_preload_libraries = 'snowflake_id'\n");
    p.start();
    let mut c = p.connect();
    let next: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(next > max_before);
}

/// With a synchronous standby, a new ceiling waits for the standby's confirmation before any ID
/// beyond the old one is issued: with the standby down, a burst stops on the `SyncRep` wait, and
/// goes on once the standby is back.
#[test]
fn a_new_ceiling_waits_for_the_synchronous_standby() {
    let name = "fo-sync";
    let clock = Shim::beside(name);
    let p = primary(name, 6, &[], &clock);
    let standby = Cluster::standby(&p, &format!("{name}-standby"), Some(7));
    let mut pc = p.connect();
    snowflake_it::make_standbys_synchronous(&mut pc);
    // Confirmed records: IDs flow.
    let n: i64 = pc
        .query_one(
            "SELECT count(snowflake_nextval()) FROM generate_series(1, 100000)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 100_000);
    standby.stop();
    // A burst must pass the ceiling (1 s ahead) within its first 4M IDs.
    let conninfo = p.conninfo();
    let burst = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        let started = std::time::Instant::now();
        let n: i64 = c
            .query_one(
                "SELECT count(snowflake_nextval()) FROM generate_series(1, 8000000)",
                &[],
            )
            .unwrap()
            .get(0);
        (pid, n, started.elapsed())
    });
    let waiting = wait_for(
        "the burst to wait for the standby",
        Duration::from_secs(60),
        || {
            let rows = pc
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'
                 AND query LIKE '%snowflake_nextval%' AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap();
            rows.first().map(|r| r.get::<_, i32>(0))
        },
    );
    // Still waiting a while later: no ID beyond the old ceiling without the confirmation.
    std::thread::sleep(Duration::from_millis(1500));
    let still: i64 = pc
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'",
            &[&waiting],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        still, 1,
        "the burst went on without the synchronous standby"
    );
    standby.start();
    let (pid, n, took) = burst.join().unwrap();
    assert_eq!(pid, waiting);
    assert_eq!(n, 8_000_000);
    eprintln!("[{name}] the burst waited for the standby and finished after {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Standbys and the generator's shared state
// ---------------------------------------------------------------------------------------------

fn pid(c: &mut Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

fn db_error(e: postgres::Error, what: &str) -> DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("{what}: {e}"))
        .clone()
}

/// The ceiling in shared memory, in Unix ms.
fn ceiling_ms(c: &mut Client) -> i64 {
    c.query_one(
        "SELECT (extract(epoch FROM ceiling) * 1000)::bigint FROM snowflake_stats()",
        &[],
    )
    .unwrap()
    .get(0)
}

fn waiting_on_sync_rep(c: &mut Client, pid: i32) -> bool {
    c.query_one(
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'",
        &[&pid],
    )
    .unwrap()
    .get(0)
}

/// When a call ended, and its first column as bigint or its error.
type Outcome = (Instant, Result<i64, postgres::Error>);

/// Runs `sql` on a new session of `node` after `setup`, in a thread; the result (the first
/// column as bigint, or the error) and the moment it came arrive on the channel. The session's
/// backend pid is returned at once.
fn spawn_call(node: &Cluster, setup: &str, sql: &'static str) -> (i32, mpsc::Receiver<Outcome>) {
    let mut c = Client::connect(&node.conninfo(), NoTls).unwrap();
    c.batch_execute(setup).unwrap();
    let backend = pid(&mut c);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = c.query_one(sql, &[]).map(|row| row.get::<_, i64>(0));
        let _ = tx.send((Instant::now(), r));
    });
    (backend, rx)
}

const BURST: &str = "SELECT count(snowflake_nextval()) FROM generate_series(1, 8000000)";

/// With the synchronous standby down, calls that need a new ceiling wait for it. A cancel and a
/// `statement_timeout` end such a call with an ERROR within a second and leave the ceiling where
/// the standby last confirmed it; a session with `synchronous_commit = local` waits too; a
/// terminated backend and a parallel worker stopped by its leader's timeout leave nothing
/// locked. Once the standby is back, every session gets IDs.
#[test]
fn a_wait_for_the_synchronous_standby_ends_cleanly_however_it_is_interrupted() {
    let name = "sb-sync";
    let p = Cluster::init(name, &["snowflake_id.node_id = 6"]);
    p.start();
    p.psql("CREATE EXTENSION snowflake_id");
    let standby = Cluster::standby(&p, &format!("{name}-standby"), Some(7));
    let mut pc = p.connect();
    snowflake_it::make_standbys_synchronous(&mut pc);
    pc.query_one("SELECT snowflake_nextval()", &[]).unwrap();
    standby.stop();

    // A cancel: single IDs until one needs a ceiling (at most a second away), then a cancel.
    let mut a = p.connect();
    let a_pid = pid(&mut a);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || loop {
        let r = a
            .query_one("SELECT snowflake_nextval()", &[])
            .map(|row| row.get::<_, i64>(0));
        let failed = r.is_err();
        if tx.send((Instant::now(), r)).is_err() || failed {
            return;
        }
    });
    wait_for(
        "a call waiting for the standby",
        Duration::from_secs(30),
        || waiting_on_sync_rep(&mut pc, a_pid).then_some(()),
    );
    let confirmed = ceiling_ms(&mut pc);
    let cancelled = Instant::now();
    pc.query_one("SELECT pg_cancel_backend($1)", &[&a_pid])
        .unwrap();
    let mut last_id = 0;
    let (at, r) = loop {
        let (at, r) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the cancelled call did not end");
        match r {
            Ok(id) if at < cancelled => last_id = id,
            other => break (at, other),
        }
    };
    let e = db_error(
        r.map(|id| panic!("the cancelled call returned ID {id} without the standby"))
            .unwrap_err(),
        "cancel",
    );
    assert_eq!(e.code(), &SqlState::QUERY_CANCELED, "{e:?}");
    let took = at.duration_since(cancelled);
    assert!(took < Duration::from_secs(1), "the cancel took {took:?}");
    assert_eq!(
        ceiling_ms(&mut pc),
        confirmed,
        "the ceiling rose without the standby"
    );
    let last_ms = layout::unix_ms(layout::decode(last_id).unwrap().ms) as i64;
    assert!(
        last_ms < confirmed,
        "ID at {last_ms} ms, ceiling {confirmed}"
    );
    eprintln!("[{name}] cancel: ERROR {} after {took:?}", e.code().code());

    // statement_timeout during the wait: an ERROR at the timeout, not an ID after it.
    let (_, rx) = spawn_call(&p, "SET statement_timeout = '2s'", BURST);
    let started = Instant::now();
    let (at, r) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("statement_timeout did not end the wait");
    let e = db_error(
        r.map(|n| panic!("the timed-out burst returned {n} IDs without the standby"))
            .unwrap_err(),
        "statement_timeout",
    );
    assert_eq!(e.code(), &SqlState::QUERY_CANCELED, "{e:?}");
    assert!(e.message().contains("statement timeout"), "{e:?}");
    let took = at.duration_since(started);
    assert!(took < Duration::from_secs(3), "the timeout took {took:?}");
    assert_eq!(ceiling_ms(&mut pc), confirmed);
    eprintln!("[{name}] statement_timeout 2 s: ERROR after {took:?}");

    // synchronous_commit = local still waits; then the waiting backend is terminated.
    let (l_pid, rx) = spawn_call(&p, "SET synchronous_commit = local", BURST);
    wait_for(
        "a synchronous_commit = local session waiting for the standby",
        Duration::from_secs(30),
        || {
            if let Ok((_, r)) = rx.try_recv() {
                panic!(
                    "with synchronous_commit = local the burst ended without the standby: {r:?}"
                );
            }
            waiting_on_sync_rep(&mut pc, l_pid).then_some(())
        },
    );
    pc.query_one("SELECT pg_terminate_backend($1, 10000)", &[&l_pid])
        .unwrap();
    let (_, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(r.is_err(), "the terminated burst returned {r:?}");
    assert_eq!(ceiling_ms(&mut pc), confirmed);

    // A parallel worker drawing IDs, stopped by its leader's statement_timeout.
    let force = if pg().major >= 16 {
        "debug_parallel_query"
    } else {
        "force_parallel_mode"
    };
    let setup = format!(
        "SET {force} = on; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
         SET statement_timeout = '4s'"
    );
    let (_, rx) = spawn_call(&p, &setup, BURST);
    let worker: i32 = wait_for(
        "a parallel worker waiting for the standby",
        Duration::from_secs(30),
        || {
            pc.query_opt(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'parallel worker'
                 AND wait_event = 'SyncRep'",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0))
        },
    );
    let (_, r) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    let e = db_error(r.unwrap_err(), "parallel statement_timeout");
    assert_eq!(e.code(), &SqlState::QUERY_CANCELED, "{e:?}");
    wait_for(
        "the parallel worker to exit",
        Duration::from_secs(30),
        || {
            let n: i64 = pc
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&worker],
                )
                .unwrap()
                .get(0);
            (n == 0).then_some(())
        },
    );
    assert_eq!(ceiling_ms(&mut pc), confirmed);

    // The standby back: every session, old and new, gets IDs past many ceilings.
    standby.start();
    snowflake_it::wait_sync_standby(&mut pc);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            spawn_call(
                &p,
                "SET statement_timeout = '120s'",
                "SELECT count(snowflake_nextval()) FROM generate_series(1, 3000000)",
            )
            .1
        })
        .collect();
    for rx in calls {
        let (_, r) = rx.recv_timeout(Duration::from_secs(180)).unwrap();
        assert_eq!(r.expect("IDs after the standby came back"), 3_000_000);
    }
    assert!(ceiling_ms(&mut pc) > confirmed);
    let id: i64 = pc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(id > last_id);
}

/// `SHOW snowflake_id.node_id_chain` on `c`.
fn chain(c: &mut Client) -> String {
    c.query_one("SHOW snowflake_id.node_id_chain", &[])
        .unwrap()
        .get(0)
}

/// Waits until the standby has learnt its upstream's chain; returns its own.
fn wait_chain(c: &mut Client) -> String {
    wait_for(
        "the upstream's node id chain",
        Duration::from_secs(60),
        || {
            let ch = chain(c);
            (ch != "unknown").then_some(ch)
        },
    )
}

fn refused(c: &mut Client, what: &str) -> DbError {
    let e = db_error(
        c.query_one("SELECT snowflake_nextval()", &[])
            .map(|r| panic!("{what} issued ID {}", r.get::<_, i64>(0)))
            .unwrap_err(),
        what,
    );
    assert_eq!(e.code(), &SqlState::READ_ONLY_SQL_TRANSACTION, "{e:?}");
    // Refused as in use upstream, or (before the worker's first answer) as not known yet.
    assert!(e.message().contains("node id"), "{e:?}");
    assert!(e.hint().is_some_and(|h| !h.is_empty()), "{e:?}");
    e
}

fn node_of(id: i64) -> u16 {
    layout::decode(id).unwrap().node
}

/// A primary right after `initdb` (the extension created, no ID issued: no ceiling in the WAL
/// or the state file), cloned at once as Patroni, repmgr and pg_auto_failover do: the clone
/// with the primary's node id refuses IDs from its first moment; a clone with its own node id
/// issues them once it has learnt its upstream's chain, and again after a restart, above the
/// ones before.
#[test]
fn a_standby_cloned_before_the_first_id_never_issues_under_its_primarys_node_id() {
    let name = "sb-early";
    let p = Cluster::init(name, &["snowflake_id.node_id = 1"]);
    p.start();
    p.psql("CREATE EXTENSION snowflake_id");
    let same = Cluster::standby(&p, &format!("{name}-same"), None);
    let mut sc = same.connect();
    refused(&mut sc, "a clone with its primary's node id, at once");
    assert_eq!(wait_chain(&mut sc), "1");
    let e = refused(&mut sc, "a clone with its primary's node id");
    assert!(e.message().contains("in use upstream"), "{e:?}");

    let own = Cluster::standby(&p, &format!("{name}-own"), Some(2));
    let mut oc = own.connect();
    assert_eq!(wait_chain(&mut oc), "1,2");
    let before: i64 = oc
        .query_one(
            "SELECT max(snowflake_nextval()) FROM generate_series(1, 100000)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(node_of(before), 2);
    own.stop();
    own.start();
    let mut oc = own.connect();
    wait_chain(&mut oc);
    let after: i64 = oc
        .query_one(
            "SELECT min(snowflake_nextval()) FROM generate_series(1, 1000)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(node_of(after), 2);
    assert!(after > before, "after the restart {after} <= {before}");
    // The primary goes on under its own node id meanwhile.
    let mut pc = p.connect();
    let id: i64 = pc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(node_of(id), 1);
    assert_eq!(chain(&mut pc), "1");
}

/// A cascade: standby A (own node id 2) of primary P (node id 1), and standbys of A. A clone of
/// A inherits A's node id and refuses IDs, although the WAL it replays names only P; a clone of
/// A with node id 3 issues IDs, and shows the whole chain.
#[test]
fn a_standby_of_a_standby_never_issues_under_a_node_id_used_above_it() {
    let name = "sb-cascade";
    let p = Cluster::init(name, &["snowflake_id.node_id = 1"]);
    p.start();
    p.psql("CREATE EXTENSION snowflake_id");
    let mut pc = p.connect();
    pc.query_one("SELECT snowflake_nextval()", &[]).unwrap();
    let a = Cluster::standby(&p, &format!("{name}-a"), Some(2));
    let b = Cluster::standby(&a, &format!("{name}-b"), None);
    let mut bc = b.connect();
    refused(
        &mut bc,
        "a clone of a standby with that standby's node id, at once",
    );
    let mut ac = a.connect();
    assert_eq!(wait_chain(&mut ac), "1,2");
    let id: i64 = ac
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(node_of(id), 2);
    assert_eq!(wait_chain(&mut bc), "1,2");
    let e = refused(&mut bc, "a clone of a standby with that standby's node id");
    assert!(e.detail().unwrap_or("").contains("'1,2'"), "{e:?}");

    let c = Cluster::standby(&a, &format!("{name}-c"), Some(3));
    let mut cc = c.connect();
    assert_eq!(wait_chain(&mut cc), "1,2,3");
    let id: i64 = cc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(node_of(id), 3);
    // Both standbys still refuse or issue as before, and the primary still issues.
    refused(&mut bc, "the cascaded clone, later");
    let id: i64 = pc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(node_of(id), 1);
}

/// A standby that issued IDs while in recovery saved its ceilings in its state file only (a
/// standby writes no WAL). Promoted, it logs a new ceiling before its next ID, so its own
/// standbys and a later failover know every ID it issues as a primary.
#[test]
fn a_promoted_standby_logs_its_ceiling_before_its_first_id_as_primary() {
    let name = "sb-promoted";
    let p = Cluster::init(name, &["snowflake_id.node_id = 1"]);
    p.start();
    p.psql("CREATE EXTENSION snowflake_id");
    let s = Cluster::standby(&p, &format!("{name}-s"), Some(2));
    let mut sc = s.connect();
    wait_chain(&mut sc);
    let in_recovery: i64 = sc
        .query_one(
            "SELECT max(snowflake_nextval()) FROM generate_series(1, 100000)",
            &[],
        )
        .unwrap()
        .get(0);
    let written: i64 = sc
        .query_one("SELECT wal_records_written FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert_eq!(written, 0, "a standby wrote WAL");
    p.stop();
    s.promote();
    let mut sc = s.connect();
    let first: i64 = sc
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(first > in_recovery);
    let r = sc
        .query_one(
            "SELECT wal_records_written,
                    (extract(epoch FROM wal_ceiling) * 1000)::bigint
             FROM snowflake_stats()",
            &[],
        )
        .unwrap();
    let (records, wal_ceiling_ms): (i64, Option<i64>) = (r.get(0), r.get(1));
    let first_ms = layout::unix_ms(layout::decode(first).unwrap().ms) as i64;
    assert!(
        records > 0 && wal_ceiling_ms.is_some_and(|c| c > first_ms),
        "the promoted standby issued ID at {first_ms} ms with {records} ceiling records in the \
         WAL (highest {wal_ceiling_ms:?})"
    );
}
