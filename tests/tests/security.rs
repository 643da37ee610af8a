//! Who may do what, on real servers: objects an untrusted role plants on a superuser's search
//! path never run in the extension's SQL; only a table's owner converts its column, and a
//! non-owner is refused before any lock; `snowflake_stats()` is for `pg_monitor` and file paths
//! stay in the server log; a role that may only insert checks the node registry without
//! registering; neither a session nor a role can change the node id. Which role may execute
//! which function, and the SQLSTATE of each refusal, are in the pg_regress files (`regress.rs`).

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use snowflake_core::layout;
use snowflake_it::{db_error, Cluster};
use std::fs;
use std::time::{Duration, Instant};

fn connect_as(node: &Cluster, user: &str) -> Client {
    let conninfo = node
        .conninfo()
        .replace("user=postgres", &format!("user={user}"));
    Client::connect(&conninfo, NoTls).unwrap()
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
    // A state-file error tells the client what, the server log where (crash.rs covers the
    // corrupted file; this is the unwritable one).
    let dir = node.data().join("snowflake_id.state.tmp");
    node.stop();
    fs::create_dir(&dir).unwrap(); // the first save after start cannot create its temporary file
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
fn session_and_role_cannot_change_the_node_id() {
    let node = Cluster::init("core-set-refused", &["snowflake_id.node_id = 9"]);
    node.start();
    let mut c = node.connect();
    for sql in [
        "SET snowflake_id.node_id = 5",
        "SET LOCAL snowflake_id.node_id = 5",
        "ALTER ROLE postgres SET snowflake_id.node_id = 5",
        "ALTER DATABASE postgres SET snowflake_id.node_id = 5",
        "SELECT set_config('snowflake_id.node_id', '5', false)",
        "SET snowflake_id.nodeid = 5",
    ] {
        assert!(c.batch_execute(sql).is_err(), "{sql} was accepted");
    }
    let v: String = c
        .query_one("SHOW snowflake_id.node_id", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "9");
}
