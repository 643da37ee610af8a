//! The checks: the report's figures to verdicts on the Snowflake table. Pure: the figures are
//! gathered before ([`super::figures`]), so each rule is tested here without a server.

use super::report::{conflicts_label, per_node};
use super::{Check, CheckKind, Report};

/// The verdicts on `r`'s figures, in the order they are printed.
pub fn evaluate(r: &Report) -> Vec<Check> {
    let (s, sf) = (&r.setup, &r.snowflake);
    let n = &sf.nodes;
    let runs = &sf.load.runs;
    let expected = r.expected_rows();
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let mut checks = Vec::new();
    let mut check = |kind, ok, detail: String| checks.push(Check { kind, ok, detail });

    check(
        CheckKind::Inserts,
        runs.iter()
            .all(|r| r.status == 0 && r.failed == Some(0) && r.clients_stopped == 0),
        format!(
            "pgbench exit status {}, failed transactions {}, clients stopped by an error: {}",
            per_node(runs.iter().map(|r| r.status)),
            per_node(runs.iter().map(|r| opt(r.failed))),
            per_node(runs.iter().map(|r| r.clients_stopped))
        ),
    );
    let rate = sf.load.rate();
    let rate_ok = rate >= s.min_rate;
    check(
        CheckKind::Rate,
        rate_ok,
        format!(
            "{rate} rows/s {} {}",
            if rate_ok { ">=" } else { "<" },
            s.min_rate
        ),
    );
    check(
        CheckKind::Subscriptions,
        n.iter().all(|f| f.subs == 2 && f.subs_replicating == 2),
        format!(
            "replicating on each node: {}",
            n.iter()
                .map(|f| format!("{}/{}", f.subs_replicating, f.subs))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    check(
        CheckKind::SameRows,
        n.iter().all(|f| f.rows == n[0].rows && f.md5 == n[0].md5),
        format!(
            "rows {}, md5 {}",
            per_node(n.iter().map(|f| f.rows)),
            per_node(n.iter().map(|f| f.md5.get(..8).unwrap_or(&f.md5)))
        ),
    );
    check(
        CheckKind::NoRowLost,
        n[0].rows == expected,
        format!(
            "{} rows on node 1, expected {expected} ({} from the load + {} from the scenario)",
            n[0].rows,
            sf.load.rows(),
            r.scenario.rows_written
        ),
    );
    let ids = &sf.ids;
    let refused: usize = n.iter().map(|f| f.refused_duplicates).sum();
    check(
        CheckKind::NoDuplicates,
        ids.repeated == 0
            && refused == 0
            && ids.missing_from_logs == 0
            && ids.logged == expected
            && ids.from_node_ids == n[0].rows,
        format!(
            "{} IDs written on the 3 nodes (their issued_ids logs; expected {expected}), {} distinct: \
             {} written by more than one node, {refused} refused as duplicates by a node's primary key; \
             held IDs missing from the logs: {}; held IDs from node ids {}: {} of {}",
            ids.logged,
            ids.distinct,
            ids.repeated,
            ids.missing_from_logs,
            super::nodes::ids_text(&s.node_ids),
            ids.from_node_ids,
            n[0].rows
        ),
    );
    check(
        CheckKind::NoConflicts,
        n.iter().all(|f| f.conflicts == 0),
        format!(
            "conflicts logged for audit_log ({}): {}",
            conflicts_label(s),
            per_node(n.iter().map(|f| f.conflicts))
        ),
    );
    check(
        CheckKind::NoApplyErrors,
        n.iter()
            .all(|f| f.apply_errors_logged == 0 && f.apply_workers_exited == 0),
        format!(
            "during load 1, apply workers that exited: {}, apply worker ERRORs in the log: {}",
            per_node(n.iter().map(|f| f.apply_workers_exited)),
            per_node(n.iter().map(|f| f.apply_errors_logged))
        ),
    );
    let o = &sf.ordering;
    check(
        CheckKind::Ordered,
        o.rows_out_of_order == 0,
        format!(
            "{} rows preceded in ID order by a change of another node more than {} ms later \
             (lead {} ms + 1 ms + {} ms); largest such gap: {:.3} ms",
            o.rows_out_of_order, o.bound_ms, o.lead_ms, o.slack_ms, o.largest_gap_ms
        ),
    );
    let sc = &r.scenario;
    let distinct = match &sc.changes {
        [Some(a), Some(b)] => a.snowflake_id != b.snowflake_id,
        _ => false,
    };
    check(
        CheckKind::Scenario,
        sc.same_ms && distinct && sc.nodes.iter().all(|h| h.audit_rows == 2),
        format!(
            "same millisecond on two nodes: {}, 2 distinct IDs: {}, both rows on every node: {}",
            yes(sc.same_ms),
            yes(distinct),
            per_node(sc.nodes.iter().map(|h| h.audit_rows))
        ),
    );
    check(
        CheckKind::Registry,
        n.iter().all(|f| f.registered == 3 && f.clashes == 0),
        format!(
            "nodes registered on each node: {}, snowflake_check_nodes() clashes: {}",
            per_node(n.iter().map(|f| f.registered)),
            per_node(n.iter().map(|f| f.clashes))
        ),
    );
    checks
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::*;
    use super::*;
    use crate::mesh::Engine;
    use std::time::Duration;

    fn run(tx: u64) -> PgbenchRun {
        PgbenchRun {
            status: 0,
            transactions: Some(tx),
            failed: Some(0),
            clients_stopped: 0,
        }
    }

    fn load() -> Load {
        Load {
            rows_per_insert: 50,
            runs: [run(100), run(100), run(100)],
            elapsed: Duration::from_secs(1),
        }
    }

    fn node() -> NodeFigures {
        NodeFigures {
            rows: 15_002,
            md5: "0123456789abcdef".into(),
            subs_replicating: 2,
            subs: 2,
            conflicts: 0,
            apply_errors_logged: 0,
            apply_workers_exited: 0,
            refused_duplicates: 0,
            lead_ms: 3,
            registered: 3,
            clashes: 0,
        }
    }

    /// A report of a run in which everything held: 3 x 100 INSERTs of 50 rows, 2 changes.
    fn good() -> Report {
        let held = || ScenarioNode {
            audit_rows: 2,
            ts_rows: 1,
            ts_kept: vec!["via-node2@example.com".into()],
        };
        let change = |id| {
            Some(Change {
                snowflake_id: id,
                timestamp_id: 20261205080000123,
                changed_at: "2026-12-05 08:00:00.123+00".into(),
            })
        };
        let catchup = Catchup {
            elapsed: Duration::from_secs(2),
            stuck: [0; 3],
        };
        Report {
            setup: Setup {
                pg_major: 15,
                server_version: "15.14".into(),
                engine: Engine::Pglogical,
                first_port: 45432,
                node_ids: [1, 2, 3],
                clients: 4,
                duration_s: 1,
                rows_per_insert: 50,
                min_rate: 10_000,
                order_slack_ms: 100,
            },
            scenario: Scenario {
                user: 4242,
                attempts: 1,
                same_ms: true,
                rows_written: 2,
                failure: None,
                changes: [change(1 << 22 | 1 << 12), change(1 << 22 | 2 << 12)],
                nodes: [held(), held(), held()],
            },
            snowflake: SnowflakeFigures {
                load: load(),
                catchup: catchup.clone(),
                nodes: [node(), node(), node()],
                ids: IssuedIds {
                    logged: 15_002,
                    distinct: 15_002,
                    repeated: 0,
                    missing_from_logs: 0,
                    from_node_ids: 15_002,
                },
                per_id_node: vec!["1:5001".into(), "2:5001".into(), "3:5000".into()],
                node_switches: 900,
                ordering: Ordering {
                    lead_ms: 3,
                    slack_ms: 100,
                    bound_ms: 104,
                    rows_out_of_order: 0,
                    largest_gap_ms: 0.5,
                    lag_median_ms: 0,
                    lag_p999_ms: 1,
                    lag_max_ms: 2,
                },
            },
            timestamp: TimestampFigures {
                load: load(),
                catchup,
                nodes: [0, 1, 2].map(|i| TsNode {
                    rows: 1000 + i,
                    md5: format!("{i}"),
                    conflicts: 10,
                    apply_errors: 0,
                }),
            },
            checks: Vec::new(),
        }
    }

    /// A change to a good report that breaks one property.
    type Break = fn(&mut Report);

    fn failing(r: &Report) -> Vec<CheckKind> {
        evaluate(r)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.kind)
            .collect()
    }

    #[test]
    fn a_run_where_everything_held_passes_every_check() {
        let mut r = good();
        assert_eq!(failing(&r), []);
        r.checks = evaluate(&r);
        assert!(r.passed());
        let text = r.to_string();
        assert!(
            text.contains("  [ok]   0 duplicate IDs: 15002 IDs written"),
            "{text}"
        );
        assert!(text.ends_with("RESULT: all checks passed\n"), "{text}");
    }

    #[test]
    fn each_broken_figure_fails_its_own_check() {
        let cases: Vec<(CheckKind, Break)> = vec![
            (CheckKind::Inserts, |r| {
                r.snowflake.load.runs[2].clients_stopped = 1
            }),
            (CheckKind::Inserts, |r| {
                r.snowflake.load.runs[0].failed = None
            }),
            (CheckKind::Rate, |r| r.setup.min_rate = 15_001),
            (CheckKind::Subscriptions, |r| {
                r.snowflake.nodes[1].subs_replicating = 1
            }),
            (CheckKind::SameRows, |r| {
                r.snowflake.nodes[2].md5 = "x".into()
            }),
            (CheckKind::NoDuplicates, |r| r.snowflake.ids.repeated = 1),
            (CheckKind::NoDuplicates, |r| {
                r.snowflake.nodes[0].refused_duplicates = 1
            }),
            (CheckKind::NoDuplicates, |r| {
                r.snowflake.ids.missing_from_logs = 1
            }),
            (CheckKind::NoDuplicates, |r| {
                r.snowflake.ids.from_node_ids = 15_001
            }),
            (CheckKind::NoConflicts, |r| {
                r.snowflake.nodes[1].conflicts = 1
            }),
            (CheckKind::NoApplyErrors, |r| {
                r.snowflake.nodes[2].apply_workers_exited = 1
            }),
            (CheckKind::NoApplyErrors, |r| {
                r.snowflake.nodes[2].apply_errors_logged = 1
            }),
            (CheckKind::Ordered, |r| {
                r.snowflake.ordering.rows_out_of_order = 1
            }),
            (CheckKind::Scenario, |r| r.scenario.same_ms = false),
            (CheckKind::Scenario, |r| r.scenario.nodes[1].audit_rows = 1),
            (CheckKind::Scenario, |r| r.scenario.changes[1] = None),
            (CheckKind::Registry, |r| r.snowflake.nodes[0].clashes = 2),
        ];
        for (kind, breaks) in cases {
            let mut r = good();
            breaks(&mut r);
            assert_eq!(failing(&r), [kind]);
        }
        // One row fewer on every node: lost, and the logs hold more IDs than the table.
        let mut r = good();
        for n in &mut r.snowflake.nodes {
            n.rows -= 1;
        }
        assert_eq!(failing(&r), [CheckKind::NoRowLost, CheckKind::NoDuplicates]);
    }
}
