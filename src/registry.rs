//! Node-id clash detection for multi-master set-ups.
//!
//! Uniqueness across servers rests on distinct `snowflake_id.node_id`s; two servers configured
//! with the same id issue colliding IDs. Each server records itself, `(node_id,
//! system_identifier, host, port)`, in the table `snowflake_nodes` created by the extension.
//! Replicate that table like any other (it has a primary key) and every node sees every node;
//! `snowflake_check_nodes()` then lists node ids claimed by more than one server (different
//! `pg_control_system().system_identifier`) and raises a WARNING naming them.
//!
//! Registration is explicit (`snowflake_register_node()`) or done by `snowflake_check_nodes()`;
//! never on the `snowflake_nextval()` hot path. Registering again with nothing changed writes
//! nothing, so a replicated registry sees one INSERT per server (and an UPDATE/DELETE only when
//! its node id, host or port change).
//!
//! Both functions run SQL, so both pin `search_path` to `pg_catalog, pg_temp` and qualify
//! the registry with the extension's schema: nothing a role plants in a schema on the caller's
//! path (a better-matching `count()` or operator) runs with the caller's rights.
//!
//! Limitation: a physical clone (pg_basebackup, promoted standby) keeps the system identifier
//! of its origin, so a clone configured with its origin's node id is not told apart here.

use crate::{errors, guc};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

extension_sql!(
    r#"
CREATE TABLE snowflake_nodes (
    node_id           integer     NOT NULL CHECK (node_id BETWEEN 0 AND 1023),
    system_identifier bigint      NOT NULL,
    host              text,
    port              integer,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, system_identifier)
);
COMMENT ON TABLE snowflake_nodes IS
  'snowflake_id: servers issuing Snowflake IDs (one row per server); replicate it between the nodes of a cluster and run snowflake_check_nodes() to find node id clashes';
-- Its rows are the cluster's configuration: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('snowflake_nodes', '');
"#,
    name = "snowflake_nodes_table",
);

extension_sql!(
    r#"
CREATE VIEW snowflake_node_clashes AS
  SELECT r.node_id, r.system_identifier, r.host, r.port, r.registered_at
  FROM snowflake_nodes r
  WHERE r.node_id IN (SELECT c.node_id FROM snowflake_nodes c GROUP BY c.node_id
                      HAVING pg_catalog.count(DISTINCT c.system_identifier) OPERATOR(pg_catalog.>) 1);
COMMENT ON VIEW snowflake_node_clashes IS
  'snowflake_id: registered servers whose node id another server also claims (read-only; for monitoring)';
-- Monitoring agents read clashes without writing the registry or reading it directly.
GRANT SELECT ON snowflake_node_clashes TO pg_monitor;
"#,
    name = "snowflake_node_clashes_view",
    requires = ["snowflake_nodes_table"],
);

/// Schema of the extension (where `snowflake_nodes` and the functions live), quoted.
pub fn ext_schema(client: &SpiClient<'_>) -> String {
    let schema: Option<String> = client
        .select(
            "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'snowflake_id'",
            None,
            &[],
        )
        .and_then(|t| t.first().get_one())
        .unwrap_or_else(|e| errors::spi("could not find the extension's schema", e));
    quote_identifier(schema.unwrap_or_else(|| "public".into()))
}

/// Upserts this server's row; removes rows of this server under other node ids. Returns whether
/// anything was written.
fn register(client: &mut SpiClient<'_>, node_id: i32) -> bool {
    let registry = format!("{}.snowflake_nodes", ext_schema(client));
    let me = "(SELECT system_identifier FROM pg_catalog.pg_control_system())";
    let removed = client
        .update(
            &format!("DELETE FROM {registry} WHERE system_identifier = {me} AND node_id <> $1"),
            None,
            &[node_id.into()],
        )
        .map(|t| t.len())
        .unwrap_or_else(|e| errors::spi("could not update snowflake_nodes", e));
    let upserted = client
        .update(
            &format!(
                "INSERT INTO {registry} AS r (node_id, system_identifier, host, port) \
                 VALUES ($1, {me}, \
                         coalesce(pg_catalog.host(pg_catalog.inet_server_addr()), \
                                  pg_catalog.current_setting('listen_addresses')), \
                         pg_catalog.current_setting('port')::pg_catalog.int4) \
                 ON CONFLICT (node_id, system_identifier) DO UPDATE \
                   SET host = EXCLUDED.host, port = EXCLUDED.port \
                   WHERE (r.host, r.port) IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.port) \
                 RETURNING 1"
            ),
            None,
            &[node_id.into()],
        )
        .map(|t| t.len())
        .unwrap_or_else(|e| errors::spi("could not update snowflake_nodes", e));
    removed + upserted > 0
}

