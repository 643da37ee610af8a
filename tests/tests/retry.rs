//! Safe client retries (examples/retry-client) against a real server, with the acknowledgement of
//! a COMMIT lost on the way back. Ports 25911-25919, clusters `retry-*`.
//!
//! The fault: a TCP proxy between client and server that speaks just enough of the PostgreSQL
//! protocol to see messages. Armed, it forwards the client's COMMIT to the server, reads the
//! server's reply up to ReadyForQuery (so the commit is done and durable), relays none of it and
//! closes both connections: the client sees a broken connection for a write that happened.
//! A naive client (INSERT with the DEFAULT ID, plain retry) writes the row twice under that
//! fault, which shows the fault is real; the safe client writes it once and reports success.

use retry_client::{write_audit_row, AuditEvent, Outcome, RetryPolicy, CREATE_TABLE};
use snowflake_it::{ports, Cluster};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the armed proxy does to the next COMMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward the COMMIT, wait for the server's ReadyForQuery, drop the reply and the connection.
    LoseAck,
    /// Drop the connection instead of forwarding the COMMIT (the transaction rolls back).
    DropCommit,
}

#[derive(Default)]
struct Faults {
    armed: Mutex<Vec<Fault>>,
    /// Acknowledgements swallowed after the server had answered the COMMIT.
    acks_lost: AtomicUsize,
    commits_dropped: AtomicUsize,
}

impl Faults {
    fn arm(&self, f: Fault) {
        self.armed.lock().unwrap().push(f);
    }
    fn take(&self) -> Option<Fault> {
        self.armed.lock().unwrap().pop()
    }
}

/// One protocol message: type byte (none for the startup packet) and the whole raw message.
async fn read_message(r: &mut OwnedReadHalf, typed: bool) -> std::io::Result<(u8, Vec<u8>)> {
    let mut raw = Vec::new();
    let kind = if typed {
        let k = r.read_u8().await?;
        raw.push(k);
        k
    } else {
        0
    };
    let len = r.read_u32().await?;
    assert!((4..1 << 30).contains(&len), "bad message length {len}");
    raw.extend_from_slice(&len.to_be_bytes());
    let start = raw.len();
    raw.resize(start + len as usize - 4, 0);
    r.read_exact(&mut raw[start..]).await?;
    Ok((kind, raw))
}

/// Whether a client message is a COMMIT: a simple query, or a Parse of the extended protocol.
fn is_commit(kind: u8, raw: &[u8]) -> bool {
    let body = &raw[5..];
    let sql = match kind {
        b'Q' => body,
        b'P' => match body.iter().position(|&b| b == 0) {
            Some(i) => &body[i + 1..],
            None => return false,
        },
        _ => return false,
    };
    let sql = String::from_utf8_lossy(sql)
        .trim_matches(char::from(0))
        .trim()
        .to_ascii_uppercase();
    sql.starts_with("COMMIT") || sql.starts_with("END")
}

async fn client_to_server(
    mut cr: OwnedReadHalf,
    mut sw: OwnedWriteHalf,
    faults: Arc<Faults>,
    fault_tx: tokio::sync::watch::Sender<Option<Fault>>,
) -> std::io::Result<()> {
    // Startup packet (sslmode=disable: no SSLRequest), then typed messages.
    let (_, startup) = read_message(&mut cr, false).await?;
    sw.write_all(&startup).await?;
    loop {
        let (kind, raw) = read_message(&mut cr, true).await?;
        if is_commit(kind, &raw) {
            if let Some(f) = faults.take() {
                // Tell the other direction before the server can possibly answer.
                let _ = fault_tx.send(Some(f));
                if f == Fault::LoseAck {
                    sw.write_all(&raw).await?;
                } else {
                    faults.commits_dropped.fetch_add(1, Ordering::SeqCst);
                }
                // Nothing more from this client reaches the server.
                std::future::pending::<()>().await;
            }
        }
        sw.write_all(&raw).await?;
    }
}

