//! The demo's report: what ran, the figures of each approach, the checks. `Display` prints it
//! as a user reads it; the tests read its fields.

use crate::mesh::Engine;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Report {
    pub setup: Setup,
    pub scenario: Scenario,
    pub snowflake: SnowflakeFigures,
    pub timestamp: TimestampFigures,
    /// The verdicts on the Snowflake table, in the order they are printed.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The check of that kind (every report has each kind once).
    pub fn check(&self, kind: CheckKind) -> &Check {
        self.checks
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no check {kind:?} in the report"))
    }

    /// Rows the Snowflake table must hold: what pgbench committed and the scenario wrote.
    pub fn expected_rows(&self) -> i64 {
        self.snowflake.load.rows() as i64 + self.scenario.rows_written as i64
    }
}

/// What ran: the install, the nodes, the load's shape, the thresholds.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The major of the install the nodes were started from.
    pub pg_major: u32,
    /// What node 1 reports (`SHOW server_version`), e.g. `18.1` or `15.14 (Debian ...)`.
    pub server_version: String,
    pub engine: Engine,
    /// Node `i` listened on `first_port + i - 1`.
    pub first_port: u16,
    pub node_ids: [i32; 3],
    pub clients: u32,
    pub duration_s: u32,
    pub rows_per_insert: u32,
    pub min_rate: u64,
    pub order_slack_ms: u32,
}

/// One change of the scenario, as its node returned it.
#[derive(Clone, Debug)]
pub struct Change {
    pub snowflake_id: i64,
    pub timestamp_id: i64,
    pub changed_at: String,
}

/// What a node holds of the scenario's user after replication.
#[derive(Clone, Debug)]
pub struct ScenarioNode {
    /// Rows in audit_log (both changes: 2).
    pub audit_rows: i64,
    /// Rows in audit_log_ts, and whose change each one is.
    pub ts_rows: i64,
    pub ts_kept: Vec<String>,
}

/// The motivating scenario: one user's change through nodes 1 and 2 at the same millisecond.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The user of the last attempt (4242 on the first).
    pub user: i32,
    pub attempts: u32,
    /// Whether both changes of the last attempt fell in one millisecond.
    pub same_ms: bool,
    /// Changes written over all attempts (rows of audit_log).
    pub rows_written: u64,
    /// The error of a change that failed, which ended the attempts.
    pub failure: Option<String>,
    /// The last attempt's changes on nodes 1 and 2 (`None`: it failed).
    pub changes: [Option<Change>; 2],
    pub nodes: [ScenarioNode; 3],
}

/// One node's pgbench run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgbenchRun {
    /// Exit status (2: a client was stopped by an error; 128 + n: killed by signal n).
    pub status: i32,
    /// Committed transactions, if pgbench reported them.
    pub transactions: Option<u64>,
    /// Failed transactions, if pgbench reported them.
    pub failed: Option<u64>,
    /// Clients stopped by an error.
    pub clients_stopped: u64,
}

/// One load on the three nodes at once.
#[derive(Clone, Debug)]
pub struct Load {
    pub rows_per_insert: u64,
    pub runs: [PgbenchRun; 3],
    /// From starting pgbench to the last one's exit.
    pub elapsed: Duration,
}

impl Load {
    /// Committed transactions on the three nodes.
    pub fn transactions(&self) -> u64 {
        self.runs.iter().map(|r| r.transactions.unwrap_or(0)).sum()
    }

    /// Rows committed (or, with the timestamp IDs, attempted).
    pub fn rows(&self) -> u64 {
        self.transactions() * self.rows_per_insert
    }

    /// Rows per second in total, over the measured duration.
    pub fn rate(&self) -> u64 {
        let us = self.elapsed.as_micros().max(1);
        (u128::from(self.rows()) * 1_000_000 / us) as u64
    }
}

/// How replication caught up after a load.
#[derive(Clone, Debug)]
pub struct Catchup {
    pub elapsed: Duration,
    /// Per node, subscriptions whose apply worker kept failing and whose marker never came.
    pub stuck: [u32; 3],
}

/// The Snowflake table on one node.
#[derive(Clone, Debug)]
pub struct NodeFigures {
    pub rows: i64,
    /// md5 of all rows in ID order.
    pub md5: String,
    /// Subscriptions of the audit group replicating whose load marker arrived, of `subs`.
    pub subs_replicating: u32,
    pub subs: u32,
    /// Conflicts the engine logged for audit_log (16 and 17: the apply worker's duplicate-key
    /// ERRORs).
    pub conflicts: usize,
    /// ERRORs of the audit group's apply workers logged during load 1.
    pub apply_errors_logged: usize,
    /// Apply workers running before load 1 and gone after it.
    pub apply_workers_exited: usize,
    /// INSERTs refused by the node's primary key (23505 from a client backend) during load 1.
    pub refused_duplicates: usize,
    /// `snowflake_stats().max_borrowed_ms`.
    pub lead_ms: i64,
    /// Rows of the node registry, and `snowflake_check_nodes()`'s clashes.
    pub registered: i64,
    pub clashes: i64,
}

