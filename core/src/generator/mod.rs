//! The generator: one shared 64-bit word holds the last issued *tick* `(ms << 12) | sequence`
//! (see [`crate::layout`]). The next tick is the larger of `now_ms << 12` and `last + 1`,
//! installed with one compare-and-swap; the node bits are added by the caller.
//!
//! * Within a millisecond the sequence advances; when it is spent, `last + 1` carries into the
//!   millisecond field: the generator *borrows* the next millisecond instead of waiting.
//! * Borrowing is bounded by `max_drift_ms`: an ID never decodes to more than that ahead of real
//!   time; past it, callers sleep until time catches up (a burst above 4,096 IDs/ms).
//! * A backward clock step makes `now_ms << 12` lose the `max`: IDs go on from `last + 1`. To
//!   tell a step from a burst, the generator keeps an estimate of real time, `CLOCK_MONOTONIC`
//!   plus the wall-clock offset last seen to be trustworthy. While the wall clock is behind that
//!   estimate the drift bound is measured from the estimate, so a step back of an hour never
//!   makes callers wait for an hour; the step is counted and reported once.
//! * A forward jump of the wall clock (more than the step threshold ahead of the estimate) is
//!   not taken as real time until it has lasted [`FORWARD_CONFIRM_US`]: until then IDs follow
//!   the estimate, so a clock set forward by mistake and set right again never shows in an ID.
//! * A ceiling, a millisecond above every issued ID, is saved through a [`CeilingStore`] before
//!   any ID reaches it, `ceiling_lead_ms` ahead, so the hot path rarely touches the store. A
//!   fresh state (server start, crash-restart) loads the ceiling and starts above it; a ceiling
//!   no further ahead than a run leaves it is an ordinary restart, whose IDs wait at the drift
//!   bound like a burst, so restarts never push IDs ahead of the clock (see `start`).
//! * A clock before the epoch or past the 41-bit horizon is an error: no ID, nothing saved.
//!
//! Hot path: a few loads, one clock read, one compare-and-swap, and an add to the caller's own
//! counter slot (see [`crate::tally`]). No lock, no system call (the clock is read through the
//! vDSO). While the generator leads the clock (a burst borrowing milliseconds) the next tick is
//! `last + 1` whatever the exact time: the clock read is of the cheap coarse clock, enough to
//! bound the lead, and the compare-and-swap becomes a fetch-and-add, which never retries.
//!
//! The code is split by path: [`Generator`] and its types here; `hot` the path of nearly every
//! ID; `slow` everything off it (clock steps and jumps, drift waits, ceiling saves); `start`
//! the start and what the WAL and the operator do to the ceiling; `lock` the one-process lock
//! that the slow path and the start share. The loom models' instrumentation lives in
//! `loom_hooks`, built only under `--cfg loom`.

// Also the imports of the files below, which take them with `use super::*`.
use crate::clock::{before_epoch, rel_ms, unix_us};
pub use crate::clock::{Clock, SystemClock, COARSE_MARGIN_MS};
use crate::layout::{self, MAX_MS, SEQUENCE_BITS};
pub use crate::store::CeilingStore;
use crate::store::{StoreError, Writer};
use crate::sync::{AtomicI64, AtomicU32, AtomicU64, Ordering::*};
use crate::tally::Tally;
use std::fmt;
use std::time::Duration;

/// Default bound on borrowing ahead of real time, in milliseconds.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 2_000;
/// Default distance of the saved ceiling ahead of the last issued millisecond.
pub const DEFAULT_CEILING_LEAD_MS: u64 = 1_000;
/// A wall clock this far behind the real-time estimate is a backward step (smaller steps are
/// absorbed like a burst). NTP slewing, at most 0.5 ms per second, is allowed on top.
pub const STEP_THRESHOLD_MS: u64 = 100;
/// A wall clock this far ahead of the real-time estimate has jumped forward. Such a reading is
/// not taken as real time until the jump has lasted [`FORWARD_CONFIRM_US`] of monotonic time:
/// a jump that is corrected within that time never shows in an ID.
pub const FORWARD_CONFIRM_US: u64 = 10_000_000;

