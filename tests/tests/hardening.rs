//! Untrusted roles, calls that must be stoppable, odd clocks and operator actions, on real
//! servers (issue 10). Each test fails on the code before its fix. Ports 26001-26019, clusters
//! `hard-*`.

use postgres::error::{DbError, SqlState};
use postgres::{Client, NoTls};
use snowflake_core::generator::CeilingStore;
use snowflake_core::layout;
use snowflake_core::store::{FileStore, Writer};
use snowflake_it::clock::{self, ServerClock, Shim};
use snowflake_it::dump::{self, Format};
use snowflake_it::{wait_for, Cluster};
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

fn connect_as(node: &Cluster, user: &str) -> Client {
    let conninfo = node
        .conninfo()
        .replace("user=postgres", &format!("user={user}"));
    Client::connect(&conninfo, NoTls).unwrap()
}

fn db_error(r: Result<impl Sized, postgres::Error>, what: &str) -> DbError {
    match r {
        Ok(_) => panic!("{what}: succeeded"),
        Err(e) => e
            .as_db_error()
            .unwrap_or_else(|| panic!("{what}: {e}"))
            .clone(),
    }
}

/// The planted objects log every call into this table, with the role they ran as.
const PLANT: &str = r#"
CREATE TABLE public.hijack_log (ran_as text, what text);
GRANT INSERT ON public.hijack_log TO PUBLIC;
CREATE FUNCTION public.pg_get_serial_sequence(t text, c name) RETURNS text
  LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO public.hijack_log VALUES (current_user, 'pg_get_serial_sequence');
    RETURN pg_catalog.pg_get_serial_sequence(t, c::text);
  END $$;
CREATE FUNCTION public.hijack_count(s bigint, v bigint) RETURNS bigint
  LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO public.hijack_log VALUES (current_user, 'count');
    RETURN s + 1;
  END $$;
CREATE AGGREGATE public.count(bigint) (sfunc = public.hijack_count, stype = bigint, initcond = '0');
"#;

