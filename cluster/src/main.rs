//! `snowcluster`: the command line of the cluster tool, for the project's shell scripts.
//!
//! ```text
//! snowcluster [--pg-config PATH] info
//! snowcluster [--pg-config PATH] up   --dir D --name N --nodes K --port P [--node-ids "1 2 3"]
//!                                     [--engine auto|pglogical|native|none] [--set LINE]... [--env K=V]...
//! snowcluster [--pg-config PATH] mesh --dir D --name N --nodes K --port P --group G --tables a,b
//!                                     [--engine auto|pglogical|native]
//! snowcluster [--pg-config PATH] down --dir D --name N --nodes K [--immediate]
//! snowcluster majors [--tier full|regress|compile]
//! snowcluster pg-config MAJOR [--fetch] [--root DIR]
//! snowcluster [--pg-config PATH] demo [--dir D] [--name N] [--port P] [--duration S] ...
//! ```
//! Node `i` (1-based) lives in `D/N-node<i>` and listens on 127.0.0.1 port `P + i - 1`.
//! `majors` lists the supported majors (one per line: major, tier, pg_config), or with `--tier`
//! just the majors of that tier, space-separated, for a script's loop; `pg-config` prints where
//! a major's `pg_config` is, downloading and unpacking its build first with `--fetch`.

