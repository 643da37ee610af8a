//! Multi-master on real servers, with the major's engine (pglogical on 15, native logical
//! replication on 16 and later): node-id clash detection through the replicated node
//! registry, a registration that writes nothing when the registry is up to date, and the
//! three-node audit-log job (`snowflake_cluster::demo`, shortened) with its checks, passing,
//! and failing on injected faults and on a shared node id; `scripts/demo.sh` itself, run to the
//! end and stopped by SIGTERM.

use postgres::Client;
use snowflake_cluster::demo::{self, CheckKind, Report};
use snowflake_it::{
    clusters_root, conflict_lines, engine, mesh, pg, ports, project_root, wait_for, wait_streaming,
    Cluster, Engine, Node,
};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
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

/// The main job's options for a test: shortened (5 s per load), three ports of its own, the
/// nodes under the tests' directory.
fn demo_options(name: &str, node_ids: [i32; 3]) -> demo::Options {
    demo::Options {
        name: name.into(),
        port: ports::take(3),
        duration_s: 5,
        catchup_timeout: Duration::from_secs(180),
        node_ids,
        ..demo::Options::new(pg().clone(), clusters_root())
    }
}

/// Runs the main job on the PostgreSQL under test (its engine: pglogical on 15, native on
/// 16+) and returns its report, printed for the test's log. Asserts every server it started
/// is stopped afterwards.
fn run_demo(o: &demo::Options) -> Report {
    let result = demo::run(o);
    assert_stopped(&o.dir, &o.name);
    let report = result.unwrap_or_else(|e| panic!("the demo gave no report: {e}"));
    println!("{report}");
    report
}

fn assert_stopped(dir: &Path, name: &str) {
    for n in 1..=3 {
        let pidfile = dir.join(format!("{name}-node{n}/data/postmaster.pid"));
        assert!(!pidfile.exists(), "{} left running", pidfile.display());
    }
}

/// Data of a passed run is of no further use (a failed run keeps it for its logs).
fn remove_demo_dirs(dir: &Path, name: &str) {
    for n in 1..=3 {
        let _ = std::fs::remove_dir_all(dir.join(format!("{name}-node{n}")));
    }
}

/// The verdicts that failed.
fn failed(r: &Report) -> Vec<CheckKind> {
    r.checks.iter().filter(|c| !c.ok).map(|c| c.kind).collect()
}

#[test]
fn three_node_audit_log_job_passes_its_checks() {
    let o = demo_options("cluster-demo", [1, 2, 3]);
    let r = run_demo(&o);
    assert_eq!(failed(&r), [], "{r}");
    assert!(r.passed());
    assert_eq!(r.checks.len(), 11, "{r}");
    // The servers were the PostgreSQL under test, replicating with its engine.
    assert!(
        r.setup
            .server_version
            .starts_with(&format!("{}.", pg().major)),
        "{}",
        r.setup.server_version
    );
    assert_eq!(r.setup.engine, engine());
    let sf = &r.snowflake;
    assert!(sf.load.rows() > 0, "{r}");
    for (i, n) in sf.nodes.iter().enumerate() {
        assert_eq!((n.subs_replicating, n.subs), (2, 2), "node {}", i + 1);
        assert_eq!(n.conflicts, 0, "node {}", i + 1);
        assert_eq!(n.rows, r.expected_rows(), "node {}", i + 1);
    }
    for run in &sf.load.runs {
        assert_eq!(
            (run.status, run.failed, run.clients_stopped),
            (0, Some(0), 0)
        );
    }
    assert_eq!(sf.ids.repeated, 0);
    assert_eq!(sf.ordering.rows_out_of_order, 0);
    // Every node's IDs are in the table, under their own node ids.
    assert_eq!(sf.per_id_node.len(), 3, "{:?}", sf.per_id_node);
    assert_eq!(r.scenario.nodes.each_ref().map(|n| n.audit_rows), [2, 2, 2]);
    // The conflict count is real: the timestamp-string IDs of the same run did conflict
    // (pglogical overwrote local rows; natively an apply worker stopped on each, and its
    // subscription stayed stuck while the audit_log mesh went on).
    let ts = &r.timestamp;
    assert!(
        ts.nodes.iter().map(|n| n.conflicts).sum::<usize>() > 0,
        "the broken approach produced no conflict:\n{r}"
    );
    assert!(ts.nodes[0].rows < ts.load.rows() as i64, "{r}");
    match engine() {
        Engine::Pglogical => assert_eq!(ts.catchup.stuck, [0, 0, 0], "{r}"),
        Engine::Native => assert!(ts.catchup.stuck.iter().any(|&s| s > 0), "{r}"),
    }
    // What the user reads says the same.
    let text = r.to_string();
    assert!(text.contains("\nRESULT: all checks passed\n"), "{text}");
    assert!(!text.contains("[FAIL]"), "{text}");
    remove_demo_dirs(&o.dir, &o.name);
}