fn hijack_rows(c: &mut Client) -> Vec<(String, String)> {
    c.query(
        "SELECT ran_as, what FROM public.hijack_log ORDER BY 1, 2",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// CVE-2018-1058 class: a role that may create objects in a schema on a superuser's
/// search_path plants better-matching functions; the extension's SQL must run none of them.
#[test]
fn objects_planted_on_the_search_path_never_run_in_the_extensions_sql() {
    let node = Cluster::init("hard-search-path", &["snowflake_id.node_id = 3"]);
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE ROLE mallory LOGIN;
         GRANT CREATE ON SCHEMA public TO mallory;
         CREATE TABLE public.orders (id serial PRIMARY KEY, note text);
         INSERT INTO public.orders (note) SELECT 'x' FROM generate_series(1, 10);",
    );
    let mut m = connect_as(&node, "mallory");
    m.batch_execute(PLANT).unwrap();
    drop(m);

    let mut su = node.connect();
    su.batch_execute("SELECT snowflake_register_node()")
        .unwrap();
    // The plants work: the same calls written without qualification pick them, as superuser.
    // (This is what the extension's SQL did before it pinned search_path.)
    su.query_one(
        "SELECT pg_get_serial_sequence('public.orders', 'id'::name)",
        &[],
    )
    .unwrap();
    su.query_one(
        "SELECT count(DISTINCT system_identifier) FROM snowflake_nodes",
        &[],
    )
    .unwrap();
    let control = hijack_rows(&mut su);
    let expected: Vec<(String, String)> = [
        ("postgres", "count"),
        ("postgres", "pg_get_serial_sequence"),
    ]
    .map(|(a, b)| (a.into(), b.into()))
    .into();
    assert_eq!(
        control, expected,
        "the planted objects must be the better match for unqualified calls"
    );
    su.batch_execute("TRUNCATE public.hijack_log").unwrap();

    // The superuser runs what the README shows, with the default search_path ("$user", public).
    let clashes = su
        .query("SELECT * FROM snowflake_check_nodes()", &[])
        .unwrap();
    assert!(clashes.is_empty());
    let done: String = su
        .query_one(
            "SELECT snowflake_convert_column('public.orders', 'id')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(done.contains("orders_id_seq"), "{done}");
    let id: i64 = su
        .query_one(
            "INSERT INTO public.orders (note) VALUES ('new') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(id).unwrap().node, 3);
    assert_eq!(
        hijack_rows(&mut su),
        vec![],
        "planted code ran inside the extension's SQL"
    );
    let superuser: bool = su
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!superuser);
    // And every function that runs SQL pins it.
    let unpinned: Vec<String> = su
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'snowflake_id'
             WHERE p.proname IN ('snowflake_register_node', 'snowflake_check_nodes', 'snowflake_convert_column')
               AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        unpinned.is_empty(),
        "without a pinned search_path: {unpinned:?}"
    );
}

#[test]
fn only_the_owner_converts_and_a_non_owner_is_refused_before_any_lock() {
    let node = Cluster::init("hard-owner", &["snowflake_id.node_id = 4"]);
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE ROLE bob LOGIN;
         CREATE TABLE public.t (id serial PRIMARY KEY);
         GRANT ALL ON public.t TO bob;",
    );
    // Another session holds a lock that conflicts with ACCESS EXCLUSIVE: a conversion that
    // locked before checking ownership would wait here until statement_timeout.
    let mut holder = node.connect();
    holder
        .batch_execute("BEGIN; LOCK TABLE public.t IN ACCESS SHARE MODE")
        .unwrap();
    let mut bob = connect_as(&node, "bob");
    bob.batch_execute("SET statement_timeout = '5s'").unwrap();
    let t = Instant::now();
    let e = db_error(
        bob.query_one("SELECT snowflake_convert_column('public.t', 'id')", &[]),
        "non-owner",
    );
    assert_eq!(
        e.code(),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("must be owner of table public.t"),
        "{}",
        e.message()
    );
    assert!(e.hint().is_some_and(|h| h.contains("owner")));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refused only after {:?}",
        t.elapsed()
    );
    holder.batch_execute("COMMIT").unwrap();
    // The owner (here the superuser) converts.
    let done: String = node
        .connect()
        .query_one("SELECT snowflake_convert_column('public.t', 'id')", &[])
        .unwrap()
        .get(0);
    assert!(done.contains("set DEFAULT"), "{done}");
}

#[test]
fn stats_are_for_pg_monitor_and_paths_stay_in_the_server_log() {
    let node = Cluster::init("hard-stats", &["snowflake_id.node_id = 5"]);
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE ROLE plain LOGIN;
         CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
         CREATE ROLE granted LOGIN;
         GRANT EXECUTE ON FUNCTION snowflake_stats() TO granted;
         SELECT snowflake_nextval();",
    );
    let data_dir = node.data().display().to_string();
    let e = db_error(
        connect_as(&node, "plain").query_one("SELECT * FROM snowflake_stats()", &[]),
        "plain",
    );
    assert_eq!(
        e.code(),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "{}",
        e.message()
    );
    let r = connect_as(&node, "monitor")
        .query_one("SELECT issued, state_file FROM snowflake_stats()", &[])
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 1);
    assert!(r
        .get::<_, Option<String>>(1)
        .is_some_and(|p| p.starts_with(&data_dir)));
    // Granted EXECUTE by a superuser, but not allowed to read data_directory: no path.
    let mut g = connect_as(&node, "granted");
    let r = g
        .query_one("SELECT issued, state_file FROM snowflake_stats()", &[])
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 1);
    assert_eq!(r.get::<_, Option<String>>(1), None);
    assert!(
        g.query_one("SHOW data_directory", &[]).is_err(),
        "the role can read data_directory after all"
    );
    // A state-file error tells the client what, the server log where (faults.rs covers the
    // corrupted file; this is the unwritable one).
    let dir = node.data().join("snowflake_id.state.tmp");
    node.stop();
    fs::remove_file(node.data().join("snowflake_id.state")).unwrap();
    fs::create_dir(&dir).unwrap(); // the save's temporary file cannot be created
    node.start();
    let e = db_error(
        connect_as(&node, "plain").query_one("SELECT snowflake_nextval()", &[]),
        "save",
    );
    assert_eq!(e.code(), &SqlState::IO_ERROR, "{}", e.message());
    assert!(
        !e.message().contains(&data_dir) && !e.detail().unwrap_or("").contains(&data_dir),
        "{}",
        e.message()
    );
    assert!(
        node.log()
            .contains(&format!("{data_dir}/snowflake_id.state")),
        "the server log names the file"
    );
    fs::remove_dir(&dir).unwrap();
    let id: i64 = connect_as(&node, "plain")
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert_eq!(layout::decode(id).unwrap().node, 5);
}

