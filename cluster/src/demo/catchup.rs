//! Waiting until replication has caught up. Each node writes a marker row for a phase into its
//! group's marker table; a node holding every node's marker has applied everything written
//! before them (a subscription applies in commit order).
//!
//! With native replication an incoming row whose key exists locally is an ERROR that the apply
//! worker retries for ever: a subscription whose marker is missing and whose apply worker
//! failed twice since the markers were written (`pg_stat_subscription_stats`, reset first) is
//! stuck, and the wait stops waiting for it. pglogical resolves such conflicts and never sticks.

use super::nodes::Nodes;
use super::{check_signal, Catchup, Context, Error, Options, Result};
use crate::mesh::Engine;
use std::thread;
use std::time::{Duration, Instant};

/// A mesh of the demo: `audit` (audit_log, demo_marker, the registry) or `ts` (audit_log_ts,
/// demo_marker_ts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Audit,
    Ts,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Audit => "audit",
            Group::Ts => "ts",
        }
    }

    pub fn marker_table(self) -> &'static str {
        match self {
            Group::Audit => "demo_marker",
            Group::Ts => "demo_marker_ts",
        }
    }
}

/// A group's subscriptions on a node, with the node each one comes from (node i subscribes to
/// node j as `GROUP_n<i-1>_from_n<j-1>`): columns `sub`, `origin`, `apply_errors` (native:
/// since the last reset) and `running` (pglogical: status `replicating`; native: an apply
/// worker in `pg_stat_subscription`).
pub(crate) fn subs_sql(engine: Engine, g: Group) -> String {
    let g = g.name();
    match engine {
        Engine::Pglogical => format!(
            "SELECT subscription_name AS sub,
                    substring(subscription_name from '_from_n([0-9]+)$')::int + 1 AS origin,
                    0::bigint AS apply_errors, status = 'replicating' AS running
             FROM pglogical.show_subscription_status() WHERE subscription_name LIKE '{g}\\_%'"
        ),
        Engine::Native => format!(
            "SELECT s.subname AS sub, substring(s.subname from '_from_n([0-9]+)$')::int + 1 AS origin,
                    coalesce(st.apply_error_count, 0) AS apply_errors,
                    EXISTS (SELECT FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL
                              AND w.leader_pid IS NULL AND w.pid IS NOT NULL) AS running
             FROM pg_subscription s LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
             WHERE s.subname LIKE '{g}\\_%'"
        ),
    }
}

/// Writes every node's marker of `phase` in group `g`, then waits on each node until the
/// markers of all the others arrived through every subscription that is not stuck.
pub(crate) fn mark_and_wait(o: &Options, n: &mut Nodes, phase: &str, g: Group) -> Result<Catchup> {
    let t0 = Instant::now();
    let table = g.marker_table();
    if n.engine == Engine::Native {
        for (i, c) in n.conns.iter_mut().enumerate() {
            c.execute(
                &format!(
                    "SELECT pg_stat_reset_subscription_stats(oid) FROM pg_subscription WHERE subname LIKE '{}\\_%'",
                    g.name()
                ),
                &[],
            )
            .ctx(|| format!("resetting subscription stats on node {}", i + 1))?;
        }
    }
    for (i, c) in n.conns.iter_mut().enumerate() {
        c.execute(
            &format!("INSERT INTO {table} (node, phase) VALUES ($1, $2)"),
            &[&(i as i32 + 1), &phase],
        )
        .ctx(|| format!("marker {phase} on node {}", i + 1))?;
    }
    let sql = format!(
        "SELECT count(*) FILTER (WHERE NOT arrived), count(*) FILTER (WHERE NOT arrived AND apply_errors >= 2)
         FROM (SELECT s.*, EXISTS (SELECT FROM {table} m WHERE m.phase = $1 AND m.node = s.origin) AS arrived
               FROM ({}) s) x",
        subs_sql(n.engine, g)
    );
    let mut stuck = [0u32; 3];
    for (i, c) in n.conns.iter_mut().enumerate() {
        let start = Instant::now();
        loop {
            check_signal()?;
            // A query that fails (a subscription being restarted) is asked again.
            if let Ok(r) = c.query_one(&sql, &[&phase]) {
                let (missing, failing): (i64, i64) = (r.get(0), r.get(1));
                if missing == failing {
                    stuck[i] = failing as u32;
                    break;
                }
            }
            if start.elapsed() > o.catchup_timeout {
                return Err(Error::Timeout(format!(
                    "after {} s waiting for replication of phase {phase} ({}) on node {}",
                    o.catchup_timeout.as_secs(),
                    g.name(),
                    i + 1
                )));
            }
            thread::sleep(Duration::from_millis(200));
        }
        if stuck[i] > 0 {
            eprintln!(
                "   node {}: {} {} subscription(s) stuck (apply worker failing again and again), not waiting for them",
                i + 1,
                stuck[i],
                g.name()
            );
        }
    }
    Ok(Catchup {
        elapsed: t0.elapsed(),
        stuck,
    })
}
