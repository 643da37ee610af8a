//! Exhaustive interleavings of the compare-and-swap generator (loom).
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p snowflake_core --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicI64, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use snowflake_core::generator::{CeilingStore, Clock, Config, Generator};
use snowflake_core::layout::EPOCH_UNIX_MS;
use snowflake_core::store::StoreError;
use std::time::Duration;

const NOW_US: i64 = (EPOCH_UNIX_MS + 50_000_000_000) * 1000;

/// A wall clock that another thread can step; monotonic time stands still.
#[derive(Clone)]
struct StepClock(Arc<AtomicI64>);

impl Clock for StepClock {
    fn wall_us(&self) -> i64 {
        self.0.load(SeqCst)
    }
    fn mono_us(&self) -> u64 {
        1_000_000
    }
    fn pause(&self, _: Duration) {
        thread::yield_now();
    }
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Option<u64>>>);

impl CeilingStore for Store {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(*self.0.lock().unwrap())
    }
    fn save(&self, c: u64) -> Result<(), StoreError> {
        *self.0.lock().unwrap() = Some(c);
        Ok(())
    }
}

fn check(per_thread: Vec<Vec<u64>>) {
    let mut all: Vec<u64> = per_thread.iter().flatten().copied().collect();
    for ticks in &per_thread {
        assert!(ticks.windows(2).all(|w| w[0] < w[1]), "a thread saw IDs go back: {ticks:?}");
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate ID in {per_thread:?}");
}

fn run(threads: usize, ids_each: usize, pre_started: bool, step_back_us: Option<i64>) {
    let mut model = loom::model::Builder::new();
    // Bounded preemptions keep the search to seconds; 3 covers every interleaving of the
    // load / compare-and-swap pairs of two or three threads.
    model.preemption_bound = Some(3);
    model.check(move || {
        let clock = StepClock(Arc::new(AtomicI64::new(NOW_US)));
        let store = Store::default();
        let g = Arc::new(Generator::new());
        let cfg = Config::default();
        if pre_started {
            g.next(&clock, &store, &cfg).unwrap();
        }
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (g, clock, store) = (g.clone(), clock.clone(), store.clone());
            handles.push(thread::spawn(move || {
                (0..ids_each).map(|_| g.next(&clock, &store, &cfg).unwrap().tick).collect::<Vec<_>>()
            }));
        }
        if let Some(us) = step_back_us {
            clock.0.fetch_sub(us, SeqCst);
        }
        check(handles.into_iter().map(|h| h.join().unwrap()).collect());
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
