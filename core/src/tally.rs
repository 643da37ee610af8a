//! The count of issued IDs, kept off the generator's hot cache line and without a second locked
//! instruction per ID: each writer (a PostgreSQL backend, by its backend number) owns one
//! cache-line-sized slot and adds to it with a plain load and store. Writers without a slot of
//! their own share one atomic counter. The total is the sum of all slots.

use crate::sync::{AtomicU64, Ordering::Relaxed};

/// Writers with an index below this own a slot; others share the overflow counter.
#[cfg(not(loom))]
pub const TALLY_SLOTS: usize = 1024;
#[cfg(loom)]
pub const TALLY_SLOTS: usize = 2;

#[repr(C, align(64))]
struct Slot(AtomicU64);

/// Per-writer counters. Lives in shared memory: only atomics, no pointers.
#[repr(C)]
pub struct Tally {
    owned: [Slot; TALLY_SLOTS],
    shared: AtomicU64,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            owned: std::array::from_fn(|_| Slot(AtomicU64::new(0))),
            shared: AtomicU64::new(0),
        }
    }

    /// Adds `n` for `writer`. `Some(i)` promises that no other thread or process adds with the same
    /// `i` at the same time (PostgreSQL's backend numbers are unique among live processes); a
    /// broken promise can lose counts, nothing else. `None`, or an index past the slots, uses the
    /// shared atomic counter.
    #[inline]
    pub fn add(&self, writer: Option<usize>, n: u64) {
        match writer.and_then(|i| self.owned.get(i)) {
            Some(slot) => slot.0.store(slot.0.load(Relaxed) + n, Relaxed),
            None => {
                self.shared.fetch_add(n, Relaxed);
            }
        }
    }

    /// The sum of every slot: exact once the writers are done, a lower bound while they run.
    pub fn total(&self) -> u64 {
        self.owned.iter().map(|s| s.0.load(Relaxed)).sum::<u64>() + self.shared.load(Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn owned_and_shared_writers_add_up() {
        let t = Arc::new(Tally::new());
        let threads: Vec<_> = (0..6)
            .map(|w| {
                let t = Arc::clone(&t);
                // Writers 0..3 own slots (one of them past the end), 4 and 5 share the counter.
                let writer = match w {
                    0..=2 => Some(w * 7),
                    3 => Some(TALLY_SLOTS + 5),
                    _ => None,
                };
                std::thread::spawn(move || (0..100_000).for_each(|_| t.add(writer, 1)))
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        t.add(Some(TALLY_SLOTS - 1), 5);
        assert_eq!(t.total(), 600_005);
    }
}