/// Tunables, read by the caller (from GUCs) and passed per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub max_drift_ms: u64,
    pub ceiling_lead_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_drift_ms: DEFAULT_MAX_DRIFT_MS,
            ceiling_lead_ms: DEFAULT_CEILING_LEAD_MS,
        }
    }
}

/// Something worth a log line, returned with the ID that saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The wall clock stepped back by about `ms` while running.
    ClockStepBack { ms: u64 },
    /// The wall clock jumped forward by about `ms`; IDs follow the monotonic clock until the
    /// jump has lasted [`FORWARD_CONFIRM_US`].
    ClockStepForward { ms: u64 },
    /// At start the wall clock was `ms` behind the saved ceiling (beyond its normal lead).
    StartedBehindCeiling { ms: u64 },
    /// Replay of the WAL raised the floor `ms` beyond what this server's clock allows for a
    /// running generator: IDs go on above it without waiting for the clock (as after a step).
    FloorFromWal { ms: u64 },
    /// At start the saved ceiling was written by another server or under another node id
    /// (`found`, `None` for an old file without it; `me` is this server): a copy made by
    /// `pg_basebackup` or `pg_rewind`. IDs start above both that ceiling and anything this
    /// server can have issued before (which the drift bound keeps below `floor_ms`).
    ForeignCeiling {
        found: Option<Writer>,
        me: Writer,
        ceiling_ms: u64,
        floor_ms: u64,
    },
}

/// Why no ID was issued.
#[derive(Debug)]
pub enum GenError {
    /// The ceiling could not be loaded or saved.
    Store(StoreError),
    /// The 41-bit millisecond field is used up (year 2094), or the clock reads past it.
    Horizon,
    /// The wall clock reads before the epoch (2025-01-01): no ID can carry that time.
    ClockBeforeEpoch { unix_ms: i64 },
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenError::Store(e) => e.fmt(f),
            GenError::Horizon => write!(
                f,
                "the 41-bit timestamp field is exhausted (after {} Unix ms)",
                layout::unix_ms(MAX_MS)
            ),
            GenError::ClockBeforeEpoch { unix_ms } => write!(
                f,
                "the system clock reads Unix ms {unix_ms}, before the Snowflake epoch ({} = 2025-01-01)",
                layout::EPOCH_UNIX_MS
            ),
        }
    }
}

impl std::error::Error for GenError {}

impl From<StoreError> for GenError {
    fn from(e: StoreError) -> Self {
        GenError::Store(e)
    }
}

/// One issued tick and anything noticed on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    /// `(ms << 12) | sequence`; compose with a node id via [`layout::compose`].
    pub tick: u64,
    pub event: Option<Event>,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Last issued tick (0 before the first).
    pub last_tick: u64,
    /// IDs issued since this state was created (server start or crash-restart).
    pub issued: u64,
    /// Saved ceiling in ms since the epoch; 0 until the first ID.
    pub ceiling_ms: u64,
    /// Times the ceiling was saved.
    pub ceiling_writes: u64,
    /// Times an ID waited for another process saving the ceiling.
    pub ceiling_waits: u64,
    /// Sleeps because borrowing reached `max_drift_ms`, and their total length.
    pub drift_waits: u64,
    pub drift_wait_us: u64,
    /// Largest lead of an issued ID over real time (borrowed milliseconds).
    pub max_borrowed_ms: u64,
    /// Backward clock steps seen (including a start below the saved ceiling).
    pub clock_steps: u64,
    /// How far the wall clock is now behind real time, as of the last step seen (0 = none).
    pub clock_behind_ms: u64,
    /// Unix ms when this state issued its first ID.
    pub started_unix_ms: i64,
}

