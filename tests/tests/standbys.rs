//! Standbys and the generator's shared state, on real servers: a wait for a synchronous standby
//! that is cancelled, timed out or terminated (parallel workers included) leaves nothing locked
//! and issues no ID above an unconfirmed ceiling; a standby never issues IDs under a node id in
//! use upstream of it, however early it was cloned, cascades included. Ports 26201-26219,
//! clusters `sb-*`.

use postgres::error::{DbError, SqlState};
use postgres::{Client, NoTls};
use snowflake_core::layout;
use snowflake_it::{pg, wait_for, Cluster};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

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
    let standby = Cluster::standby_of(
        &p,
        &format!("{name}-standby"),
        &["snowflake_id.node_id = 7"],
    );
    standby.start();
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
    let same = Cluster::standby_of(&p, &format!("{name}-same"), &[]);
    same.start();
    let mut sc = same.connect();
    refused(&mut sc, "a clone with its primary's node id, at once");
    assert_eq!(wait_chain(&mut sc), "1");
    let e = refused(&mut sc, "a clone with its primary's node id");
    assert!(e.message().contains("in use upstream"), "{e:?}");

    let own = Cluster::standby_of(&p, &format!("{name}-own"), &["snowflake_id.node_id = 2"]);
    own.start();
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
    let a = Cluster::standby_of(&p, &format!("{name}-a"), &["snowflake_id.node_id = 2"]);
    a.start();
    let b = Cluster::standby_of(&a, &format!("{name}-b"), &[]);
    b.start();
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

    let c = Cluster::standby_of(&a, &format!("{name}-c"), &["snowflake_id.node_id = 3"]);
    c.start();
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
    let s = Cluster::standby_of(&p, &format!("{name}-s"), &["snowflake_id.node_id = 2"]);
    s.start();
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
