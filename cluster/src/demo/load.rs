//! The loads: pgbench on the three nodes at once, `CLIENTS` clients each, for `DURATION`
//! seconds, each transaction one multi-row INSERT (`scripts/cluster/*.pgbench`). A client that
//! hits an error stops and pgbench exits with status 2; that goes to the checks instead of
//! ending the demo.

use super::nodes::Nodes;
use super::{check_signal, Context, Load, Options, PgbenchRun, Result};
use std::fs::{self, File};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Script {
    /// IDs from `snowflake_nextval()`, each also logged in `issued_ids`.
    Snowflake,
    /// IDs made of the change's `yyyyMMddHHmmssSSS` time, `ON CONFLICT DO NOTHING`.
    Timestamp,
}

impl Script {
    fn phase(self) -> &'static str {
        match self {
            Script::Snowflake => "snowflake",
            Script::Timestamp => "timestamp",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Script::Snowflake => include_str!("../../../scripts/cluster/insert_snowflake.pgbench"),
            Script::Timestamp => include_str!("../../../scripts/cluster/insert_timestamp.pgbench"),
        }
    }
}

/// Runs one load on every node and reads pgbench's figures. Stops pgbench on a signal.
pub(crate) fn run(o: &Options, n: &Nodes, script: Script) -> Result<Load> {
    let phase = script.phase();
    let t0 = Instant::now();
    let mut children: Vec<(Child, std::path::PathBuf)> = Vec::new();
    for node in &n.nodes {
        let file = node.dir.join(format!("insert_{phase}.pgbench"));
        fs::write(&file, script.text()).ctx(|| format!("writing {}", file.display()))?;
        let out_path = node.dir.join(format!("pgbench-{phase}.out"));
        let out = File::create(&out_path).ctx(|| format!("creating {}", out_path.display()))?;
        let err = out.try_clone().ctx(|| "pgbench's output".into())?;
        let child = Command::new(o.pg.bin("pgbench"))
            .args(["-n", "-h", "127.0.0.1", "-U", "postgres", "-j", "2"])
            .arg("-p")
            .arg(node.port.to_string())
            .arg("-c")
            .arg(o.clients.to_string())
            .arg("-T")
            .arg(o.duration_s.to_string())
            .arg("-D")
            .arg(format!("rows={}", o.rows_per_insert))
            .arg("-f")
            .arg(&file)
            .arg("postgres")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        match child {
            Ok(c) => children.push((c, out_path)),
            Err(e) => {
                kill_all(&mut children);
                return Err(e).ctx(|| format!("starting {}", o.pg.bin("pgbench").display()));
            }
        }
    }
    let mut status: Vec<Option<i32>> = vec![None; children.len()];
    while status.iter().any(Option::is_none) {
        if let Err(e) = check_signal() {
            kill_all(&mut children);
            return Err(e);
        }
        for (i, (c, _)) in children.iter_mut().enumerate() {
            if status[i].is_none() {
                if let Some(st) = c.try_wait().ctx(|| "waiting for pgbench".into())? {
                    status[i] = Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
                }
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    let elapsed = t0.elapsed();
    let mut runs = Vec::new();
    for (i, (_, path)) in children.iter().enumerate() {
        let out = fs::read(path).ctx(|| format!("reading {}", path.display()))?;
        let run = parse(status[i].unwrap(), &String::from_utf8_lossy(&out));
        if run.transactions.is_none() {
            eprintln!(
                "pgbench reported no transactions on node {}:\n{}",
                i + 1,
                String::from_utf8_lossy(&out)
            );
        } else if let Some(line) = String::from_utf8_lossy(&out)
            .lines()
            .find(|l| l.contains("aborted in command"))
        {
            eprintln!("   node {}: {line}", i + 1);
        }
        runs.push(run);
    }
    Ok(Load {
        rows_per_insert: u64::from(o.rows_per_insert),
        runs: runs.try_into().expect("3 nodes"),
        elapsed,
    })
}

fn kill_all(children: &mut [(Child, std::path::PathBuf)]) {
    for (c, _) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// pgbench's exit status and output to figures: committed transactions, failed transactions
/// (PostgreSQL 15 and later print them), clients stopped by an error.
pub(crate) fn parse(status: i32, out: &str) -> PgbenchRun {
    let after = |prefix: &str| -> Option<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    PgbenchRun {
        status,
        transactions: after("number of transactions actually processed: "),
        failed: after("number of failed transactions: "),
        clients_stopped: out
            .lines()
            .filter(|l| l.contains("aborted in command"))
            .count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn pgbench_output_gives_transactions_failures_and_stopped_clients() {
        let out = "pgbench: error: client 2 script 0 aborted in command 1 query 0: ERROR:  injected INSERT failure\n\
                   transaction type: insert_snowflake.pgbench\n\
                   number of transactions actually processed: 1234\n\
                   number of failed transactions: 0 (0.000%)\n\
                   pgbench: error: Run was aborted; the above results are incomplete.\n";
        let r = parse(2, out);
        assert_eq!(r.status, 2);
        assert_eq!(r.transactions, Some(1234));
        assert_eq!(r.failed, Some(0));
        assert_eq!(r.clients_stopped, 1);
        let none = parse(1, "pgbench: error: connection to server failed\n");
        assert_eq!(
            (none.transactions, none.failed, none.clients_stopped),
            (None, None, 0)
        );
    }
}