use clap::{Parser, Subcommand};
use snowflake_cluster::majors::{self, Tier};
use snowflake_cluster::{demo, ensure_traversable, mesh, Engine, Node, Pg};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "snowcluster",
    about = "Throwaway PostgreSQL nodes for snowflake_id"
)]
struct Cli {
    /// pg_config of the PostgreSQL to run [default: $SNOWFLAKE_PG_CONFIG, else /usr/bin/pg_config]
    #[arg(long, global = true)]
    pg_config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Nodes {
    /// Directory holding the nodes' directories
    #[arg(long)]
    dir: PathBuf,
    /// Name prefix: node i lives in DIR/NAME-node<i>
    #[arg(long)]
    name: String,
    /// Number of nodes
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Port of node 1; node i listens on PORT + i - 1
    #[arg(long, default_value_t = 25432)]
    port: u16,
}

#[derive(Subcommand)]
enum Cmd {
    /// Prints the install as shell assignments (PG_MAJOR, PG_VERSION, PG_BIN, PG_PKGLIBDIR,
    /// PG_SHAREDIR, PG_ENGINE) for `eval`.
    Info,
    /// Creates (afresh) and starts the nodes.
    Up {
        #[command(flatten)]
        nodes: Nodes,
        /// snowflake_id.node_id of each node, space-separated [default: 1 2 ... K]
        #[arg(long)]
        node_ids: Option<String>,
        /// Replication engine to configure: auto (by major), pglogical, native, none
        #[arg(long, default_value = "auto")]
        engine: String,
        /// An extra postgresql.conf line (later lines win)
        #[arg(long = "set")]
        settings: Vec<String>,
        /// An environment variable for the postmasters (e.g. LD_PRELOAD=...)
        #[arg(long = "env")]
        env: Vec<String>,
    },
    /// Wires a full mesh: every node publishes TABLES under GROUP and subscribes to every other.
    Mesh {
        #[command(flatten)]
        nodes: Nodes,
        #[arg(long)]
        group: String,
        /// Comma-separated tables (they must exist on every node)
        #[arg(long)]
        tables: String,
        #[arg(long, default_value = "auto")]
        engine: String,
    },
    /// Stops the nodes that are running (fast shutdown, or immediate).
    Down {
        #[command(flatten)]
        nodes: Nodes,
        #[arg(long)]
        immediate: bool,
    },
    /// Lists the supported PostgreSQL majors: major, tier, pg_config (one per line); with
    /// --tier, only that tier's majors, space-separated.
    Majors {
        /// full, regress or compile
        #[arg(long)]
        tier: Option<String>,
    },
    /// Prints where MAJOR's pg_config is.
    PgConfig {
        major: u32,
        /// Download and unpack the major's build first if it is not there
        #[arg(long)]
        fetch: bool,
        /// The project whose target/ holds the builds [default: this one]
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// The main job: three nodes in bidirectional logical replication write one audit log with
    /// snowflake_nextval() IDs and with timestamp IDs; prints the report, exits 1 if a check
    /// fails. Every server it starts is stopped at the end, on an error and on Ctrl-C.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Directory holding the nodes' directories
    #[arg(long, env = "DEMO_DIR", default_value = ".run")]
    dir: PathBuf,
    /// Name prefix: node i lives in DIR/NAME-node<i>
    #[arg(long, env = "DEMO_NAME", default_value = "demo")]
    name: String,
    /// Port of node 1; nodes 2 and 3 listen on the next two
    #[arg(long, env = "DEMO_PORT", default_value_t = 25432)]
    port: u16,
    /// Seconds of each load
    #[arg(long, env = "DURATION", default_value_t = 30)]
    duration: u32,
    /// pgbench clients per node
    #[arg(long, env = "CLIENTS", default_value_t = 4)]
    clients: u32,
    /// Rows per INSERT
    #[arg(long, env = "ROWS_PER_INSERT", default_value_t = 50)]
    rows_per_insert: u32,
    /// The rate check's threshold, rows/s over the three nodes
    #[arg(long, env = "MIN_RATE", default_value_t = 20000)]
    min_rate: u64,
    /// Seconds to wait for replication to catch up, per node and phase
    #[arg(long, env = "CATCHUP_TIMEOUT", default_value_t = 600)]
    catchup_timeout: u64,
    /// snowflake_id.node_id of nodes 1, 2, 3 ("1 1 3" misconfigures two nodes with one id)
    #[arg(long, env = "NODE_IDS", default_value = "1 2 3")]
    node_ids: String,
    /// ms a backend may take between reading changed_at and drawing the ID (ordering check)
    #[arg(long, env = "ORDER_SLACK_MS", default_value_t = 100)]
    order_slack_ms: u32,
    /// SQL run on node 3 after the scenario, before the loads (a property broken on purpose)
    #[arg(long, env = "DEMO_FAULT_SQL")]
    fault_sql: Option<String>,
}

/// Runs the demo; the exit status: 0 every check passed, 1 one failed, 2 no report (an
/// error), 130 interrupted.
fn run_demo(pg: Pg, a: DemoArgs) -> i32 {
    let ids: Vec<i32> = a
        .node_ids
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(-1))
        .collect();
    let Ok(node_ids) = <[i32; 3]>::try_from(ids) else {
        eprintln!("snowcluster: NODE_IDS needs 3 ids");
        return 2;
    };
    if node_ids.iter().any(|id| !(0..1024).contains(id)) {
        eprintln!("snowcluster: node ids are 0..1023");
        return 2;
    }
    let dir = std::path::absolute(&a.dir).unwrap_or(a.dir);
    let o = demo::Options {
        name: a.name,
        port: a.port,
        duration_s: a.duration,
        clients: a.clients,
        rows_per_insert: a.rows_per_insert,
        min_rate: a.min_rate,
        catchup_timeout: std::time::Duration::from_secs(a.catchup_timeout),
        node_ids,
        order_slack_ms: a.order_slack_ms,
        fault_sql: a.fault_sql.filter(|s| !s.trim().is_empty()),
        ..demo::Options::new(pg, dir.clone())
    };
    demo::stop_on_signals();
    let logs = format!("{}/{}-node*/server.log", dir.display(), o.name);
    match demo::run(&o) {
        Ok(report) => {
            println!();
            print!("{report}");
            if report.passed() {
                println!(
                    "the nodes are stopped; their data stays in {}/{}-node*",
                    dir.display(),
                    o.name
                );
                0
            } else {
                eprintln!("== a check failed; the nodes are stopped; logs: {logs}");
                1
            }
        }
        Err(demo::Error::Interrupted(sig)) => {
            eprintln!("== interrupted (signal {sig}); the nodes are stopped; logs: {logs}");
            128 + sig
        }
        Err(e) => {
            eprintln!("snowcluster demo: {e}\n== the nodes are stopped; logs: {logs}");
            2
        }
    }
}

fn engine(pg: &Pg, name: &str) -> Option<Engine> {
    match name {
        "auto" => Some(Engine::for_major(pg.major)),
        "none" => None,
        other => Some(Engine::parse(other).unwrap_or_else(|| {
            eprintln!("snowcluster: unknown engine {other:?} (auto, pglogical, native, none)");
            std::process::exit(2)
        })),
    }
}

fn node(pg: &Pg, n: &Nodes, i: u16) -> Node {
    let name = format!("{}-node{i}", n.name);
    Node::at(pg, &n.dir.join(&name), &name, n.port + i - 1)
}

fn main() {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Majors { tier } => return list_majors(tier.as_deref()),
        Cmd::PgConfig { major, fetch, root } => {
            let root = root.clone().unwrap_or_else(majors::project_root);
            return print_pg_config(&root, *major, *fetch);
        }
        _ => {}
    }
    let pg = match &cli.pg_config {
        Some(p) => Pg::from_pg_config(p).unwrap_or_else(|e| {
            eprintln!("snowcluster: {e}");
            std::process::exit(2)
        }),
        None => Pg::from_env(),
    };
    match cli.cmd {
        Cmd::Demo(args) => std::process::exit(run_demo(pg, args)),
        Cmd::Info => {
            println!("PG_MAJOR={}", pg.major);
            println!("PG_VERSION='{}'", pg.version.replace('\'', ""));
            println!("PG_BIN='{}'", pg.bindir.display());
            println!("PG_PKGLIBDIR='{}'", pg.pkglibdir.display());
            println!("PG_SHAREDIR='{}'", pg.sharedir.display());
            println!("PG_ENGINE={}", Engine::for_major(pg.major).name());
        }
        Cmd::Up {
            nodes,
            node_ids,
            engine: e,
            settings,
            env,
        } => {
            let ids: Vec<String> = match node_ids {
                Some(s) => s.split_whitespace().map(str::to_string).collect(),
                None => (1..=nodes.nodes).map(|i| i.to_string()).collect(),
            };
            if ids.len() != nodes.nodes as usize {
                eprintln!("snowcluster: --node-ids needs {} ids", nodes.nodes);
                std::process::exit(2);
            }
            std::fs::create_dir_all(&nodes.dir).unwrap();
            ensure_traversable(&nodes.dir.join("x"));
            let mut conf: Vec<String> = engine(&pg, &e)
                .map(|e| e.settings().into_iter().map(str::to_string).collect())
                .unwrap_or_default();
            conf.extend(settings);
            for i in 1..=nodes.nodes {
                let name = format!("{}-node{i}", nodes.name);
                let mut lines = conf.clone();
                lines.push(format!("snowflake_id.node_id = {}", ids[i as usize - 1]));
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                let mut n = Node::init(&pg, &nodes.dir, &name, nodes.port + i - 1, &refs);
                n.env = env
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                n.start();
                eprintln!(
                    "snowcluster: {} ({}) on 127.0.0.1:{} in {}",
                    name,
                    pg.version,
                    n.port,
                    n.dir.display()
                );
                n.detach();
            }
        }
        Cmd::Mesh {
            nodes,
            group,
            tables,
            engine: e,
        } => {
            let Some(e) = engine(&pg, &e) else {
                eprintln!("snowcluster: mesh needs an engine");
                std::process::exit(2)
            };
            let all: Vec<Node> = (1..=nodes.nodes).map(|i| node(&pg, &nodes, i)).collect();
            let refs: Vec<&Node> = all.iter().collect();
            let tables: Vec<&str> = tables.split(',').map(str::trim).collect();
            mesh(e, &refs, &group, &tables);
            eprintln!(
                "snowcluster: {} mesh '{group}' of {} nodes streaming",
                e.name(),
                nodes.nodes
            );
            for n in all {
                n.detach();
            }
        }
        Cmd::Down { nodes, immediate } => {
            for i in 1..=nodes.nodes {
                let n = node(&pg, &nodes, i);
                if running(&n.data()) {
                    if immediate {
                        n.stop_immediate();
                    } else {
                        n.stop();
                    }
                }
                n.detach();
            }
        }
        Cmd::Majors { .. } | Cmd::PgConfig { .. } => unreachable!("answered above"),
    }
}

fn fail(msg: String) -> ! {
    eprintln!("snowcluster: {msg}");
    std::process::exit(2)
}

fn list_majors(tier: Option<&str>) {
    let root = majors::project_root();
    match tier {
        Some(t) => {
            let tier = Tier::parse(t)
                .unwrap_or_else(|| fail(format!("unknown tier {t:?} (full, regress, compile)")));
            let list: Vec<String> = majors::of_tier(tier).map(|m| m.major.to_string()).collect();
            println!("{}", list.join(" "));
        }
        None => {
            for m in majors::MAJORS {
                let path = majors::pg_config(&root, m.major)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into());
                println!("{} {} {path}", m.major, m.tier.name());
            }
        }
    }
}

fn print_pg_config(root: &Path, major: u32, fetch: bool) {
    let m = majors::find(major)
        .unwrap_or_else(|| fail(format!("PostgreSQL {major} is not a supported major")));
    let path = if fetch {
        m.fetch(root).unwrap_or_else(|e| fail(e))
    } else {
        majors::pg_config(root, major)
            .unwrap_or_else(|| fail(format!("PostgreSQL {major} has no server here")))
    };
    println!("{}", path.display());
}

fn running(data: &Path) -> bool {
    data.join("postmaster.pid").exists()
}
