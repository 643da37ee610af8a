//! The one place the integration tests get TCP ports from: servers, PgBouncer, etcd, Patroni's
//! REST API, postgres_exporter, proxies. A test asks for what it needs and never writes a port
//! number, so two tests can never be handed the same port and a new test cannot collide with an
//! old one.
//!
//! Ports are handed out upwards from a base, `SNOWFLAKE_PORT_BASE` (default [`DEFAULT_BASE`]),
//! each one checked free by binding it on 127.0.0.1 first; a port something else holds is
//! skipped. Two checkouts running their tests on one machine at the same time set different
//! bases (the default and, say, 40000), so that one does not take a port the other has checked
//! but not yet bound. The default stays below 32768, where Linux starts handing out ephemeral
//! ports to outgoing connections, so a client socket does not take a port a server is about to
//! listen on.
//!
//! A port is handed out once per test process. Each `tests/tests/*.rs` is its own process and
//! starts again from the base: the servers of the previous one were stopped when dropped, and
//! PostgreSQL, like the check here, binds with `SO_REUSEADDR`, so a closed connection lingering in
//! `TIME_WAIT` does not make a port look taken.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The first port handed out unless `SNOWFLAKE_PORT_BASE` says otherwise: below the ephemeral
/// range, and above the fixed ports the scripts use (the main job 25432-25434, `pg-major.sh`
/// 27100 + major, `snowbench` 27400 + major).
pub const DEFAULT_BASE: u16 = 28000;

/// The next port to try; `None` until the base is read.
static NEXT: Mutex<Option<u32>> = Mutex::new(None);

/// The base: `SNOWFLAKE_PORT_BASE`, else [`DEFAULT_BASE`]. Panics on a value that is not a port
/// number from 1024 on.
pub fn base() -> u16 {
    match std::env::var("SNOWFLAKE_PORT_BASE") {
        Ok(v) => match v.trim().parse::<u16>() {
            Ok(p) if p >= 1024 => p,
            _ => panic!("SNOWFLAKE_PORT_BASE={v:?}: expected a port number from 1024 to 65535"),
        },
        Err(_) => DEFAULT_BASE,
    }
}

/// `n` consecutive free loopback ports, never handed out before in this process: returns the
/// first, the others are `first + 1 ..= first + n - 1`. Consecutive because some programs take
/// ports by offset (the main job's nodes listen on `P + i - 1`). Panics when the ports above the
/// base are used up.
pub fn take(n: u16) -> u16 {
    assert!(n > 0, "ports::take(0)");
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = next.unwrap_or_else(|| u32::from(base()));
    loop {
        let last = first + u32::from(n) - 1;
        assert!(
            last <= u32::from(u16::MAX),
            "no {n} free consecutive ports left above {} (SNOWFLAKE_PORT_BASE)",
            base()
        );
        match (first..=last).find(|&p| !free(p as u16)) {
            // Start again above the taken one.
            Some(taken) => first = taken + 1,
            None => {
                *next = Some(last + 1);
                return first as u16;
            }
        }
    }
}

/// One free loopback port: `take(1)`.
pub fn one() -> u16 {
    take(1)
}

/// Whether nothing listens on 127.0.0.1:`port` (checked by binding it, then letting it go).
fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_consecutive_free_and_never_handed_out_twice() {
        let a = take(3);
        // Something else listening on the next port: it must be skipped.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, a + 3));
        let b = take(2);
        assert!(b >= a + 3, "{b} overlaps {a}..{}", a + 2);
        if held.is_ok() {
            assert!(b > a + 3, "{b}: the held port {} was handed out", a + 3);
        }
        for p in [a, a + 1, a + 2, b, b + 1] {
            assert!(free(p), "{p} is not free");
        }
        assert!(one() > b + 1);
    }
}
