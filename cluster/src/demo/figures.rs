//! The figures the checks judge, gathered once the loads have caught up: rows and checksums on
//! each node, the server logs, the subscriptions, the IDs each node logged, the ordering of
//! changes across nodes.

use super::catchup::{subs_sql, Group};
use super::logs;
use super::nodes::Nodes;
use super::{
    Catchup, Context, IssuedIds, Load, NodeFigures, Options, Ordering, Result, SnowflakeFigures,
    TimestampFigures, TsNode,
};
use crate::mesh::{conflict_lines, Engine};
use crate::node::Node;
use std::fs;
use std::io;

/// A server log as text (lossy: a stray byte must not hide the rest).
fn read_log(node: &Node) -> Result<String> {
    let bytes =
        fs::read(node.log_path()).ctx(|| format!("reading {}", node.log_path().display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn log_len(node: &Node) -> Result<u64> {
    Ok(fs::metadata(node.log_path())
        .ctx(|| format!("reading {}", node.log_path().display()))?
        .len())
}

/// PIDs of the apply workers of the audit group running on node `i` (a worker that fails exits
/// and is started again under a new PID). pglogical's are told by backend type; native ones by
/// their subscription.
fn apply_pids(n: &mut Nodes, i: usize) -> Result<Vec<i32>> {
    let sql = match n.engine {
        Engine::Pglogical => {
            "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply%'"
        }
        Engine::Native => {
            "SELECT w.pid FROM pg_stat_subscription w JOIN pg_subscription s ON s.oid = w.subid
             WHERE s.subname LIKE 'audit\\_%' AND w.relid IS NULL AND w.leader_pid IS NULL
               AND w.pid IS NOT NULL"
        }
    };
    Ok(n.conns[i]
        .query(sql, &[])
        .ctx(|| format!("apply workers on node {}", i + 1))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The log offsets and the apply workers before load 1.
pub(crate) struct LoadWatch {
    log_start: [u64; 3],
    pids_before: [Vec<i32>; 3],
}

/// What load 1 (and its catch-up) did to the logs and the apply workers.
pub(crate) struct Watched {
    /// Each node's log written during load 1 and its catch-up.
    slices: [String; 3],
    /// Apply workers running before load 1 that were gone after it: each one exited (an apply
    /// error ends the worker; the engine starts a new one).
    exited: [usize; 3],
}

impl LoadWatch {
    pub fn before(n: &mut Nodes) -> Result<LoadWatch> {
        let mut log_start = [0; 3];
        let mut pids_before: [Vec<i32>; 3] = Default::default();
        for i in 0..3 {
            log_start[i] = log_len(&n.nodes[i])?;
            pids_before[i] = apply_pids(n, i)?;
        }
        Ok(LoadWatch {
            log_start,
            pids_before,
        })
    }

    pub fn after(self, n: &mut Nodes) -> Result<Watched> {
        let mut slices: [String; 3] = Default::default();
        let mut exited = [0; 3];
        for i in 0..3 {
            let bytes = fs::read(n.nodes[i].log_path())
                .ctx(|| format!("reading {}", n.nodes[i].log_path().display()))?;
            let from = (self.log_start[i] as usize).min(bytes.len());
            slices[i] = String::from_utf8_lossy(&bytes[from..]).into_owned();
            let now = apply_pids(n, i)?;
            exited[i] = self.pids_before[i]
                .iter()
                .filter(|p| !now.contains(p))
                .count();
        }
        Ok(Watched { slices, exited })
    }
}

/// The Snowflake table's figures, on every node and across them.
pub(crate) fn snowflake(
    o: &Options,
    n: &mut Nodes,
    watch: &Watched,
    load: Load,
    catchup: Catchup,
) -> Result<SnowflakeFigures> {
    let major = n.nodes[0].pg.major;
    let subs = format!(
        "SELECT count(*) FILTER (WHERE running AND EXISTS (SELECT FROM demo_marker m
                  WHERE m.phase = 'load_snowflake' AND m.node = s.origin)), count(*)
         FROM ({}) s",
        subs_sql(n.engine, Group::Audit)
    );
    let mut nodes = Vec::new();
    for i in 0..3 {
        let r = n.row(
            i,
            "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)) FROM audit_log a",
        )?;
        let (rows, md5): (i64, Option<String>) = (r.get(0), r.get(1));
        let s = n.row(i, &subs)?;
        let log = read_log(&n.nodes[i])?;
        // The slice of load 1, told apart by the prefix's backend type and SQLSTATE; an apply
        // worker of the ts group (natively stuck on a duplicate key, failing every few
        // seconds) is known by its PID.
        let ts_pids = logs::ts_pids(&log);
        let slice = &watch.slices[i];
        nodes.push(NodeFigures {
            rows,
            md5: md5.unwrap_or_default(),
            subs_replicating: s.get::<_, i64>(0) as u32,
            subs: s.get::<_, i64>(1) as u32,
            conflicts: conflict_lines(n.engine, major, &log, "public.audit_log"),
            apply_errors_logged: logs::apply_errors(n.engine, slice, &ts_pids),
            apply_workers_exited: watch.exited[i],
            refused_duplicates: logs::refused_duplicates(slice),
            lead_ms: n.one(i, "SELECT max_borrowed_ms::bigint FROM snowflake_stats()")?,
            registered: n.one(i, "SELECT count(*) FROM snowflake_nodes")?,
            clashes: n.one(i, "SELECT count(*) FROM snowflake_check_nodes()")?,
        });
    }
    let nodes: [NodeFigures; 3] = nodes.try_into().expect("three nodes");
    let ids = issued_ids(n)?;
    // Node 1's copy (identical to the others when the "same rows" check passes).
    let r = n.row(
        0,
        "SELECT (SELECT coalesce(array_agg(n || ':' || c ORDER BY n), '{}') FROM
                   (SELECT snowflake_node(id) n, count(*) c FROM audit_log GROUP BY 1) x),
                (SELECT count(*) FROM (SELECT snowflake_node(id) <> lag(snowflake_node(id)) OVER (ORDER BY id) sw
                                       FROM audit_log) y WHERE sw)",
    )?;
    let per_id_node: Vec<String> = r.get(0);
    let node_switches: i64 = r.get(1);
    let ordering = ordering(o, n, &nodes)?;
    Ok(SnowflakeFigures {
        load,
        catchup,
        nodes,
        ids,
        per_id_node,
        node_switches,
        ordering,
    })
}

/// Duplicates: audit_log's primary key hides them (a repeated ID is refused locally, or, from
/// another node, resolved by replication), so they are counted where they can exist: every
/// node's log of the IDs it wrote (`issued_ids`, not replicated), collected on node 1.
fn issued_ids(n: &mut Nodes) -> Result<IssuedIds> {
    let mut sink = n.nodes[0].connect();
    for i in 0..3 {
        let mut reader = n.conns[i]
            .copy_out(&format!(
                "COPY (SELECT {}, id FROM issued_ids) TO STDOUT",
                i + 1
            ))
            .ctx(|| format!("reading issued_ids of node {}", i + 1))?;
        let mut writer = sink
            .copy_in("COPY demo_issued_all (node, id) FROM STDIN")
            .ctx(|| "collecting issued_ids on node 1".into())?;
        io::copy(&mut reader, &mut writer)
            .ctx(|| format!("copying issued_ids of node {}", i + 1))?;
        writer
            .finish()
            .ctx(|| "collecting issued_ids on node 1".into())?;
    }
    let ids_list = n
        .node_ids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let r = n.row(
        0,
        &format!(
            "SELECT count(*), count(DISTINCT id),
                    (SELECT count(*) FROM audit_log a WHERE NOT EXISTS (SELECT FROM demo_issued_all i WHERE i.id = a.id)),
                    (SELECT count(*) FROM audit_log WHERE snowflake_node(id) IN ({ids_list}))
             FROM demo_issued_all"
        ),
    )?;
    let (logged, distinct): (i64, i64) = (r.get(0), r.get(1));
    Ok(IssuedIds {
        logged,
        distinct,
        repeated: logged - distinct,
        missing_from_logs: r.get(2),
        from_node_ids: r.get(3),
    })
}

/// Ordering across nodes. Each change's `changed_at` is read before its ID is drawn, and an
/// ID's millisecond is never behind the clock that drew it nor ahead by more than the node's
/// lead (borrowed milliseconds, `snowflake_stats().max_borrowed_ms`). So for rows a and b of
/// different nodes with id(a) < id(b): changed_at(a) - changed_at(b) <= lead + 1 ms + the time
/// between reading changed_at and drawing b's ID (scheduling; the slack). Walking the rows in
/// ID order, the running maximum of changed_at per node gives, for each row b, the latest
/// change of every other node with a smaller ID.
fn ordering(o: &Options, n: &mut Nodes, nodes: &[NodeFigures; 3]) -> Result<Ordering> {
    let lead_ms = nodes.iter().map(|f| f.lead_ms).max().unwrap_or(0);
    let bound_ms = lead_ms + 1 + i64::from(o.order_slack_ms);
    let mut set: Vec<i32> = n.node_ids.to_vec();
    set.sort();
    set.dedup();
    let run_max: String = set
        .iter()
        .map(|k| {
            format!(", max(changed_at) FILTER (WHERE snowflake_node(id) = {k}) OVER w AS m{k}")
        })
        .collect();
    let other_max = set
        .iter()
        .map(|k| format!("CASE WHEN node <> {k} THEN m{k} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let r = n.row(
        0,
        &format!(
            "WITH s AS (
               SELECT snowflake_node(id) AS node, changed_at,
                      (extract(epoch FROM snowflake_timestamp(id) - date_trunc('milliseconds', changed_at)) * 1000)::bigint AS lag_ms
                      {run_max}
               FROM audit_log
               WINDOW w AS (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
             i AS (SELECT *, extract(epoch FROM greatest({other_max}) - changed_at) * 1000 AS inv_ms FROM s)
             SELECT count(*) FILTER (WHERE inv_ms > {bound_ms}),
                    coalesce(greatest(max(inv_ms), 0), 0)::float8,
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY lag_ms),
                    percentile_disc(0.999) WITHIN GROUP (ORDER BY lag_ms),
                    max(lag_ms)
             FROM i"
        ),
    )?;
    Ok(Ordering {
        lead_ms,
        slack_ms: o.order_slack_ms,
        bound_ms,
        rows_out_of_order: r.get(0),
        largest_gap_ms: r.get(1),
        lag_median_ms: r.get::<_, Option<i64>>(2).unwrap_or(0),
        lag_p999_ms: r.get::<_, Option<i64>>(3).unwrap_or(0),
        lag_max_ms: r.get::<_, Option<i64>>(4).unwrap_or(0),
    })
}

/// The timestamp-ID table's figures: what each node kept, the conflicts and apply errors.
pub(crate) fn timestamp(n: &mut Nodes, load: Load, catchup: Catchup) -> Result<TimestampFigures> {
    let major = n.nodes[0].pg.major;
    let mut nodes = Vec::new();
    for i in 0..3 {
        let r = n.row(
            i,
            "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)) FROM audit_log_ts a",
        )?;
        let log = read_log(&n.nodes[i])?;
        nodes.push(TsNode {
            rows: r.get(0),
            md5: r.get::<_, Option<String>>(1).unwrap_or_default(),
            conflicts: conflict_lines(n.engine, major, &log, "public.audit_log_ts"),
            apply_errors: logs::errors_on(&log, "audit_log_ts"),
        });
    }
    Ok(TimestampFigures {
        load,
        catchup,
        nodes: nodes.try_into().expect("three nodes"),
    })
}
