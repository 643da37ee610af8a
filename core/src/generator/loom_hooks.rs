//! Loom models only (`--cfg loom`): what the models in `core/tests/loom.rs` observe beyond the
//! public API. The production type carries none of it: under loom the word `last` is a
//! [`TickWord`], which records the ticks the fetch-and-add path takes and gives back, and the
//! models reach a state mid-burst through [`Generator::loom_running`].

use super::Generator;
use crate::sync::{AtomicU64, Ordering, Ordering::*};
use std::sync::Mutex;

/// `last` under loom: loom's atomic, plus how many ticks the fetch-and-add path took and those
/// it skipped, in the order skipped. Plain `std` types, invisible to loom, so they add no
/// interleavings.
pub(super) struct TickWord {
    word: AtomicU64,
    adds: std::sync::atomic::AtomicU64,
    skips: Mutex<Vec<u64>>,
}

impl TickWord {
    pub(super) fn new(tick: u64) -> Self {
        TickWord {
            word: AtomicU64::new(tick),
            adds: Default::default(),
            skips: Default::default(),
        }
    }

    pub(super) fn load(&self, order: Ordering) -> u64 {
        self.word.load(order)
    }

    pub(super) fn store(&self, tick: u64, order: Ordering) {
        self.word.store(tick, order)
    }

    pub(super) fn fetch_max(&self, tick: u64, order: Ordering) -> u64 {
        self.word.fetch_max(tick, order)
    }

    /// Only the fetch-and-add path adds: each call is one tick it took.
    pub(super) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        let prev = self.word.fetch_add(n, order);
        self.adds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        prev
    }

    pub(super) fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.word
            .compare_exchange_weak(current, new, success, failure)
    }

    /// `last` moves down only where the fetch-and-add path gives back a tick it skipped (from
    /// that tick to the one below): such an exchange records `current` as skipped, whether or
    /// not it succeeds.
    pub(super) fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        if new < current {
            assert_eq!(
                new,
                current - 1,
                "`last` moved down other than by a give-back"
            );
            self.skips.lock().unwrap().push(current);
        }
        self.word.compare_exchange(current, new, success, failure)
    }
}

impl Generator {
    /// A state already running and leading its clock, for the loom models: reaching a lead
    /// through [`Generator::next`] takes tens of thousands of IDs, too many to model-check.
    /// `last_tick` is the last issued tick, `wall_high_ms` the highest wall reading seen (ms
    /// since the epoch), `ceiling_ms` the saved ceiling, `now_us` / `mono_us` a trusted reading.
    pub fn loom_running(
        last_tick: u64,
        wall_high_ms: u64,
        ceiling_ms: u64,
        now_us: i64,
        mono_us: u64,
    ) -> Self {
        let g = Self::new();
        g.last.store(last_tick, Relaxed);
        g.wall_high.store(wall_high_ms, Relaxed);
        g.offset_us.store(now_us - mono_us as i64, Relaxed);
        g.offset_at_us.store(mono_us, Relaxed);
        g.started_unix_ms.store(now_us / 1000, Relaxed);
        g.ceiling.store(ceiling_ms, Release);
        g
    }

    /// How many ticks the fetch-and-add path took, and those of them it skipped (did not
    /// issue), in the order skipped.
    pub fn loom_adds(&self) -> (u64, Vec<u64>) {
        let adds = self.last.adds.load(std::sync::atomic::Ordering::Relaxed);
        (adds, self.last.skips.lock().unwrap().clone())
    }

    /// The last tick taken (one load, where [`Generator::stats`] makes a dozen, each a step of
    /// the model).
    pub fn loom_last(&self) -> u64 {
        self.last.load(Relaxed)
    }
}
