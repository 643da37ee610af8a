//! Harness for the integration tests: real PostgreSQL servers of the major under test
//! (`$SNOWFLAKE_PG_CONFIG`, default the system's PostgreSQL 15), started through the cluster tool
//! (`cluster/`) as user `postgres` on loopback ports from [`ports`], under
//! `<project>/target/it/pg<major>/<name>`, stopped when dropped.
//!
//! The extension must be installed into that PostgreSQL first (`cargo pgrx install
//! --pg-config ...`); `scripts/test.sh` does that before it runs these tests.

pub mod clock;
pub mod daemon;
pub mod draw;
pub mod dump;
pub mod ports;
pub mod state;

pub use snowflake_cluster::{
    alive, as_postgres, children, conflict_lines, ensure_traversable, kill9, mesh, wait_for,
    wait_streaming, Engine, Node, Pg,
};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The PostgreSQL under test: `$SNOWFLAKE_PG_CONFIG`, else the system's `/usr/bin/pg_config`
/// (`scripts/test.sh` runs the suite once per tested major).
pub fn pg() -> &'static Pg {
    static PG: OnceLock<Pg> = OnceLock::new();
    PG.get_or_init(Pg::from_env)
}

/// A program of the PostgreSQL under test.
pub fn pg_bin(program: &str) -> PathBuf {
    pg().bin(program)
}

/// The replication engine for multi-master on the PostgreSQL under test.
pub fn engine() -> Engine {
    Engine::for_major(pg().major)
}

/// The workspace root (the directory holding the extension's Cargo.toml).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where clusters of the integration tests live: `target/it/pg<major>`.
pub fn clusters_root() -> PathBuf {
    project_root()
        .join("target")
        .join("it")
        .join(format!("pg{}", pg().major))
}

/// A server of the PostgreSQL under test, under [`clusters_root`]; a [`Node`] of the cluster
/// tool, stopped when dropped. Each gets its own port from [`ports`] (read it from `.port`).
pub struct Cluster(Node);

impl Cluster {
    /// A new server (any old one of that name is removed): `initdb`, then `postgresql.conf`
    /// gets loopback on a port of its own, the library preloaded, and the `settings` lines.
    pub fn init(name: &str, settings: &[&str]) -> Cluster {
        Cluster(Node::init(
            pg(),
            &clusters_root(),
            name,
            ports::one(),
            settings,
        ))
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`, so with a copy of the primary's
    /// configuration and state file), on a port of its own, with `settings` appended; not
    /// started.
    pub fn standby_of(primary: &Cluster, name: &str, settings: &[&str]) -> Cluster {
        Cluster(Node::standby_of(
            primary,
            &clusters_root(),
            name,
            ports::one(),
            settings,
        ))
    }

    /// A started streaming standby of `primary` with node id `node_id`, or with the primary's
    /// node id (from the copied configuration) when `None`: what most standby tests begin with.
    pub fn standby(primary: &Cluster, name: &str, node_id: Option<u16>) -> Cluster {
        let setting = node_id.map(|id| format!("snowflake_id.node_id = {id}"));
        let settings: Vec<&str> = setting.iter().map(String::as_str).collect();
        let standby = Cluster::standby_of(primary, name, &settings);
        standby.start();
        standby
    }

    /// A base backup of `primary` (no recovery settings) for a port of its own, not configured
    /// and not started: the caller adds the recovery settings
    /// ([`Node::configure_copy`], [`Node::signal`]).
    pub fn base_backup(primary: &Cluster, name: &str) -> Cluster {
        Cluster(Node::base_backup(
            primary,
            &clusters_root(),
            name,
            ports::one(),
            false,
        ))
    }
}

impl Deref for Cluster {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.0
    }
}

/// The extension's one version source: `[package] version` of the root Cargo.toml.
pub fn cargo_version() -> String {
    let text = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest["package"]["version"].as_str().unwrap().to_string()
}

/// The installed version of the extension in the connected database.
pub fn extversion(c: &mut postgres::Client) -> String {
    c.query_one(
        "SELECT extversion FROM pg_extension WHERE extname = 'snowflake_id'",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Asserts there are no duplicates in `ids`; returns how many there were for the message.
pub fn count_duplicates(ids: &[i64]) -> usize {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.windows(2).filter(|w| w[0] == w[1]).count()
}

/// The server's error of a call that must fail: panics if it succeeded or failed without one.
pub fn db_error(r: Result<impl Sized, postgres::Error>, what: &str) -> postgres::error::DbError {
    match r {
        Ok(_) => panic!("{what}: succeeded"),
        Err(e) => e
            .as_db_error()
            .unwrap_or_else(|| panic!("{what}: {e}"))
            .clone(),
    }
}

/// Waits until `standby` has replayed everything `primary` has flushed so far.
pub fn wait_replayed(primary: &mut postgres::Client, standby: &mut postgres::Client) {
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .unwrap()
        .get(0);
    wait_for(
        "the standby to replay",
        std::time::Duration::from_secs(60),
        || {
            standby
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .unwrap()
                .get::<_, bool>(0)
                .then_some(())
        },
    );
}

/// `synchronous_standby_names = '*'` on the primary `c` is connected to, and waits until one
/// standby is synchronous.
pub fn make_standbys_synchronous(c: &mut postgres::Client) {
    c.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_sync_standby(c);
}

/// Waits until one standby of the primary `c` is connected to is synchronous.
pub fn wait_sync_standby(c: &mut postgres::Client) {
    wait_for(
        "a synchronous standby",
        std::time::Duration::from_secs(60),
        || {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .unwrap()
                .get(0);
            (n == 1).then_some(())
        },
    );
}

/// Copies the extension's frozen SQL scripts (`sql/*.sql`: every earlier release's install
/// script and every update script) into `pg`'s extension directory, so that a test can create an
/// earlier release and update it. The current version's generated script, installed with the
/// library, is left alone.
pub fn install_frozen_sql(pg: &Pg) {
    let extdir = pg.sharedir.join("extension");
    let current = format!("snowflake_id--{}.sql", cargo_version());
    for entry in std::fs::read_dir(project_root().join("sql")).unwrap() {
        let src = entry.unwrap().path();
        let name = src.file_name().unwrap();
        if name.to_str() == Some(current.as_str()) {
            continue;
        }
        let dst = extdir.join(name);
        let text = std::fs::read(&src).unwrap();
        if std::fs::read(&dst).ok().as_deref() != Some(&text[..]) {
            // Written aside and renamed: a server reading the directory sees whole files.
            let tmp = dst.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, &dst).unwrap();
        }
    }
}
