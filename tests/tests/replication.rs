//! Multi-master on real servers, with the major's engine (pglogical on 15, native logical
//! replication on 16 and later): node-id clash detection through the replicated node
//! registry, a registration that writes nothing when the registry is up to date, and the
//! three-node audit-log job (`scripts/demo.sh`, shortened) with its checks, passing, and
//! failing on injected faults and on a shared node id.

use postgres::Client;
use snowflake_it::{
    conflict_lines, engine, mesh, pg, ports, project_root, wait_for, wait_streaming, Cluster,
    Engine, Node,
};
use std::process::Command;
use std::time::Duration;

/// psql with stderr (WARNINGs) captured: (stdout, stderr).
fn psql_both(c: &Cluster, sql: &str) -> (String, String) {
    let out = Command::new(snowflake_it::pg_bin("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(c.conninfo())
        .args(["-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// A server of the engine of the PostgreSQL under test (pglogical on 15, native on 16+), with
/// snowflake_id created.
fn replicating_node(name: &str, node_id: i32) -> Cluster {
    let mut settings: Vec<String> = engine().settings().iter().map(|s| s.to_string()).collect();
    settings.push(format!("snowflake_id.node_id = {node_id}"));
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let c = Cluster::init(name, &refs);
    c.start();
    c.psql("CREATE EXTENSION snowflake_id");
    c
}

/// Waits until both directions of the registry's mesh stream again (after a restart).
fn wait_replicating(nodes: &[&Node]) {
    wait_streaming(engine(), nodes, "registry", Duration::from_secs(120));
}

fn registry_rows(c: &Cluster) -> Vec<(i32, i64)> {
    let mut client = c.connect();
    client
        .query(
            "SELECT node_id, system_identifier FROM snowflake_nodes ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn sysid(client: &mut Client) -> i64 {
    client
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .unwrap()
        .get(0)
}

#[test]
fn two_servers_with_the_same_node_id_are_reported_until_one_is_renumbered() {
    let a = replicating_node("cluster-clash-a", 5);
    let b = replicating_node("cluster-clash-b", 5);
    mesh(engine(), &[&a, &b], "registry", &["snowflake_nodes"]);
    let (sys_a, sys_b) = (sysid(&mut a.connect()), sysid(&mut b.connect()));
    assert_ne!(sys_a, sys_b, "two initdb runs give two system identifiers");

    // Before the second server registers, there is nothing to report.
    let (rows, warn) = psql_both(&a, "SELECT count(*) FROM snowflake_check_nodes()");
    assert_eq!(rows, "0");
    assert!(!warn.contains("WARNING"), "{warn}");

    b.psql("SELECT snowflake_register_node()");
    // The registry replicates: each server sees both rows.
    let both = {
        let mut v = vec![(5, sys_a), (5, sys_b)];
        v.sort();
        v
    };
    for c in [&a, &b] {
        wait_for("the registry to replicate", Duration::from_secs(60), || {
            (registry_rows(c) == both).then_some(())
        });
    }
    for (c, mine) in [(&a, sys_a), (&b, sys_b)] {
        let (rows, warn) = psql_both(
            c,
            "SELECT node_id || ':' || system_identifier || ':' || port || ':' || is_this_server
             FROM snowflake_check_nodes() ORDER BY system_identifier",
        );
        let mut expected: Vec<String> = [(sys_a, a.port), (sys_b, b.port)]
            .iter()
            .map(|(s, p)| format!("5:{s}:{p}:{}", *s == mine))
            .collect();
        expected.sort_by_key(|l| l.split(':').nth(1).unwrap().parse::<i64>().unwrap());
        assert_eq!(
            rows.lines().collect::<Vec<_>>(),
            expected,
            "clash rows on {}",
            c.name
        );
        assert!(warn.contains("WARNING"), "no WARNING on {}: {warn}", c.name);
        assert!(warn.contains("node id 5"), "{warn}");
        assert!(
            warn.contains(&sys_a.to_string()) && warn.contains(&sys_b.to_string()),
            "{warn}"
        );
        assert!(warn.contains("HINT"), "{warn}");
    }

    // A role that may only read the registry sees the clash too (and registers nothing).
    a.psql("CREATE ROLE auditor LOGIN; GRANT SELECT ON snowflake_nodes TO auditor");
    let (rows, warn) = psql_both(
        &a,
        "SET ROLE auditor; SELECT count(*) FROM snowflake_check_nodes()",
    );
    assert_eq!(rows, "2");
    assert!(warn.contains("node id 5"), "{warn}");

    // The administrator gives b its own id (a restart: a reload cannot change it); b registers
    // again, the registry follows.
    b.psql("ALTER SYSTEM SET snowflake_id.node_id = 6");
    b.stop();
    b.start();
    assert_eq!(b.psql("SHOW snowflake_id.node_id"), "6");
    // Replication reconnects both directions after the restart.
    wait_replicating(&[&a, &b]);
    assert_eq!(b.psql("SELECT snowflake_register_node()"), "6");
    let fixed = {
        let mut v = vec![(5, sys_a), (6, sys_b)];
        v.sort();
        v
    };
    wait_for(
        "the renumbering to replicate",
        Duration::from_secs(60),
        || (registry_rows(&a) == fixed).then_some(()),
    );
    let (rows, warn) = psql_both(&a, "SELECT count(*) FROM snowflake_check_nodes()");
    assert_eq!(rows, "0");
    assert!(!warn.contains("WARNING"), "{warn}");
    for c in [&a, &b] {
        assert!(
            conflict_lines(engine(), pg().major, &c.log(), "public.snowflake_nodes") == 0,
            "registry replication conflicted on {}:\n{}",
            c.name,
            c.log()
        );
    }
}

/// Rows inserted, updated and deleted in `snowflake_nodes` by this transaction so far.
fn registry_writes(c: &mut postgres::Transaction<'_>) -> (i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables WHERE relname = 'snowflake_nodes'",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// The registry's rows with the transaction that wrote each version (xmin): a changed row gets
/// a new one.
fn registry_versions(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT format('%s %s xmin=%s', node_id, port, xmin) FROM snowflake_nodes ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn register_node_writes_nothing_when_the_registry_is_up_to_date() {
    let node = Cluster::init("cluster-register", &["snowflake_id.node_id = 21"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    // Each measured call gets a fresh connection: on PostgreSQL 15 a backend's
    // pg_stat_xact_user_tables also shows counts of its earlier transactions until they are
    // flushed to shared statistics (up to a second later).
    // The first call inserts this server's row: the counters see a write.
    let mut c = node.connect();
    let mut t = c.transaction().unwrap();
    let n: i32 = t
        .query_one("SELECT snowflake_register_node()", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 21);
    assert_eq!(registry_writes(&mut t), (1, 0, 0));
    t.commit().unwrap();
    let before = registry_versions(&mut c);
    assert_eq!(before.len(), 1);
    // Up to date: no row inserted, updated or deleted, the row version unchanged.
    for sql in [
        "SELECT snowflake_register_node()",
        "SELECT count(*)::int FROM snowflake_check_nodes()",
    ] {
        let mut c = node.connect();
        let mut t = c.transaction().unwrap();
        t.query_one(sql, &[]).unwrap();
        assert_eq!(
            registry_writes(&mut t),
            (0, 0, 0),
            "{sql} wrote to the registry"
        );
        t.commit().unwrap();
        assert_eq!(registry_versions(&mut c), before, "{sql} changed a row");
    }
    // A new node id (set in the file, server restarted): the old row goes, the new one comes.
    node.append_conf("snowflake_id.node_id = 22\n");
    node.stop();
    node.start();
    let mut c = node.connect();
    let mut t = c.transaction().unwrap();
    t.query_one("SELECT snowflake_register_node()", &[])
        .unwrap();
    assert_eq!(registry_writes(&mut t), (1, 0, 1));
    t.commit().unwrap();
    let after = registry_versions(&mut c);
    assert_eq!(after.len(), 1);
    assert!(
        after[0].starts_with(&format!("22 {} ", node.port)),
        "{after:?}"
    );
}

/// Runs `scripts/demo.sh` shortened (5 s per load) on the PostgreSQL under test (its engine:
/// pglogical on 15, native on 16+), with the extension already installed and the extra
/// environment `env`; returns (success, stdout). Asserts every server it started is stopped
/// afterwards.
/// Runs the main job with three nodes on three consecutive ports of their own.
fn run_demo(name: &str, node_ids: &str, env: &[(&str, &str)]) -> (bool, String) {
    let root = project_root();
    let port = ports::take(3);
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .arg("--pg-config")
        .arg(&pg().pg_config)
        .env("DURATION", "5")
        .env("DEMO_PORT", port.to_string())
        .env("DEMO_NAME", name)
        .env("DEMO_NO_BUILD", "1")
        .env("NODE_IDS", node_ids)
        .env("CATCHUP_TIMEOUT", "180")
        .envs(env.iter().copied())
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for n in 1..=3 {
        let pidfile = root.join(format!(".run/{name}-node{n}/data/postmaster.pid"));
        assert!(!pidfile.exists(), "{} left running", pidfile.display());
    }
    (out.status.success(), stdout)
}

/// The three counts after the last ':' of the report line containing `label`.
fn counts(stdout: &str, label: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no `{label}`:\n{stdout}"));
    line.rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .map(|s| s.trim().split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// The report line of the check `name` (`[ok]   name: ...` or `[FAIL] name: ...`).
fn check_line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.starts_with("  [")
                && l.get(9..)
                    .is_some_and(|r| r.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no check `{name}` in:\n{stdout}"))
}

/// The number written just before `suffix` in `line` (e.g. "12 written by more than one node").
fn number_before(line: &str, suffix: &str) -> i64 {
    let head = &line[..line
        .find(suffix)
        .unwrap_or_else(|| panic!("no `{suffix}` in `{line}`"))];
    head.rsplit(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap() as i64
}

/// The three numbers after `label` in `line` (`label 1 / 2 / 3`).
fn triple_after(line: &str, label: &str) -> Vec<i64> {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in `{line}`"))
        + label.len()..];
    rest.split('/')
        .take(3)
        .map(|s| s.trim().split([' ', ',']).next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn three_node_audit_log_job_passes_its_checks() {
    let (ok, stdout) = run_demo("cluster-demo", "1 2 3", &[]);
    assert!(ok, "demo.sh failed:\n{stdout}");
    assert!(stdout.contains("RESULT: all checks passed"), "{stdout}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    for check in [
        "[ok]   rate:",
        "[ok]   subscriptions: replicating on each node: 2/2 2/2 2/2",
        "[ok]   same rows everywhere:",
        "[ok]   no row lost:",
        "[ok]   0 duplicate IDs:",
        "[ok]   0 replication conflicts: conflicts logged for audit_log (",
        "[ok]   0 apply errors:",
        "[ok]   IDs ordered by time across nodes: 0 rows",
        "[ok]   every INSERT succeeded: pgbench exit status 0 / 0 / 0, failed transactions 0 / 0 / 0,",
        "[ok]   scenario: both changes kept:",
        "[ok]   node registry:",
    ] {
        assert!(stdout.contains(check), "missing `{check}` in:\n{stdout}");
    }
    assert_eq!(
        counts(
            &stdout,
            "0 replication conflicts: conflicts logged for audit_log"
        ),
        [0, 0, 0]
    );
    let header = stdout
        .lines()
        .find(|l| l.starts_with("nodes: 3 x PostgreSQL "))
        .unwrap_or_else(|| panic!("no header in:\n{stdout}"));
    assert!(
        header.contains(&format!("PostgreSQL {} (", pg().major))
            && header.contains(match engine() {
                Engine::Pglogical => "engine: pglogical",
                Engine::Native => "engine: native logical replication",
            }),
        "{header}"
    );
    // The conflict count is real: the timestamp-string IDs of the same run did conflict
    // (pglogical overwrote local rows; natively an apply worker stopped on each, and its
    // subscription stayed stuck while the audit_log mesh went on).
    let ts = counts(&stdout, "replication conflicts logged (");
    assert_eq!(ts.len(), 3);
    assert!(
        ts.iter().sum::<u64>() > 0,
        "the broken approach produced no conflict: {ts:?}"
    );
    let stuck = stdout
        .lines()
        .find(|l| l.starts_with("  ts subscriptions stuck"))
        .unwrap_or_else(|| panic!("no stuck line in:\n{stdout}"));
    match engine() {
        Engine::Pglogical => assert!(stuck.contains(": 0 / 0 / 0 of 2"), "{stuck}"),
        Engine::Native => assert!(stuck.contains("stuck for good"), "{stuck}"),
    }
    remove_demo_dirs("cluster-demo");
}

/// Faults injected on node 3 before the load (`DEMO_FAULT_SQL`), each breaking one property:
/// the first local INSERT fails (a trigger; pgbench's client stops), the first change node 3
/// applies from another node fails (a replica trigger, fired by pglogical's and the native
/// apply worker alike; the worker exits and is restarted, and then applies it), and the 1000th
/// row written on node 3 gets an ID an hour ahead (as a node whose IDs ran far ahead of its
/// clock would). The checks of those properties fail; those of the untouched ones pass. The
/// trigger functions name their sequences with the schema: the native apply worker runs with
/// an empty search_path.
#[test]
fn three_node_job_fails_the_insert_apply_ordering_and_rate_checks_on_injected_faults() {
    const FAULTS: &str = "
        CREATE SEQUENCE fault_local;
        CREATE FUNCTION fault_local() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          CASE nextval('public.fault_local')
            WHEN 1 THEN RAISE EXCEPTION 'injected INSERT failure';
            WHEN 1000 THEN NEW.id := NEW.id + (3600000::bigint << 22);
            ELSE NULL;
          END CASE;
          RETURN NEW;
        END $$;
        CREATE TRIGGER fault_local BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fault_local();
        CREATE SEQUENCE fault_apply;
        CREATE FUNCTION fault_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF nextval('public.fault_apply') = 1 THEN RAISE EXCEPTION 'injected apply error'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER fault_apply BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fault_apply();
        ALTER TABLE audit_log ENABLE REPLICA TRIGGER fault_apply;";
    let (ok, stdout) = run_demo(
        "cluster-demo-faults",
        "1 2 3",
        &[("DEMO_FAULT_SQL", FAULTS), ("MIN_RATE", "100000000")],
    );
    assert!(!ok, "demo.sh passed with injected faults:\n{stdout}");
    assert!(stdout.contains("RESULT: FAIL"), "{stdout}");

    let insert = check_line(&stdout, "every INSERT succeeded");
    assert!(insert.starts_with("  [FAIL]"), "{insert}");
    assert_eq!(
        triple_after(insert, "pgbench exit status")[2],
        2,
        "{insert}"
    );
    assert_eq!(
        triple_after(insert, "clients stopped by an error:"),
        [0, 0, 1],
        "{insert}"
    );

    let apply = check_line(&stdout, "0 apply errors");
    assert!(apply.starts_with("  [FAIL]"), "{apply}");
    let exited = triple_after(apply, "apply workers that exited:");
    assert!(
        exited[2] >= 1 && exited[0] == 0 && exited[1] == 0,
        "{apply}"
    );
    assert!(
        triple_after(apply, "apply worker ERRORs in the log:")[2] >= 1,
        "{apply}"
    );

    let order = check_line(&stdout, "IDs ordered by time across nodes");
    assert!(order.starts_with("  [FAIL]"), "{order}");
    assert!(
        number_before(order, " rows preceded in ID order") >= 1,
        "{order}"
    );
    // The row an hour ahead precedes, in ID order, every later change of the other nodes.
    assert!(
        number_before(&format!("{order}\n"), " ms\n") > 1000,
        "{order}"
    );

    let rate = check_line(&stdout, "rate");
    assert!(rate.starts_with("  [FAIL]"), "{rate}");

    // The faults broke nothing else: no ID repeats, no row is lost, the nodes agree.
    for name in [
        "0 duplicate IDs",
        "no row lost",
        "same rows everywhere",
        "subscriptions",
        "node registry",
    ] {
        let line = check_line(&stdout, name);
        assert!(line.starts_with("  [ok]"), "{line}");
    }
    remove_demo_dirs("cluster-demo-faults");
}

/// Data of a passed run is of no further use (a failed run keeps it for its logs).
fn remove_demo_dirs(name: &str) {
    for n in 1..=3 {
        let _ = std::fs::remove_dir_all(project_root().join(format!(".run/{name}-node{n}")));
    }
}

#[test]
fn three_node_job_fails_its_checks_when_two_nodes_share_a_node_id() {
    let (ok, stdout) = run_demo("cluster-demo-clash", "1 1 3", &[]);
    assert!(!ok, "demo.sh passed with two nodes on node id 1:\n{stdout}");
    assert!(stdout.contains("RESULT: FAIL"), "{stdout}");
    for check in [
        "[FAIL] 0 replication conflicts:",
        "[FAIL] no row lost:",
        "[FAIL] node registry:",
    ] {
        assert!(stdout.contains(check), "missing `{check}` in:\n{stdout}");
    }
    // pglogical logs the conflicts it resolves; natively (18) each is an apply worker ERROR,
    // and the subscriptions between nodes 1 and 2 stay stuck on it.
    assert!(
        counts(
            &stdout,
            "0 replication conflicts: conflicts logged for audit_log"
        )
        .iter()
        .sum::<u64>()
            > 0
    );
    // Nodes 1 and 2 issue the same IDs: the logs of issued IDs show them, although each node's
    // primary key kept one row per ID.
    let dups = check_line(&stdout, "0 duplicate IDs");
    assert!(dups.starts_with("  [FAIL]"), "{dups}");
    assert!(
        number_before(dups, " written by more than one node") > 0,
        "{dups}"
    );
    remove_demo_dirs("cluster-demo-clash");
}