/// The IDs the nodes logged writing (`issued_ids`, collected on node 1).
#[derive(Clone, Debug)]
pub struct IssuedIds {
    pub logged: i64,
    pub distinct: i64,
    /// IDs written by more than one node (logged - distinct).
    pub repeated: i64,
    /// IDs of audit_log (node 1) no node logged.
    pub missing_from_logs: i64,
    /// IDs of audit_log (node 1) that carry one of the configured node ids.
    pub from_node_ids: i64,
}

/// IDs against time across nodes (on node 1's copy).
#[derive(Clone, Debug)]
pub struct Ordering {
    /// The largest lead of a node's IDs over its clock, the slack, and the bound they give.
    pub lead_ms: i64,
    pub slack_ms: u32,
    pub bound_ms: i64,
    /// Rows preceded in ID order by a change of another node more than `bound_ms` later.
    pub rows_out_of_order: i64,
    /// The largest such gap, ms (0 when none).
    pub largest_gap_ms: f64,
    /// An ID's millisecond minus its changed_at's: median, 99.9th percentile, maximum.
    pub lag_median_ms: i64,
    pub lag_p999_ms: i64,
    pub lag_max_ms: i64,
}

#[derive(Clone, Debug)]
pub struct SnowflakeFigures {
    pub load: Load,
    pub catchup: Catchup,
    pub nodes: [NodeFigures; 3],
    pub ids: IssuedIds,
    /// Rows per node id of the IDs, as `node:rows` (node 1's copy).
    pub per_id_node: Vec<String>,
    /// How often the node id changes along the ID order (the nodes' rows interleave).
    pub node_switches: i64,
    pub ordering: Ordering,
}

/// The timestamp-ID table on one node.
#[derive(Clone, Debug)]
pub struct TsNode {
    pub rows: i64,
    pub md5: String,
    /// Conflicts the engine logged for audit_log_ts.
    pub conflicts: usize,
    /// Apply worker ERRORs on audit_log_ts.
    pub apply_errors: usize,
}

#[derive(Clone, Debug)]
pub struct TimestampFigures {
    pub load: Load,
    pub catchup: Catchup,
    pub nodes: [TsNode; 3],
}

