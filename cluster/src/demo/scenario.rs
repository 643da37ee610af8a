//! The motivating scenario: user 4242 changes the e-mail address at the same millisecond
//! through nodes 1 and 2. Both sessions spin until one instant (`demo_change_at` in
//! schema.sql); the attempt is repeated (with the next user) until both changes fall in one
//! millisecond. A change that fails (two nodes on one node id issued the same ID, and the other
//! node's row arrived first) ends the attempts; the scenario check then fails.

use super::nodes::Nodes;
use super::{say, Change, Context, Result, Scenario, ScenarioNode};
use std::thread;

const ATTEMPTS: u32 = 20;

/// The attempts made, before the nodes are asked what they hold.
pub(crate) struct Attempts {
    user: i32,
    attempts: u32,
    same_ms: bool,
    rows_written: u64,
    failure: Option<String>,
    changes: [Option<Change>; 2],
}

pub(crate) fn run(n: &mut Nodes) -> Result<Attempts> {
    say("the motivating scenario: user 4242 changes the e-mail at the same millisecond through nodes 1 and 2");
    let mut a = Attempts {
        user: 0,
        attempts: 0,
        same_ms: false,
        rows_written: 0,
        failure: None,
        changes: [None, None],
    };
    for attempt in 1..=ATTEMPTS {
        a.attempts = attempt;
        a.user = 4241 + attempt as i32;
        let at: String = n.one(
            0,
            "SELECT date_trunc('milliseconds', clock_timestamp() + interval '400 ms')::text",
        )?;
        let user = a.user;
        let (c1, c2) = n.conns.split_at_mut(1);
        let results = thread::scope(|s| {
            let h: Vec<_> = [(1, &mut c1[0]), (2, &mut c2[0])]
                .into_iter()
                .map(|(node, c)| {
                    let at = at.clone();
                    s.spawn(move || {
                        c.query_one(
                            "SELECT snowflake_id, timestamp_id, changed_at::text
                             FROM demo_change_at($1, $2, $3::text::timestamptz)",
                            &[&user, &format!("via-node{node}@example.com"), &at],
                        )
                        .map(|r| Change {
                            snowflake_id: r.get(0),
                            timestamp_id: r.get(1),
                            changed_at: r.get(2),
                        })
                    })
                })
                .collect();
            h.into_iter()
                .map(|h| h.join().expect("scenario thread"))
                .collect::<Vec<_>>()
        });
        let mut failed = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(c) => {
                    a.rows_written += 1;
                    a.changes[i] = Some(c);
                }
                Err(e) => {
                    a.changes[i] = None;
                    failed = Some(format!("node {}: {e}", i + 1));
                }
            }
        }
        if let Some(f) = failed {
            eprintln!("   attempt {attempt}: a change failed: {f}");
            a.failure = Some(f);
            break;
        }
        let (x, y) = (
            a.changes[0].as_ref().unwrap(),
            a.changes[1].as_ref().unwrap(),
        );
        if x.timestamp_id == y.timestamp_id {
            a.same_ms = true;
            break;
        }
        eprintln!(
            "   attempt {attempt}: not the same millisecond ({} / {}), again",
            x.changed_at, y.changed_at
        );
    }
    Ok(a)
}

impl Attempts {
    /// What each node holds of the last attempt's user, once replication caught up.
    pub fn held(self, n: &mut Nodes) -> Result<Scenario> {
        let mut nodes = Vec::new();
        for i in 0..3 {
            let r = n.conns[i]
                .query_one(
                    "SELECT (SELECT count(*) FROM audit_log WHERE user_id = $1),
                            (SELECT count(*) FROM audit_log_ts WHERE user_id = $1),
                            (SELECT coalesce(array_agg(new_value ORDER BY new_value), '{}')
                             FROM audit_log_ts WHERE user_id = $1)",
                    &[&self.user],
                )
                .ctx(|| format!("the scenario's rows on node {}", i + 1))?;
            nodes.push(ScenarioNode {
                audit_rows: r.get(0),
                ts_rows: r.get(1),
                ts_kept: r.get(2),
            });
        }
        Ok(Scenario {
            user: self.user,
            attempts: self.attempts,
            same_ms: self.same_ms,
            rows_written: self.rows_written,
            failure: self.failure,
            changes: self.changes,
            nodes: nodes.try_into().expect("3 nodes"),
        })
    }
}
