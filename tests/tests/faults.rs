//! "Never repeat, never go back", on real servers: the wall clock stepped back under load
//! (libfaketime and our own LD_PRELOAD shim), a restart with the clock an hour behind, `kill -9`
//! of backends and of the postmaster under an insert load, 16 connections x 1,000,000 IDs, one
//! statement drawing 20,000,000 IDs against the drift bound, and a corrupted or unreadable
//! state file. Ports 25601-25629, clusters `faults-*`.
//!
//! Every test prints its figures on stderr (`cargo test ... -- --nocapture` shows them).

use postgres::binary_copy::BinaryCopyOutIter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, NoTls};
use snowflake_core::layout;
use snowflake_it::clock::{self, FakeTime, ServerClock, Shim};
use snowflake_it::{count_duplicates, kill9, wait_for, Cluster};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STEP_WARNING: &str = "WARNING:  snowflake_id: the system clock stepped back by ";
const BEHIND_WARNING: &str = "WARNING:  snowflake_id: the system clock is ";

fn nextval(c: &mut Client) -> i64 {
    c.query_one("SELECT snowflake_nextval()", &[]).unwrap().get(0)
}

fn stat_i64(c: &mut Client, column: &str) -> i64 {
    c.query_one(&format!("SELECT {column} FROM snowflake_stats()"), &[]).unwrap().get(0)
}

/// Unix ms of the millisecond an ID decodes to.
fn id_unix_ms(id: i64) -> i64 {
    layout::unix_ms(layout::decode(id).unwrap().ms)
}

/// The sizes (ms) in the server log's lines that start with `prefix` and go on with a number.
fn logged_ms(log: &str, prefix: &str) -> Vec<i64> {
    log.lines()
        .filter_map(|l| l.split_once(prefix))
        .map(|(_, rest)| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// How many IDs in a connection's sequence are not above the one before.
fn decreases(ids: &[i64]) -> usize {
    ids.windows(2).filter(|w| w[0] >= w[1]).count()
}

/// An error that means "the server went away" (killed, restarting), not a wrong answer.
fn connection_lost(e: &postgres::Error) -> bool {
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
fn connect_retrying(conninfo: &str, stop: &AtomicBool) -> Option<Client> {
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

// ---------------------------------------------------------------------------------------------
// Clock stepped back while running
// ---------------------------------------------------------------------------------------------

struct DrawLog {
    ids: Vec<i64>,
    longest_pause: Duration,
}

/// A connection drawing batches of IDs until `stop`; counts them in `drawn`.
fn draw_until(conninfo: String, stop: Arc<AtomicBool>, drawn: Arc<AtomicU64>) -> DrawLog {
    let mut c = Client::connect(&conninfo, NoTls).unwrap();
    let mut ids = Vec::new();
    let mut longest_pause = Duration::ZERO;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let rows = c.query("SELECT snowflake_nextval() FROM generate_series(1, 200)", &[]).unwrap();
        ids.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        drawn.fetch_add(rows.len() as u64, Ordering::Relaxed);
        longest_pause = longest_pause.max(last.elapsed());
        last = Instant::now();
    }
    DrawLog { ids, longest_pause }
}

fn wait_drawn(drawn: &AtomicU64, more: u64) {
    let target = drawn.load(Ordering::Relaxed) + more;
    wait_for(&format!("{more} more IDs from the load"), Duration::from_secs(60), || {
        (drawn.load(Ordering::Relaxed) >= target).then_some(())
    });
}

/// Steps the server's wall clock back by 1 s, 60 s and 3600 s while 4 connections draw IDs.
fn clock_steps_back_under_load(clock: &dyn ServerClock, name: &str, port: u16) {
    let mut node = Cluster::init(name, port, &["snowflake_id.node_id = 7"]);
    node.env = clock.env();
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut ctl = node.connect();
    clock::wait_until_server_offset(&mut ctl, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let drawn = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (conninfo, stop, drawn) = (node.conninfo(), stop.clone(), drawn.clone());
            thread::spawn(move || draw_until(conninfo, stop, drawn))
        })
        .collect();

    let steps_ms = [1_000i64, 60_000, 3_600_000];
    let mut offset = 0;
    let started = Instant::now();
    for (k, step) in steps_ms.iter().enumerate() {
        wait_drawn(&drawn, 20_000);
        let before = nextval(&mut ctl);
        offset -= step;
        clock.set_offset_ms(offset);
        // The backends really run on the stepped clock...
        clock::wait_until_server_offset(&mut ctl, offset);
        // ...and the generator saw the step while the load went on.
        wait_for(&format!("step {} counted", k + 1), Duration::from_secs(60), || {
            (stat_i64(&mut ctl, "clock_steps") == k as i64 + 1).then_some(())
        });
        let after = nextval(&mut ctl);
        assert!(after > before, "after a {step} ms step back: {after} is not above {before}");
        wait_drawn(&drawn, 20_000);
        if *step == 1_000 {
            // A second later the wall clock has caught up with the IDs: the generator trusts it
            // again (no lag left), so the next step is measured from real time.
            wait_for("the wall clock to catch up after 1 s", Duration::from_secs(20), || {
                (stat_i64(&mut ctl, "clock_behind_ms") == 0).then_some(())
            });
            wait_drawn(&drawn, 20_000);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<DrawLog> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();

    let mut all = Vec::new();
    for l in &logs {
        assert_eq!(decreases(&l.ids), 0, "IDs went back within a connection");
        all.extend_from_slice(&l.ids);
    }
    let dups = count_duplicates(&all);
    assert_eq!(dups, 0, "duplicate IDs");
    let longest_pause = logs.iter().map(|l| l.longest_pause).max().unwrap();
    assert!(longest_pause < Duration::from_secs(5), "a connection stalled for {longest_pause:?}");

    let steps = stat_i64(&mut ctl, "clock_steps");
    assert_eq!(steps, 3, "steps counted");
    // Behind by the last two steps (the first one was caught up).
    let behind = stat_i64(&mut ctl, "clock_behind_ms");
    assert!((behind - 3_660_000).abs() <= 250, "clock_behind_ms = {behind}");
    // The newest IDs decode to about an hour ahead of the (stepped) server clock: they go on from
    // the logical clock instead of repeating the last hour's values.
    let lead = id_unix_ms(nextval(&mut ctl)) - (clock::real_unix_ms() + offset);
    assert!(lead >= 3_600_000 - 1_000, "lead over the stepped clock: {lead} ms");

    let warned = logged_ms(&node.log(), STEP_WARNING);
    assert_eq!(warned.len(), 3, "one WARNING per step, got {warned:?}");
    for (w, s) in warned.iter().zip(steps_ms) {
        assert!((w - s).abs() <= 250, "WARNING says {w} ms for a step of {s} ms");
    }
    eprintln!(
        "[{}] {} IDs from 4 connections in {:.1?}, steps performed 3 counted {steps}, WARNINGs {warned:?} ms, \
         duplicates {dups}, decreases 0, longest pause between batches {longest_pause:?}, clock_behind_ms {behind}",
        clock.name(),
        all.len(),
        elapsed
    );
}

#[test]
fn clock_steps_back_under_load_libfaketime() {
    let dir = snowflake_it::clusters_root().join("faults-faketime-files");
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let clock = FakeTime::new(&dir);
    clock_steps_back_under_load(&clock, "faults-step-faketime", 25601);
}

#[test]
fn clock_steps_back_under_load_whole_server_shim() {
    let dir = snowflake_it::clusters_root().join("faults-shim-files");
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let clock = Shim::new(&dir);
    clock_steps_back_under_load(&clock, "faults-step-shim", 25602);
}