/// Records this server (node id, system identifier, host, port) in `snowflake_nodes`. Returns
/// the node id registered. An ERROR if `snowflake_id.node_id` is not set.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn snowflake_register_node() -> i32 {
    let node_id = i32::from(guc::require_node_id());
    Spi::connect_mut(|client| register(client, node_id));
    node_id
}

/// Whether the current role may register: every privilege the upsert and delete need.
fn may_register(client: &SpiClient<'_>, registry: &str) -> bool {
    client
        .select(
            "SELECT pg_catalog.bool_and(pg_catalog.has_table_privilege($1::pg_catalog.regclass, p)) \
             FROM pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p",
            None,
            &[registry.into()],
        )
        .and_then(|t| t.first().get_one::<bool>())
        .unwrap_or_else(|e| errors::spi("could not check privileges on snowflake_nodes", e))
        .unwrap_or(false)
}

fn writable() -> bool {
    // SAFETY: plain reads of backend-global state inside a transaction.
    unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly }
}

/// Node ids claimed by more than one server in `snowflake_nodes`, one row per claiming server.
/// Registers this server first (when its node id is set, the transaction may write and the role
/// may write the registry). Raises a
/// WARNING naming every clash; returns no rows when there is none.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn snowflake_check_nodes() -> TableIterator<
    'static,
    (
        name!(node_id, i32),
        name!(system_identifier, i64),
        name!(host, Option<String>),
        name!(port, Option<i32>),
        name!(registered_at, TimestampWithTimeZone),
        name!(is_this_server, bool),
    ),
> {
    let rows = Spi::connect_mut(|client| {
        let registry = format!("{}.snowflake_nodes", ext_schema(client));
        guc::require_preloaded();
        if let (Some(node_id), true) = (crate::guc::node_id(), writable()) {
            // A role that may only read the registry checks it without registering.
            if may_register(client, &registry) {
                register(client, i32::from(node_id));
            }
        }
        let table = client
            .select(
                &format!(
                    "SELECT r.node_id, r.system_identifier, r.host, r.port, r.registered_at, \
                            r.system_identifier = (SELECT system_identifier FROM pg_catalog.pg_control_system()) \
                     FROM {registry} r \
                     WHERE r.node_id IN (SELECT node_id FROM {registry} GROUP BY node_id \
                                         HAVING pg_catalog.count(DISTINCT system_identifier) > 1) \
                     ORDER BY r.node_id, r.system_identifier"
                ),
                None,
                &[],
            )
            .unwrap_or_else(|e| errors::spi("could not read snowflake_nodes", e));
        table
            .map(|row| {
                (
                    row.get::<i32>(1).ok().flatten().unwrap_or(-1),
                    row.get::<i64>(2).ok().flatten().unwrap_or(0),
                    row.get::<String>(3).ok().flatten(),
                    row.get::<i32>(4).ok().flatten(),
                    row.get::<TimestampWithTimeZone>(5)
                        .ok()
                        .flatten()
                        .expect("registered_at is NOT NULL"),
                    row.get::<bool>(6).ok().flatten().unwrap_or(false),
                )
            })
            .collect::<Vec<_>>()
    });
    if !rows.is_empty() {
        let mut by_node: Vec<(i32, Vec<String>)> = Vec::new();
        for (node, sysid, host, port, _, mine) in &rows {
            let who = format!(
                "system {sysid} at {}:{}{}",
                host.as_deref().unwrap_or("?"),
                port.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                if *mine { " (this server)" } else { "" }
            );
            match by_node.last_mut() {
                Some((n, v)) if n == node => v.push(who),
                _ => by_node.push((*node, vec![who])),
            }
        }
        let list: Vec<String> = by_node
            .iter()
            .map(|(n, v)| format!("node id {n}: {}", v.join(", ")))
            .collect();
        errors::node_id_clash(&list);
    }
    TableIterator::new(rows)
}
