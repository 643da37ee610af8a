//! Writing audit rows with retries and exponential backoff, never twice.
//!
//! A client that retries a failed INSERT can duplicate a row: when the connection breaks after
//! the server committed but before the client read the acknowledgement, the client sees an error
//! for a write that happened. Retrying `INSERT ... DEFAULT snowflake_nextval()` then writes a
//! second row with a new ID. The cure is to make the write idempotent:
//!
//! 1. take the ID first, in its own round trip: `SELECT snowflake_nextval()` (retrying that is
//!    harmless: an unused ID is just a gap);
//! 2. insert the row with that explicit ID, retrying with backoff on transient errors, each
//!    attempt on a fresh connection;
//! 3. on a retry, a unique violation (SQLSTATE 23505) on that ID means an earlier attempt did
//!    commit: the row is checked to be ours and reported as [`Outcome::AlreadyWritten`].
//!    On the *first* attempt a unique violation is a real error (someone else holds the ID: two
//!    servers sharing a node id, for instance) and is not hidden.

use backon::{ExponentialBuilder, Retryable};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The table the example writes to.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS audit_log (
    id         bigint PRIMARY KEY DEFAULT snowflake_nextval(),
    actor      text NOT NULL,
    action     text NOT NULL,
    detail     text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now())";

const INSERT: &str = "INSERT INTO audit_log (id, actor, action, detail) VALUES ($1, $2, $3, $4)";
const SELECT_ROW: &str = "SELECT actor, action, detail FROM audit_log WHERE id = $1";

/// One audit row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This call's last attempt inserted and committed the row.
    Written,
    /// An earlier attempt had committed the row; its acknowledgement was lost.
    AlreadyWritten,
}

/// What [`write_audit_row`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The row's ID.
    pub id: i64,
    pub outcome: Outcome,
    /// INSERT attempts (1 = no retry).
    pub attempts: u32,
    /// Attempts to draw the ID.
    pub id_attempts: u32,
}

/// Exponential backoff: `min_delay`, doubling up to `max_delay`, with jitter, at most
/// `max_retries` retries after the first attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            max_retries: 8,
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Why a write failed for good.
#[derive(Debug)]
pub enum Error {
    /// From the server or the connection.
    Postgres(tokio_postgres::Error),
    /// The ID is held by a row this client did not write (see the crate docs).
    Conflict {
        id: i64,
        found: Option<(String, String, String)>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{} ({})", db.message(), db.code().code()),
                None => write!(f, "{e}"),
            },
            Error::Conflict {
                id,
                found: Some(row),
            } => {
                write!(f, "ID {id} is already used by another row {row:?}")
            }
            Error::Conflict { id, found: None } => {
                write!(f, "unique violation for ID {id}, but no row has that ID")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

impl Error {
    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Postgres(e) => is_transient(e),
            Error::Conflict { .. } => false,
        }
    }
}

/// Transient: the connection failed or broke (the statement may or may not have run), or the
/// server says so (SQLSTATE class 08, serialization failure, deadlock, shutdown, starting up,
/// too many connections). Everything else (constraint violations, syntax, permissions) is not.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
        None => {
            e.is_closed()
                || std::error::Error::source(e)
                    .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
                || e.to_string().contains("timeout")
        }
    }
}

/// Opens a connection; its I/O runs on a spawned task.
pub async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn log_retry(what: &'static str) -> impl FnMut(&Error, Duration) {
    move |e, d| eprintln!("retry-client: {what} failed ({e}); retrying in {d:?}")
}

/// Draws a Snowflake ID (`SELECT snowflake_nextval()`), retrying transient failures.
pub async fn draw_id(conninfo: &str, policy: &RetryPolicy) -> Result<(i64, u32), Error> {
    let attempts = AtomicU32::new(0);
    let attempts_ref = &attempts;
    let id = (move || async move {
        attempts_ref.fetch_add(1, Ordering::SeqCst);
        let client = connect(conninfo).await?;
        let id: i64 = client
            .query_one("SELECT snowflake_nextval()", &[])
            .await?
            .get(0);
        Ok::<i64, Error>(id)
    })
    .retry(policy.backoff())
    .when(Error::is_transient)
    .notify(log_retry("drawing an ID"))
    .await?;
    Ok((id, attempts.load(Ordering::SeqCst)))
}

/// Creates `audit_log` if missing (idempotent, so simply retried on transient failures).
pub async fn create_table(conninfo: &str, policy: &RetryPolicy) -> Result<(), Error> {
    (move || async move {
        let client = connect(conninfo).await?;
        client.batch_execute(CREATE_TABLE).await?;
        Ok::<(), Error>(())
    })
    .retry(policy.backoff())
    .when(Error::is_transient)
    .notify(log_retry("creating audit_log"))
    .await
}

/// One attempt: a fresh connection, BEGIN, INSERT with the pre-drawn ID, COMMIT.
async fn insert_once(
    conninfo: &str,
    id: i64,
    event: &AuditEvent,
    retry: bool,
) -> Result<Outcome, Error> {
    let mut client = connect(conninfo).await?;
    let tx = client.transaction().await?;
    match tx
        .execute(INSERT, &[&id, &event.actor, &event.action, &event.detail])
        .await
    {
        Ok(_) => {
            tx.commit().await?;
            Ok(Outcome::Written)
        }
        Err(e) if retry && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().await?;
            // An earlier attempt committed; make sure the row holding the ID is ours.
            let found = client
                .query_opt(SELECT_ROW, &[&id])
                .await?
                .map(|r| (r.get(0), r.get(1), r.get(2)));
            match found {
                Some((a, b, c)) if a == event.actor && b == event.action && c == event.detail => {
                    Ok(Outcome::AlreadyWritten)
                }
                found => Err(Error::Conflict { id, found }),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes one audit row exactly once, retrying with exponential backoff (see the crate docs).
pub async fn write_audit_row(
    conninfo: &str,
    event: &AuditEvent,
    policy: &RetryPolicy,
) -> Result<Report, Error> {
    let (id, id_attempts) = draw_id(conninfo, policy).await?;
    let attempts = AtomicU32::new(0);
    let attempts_ref = &attempts;
    let outcome = (move || async move {
        let n = attempts_ref.fetch_add(1, Ordering::SeqCst) + 1;
        insert_once(conninfo, id, event, n > 1).await
    })
    .retry(policy.backoff())
    .when(Error::is_transient)
    .notify(log_retry("writing the audit row"))
    .await?;
    Ok(Report {
        id,
        outcome,
        attempts: attempts.load(Ordering::SeqCst),
        id_attempts,
    })
}
