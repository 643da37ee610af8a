//! Case 6, instructions: callgrind on a single-user backend.

use super::*;

impl Bench<'_> {
    /// 6. Instructions, exactly repeatable where time is not: callgrind on a single-user backend
    ///    (`postgres --single`, so the server must be stopped) running the work N and 2N times;
    ///    (Ir(2N) - Ir(N)) / N is the cost of one more statement (`SELECT <generator>;`: parse,
    ///    plan, execute, print, no client protocol) or of one more call in a bulk statement.
    ///    User-space instructions only: system calls (socket I/O, /dev/urandom) are not counted.
    pub fn instructions(&self) -> Vec<M> {
        let mut out = Vec::new();
        for g in self.gens(&self.p.ir_gens) {
            let n = self.p.ir_stmts;
            let stmt = format!("SELECT {};\n", g.expr);
            let a = self.callgrind(&format!("ir_{}_stmt_1", g.id), &stmt.repeat(n));
            let b = self.callgrind(&format!("ir_{}_stmt_2", g.id), &stmt.repeat(2 * n));
            let per_stmt = (b as f64 - a as f64) / n as f64;
            let n = self.p.ir_calls;
            let bulk = |n: i64| {
                format!(
                    "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s;\n",
                    g.expr
                )
            };
            let a = self.callgrind(&format!("ir_{}_bulk_1", g.id), &bulk(n));
            let b = self.callgrind(&format!("ir_{}_bulk_2", g.id), &bulk(2 * n));
            let per_call = (b as f64 - a as f64) / n as f64;
            out.push(M::new("instructions", g.id, 1, "ir_per_stmt", per_stmt));
            out.push(M::new("instructions", g.id, 1, "ir_per_call", per_call));
            println!(
                "   {}: {per_stmt:.1} instructions per statement, {per_call:.1} per call",
                g.id
            );
        }
        out
    }

    /// Instructions (Ir) that a single-user backend executes for the statements in `sql`.
    fn callgrind(&self, name: &str, sql: &str) -> u64 {
        let file = self.script(name, sql);
        let stdin = std::fs::File::open(&file)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
        let out = snowflake_cluster::as_postgres("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(self.node.pg.bin("postgres"))
            .arg("--single")
            .arg("-D")
            .arg(self.node.data())
            .arg("postgres")
            .stdin(stdin)
            .output()
            .unwrap_or_else(|e| panic!("cannot run valgrind (apt-get install valgrind): {e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // A single-user backend reports a failed statement on stderr and still exits 0.
        if !out.status.success() || err.contains("ERROR:  ") {
            panic!(
                "postgres --single under callgrind failed ({}) on {}:\n{stdout}\n{err}",
                out.status,
                file.display()
            );
        }
        err.lines()
            .find_map(|l| l.split_once("Collected :").map(|x| x.1.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("callgrind reported no instruction count:\n{err}"))
    }
}
