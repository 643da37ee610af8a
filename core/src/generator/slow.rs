//! Everything off the hot path: clock steps back and jumps forward, drift waits, ceiling saves,
//! and the hand-over to the start of a fresh state.

use super::lock::LOCK_PAUSE;
use super::*;

/// A step is recorded only when a fresh wall-clock reading, bracketed by two monotonic readings
/// at most this far apart, confirms it: a process paused between its wall and monotonic reads
/// (preempted, or a stopped VM) would otherwise report the pause as a step back.
const CONFIRM_WINDOW_US: u64 = 1_000;
/// Longest single sleep; the caller re-reads the clock after each.
const MAX_PAUSE_US: i64 = 10_000;

/// What one pass of [`Generator::next_as`] read before it left the hot path.
#[derive(Clone, Copy)]
pub(super) struct Attempt {
    pub(super) ceiling: u64,
    /// Wall clock, Unix µs (precise).
    pub(super) now_us: i64,
    /// `step_lag` as loaded before `now_us` was read.
    pub(super) lag_seen: u64,
    pub(super) last: u64,
}

impl Generator {
    /// Everything off the hot path: start, clock steps, drift waits, ceiling saves.
    /// `Ok(None)` means "try again".
    #[cold]
    #[inline(never)]
    pub(super) fn slow(
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

    pub(super) fn trust_wall(&self, clock: &impl Clock, now_us: i64, lag_seen: u64) {
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
}
