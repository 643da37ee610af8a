//! Throwaway PostgreSQL clusters for snowflake_id, for any PostgreSQL install found by its
//! `pg_config`: the one place that initialises, configures, starts, stops and wires servers.
//! The integration tests, the main job ([`demo`]), the benchmark and the packaging tests all
//! start their servers through it; `snowcluster` is its command line.
//!
//! - [`Pg`]: an install (programs, library and share directories, major version);
//! - [`Node`]: one server, run as user `postgres` on loopback, stopped when dropped;
//! - [`majors`]: the supported PostgreSQL majors, where each comes from and what runs on it;
//! - [`Engine`] and [`mesh`]: bidirectional replication between nodes, pglogical on PostgreSQL
//!   15 and PostgreSQL's own logical replication (`origin = none`) on 16 and later;
//! - [`demo`]: the main job on three such nodes, returning a typed [`demo::Report`].

pub mod demo;
pub mod majors;
mod mesh;
mod node;
mod pg;
mod process;

pub use mesh::{conflict_lines, mesh, wait_streaming, Engine};
pub use node::Node;
pub use pg::Pg;
pub use process::{
    alive, as_postgres, children, ensure_traversable, kill9, running_as_root, wait_for,
};
