//! Exhaustive interleavings of the generator (loom): its compare-and-swap path, and the
//! fetch-and-add path it takes while leading the clock.
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p snowflake_core --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicI64, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use snowflake_core::generator::{CeilingStore, Clock, Config, Generator};
use snowflake_core::layout::{EPOCH_UNIX_MS, SEQUENCE_BITS};
use snowflake_core::store::{Saved, StoreError};
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

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Option<u64>>>);

impl Store {
    fn saved(&self) -> u64 {
        self.0.lock().unwrap().unwrap_or(0)
    }
}

impl CeilingStore for Store {
    fn load(&self) -> Result<Option<Saved>, StoreError> {
        Ok(self.0.lock().unwrap().map(|ceiling_ms| Saved {
            ceiling_ms,
            writer: None,
        }))
    }
    fn save(&self, c: u64) -> Result<(), StoreError> {
        *self.0.lock().unwrap() = Some(c);
        Ok(())
    }
}

fn check(per_thread: Vec<Vec<u64>>) {
    let mut all: Vec<u64> = per_thread.iter().flatten().copied().collect();
    for ticks in &per_thread {
        assert!(
            ticks.windows(2).all(|w| w[0] < w[1]),
            "a thread saw IDs go back: {ticks:?}"
        );
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate ID in {per_thread:?}");
}

/// Every interleaving of `f`, up to 3 preemptions: that bound keeps the search to seconds and
/// covers every interleaving of the load / compare-and-swap (or fetch-and-add) pairs of two or
/// three threads.
fn explore(f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(f);
}

/// `threads` threads take `ids_each` IDs each from `g`, the clock stepping back by `step_back_us`
/// meanwhile if given; `inspect` sees each tick as it is issued. Then the checks of [`check`].
#[allow(clippy::too_many_arguments)]
fn draw(
    threads: usize,
    ids_each: usize,
    g: Arc<Generator>,
    clock: &StepClock,
    store: &Store,
    cfg: Config,
    step_back_us: Option<i64>,
    inspect: impl Fn(u64) + Clone + Send + 'static,
) {
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (g, clock, store, inspect) = (g.clone(), clock.clone(), store.clone(), inspect.clone());
        handles.push(thread::spawn(move || {
            (0..ids_each)
                .map(|_| {
                    let tick = g.next(&clock, &store, &cfg).unwrap().tick;
                    inspect(tick);
                    tick
                })
                .collect::<Vec<_>>()
        }));
    }
    if let Some(us) = step_back_us {
        clock.step_back(us);
    }
    check(handles.into_iter().map(|h| h.join().unwrap()).collect());
}

fn run(threads: usize, ids_each: usize, pre_started: bool, step_back_us: Option<i64>) {
    explore(move || {
        let clock = StepClock::new(0);
        let store = Store::default();
        let g = Arc::new(Generator::new());
        let cfg = Config::default();
        if pre_started {
            g.next(&clock, &store, &cfg).unwrap();
        }
        draw(
            threads,
            ids_each,
            g,
            &clock,
            &store,
            cfg,
            step_back_us,
            |_| {},
        );
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
        }
    }
}

/// Two threads take two IDs each from a [`Burst`]; with the lead above the coarse margin they go
/// through the fetch-and-add path. Every tick must be new, increasing per thread, below the
/// ceiling saved when it was issued, and within the drift bound of real time.
fn run_leading(b: Burst) {
    explore(move || {
        let clock = StepClock::new(b.coarse_lag_ms * 1000);
        let now_ms = clock.real_ms();
        let first = ((now_ms + b.lead_ms) << SEQUENCE_BITS) | 4094;
        let ceiling = now_ms + b.lead_ms + b.ceiling_ahead_ms;
        let store = Store::default();
        store.save(ceiling).unwrap();
        let g = Arc::new(Generator::loom_running(
            first,
            now_ms,
            ceiling,
            NOW_US,
            clock.mono_us(),
        ));
        let cfg = Config {
            max_drift_ms: b.max_drift_ms,
            ceiling_lead_ms: b.ceiling_lead_ms,
        };
        let (c, st) = (clock.clone(), store.clone());
        draw(2, 2, g, &clock, &store, cfg, b.step_back_us, move |tick| {
            let ms = tick >> SEQUENCE_BITS;
            assert!(
                tick > first,
                "tick {tick:#x} not above the burst's {first:#x}"
            );
            assert!(
                ms < st.saved(),
                "tick in ms {ms} not below the saved ceiling"
            );
            let real = c.real_ms();
            assert!(
                ms <= real + b.max_drift_ms,
                "ms {ms} too far ahead of {real}"
            );
        });
    });
}

#[test]
fn two_threads_leading_the_clock_carry_into_the_next_millisecond() {
    run_leading(Burst::default());
}

#[test]
fn leading_add_that_reaches_the_ceiling_is_skipped_and_the_ceiling_saved() {
    // The first add takes the ceiling's last millisecond, the second would reach the ceiling.
    run_leading(Burst {
        ceiling_ahead_ms: 1,
        ceiling_lead_ms: 1,
        ..Burst::default()
    });
}

#[test]
fn leading_add_past_the_drift_bound_is_skipped() {
    // The first add takes the last millisecond within the bound, the second would pass it.
    run_leading(Burst {
        lead_ms: 40,
        max_drift_ms: 40,
        coarse_lag_ms: 0,
        ..Burst::default()
    });
}

#[test]
fn two_threads_leading_the_clock_while_it_steps_back_an_hour() {
    run_leading(Burst {
        step_back_us: Some(3_600_000_000),
        ..Burst::default()
    });
}
