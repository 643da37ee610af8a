//! Exhaustive interleavings of the generator (loom): its compare-and-swap path, the
//! fetch-and-add path it takes while leading the clock, and a ceiling store that fails mid-run.
//! Every issued tick is checked against the ceiling durably saved before it was taken.
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p snowflake_core --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicI64, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use snowflake_core::generator::{CeilingStore, Clock, Config, GenError, Generator};
use snowflake_core::layout::{EPOCH_UNIX_MS, SEQUENCE_BITS};
use snowflake_core::store::{Saved, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc as StdArc;
use std::time::Duration;

const NOW_US: i64 = (EPOCH_UNIX_MS + 50_000_000_000) * 1000;

/// Real time, which moves only when a caller sleeps (`pause`), and a wall clock that moves with
/// it and that another thread can step back. The coarse reading lags the wall clock by
/// `coarse_lag_us`. One atomic each, so a clock read is one step of the model.
#[derive(Clone)]
struct StepClock {
    real_us: Arc<AtomicI64>,
    wall_us: Arc<AtomicI64>,
    coarse_lag_us: i64,
}

impl StepClock {
    fn new(coarse_lag_us: i64) -> Self {
        StepClock {
            real_us: Arc::new(AtomicI64::new(NOW_US)),
            wall_us: Arc::new(AtomicI64::new(NOW_US)),
            coarse_lag_us,
        }
    }
    fn step_back(&self, us: i64) {
        self.wall_us.fetch_sub(us, SeqCst);
    }
    /// Real time in ms since the epoch.
    fn real_ms(&self) -> u64 {
        (self.real_us.load(SeqCst) / 1000 - EPOCH_UNIX_MS) as u64
    }
}

impl Clock for StepClock {
    fn wall_us(&self) -> i64 {
        self.wall_us.load(SeqCst)
    }
    fn wall_coarse_us(&self) -> i64 {
        self.wall_us() - self.coarse_lag_us
    }
    fn mono_us(&self) -> u64 {
        (self.real_us.load(SeqCst) - NOW_US) as u64 + 1_000_000
    }
    fn pause(&self, d: Duration) {
        let us = d.as_micros() as i64;
        self.real_us.fetch_add(us, SeqCst);
        self.wall_us.fetch_add(us, SeqCst);
        thread::yield_now();
    }
}

/// One durable save: the ceiling, and the last tick taken as read right after the save became
/// durable. A tick above `last_after` was taken after the save, so the save covers it; a tick
/// at or below it was taken before, and the save came too late for it (see [`Store::covering`]
/// for ticks skipped and given back).
#[derive(Clone, Copy, Debug)]
struct Save {
    ceiling: u64,
    last_after: u64,
}

#[derive(Default)]
struct Saves {
    log: Vec<Save>,
    /// Saves fail (a full disk) while set.
    failing: bool,
}

/// The models' ceiling store. It sees the generator it serves, to record when each save became
/// durable relative to the ticks taken; [`check`] compares every issued tick with the ceiling
/// durably saved *before the tick was taken*, not with whatever was saved by the time the call
/// returned (a generator that took a tick and saved a ceiling above it afterwards must fail).
/// One `Arc` per clone, as a plain store would have: each reference count change is a step of
/// the model, and more of them make every model slower.
#[derive(Clone)]
struct Store(Arc<StoreState>);

struct StoreState {
    g: Arc<Generator>,
    saves: Mutex<Saves>,
}

impl std::ops::Deref for Store {
    type Target = StoreState;
    fn deref(&self) -> &StoreState {
        &self.0
    }
}

impl Store {
    fn new(g: &Arc<Generator>) -> Self {
        Store(Arc::new(StoreState {
            g: g.clone(),
            saves: Mutex::default(),
        }))
    }
    /// A ceiling saved before the generator took any tick (a run in progress).
    fn seed(&self, ceiling: u64) {
        self.saves.lock().unwrap().log.push(Save {
            ceiling,
            last_after: 0,
        });
    }
    fn set_failing(&self, failing: bool) {
        self.saves.lock().unwrap().failing = failing;
    }
    fn log(&self) -> Vec<Save> {
        self.saves.lock().unwrap().log.clone()
    }
    fn saved(&self) -> u64 {
        self.log().last().map_or(0, |s| s.ceiling)
    }
    /// The ceiling durably saved before `tick` was taken (0 if none). `last` only grows, except
    /// where a generator gives a skipped tick back (`last` from it to the one below): a tick
    /// that was ever skipped may have sat in `last` when a save read it, and been given back
    /// and taken again after the save, so for such a tick every save counts (it is checked
    /// against the ceiling saved last; other interleavings check the same path strictly).
    fn covering(&self, tick: u64) -> u64 {
        let skipped = self.g.loom_adds().1.contains(&tick);
        let log = self.log();
        let before = log.iter().filter(|s| s.last_after < tick || skipped);
        before.map(|s| s.ceiling).max().unwrap_or(0)
    }
}

impl CeilingStore for Store {
    fn load(&self) -> Result<Option<Saved>, StoreError> {
        let saves = self.saves.lock().unwrap();
        Ok(saves.log.last().map(|s| Saved {
            ceiling_ms: s.ceiling,
            writer: None,
        }))
    }
    fn save(&self, ceiling: u64) -> Result<(), StoreError> {
        let mut saves = self.saves.lock().unwrap();
        if saves.failing {
            return Err(StoreError::Io {
                path: "loom".into(),
                op: "write",
                source: std::io::Error::other("disk full"),
            });
        }
        // Durable from here on; only then is `last` read.
        saves.log.push(Save {
            ceiling,
            last_after: 0,
        });
        let last_after = self.g.loom_last();
        saves.log.last_mut().unwrap().last_after = last_after;
        Ok(())
    }
}

/// Every tick is new, increasing per thread, and below the ceiling that was durably saved
/// before it was taken.
fn check(store: &Store, per_thread: &[Vec<u64>]) {
    let mut all: Vec<u64> = per_thread.iter().flatten().copied().collect();
    for ticks in per_thread {
        assert!(
            ticks.windows(2).all(|w| w[0] < w[1]),
            "a thread saw IDs go back: {ticks:?}"
        );
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate ID in {per_thread:?}");
    for &tick in &all {
        let ms = tick >> SEQUENCE_BITS;
        let covering = store.covering(tick);
        assert!(
            ms < covering,
            "tick {tick:#x} (ms {ms}) was taken when the durable ceiling was {covering}: \
             saves {:?}",
            store.log()
        );
    }
}

/// Ticks in `(first, last]` that no thread was given: taken and skipped.
fn gaps(first: u64, last: u64, per_thread: &[Vec<u64>]) -> Vec<u64> {
    let issued: std::collections::HashSet<u64> = per_thread.iter().flatten().copied().collect();
    (first + 1..=last).filter(|t| !issued.contains(t)).collect()
}

/// Every interleaving of `f`, up to 3 preemptions: that bound keeps the search to seconds and
/// covers every interleaving of the load / compare-and-swap (or fetch-and-add) pairs of two or
/// three threads.
fn explore(f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(f);
}

/// `threads` threads each call `g` `calls_each` times, the clock stepping back by `step_back_us`
/// meanwhile if given; `inspect` sees each tick as it is issued. The outcome of every call, per
/// thread: `Some(tick)`, or `None` for a store error (any other error fails the model).
#[allow(clippy::too_many_arguments)]
fn draw(
    threads: usize,
    calls_each: usize,
    g: &Arc<Generator>,
    clock: &StepClock,
    store: &Store,
    cfg: Config,
    step_back_us: Option<i64>,
    inspect: impl Fn(u64) + Clone + Send + 'static,
) -> Vec<Vec<Option<u64>>> {
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (g, clock, store, inspect) = (g.clone(), clock.clone(), store.clone(), inspect.clone());
        handles.push(thread::spawn(move || {
            (0..calls_each)
                .map(|_| match g.next(&clock, &store, &cfg) {
                    Ok(out) => {
                        inspect(out.tick);
                        Some(out.tick)
                    }
                    Err(GenError::Store(_)) => None,
                    Err(e) => panic!("{e}"),
                })
                .collect::<Vec<_>>()
        }));
    }
    if let Some(us) = step_back_us {
        clock.step_back(us);
    }
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The ticks issued, per thread.
fn issued(calls: &[Vec<Option<u64>>]) -> Vec<Vec<u64>> {
    calls
        .iter()
        .map(|c| c.iter().flatten().copied().collect())
        .collect()
}

fn run(threads: usize, ids_each: usize, pre_started: bool, step_back_us: Option<i64>) {
    explore(move || {
        let clock = StepClock::new(0);
        let g = Arc::new(Generator::new());
        let store = Store::new(&g);
        let cfg = Config::default();
        if pre_started {
            g.next(&clock, &store, &cfg).unwrap();
        }
        let calls = draw(
            threads,
            ids_each,
            &g,
            &clock,
            &store,
            cfg,
            step_back_us,
            |_| {},
        );
        assert!(
            calls.iter().flatten().all(Option::is_some),
            "a call failed: {calls:?}"
        );
        check(&store, &issued(&calls));
    });
}

#[test]
fn three_threads_one_millisecond() {
    run(3, 1, true, None);
}

#[test]
fn two_threads_two_ids_each() {
    run(2, 2, true, None);
}

#[test]
fn two_threads_while_the_clock_steps_back_an_hour() {
    run(2, 2, true, Some(3_600_000_000));
}

#[test]
fn two_threads_race_to_start() {
    run(2, 1, false, None);
}

/// A burst in progress: the last tick leads real time by `lead_ms`, one tick before the end of
/// its millisecond, and the saved ceiling is `ceiling_ahead_ms` above it.
#[derive(Clone, Copy)]
struct Burst {
    lead_ms: u64,
    ceiling_ahead_ms: u64,
    ceiling_lead_ms: u64,
    max_drift_ms: u64,
    coarse_lag_ms: i64,
    step_back_us: Option<i64>,
    /// The store fails every save from the start of the burst.
    store_fails: bool,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            lead_ms: 30,
            ceiling_ahead_ms: 600,
            ceiling_lead_ms: 1000,
            max_drift_ms: 2000,
            coarse_lag_ms: 5,
            step_back_us: None,
            store_fails: false,
        }
    }
}

