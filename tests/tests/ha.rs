//! Production topologies with the tools people run, as ordinary processes on loopback: a
//! Patroni cluster (Debian's patroni 3.0.2, etcd 3.4 as its store, three members of
//! PostgreSQL 15) failing over under a client load, PgBouncer in transaction pooling mode, and
//! postgres_exporter serving `snowflake_stats()` with the queries of `tests/ha/queries.yaml`.
//! Run on PostgreSQL 15 only (Debian's Patroni drives Debian's PostgreSQL 15); the programs come
//! from `scripts/setup.sh --ha`. Clusters `ha-*`. docs/ha.md explains the
//! configuration and what each check means.

use postgres::error::SqlState;
use postgres::{Client, NoTls, SimpleQueryMessage};
use snowflake_core::layout;
use snowflake_it::clock::{self, ServerClock, Shim};
use snowflake_it::daemon::{chown, fresh_dir, pgbouncer, Daemon};
use snowflake_it::{
    alive, as_postgres, count_duplicates, ensure_traversable, ports, wait_for, Cluster,
};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;
/// How long the asynchronous replicas lag behind the leader before it is killed: longer than
/// the ceiling's lead (1 s), short enough for the test's maximum_lag_on_failover (8 MB).
const LAG: Duration = Duration::from_millis(2000);
const MAX_UNREPLICATED: usize = 20_000;

