//! Case 5, contention: backends drawing IDs at once, and duplicates among them.

use super::*;

impl Bench<'_> {
    /// 5. Contention: 2 and 8 backends at once, aggregate rate; then duplicates among the IDs
    ///    that 2 and 8 backends insert at once.
    pub fn contention(&self) -> Vec<M> {
        let mut out = Vec::new();
        let mut admin = self.client();
        let at_once = |backends: u32, sql: &str| -> f64 {
            let barrier = Barrier::new(backends as usize + 1);
            thread::scope(|s| {
                let ws: Vec<_> = (0..backends)
                    .map(|_| {
                        s.spawn(|| {
                            let mut c = self.client();
                            barrier.wait();
                            c.batch_execute(sql).map_err(sql_err(sql))
                        })
                    })
                    .collect();
                barrier.wait();
                let t0 = Instant::now();
                for w in ws {
                    w.join().expect("worker").unwrap_or_else(|e| panic!("{e}"));
                }
                t0.elapsed().as_secs_f64()
            })
        };
        for rep in 1..=self.p.cont_reps {
            for backends in [2u32, 8] {
                for g in self.gens(&["select1", "snowflake"]) {
                    self.settle(&mut admin);
                    let n = self.p.cont_n;
                    let secs = at_once(
                        backends,
                        &format!(
                            "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s",
                            g.expr
                        ),
                    );
                    let rate = (n * backends as i64) as f64 / secs;
                    let metric = format!("ids_per_s_{backends}");
                    out.push(M::new("contention", g.id, rep, &metric, rate));
                    println!("   run {rep}: {backends} backends {} {rate:.0} IDs/s", g.id);
                }
            }
        }
        for backends in [2u32, 8] {
            self.settle(&mut admin);
            exec(&mut admin, "TRUNCATE bench_dup");
            at_once(
                backends,
                &format!(
                    "INSERT INTO bench_dup SELECT snowflake_nextval() FROM generate_series(1, {})",
                    self.p.dup_n
                ),
            );
            let r = admin
                .query_one(
                    "SELECT count(*), count(*) - count(DISTINCT v) FROM bench_dup",
                    &[],
                )
                .expect("duplicate count");
            let (rows, dups): (i64, i64) = (r.get(0), r.get(1));
            assert_eq!(rows, self.p.dup_n * backends as i64, "rows in bench_dup");
            let (m_rows, m_dups) = (
                format!("dup_rows_{backends}"),
                format!("duplicates_{backends}"),
            );
            out.push(M::new("contention", "snowflake", 1, &m_rows, rows as f64));
            out.push(M::new("contention", "snowflake", 1, &m_dups, dups as f64));
            println!("   {backends} backends: {rows} IDs, {dups} duplicates");
        }
        exec(&mut admin, "TRUNCATE bench_dup");
        out
    }
}
