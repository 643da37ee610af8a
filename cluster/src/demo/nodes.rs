//! The demo's three servers: started through [`Node`] with the engine's settings and the
//! demo's own, the schema (`scripts/cluster/schema.sql`) on each, and two full meshes.

use super::{say, Context, Options, Result};
use crate::mesh::{mesh, Engine};
use crate::node::Node;
use crate::process::ensure_traversable;
use postgres::Client;

/// The schema every node gets before it joins (engine-neutral).
const SCHEMA: &str = include_str!("../../../scripts/cluster/schema.sql");

/// The demo's own `postgresql.conf` lines (the engine's come from [`Engine::settings`]): room
/// for a million rows, and a log prefix with the backend type and SQLSTATE, which the log
/// checks read ([`super::logs`]).
const SETTINGS: [&str; 5] = [
    "shared_buffers = 256MB",
    "max_wal_size = 4GB",
    "checkpoint_timeout = 30min",
    "log_line_prefix = '%m [%p] %b %e: '",
    "log_min_messages = warning",
];

/// The running nodes, one connection to each; stopped (immediately) if dropped before
/// [`Nodes::stop`].
pub(crate) struct Nodes {
    pub nodes: Vec<Node>,
    pub conns: Vec<Client>,
    pub engine: Engine,
    pub node_ids: [i32; 3],
}

impl Nodes {
    /// Creates (afresh: servers of an earlier run under these names are stopped) and starts
    /// the three nodes.
    pub fn start(o: &Options) -> Result<Nodes> {
        let engine = Engine::for_major(o.pg.major);
        say(&format!(
            "starting 3 nodes of PostgreSQL {} on ports {}-{} ({} + snowflake_id, node ids {})",
            o.pg.major,
            o.port,
            o.port + 2,
            engine.name(),
            ids_text(&o.node_ids)
        ));
        std::fs::create_dir_all(&o.dir).ctx(|| format!("creating {}", o.dir.display()))?;
        ensure_traversable(&o.dir.join("x"));
        let mut nodes: Vec<Node> = Vec::new();
        for (i, id) in o.node_ids.iter().enumerate() {
            let mut conf: Vec<String> = engine.settings().iter().map(|s| s.to_string()).collect();
            conf.extend(SETTINGS.iter().map(|s| s.to_string()));
            conf.push(format!("snowflake_id.node_id = {id}"));
            let refs: Vec<&str> = conf.iter().map(String::as_str).collect();
            let name = format!("{}-node{}", o.name, i + 1);
            // Pushed before it starts: a start that fails still leaves it to be stopped.
            nodes.push(Node::init(&o.pg, &o.dir, &name, o.port + i as u16, &refs));
            nodes[i].start();
        }
        let conns = nodes.iter().map(Node::connect).collect();
        Ok(Nodes {
            nodes,
            conns,
            engine,
            node_ids: o.node_ids,
        })
    }

    /// The schema on every node, then two full meshes, each with its own subscriptions: with
    /// native replication a duplicate key from another node stops the apply worker for good
    /// (it fails, is restarted and fails again), which would block everything behind it on
    /// that subscription. The timestamp-ID table, where that happens by design, must not hold
    /// up the audit log.
    pub fn schema_and_meshes(&mut self) -> Result<()> {
        say(&format!(
            "schema on every node; two {} full meshes: audit (audit_log, its markers, the registry) and ts (audit_log_ts, its markers)",
            self.engine.name()
        ));
        for (i, c) in self.conns.iter_mut().enumerate() {
            c.batch_execute(SCHEMA)
                .ctx(|| format!("schema.sql on node {}", i + 1))?;
        }
        let refs: Vec<&Node> = self.nodes.iter().collect();
        mesh(
            self.engine,
            &refs,
            "audit",
            &["audit_log", "demo_marker", "snowflake_nodes"],
        );
        mesh(
            self.engine,
            &refs,
            "ts",
            &["audit_log_ts", "demo_marker_ts"],
        );
        Ok(())
    }

    /// Each node registers in the replicated `snowflake_nodes` registry.
    pub fn register(&mut self) -> Result<()> {
        for (i, c) in self.conns.iter_mut().enumerate() {
            c.execute("SELECT snowflake_register_node()", &[])
                .ctx(|| format!("registering node {}", i + 1))?;
        }
        Ok(())
    }

    /// One value of the first row of a query on node `i` (0-based).
    pub fn one<T: for<'a> postgres::types::FromSql<'a>>(
        &mut self,
        i: usize,
        sql: &str,
    ) -> Result<T> {
        self.conns[i]
            .query_one(sql, &[])
            .map(|r| r.get(0))
            .ctx(|| format!("on node {}: {sql}", i + 1))
    }

    /// The first row of a query on node `i` (0-based).
    pub fn row(&mut self, i: usize, sql: &str) -> Result<postgres::Row> {
        self.conns[i]
            .query_one(sql, &[])
            .ctx(|| format!("on node {}: {sql}", i + 1))
    }

    /// Fast shutdown of every node (immediate if that did not finish: `pg_ctl` gives up after a
    /// minute); the data stays for its logs.
    pub fn stop(self) {
        let Nodes { nodes, conns, .. } = self;
        drop(conns);
        for n in nodes {
            n.stop();
            if n.postmaster_pid().is_some() {
                n.stop_immediate();
            }
            n.detach();
        }
    }
}

pub(crate) fn ids_text(ids: &[i32; 3]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(" ")
}