/// One execution of a [`Burst`] model, for the model's own checks.
struct Outcome {
    g: Arc<Generator>,
    clock: StepClock,
    store: Store,
    /// Real time at the start (ms since the epoch), the burst's last tick, the saved ceiling.
    now_ms: u64,
    first: u64,
    ceiling: u64,
    calls: Vec<Vec<Option<u64>>>,
    ticks: Vec<Vec<u64>>,
    /// Ticks taken by the fetch-and-add path, and skipped there.
    adds: u64,
    skips: Vec<u64>,
    /// Ticks in `(first, last]` nobody was given.
    gaps: Vec<u64>,
}

/// Counts over all executions of a model, for what happens in some interleavings only.
#[derive(Default)]
struct Seen {
    executions: AtomicUsize,
    skipped: AtomicUsize,
    gapped: AtomicUsize,
}

impl Seen {
    fn count(&self, o: &Outcome) {
        self.executions.fetch_add(1, Relaxed);
        if !o.skips.is_empty() {
            self.skipped.fetch_add(1, Relaxed);
        }
        if !o.gaps.is_empty() {
            self.gapped.fetch_add(1, Relaxed);
        }
    }
    fn get(&self) -> (usize, usize, usize) {
        (
            self.executions.load(Relaxed),
            self.skipped.load(Relaxed),
            self.gapped.load(Relaxed),
        )
    }
}