impl TimestampFigures {
    pub fn identical(&self) -> bool {
        self.nodes.iter().all(|n| n.md5 == self.nodes[0].md5)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Inserts,
    Rate,
    Subscriptions,
    SameRows,
    NoRowLost,
    NoDuplicates,
    NoConflicts,
    NoApplyErrors,
    Ordered,
    Scenario,
    Registry,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Inserts => "every INSERT succeeded",
            CheckKind::Rate => "rate",
            CheckKind::Subscriptions => "subscriptions",
            CheckKind::SameRows => "same rows everywhere",
            CheckKind::NoRowLost => "no row lost",
            CheckKind::NoDuplicates => "0 duplicate IDs",
            CheckKind::NoConflicts => "0 replication conflicts",
            CheckKind::NoApplyErrors => "0 apply errors",
            CheckKind::Ordered => "IDs ordered by time across nodes",
            CheckKind::Scenario => "scenario: both changes kept",
            CheckKind::Registry => "node registry",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    pub kind: CheckKind,
    pub ok: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

/// `a / b / c`.
pub(crate) fn per_node<T: fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// What the engine's conflict lines are, for the report.
fn conflict_words(engine: Engine, major: u32, ts: bool) -> String {
    match (engine, major >= 18, ts) {
        (Engine::Pglogical, _, false) => "pglogical CONFLICT lines".into(),
        (Engine::Pglogical, _, true) => "pglogical CONFLICT lines, local row overwritten".into(),
        (Engine::Native, true, false) => "\"conflict detected\" lines".into(),
        (Engine::Native, true, true) => {
            "\"conflict detected\" lines, insert_exists: an ERROR that stops the apply worker"
                .into()
        }
        (Engine::Native, false, false) => "apply worker duplicate-key ERRORs".into(),
        (Engine::Native, false, true) => {
            format!("apply worker duplicate-key ERRORs: PostgreSQL {major} detects no conflict")
        }
    }
}

pub(crate) fn conflicts_label(s: &Setup) -> String {
    conflict_words(s.engine, s.pg_major, false)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.setup;
        let (sf, ts, sc) = (&self.snowflake, &self.timestamp, &self.scenario);
        let ids = s
            .node_ids
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let version = s.server_version.split(' ').next().unwrap_or("");
        writeln!(
            f,
            "================ snowflake_id: three nodes, one audit log ================"
        )?;
        let (engine, mesh) = match s.engine {
            Engine::Pglogical => (
                "pglogical",
                "replication sets audit and ts, 6 subscriptions each, forward_origins = '{}'",
            ),
            Engine::Native => (
                "native logical replication",
                "publications audit and ts, 6 subscriptions each, origin = none",
            ),
        };
        writeln!(
            f,
            "nodes: 3 x PostgreSQL {} ({version}) on 127.0.0.1:{}-{}, node ids {ids}; engine: {engine}",
            s.pg_major,
            s.first_port,
            s.first_port + 2
        )?;
        writeln!(f, "  full mesh per group ({mesh}), synchronous_commit = on")?;
        writeln!(
            f,
            "load: pgbench, {} clients per node, {} s per approach, multi-row INSERTs of {} rows",
            s.clients, s.duration_s, s.rows_per_insert
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "motivating scenario (user {}, nodes 1 and 2, same millisecond: {}{})",
            sc.user,
            if sc.same_ms { "yes" } else { "no" },
            if sc.attempts > 1 {
                format!(", attempt {}", sc.attempts)
            } else {
                String::new()
            }
        )?;
        let change = |i: usize| -> (String, String, String) {
            match &sc.changes[i] {
                Some(c) => (
                    c.snowflake_id.to_string(),
                    c.timestamp_id.to_string(),
                    c.changed_at.clone(),
                ),
                None => ("failed".into(), "failed".into(), "-".into()),
            }
        };
        let (c1, c2) = (change(0), change(1));
        writeln!(
            f,
            "  changed_at:     node 1 -> {}, node 2 -> {}",
            c1.2, c2.2
        )?;
        writeln!(
            f,
            "  snowflake IDs:  node 1 -> {}, node 2 -> {}",
            c1.0, c2.0
        )?;
        writeln!(
            f,
            "  timestamp IDs:  node 1 -> {}, node 2 -> {}",
            c1.1, c2.1
        )?;
        if let Some(e) = &sc.failure {
            writeln!(f, "  a change failed: {e}")?;
        }
        for (i, n) in sc.nodes.iter().enumerate() {
            let kept = if n.ts_kept.is_empty() {
                "none".to_string()
            } else {
                n.ts_kept.join(", ")
            };
            writeln!(
                f,
                "  node {} holds: audit_log {} rows (both changes: {}) | audit_log_ts {} row(s), kept {kept}",
                i + 1,
                n.audit_rows,
                if n.audit_rows == 2 { "yes" } else { "NO" },
                n.ts_rows
            )?;
        }
        writeln!(f)?;
        writeln!(f, "snowflake_nextval() IDs")?;
        writeln!(
            f,
            "  rows written:   {} in {:.1} s (measured) = {} rows/s in total ({} INSERTs)",
            sf.load.rows(),
            sf.load.elapsed.as_secs_f64(),
            sf.load.rate(),
            sf.load.transactions()
        )?;
        writeln!(
            f,
            "  per node (by snowflake_node(id)): {}; node switches along the ID order: {}",
            sf.per_id_node.join(" "),
            sf.node_switches
        )?;
        let stuck: u32 = sf.catchup.stuck.iter().sum();
        write!(
            f,
            "  replication caught up {:.1} s after the load",
            sf.catchup.elapsed.as_secs_f64()
        )?;
        if stuck > 0 {
            write!(
                f,
                " (except {stuck} stuck subscription(s): {})",
                per_node(sf.catchup.stuck)
            )?;
        }
        writeln!(f)?;
        let o = &sf.ordering;
        writeln!(
            f,
            "  ID millisecond minus changed_at's millisecond: median {} ms, 99.9% {} ms, max {} ms",
            o.lag_median_ms, o.lag_p999_ms, o.lag_max_ms
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "yyyyMMddHHmmssSSS IDs (the approach this replaces), same load"
        )?;
        let attempted = ts.load.rows();
        writeln!(
            f,
            "  rows attempted: {attempted} ({} rows/s; at most one row per millisecond per node gets in)",
            ts.load.rate()
        )?;
        writeln!(
            f,
            "  after replication: rows per node {} of {attempted} attempted; {} audit records lost on node 1",
            per_node(ts.nodes.iter().map(|n| n.rows)),
            attempted as i64 - ts.nodes[0].rows
        )?;
        writeln!(
            f,
            "  replication conflicts logged ({}): {}",
            conflict_words(s.engine, s.pg_major, true),
            per_node(ts.nodes.iter().map(|n| n.conflicts))
        )?;
        writeln!(
            f,
            "  apply worker ERRORs on audit_log_ts (each one stops the worker, which is restarted): {}",
            per_node(ts.nodes.iter().map(|n| n.apply_errors))
        )?;
        if ts.catchup.stuck.iter().any(|&n| n > 0) {
            writeln!(
                f,
                "  ts subscriptions stuck for good (apply worker failing on the same row again and again; the load's markers never came): {} of 2",
                per_node(ts.catchup.stuck)
            )?;
        } else {
            writeln!(
                f,
                "  ts subscriptions stuck: 0 / 0 / 0 of 2 (caught up {:.1} s after the load)",
                ts.catchup.elapsed.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "  nodes identical: {}",
            if ts.identical() {
                "yes"
            } else {
                "NO, the nodes diverged"
            }
        )?;
        writeln!(f)?;
        writeln!(f, "checks")?;
        for c in &self.checks {
            writeln!(
                f,
                "  {} {}: {}",
                if c.ok { "[ok]  " } else { "[FAIL]" },
                c.kind.name(),
                c.detail
            )?;
        }
        writeln!(f)?;
        if self.passed() {
            writeln!(f, "RESULT: all checks passed")
        } else {
            writeln!(f, "RESULT: FAIL")
        }
    }
}
