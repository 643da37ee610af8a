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
/// How often a hot path refreshes the real-time estimate (wall minus monotonic offset).
const REFRESH_US: i64 = 1_000_000;
/// A step is recorded only when a fresh wall-clock reading, bracketed by two monotonic readings
/// at most this far apart, confirms it: a process paused between its wall and monotonic reads
/// (preempted, or a stopped VM) would otherwise report the pause as a step back.
const CONFIRM_WINDOW_US: u64 = 1_000;
/// Longest single sleep; the caller re-reads the clock after each.
const MAX_PAUSE_US: i64 = 10_000;
/// Sleep while another process holds the ceiling lock and no ID can be issued.
const LOCK_PAUSE: Duration = Duration::from_micros(50);

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
    last: AtomicU64,
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
    /// Loom models only: how many ticks the fetch-and-add path took, and those it skipped.
    /// Plain `std` types, invisible to loom, so they add no interleavings.
    #[cfg(loom)]
    loom_adds: std::sync::atomic::AtomicU64,
    #[cfg(loom)]
    loom_skips: std::sync::Mutex<Vec<u64>>,
}

/// What one pass of [`Generator::next_as`] read before it left the hot path.
#[derive(Clone, Copy)]
struct Attempt {
    ceiling: u64,
    /// Wall clock, Unix µs (precise).
    now_us: i64,
    /// `step_lag` as loaded before `now_us` was read.
    lag_seen: u64,
    last: u64,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

/// What the lock word holds while this process holds the lock: its process id (never 0).
fn lock_token() -> u32 {
    std::process::id().max(1)
}

struct LockGuard<'a>(&'a AtomicU32);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Release);
    }
}

impl Generator {
    /// A fresh state: it loads the saved ceiling when it issues its first ID.
    pub fn new() -> Self {
        Generator {
            last: AtomicU64::new(0),
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
            #[cfg(loom)]
            loom_adds: Default::default(),
            #[cfg(loom)]
            loom_skips: Default::default(),
        }
    }

    /// A state already running and leading its clock, for the loom models: reaching a lead
    /// through [`Generator::next`] takes tens of thousands of IDs, too many to model-check.
    /// `last_tick` is the last issued tick, `wall_high_ms` the highest wall reading seen (ms
    /// since the epoch), `ceiling_ms` the saved ceiling, `now_us` / `mono_us` a trusted reading.
    #[cfg(loom)]
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

    /// For the loom models: how many ticks the fetch-and-add path took, and those of them it
    /// skipped (did not issue), in the order skipped.
    #[cfg(loom)]
    pub fn loom_adds(&self) -> (u64, Vec<u64>) {
        let adds = self.loom_adds.load(std::sync::atomic::Ordering::Relaxed);
        (adds, self.loom_skips.lock().unwrap().clone())
    }

    /// For the loom models: the last tick taken (one load, where [`Generator::stats`] makes
    /// a dozen, each a step of the model).
    #[cfg(loom)]
    pub fn loom_last(&self) -> u64 {
        self.last.load(Relaxed)
    }

    /// Issues the next tick: greater than every tick this state (and, through the ceiling,
    /// every earlier state on the same store) issued before. Counted in the shared counter slot.
    pub fn next(
        &self,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
    ) -> Result<Issued, GenError> {
        self.next_as(None, clock, store, cfg)
    }