/// Two threads call twice each during a [`Burst`]; with the lead above the coarse margin they
/// go through the fetch-and-add path. Every tick must be new, increasing per thread, below the
/// ceiling durably saved before it was taken ([`check`]), and within the drift bound of real
/// time; every call succeeds unless the store fails. Then `then` checks the model's own points.
fn run_leading(b: Burst, then: impl Fn(&Outcome) + Send + Sync + 'static) {
    explore(move || {
        let clock = StepClock::new(b.coarse_lag_ms * 1000);
        let now_ms = clock.real_ms();
        let first = ((now_ms + b.lead_ms) << SEQUENCE_BITS) | 4094;
        let ceiling = now_ms + b.lead_ms + b.ceiling_ahead_ms;
        let g = Arc::new(Generator::loom_running(
            first,
            now_ms,
            ceiling,
            NOW_US,
            clock.mono_us(),
        ));
        let store = Store::new(&g);
        store.seed(ceiling);
        store.set_failing(b.store_fails);
        let cfg = Config {
            max_drift_ms: b.max_drift_ms,
            ceiling_lead_ms: b.ceiling_lead_ms,
        };
        let c = clock.clone();
        let calls = draw(2, 2, &g, &clock, &store, cfg, b.step_back_us, move |tick| {
            let ms = tick >> SEQUENCE_BITS;
            assert!(
                tick > first,
                "tick {tick:#x} not above the burst's {first:#x}"
            );
            let real = c.real_ms();
            assert!(
                ms <= real + b.max_drift_ms,
                "ms {ms} too far ahead of {real}"
            );
        });
        if !b.store_fails {
            assert!(
                calls.iter().flatten().all(Option::is_some),
                "a call failed: {calls:?}"
            );
        }
        let ticks = issued(&calls);
        check(&store, &ticks);
        let (adds, skips) = g.loom_adds();
        let gaps = gaps(first, g.loom_last(), &ticks);
        // Every tick taken and not issued was taken by an add and skipped (the clock is behind
        // the burst, so nothing else jumps `last`).
        assert!(
            gaps.iter().all(|t| skips.contains(t)),
            "gaps {gaps:?} but skipped {skips:?}"
        );
        // Once every call has returned an ID, the last tick taken is one that was issued: a
        // skipped tick is given back, or a later add took (and issued above) it, so
        // snowflake_stats().last_id never shows a tick nobody was given.
        if !b.store_fails {
            let max = ticks.iter().flatten().max().copied();
            assert_eq!(Some(g.loom_last()), max, "last is a tick nobody was given");
        }
        let o = Outcome {
            g,
            clock,
            store,
            now_ms,
            first,
            ceiling,
            calls,
            ticks,
            adds,
            skips,
            gaps,
        };
        then(&o);
    });
}