/// Patroni drives Debian's PostgreSQL 15 (the packages this suite installs); the suite also runs
/// on 18, where these tests say so and return.
fn on_pg15(test: &str) -> bool {
    let major = snowflake_it::pg().major;
    if major != 15 {
        eprintln!("[{test}] skipped: the HA tests run on PostgreSQL 15 (this is {major})");
        return false;
    }
    for program in [
        "patroni",
        "patronictl",
        "etcd",
        "pgbouncer",
        "prometheus-postgres-exporter",
    ] {
        let found = ["/usr/bin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(program).exists());
        assert!(found, "{program} is missing: run scripts/setup.sh --ha");
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A plain HTTP/1.0 request to 127.0.0.1:`port`: (status, body), or None if nobody answers.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn connect(port: u16) -> Option<Client> {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"),
        NoTls,
    )
    .ok()
}

fn in_recovery(c: &mut Client) -> bool {
    c.query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get(0)
}

fn show(c: &mut Client, setting: &str) -> String {
    match c.query_one(&format!("SHOW {setting}"), &[]) {
        Ok(row) => row.get(0),
        Err(e) => panic!(
            "SHOW {setting}: {e} (an older build of snowflake_id, without the standby refusal, \
             is installed: cargo pgrx install --release from this tree first)"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The client load

/// How the load talks to the server: the extended protocol (statements prepared by the driver)
/// directly, the simple protocol through PgBouncer's transaction pooling.
#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Extended,
    Simple,
}

/// One acknowledged write: the ID the server returned, the row's value, the port of the server
/// that committed it, when the acknowledgement arrived.
#[derive(Clone, Copy)]
struct Ack {
    id: i64,
    v: i64,
    port: u16,
    at: Instant,
}

/// Clients writing `INSERT INTO audit(v) VALUES (n) RETURNING id` in a loop, each `n` unique,
/// recording every acknowledged ID, reconnecting (the same connection string) after any error.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<Mutex<Vec<(Instant, String)>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(conninfo: &str, protocol: Protocol, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let next_v = Arc::new(AtomicI64::new(1));
        let threads = (0..clients)
            .map(|_| {
                let (conninfo, stop, acks, errors, next_v) = (
                    conninfo.to_string(),
                    stop.clone(),
                    acks.clone(),
                    errors.clone(),
                    next_v.clone(),
                );
                thread::spawn(move || {
                    // Bounded: no test runs this long; the flag ends it first.
                    let deadline = Instant::now() + Duration::from_secs(900);
                    let mut client: Option<Client> = None;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let c = match client.as_mut() {
                            Some(c) => c,
                            None => match Client::connect(&conninfo, NoTls) {
                                Ok(c) => client.insert(c),
                                Err(e) => {
                                    errors.lock().unwrap().push((Instant::now(), e.to_string()));
                                    thread::sleep(Duration::from_millis(50));
                                    continue;
                                }
                            },
                        };
                        let v = next_v.fetch_add(1, Ordering::Relaxed);
                        let sql =
                            "INSERT INTO audit (v) VALUES ($1) RETURNING id, inet_server_port()";
                        let got: Result<(i64, i32), postgres::Error> = match protocol {
                            Protocol::Extended => {
                                c.query_one(sql, &[&v]).map(|r| (r.get(0), r.get(1)))
                            }
                            Protocol::Simple => c
                                .simple_query(&sql.replace("$1", &v.to_string()))
                                .map(|msgs| {
                                    let row = msgs
                                        .iter()
                                        .find_map(|m| match m {
                                            SimpleQueryMessage::Row(r) => Some(r),
                                            _ => None,
                                        })
                                        .expect("INSERT ... RETURNING returned no row");
                                    (
                                        row.get(0).unwrap().parse().unwrap(),
                                        row.get(1).unwrap().parse().unwrap(),
                                    )
                                }),
                        };
                        match got {
                            Ok((id, port)) => acks.lock().unwrap().push(Ack {
                                id,
                                v,
                                port: port as u16,
                                at: Instant::now(),
                            }),
                            Err(e) => {
                                errors.lock().unwrap().push((Instant::now(), e.to_string()));
                                client = None;
                                // PgBouncer answers at once while its server is down.
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acks,
            errors,
            threads,
        }
    }

    /// Waits until `n` writes acknowledged at or after `since` (by the server on `port`, if
    /// given) have arrived; returns when the first of them arrived.
    fn wait_acks(&self, since: Instant, port: Option<u16>, n: usize, timeout: Duration) -> Instant {
        wait_for(
            &format!("{n} acknowledged writes (server port {port:?})"),
            timeout,
            || {
                let acks = self.acks.lock().unwrap();
                let mut after = acks
                    .iter()
                    .filter(|a| a.at >= since && port.is_none_or(|p| a.port == p));
                let first = after.next()?.at;
                (after.count() + 1 >= n).then_some(first)
            },
        )
    }

    fn errors_since(&self, since: Instant) -> Vec<String> {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn finish(mut self) -> (Vec<Ack>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let acks = self.acks.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().len();
        (acks, errors)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The longest time without an acknowledgement between `from` and `to`.
fn longest_gap(acks: &[Ack], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = acks.iter().map(|a| a.at).collect();
    times.push(from);
    times.push(to);
    times.sort();
    times
        .windows(2)
        .filter(|w| w[1] > from && w[0] < to)
        .map(|w| w[1].max(from).min(to) - w[0].max(from).min(to))
        .max()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Patroni

/// Where the node id is set: once in the DCS for every member, or in each member's own
/// configuration.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Policy {
    Shared,
    PerMember,
}

const SHARED_NODE_ID: u16 = 7;

fn member_node_id(policy: Policy, index: usize) -> u16 {
    match policy {
        Policy::Shared => SHARED_NODE_ID,
        Policy::PerMember => 11 + index as u16,
    }
}

struct Member {
    name: String,
    node_id: u16,
    pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    patroni: Option<Daemon>,
    /// Has been the leader.
    led: bool,
}

impl Member {
    fn start(&mut self) {
        let log = self.dir.join("patroni.log");
        // Keep earlier runs' lines: the rejoin is checked in the log of the restarted Patroni.
        if log.exists() {
            let old = fs::read_to_string(&log).unwrap_or_default();
            fs::write(self.dir.join("patroni.previous.log"), old).unwrap();
        }
        let config = self.config.display().to_string();
        self.patroni = Some(Daemon::spawn(
            &format!("patroni {}", self.name),
            "/usr/bin/patroni",
            &[&config],
            &self.env,
            &log,
        ));
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// `kill -9` of Patroni, then of its PostgreSQL (the postmaster, which Patroni started in a
    /// session of its own, and its children); waits until all are gone.
    fn kill9(&mut self) {
        if let Some(mut p) = self.patroni.take() {
            p.kill9();
        }
        if let Some(pid) = self.postmaster_pid() {
            let mut pids = snowflake_it::children(pid);
            pids.push(pid);
            snowflake_it::kill9(pid);
            for p in &pids {
                snowflake_it::kill9(*p);
            }
            wait_for(
                &format!("the processes of {} to exit", self.name),
                Duration::from_secs(60),
                || {
                    (pids.iter().all(|p| !alive(*p))
                        && !Path::new(&format!("/proc/{pid}")).exists())
                    .then_some(())
                },
            );
        }
    }

    fn log(&self) -> String {
        self.patroni.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    fn connect(&self) -> Client {
        wait_for(
            &format!("a connection to {}", self.name),
            Duration::from_secs(60),
            || connect(self.pg_port),
        )
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug, Clone)]
struct MemberView {
    name: String,
    role: String,
    state: String,
}

/// A Patroni cluster: etcd and three members, member 0 on the clock shim an hour fast.
struct Ha {
    members: Vec<Member>,
    policy: Policy,
    /// Whether replicas with their own node id are asked for IDs now (see [`StandbyIds`]).
    ask_standbys: bool,
    _etcd: Daemon,
    shim: Shim,
}

/// The consecutive ports a Patroni cluster takes from `base` on (see [`Ha::new`]).
const HA_PORTS: u16 = 8;

impl Ha {
    /// etcd on `base` (client) and `base + 1` (peer); member i on `base + 2 + 2i` (PostgreSQL)
    /// and `base + 3 + 2i` (Patroni's REST API): [`HA_PORTS`] ports. Nothing started but etcd.
    fn new(name: &str, base: u16, policy: Policy, sync: bool) -> Ha {
        let root = snowflake_it::clusters_root().join(name);
        // A run killed before its guards ran may have left a postmaster behind.
        for i in 0..3 {
            let data = root.join(format!("m{}", i + 1)).join("data");
            if data.join("postmaster.pid").exists() {
                let _ = as_postgres(snowflake_it::pg_bin("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
        }
        fresh_dir(&root);
        let etcd_dir = root.join("etcd");
        let (client, peer) = (base, base + 1);
        let curl = |p: u16| format!("http://127.0.0.1:{p}");
        let etcd = Daemon::spawn(
            &format!("etcd of {name}"),
            "/usr/bin/etcd",
            &[
                "--name",
                "etcd",
                "--data-dir",
                &etcd_dir.display().to_string(),
                "--listen-client-urls",
                &curl(client),
                "--advertise-client-urls",
                &curl(client),
                "--listen-peer-urls",
                &curl(peer),
                "--initial-advertise-peer-urls",
                &curl(peer),
                "--initial-cluster",
                &format!("etcd={}", curl(peer)),
            ],
            &[],
            &root.join("etcd.log"),
        );
        wait_for("etcd to be healthy", Duration::from_secs(60), || {
            let (status, body) = http(client, "GET", "/health")?;
            (status == 200 && body.contains("\"true\"")).then_some(())
        });
        let files = root.join("clock");
        fresh_dir(&files);
        let shim = Shim::new(&files);
        let template =
            fs::read_to_string(snowflake_it::project_root().join("tests/ha/patroni.yml")).unwrap();
        let bin_dir = snowflake_it::pg().bindir.display().to_string();
        let members = (0..3)
            .map(|i| {
                let mname = format!("m{}", i + 1);
                let dir = root.join(&mname);
                fresh_dir(&dir);
                let (pg_port, api_port) = (base + 2 + 2 * i as u16, base + 3 + 2 * i as u16);
                let node_id = member_node_id(policy, i);
                let drop_tag = match policy {
                    Policy::Shared => "# per-member",
                    Policy::PerMember => "# shared",
                };
                let text: String = template
                    .lines()
                    .filter(|l| !l.trim_end().ends_with(drop_tag))
                    .map(|l| {
                        l.replace("@SCOPE@", name)
                            .replace("@NAME@", &mname)
                            .replace("@API_PORT@", &api_port.to_string())
                            .replace("@ETCD_PORT@", &client.to_string())
                            .replace("@SYNC@", if sync { "true" } else { "false" })
                            .replace("@SHARED_NODE_ID@", &SHARED_NODE_ID.to_string())
                            .replace("@MEMBER_NODE_ID@", &node_id.to_string())
                            .replace("@PG_PORT@", &pg_port.to_string())
                            .replace("@DIR@", &dir.display().to_string())
                            .replace("@BIN_DIR@", &bin_dir)
                            + "\n"
                    })
                    .collect();
                assert!(!text.contains('@'), "a placeholder is left:\n{text}");
                let config = dir.join("patroni.yml");
                fs::write(&config, text).unwrap();
                chown(&config);
                Member {
                    name: mname,
                    node_id,
                    pg_port,
                    api_port,
                    dir,
                    config,
                    env: if i == 0 { shim.env() } else { Vec::new() },
                    patroni: None,
                    led: i == 0,
                }
            })
            .collect();
        Ha {
            members,
            policy,
            ask_standbys: true,
            _etcd: etcd,
            shim,
        }
    }

    fn index(&self, name: &str) -> usize {
        self.members.iter().position(|m| m.name == name).unwrap()
    }

    /// The members as Patroni's REST API (`GET /cluster` of any running member) shows them.
    fn view(&self) -> Option<Vec<MemberView>> {
        self.members
            .iter()
            .filter(|m| m.patroni.is_some())
            .find_map(|m| {
                let (status, body) = http(m.api_port, "GET", "/cluster")?;
                if status != 200 {
                    return None;
                }
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                Some(
                    v["members"]
                        .as_array()?
                        .iter()
                        .map(|m| MemberView {
                            name: m["name"].as_str().unwrap_or("").into(),
                            role: m["role"].as_str().unwrap_or("").into(),
                            state: m["state"].as_str().unwrap_or("").into(),
                        })
                        .collect(),
                )
            })
    }

    /// Waits for a running leader other than `not`; returns its index.
    fn wait_leader(&self, not: Option<usize>, timeout: Duration) -> usize {
        let not = not.map(|i| self.members[i].name.clone());
        wait_for("a Patroni leader", timeout, || {
            let view = self.view()?;
            let leader = view
                .iter()
                .find(|m| m.role == "leader" && m.state == "running")?;
            (Some(&leader.name) != not.as_ref()).then(|| self.index(&leader.name))
        })
    }

    /// Waits until member `i` runs as a replica (a synchronous one if `sync`), its PostgreSQL
    /// in recovery and streaming from the leader.
    fn wait_replica(&mut self, i: usize, timeout: Duration) {
        let name = self.members[i].name.clone();
        let deadline = Instant::now() + timeout;
        wait_for(&format!("{name} to run as a replica"), timeout, || {
            if let Some(p) = self.members[i].patroni.as_mut() {
                p.check_running();
            }
            let view = self.view()?;
            view.iter()
                .any(|m| {
                    m.name == name
                        && (m.role == "replica" || m.role == "sync_standby")
                        && (m.state == "running" || m.state == "streaming")
                })
                .then_some(())
        });
        let mut c = self.members[i].connect();
        wait_for(
            &format!("{name} to stream from the leader"),
            deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(10),
            || {
                let streaming: bool = c
                    .query_one(
                        "SELECT pg_is_in_recovery() AND EXISTS
                           (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                        &[],
                    )
                    .ok()?
                    .get(0);
                streaming.then_some(())
            },
        );
    }

    fn sync_standby(&self) -> Option<usize> {
        let view = self.view()?;
        view.iter()
            .find(|m| m.role == "sync_standby")
            .map(|m| self.index(&m.name))
    }

    fn replicas(&self, leader: usize) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| *i != leader && self.members[*i].patroni.is_some())
            .collect()
    }

    /// What a replica does with `SELECT snowflake_nextval()` once it knows its upstream's node
    /// ids: under a shared node id it refuses (25006), with its own it issues IDs under it.
    /// Returns its `snowflake_id.node_id_chain` and what it did.
    fn probe_replica(&self, i: usize, leader: usize) -> String {
        let m = &self.members[i];
        let mut c = m.connect();
        assert!(in_recovery(&mut c), "{} is not in recovery", m.name);
        // Asked once the replica has replayed what the leader wrote so far: a rejoined old
        // leader replays its own old ceiling records first, and takes their writer (itself) for
        // its primary until it replays the new leader's.
        let lsn: String = self.members[leader]
            .connect()
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .unwrap()
            .get(0);
        wait_for(
            &format!("{} to replay the leader's WAL", m.name),
            Duration::from_secs(60),
            || {
                c.query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .ok()?
                .get::<_, bool>(0)
                .then_some(())
            },
        );
        let chain = wait_for(
            &format!("{}'s snowflake_id.node_id_chain", m.name),
            Duration::from_secs(60),
            || {
                let chain = show(&mut c, "snowflake_id.node_id_chain");
                (chain != "unknown").then_some(chain)
            },
        );
        if self.policy == Policy::PerMember && !self.ask_standbys {
            return format!("{chain}, not asked for an ID yet");
        }
        if self.policy == Policy::PerMember {
            return self.probe_own_node_id(&mut c, i, &chain);
        }
        let got = c.query_one("SELECT snowflake_nextval()", &[]);
        let e = got.err().unwrap_or_else(|| {
            panic!(
                "replica {} issued an ID under the shared node id {SHARED_NODE_ID} \
                 (is an old build of snowflake_id installed? cargo pgrx install from \
                 this tree)",
                m.name
            )
        });
        let db = e.as_db_error().unwrap_or_else(|| panic!("{e}"));
        assert_eq!(
            db.code(),
            &SqlState::READ_ONLY_SQL_TRANSACTION,
            "{}",
            db.message()
        );
        // Refused as in use upstream (its chain), or as its primary's node id (the WAL it
        // replayed names it): either way under the shared node id.
        assert!(
            db.message().contains(&format!("node id {SHARED_NODE_ID} ")),
            "{}",
            db.message()
        );
        format!("{chain}, refuses under the shared node id")
    }

    /// A replica with its own node id issues IDs under it, within 30 s of an event: its
    /// upstream's chain, asked again every 10 s, may still name the node ids of the servers
    /// above it before a switchover (its own among them) for that long.
    fn probe_own_node_id(&self, c: &mut Client, i: usize, chain: &str) -> String {
        let m = &self.members[i];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let db = match c.query_one("SELECT snowflake_nextval()", &[]) {
                Ok(row) => {
                    let id: i64 = row.get(0);
                    assert_eq!(layout::decode(id).unwrap().node, m.node_id);
                    return format!("{chain}, issues IDs under node id {}", m.node_id);
                }
                Err(e) => e.as_db_error().unwrap_or_else(|| panic!("{e}")).clone(),
            };
            assert_eq!(
                db.code(),
                &SqlState::READ_ONLY_SQL_TRANSACTION,
                "replica {}: {db:?}",
                m.name
            );
            // A former leader rejoined as a replica takes the writer of the last ceiling record
            // it replayed for its primary. Until the new leader writes one (when its IDs pass
            // the ceiling it inherited: here an hour ahead of its clock), that record is the
            // former leader's own, and it refuses under its own node id: safe (no ID at all),
            // though no other server uses that node id.
            if m.led
                && db
                    .message()
                    .contains(&format!("primary's node id {} ", m.node_id))
            {
                return format!("{chain}, refuses: {}", db.message());
            }
            assert!(
                Instant::now() < deadline,
                "replica {} with its own node id {} still refuses after 30 s: {db:?}",
                m.name,
                m.node_id
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// When replicas with their own node id are asked for an ID (`SELECT snowflake_nextval()`
/// while in recovery).
#[derive(Clone, Copy, Debug, PartialEq)]
enum StandbyIds {
    /// From the start and after every event.
    Throughout,
    /// Only after the last event.
    AtTheEnd,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    /// `kill -9` of the leader's Patroni and PostgreSQL: Patroni promotes a replica.
    Kill,
    /// The same, after the leader's WAL senders were stopped (SIGSTOP) for `LAG` while it went
    /// on acknowledging writes: under asynchronous replication those writes are lost with it.
    KillLagging,
    /// The member killed last is started again: Patroni rewinds it and makes it a replica.
    Rejoin,
    /// `patronictl switchover` to a replica (the synchronous standby under synchronous_mode).
    Switchover,
}

struct EventReport {
    event: Event,
    at: Instant,
    old_leader: usize,
    new_leader: usize,
    to_first_ack: Duration,
    gap: Duration,
    note: String,
}

/// A Patroni cluster under a load through a multi-host connection string, the events in order;
/// the checks of docs/ha.md. Returns (duplicate acknowledged IDs, acknowledged IDs missing on
/// the last leader, IDs issued for two different rows) for the caller to assert or report.
fn scenario(
    name: &str,
    base: u16,
    policy: Policy,
    sync: bool,
    events: &[Event],
    standby_ids: StandbyIds,
) -> (usize, usize, usize) {
    let started = Instant::now();
    let mut ha = Ha::new(name, base, policy, sync);
    ha.ask_standbys = standby_ids == StandbyIds::Throughout;
    // The first leader's clock runs an hour fast, from before initdb: its IDs run an hour ahead
    // of every other member's clock.
    ha.shim.set_offset_ms(HOUR_MS);
    ha.members[0].start();
    let leader = ha.wait_leader(None, Duration::from_secs(120));
    assert_eq!(leader, 0, "the first member bootstraps the cluster");
    // Replicas cloned right after initdb, before any ID: a case where a replica learns nothing
    // of its leader's node id from the WAL or a state file.
    ha.members[1].start();
    ha.members[2].start();
    let mut c = ha.members[0].connect();
    let chain = show(&mut c, "snowflake_id.node_id_chain");
    c.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v bigint NOT NULL UNIQUE)",
    )
    .unwrap();
    clock::wait_until_server_offset(&mut c, HOUR_MS);
    wait_for("IDs an hour ahead", Duration::from_secs(60), || {
        c.query_one(
            "SELECT snowflake_timestamp(snowflake_nextval()) > now() - interval '1 minute'",
            &[],
        )
        .unwrap()
        .get::<_, bool>(0)
        .then_some(())
    });
    assert_eq!(
        chain,
        ha.members[0].node_id.to_string(),
        "the leader's chain"
    );
    drop(c);
    for i in [1, 2] {
        ha.wait_replica(i, Duration::from_secs(120));
    }
    if sync {
        wait_for("a synchronous standby", Duration::from_secs(60), || {
            ha.sync_standby()
        });
    }
    for i in [1, 2] {
        let chain = ha.probe_replica(i, 0);
        eprintln!(
            "[{name}] replica {} node_id_chain = {chain}",
            ha.members[i].name
        );
    }
    let setup = started.elapsed();

    let ports: Vec<String> = ha.members.iter().map(|m| m.pg_port.to_string()).collect();
    let conninfo = format!(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port={} user=postgres dbname=postgres \
         target_session_attrs=read-write connect_timeout=2",
        ports.join(",")
    );
    let load = Load::start(&conninfo, Protocol::Extended, 2);
    let warm = Instant::now();
    load.wait_acks(
        warm,
        Some(ha.members[0].pg_port),
        300,
        Duration::from_secs(60),
    );

    let mut leader = 0;
    let mut killed: Option<usize> = None;
    let mut reports = Vec::new();
    for &event in events {
        let at = Instant::now();
        let (new_leader, note) = match event {
            Event::Kill => {
                ha.members[leader].kill9();
                killed = Some(leader);
                let new = ha.wait_leader(Some(leader), Duration::from_secs(120));
                (new, String::new())
            }
            Event::KillLagging => {
                // The leader's WAL senders stop sending (SIGSTOP); what the replicas have
                // received so far is all they will get.
                let senders: Vec<i32> = ha.members[leader]
                    .connect()
                    .query(
                        "SELECT pid FROM pg_stat_replication WHERE state = 'streaming'",
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                assert_eq!(senders.len(), 2, "WAL senders to both replicas");
                for pid in &senders {
                    // SAFETY: signals a WAL sender of a server this test started.
                    unsafe { libc::kill(*pid, libc::SIGSTOP) };
                }
                let stopped = Instant::now();
                // The lag: writes acknowledged by the leader only, for LAG or until
                // MAX_UNREPLICATED of them (Patroni promotes no replica lagging more than
                // maximum_lag_on_failover, 8 MB of WAL here).
                let unreplicated = wait_for("writes the replicas miss", LAG * 20, || {
                    let n = load
                        .acks
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|a| a.at >= stopped)
                        .count();
                    (n > 0 && (stopped.elapsed() >= LAG || n >= MAX_UNREPLICATED)).then_some(n)
                });
                let lag = stopped.elapsed();
                // SIGKILL ends the stopped WAL senders with the rest of the server.
                ha.members[leader].kill9();
                killed = Some(leader);
                let new = ha.wait_leader(Some(leader), Duration::from_secs(120));
                (
                    new,
                    format!(
                        "{unreplicated} writes acknowledged in the {lag:?} the leader's WAL \
                         senders were stopped"
                    ),
                )
            }
            Event::Rejoin => {
                let k = killed.take().expect("a rejoin follows a kill");
                ha.members[k].start();
                ha.wait_replica(k, Duration::from_secs(180));
                let log = ha.members[k].log();
                let rewound = log.contains("pg_rewind");
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("rewind") || l.contains("Lsn") || l.contains("lsn"))
                    .take(6)
                    .collect();
                (
                    leader,
                    format!(
                        "{} rejoined, pg_rewind ran: {rewound}; {lines:?}",
                        ha.members[k].name
                    ),
                )
            }
            Event::Switchover => {
                let candidate = if sync {
                    wait_for("a synchronous standby", Duration::from_secs(60), || {
                        ha.sync_standby()
                    })
                } else {
                    ha.replicas(leader)[0]
                };
                let out = as_postgres("/usr/bin/patronictl")
                    .arg("-c")
                    .arg(&ha.members[leader].config)
                    .args([
                        "switchover",
                        "--leader",
                        &ha.members[leader].name,
                        "--candidate",
                        &ha.members[candidate].name,
                        "--force",
                    ])
                    .env("HOME", "/var/lib/postgresql")
                    .output()
                    .unwrap();
                let said = String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "patronictl switchover: {said}");
                let new = ha.wait_leader(Some(leader), Duration::from_secs(120));
                assert_eq!(new, candidate, "patronictl switchover: {said}");
                (new, String::new())
            }
        };
        // The load goes on: writes acknowledged by the new leader.
        let first = load.wait_acks(
            at,
            Some(ha.members[new_leader].pg_port),
            300,
            Duration::from_secs(120),
        );
        let (acks, errors) = {
            let a = load.acks.lock().unwrap().clone();
            (a, load.errors_since(at))
        };
        let gap = longest_gap(&acks, at, first.max(at) + Duration::from_millis(1));
        eprintln!(
            "[{name}] {event:?}: leader {} -> {}, first write acknowledged by the new leader after \
             {:?}, longest pause in acknowledgements {gap:?}, {} client errors (first: {:?}) {note}",
            ha.members[leader].name,
            ha.members[new_leader].name,
            first - at,
            errors.len(),
            errors.first()
        );
        reports.push(EventReport {
            event,
            at,
            old_leader: leader,
            new_leader,
            to_first_ack: first - at,
            gap,
            note,
        });
        leader = new_leader;
        ha.members[leader].led = true;
        // Every running replica, after each event: none issues an ID under the shared node id.
        for r in ha.replicas(leader) {
            ha.wait_replica(r, Duration::from_secs(120));
            let chain = ha.probe_replica(r, leader);
            eprintln!(
                "[{name}]   replica {} node_id_chain = {chain}",
                ha.members[r].name
            );
        }
    }
    let end = Instant::now();
    load.wait_acks(
        end,
        Some(ha.members[leader].pg_port),
        300,
        Duration::from_secs(60),
    );
    let (acks, errors) = load.finish();

    // What the last leader holds.
    let mut c = ha.members[leader].connect();
    let rows: HashMap<i64, i64> = c
        .query("SELECT id, v FROM audit", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let duplicates = count_duplicates(&ids);
    let missing = acks.iter().filter(|a| !rows.contains_key(&a.id)).count();
    // An acknowledged ID that the leader holds for another row was issued twice.
    let reissued = acks
        .iter()
        .filter(|a| rows.get(&a.id).is_some_and(|v| *v != a.v))
        .count();
    let lost_values = acks
        .iter()
        .filter(|a| !rows.values().any(|v| *v == a.v))
        .count();
    // Under a shared node id a lost ID can come back only at a millisecond at which the old
    // leader issued it: acknowledged IDs the last leader holds from another server, at the
    // (millisecond, node id) of a lost one, are the exposure (only the sequence tells them
    // apart).
    let key = |id: i64| {
        let p = layout::decode(id).unwrap();
        (p.ms, p.node)
    };
    let lost_at: HashSet<(u64, u16, u16)> = acks
        .iter()
        .filter(|a| !rows.contains_key(&a.id))
        .map(|a| (key(a.id).0, key(a.id).1, a.port))
        .collect();
    let exposed = acks
        .iter()
        .filter(|a| {
            let (ms, node) = key(a.id);
            rows.contains_key(&a.id)
                && lost_at
                    .iter()
                    .any(|l| l.0 == ms && l.1 == node && l.2 != a.port)
        })
        .count();
    let port_node: HashMap<u16, u16> = ha.members.iter().map(|m| (m.pg_port, m.node_id)).collect();
    for a in &acks {
        assert_eq!(
            layout::decode(a.id).unwrap().node,
            port_node[&a.port],
            "ID {} acknowledged by port {} carries another node id",
            a.id,
            a.port
        );
    }
    eprintln!(
        "[{name}] policy {policy:?}, synchronous_mode {sync}: {} writes acknowledged ({} client \
         errors), {} rows on the last leader {}; duplicate acknowledged IDs {duplicates}, \
         acknowledged IDs missing {missing}, acknowledged rows lost {lost_values}, IDs issued \
         for two rows {reissued}, IDs held at the millisecond and node id of a lost one \
         {exposed}; setup {setup:?}, total {:?}",
        acks.len(),
        errors,
        rows.len(),
        ha.members[leader].name,
        started.elapsed()
    );
    // Order: every ID a new leader acknowledged after a failover or switchover is above every
    // ID acknowledged before the event (and any the old leader still acknowledged after it).
    let mut order_violations = 0;
    let mut kept_order_violations = 0;
    for r in reports.iter().filter(|r| r.event != Event::Rejoin) {
        let new_port = ha.members[r.new_leader].pg_port;
        let first_new = acks
            .iter()
            .filter(|a| a.port == new_port && a.at >= r.at)
            .map(|a| a.at)
            .min()
            .unwrap();
        let before_max = acks
            .iter()
            .filter(|a| a.at < r.at || (a.port != new_port && a.at < first_new))
            .map(|a| a.id)
            .max()
            .unwrap();
        let after: Vec<i64> = acks
            .iter()
            .filter(|a| a.port == new_port && a.at >= r.at)
            .map(|a| a.id)
            .collect();
        let below = after.iter().filter(|id| **id <= before_max).count();
        // The same against the acknowledged IDs the last leader still holds (asynchronous
        // replication loses the others).
        let kept_before_max = acks
            .iter()
            .filter(|a| a.at < r.at && rows.contains_key(&a.id))
            .map(|a| a.id)
            .max()
            .unwrap();
        let below_kept = after.iter().filter(|id| **id <= kept_before_max).count();
        if below > 0 {
            let show_id = |id: i64| {
                let d = layout::decode(id).unwrap();
                let by = acks.iter().find(|a| a.id == id).unwrap();
                format!(
                    "{id} (node {}, acknowledged by port {}, {:?} after the event)",
                    d.node,
                    by.port,
                    by.at.checked_duration_since(r.at)
                )
            };
            eprintln!(
                "[{name}] after {:?}: highest before {}, lowest after {}, highest after {}",
                r.event,
                show_id(before_max),
                show_id(*after.iter().min().unwrap()),
                show_id(*after.iter().max().unwrap()),
            );
        }
        eprintln!(
            "[{name}] after {:?} ({} -> {}): {} IDs acknowledged by the new leader, {below} not \
             above the highest acknowledged before, {below_kept} not above the highest kept \
             (downtime {:?}, longest pause {:?}) {}",
            r.event,
            ha.members[r.old_leader].name,
            ha.members[r.new_leader].name,
            after.len(),
            r.to_first_ack,
            r.gap,
            r.note
        );
        order_violations += below;
        kept_order_violations += below_kept;
    }
    if policy == Policy::PerMember && !ha.ask_standbys {
        ha.ask_standbys = true;
        for r in ha.replicas(leader) {
            let chain = ha.probe_replica(r, leader);
            eprintln!(
                "[{name}] at the end: replica {} node_id_chain = {chain}",
                ha.members[r].name
            );
        }
    }
    // In every mode: a new leader issues above everything it replayed.
    assert_eq!(
        kept_order_violations, 0,
        "IDs after a failover not above the acknowledged IDs the new leader holds"
    );
    if sync {
        assert_eq!(duplicates, 0, "duplicate acknowledged IDs");
        assert_eq!(missing, 0, "acknowledged IDs missing on the last leader");
        assert_eq!(
            lost_values, 0,
            "acknowledged rows missing on the last leader"
        );
        assert_eq!(reissued, 0, "IDs issued for two rows");
        assert_eq!(
            order_violations, 0,
            "IDs after a failover not above those before"
        );
    }
    (duplicates, missing, reissued)
}

/// synchronous_mode with one node id for the whole cluster: a kill -9 failover, the old leader
/// rejoining through pg_rewind, a planned switchover.
#[test]
fn patroni_sync_shared_node_id_failover_rejoin_switchover() {
    if !on_pg15("ha-sync-shared") {
        return;
    }
    scenario(
        "ha-sync-shared",
        ports::take(HA_PORTS),
        Policy::Shared,
        true,
        &[Event::Kill, Event::Rejoin, Event::Switchover],
        StandbyIds::Throughout,
    );
}

/// synchronous_mode with one node id per member: the same events; the replicas are asked for
/// IDs under their own node ids once the events are over.
#[test]
fn patroni_sync_node_id_per_member_failover_rejoin_switchover() {
    if !on_pg15("ha-sync-member") {
        return;
    }
    scenario(
        "ha-sync-member",
        ports::take(HA_PORTS),
        Policy::PerMember,
        true,
        &[Event::Kill, Event::Rejoin, Event::Switchover],
        StandbyIds::AtTheEnd,
    );
}

/// The same, with the replicas issuing IDs under their own node ids from the start: a replica
/// that issued IDs while in recovery (its ceilings in its state file only), promoted after the
/// failover with the floor it replayed an hour ahead of its clock, must log a ceiling before
/// its first ID as leader, or the next leader after the switchover starts below the IDs it
/// acknowledged.
#[test]
fn patroni_sync_node_id_per_member_standbys_issuing_ids_failover_switchover() {
    if !on_pg15("ha-sync-member-issuing") {
        return;
    }
    scenario(
        "ha-sync-member-issuing",
        ports::take(HA_PORTS),
        Policy::PerMember,
        true,
        &[Event::Kill, Event::Switchover],
        StandbyIds::Throughout,
    );
}

/// Asynchronous replication, one node id for the cluster: one kill -9 failover. Acknowledged
/// rows may be lost; measured, not asserted (docs/ha.md says what can repeat).
#[test]
fn patroni_async_shared_node_id_failover() {
    if !on_pg15("ha-async-shared") {
        return;
    }
    scenario(
        "ha-async-shared",
        ports::take(HA_PORTS),
        Policy::Shared,
        false,
        &[Event::KillLagging],
        StandbyIds::Throughout,
    );
}

/// Asynchronous replication, one node id per member: one kill -9 failover. An ID can never be
/// issued twice, whatever is lost: the new leader's IDs carry another node id.
#[test]
fn patroni_async_node_id_per_member_failover() {
    if !on_pg15("ha-async-member") {
        return;
    }
    let (duplicates, _missing, reissued) = scenario(
        "ha-async-member",
        ports::take(HA_PORTS),
        Policy::PerMember,
        false,
        &[Event::KillLagging],
        StandbyIds::Throughout,
    );
    assert_eq!(duplicates, 0, "duplicate acknowledged IDs");
    assert_eq!(reissued, 0, "IDs issued for two rows");
}

// ---------------------------------------------------------------------------------------------
// PgBouncer

/// PgBouncer 1.18 in transaction pooling mode in front of a plain server: four clients on the
/// simple query protocol through it; a PAUSE/RESUME of the pool and a crash of the server
/// (kill -9, restart) during the load.
#[test]
fn pgbouncer_transaction_pooling_load_through_pause_and_crash() {
    if !on_pg15("ha-bouncer") {
        return;
    }
    let bouncer_port = ports::one();
    let server = Cluster::init("ha-bouncer", &["snowflake_id.node_id = 20"]);
    let pg_port = server.port;
    server.start();
    server.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v bigint NOT NULL UNIQUE)",
    );
    let dir = snowflake_it::clusters_root().join("ha-bouncer-pgbouncer");
    let (bouncer, mut admin) = pgbouncer(&dir, bouncer_port, pg_port, &["postgres"]);
    let mode = admin
        .simple_query("SHOW CONFIG")
        .unwrap()
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) if r.get(0) == Some("pool_mode") => {
                r.get(1).map(String::from)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(mode, "transaction");

    let conninfo = format!(
        "host=127.0.0.1 port={bouncer_port} user=postgres dbname=postgres connect_timeout=5"
    );
    let load = Load::start(&conninfo, Protocol::Simple, 4);
    let t0 = Instant::now();
    load.wait_acks(t0, None, 2000, Duration::from_secs(60));

    // PAUSE: PgBouncer waits for the running transactions, then holds new ones until RESUME
    // (what a planned switchover behind PgBouncer does); no client sees an error.
    let paused = Instant::now();
    admin.simple_query("PAUSE postgres").unwrap();
    let held_from = Instant::now();
    // The pause itself: a second without server connections.
    thread::sleep(Duration::from_millis(1000));
    // An answer sent before PAUSE returned may be recorded by its client thread a moment
    // later: 200 ms of slack.
    let during: usize = load
        .acks
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.at > held_from + Duration::from_millis(200))
        .count();
    admin.simple_query("RESUME postgres").unwrap();
    let resumed = Instant::now();
    let first = load.wait_acks(resumed, None, 1000, Duration::from_secs(60));
    let errors = load.errors_since(paused);
    assert!(errors.is_empty(), "errors across PAUSE/RESUME: {errors:?}");
    assert_eq!(during, 0, "writes acknowledged while the pool was paused");
    eprintln!(
        "[ha-bouncer] PAUSE/RESUME: writes held {:?} (PAUSE itself took {:?}), first write \
         {:?} after RESUME, no client error",
        resumed - held_from,
        held_from - paused,
        first - resumed
    );

    // A crash of the server behind PgBouncer: clients get errors and reconnect to PgBouncer,
    // which opens new server connections once the server is back.
    let crashed = Instant::now();
    server.kill9_postmaster();
    let down = Instant::now();
    server.start();
    let first = load.wait_acks(down, None, 1000, Duration::from_secs(120));
    let crash_errors = load.errors_since(crashed).len();
    let (acks, errors) = load.finish();
    let mut c = server.connect();
    let rows: HashMap<i64, i64> = c
        .query("SELECT id, v FROM audit", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    assert_eq!(count_duplicates(&ids), 0, "duplicate acknowledged IDs");
    for a in &acks {
        assert_eq!(
            rows.get(&a.id),
            Some(&a.v),
            "acknowledged row {} not held",
            a.id
        );
        assert_eq!(layout::decode(a.id).unwrap().node, 20);
        assert_eq!(a.port, pg_port);
    }
    let before = acks
        .iter()
        .filter(|a| a.at < crashed)
        .map(|a| a.id)
        .max()
        .unwrap();
    let after: Vec<i64> = acks.iter().filter(|a| a.at >= down).map(|a| a.id).collect();
    assert!(
        after.iter().all(|id| *id > before),
        "IDs after the crash not above those before"
    );
    eprintln!(
        "[ha-bouncer] crash and restart behind PgBouncer: first write acknowledged after {:?} \
         ({crash_errors} client errors); {} writes acknowledged in all through PgBouncer \
         ({errors} client errors), {} rows; duplicates 0, every acknowledged row held",
        first - crashed,
        acks.len(),
        rows.len()
    );
    drop(admin);
    drop(bouncer);
}

// ---------------------------------------------------------------------------------------------
// Monitoring

/// Parses Prometheus text: (metric name, labels, value) for each sample.
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_string(), labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn sample(all: &[(String, String, f64)], name: &str) -> Option<(String, f64)> {
    all.iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, l, v)| (l.clone(), *v))
}

/// The exporter's metrics once `name` shows up with a value satisfying `ok`.
fn scrape_until(
    port: u16,
    exporter: &mut Daemon,
    name: &str,
    ok: impl Fn(f64) -> bool,
) -> Vec<(String, String, f64)> {
    wait_for(
        &format!("{name} in /metrics"),
        Duration::from_secs(60),
        || {
            exporter.check_running();
            let (status, body) = http(port, "GET", "/metrics")?;
            let all = samples(&body);
            (status == 200 && sample(&all, name).is_some_and(|(_, v)| ok(v))).then_some(all)
        },
    )
}

/// The alert queries of docs/operations.md, as written there; each returns one row.
const ALERT_CLOCK_STEPS: &str = "SELECT clock_steps, clock_behind_ms FROM snowflake_stats()";
const ALERT_DRIFT_WAITS: &str = "SELECT drift_waits, drift_wait_ms FROM snowflake_stats()";
const ALERT_NODE_CLASHES: &str =
    "SELECT count(DISTINCT node_id) AS clashing_node_ids FROM snowflake_node_clashes";
const ALERT_REFUSING_STANDBY: &str = "SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('snowflake_id.node_id_chain') AS node_id_chain,
       pg_is_in_recovery() AND current_setting('snowflake_id.node_id_chain') = 'unknown'
         AS refuses_until_chain_known";

/// postgres_exporter with `tests/ha/queries.yaml` against a server on the clock shim: the
/// snowflake metrics appear with plausible values, and a clock step and waits at the drift bound
/// show up in them and in the alert queries; a standby with its primary's node id refuses IDs,
/// which its node_id_chain and the 25006 error show.
#[test]
fn postgres_exporter_serves_snowflake_metrics_and_the_alert_queries_fire() {
    if !on_pg15("ha-exporter") {
        return;
    }
    let exporter_port = ports::one();
    let files = snowflake_it::clusters_root().join("ha-exporter-clock");
    fresh_dir(&files);
    let shim = Shim::new(&files);
    let mut server = Cluster::init(
        "ha-exporter",
        &["snowflake_id.node_id = 21", "snowflake_id.max_drift_ms = 0"],
    );
    let pg_port = server.port;
    server.env = shim.env();
    server.start();
    server.psql(
        "CREATE EXTENSION snowflake_id;
         CREATE ROLE snowflake_monitor LOGIN IN ROLE pg_monitor;
         SELECT count(snowflake_nextval()) FROM generate_series(1, 1000)",
    );
    let queries = snowflake_it::project_root().join("tests/ha/queries.yaml");
    ensure_traversable(&queries);
    let dir = snowflake_it::clusters_root().join("ha-exporter-files");
    fresh_dir(&dir);
    let dsn =
        format!("postgresql://snowflake_monitor@127.0.0.1:{pg_port}/postgres?sslmode=disable");
    let mut exporter = Daemon::spawn(
        "prometheus-postgres-exporter",
        "/usr/bin/prometheus-postgres-exporter",
        &[
            &format!("--web.listen-address=127.0.0.1:{exporter_port}"),
            &format!("--extend.query-path={}", queries.display()),
            "--disable-settings-metrics",
        ],
        &[("DATA_SOURCE_NAME".into(), dsn)],
        &dir.join("exporter.log"),
    );
    let m = scrape_until(exporter_port, &mut exporter, "snowflake_issued", |v| {
        v >= 1000.0
    });
    let (labels, issued) = sample(&m, "snowflake_issued").unwrap();
    assert!(labels.contains("node_id=\"21\""), "labels {labels}");
    for (name, lo, hi) in [
        ("snowflake_clock_steps", 0.0, 0.0),
        ("snowflake_drift_waits", 0.0, 0.0),
        ("snowflake_ceiling_writes", 1.0, f64::MAX),
        ("snowflake_upstream_in_recovery", 0.0, 0.0),
        ("snowflake_upstream_node_id_chain_known", 1.0, 1.0),
        ("snowflake_upstream_node_id_chain_length", 1.0, 1.0),
        ("snowflake_node_clashes_node_ids", 0.0, 0.0),
    ] {
        let (_, v) = sample(&m, name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(v >= lo && v <= hi, "{name} = {v}");
    }
    // The ceiling is ahead of the last ID, both about now.
    let now = clock::real_unix_ms() as f64 / 1000.0;
    let (_, last) = sample(&m, "snowflake_last_id_time_seconds").unwrap();
    let (_, ceiling) = sample(&m, "snowflake_ceiling_seconds").unwrap();
    assert!((last - now).abs() < 120.0, "last ID time {last}, now {now}");
    assert!(
        ceiling >= last && ceiling - now < 120.0,
        "ceiling {ceiling}, last {last}"
    );
    let before_faults: Vec<String> = m
        .iter()
        .filter(|(n, _, _)| n.starts_with("snowflake"))
        .map(|(n, l, v)| format!("{n}{{{l}}} {v}"))
        .collect();
    eprintln!("[ha-exporter] metrics:\n  {}", before_faults.join("\n  "));

    // The alert queries answer, before any fault: nothing to alert on.
    let mut c = server.connect();
    let row = c.query_one(ALERT_CLOCK_STEPS, &[]).unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    // A burst above 4,096 IDs per ms reaches max_drift_ms (0 here: no millisecond borrowed
    // ahead of the clock): callers wait. 16 IDs a row keep the executor's cost per ID low.
    let waits_before: i64 = c.query_one(ALERT_DRIFT_WAITS, &[]).unwrap().get(0);
    assert_eq!(waits_before, 0);
    let row16 = vec!["snowflake_nextval()"; 16].join(", ");
    let started = Instant::now();
    c.query_one(
        &format!("SELECT count(*) FROM (SELECT {row16} FROM generate_series(1, 250000)) s"),
        &[],
    )
    .unwrap();
    let took = started.elapsed();
    let row = c.query_one(ALERT_DRIFT_WAITS, &[]).unwrap();
    let (waits, wait_ms): (i64, f64) = (row.get(0), row.get(1));
    assert!(
        waits > waits_before && wait_ms > 0.0,
        "4M IDs in one statement ({took:?}, {:.0} IDs/ms) did not wait at the drift bound: \
         {waits} waits (a machine drawing fewer than 4,096 IDs/ms never reaches it)",
        4_000_000.0 / took.as_millis().max(1) as f64
    );
    // A step of the wall clock back by 5 s: the generator counts it.
    shim.set_offset_ms(-5_000);
    clock::wait_until_server_offset(&mut c, -5_000);
    wait_for(
        "the clock step to be counted",
        Duration::from_secs(30),
        || {
            c.query_one("SELECT snowflake_nextval()", &[]).unwrap();
            let row = c.query_one(ALERT_CLOCK_STEPS, &[]).unwrap();
            (row.get::<_, i64>(0) >= 1).then_some(())
        },
    );
    let m = scrape_until(exporter_port, &mut exporter, "snowflake_clock_steps", |v| {
        v >= 1.0
    });
    let (_, exported_waits) = sample(&m, "snowflake_drift_waits").unwrap();
    assert!(
        exported_waits >= waits as f64,
        "exported drift waits {exported_waits} < {waits}"
    );
    eprintln!(
        "[ha-exporter] after a 4M burst and a 5 s step back: snowflake_clock_steps {}, \
         snowflake_drift_waits {exported_waits} (first scrape: issued {issued})",
        sample(&m, "snowflake_clock_steps").unwrap().1
    );

    // Two servers registered under one node id: the monitoring role sees the clash through the
    // view, and so does the exporter.
    let mut mon = Client::connect(
        &server
            .conninfo()
            .replace("user=postgres", "user=snowflake_monitor"),
        NoTls,
    )
    .unwrap();
    let clashes: i64 = mon.query_one(ALERT_NODE_CLASHES, &[]).unwrap().get(0);
    assert_eq!(clashes, 0);
    c.batch_execute(
        "INSERT INTO snowflake_nodes (node_id, system_identifier, host, port)
         VALUES (5, 1, 'a', 5432), (5, 2, 'b', 5432)",
    )
    .unwrap();
    let clashes: i64 = mon.query_one(ALERT_NODE_CLASHES, &[]).unwrap().get(0);
    assert_eq!(clashes, 1);
    scrape_until(
        exporter_port,
        &mut exporter,
        "snowflake_node_clashes_node_ids",
        |v| v == 1.0,
    );

    // A standby with its primary's node id: the refusal query says so, and so does the error.
    let standby = Cluster::standby(&server, "ha-exporter-standby", None);
    let mut s = standby.connect();
    let row = s.query_one(ALERT_REFUSING_STANDBY, &[]).unwrap();
    assert!(row.get::<_, bool>(0), "the standby is in recovery");
    let chain = wait_for("the standby's chain", Duration::from_secs(60), || {
        let chain = show(&mut s, "snowflake_id.node_id_chain");
        (chain != "unknown").then_some(chain)
    });
    let upstream_chain = show(&mut c, "snowflake_id.node_id_chain");
    let node_id = show(&mut s, "snowflake_id.node_id");
    assert!(
        upstream_chain.split(',').any(|n| n == node_id),
        "the primary's chain {upstream_chain} holds the standby's node id {node_id}"
    );
    let e = s
        .query_one("SELECT snowflake_nextval()", &[])
        .expect_err("a standby with its primary's node id issued an ID");
    assert_eq!(
        e.as_db_error().map(|d| d.code().clone()),
        Some(SqlState::READ_ONLY_SQL_TRANSACTION),
        "{e}"
    );
    eprintln!(
        "[ha-exporter] standby with the primary's node id: chain {chain}, refused: {}",
        e.as_db_error().unwrap().message()
    );
    drop(exporter);
}