/// The shared generator state. It lives in shared memory; every field is an atomic.
#[repr(C)]
pub struct Generator {
    /// The last tick taken: `(ms << 12) | sequence`, issued or (briefly) skipped.
    last: TickWord,
    /// Highest wall-clock millisecond taken as real time: a reading far below it is a step
    /// back, far above it a jump forward (or an idle spell), both checked off the hot path.
    wall_high: AtomicU64,
    /// The saved ceiling (ms); 0 until the state has started. Every issued ms is below it.
    ceiling: AtomicU64,
    /// How far (ms) the wall clock is behind real time after a backward step; 0 = no step.
    step_lag: AtomicU64,
    /// Real-time estimate: Unix µs = `CLOCK_MONOTONIC` µs + `offset_us`, last set at
    /// monotonic µs `offset_at_us` from a wall reading taken as real time.
    offset_us: AtomicI64,
    offset_at_us: AtomicU64,
    /// Monotonic µs at which a forward jump of the wall clock was first seen (0 = none), and
    /// the jumped wall-minus-monotonic offset: the jump is trusted once it has lasted.
    ahead_since_us: AtomicU64,
    ahead_offset_us: AtomicI64,
    /// The process id of the one process that starts the state, saves the ceiling, or records
    /// a forward jump; 0 when free. A process that dies holding it (PostgreSQL's `proc_exit`
    /// does not unwind) releases it from an exit callback: see [`Generator::release_lock_of`].
    lock: AtomicU32,
    /// Counters for `stats()`.
    ceiling_writes: AtomicU64,
    ceiling_waits: AtomicU64,
    drift_waits: AtomicU64,
    drift_wait_us: AtomicU64,
    max_borrowed_ms: AtomicU64,
    clock_steps: AtomicU64,
    /// Unix ms when this state started.
    started_unix_ms: AtomicI64,
    /// IDs issued, one slot per writer.
    issued: Tally,
}

/// The word `last` lives in: a plain atomic; under loom, one that also records the ticks of the
/// fetch-and-add path for the models (see `loom_hooks`).
#[cfg(not(loom))]
type TickWord = AtomicU64;
#[cfg(loom)]
use loom_hooks::TickWord;

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    /// A fresh state: it loads the saved ceiling when it issues its first ID.
    pub fn new() -> Self {
        Generator {
            last: TickWord::new(0),
            wall_high: AtomicU64::new(0),
            ceiling: AtomicU64::new(0),
            step_lag: AtomicU64::new(0),
            offset_us: AtomicI64::new(0),
            offset_at_us: AtomicU64::new(0),
            ahead_since_us: AtomicU64::new(0),
            ahead_offset_us: AtomicI64::new(0),
            lock: AtomicU32::new(0),
            ceiling_writes: AtomicU64::new(0),
            ceiling_waits: AtomicU64::new(0),
            drift_waits: AtomicU64::new(0),
            drift_wait_us: AtomicU64::new(0),
            max_borrowed_ms: AtomicU64::new(0),
            clock_steps: AtomicU64::new(0),
            started_unix_ms: AtomicI64::new(0),
            issued: Tally::new(),
        }
    }

    /// Whether the state has started (a ceiling was saved by an ID draw of this server).
    pub fn started(&self) -> bool {
        self.ceiling.load(Acquire) != 0
    }

    /// The counters, read without stopping the generator.
    pub fn stats(&self) -> Stats {
        Stats {
            last_tick: self.last.load(Relaxed),
            issued: self.issued.total(),
            ceiling_ms: self.ceiling.load(Acquire),
            ceiling_writes: self.ceiling_writes.load(Relaxed),
            ceiling_waits: self.ceiling_waits.load(Relaxed),
            drift_waits: self.drift_waits.load(Relaxed),
            drift_wait_us: self.drift_wait_us.load(Relaxed),
            max_borrowed_ms: self.max_borrowed_ms.load(Relaxed),
            clock_steps: self.clock_steps.load(Relaxed),
            clock_behind_ms: self.step_lag.load(Relaxed),
            started_unix_ms: self.started_unix_ms.load(Relaxed),
        }
    }
}

mod hot;
mod lock;
#[cfg(loom)]
mod loom_hooks;
mod slow;
mod start;

#[cfg(all(test, not(loom)))]
mod tests;
