//! "Never repeat, never go back" while the wall clock misbehaves, on real servers: the clock
//! stepped back under load (libfaketime and our own LD_PRELOAD shim, `snowflake_it::clock`), a
//! restart and a crash-restart with the clock an hour behind, one statement drawing 20,000,000
//! IDs against the drift bound, quick restarts after bursts, a clock before the epoch or past
//! the layout's horizon, a forward jump set right soon after, and a call waiting for the clock
//! that shows its wait and is cancelled at once.
//!
//! Every test prints its figures on stderr (`cargo test ... -- --nocapture` shows them).

use postgres::binary_copy::BinaryCopyOutIter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::Client;
use snowflake_core::layout;
use snowflake_it::clock::{self, FakeTime, ServerClock, Shim};
use snowflake_it::draw::{
    crash_restart, decreases, draw_increasing, draw_until, id_unix_ms, nextval, stat_i64,
    wait_drawn, DrawLog,
};
use snowflake_it::state::write_ceiling;
use snowflake_it::{count_duplicates, db_error, wait_for, Cluster};
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STEP_WARNING: &str = "WARNING:  snowflake_id: the system clock stepped back by ";

const BEHIND_WARNING: &str = "WARNING:  snowflake_id: the system clock is ";

/// The sizes (ms) in the server log's lines that start with `prefix` and go on with a number.
fn logged_ms(log: &str, prefix: &str) -> Vec<i64> {
    log.lines()
        .filter_map(|l| l.split_once(prefix))
        .map(|(_, rest)| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// Steps the server's wall clock back by 1 s, 60 s and 3600 s while 4 connections draw IDs.
fn clock_steps_back_under_load(clock: &dyn ServerClock, name: &str) {
    let mut node = Cluster::init(name, &["snowflake_id.node_id = 7"]);
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
        wait_for(
            &format!("step {} counted", k + 1),
            Duration::from_secs(60),
            || (stat_i64(&mut ctl, "clock_steps") > k as i64).then_some(()),
        );
        let after = nextval(&mut ctl);
        assert!(
            after > before,
            "after a {step} ms step back: {after} is not above {before}"
        );
        wait_drawn(&drawn, 20_000);
        if *step == 1_000 {
            // A second later the wall clock has caught up with the IDs: the generator trusts it
            // again (no lag left), so the next step is measured from real time.
            wait_for(
                "the wall clock to catch up after 1 s",
                Duration::from_secs(20),
                || (stat_i64(&mut ctl, "clock_behind_ms") == 0).then_some(()),
            );
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
    assert!(
        longest_pause < Duration::from_secs(5),
        "a connection stalled for {longest_pause:?}"
    );

    let steps = stat_i64(&mut ctl, "clock_steps");
    let log = node.log();
    let warning_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARNING:  snowflake_id"))
        .collect();
    assert_eq!(steps, 3, "steps counted; server log: {warning_lines:#?}");
    // Behind by the last two steps (the first one was caught up).
    let behind = stat_i64(&mut ctl, "clock_behind_ms");
    assert!(
        (behind - 3_660_000).abs() <= 250,
        "clock_behind_ms = {behind}"
    );
    // The newest IDs decode to about an hour ahead of the (stepped) server clock: they go on from
    // the logical clock instead of repeating the last hour's values.
    let lead = id_unix_ms(nextval(&mut ctl)) - (clock::real_unix_ms() + offset);
    assert!(
        lead >= 3_600_000 - 1_000,
        "lead over the stepped clock: {lead} ms"
    );

    let warned = logged_ms(&node.log(), STEP_WARNING);
    assert_eq!(warned.len(), 3, "one WARNING per step, got {warned:?}");
    for (w, s) in warned.iter().zip(steps_ms) {
        assert!(
            (w - s).abs() <= 250,
            "WARNING says {w} ms for a step of {s} ms"
        );
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
    clock_steps_back_under_load(&clock, "faults-step-faketime");
}

#[test]
fn clock_steps_back_under_load_whole_server_shim() {
    let dir = snowflake_it::clusters_root().join("faults-shim-files");
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let clock = Shim::new(&dir);
    clock_steps_back_under_load(&clock, "faults-step-shim");
}

#[test]
fn restart_and_crash_restart_with_the_clock_an_hour_behind() {
    let dir = snowflake_it::clusters_root().join("faults-behind-files");
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let clock = FakeTime::new(&dir);
    let mut node = Cluster::init("faults-behind", &["snowflake_id.node_id = 12"]);
    node.env = clock.env();
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    clock::wait_until_server_offset(&mut c, 0);
    let (_, max_before) = draw_increasing(&mut c, 100_000);
    // The ceiling saved for this run (Unix ms): the floor the next start goes on from.
    let ceiling: i64 = c
        .query_one(
            "SELECT (extract(epoch FROM ceiling) * 1000)::bigint FROM snowflake_stats()",
            &[],
        )
        .unwrap()
        .get(0);
    drop(c);

    // Stopped, the clock set an hour back, started again.
    node.stop();
    clock.set_offset_ms(-3_600_000);
    let before_start = clock::real_unix_ms();
    node.start();
    let mut c = node.connect();
    clock::wait_until_server_offset(&mut c, -3_600_000);
    let t = Instant::now();
    let (first, mut max_seen) = draw_increasing(&mut c, 100_000);
    let restart_draw = t.elapsed();
    let after_draw = clock::real_unix_ms();
    assert!(
        first > max_before,
        "after a restart 1 h behind: {first} is not above {max_before}"
    );
    assert!(
        restart_draw < Duration::from_secs(30),
        "100,000 IDs took {restart_draw:?} (a stall)"
    );
    assert_eq!(
        stat_i64(&mut c, "clock_steps"),
        1,
        "a start behind the ceiling counts as a step"
    );
    let behind = logged_ms(&node.log(), BEHIND_WARNING);
    assert_eq!(
        behind.len(),
        1,
        "one WARNING for the start behind: {behind:?}"
    );
    // The generator started (first call) between `before_start` and `after_draw`, with the server
    // clock an hour behind real time: the WARNING is the saved ceiling minus that reading. Time
    // spent stopping and starting shrinks it below an hour, the ceiling's lead grows it.
    let (low, high) = (
        ceiling - (after_draw - 3_600_000),
        ceiling - (before_start - 3_600_000),
    );
    assert!(
        (low - 50..=high + 50).contains(&behind[0]),
        "the WARNING says {} ms behind; ceiling minus the stepped clock was {low}..={high} ms",
        behind[0]
    );
    drop(c);

    // Crash-restarts (shared memory re-created) and a postmaster kill -9, still an hour behind.
    for round in 0..3 {
        if round < 2 {
            crash_restart(&node);
        } else {
            node.kill9_postmaster();
            node.start();
        }
        let mut c = node.connect();
        let (first, last) = draw_increasing(&mut c, 50_000);
        assert!(
            first > max_seen,
            "round {round}: {first} is not above {max_seen}"
        );
        max_seen = last;
    }
    eprintln!(
        "[behind] restart 1 h behind: first ID +{} ms over the last before ({} ms lead over the \
         clock), 100,000 IDs in {restart_draw:?}, WARNING {behind:?} ms (ceiling minus the stepped clock {low}..={high}); 2 crash-restarts and 1 \
         postmaster kill -9 while behind: every ID above the ones before",
        id_unix_ms(first) - id_unix_ms(max_before),
        id_unix_ms(first) - (clock::real_unix_ms() - 3_600_000),
    );
}

#[test]
fn one_statement_draws_20m_ids_within_the_drift_bound() {
    const N: i64 = 20_000_000;
    const PER_ROW: i64 = 16;
    const MAX_DRIFT_MS: i64 = 100;
    let node = Cluster::init(
        "faults-20m",
        &[
            "snowflake_id.node_id = 9",
            &format!("snowflake_id.max_drift_ms = {MAX_DRIFT_MS}"),
        ],
    );
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    // One statement, 16 IDs a row (drawn left to right) so that the per-row cost of the executor
    // and of COPY does not hide the generator's speed, then the server's wall clock, read right
    // after the row's last (largest) ID was issued.
    let ids = vec!["snowflake_nextval()"; PER_ROW as usize].join(", ");
    let sql = format!(
        "COPY (SELECT {ids}, clock_timestamp() FROM (SELECT generate_series(1, {}) g) s) \
         TO STDOUT (FORMAT binary)",
        N / PER_ROW
    );
    let mut types = vec![Type::INT8; PER_ROW as usize];
    types.push(Type::TIMESTAMPTZ);
    let t0 = clock::real_unix_ms();
    let start = Instant::now();
    let reader = c.copy_out(&sql).unwrap();
    let mut rows = BinaryCopyOutIter::new(reader, &types);
    let (mut n, mut prev, mut first) = (0i64, 0i64, 0i64);
    let mut not_increasing = 0i64;
    let mut max_lead_us = i64::MIN; // decoded time of a row's last ID minus the wall clock after it
    while let Some(row) = rows.next().unwrap() {
        for k in 0..PER_ROW as usize {
            let id: i64 = row.get(k);
            if n == 0 {
                first = id;
            } else if id <= prev {
                not_increasing += 1;
            }
            prev = id;
            n += 1;
        }
        let wall: SystemTime = row.get(PER_ROW as usize);
        let wall_us = wall.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
        max_lead_us = max_lead_us.max(id_unix_ms(prev) * 1000 - wall_us);
    }
    drop(rows);
    let elapsed = start.elapsed();
    let t1 = clock::real_unix_ms();
    assert_eq!(n, N);
    assert_eq!(
        not_increasing, 0,
        "IDs not strictly increasing (so not unique)"
    );
    assert!(
        max_lead_us <= MAX_DRIFT_MS * 1000,
        "an ID decoded {max_lead_us} us ahead of the clock"
    );
    // 20M IDs need at least 20M/4096 = 4,883 milliseconds; none decodes to before the statement
    // began, nor to more than the bound after it ended.
    let span_ms = id_unix_ms(prev) - id_unix_ms(first) + 1;
    assert!(span_ms >= N / 4096, "{N} IDs in {span_ms} ms");
    assert!(id_unix_ms(first) >= t0 - 1, "first ID before the statement");
    let overshoot = id_unix_ms(prev) - t1;
    assert!(
        overshoot <= MAX_DRIFT_MS,
        "last ID {overshoot} ms after the statement's end"
    );
    let borrowed = stat_i64(&mut c, "max_borrowed_ms");
    let waits = stat_i64(&mut c, "drift_waits");
    let wait_ms: f64 = c
        .query_one("SELECT drift_wait_ms FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert!(borrowed <= MAX_DRIFT_MS, "max_borrowed_ms {borrowed}");
    // The bound was reached, so the assertions above tested it: the IDs led the clock by the
    // whole allowance and callers waited for the clock to catch up. A machine too slow to
    // draw more than 4,096 IDs per ms fails here instead of passing without testing the bound.
    assert!(
        borrowed >= MAX_DRIFT_MS - 1 && waits > 0 && wait_ms > 0.0,
        "the drift bound was not reached: max_borrowed_ms {borrowed} of {MAX_DRIFT_MS}, drift waits {waits} \
         ({wait_ms:.0} ms), {} IDs/ms",
        N / elapsed.as_millis().max(1) as i64
    );
    // Nor exceeded by the IDs the statement returned (checked on every row above).
    assert!(
        max_lead_us > (MAX_DRIFT_MS - 2) * 1000,
        "the IDs never led the clock by the bound: {max_lead_us} us"
    );
    let per_ms = N as f64 / elapsed.as_secs_f64() / 1000.0;
    eprintln!(
        "[20M] {N} IDs in one statement in {elapsed:.2?} = {:.0} IDs/s ({per_ms:.0}/ms; format limit \
         4,096/ms), IDs span {span_ms} ms, max lead of decoded time over the wall clock {:.3} ms \
         (bound {MAX_DRIFT_MS} ms, checked on every {PER_ROW}th ID), max borrowed {borrowed} ms, \
         drift waits {waits} ({wait_ms:.0} ms)",
        per_ms * 1000.0,
        max_lead_us as f64 / 1000.0,
    );
}

/// A call that waits (here: the first call after a start whose saved ceiling is beyond the drift
/// bound) shows a wait event and ends at once when cancelled or timed out, with an ERROR.
#[test]
fn a_waiting_call_shows_its_wait_and_is_cancelled_at_once() {
    let node = Cluster::init(
        "hard-cancel",
        &["snowflake_id.node_id = 9", "snowflake_id.max_drift_ms = 0"],
    );
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    for how in [
        "pg_cancel_backend",
        "statement_timeout",
        "pg_terminate_backend",
    ] {
        // A fresh state, and a ceiling 1,080 ms ahead, as a run at the drift bound leaves it:
        // IDs start there and wait for the clock (beyond 1,100 ms ahead it would count as a
        // clock step, and not wait). The ceiling is read by the first call after a start.
        node.stop();
        node.start();
        let mut c = node.connect();
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        if how == "statement_timeout" {
            c.batch_execute("SET statement_timeout = '200ms'").unwrap();
        }
        write_ceiling(&node, clock::real_unix_ms() + 1_080, None);
        let started = Instant::now();
        let waiter = thread::spawn(move || {
            let r = c.query_one("SELECT snowflake_nextval()", &[]);
            (r.map(|row| row.get::<_, i64>(0)), Instant::now())
        });
        let mut mon = node.connect();
        if how != "statement_timeout" {
            let event: (Option<String>, Option<String>) = wait_for(
                "the wait event",
                Duration::from_secs(5),
                || {
                    let r = mon
                    .query_one("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", &[&pid])
                    .unwrap();
                    let e: (Option<String>, Option<String>) = (r.get(0), r.get(1));
                    (e.0.as_deref() == Some("Extension")).then_some(e)
                },
            );
            assert_eq!(event.0.as_deref(), Some("Extension"));
            mon.query_one(&format!("SELECT {how}($1)"), &[&pid])
                .unwrap();
        }
        let cancelled_at = Instant::now();
        let (result, ended) = waiter.join().unwrap();
        match result {
            Ok(id) => panic!("{how}: the waiting call returned {id}"),
            Err(e) if how == "pg_terminate_backend" => {
                let code = e.as_db_error().map(|d| d.code().clone());
                assert!(
                    code.is_none() || code == Some(SqlState::ADMIN_SHUTDOWN),
                    "{how}: {e}"
                );
            }
            Err(e) => {
                let e = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("{how}: {e}"))
                    .clone();
                assert_eq!(
                    e.code(),
                    &SqlState::QUERY_CANCELED,
                    "{how}: {}",
                    e.message()
                );
            }
        }
        let waited = ended - started;
        assert!(
            waited < Duration::from_millis(700),
            "{how}: the call ended after {waited:?}"
        );
        assert!(
            ended.saturating_duration_since(cancelled_at) < Duration::from_millis(500),
            "{how}"
        );
        // The backend lives on and issues IDs once the clock has caught up.
        let mut c = node.connect();
        let id: i64 = c
            .query_one("SELECT snowflake_nextval()", &[])
            .unwrap()
            .get(0);
        assert!(layout::decode(id).is_ok());
        eprintln!("[cancel] {how}: the waiting call ended with an ERROR after {waited:?}");
    }
}

/// A started server whose wall clock the test steps through the clock shim, with the
/// extension created.
fn shim_node(name: &str, node_id: u16) -> (Shim, Cluster) {
    let dir = snowflake_it::clusters_root().join(format!("{name}-files"));
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let shim = Shim::new(&dir);
    let mut node = Cluster::init(name, &[&format!("snowflake_id.node_id = {node_id}")]);
    node.env = shim.env();
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    (shim, node)
}

/// The server's wall clock at an absolute Unix ms, through the clock shim.
fn set_clock_to(shim: &Shim, c: &mut Client, unix_ms: i64) {
    let offset = unix_ms - clock::real_unix_ms();
    shim.set_offset_ms(offset);
    clock::wait_until_server_offset(c, offset);
}

#[test]
fn a_clock_before_the_epoch_or_past_the_horizon_is_an_error_and_saves_nothing() {
    let (shim, node) = shim_node("hard-clock", 10);
    let state = node.data().join("snowflake_id.state");
    // CREATE EXTENSION wrote the file, with no ceiling yet; nothing below may change it until
    // the clock is right.
    let created = fs::read(&state).expect("CREATE EXTENSION writes the state file");
    let mut c = node.connect();
    // A VM that boots before NTP: 2024-12-01.
    let dec_2024 = layout::EPOCH_UNIX_MS - 31 * 86_400_000;
    set_clock_to(&shim, &mut c, dec_2024);
    for _ in 0..2 {
        let e = db_error(
            c.query_one("SELECT snowflake_nextval()", &[]),
            "before the epoch",
        );
        assert_eq!(
            e.code(),
            &SqlState::DATETIME_FIELD_OVERFLOW,
            "{}",
            e.message()
        );
        let reading: i64 = e
            .message()
            .split("Unix ms ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("the message names no clock reading: {}", e.message()));
        assert!(
            (reading - dec_2024).abs() < 1_000,
            "{reading} is not the server's clock {dec_2024}"
        );
        assert!(e.hint().is_some_and(|h| h.contains("clock")));
    }
    assert_eq!(
        fs::read(&state).unwrap(),
        created,
        "a ceiling was saved from a clock before the epoch"
    );
    // Past the 41-bit horizon (2094-09-07).
    let horizon_unix = layout::unix_ms(layout::MAX_MS);
    set_clock_to(&shim, &mut c, horizon_unix + 86_400_000);
    let e = db_error(
        c.query_one("SELECT snowflake_nextval()", &[]),
        "past the horizon",
    );
    assert_eq!(
        e.code(),
        &SqlState::DATETIME_FIELD_OVERFLOW,
        "{}",
        e.message()
    );
    assert_eq!(
        fs::read(&state).unwrap(),
        created,
        "a ceiling past the horizon was saved (the loader would reject it)"
    );
    // The clock set right: IDs flow, on the same connection, without a restart.
    set_clock_to(&shim, &mut c, clock::real_unix_ms());
    let before = clock::real_unix_ms();
    let id: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    let ms = layout::unix_ms(layout::decode(id).unwrap().ms);
    assert!(
        (before - 50..=before + 2_000).contains(&ms),
        "ID at {ms}, clock at {before}"
    );
    assert_ne!(fs::read(&state).unwrap(), created, "no ceiling saved");
    drop(c);
    node.stop();
    node.start();
    let id2: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(id2 > id);
}

/// Draws `n` IDs in one statement: the smallest, the largest, and how far (ms) the largest
/// leads real time as read right after the statement.
fn burst(c: &mut Client, n: i64) -> (i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT min(x), max(x) FROM (SELECT snowflake_nextval() AS x FROM generate_series(1, $1::bigint)) s",
            &[&n],
        )
        .unwrap();
    let real = clock::real_unix_ms();
    let (min, max): (i64, i64) = (r.get(0), r.get(1));
    (
        min,
        max,
        layout::unix_ms(layout::decode(max).unwrap().ms) - real,
    )
}

/// Invariant 4 across restarts: six quick restarts, each followed by a burst, never put IDs
/// further ahead of the clock than max_drift_ms, and no start is reported as a clock step.
#[test]
fn quick_restarts_with_bursts_keep_ids_within_the_drift_bound() {
    let node = Cluster::init(
        "hard-restarts",
        &[
            "snowflake_id.node_id = 11",
            "snowflake_id.max_drift_ms = 2000",
        ],
    );
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut last = 0i64;
    let mut worst_lead = i64::MIN;
    for round in 0..6 {
        let mut c = node.connect();
        // A burst: 400,000 IDs in one statement (about 100 ms of IDs at the format's rate).
        let (min, max, lead) = burst(&mut c, 400_000);
        assert!(min > last, "round {round}: IDs went back");
        last = max;
        worst_lead = worst_lead.max(lead);
        assert!(
            lead <= 2_000,
            "round {round}: the last ID leads the clock by {lead} ms"
        );
        assert_eq!(
            stat_i64(&mut c, "clock_steps"),
            0,
            "round {round}: a restart counted as a clock step"
        );
        drop(c);
        node.stop();
        node.start();
    }
    assert!(
        !node.log().contains("behind the saved ceiling"),
        "a start was reported as a clock step"
    );
    eprintln!("[restarts] 6 restarts with bursts: worst lead of the last ID over the clock {worst_lead} ms (bound 2000)");
}

/// Issue 14: the wall clock jumps forward an hour under load and is set right 3 s later. IDs
/// never follow the jump: none decodes to more than max_drift_ms ahead of real time, before,
/// during or after, and they stay strictly increasing.
#[test]
fn a_forward_jump_set_right_soon_never_shows_in_an_id() {
    let (shim, node) = shim_node("hard-forward", 14);
    let mut ctl = node.connect();
    clock::wait_until_server_offset(&mut ctl, 0);
    let mut c = node.connect();
    let mut last = 0i64;
    let mut worst_lead = i64::MIN;
    let mut draw = |c: &mut Client, phase: &str| {
        for _ in 0..20 {
            let (min, max, lead) = burst(c, 20_000);
            assert!(min > last, "{phase}: IDs went back");
            last = max;
            worst_lead = worst_lead.max(lead);
            assert!(lead <= 2_000, "{phase}: an ID leads real time by {lead} ms");
        }
    };
    draw(&mut c, "before");
    shim.set_offset_ms(3_600_000);
    clock::wait_until_server_offset(&mut ctl, 3_600_000);
    let during = Instant::now();
    draw(&mut c, "jumped");
    assert!(
        during.elapsed() < Duration::from_secs(8),
        "the jump lasted too long for this test"
    );
    shim.set_offset_ms(0);
    clock::wait_until_server_offset(&mut ctl, 0);
    draw(&mut c, "set right");
    let steps: i64 = c
        .query_one("SELECT clock_steps FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        steps, 1,
        "the jump is counted once, setting it right is no step back"
    );
    let log = node.log();
    assert_eq!(
        log.matches("the system clock jumped forward by").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("stepped back"),
        "setting the clock right was taken for a step back"
    );
    eprintln!("[forward] an hour forward for a few seconds, then back: worst lead of an ID over real time {worst_lead} ms");
}
