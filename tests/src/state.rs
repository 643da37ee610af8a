//! The generator's state file (`snowflake_id.state` in the data directory), written and read
//! behind a stopped server's back, as an operator's copy, a restore or a damaged disk would.

use crate::Cluster;
use snowflake_core::generator::CeilingStore;
use snowflake_core::layout;
use snowflake_core::store::{FileStore, Writer};
use std::fs;
use std::process::Command;

/// Writes a state file as a server would have left it: format 1 (no writer) or 2.
pub fn write_ceiling(node: &Cluster, ceiling_unix_ms: i64, writer: Option<Writer>) {
    let path = node.data().join("snowflake_id.state");
    let ms = layout::ms_since_epoch(ceiling_unix_ms).unwrap();
    match writer {
        Some(w) => FileStore::with_writer(&path, w).save(ms).unwrap(),
        None => FileStore::new(&path).save(ms).unwrap(),
    }
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&path)
        .status();
}

/// The ceiling in the state file, as Unix ms.
pub fn saved_ceiling_unix_ms(node: &Cluster) -> i64 {
    let text = fs::read_to_string(node.data().join("snowflake_id.state")).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ceiling_unix_ms "))
        .unwrap_or_else(|| panic!("{text}"));
    line.trim().parse().unwrap()
}