#[test]
fn two_threads_leading_the_clock_carry_into_the_next_millisecond() {
    run_leading(Burst::default(), |o| {
        // All four by the add, none skipped, no gap: the last four ticks after `first`.
        assert_eq!((o.adds, o.skips.len()), (4, 0));
        let mut all: Vec<u64> = o.ticks.concat();
        all.sort_unstable();
        assert_eq!(all, (o.first + 1..=o.first + 4).collect::<Vec<_>>());
        assert_eq!(o.g.loom_last(), o.first + 4);
        assert_eq!(
            o.store.log().len(),
            1,
            "saved with the ceiling 600 ms ahead"
        );
    });
}

#[test]
fn leading_add_that_reaches_the_ceiling_is_skipped_and_the_ceiling_saved() {
    // The first add takes the ceiling's last millisecond, the second would reach the ceiling:
    // when both threads loaded `last` before either added, the second add is skipped.
    let seen = StdArc::new(Seen::default());
    let s = seen.clone();
    run_leading(
        Burst {
            ceiling_ahead_ms: 1,
            ceiling_lead_ms: 1,
            ..Burst::default()
        },
        move |o| {
            s.count(o);
            // The add path issued a tick (the first one, in the ceiling's last millisecond).
            assert!(
                o.adds > o.skips.len() as u64,
                "the add path issued nothing: {:?}",
                (o.adds, &o.skips)
            );
            // Skipped ticks were at (or above) the ceiling they were checked against.
            assert!(
                o.skips.iter().all(|t| t >> SEQUENCE_BITS >= o.ceiling),
                "skipped {:?}",
                o.skips
            );
            // Four IDs need the ceiling's next millisecond: a save was made, and the ticks at or
            // above the old ceiling are below the new one ([`check`]: saved before they were taken).
            let log = o.store.log();
            assert!(
                log.len() >= 2 && o.g.stats().ceiling_writes >= 1,
                "no save: {log:?}"
            );
            let top = o.ticks.iter().flatten().max().unwrap() >> SEQUENCE_BITS;
            assert!(top >= o.ceiling, "no tick needed the new ceiling");
            assert!(top < o.store.saved());
        },
    );
    let (executions, skipped, gapped) = seen.get();
    println!("{executions} executions, {skipped} with a skip, {gapped} with a gap left");
    assert!(skipped > 0, "no execution skipped a tick at the ceiling");
    assert!(gapped > 0, "no execution left a skipped tick in `last`");
}

