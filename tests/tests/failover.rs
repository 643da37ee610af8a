//! Failover, standbys and restores on real servers: the ceiling travels in the WAL (issue 12).
//! Streaming standbys made with `pg_basebackup -R`, a primary whose clock runs an hour fast
//! (the clock shim), `kill -9` and `pg_ctl promote`; crash recovery with the state file
//! deleted; point-in-time recovery with the restored server's clock behind. Ports 26101-26119,
//! clusters `fo-*`.

use postgres::error::SqlState;
use postgres::Client;
use snowflake_core::layout;
use snowflake_it::clock::{self, ServerClock, Shim};
use snowflake_it::{count_duplicates, wait_for, Cluster};
use std::fs;
use std::time::Duration;

const HOUR_MS: i64 = 3_600_000;

/// A clock shim whose offset file lives beside the cluster `name`.
fn shim(name: &str) -> Shim {
    let dir = snowflake_it::clusters_root().join(format!("{name}-files"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    Shim::new(&dir)
}

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

/// Writes `batches` INSERTs of `rows` rows through the column default.
fn write(c: &mut Client, batches: usize, rows: i32) {
    for _ in 0..batches {
        c.execute(
            "INSERT INTO audit (v) SELECT g FROM generate_series(1, $1) g",
            &[&rows],
        )
        .unwrap();
    }
}

fn ids(c: &mut Client) -> Vec<i64> {
    c.query("SELECT id FROM audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until `standby` has replayed everything `primary` wrote so far.
fn wait_replayed(primary: &mut Client, standby: &mut Client) {
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .unwrap()
        .get(0);
    wait_for("the standby to replay", Duration::from_secs(60), || {
        standby
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .unwrap()
            .get::<_, bool>(0)
            .then_some(())
    });
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
    let clock = shim(name);
    let p = primary(name, 1, &[], &clock);
    let mut pc = p.connect();
    run_an_hour_fast(&clock, &mut pc);
    write(&mut pc, 5, 2_000);
    let standby = Cluster::standby_of(
        &p,
        &format!("{name}-standby"),
        &[&format!("snowflake_id.node_id = {standby_node}")],
    );
    // The standby's clock is right: the primary's IDs are an hour ahead of it.
    standby.start();
    let mut sc = standby.connect();
    assert!(in_recovery(&mut sc));
    // Writes after the copy arrive through the WAL only, bursts included (ceilings extended).
    write(&mut pc, 20, 20_000);
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
    write(&mut sc, 5, 10_000);
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
    let clock = shim(name);
    let p = primary(name, 3, &[], &clock);
    let mut c = p.connect();
    run_an_hour_fast(&clock, &mut c);
    write(&mut c, 10, 20_000);
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
    let clock = shim(name);
    // Copied under a temporary name and renamed: a file in the archive is complete.
    let archive_command = format!(
        "archive_command = 'cp %p {0}/%f.tmp && mv {0}/%f.tmp {0}/%f'",
        archive.display()
    );
    let p = primary(name, 4, &["archive_mode = on", &archive_command], &clock);
    let mut c = p.connect();
    write(&mut c, 2, 1_000);
    // The base backup, with the state file of that moment.
    let restored = Cluster::base_backup(&p, &format!("{name}-restored"));
    // Then the primary's clock runs an hour fast and it writes more: only the WAL has those.
    run_an_hour_fast(&clock, &mut c);
    write(&mut c, 10, 20_000);
    let before = ids(&mut c);
    let max_before = *before.last().unwrap();
    c.execute("SELECT pg_create_restore_point('after_load')", &[])
        .unwrap();
    // A write after the target: not restored.
    write(&mut c, 1, 100);
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
    write(&mut r, 2, 5_000);
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
    let clock = shim(name);
    // pg_rewind needs hint bits in the WAL, and the WAL back to the last common checkpoint.
    let old = primary(
        name,
        1,
        &["wal_log_hints = on", "wal_keep_size = '512MB'"],
        &clock,
    );
    let mut oc = old.connect();
    run_an_hour_fast(&clock, &mut oc);
    let new = Cluster::standby_of(&old, &format!("{name}-new"), &["snowflake_id.node_id = 2"]);
    new.start();
    let mut nc = new.connect();
    write(&mut oc, 10, 10_000);
    wait_replayed(&mut oc, &mut nc);
    drop(oc);
    old.kill9_postmaster();
    new.promote();
    let mut nc = new.connect();
    write(&mut nc, 10, 10_000);
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
    write(&mut nc, 5, 10_000);
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
    write(&mut oc, 5, 10_000);
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
    let clock = shim(name);
    let p = primary(name, 5, &[], &clock);
    let mut c = p.connect();
    write(&mut c, 2, 10_000);
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
    let clock = shim(name);
    let p = primary(name, 6, &[], &clock);
    let standby = Cluster::standby_of(
        &p,
        &format!("{name}-standby"),
        &["snowflake_id.node_id = 7"],
    );
    standby.start();
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
