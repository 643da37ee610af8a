//! The one-process lock: held to start the state, save the ceiling or record a forward jump.

use super::*;

/// Sleep while another process holds the ceiling lock and no ID can be issued.
pub(super) const LOCK_PAUSE: Duration = Duration::from_micros(50);

/// What the lock word holds while this process holds the lock: its process id (never 0).
pub(super) fn lock_token() -> u32 {
    std::process::id().max(1)
}

pub(super) struct LockGuard<'a>(&'a AtomicU32);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Release);
    }
}

impl Generator {
    pub(super) fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.lock
            .compare_exchange(0, lock_token(), Acquire, Relaxed)
            .ok()
            .map(|_| LockGuard(&self.lock))
    }

    /// The lock, waiting (sleeping briefly) while another process holds it.
    pub(super) fn lock_waiting(&self, clock: &impl Clock) -> LockGuard<'_> {
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
}