async fn server_to_client(
    mut sr: OwnedReadHalf,
    mut cw: OwnedWriteHalf,
    faults: Arc<Faults>,
    fault_rx: tokio::sync::watch::Receiver<Option<Fault>>,
) -> std::io::Result<()> {
    loop {
        let read = tokio::select! {
            m = read_message(&mut sr, true) => Some(m?),
            _ = wait_for_fault(fault_rx.clone(), Fault::DropCommit) => None,
        };
        let Some((kind, raw)) = read else {
            return Ok(()); // COMMIT dropped: close the client connection
        };
        if *fault_rx.borrow() == Some(Fault::LoseAck) {
            // The reply to the COMMIT: swallow it; once ReadyForQuery came, the commit is over.
            if kind == b'Z' {
                faults.acks_lost.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            continue;
        }
        cw.write_all(&raw).await?;
    }
}

async fn wait_for_fault(mut rx: tokio::sync::watch::Receiver<Option<Fault>>, want: Fault) {
    let _ = rx.wait_for(|f| *f == Some(want)).await;
}

async fn relay(client: TcpStream, server_port: u16, faults: Arc<Faults>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        return;
    };
    // Messages are relayed one by one: no Nagle delay on top of the peer's delayed ACKs.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (tx, rx) = tokio::sync::watch::channel(None);
    // Whichever direction ends first ends the relay; dropping the halves closes both sockets.
    tokio::select! {
        _ = client_to_server(cr, sw, faults.clone(), tx) => {}
        _ = server_to_client(sr, cw, faults, rx) => {}
    }
}

async fn start_proxy(port: u16, server_port: u16, faults: Arc<Faults>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(relay(sock, server_port, faults.clone()));
        }
    });
}

fn conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable connect_timeout=10")
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        max_retries: 6,
    }
}

/// The naive way: INSERT with the DEFAULT ID, retried as a whole on a transient error.
async fn naive_write(conninfo: &str, event: &AuditEvent) -> (u32, Result<(), String>) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result: Result<(), tokio_postgres::Error> = async {
            let mut c = retry_client::connect(conninfo).await?;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO audit_log (actor, action, detail) VALUES ($1, $2, $3)",
                &[&event.actor, &event.action, &event.detail],
            )
            .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => return (attempts, Ok(())),
            Err(e) if retry_client::is_transient(&e) && attempts < 5 => {
                tokio::time::sleep(Duration::from_millis(20 << attempts)).await
            }
            Err(e) => return (attempts, Err(e.to_string())),
        }
    }
}

fn event(detail: &str) -> AuditEvent {
    AuditEvent {
        actor: "alice".into(),
        action: "login".into(),
        detail: detail.into(),
    }
}