#[test]
fn leading_add_past_the_drift_bound_is_skipped() {
    // The first add takes the last millisecond within the bound, the second would pass it:
    // when both threads loaded `last` before either added, the second add is skipped.
    let seen = StdArc::new(Seen::default());
    let s = seen.clone();
    let b = Burst {
        lead_ms: 40,
        max_drift_ms: 40,
        coarse_lag_ms: 0,
        ..Burst::default()
    };
    run_leading(b, move |o| {
        s.count(o);
        assert!(
            o.adds > o.skips.len() as u64,
            "the add path issued nothing: {:?}",
            (o.adds, &o.skips)
        );
        // Skipped ticks were beyond the drift bound when taken (real time has not moved on).
        let bound = o.now_ms + b.max_drift_ms;
        assert!(
            o.skips.iter().all(|t| t >> SEQUENCE_BITS > bound),
            "skipped {:?}",
            o.skips
        );
        // The ticks beyond the bound were issued after waiting for real time.
        assert!(o.g.stats().drift_waits >= 1);
    });
    let (executions, skipped, gapped) = seen.get();
    println!("{executions} executions, {skipped} with a skip, {gapped} with a gap left");
    assert!(
        skipped > 0,
        "no execution skipped a tick past the drift bound"
    );
    assert!(gapped > 0, "no execution left a skipped tick in `last`");
}

#[test]
fn two_threads_leading_the_clock_while_it_steps_back_an_hour() {
    run_leading(
        Burst {
            step_back_us: Some(3_600_000_000),
            ..Burst::default()
        },
        |_| {},
    );
}

#[test]
fn leading_the_clock_with_a_failing_store_stops_at_the_saved_ceiling() {
    // One tick is left below the saved ceiling; the store fails every save. The call that
    // gets that tick succeeds, every other call needs a new ceiling and fails; once the store
    // works again the next ID is above everything issued and taken.
    let b = Burst {
        ceiling_ahead_ms: 1,
        ceiling_lead_ms: 1,
        store_fails: true,
        ..Burst::default()
    };
    run_leading(b, move |o| {
        let calls: Vec<Option<u64>> = o.calls.concat();
        assert_eq!(calls.iter().flatten().count(), 1, "{calls:?}");
        assert!(o.ticks.iter().flatten().all(|&t| t == o.first + 1));
        assert_eq!(o.store.log().len(), 1);
        assert_eq!(o.g.stats().ceiling_ms, o.ceiling);
        o.store.set_failing(false);
        let taken = o.g.loom_last();
        let cfg = Config {
            max_drift_ms: b.max_drift_ms,
            ceiling_lead_ms: b.ceiling_lead_ms,
        };
        let after = o.g.next(&o.clock, &o.store, &cfg).unwrap().tick;
        assert!(
            after > taken,
            "{after:#x} not above {taken:#x}, taken before"
        );
        let mut ticks = o.ticks.clone();
        ticks.push(vec![after]);
        check(&o.store, &ticks);
    });
}
