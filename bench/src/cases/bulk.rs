//! Case 2, bulk: many values in one statement, the backend's CPU time per value.

use super::*;

impl Bench<'_> {
    /// 2. Bulk: `SELECT count(x) FROM (SELECT <generator> AS x FROM generate_series(1, N)) s`
    ///    in a fresh backend; its CPU time from `/proc/<pid>/stat`, in pairs with the constant.
    pub fn bulk(&self) -> Vec<M> {
        let gens = self.gens(&[
            "select1",
            "snowflake",
            "isn_weak",
            "noop_pgrx",
            "random",
            "uuidv7",
        ]);
        let n = self.p.bulk_n;
        let mut out = Vec::new();
        let mut admin = self.client();
        for pair in 1..=self.p.bulk_pairs {
            let mut line = format!("   pair {pair}: backend CPU ms");
            for k in 0..gens.len() {
                let g = gens[(k + pair as usize) % gens.len()];
                if g.id == "snowflake" {
                    self.settle(&mut admin);
                }
                let waits0 = q_i64(&mut admin, "SELECT drift_waits FROM snowflake_stats()");
                let mut c = self.client();
                let pid = c
                    .query_one("SELECT pg_backend_pid()", &[])
                    .expect("pg_backend_pid()")
                    .get::<_, i32>(0);
                let sql = format!(
                    "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s",
                    g.expr
                );
                let t0 = ticks(pid, false);
                let start = Instant::now();
                let got = q_i64(&mut c, &sql);
                let wall = start.elapsed().as_secs_f64() * 1e3;
                let t1 = ticks(pid, false);
                assert_eq!(got, n, "{sql} counted {got}");
                let cpu_ms = (t1 - t0) as f64 * 1e3 / clk_tck();
                out.push(M::new("bulk", g.id, pair, "ids", n as f64));
                out.push(M::new("bulk", g.id, pair, "cpu_ms", cpu_ms));
                out.push(M::new("bulk", g.id, pair, "wall_ms", wall));
                if g.id == "snowflake" {
                    let waits = q_i64(&mut admin, "SELECT drift_waits FROM snowflake_stats()");
                    out.push(M::new(
                        "bulk",
                        g.id,
                        pair,
                        "drift_waits",
                        (waits - waits0) as f64,
                    ));
                }
                line.push_str(&format!(" {} {cpu_ms:.0}", g.id));
            }
            println!("{line}");
        }
        out
    }
}
