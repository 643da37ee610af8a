//! IDs drawn from a server while something happens to it (its clock steps, a backend or the
//! postmaster is killed, it crash-restarts): what the load, clock and crash tests share.

use crate::{kill9, wait_for, Cluster};
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use snowflake_core::layout;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// `batches` INSERTs of `rows` rows into `audit (id ... DEFAULT snowflake_nextval(), v int)`,
/// the IDs drawn by the column default.
pub fn insert_audit(c: &mut Client, batches: usize, rows: i32) {
    for _ in 0..batches {
        c.execute(
            "INSERT INTO audit (v) SELECT g FROM generate_series(1, $1) g",
            &[&rows],
        )
        .unwrap();
    }
}

/// One `snowflake_nextval()`.
pub fn nextval(c: &mut Client) -> i64 {
    c.query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0)
}

/// One column of `snowflake_stats()`, as a bigint.
pub fn stat_i64(c: &mut Client, column: &str) -> i64 {
    c.query_one(
        &format!("SELECT {column}::bigint FROM snowflake_stats()"),
        &[],
    )
    .unwrap()
    .get(0)
}

/// Unix ms of the millisecond an ID decodes to.
pub fn id_unix_ms(id: i64) -> i64 {
    layout::unix_ms(layout::decode(id).unwrap().ms)
}

/// How many IDs in a connection's sequence are not above the one before.
pub fn decreases(ids: &[i64]) -> usize {
    ids.windows(2).filter(|w| w[0] >= w[1]).count()
}

/// An error that means "the server went away" (killed, restarting), not a wrong answer.
pub fn connection_lost(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code();
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
    }
}

/// Connects, retrying while the server is down or recovering; `None` once `stop` is set.
pub fn connect_retrying(conninfo: &str, stop: &AtomicBool) -> Option<Client> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match Client::connect(conninfo, NoTls) {
            Ok(c) => return Some(c),
            Err(e) if Instant::now() > deadline => panic!("cannot reconnect: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What one drawing connection saw: its IDs in order, and the longest time between two batches.
pub struct DrawLog {
    pub ids: Vec<i64>,
    pub longest_pause: Duration,
}

/// A connection drawing batches of IDs until `stop`; counts them in `drawn`.
pub fn draw_until(conninfo: String, stop: Arc<AtomicBool>, drawn: Arc<AtomicU64>) -> DrawLog {
    let mut c = Client::connect(&conninfo, NoTls).unwrap();
    let mut ids = Vec::new();
    let mut longest_pause = Duration::ZERO;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let rows = c
            .query(
                "SELECT snowflake_nextval() FROM generate_series(1, 200)",
                &[],
            )
            .unwrap();
        ids.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        drawn.fetch_add(rows.len() as u64, Ordering::Relaxed);
        longest_pause = longest_pause.max(last.elapsed());
        last = Instant::now();
    }
    DrawLog { ids, longest_pause }
}

/// Waits until the load has drawn `more` IDs beyond what it had drawn so far (polling).
pub fn wait_drawn(drawn: &AtomicU64, more: u64) {
    let target = drawn.load(Ordering::Relaxed) + more;
    wait_for(
        &format!("{more} more IDs from the load"),
        Duration::from_secs(60),
        || (drawn.load(Ordering::Relaxed) >= target).then_some(()),
    );
}

/// Draws `n` IDs in one statement, checks they came strictly increasing; the first and the last.
pub fn draw_increasing(c: &mut Client, n: i64) -> (i64, i64) {
    let rows = c
        .query(
            "SELECT snowflake_nextval() FROM generate_series(1, $1::bigint)",
            &[&n],
        )
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.len() as i64, n);
    assert_eq!(decreases(&ids), 0, "IDs not strictly increasing");
    (ids[0], *ids.last().unwrap())
}

/// How often the postmaster has reinitialised after a crash, from its log.
pub fn reinitializations(node: &Cluster) -> usize {
    node.log()
        .matches("all server processes terminated; reinitializing")
        .count()
}

/// `kill -9` of one client backend; waits until the postmaster has reinitialised shared memory.
pub fn crash_restart(node: &Cluster) {
    let before = reinitializations(node);
    let mut victim = node.connect();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    kill9(pid);
    wait_for("the crash-restart", Duration::from_secs(60), || {
        (reinitializations(node) > before).then_some(())
    });
}
