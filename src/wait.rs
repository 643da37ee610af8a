//! The clock the generator reads in a backend: the system clock, with waits that PostgreSQL can
//! interrupt. A wait (at the drift bound, for another process saving the ceiling, at start) is a
//! latch wait under a wait event that `pg_stat_activity` shows, ends early if the postmaster
//! dies, and is followed by `CHECK_FOR_INTERRUPTS()`: `statement_timeout`,
//! `pg_cancel_backend()`, `pg_terminate_backend()` and a fast shutdown stop a waiting call
//! with an ERROR (or FATAL), which unwinds through the generator (its lock guard is released on
//! the way).

use pgrx::pg_sys;
use snowflake_core::clock::{Clock, SystemClock};
use std::time::Duration;

pub struct PgClock;

use crate::compat::{report_wait, wait_event};

impl Clock for PgClock {
    #[inline(always)]
    fn wall_us(&self) -> i64 {
        SystemClock.wall_us()
    }
    #[inline(always)]
    fn wall_coarse_us(&self) -> i64 {
        SystemClock.wall_coarse_us()
    }
    fn mono_us(&self) -> u64 {
        SystemClock.mono_us()
    }
    fn pause(&self, d: Duration) {
        let event = wait_event();
        if d >= Duration::from_millis(1) {
            // SAFETY: a backend's own latch; WL_EXIT_ON_PM_DEATH exits if the postmaster dies.
            unsafe {
                pg_sys::WaitLatch(
                    pg_sys::MyLatch,
                    (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH)
                        as i32,
                    d.as_millis() as std::ffi::c_long,
                    event,
                );
                pg_sys::ResetLatch(pg_sys::MyLatch);
            }
        } else {
            // Latch timeouts are whole milliseconds; at the drift bound the waits are shorter
            // (a millisecond holds 4,096 IDs), so these sleep briefly under the same wait event.
            report_wait(event);
            std::thread::sleep(d);
            report_wait(0);
        }
        pg_sys::check_for_interrupts!();
    }
}
