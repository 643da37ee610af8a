//! The start of a fresh state, and what the WAL and the operator do to the ceiling: raise the
//! floor, restore it, save one that is missing, expire it.

use super::*;

impl Generator {
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
    pub(super) fn start(
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
}