fn rows_with_detail(node: &Cluster, detail: &str) -> Vec<i64> {
    node.connect()
        .query(
            "SELECT id FROM audit_log WHERE detail = $1 ORDER BY id",
            &[&detail],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn lost_commit_acknowledgement_safe_client_writes_once_naive_client_twice() {
    let node = Cluster::init("retry-ack", &["snowflake_id.node_id = 6"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    let proxy_port = ports::one();
    let via_proxy = conninfo(proxy_port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let faults = Arc::new(Faults::default());
    rt.block_on(start_proxy(proxy_port, node.port, faults.clone()));

    // No fault: one attempt, written.
    let r = rt
        .block_on(write_audit_row(
            &via_proxy,
            &event("no fault"),
            &fast_policy(),
        ))
        .unwrap();
    assert_eq!((r.outcome, r.attempts), (Outcome::Written, 1));
    assert_eq!(rows_with_detail(&node, "no fault"), vec![r.id]);

    // The naive client under a lost acknowledgement: its retry writes a second row.
    faults.arm(Fault::LoseAck);
    let (attempts, result) = rt.block_on(naive_write(&via_proxy, &event("naive")));
    assert_eq!(
        faults.acks_lost.load(Ordering::SeqCst),
        1,
        "the fault was not injected"
    );
    assert!(result.is_ok(), "naive client failed: {result:?}");
    assert_eq!(attempts, 2);
    let naive_rows = rows_with_detail(&node, "naive");
    assert_eq!(
        naive_rows.len(),
        2,
        "the lost acknowledgement did not make the naive client duplicate: {naive_rows:?}"
    );

    // The safe client under the same fault: it succeeds on its retry, and there is one row.
    faults.arm(Fault::LoseAck);
    let r = rt
        .block_on(write_audit_row(&via_proxy, &event("safe"), &fast_policy()))
        .unwrap();
    assert_eq!(
        faults.acks_lost.load(Ordering::SeqCst),
        2,
        "the fault was not injected"
    );
    assert_eq!(r.outcome, Outcome::AlreadyWritten, "{r:?}");
    assert_eq!(r.attempts, 2, "{r:?}");
    assert_eq!(rows_with_detail(&node, "safe"), vec![r.id]);

    // The COMMIT never reaches the server: the transaction rolls back, the retry writes the row.
    faults.arm(Fault::DropCommit);
    let r = rt
        .block_on(write_audit_row(
            &via_proxy,
            &event("dropped commit"),
            &fast_policy(),
        ))
        .unwrap();
    assert_eq!(
        faults.commits_dropped.load(Ordering::SeqCst),
        1,
        "the fault was not injected"
    );
    assert_eq!((r.outcome, r.attempts), (Outcome::Written, 2), "{r:?}");
    assert_eq!(rows_with_detail(&node, "dropped commit"), vec![r.id]);

    // Several rows in a row, a lost acknowledgement for every other one: still one row each.
    for i in 0..10 {
        if i % 2 == 0 {
            faults.arm(Fault::LoseAck);
        }
        let detail = format!("batch {i}");
        let r = rt
            .block_on(write_audit_row(&via_proxy, &event(&detail), &fast_policy()))
            .unwrap();
        let expected = if i % 2 == 0 {
            Outcome::AlreadyWritten
        } else {
            Outcome::Written
        };
        assert_eq!(r.outcome, expected, "row {i}: {r:?}");
        assert_eq!(rows_with_detail(&node, &detail), vec![r.id]);
    }
    assert_eq!(faults.acks_lost.load(Ordering::SeqCst), 7);
    let total: i64 = node
        .connect()
        .query_one("SELECT count(*) FROM audit_log", &[])
        .unwrap()
        .get(0);
    assert_eq!(total, 1 + 2 + 1 + 1 + 10);
}

#[test]
fn unique_violation_on_the_first_attempt_is_an_error_not_success() {
    // A row already holds the ID the client is about to use (as if two servers shared a node id):
    // without a retry behind it, a unique violation must not be taken for "already written".
    let node = Cluster::init("retry-conflict", &["snowflake_id.node_id = 7"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    // Every ID this server issues from now on collides with a row written with the same value.
    node.psql(
        "CREATE FUNCTION collide() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.actor <> 'squatter' THEN
             INSERT INTO audit_log (id, actor, action, detail) VALUES (NEW.id, 'squatter', 'x', 'x');
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER collide BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION collide();",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(write_audit_row(
            &conninfo(node.port),
            &event("mine"),
            &fast_policy(),
        ))
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("23505"), "{err}");
    assert!(rows_with_detail(&node, "mine").is_empty());
}

/// The guide's case of a lost attempt still running on the server (its COMMIT not yet done when
/// the client gave up on it): the retry's INSERT of the same ID waits on the primary key until
/// that transaction ends, then fails with 23505 if it committed, or writes the row if it rolled
/// back. One row either way.
#[test]
fn retry_while_the_first_attempt_is_still_open_waits_on_the_key_then_fails_or_writes() {
    let node = Cluster::init("retry-pending", &["snowflake_id.node_id = 8"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    const INSERT: &str =
        "INSERT INTO audit_log (id, actor, action, detail) VALUES ($1, 'alice', 'login', $2)";
    for commit in [true, false] {
        let detail = format!("pending, first attempt commits: {commit}");
        let mut first = node.connect();
        let id: i64 = first
            .query_one("SELECT snowflake_nextval()", &[])
            .unwrap()
            .get(0);
        let mut attempt = first.transaction().unwrap();
        attempt.execute(INSERT, &[&id, &detail]).unwrap();
        let (conninfo, d) = (node.conninfo(), detail.clone());
        let retry = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
            let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
            (pid, c.execute(INSERT, &[&id, &d]))
        });
        // The retry is blocked on the first attempt's transaction, not finished.
        let waiting = snowflake_it::wait_for(
            "the retry to wait on the key",
            Duration::from_secs(30),
            || {
                let v = node.psql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid' \
                 AND query LIKE 'INSERT INTO audit_log%'",
            );
                (!v.is_empty()).then_some(v)
            },
        );
        assert!(!retry.is_finished(), "the retry did not wait");
        if commit {
            attempt.commit().unwrap();
        } else {
            attempt.rollback().unwrap();
        }
        let (pid, result) = retry.join().unwrap();
        assert_eq!(waiting, pid.to_string(), "another backend was waiting");
        if commit {
            let e = result.expect_err("the retry wrote a second row");
            assert_eq!(
                e.as_db_error().map(|d| d.code().code()),
                Some("23505"),
                "{e}"
            );
        } else {
            assert_eq!(result.unwrap(), 1);
        }
        assert_eq!(rows_with_detail(&node, &detail), vec![id]);
    }
}
