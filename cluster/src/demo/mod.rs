//! The main job: three nodes in bidirectional logical replication (pglogical on PostgreSQL 15,
//! PostgreSQL's own with `origin = none` on 16 and later) write one audit log at once, with
//! `snowflake_nextval()` IDs and, side by side, the `yyyyMMddHHmmssSSS` timestamp IDs the
//! project replaces. [`run`] starts the nodes, runs the loads (pgbench), waits for replication
//! to catch up, gathers the figures and returns them as a [`Report`] whose checks say whether
//! the Snowflake table held (same rows everywhere, no duplicate, no conflict, ordered by time).
//! `snowcluster demo` prints it; the tests assert on its fields.
//!
//! One concern per file: [`nodes`] (servers, schema, meshes), [`catchup`] (markers and the
//! wait), [`scenario`] (two nodes, one millisecond), [`load`] (pgbench), [`logs`] (what the
//! server logs say), [`figures`] (the queries after the loads), [`checks`] (figures to
//! verdicts), [`report`] (the types and their text).

mod catchup;
mod checks;
mod figures;
mod load;
mod logs;
mod nodes;
mod report;
mod scenario;

pub use checks::evaluate;
pub use report::{
    Catchup, Change, Check, CheckKind, IssuedIds, Load, NodeFigures, Ordering, PgbenchRun, Report,
    Scenario, ScenarioNode, Setup, SnowflakeFigures, TimestampFigures, TsNode,
};

use crate::pg::Pg;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering as AtomicOrdering};
use std::time::Duration;

/// What to run. [`Options::new`] gives the defaults of `scripts/demo.sh`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The PostgreSQL to run (its engine follows the major).
    pub pg: Pg,
    /// Where the nodes live: node `i` in `dir/<name>-node<i>`.
    pub dir: PathBuf,
    pub name: String,
    /// Port of node 1; node `i` listens on `port + i - 1`.
    pub port: u16,
    /// Seconds of each load.
    pub duration_s: u32,
    /// pgbench clients per node.
    pub clients: u32,
    /// Rows per INSERT statement.
    pub rows_per_insert: u32,
    /// The rate check's threshold, rows per second over the three nodes.
    pub min_rate: u64,
    /// How long to wait for replication to catch up, per node and phase.
    pub catchup_timeout: Duration,
    /// `snowflake_id.node_id` of nodes 1, 2, 3 (`[1, 1, 3]` misconfigures two of them).
    pub node_ids: [i32; 3],
    /// How long a backend may take between reading `changed_at` and drawing the ID.
    pub order_slack_ms: u32,
    /// SQL run on node 3 after the scenario, before the loads (a property broken on purpose).
    pub fault_sql: Option<String>,
}

impl Options {
    pub fn new(pg: Pg, dir: PathBuf) -> Options {
        Options {
            pg,
            dir,
            name: "demo".into(),
            port: 25432,
            duration_s: 30,
            clients: 4,
            rows_per_insert: 50,
            min_rate: 20_000,
            catchup_timeout: Duration::from_secs(600),
            node_ids: [1, 2, 3],
            order_slack_ms: 100,
            fault_sql: None,
        }
    }
}

