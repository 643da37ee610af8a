//! Time: the [`Clock`] the generator reads, the machine's [`SystemClock`], and conversions
//! between Unix microseconds and milliseconds since the Snowflake epoch.

use crate::layout::EPOCH_UNIX_MS;
use std::time::Duration;

/// The coarse clock may lag the precise one by a kernel tick (1-10 ms). An ID this far ahead of a
/// coarse reading is ahead of the precise clock too, so the coarse reading is enough to issue it.
pub const COARSE_MARGIN_MS: u64 = 20;

/// Time sources. `wall_us` is what IDs carry; `mono_us` measures real elapsed time and must be
/// one clock for every process on the machine (`CLOCK_MONOTONIC`).
pub trait Clock {
    /// Wall-clock time in Unix microseconds.
    fn wall_us(&self) -> i64;
    /// A cheaper wall-clock reading that may lag `wall_us` by up to a few milliseconds, never
    /// more than [`COARSE_MARGIN_MS`], and is never ahead of it.
    fn wall_coarse_us(&self) -> i64 {
        self.wall_us()
    }
    /// Monotonic time in microseconds.
    fn mono_us(&self) -> u64;
    /// Waits about `d` (or lets time pass, in tests). In PostgreSQL this is a latch wait that
    /// checks for interrupts afterwards, so a cancelled caller leaves here with an ERROR.
    fn pause(&self, d: Duration);
}

/// Milliseconds since the epoch of a Unix time in microseconds (0 before the epoch).
#[inline(always)]
pub fn rel_ms(unix_us: i64) -> u64 {
    // Unsigned division by a constant: a multiply and a shift.
    ((unix_us.max(0) as u64) / 1000).saturating_sub(EPOCH_UNIX_MS as u64)
}

/// Unix microseconds of the start of a millisecond since the epoch.
pub fn unix_us(ms: u64) -> i64 {
    (EPOCH_UNIX_MS + ms as i64) * 1000
}

/// Whether a Unix time in microseconds is before the Snowflake epoch (no ID can carry it).
#[inline]
pub fn before_epoch(unix_us: i64) -> bool {
    unix_us < EPOCH_UNIX_MS * 1000
}

/// The machine's clocks: `CLOCK_REALTIME`, `CLOCK_MONOTONIC`, and a real sleep.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[inline(always)]
fn clock_us(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clock ids exist on every supported platform.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
}

impl SystemClock {
    /// `CLOCK_REALTIME` in Unix milliseconds.
    pub fn unix_ms() -> i64 {
        clock_us(libc::CLOCK_REALTIME).div_euclid(1000)
    }
}

impl Clock for SystemClock {
    #[inline]
    fn wall_us(&self) -> i64 {
        clock_us(libc::CLOCK_REALTIME)
    }
    /// `CLOCK_REALTIME_COARSE`: the time of the last kernel tick, about a quarter of the cost.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn wall_coarse_us(&self) -> i64 {
        clock_us(libc::CLOCK_REALTIME_COARSE)
    }
    fn mono_us(&self) -> u64 {
        clock_us(libc::CLOCK_MONOTONIC) as u64
    }
    fn pause(&self, d: Duration) {
        std::thread::sleep(d);
    }
}
