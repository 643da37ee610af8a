//! The hot path: one clock read, one compare-and-swap (or, leading the clock, one
//! fetch-and-add), the issued counter; anything else is handed to the slow path.

use super::slow::Attempt;
use super::*;

/// How often a hot path refreshes the real-time estimate (wall minus monotonic offset).
const REFRESH_US: i64 = 1_000_000;

impl Generator {
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
                    let ms = tick >> SEQUENCE_BITS;
                    if ms > now + cfg.max_drift_ms || ms + half_lead >= ceiling {
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
    pub(super) fn advance_high(&self, clock: &impl Clock, now: u64, now_us: i64, coarse: bool) {
        self.wall_high.fetch_max(now, Relaxed);
        let estimate_at_us = self.offset_at_us.load(Relaxed) as i64 + self.offset_us.load(Relaxed);
        if !coarse && now_us - estimate_at_us > REFRESH_US {
            self.trust_wall(clock, now_us, 0);
        }
    }

    /// Records how far an issued ID leads real time (a load, and a write only for a new high).
    #[inline]
    pub(super) fn note_borrowed(&self, ms: u64) {
        if ms > self.max_borrowed_ms.load(Relaxed) {
            self.max_borrowed_ms.fetch_max(ms, Relaxed);
        }
    }
}
