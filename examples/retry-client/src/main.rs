//! Writes audit rows through `retry_client::write_audit_row`:
//!
//!   cargo run -p retry_client -- "host=127.0.0.1 port=5432 user=postgres dbname=postgres" 10
//!
//! Creates `audit_log` if missing, writes the given number of rows (default 1), and prints one
//! JSON line per row, the ID as a string (JavaScript numbers lose precision above 2^53).

use retry_client::{create_table, write_audit_row, AuditEvent, Outcome, RetryPolicy};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(conninfo) = args.next() else {
        eprintln!("usage: retry-client <conninfo> [rows]");
        return ExitCode::from(2);
    };
    let rows: u32 = match args.next().map(|s| s.parse()) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("rows must be a number");
            return ExitCode::from(2);
        }
    };
    let policy = RetryPolicy::default();
    if let Err(e) = create_table(&conninfo, &policy).await {
        eprintln!("retry-client: cannot create audit_log: {e}");
        return ExitCode::FAILURE;
    }
    for i in 1..=rows {
        let event = AuditEvent {
            actor: "retry-client".into(),
            action: "example".into(),
            detail: format!("row {i} of {rows}"),
        };
        match write_audit_row(&conninfo, &event, &policy).await {
            Ok(r) => println!(
                "{{\"id\": \"{}\", \"outcome\": \"{}\", \"attempts\": {}}}",
                r.id,
                match r.outcome {
                    Outcome::Written => "written",
                    Outcome::AlreadyWritten => "already written",
                },
                r.attempts
            ),
            Err(e) => {
                eprintln!("retry-client: giving up on {event:?}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