    /// [`Generator::next`], counted in `writer`'s own slot of the issued counter (see
    /// [`Tally::add`] for the promise that comes with `Some`).
    #[inline]
    pub fn next_as(
        &self,
        writer: Option<usize>,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
    ) -> Result<Issued, GenError> {
        let mut event = None;
        let half_lead = cfg.ceiling_lead_ms / 2;
        loop {
            // The ceiling first: a non-zero ceiling publishes the `last` set at start.
            let ceiling = self.ceiling.load(Acquire);
            // Before the clock read: a step recorded after this makes the reading possibly older
            // than the step, and such a reading must not clear it (see `trust_wall_at`).
            let lag_seen = self.step_lag.load(Relaxed);
            let high = self.wall_high.load(Relaxed);
            let last = self.last.load(Relaxed);
            let next_ms = (last + 1) >> SEQUENCE_BITS;
            // Leading the clock (a burst): `last + 1` is the next tick whatever the exact time,
            // so a coarse reading is enough, if it confirms the lead.
            let mut coarse = false;
            let mut now_us = 0;
            if next_ms > high + COARSE_MARGIN_MS {
                now_us = clock.wall_coarse_us();
                let c = rel_ms(now_us);
                // Near the drift bound the coarse clock's lag would count against the bound:
                // read the precise clock there.
                coarse = next_ms > c + COARSE_MARGIN_MS && next_ms <= c + cfg.max_drift_ms;
            }
            if !coarse {
                now_us = clock.wall_us();
            }
            let now = rel_ms(now_us);
            let cand = (now << SEQUENCE_BITS).max(last + 1);
            let cms = cand >> SEQUENCE_BITS;
            // Hot: no step pending or suspected (the clock is not far below the highest reading),
            // the lead within the drift bound, the ceiling well ahead.
            if lag_seen == 0
                && now + STEP_THRESHOLD_MS >= high
                && now <= high + STEP_THRESHOLD_MS
                && cms <= now + cfg.max_drift_ms
                && cms + half_lead < ceiling
            {
                let tick = if coarse {
                    // Leading the clock, the next tick is `last + 1` whoever takes it: one add
                    // takes it, with no retry when backends contend. The add may have gone past
                    // what was checked (others added meanwhile): check again; a tick that fails
                    // is skipped, never issued (a gap is harmless, a repeat impossible).
                    let tick = self.last.fetch_add(1, Relaxed) + 1;
                    #[cfg(loom)]
                    self.loom_adds
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let ms = tick >> SEQUENCE_BITS;
                    if ms > now + cfg.max_drift_ms || ms + half_lead >= ceiling {
                        #[cfg(loom)]
                        self.loom_skips.lock().unwrap().push(tick);
                        // Give the tick back unless others took later ones: `last` then
                        // never shows a tick nobody was given, once the adders are done.
                        let _ = self.last.compare_exchange(tick, tick - 1, Relaxed, Relaxed);
                        continue;
                    }
                    tick
                } else if self
                    .last
                    .compare_exchange_weak(last, cand, Relaxed, Relaxed)
                    .is_ok()
                {
                    cand
                } else {
                    continue;
                };
                self.issued.add(writer, 1);
                if now > high {
                    self.advance_high(clock, now, now_us, coarse);
                }
                let ms = tick >> SEQUENCE_BITS;
                if ms > now {
                    self.note_borrowed(ms - now);
                }
                return Ok(Issued { tick, event });
            }
            if coarse {
                now_us = clock.wall_us();
            }
            let attempt = Attempt {
                ceiling,
                now_us,
                lag_seen,
                last,
            };
            if let Some(tick) = self.slow(clock, store, cfg, attempt, &mut event)? {
                self.issued.add(writer, 1);
                return Ok(Issued { tick, event });
            }
        }
    }

    /// A new highest wall-clock millisecond (at most once per millisecond per process); now and
    /// then, with a precise reading, it also refreshes the real-time estimate.
    #[inline(never)]
    fn advance_high(&self, clock: &impl Clock, now: u64, now_us: i64, coarse: bool) {
        self.wall_high.fetch_max(now, Relaxed);
        let estimate_at_us = self.offset_at_us.load(Relaxed) as i64 + self.offset_us.load(Relaxed);
        if !coarse && now_us - estimate_at_us > REFRESH_US {
            self.trust_wall(clock, now_us, 0);
        }
    }

