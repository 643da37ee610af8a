//! Bidirectional (multi-master) replication between nodes: every node subscribes to every other.
//!
//! PostgreSQL 15 has no way to stop changes from looping back between two nodes that subscribe to
//! each other with its own logical replication, so there it is pglogical (`forward_origins =
//! '{}'`); PostgreSQL 16 added `origin = none`, and from 16 on the project uses PostgreSQL's own
//! publications and subscriptions. This is the only place that tells the two apart.

use crate::node::Node;
use crate::process::wait_for;
use std::time::Duration;

/// The replication engine of a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The pglogical extension (PostgreSQL 15).
    Pglogical,
    /// PostgreSQL's own logical replication with `origin = none` (16 and later).
    Native,
}

impl Engine {
    /// The engine for a major version: native from 16 on, pglogical before.
    pub fn for_major(major: u32) -> Engine {
        if major >= 16 {
            Engine::Native
        } else {
            Engine::Pglogical
        }
    }

    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "pglogical" => Some(Engine::Pglogical),
            "native" => Some(Engine::Native),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Pglogical => "pglogical",
            Engine::Native => "native",
        }
    }

    /// `shared_preload_libraries` for a node of this engine running snowflake_id.
    pub fn preload(self) -> &'static str {
        match self {
            Engine::Pglogical => "shared_preload_libraries = 'pglogical,snowflake_id'",
            Engine::Native => "shared_preload_libraries = 'snowflake_id'",
        }
    }

    /// `postgresql.conf` lines a node needs for this engine (the preload line included).
    pub fn settings(self) -> Vec<&'static str> {
        let mut s = vec![
            self.preload(),
            "wal_level = logical",
            // pglogical resolves conflicts by commit time; PostgreSQL 18 uses it to detect
            // update_origin_differs conflicts.
            "track_commit_timestamp = on",
            "max_replication_slots = 16",
            "max_wal_senders = 16",
            "max_worker_processes = 24",
        ];
        match self {
            Engine::Pglogical => s.extend([
                "output_plugin_libraries = 'pgoutput, test_decoding, pglogical_output'",
                "pglogical.conflict_log_level = log",
            ]),
            Engine::Native => s.push("max_logical_replication_workers = 16"),
        }
        s
    }

    /// What the engine logs for a conflict on `table` (schema-qualified, e.g.
    /// `public.audit_log`), as a line predicate. pglogical logs `CONFLICT: remote INSERT on
    /// relation public.t ...`; PostgreSQL 18 logs `conflict detected on relation "public.t":
    /// conflict=insert_exists`; 16 and 17 detect none and log the apply worker's duplicate-key
    /// ERROR, counted by [`conflict_lines`] through its CONTEXT line.
    fn is_conflict(self, line: &str, table: &str) -> bool {
        match self {
            Engine::Pglogical => {
                line.contains("CONFLICT: ") && line.contains(&format!(" on relation {table} "))
            }
            Engine::Native => line.contains(&format!("conflict detected on relation \"{table}\"")),
        }
    }
}

/// Conflict lines for `table` in a server log (see [`Engine::is_conflict`]). On PostgreSQL 16
/// and 17, native replication detects no conflict: an incoming row whose key exists makes the
/// apply worker fail with a duplicate-key ERROR (SQLSTATE 23505) in a `logical replication`
/// worker, whose CONTEXT names the relation; those are counted instead.
pub fn conflict_lines(engine: Engine, major: u32, log: &str, table: &str) -> usize {
    if engine == Engine::Native && major < 18 {
        let (schema, rel) = table.split_once('.').unwrap_or(("public", table));
        let lines: Vec<&str> = log.lines().collect();
        return lines
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                l.contains("ERROR:  duplicate key value")
                    && lines[i + 1..(i + 4).min(lines.len())].iter().any(|c| {
                        c.contains("CONTEXT:") && c.contains(&format!("\"{schema}.{rel}\""))
                    })
            })
            .count();
    }
    log.lines().filter(|l| engine.is_conflict(l, table)).count()
}

/// Wires a full mesh between `nodes` for `tables` in database `postgres`: every node publishes
/// the tables under `group` and subscribes to every other node's publication, without copying
/// data and without forwarding changes that came from another node. Each node must already hold
/// the tables (and, for pglogical, the settings of [`Engine::settings`]). Several groups can
/// share nodes (each its own replication set or publication and subscriptions). Returns when
/// every subscription is streaming.
pub fn mesh(engine: Engine, nodes: &[&Node], group: &str, tables: &[&str]) {
    let list = tables.join(", ");
    for (i, n) in nodes.iter().enumerate() {
        match engine {
            Engine::Pglogical => {
                n.psql(&format!(
                    "CREATE EXTENSION IF NOT EXISTS pglogical;
                     SELECT pglogical.create_node(node_name := 'n{i}', dsn := '{}')
                     WHERE NOT EXISTS (SELECT FROM pglogical.local_node);
                     SELECT pglogical.create_replication_set('{group}')
                     WHERE '{group}' <> 'default';
                     SELECT pglogical.replication_set_add_table('{group}', t, synchronize_data := false)
                     FROM unnest('{{{list}}}'::regclass[]) t;",
                    dsn(n)
                ));
            }
            Engine::Native => {
                n.psql(&format!("CREATE PUBLICATION {group} FOR TABLE {list}"));
            }
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        for (j, m) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let sub = sub_name(group, i, j);
            match engine {
                Engine::Pglogical => n.psql(&format!(
                    "SELECT pglogical.create_subscription(subscription_name := '{sub}',
                       provider_dsn := '{}', replication_sets := '{{{group}}}',
                       synchronize_structure := false, synchronize_data := false,
                       forward_origins := '{{}}')",
                    dsn(m)
                )),
                Engine::Native => n.psql(&format!(
                    "CREATE SUBSCRIPTION {sub} CONNECTION '{}' PUBLICATION {group}
                     WITH (origin = none, copy_data = false)",
                    dsn(m)
                )),
            };
        }
    }
    wait_streaming(engine, nodes, group, Duration::from_secs(120));
}

/// Waits until every subscription of `group` is streaming: pglogical reports `replicating`;
/// natively, each node's WAL senders for the group's subscriptions are `streaming`.
pub fn wait_streaming(engine: Engine, nodes: &[&Node], group: &str, timeout: Duration) {
    let others = nodes.len() - 1;
    for n in nodes {
        let sql = match engine {
            Engine::Pglogical => format!(
                "SELECT count(*) FROM pglogical.show_subscription_status()
                 WHERE status = 'replicating' AND subscription_name LIKE '{group}\\_%'"
            ),
            Engine::Native => format!(
                "SELECT count(*) FROM pg_catalog.pg_stat_replication
                 WHERE state = 'streaming' AND application_name LIKE '{group}\\_%'"
            ),
        };
        wait_for(
            &format!("{others} {group} subscriptions streaming on {}", n.name),
            timeout,
            || (n.psql(&sql).parse::<usize>().ok() == Some(others)).then_some(()),
        );
    }
}

fn sub_name(group: &str, to: usize, from: usize) -> String {
    format!("{group}_n{to}_from_n{from}")
}

fn dsn(n: &Node) -> String {
    format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres",
        n.port
    )
}