/// Why the demo could not produce a report (a failed check is not an error: it is in the
/// report).
#[derive(Debug)]
pub enum Error {
    /// SIGINT or SIGTERM arrived (after [`stop_on_signals`]): the servers were stopped.
    Interrupted(i32),
    /// Replication did not catch up in time.
    Timeout(String),
    /// A query failed.
    Sql(String, postgres::Error),
    /// A file or a program could not be used.
    Io(String, std::io::Error),
    /// A step panicked (a server that would not start, a mesh that would not stream); the
    /// servers were stopped.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Interrupted(sig) => write!(f, "interrupted by signal {sig}"),
            Error::Timeout(what) => write!(f, "timed out {what}"),
            Error::Sql(what, e) => write!(f, "{what}: {e}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Failed(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done to a query's error.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, postgres::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sql(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io(what(), e))
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, AtomicOrdering::SeqCst);
    // A second one of the same signal ends the process at once (servers may be left running).
    // SAFETY: signal() is async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Makes SIGINT and SIGTERM end a running demo: its waits notice, stop pgbench, and [`run`]
/// returns [`Error::Interrupted`] after stopping the servers; a second one ends the process at
/// once. For the command line; a library caller keeps its own handling.
pub fn stop_on_signals() {
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// `Err(Interrupted)` once a signal arrived (see [`stop_on_signals`]).
pub(crate) fn check_signal() -> Result<()> {
    match SIGNAL.load(AtomicOrdering::SeqCst) {
        0 => Ok(()),
        sig => Err(Error::Interrupted(sig)),
    }
}

/// Progress, on stderr (the report is the value, printed by the caller).
pub(crate) fn say(what: &str) {
    eprintln!("== {what}");
}

/// Runs the demo and returns its report. Every server it started is stopped when it returns,
/// whatever the outcome (a fast shutdown, an immediate one after a panic); the data stays under
/// `dir` for its logs.
pub fn run(o: &Options) -> Result<Report> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_nodes(o))).unwrap_or_else(
        |panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a step panicked".into());
            Err(Error::Failed(msg))
        },
    )
}

fn run_nodes(o: &Options) -> Result<Report> {
    let mut nodes = nodes::Nodes::start(o)?;
    let report = run_on(o, &mut nodes);
    nodes.stop();
    report
}

fn run_on(o: &Options, nodes: &mut nodes::Nodes) -> Result<Report> {
    nodes.schema_and_meshes()?;
    say("registering the nodes in the replicated snowflake_nodes registry");
    nodes.register()?;
    catchup::mark_and_wait(o, nodes, "registry", catchup::Group::Audit)?;

    let attempts = scenario::run(nodes)?;
    catchup::mark_and_wait(o, nodes, "scenario", catchup::Group::Audit)?;
    catchup::mark_and_wait(o, nodes, "scenario", catchup::Group::Ts)?;
    let scenario = attempts.held(nodes)?;

    if let Some(sql) = &o.fault_sql {
        say("DEMO_FAULT_SQL on node 3 (a property broken on purpose)");
        nodes.conns[2]
            .batch_execute(sql)
            .ctx(|| "the fault SQL on node 3".into())?;
    }

    let before = figures::LoadWatch::before(nodes)?;
    say(&format!(
        "load 1: {} pgbench clients per node, {} s, INSERTs of {} rows, IDs from snowflake_nextval()",
        o.clients, o.duration_s, o.rows_per_insert
    ));
    let sf_load = load::run(o, nodes, load::Script::Snowflake)?;
    say("waiting for replication to catch up");
    let sf_catchup = catchup::mark_and_wait(o, nodes, "load_snowflake", catchup::Group::Audit)?;
    let watch = before.after(nodes)?;

    say("load 2: the same load with yyyyMMddHHmmssSSS IDs (ON CONFLICT DO NOTHING keeps it running)");
    let ts_load = load::run(o, nodes, load::Script::Timestamp)?;
    say("waiting for replication to catch up");
    let ts_catchup = catchup::mark_and_wait(o, nodes, "load_timestamp", catchup::Group::Ts)?;

    say("checking");
    let setup = Setup {
        pg_major: o.pg.major,
        server_version: nodes.one(0, "SHOW server_version")?,
        engine: nodes.engine,
        first_port: o.port,
        node_ids: o.node_ids,
        clients: o.clients,
        duration_s: o.duration_s,
        rows_per_insert: o.rows_per_insert,
        min_rate: o.min_rate,
        order_slack_ms: o.order_slack_ms,
    };
    let snowflake = figures::snowflake(o, nodes, &watch, sf_load, sf_catchup)?;
    let timestamp = figures::timestamp(nodes, ts_load, ts_catchup)?;
    let mut report = Report {
        setup,
        scenario,
        snowflake,
        timestamp,
        checks: Vec::new(),
    };
    report.checks = evaluate(&report);
    Ok(report)
}
