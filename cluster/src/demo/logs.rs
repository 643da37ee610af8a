//! What the server logs say. The demo's nodes log with the prefix `'%m [%p] %b %e: '` (time,
//! PID, backend type, SQLSTATE), so every line of a message, its CONTEXT included, tells which
//! process wrote it and what kind of process that is.

use crate::mesh::Engine;
use std::collections::HashSet;

/// One prefixed log line: `2026-01-01 00:00:00.000 UTC [123] client backend 23505: ERROR:  ...`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub pid: &'a str,
    pub backend: &'a str,
    pub sqlstate: &'a str,
    /// `ERROR`, `LOG`, `CONTEXT`, `DETAIL`, ...
    pub level: &'a str,
    pub text: &'a str,
}

/// `None` for a line without the prefix (a message's continuation lines).
pub(crate) fn parse(line: &str) -> Option<Line<'_>> {
    let open = line.find(" [")?;
    let rest = &line[open + 2..];
    let close = rest.find("] ")?;
    let pid = &rest[..close];
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = &rest[close + 2..];
    let (head, tail) = rest.split_once(": ")?;
    let (backend, sqlstate) = head.rsplit_once(' ')?;
    if sqlstate.len() != 5 {
        return None;
    }
    let (level, text) = tail.split_once(":  ")?;
    Some(Line {
        pid,
        backend,
        sqlstate,
        level,
        text,
    })
}

fn is_error(level: &str) -> bool {
    matches!(level, "ERROR" | "FATAL" | "PANIC")
}

/// Whether a backend type is a replication apply worker of the engine.
fn is_apply_worker(engine: Engine, backend: &str) -> bool {
    match engine {
        Engine::Pglogical => backend.starts_with("pglogical apply"),
        Engine::Native => matches!(
            backend,
            "logical replication apply worker" | "logical replication parallel worker"
        ),
    }
}

/// Whether a message names relation `public.<table>` (pglogical writes `relation public.t`,
/// PostgreSQL `relation "public.t"`).
fn names_relation(text: &str, table: &str) -> bool {
    [
        format!("relation public.{table}"),
        format!("relation \"public.{table}"),
    ]
    .iter()
    .any(|needle| {
        text.match_indices(needle.as_str())
            .any(|(at, m)| matches!(text.as_bytes().get(at + m.len()), Some(b' ' | b'"') | None))
    })
}

/// PIDs of processes that worked for the `ts` group: they logged a line naming
/// `audit_log_ts` or a `ts` subscription. Natively, a `ts` apply worker stuck on a duplicate
/// key fails every few seconds; its ERRORs are not the audit group's.
pub(crate) fn ts_pids(log: &str) -> HashSet<&str> {
    log.lines()
        .filter_map(parse)
        .filter(|l| names_relation(l.text, "audit_log_ts") || l.text.contains("subscription \"ts_"))
        .map(|l| l.pid)
        .collect()
}

/// ERRORs (and worse) of apply workers other than `exclude`'s.
pub(crate) fn apply_errors(engine: Engine, log: &str, exclude: &HashSet<&str>) -> usize {
    log.lines()
        .filter_map(parse)
        .filter(|l| {
            is_apply_worker(engine, l.backend) && is_error(l.level) && !exclude.contains(l.pid)
        })
        .count()
}

/// INSERTs a node's primary key refused as duplicates: ERRORs with SQLSTATE 23505 of client
/// backends.
pub(crate) fn refused_duplicates(log: &str) -> usize {
    log.lines()
        .filter_map(parse)
        .filter(|l| l.backend == "client backend" && l.sqlstate == "23505" && l.level == "ERROR")
        .count()
}

/// ERRORs whose CONTEXT names `public.<table>` (an apply worker failing on a row of it).
pub(crate) fn errors_on(log: &str, table: &str) -> usize {
    let mut in_error: HashSet<&str> = HashSet::new();
    let mut count = 0;
    for l in log.lines().filter_map(parse) {
        match l.level {
            "ERROR" => {
                in_error.insert(l.pid);
            }
            "CONTEXT" => {
                if in_error.remove(l.pid) && names_relation(l.text, table) {
                    count += 1;
                }
            }
            "DETAIL" | "HINT" | "STATEMENT" => {}
            _ => {
                in_error.remove(l.pid);
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-05 08:00:00.001 UTC [101] client backend 23505: ERROR:  duplicate key value violates unique constraint \"audit_log_pkey\"
2026-12-05 08:00:00.001 UTC [101] client backend 23505: DETAIL:  Key (id)=(5) already exists.
2026-12-05 08:00:00.002 UTC [202] logical replication apply worker 23505: ERROR:  conflict detected on relation \"public.audit_log_ts\": conflict=insert_exists
2026-12-05 08:00:00.002 UTC [202] logical replication apply worker 23505: DETAIL:  Key already exists in unique index \"audit_log_ts_pkey\".
2026-12-05 08:00:00.002 UTC [202] logical replication apply worker 23505: CONTEXT:  processing remote data for replication origin \"pg_16390\" during message type \"INSERT\" for replication target relation \"public.audit_log_ts\" in transaction 800
2026-12-05 08:00:00.003 UTC [303] logical replication apply worker P0001: ERROR:  injected apply error
2026-12-05 08:00:00.003 UTC [303] logical replication apply worker P0001: CONTEXT:  PL/pgSQL function fault_apply() line 3 at RAISE
\tprocessing remote data for replication origin \"pg_16389\" during message type \"INSERT\" for replication target relation \"public.audit_log\" in transaction 801
2026-12-05 08:00:00.004 UTC [404] pglogical apply 16384:1234 00000: LOG:  CONFLICT: remote INSERT on relation public.audit_log_ts (local index audit_log_ts_pkey). Resolution: apply_remote.
2026-12-05 08:00:00.005 UTC [505] postmaster 00000: LOG:  background worker \"logical replication apply worker\" (PID 303) exited with exit code 1
";

    #[test]
    fn a_prefixed_line_is_split_into_its_fields() {
        assert_eq!(
            parse(LOG.lines().next().unwrap()),
            Some(Line {
                pid: "101",
                backend: "client backend",
                sqlstate: "23505",
                level: "ERROR",
                text: "duplicate key value violates unique constraint \"audit_log_pkey\"",
            })
        );
        assert_eq!(parse("\tprocessing remote data for ..."), None);
    }

    #[test]
    fn apply_errors_are_counted_per_engine_without_the_ts_group() {
        let ts = ts_pids(LOG);
        assert_eq!(ts, HashSet::from(["202", "404"]));
        assert_eq!(apply_errors(Engine::Native, LOG, &ts), 1);
        assert_eq!(apply_errors(Engine::Native, LOG, &HashSet::new()), 2);
        assert_eq!(apply_errors(Engine::Pglogical, LOG, &HashSet::new()), 0);
        assert_eq!(refused_duplicates(LOG), 1);
        assert_eq!(errors_on(LOG, "audit_log_ts"), 1);
        assert_eq!(errors_on(LOG, "audit_log"), 0);
    }

    #[test]
    fn relation_names_match_whole_names_only() {
        assert!(names_relation(
            "on relation public.audit_log (local",
            "audit_log"
        ));
        assert!(names_relation(
            "target relation \"public.audit_log\" in",
            "audit_log"
        ));
        assert!(!names_relation(
            "relation \"public.audit_log_ts\"",
            "audit_log"
        ));
    }
}