#[test]
fn a_role_that_may_only_insert_checks_the_registry_without_registering() {
    let node = Cluster::init("hard-privs", &["snowflake_id.node_id = 6"]);
    node.start();
    node.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE ROLE ins LOGIN;
         GRANT SELECT, INSERT ON snowflake_nodes TO ins;",
    );
    // 'INSERT, UPDATE, DELETE' in one has_table_privilege() is true when any one is held: the
    // registration then failed on its DELETE.
    let rows = connect_as(&node, "ins")
        .query("SELECT * FROM snowflake_check_nodes()", &[])
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(
        node.psql("SELECT count(*) FROM snowflake_nodes"),
        "0",
        "registered without UPDATE and DELETE"
    );
    node.psql("GRANT UPDATE, DELETE ON snowflake_nodes TO ins");
    connect_as(&node, "ins")
        .query("SELECT * FROM snowflake_check_nodes()", &[])
        .unwrap();
    assert_eq!(node.psql("SELECT count(*) FROM snowflake_nodes"), "1");
}

#[test]
fn pg_dump_keeps_the_node_registry() {
    let node = Cluster::init("hard-dump", &["snowflake_id.node_id = 7"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id; SELECT snowflake_register_node();");
    node.psql("INSERT INTO snowflake_nodes (node_id, system_identifier, host, port) VALUES (8, 42, 'other', 5432)");
    let file = node.dir.join("dump.sql");
    dump::dump(&node.conninfo(), &file, Format::Plain);
    node.psql("CREATE DATABASE restored");
    let restored = node
        .conninfo()
        .replace("dbname=postgres", "dbname=restored");
    dump::restore(&restored, &file);
    let mut c = Client::connect(&restored, NoTls).unwrap();
    let nodes: Vec<i32> = c
        .query("SELECT node_id FROM snowflake_nodes ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nodes, vec![7, 8]);
}

/// Writes a state file as a server would have left it: format 1 (no writer) or 2.
fn write_ceiling(node: &Cluster, ceiling_unix_ms: i64, writer: Option<Writer>) {
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

/// A call that waits (here: the first call after a start whose saved ceiling is beyond the drift
/// bound) shows a wait event and ends at once when cancelled or timed out, with an ERROR.
#[test]
fn a_waiting_call_shows_its_wait_and_is_cancelled_at_once() {
    let node = Cluster::init(
        "hard-cancel",
        &["snowflake_id.node_id = 9", "snowflake_id.max_drift_ms = 0"],
    );
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    for how in [
        "pg_cancel_backend",
        "statement_timeout",
        "pg_terminate_backend",
    ] {
        // A fresh state, and a ceiling 1,080 ms ahead, as a run at the drift bound leaves it:
        // IDs start there and wait for the clock (beyond 1,100 ms ahead it would count as a
        // clock step, and not wait). The ceiling is read by the first call after a start.
        node.stop();
        node.start();
        let mut c = node.connect();
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        if how == "statement_timeout" {
            c.batch_execute("SET statement_timeout = '200ms'").unwrap();
        }
        write_ceiling(&node, clock::real_unix_ms() + 1_080, None);
        let started = Instant::now();
        let waiter = thread::spawn(move || {
            let r = c.query_one("SELECT snowflake_nextval()", &[]);
            (r.map(|row| row.get::<_, i64>(0)), Instant::now())
        });
        let mut mon = node.connect();
        if how != "statement_timeout" {
            let event: (Option<String>, Option<String>) = wait_for(
                "the wait event",
                Duration::from_secs(5),
                || {
                    let r = mon
                    .query_one("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", &[&pid])
                    .unwrap();
                    let e: (Option<String>, Option<String>) = (r.get(0), r.get(1));
                    (e.0.as_deref() == Some("Extension")).then_some(e)
                },
            );
            assert_eq!(event.0.as_deref(), Some("Extension"));
            mon.query_one(&format!("SELECT {how}($1)"), &[&pid])
                .unwrap();
        }
        let cancelled_at = Instant::now();
        let (result, ended) = waiter.join().unwrap();
        match result {
            Ok(id) => panic!("{how}: the waiting call returned {id}"),
            Err(e) if how == "pg_terminate_backend" => {
                let code = e.as_db_error().map(|d| d.code().clone());
                assert!(
                    code.is_none() || code == Some(SqlState::ADMIN_SHUTDOWN),
                    "{how}: {e}"
                );
            }
            Err(e) => {
                let e = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("{how}: {e}"))
                    .clone();
                assert_eq!(
                    e.code(),
                    &SqlState::QUERY_CANCELED,
                    "{how}: {}",
                    e.message()
                );
            }
        }
        let waited = ended - started;
        assert!(
            waited < Duration::from_millis(700),
            "{how}: the call ended after {waited:?}"
        );
        assert!(
            ended.saturating_duration_since(cancelled_at) < Duration::from_millis(500),
            "{how}"
        );
        // The backend lives on and issues IDs once the clock has caught up.
        let mut c = node.connect();
        let id: i64 = c
            .query_one("SELECT snowflake_nextval()", &[])
            .unwrap()
            .get(0);
        assert!(layout::decode(id).is_ok());
        eprintln!("[cancel] {how}: the waiting call ended with an ERROR after {waited:?}");
    }
}

/// A started server whose wall clock the test steps through the clock shim, with the
/// extension created.
fn shim_node(name: &str, node_id: u16) -> (Shim, Cluster) {
    let dir = snowflake_it::clusters_root().join(format!("{name}-files"));
    fs::create_dir_all(&dir).unwrap();
    snowflake_it::ensure_traversable(&dir.join("x"));
    let shim = Shim::new(&dir);
    let mut node = Cluster::init(name, &[&format!("snowflake_id.node_id = {node_id}")]);
    node.env = shim.env();
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    (shim, node)
}

/// The server's wall clock at an absolute Unix ms, through the clock shim.
fn set_clock_to(shim: &Shim, c: &mut Client, unix_ms: i64) {
    let offset = unix_ms - clock::real_unix_ms();
    shim.set_offset_ms(offset);
    clock::wait_until_server_offset(c, offset);
}

#[test]
fn a_clock_before_the_epoch_or_past_the_horizon_is_an_error_and_saves_nothing() {
    let (shim, node) = shim_node("hard-clock", 10);
    let state = node.data().join("snowflake_id.state");
    let mut c = node.connect();
    // A VM that boots before NTP: 2024-12-01.
    let dec_2024 = layout::EPOCH_UNIX_MS - 31 * 86_400_000;
    set_clock_to(&shim, &mut c, dec_2024);
    for _ in 0..2 {
        let e = db_error(
            c.query_one("SELECT snowflake_nextval()", &[]),
            "before the epoch",
        );
        assert_eq!(
            e.code(),
            &SqlState::DATETIME_FIELD_OVERFLOW,
            "{}",
            e.message()
        );
        let reading: i64 = e
            .message()
            .split("Unix ms ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("the message names no clock reading: {}", e.message()));
        assert!(
            (reading - dec_2024).abs() < 1_000,
            "{reading} is not the server's clock {dec_2024}"
        );
        assert!(e.hint().is_some_and(|h| h.contains("clock")));
    }
    assert!(
        !state.exists(),
        "a ceiling was saved from a clock before the epoch"
    );
    // Past the 41-bit horizon (2094-09-07).
    let horizon_unix = layout::unix_ms(layout::MAX_MS);
    set_clock_to(&shim, &mut c, horizon_unix + 86_400_000);
    let e = db_error(
        c.query_one("SELECT snowflake_nextval()", &[]),
        "past the horizon",
    );
    assert_eq!(
        e.code(),
        &SqlState::DATETIME_FIELD_OVERFLOW,
        "{}",
        e.message()
    );
    assert!(
        !state.exists(),
        "a ceiling past the horizon was saved (the loader would reject it)"
    );
    // The clock set right: IDs flow, on the same connection, without a restart.
    set_clock_to(&shim, &mut c, clock::real_unix_ms());
    let before = clock::real_unix_ms();
    let id: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    let ms = layout::unix_ms(layout::decode(id).unwrap().ms);
    assert!(
        (before - 50..=before + 2_000).contains(&ms),
        "ID at {ms}, clock at {before}"
    );
    assert!(state.exists());
    drop(c);
    node.stop();
    node.start();
    let id2: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(id2 > id);
}

fn stat_i64(c: &mut Client, column: &str) -> i64 {
    c.query_one(
        &format!("SELECT {column}::bigint FROM snowflake_stats()"),
        &[],
    )
    .unwrap()
    .get(0)
}

/// Draws `n` IDs in one statement: the smallest, the largest, and how far (ms) the largest
/// leads real time as read right after the statement.
fn burst(c: &mut Client, n: i64) -> (i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT min(x), max(x) FROM (SELECT snowflake_nextval() AS x FROM generate_series(1, $1::bigint)) s",
            &[&n],
        )
        .unwrap();
    let real = clock::real_unix_ms();
    let (min, max): (i64, i64) = (r.get(0), r.get(1));
    (
        min,
        max,
        layout::unix_ms(layout::decode(max).unwrap().ms) - real,
    )
}

/// Invariant 4 across restarts: six quick restarts, each followed by a burst, never put IDs
/// further ahead of the clock than max_drift_ms, and no start is reported as a clock step.
#[test]
fn quick_restarts_with_bursts_keep_ids_within_the_drift_bound() {
    let node = Cluster::init(
        "hard-restarts",
        &[
            "snowflake_id.node_id = 11",
            "snowflake_id.max_drift_ms = 2000",
        ],
    );
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut last = 0i64;
    let mut worst_lead = i64::MIN;
    for round in 0..6 {
        let mut c = node.connect();
        // A burst: 400,000 IDs in one statement (about 100 ms of IDs at the format's rate).
        let (min, max, lead) = burst(&mut c, 400_000);
        assert!(min > last, "round {round}: IDs went back");
        last = max;
        worst_lead = worst_lead.max(lead);
        assert!(
            lead <= 2_000,
            "round {round}: the last ID leads the clock by {lead} ms"
        );
        assert_eq!(
            stat_i64(&mut c, "clock_steps"),
            0,
            "round {round}: a restart counted as a clock step"
        );
        drop(c);
        node.stop();
        node.start();
    }
    assert!(
        !node.log().contains("behind the saved ceiling"),
        "a start was reported as a clock step"
    );
    eprintln!("[restarts] 6 restarts with bursts: worst lead of the last ID over the clock {worst_lead} ms (bound 2000)");
}

/// `pg_rewind` and `pg_basebackup` copy the state file from another server: its ceiling is a
/// floor, and so is anything this server may have issued itself (which the copy lost).
#[test]
fn a_state_file_copied_from_another_server_never_lowers_the_floor() {
    let node = Cluster::init("hard-copied", &["snowflake_id.node_id = 12"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    let mut c = node.connect();
    let sysid: i64 = c
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .unwrap()
        .get(0);
    let me = Writer {
        system_identifier: sysid as u64,
        node_id: 12,
    };
    // The file records its writer.
    c.query_one("SELECT snowflake_nextval()", &[]).unwrap();
    let text = fs::read_to_string(node.data().join("snowflake_id.state")).unwrap();
    assert!(
        text.contains(&format!("system_identifier {sysid}\nnode_id 12\n")),
        "{text}"
    );

    // A burst leads the clock, then the file is replaced by an old one of another server.
    let max: i64 = c
        .query_one("SELECT max(x) FROM (SELECT snowflake_nextval() AS x FROM generate_series(1, 2000000)) s", &[])
        .unwrap()
        .get(0);
    drop(c);
    node.stop();
    let other = Writer {
        system_identifier: 4242,
        node_id: 13,
    };
    write_ceiling(&node, clock::real_unix_ms() - 60_000, Some(other));
    node.start();
    let mut c = node.connect();
    let first: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(
        first > max,
        "after the copy {first} is not above this server's last ID {max}"
    );
    assert!(
        node.log()
            .contains("the state file was written by system 4242 as node id 13"),
        "logged"
    );
    drop(c);

    // The other server's ceiling is far ahead (its clock was an hour fast): IDs start above it.
    node.stop();
    let ahead = clock::real_unix_ms() + 3_600_000;
    write_ceiling(&node, ahead, Some(other));
    node.start();
    let first: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(layout::unix_ms(layout::decode(first).unwrap().ms) >= ahead);
    // This server's own file: no warning, IDs go on above it.
    node.stop();
    let log_len = node.log().len();
    write_ceiling(&node, clock::real_unix_ms() + 3_700_000, Some(me));
    node.start();
    let next: i64 = node
        .connect()
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(next > first);
    assert!(
        !node.log()[log_len..].contains("the state file was written by"),
        "own file reported as foreign"
    );
}

/// Issue 14: the wall clock jumps forward an hour under load and is set right 3 s later. IDs
/// never follow the jump: none decodes to more than max_drift_ms ahead of real time, before,
/// during or after, and they stay strictly increasing.
#[test]
fn a_forward_jump_set_right_soon_never_shows_in_an_id() {
    let (shim, node) = shim_node("hard-forward", 14);
    let mut ctl = node.connect();
    clock::wait_until_server_offset(&mut ctl, 0);
    let mut c = node.connect();
    let mut last = 0i64;
    let mut worst_lead = i64::MIN;
    let mut draw = |c: &mut Client, phase: &str| {
        for _ in 0..20 {
            let (min, max, lead) = burst(c, 20_000);
            assert!(min > last, "{phase}: IDs went back");
            last = max;
            worst_lead = worst_lead.max(lead);
            assert!(lead <= 2_000, "{phase}: an ID leads real time by {lead} ms");
        }
    };
    draw(&mut c, "before");
    shim.set_offset_ms(3_600_000);
    clock::wait_until_server_offset(&mut ctl, 3_600_000);
    let during = Instant::now();
    draw(&mut c, "jumped");
    assert!(
        during.elapsed() < Duration::from_secs(8),
        "the jump lasted too long for this test"
    );
    shim.set_offset_ms(0);
    clock::wait_until_server_offset(&mut ctl, 0);
    draw(&mut c, "set right");
    let steps: i64 = c
        .query_one("SELECT clock_steps FROM snowflake_stats()", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        steps, 1,
        "the jump is counted once, setting it right is no step back"
    );
    let log = node.log();
    assert_eq!(
        log.matches("the system clock jumped forward by").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("stepped back"),
        "setting the clock right was taken for a step back"
    );
    eprintln!("[forward] an hour forward for a few seconds, then back: worst lead of an ID over real time {worst_lead} ms");
}