    /// Everything off the hot path: start, clock steps, drift waits, ceiling saves.
    /// `Ok(None)` means "try again".
    #[cold]
    #[inline(never)]
    fn slow(
        &self,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
        a: Attempt,
        event: &mut Option<Event>,
    ) -> Result<Option<u64>, GenError> {
        let Attempt {
            ceiling,
            now_us,
            lag_seen,
            last,
        } = a;
        if ceiling == 0 {
            self.start(clock, store, cfg, event)?;
            return Ok(None);
        }
        if before_epoch(now_us) {
            return Err(GenError::ClockBeforeEpoch {
                unix_ms: now_us.div_euclid(1000),
            });
        }
        let now = rel_ms(now_us);
        if lag_seen != 0 && (last + 1) >> SEQUENCE_BITS <= now {
            // The wall clock has caught up with the IDs after a step: trust it again.
            self.trust_wall(clock, now_us, lag_seen);
            return Ok(None);
        }
        // The monotonic clock is consulted only when the wall clock is suspect: a step pending,
        // a reading far below the highest one seen, or far above it (a jump forward, or the
        // first call after an idle spell).
        let high = self.wall_high.load(Relaxed);
        let suspect =
            lag_seen != 0 || now + STEP_THRESHOLD_MS < high || now > high + STEP_THRESHOLD_MS;
        let reference_us = if suspect {
            self.real_time_us(clock, now_us, lag_seen, event)
        } else {
            now_us
        };
        // IDs carry the wall clock unless it is ahead of real time (a jump not yet trusted).
        let cand = (rel_ms(now_us.min(reference_us)) << SEQUENCE_BITS).max(last + 1);
        let cms = cand >> SEQUENCE_BITS;

        // Borrowed more than the drift bound ahead of real time: wait for time to catch up.
        if cms > rel_ms(reference_us) + cfg.max_drift_ms {
            let due_us = unix_us(cms - cfg.max_drift_ms);
            let wait = (due_us - reference_us).clamp(1, MAX_PAUSE_US);
            self.drift_waits.fetch_add(1, Relaxed);
            self.drift_wait_us.fetch_add(wait as u64, Relaxed);
            clock.pause(Duration::from_micros(wait as u64));
            return Ok(None);
        }
        if cms >= ceiling {
            if cms >= MAX_MS {
                return Err(GenError::Horizon);
            }
            self.extend(clock, store, cfg, cms, true)?;
            return Ok(None);
        }
        if self
            .last
            .compare_exchange(last, cand, Relaxed, Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        if !suspect && now > high {
            self.advance_high(clock, now, now_us, false);
        }
        self.note_borrowed(cms.saturating_sub(rel_ms(reference_us)));
        if cms + cfg.ceiling_lead_ms / 2 >= ceiling {
            // Saving early is a courtesy to later calls; this tick is below the saved ceiling
            // and is issued whatever happens here. A store that keeps failing fails the call
            // that reaches the ceiling, which reports it.
            let _ = self.extend(clock, store, cfg, cms, false);
        }
        Ok(Some(cand))
    }

    /// The best estimate of real time (Unix µs): the wall clock, unless it is behind the
    /// monotonic estimate by more than a slew would explain, which is a backward step.
    /// `lag_seen` is `step_lag` as loaded before `now_us` was read.
    fn real_time_us(
        &self,
        clock: &impl Clock,
        now_us: i64,
        lag_seen: u64,
        event: &mut Option<Event>,
    ) -> i64 {
        let mono = clock.mono_us();
        let offset_us = self.offset_us.load(Relaxed);
        let estimate_us = mono as i64 + offset_us;
        let age_ms = mono.saturating_sub(self.offset_at_us.load(Relaxed)) / 1000;
        let tolerance_ms = STEP_THRESHOLD_MS + age_ms / 2000;
        let behind_ms = rel_ms(estimate_us).saturating_sub(rel_ms(now_us));
        let ahead_ms = rel_ms(now_us).saturating_sub(rel_ms(estimate_us));
        if ahead_ms > tolerance_ms {
            return self.jumped_forward(mono, now_us, estimate_us, ahead_ms, lag_seen, event);
        }
        if self.ahead_since_us.load(Relaxed) != 0 {
            // The wall clock is back in line: whatever jump was pending is over.
            self.ahead_since_us.store(0, Relaxed);
        }
        if behind_ms > tolerance_ms {
            let prev = self.step_lag.load(Relaxed);
            if behind_ms > prev + tolerance_ms {
                // Confirm with a fresh, tight measurement before counting and logging a step.
                let m1 = clock.mono_us();
                let wall = clock.wall_us();
                let m2 = clock.mono_us();
                let behind_ms = rel_ms(m1 as i64 + offset_us).saturating_sub(rel_ms(wall));
                if m2.saturating_sub(m1) <= CONFIRM_WINDOW_US
                    && behind_ms > prev + tolerance_ms
                    && self
                        .step_lag
                        .compare_exchange(prev, behind_ms, Relaxed, Relaxed)
                        .is_ok()
                {
                    self.clock_steps.fetch_add(1, Relaxed);
                    *event = Some(Event::ClockStepBack {
                        ms: behind_ms - prev,
                    });
                }
            }
            estimate_us
        } else {
            self.trust_wall_at(mono, now_us, lag_seen);
            now_us
        }
    }

    /// The wall clock reads `ahead_ms` ahead of the real-time estimate. A first sighting is
    /// recorded (and reported); the jump is taken as real time only once the same wall-minus-
    /// monotonic offset has held for [`FORWARD_CONFIRM_US`]. Until then, real time is the
    /// estimate: IDs do not run ahead with a clock that is set right again a moment later.
    fn jumped_forward(
        &self,
        mono: u64,
        now_us: i64,
        estimate_us: i64,
        ahead_ms: u64,
        lag_seen: u64,
        event: &mut Option<Event>,
    ) -> i64 {
        let offset = now_us - mono as i64;
        let since = self.ahead_since_us.load(Acquire);
        let same_jump = since != 0
            && (self.ahead_offset_us.load(Relaxed) - offset).abs()
                <= STEP_THRESHOLD_MS as i64 * 1000;
        if same_jump && mono.saturating_sub(since) >= FORWARD_CONFIRM_US {
            if let Some(_guard) = self.try_lock() {
                self.ahead_since_us.store(0, Relaxed);
                // Forced, not left to trust_wall_at: the estimate is far from this offset.
                self.offset_us.store(offset, Relaxed);
                self.offset_at_us.store(mono, Relaxed);
                self.trust_wall_at(mono, now_us, lag_seen);
                return now_us;
            }
        } else if !same_jump {
            // Under the lock, so the offset and its start time are one record.
            if let Some(_guard) = self.try_lock() {
                self.ahead_offset_us.store(offset, Relaxed);
                self.ahead_since_us.store(mono.max(1), Release);
                self.clock_steps.fetch_add(1, Relaxed);
                *event = Some(Event::ClockStepForward { ms: ahead_ms });
            }
        }
        estimate_us
    }

    /// Records how far an issued ID leads real time (a load, and a write only for a new high).
    #[inline]
    fn note_borrowed(&self, ms: u64) {
        if ms > self.max_borrowed_ms.load(Relaxed) {
            self.max_borrowed_ms.fetch_max(ms, Relaxed);
        }
    }

    fn trust_wall(&self, clock: &impl Clock, now_us: i64, lag_seen: u64) {
        self.trust_wall_at(clock.mono_us(), now_us, lag_seen);
    }

    /// Takes the wall reading `now_us` as real time again. Not if a step was recorded since
    /// `lag_seen` was loaded (before the reading): the reading may predate that step (a process
    /// preempted between its clock read and here), and clearing the step would make the next
    /// caller count and log it a second time.
    fn trust_wall_at(&self, mono: u64, now_us: i64, lag_seen: u64) {
        // A reading taken as real time is also the newest high mark a step is measured from.
        self.wall_high.fetch_max(rel_ms(now_us), Relaxed);
        if lag_seen == 0 {
            if self.step_lag.load(Relaxed) != 0 {
                return;
            }
        } else if self
            .step_lag
            .compare_exchange(lag_seen, 0, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        // Writes only when the estimate moved or aged: in a long burst every call comes here,
        // and stores to this cache line would slow the compare-and-swap of the others.
        let offset = now_us - mono as i64;
        if (offset - self.offset_us.load(Relaxed)).abs() > 500
            || mono.saturating_sub(self.offset_at_us.load(Relaxed)) > 1_000_000
        {
            self.offset_us.store(offset, Relaxed);
            self.offset_at_us.store(mono, Relaxed);
        }
    }

    fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.lock
            .compare_exchange(0, lock_token(), Acquire, Relaxed)
            .ok()
            .map(|_| LockGuard(&self.lock))
    }

    /// The lock, waiting (sleeping briefly) while another process holds it.
    fn lock_waiting(&self, clock: &impl Clock) -> LockGuard<'_> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            clock.pause(LOCK_PAUSE);
        }
    }

    /// Releases the lock if the process `pid` holds it; true if it did. For a process that
    /// exits while holding it without unwinding (an exit callback), so the others go on.
    pub fn release_lock_of(&self, pid: u32) -> bool {
        self.lock.compare_exchange(pid, 0, Release, Relaxed).is_ok()
    }

    /// Saves a ceiling `ceiling_lead_ms` above `cms`. With `wait`, a caller that cannot take
    /// the lock sleeps briefly (it needs the new ceiling); without, it leaves the work to the
    /// holder.
    fn extend(
        &self,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
        cms: u64,
        wait: bool,
    ) -> Result<(), GenError> {
        let Some(_guard) = self.try_lock() else {
            if wait {
                self.ceiling_waits.fetch_add(1, Relaxed);
                clock.pause(LOCK_PAUSE);
            }
            return Ok(());
        };
        let current = self.ceiling.load(Acquire);
        if cms + cfg.ceiling_lead_ms / 2 < current {
            return Ok(()); // someone else extended it meanwhile
        }
        // Capped at the last millisecond the file can hold; IDs stay below it.
        let target = (cms + cfg.ceiling_lead_ms.max(1)).max(current).min(MAX_MS);
        if target > current {
            store.save(target)?;
            self.ceiling_writes.fetch_add(1, Relaxed);
            self.ceiling.store(target, Release);
        }
        Ok(())
    }

    /// First ID of this state: load the ceiling, start above it, save a new one.
    ///
    /// Nothing is saved, and the state does not start, while the clock reads before the epoch
    /// or past the horizon: a later call starts it once the clock is right.
    ///
    /// While running, every saved ceiling is at most `max_drift_ms + ceiling_lead_ms` ahead of
    /// the clock (IDs wait at the drift bound before a save). So a floor further ahead than that
    /// means the clock went back while the server was down: a step, as when running. A floor
    /// within it is an ordinary restart: IDs start at the floor and, as for a burst, wait while
    /// it is beyond the drift bound, so restarts never push IDs further ahead of the clock.
    fn start(
        &self,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
        event: &mut Option<Event>,
    ) -> Result<(), GenError> {
        let _guard = self.lock_waiting(clock);
        if self.ceiling.load(Acquire) != 0 {
            return Ok(()); // another process started it
        }
        let now_us = clock.wall_us();
        if before_epoch(now_us) {
            return Err(GenError::ClockBeforeEpoch {
                unix_ms: now_us.div_euclid(1000),
            });
        }
        let now = rel_ms(now_us);
        if now >= MAX_MS {
            return Err(GenError::Horizon);
        }
        let mono = clock.mono_us();
        // Every ID issued before has a millisecond below the saved ceiling.
        let saved = store.load()?;
        let mut floor = saved.map_or(0, |s| s.ceiling_ms);
        if let (Some(saved), Some(me)) = (saved, store.writer()) {
            if saved.writer != Some(me) && saved.writer.is_some() {
                // Copied from another server: what this one issued is not in it, but it was
                // within the drift bound of a clock that has only moved on since.
                floor = floor.max(now + cfg.max_drift_ms + 1);
                *event = Some(Event::ForeignCeiling {
                    found: saved.writer,
                    me,
                    ceiling_ms: saved.ceiling_ms,
                    floor_ms: floor,
                });
            }
        }
        if floor >= MAX_MS {
            return Err(GenError::Horizon);
        }
        self.last.fetch_max(floor << SEQUENCE_BITS, Relaxed);
        self.wall_high.fetch_max(now, Relaxed);
        let normal_lead = cfg.max_drift_ms + cfg.ceiling_lead_ms + STEP_THRESHOLD_MS;
        let stepped = floor > now + normal_lead;
        // After a step, real time is taken to be at least the floor, so IDs go on without
        // waiting for the clock; otherwise the wall clock is real time and IDs above its drift
        // bound wait.
        let anchor_us = if stepped { unix_us(floor) } else { now_us };
        self.offset_us.store(anchor_us - mono as i64, Relaxed);
        self.offset_at_us.store(mono, Relaxed);
        if stepped {
            self.step_lag.store(floor - now, Relaxed);
            self.clock_steps.fetch_add(1, Relaxed);
            if event.is_none() {
                *event = Some(Event::StartedBehindCeiling { ms: floor - now });
            }
        }
        let target = (floor.max(now) + cfg.ceiling_lead_ms.max(1)).min(MAX_MS);
        store.save(target)?;
        self.ceiling_writes.fetch_add(1, Relaxed);
        self.started_unix_ms.store(now_us.div_euclid(1000), Relaxed);
        self.ceiling.store(target, Release);
        Ok(())
    }

    /// Raises the floor to `floor_ms`, a ceiling read from the WAL (crash recovery, a standby,
    /// a restore): every ID issued after this is above every ID issued under that ceiling.
    ///
    /// Not started yet: the store is raised to the floor (if below), and the start will begin
    /// above it. Running (a standby issuing IDs under its own node id): the next ID is above the
    /// floor and the ceiling is saved above it before that ID is issued. A floor further ahead
    /// of the clock than a running generator gets is taken as real time, as after a backward
    /// step, so IDs do not wait for the clock to catch up (reported by the returned event).
    pub fn raise_floor(
        &self,
        floor_ms: u64,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
    ) -> Result<Option<Event>, GenError> {
        let floor_ms = floor_ms.min(MAX_MS);
        let _guard = self.lock_waiting(clock);
        let ceiling = self.ceiling.load(Acquire);
        if ceiling == 0 {
            // Compared with the store's own ceiling (a missing one is written, whatever the
            // floor), so that what the store adds from elsewhere does not hide it.
            let saved = match store.load_own() {
                Ok(saved) => saved.map(|s| s.ceiling_ms),
                Err(StoreError::Missing { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            if saved.is_none_or(|saved| floor_ms > saved) {
                store.save(floor_ms)?;
                self.ceiling_writes.fetch_add(1, Relaxed);
            }
            return Ok(None);
        }
        let floor_tick = floor_ms << SEQUENCE_BITS;
        if self.last.fetch_max(floor_tick, Relaxed) >= floor_tick {
            return Ok(None); // IDs are past it already
        }
        let mut event = None;
        let now_us = clock.wall_us();
        let mono = clock.mono_us();
        let now = rel_ms(now_us);
        if floor_ms > now + cfg.max_drift_ms + cfg.ceiling_lead_ms + STEP_THRESHOLD_MS {
            self.step_lag.fetch_max(floor_ms - now, Relaxed);
            self.offset_us
                .store(unix_us(floor_ms) - mono as i64, Relaxed);
            self.offset_at_us.store(mono, Relaxed);
            self.clock_steps.fetch_add(1, Relaxed);
            event = Some(Event::FloorFromWal { ms: floor_ms - now });
        }
        if floor_ms + cfg.ceiling_lead_ms / 2 >= ceiling {
            let target = (floor_ms + cfg.ceiling_lead_ms.max(1)).min(MAX_MS);
            store.save(target)?;
            self.ceiling_writes.fetch_add(1, Relaxed);
            self.ceiling.store(target, Release);
        }
        Ok(event)
    }

    /// Whether the state has started (a ceiling was saved by an ID draw of this server).
    pub fn started(&self) -> bool {
        self.ceiling.load(Acquire) != 0
    }

    /// Saves a ceiling if the store has none (`Missing`): the running ceiling, or before the
    /// start, `floor_ms`. A store that holds one, or cannot be read, is left alone. Returns
    /// whether it saved.
    pub fn save_if_missing(
        &self,
        floor_ms: u64,
        clock: &impl Clock,
        store: &impl CeilingStore,
    ) -> Result<bool, GenError> {
        let _guard = self.lock_waiting(clock);
        match store.load_own() {
            Err(StoreError::Missing { .. }) | Ok(None) => {}
            Ok(Some(_)) | Err(_) => return Ok(false),
        }
        let ceiling = self.ceiling.load(Acquire);
        store.save(if ceiling != 0 {
            ceiling
        } else {
            floor_ms.min(MAX_MS)
        })?;
        self.ceiling_writes.fetch_add(1, Relaxed);
        Ok(true)
    }

    /// An operator's floor: every ID issued after this is above `floor_ms`, and the store holds
    /// a ceiling at or above it, replacing one that is missing or corrupted (which
    /// [`Generator::raise_floor`] would not). Returns the ceiling saved.
    pub fn restore_floor(
        &self,
        floor_ms: u64,
        clock: &impl Clock,
        store: &impl CeilingStore,
        cfg: &Config,
    ) -> Result<u64, GenError> {
        let floor_ms = floor_ms.min(MAX_MS);
        if self.started() {
            self.raise_floor(floor_ms, clock, store, cfg)?;
        }
        let _guard = self.lock_waiting(clock);
        let own = match store.load_own() {
            Ok(saved) => saved.map_or(0, |s| s.ceiling_ms),
            Err(StoreError::Missing { .. } | StoreError::Corrupt { .. }) => 0,
            Err(e) => return Err(e.into()),
        };
        let target = floor_ms.max(own).max(self.ceiling.load(Acquire));
        store.save(target)?;
        self.ceiling_writes.fetch_add(1, Relaxed);
        if self.started() {
            self.ceiling.store(target, Release);
        }
        Ok(target)
    }

    /// Makes the next ID save a new ceiling first (in the store's way, which may differ from
    /// the way the current one was saved: a standby's ceiling, saved without WAL, once it is
    /// promoted). IDs already issued stay below every ceiling saved after this. Nothing
    /// happens before the state has started.
    pub fn expire_ceiling(&self, clock: &impl Clock) {
        let _guard = self.lock_waiting(clock);
        let ceiling = self.ceiling.load(Acquire);
        if ceiling == 0 {
            return;
        }
        // At or below the last issued millisecond: the next ID, whatever its tick, is at or
        // above it and must extend first (0 would mean "not started").
        let expired = (self.last.load(Relaxed) >> SEQUENCE_BITS).max(1);
        if expired < ceiling {
            self.ceiling.store(expired, Release);
        }
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

#[cfg(all(test, not(loom)))]
mod tests;