/// Faults injected on node 3 before the load (`fault_sql`), each breaking one property: the
/// first local INSERT fails (a trigger; pgbench's client stops), the first change node 3
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
    let o = demo::Options {
        fault_sql: Some(FAULTS.into()),
        min_rate: 100_000_000,
        ..demo_options("cluster-demo-faults", [1, 2, 3])
    };
    let r = run_demo(&o);
    assert!(!r.passed(), "passed with injected faults:\n{r}");
    let sf = &r.snowflake;
    // The failed INSERT stopped a client of node 3's pgbench, and only there.
    assert_eq!(sf.load.runs.each_ref().map(|run| run.status)[2], 2, "{r}");
    assert_eq!(
        sf.load.runs.each_ref().map(|run| run.clients_stopped),
        [0, 0, 1],
        "{r}"
    );
    // The failed apply ended an apply worker of node 3, and only there, and was logged.
    let exited = sf.nodes.each_ref().map(|n| n.apply_workers_exited);
    assert!(exited[2] >= 1 && exited[0] == 0 && exited[1] == 0, "{r}");
    assert!(sf.nodes[2].apply_errors_logged >= 1, "{r}");
    // The row an hour ahead precedes, in ID order, every later change of the other nodes.
    assert!(sf.ordering.rows_out_of_order >= 1, "{r}");
    assert!(sf.ordering.largest_gap_ms > 1000.0, "{r}");
    // Exactly those checks fail: no ID repeats, no row is lost, the nodes agree.
    assert_eq!(
        failed(&r),
        [
            CheckKind::Inserts,
            CheckKind::Rate,
            CheckKind::NoApplyErrors,
            CheckKind::Ordered
        ],
        "{r}"
    );
    assert!(r.to_string().contains("\nRESULT: FAIL\n"));
    remove_demo_dirs(&o.dir, &o.name);
}

#[test]
fn three_node_job_fails_its_checks_when_two_nodes_share_a_node_id() {
    let o = demo_options("cluster-demo-clash", [1, 1, 3]);
    let r = run_demo(&o);
    assert!(!r.passed(), "passed with two nodes on node id 1:\n{r}");
    let failing = failed(&r);
    for kind in [
        CheckKind::NoConflicts,
        CheckKind::NoRowLost,
        CheckKind::NoDuplicates,
        CheckKind::Registry,
    ] {
        assert!(failing.contains(&kind), "{kind:?} passed:\n{r}");
    }
    let sf = &r.snowflake;
    // pglogical logs the conflicts it resolves; natively (18) each is an apply worker ERROR,
    // and the subscriptions between nodes 1 and 2 stay stuck on it.
    assert!(
        sf.nodes.iter().map(|n| n.conflicts).sum::<usize>() > 0,
        "{r}"
    );
    // Nodes 1 and 2 issue the same IDs: the logs of issued IDs show them, although each node's
    // primary key kept one row per ID.
    assert!(sf.ids.repeated > 0, "{r}");
    // The registry reports the clash on every node.
    assert!(sf.nodes.iter().all(|n| n.clashes > 0), "{r}");
    remove_demo_dirs(&o.dir, &o.name);
}

/// `scripts/demo.sh` as documented, shortened and without the install (done by the test
/// command): `scripts/demo.sh --pg-config P --duration S --port P`.
fn demo_sh(name: &str, port: u16, duration: &str) -> Command {
    let root = project_root();
    let mut c = Command::new("bash");
    c.arg(root.join("scripts/demo.sh"))
        .arg("--pg-config")
        .arg(&pg().pg_config)
        .args(["--duration", duration, "--port", &port.to_string()])
        .env("DEMO_NAME", name)
        .env("DEMO_DIR", clusters_root())
        .env("DEMO_NO_BUILD", "1")
        .env("CATCHUP_TIMEOUT", "180")
        .env_remove("SNOWCLUSTER")
        .current_dir(&root);
    c
}

#[test]
fn demo_script_builds_the_tool_runs_the_job_and_exits_zero_when_every_check_passes() {
    let name = "cluster-demo-sh";
    let out = demo_sh(name, ports::take(3), "3").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_stopped(&clusters_root(), name);
    assert!(out.status.success(), "demo.sh failed: {}", out.status);
    assert!(stdout.contains("\nRESULT: all checks passed\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("nodes: 3 x PostgreSQL {} (", pg().major)),
        "{stdout}"
    );
    remove_demo_dirs(&clusters_root(), name);
}

/// SIGTERM (and likewise Ctrl-C's SIGINT) during the load: pgbench and every server the demo
/// started are stopped, and the exit status says why.
#[test]
fn demo_script_stops_pgbench_and_every_server_on_sigterm() {
    let name = "cluster-demo-term";
    let port = ports::take(3);
    let mut child = demo_sh(name, port, "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "demo.sh ended before its load:\n{seen}");
        seen.push_str(&line);
        if line.starts_with("== load 1") {
            break;
        }
    }
    let pgbench_for = |port: u16| {
        Command::new("pgrep")
            .args(["-f", &format!("pgbench .*-p {port} ")])
            .output()
            .unwrap()
            .status
            .success()
    };
    wait_for("pgbench to run", Duration::from_secs(30), || {
        pgbench_for(port).then_some(())
    });
    // demo.sh execs the cluster tool: the child is snowcluster.
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    println!("{seen}");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert_stopped(&clusters_root(), name);
    for p in port..port + 3 {
        assert!(!pgbench_for(p), "pgbench for port {p} left running");
    }
    remove_demo_dirs(&clusters_root(), name);
}
