//! Case 3, sustained: IDs at full speed, sampled; the rate at the drift bound.

use super::*;

impl Bench<'_> {
    fn set_drift_bound(&self, c: &mut Client, bound: Option<u32>) {
        match bound {
            Some(b) => exec(
                c,
                &format!("ALTER SYSTEM SET snowflake_id.max_drift_ms = {b}"),
            ),
            None => exec(c, "ALTER SYSTEM RESET snowflake_id.max_drift_ms"),
        }
        exec(c, "SELECT pg_reload_conf()");
        thread::sleep(Duration::from_millis(500));
    }

    /// 3. Sustained: many IDs from 1 or 2 backends at once, `snowflake_stats()` sampled every
    ///    50 ms; the rate once the newest ID leads the clock by the whole drift allowance.
    pub fn sustained(&self, samples: &mut Vec<Sample>) -> Vec<M> {
        let mut out = Vec::new();
        let mut admin = self.client();
        for (i, (name, backends, ids, bound)) in self.p.sustained.iter().enumerate() {
            let rep = i as u32 + 1;
            self.set_drift_bound(&mut admin, *bound);
            let bound_ms = admin
                .query_one(
                    "SELECT setting::bigint FROM pg_settings WHERE name = 'snowflake_id.max_drift_ms'",
                    &[],
                )
                .expect("max_drift_ms")
                .get::<_, i64>(0);
            self.settle(&mut admin);
            let stop = AtomicBool::new(false);
            let per_backend = ids / *backends as i64 / 10;
            let mut run_samples = Vec::new();
            thread::scope(|s| {
                let poller = s.spawn(|| {
                    let mut c = self.client();
                    let mut v = Vec::new();
                    loop {
                        let r = c
                            .query_one(
                                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8, \
                                 issued, drift_ms, drift_waits FROM snowflake_stats()",
                                &[],
                            )
                            .expect("snowflake_stats()");
                        v.push(Sample {
                            run: name.to_string(),
                            t_ms: r.get(0),
                            issued: r.get(1),
                            drift_ms: r.get(2),
                            drift_waits: r.get(3),
                        });
                        if stop.load(Ordering::Relaxed) {
                            return v;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                });
                thread::sleep(Duration::from_millis(300));
                let calls = ["snowflake_nextval()"; 10].join(", ");
                let sql = format!(
                    "SELECT count(greatest({calls})) FROM generate_series(1, {per_backend})"
                );
                let workers: Vec<_> = (0..*backends)
                    .map(|_| {
                        let sql = sql.clone();
                        s.spawn(move || {
                            let mut c = self.client();
                            q_i64(&mut c, &sql)
                        })
                    })
                    .collect();
                for w in workers {
                    assert_eq!(w.join().expect("sustained worker"), per_backend);
                }
                thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
                run_samples = poller.join().expect("poller");
            });
            let (at_ids, at_ms, tot_ids, tot_ms) = phases(&run_samples, bound_ms);
            let waits = run_samples.last().map_or(0, |s| s.drift_waits)
                - run_samples.first().map_or(0, |s| s.drift_waits);
            let rate_at = if at_ms > 0.0 {
                at_ids / at_ms
            } else {
                f64::NAN
            };
            for (metric, v) in [
                ("backends", *backends as f64),
                ("ids", *ids as f64),
                ("bound_ms", bound_ms as f64),
                ("at_bound_ids", at_ids),
                ("at_bound_ms", at_ms),
                ("rate_at_bound", rate_at),
                ("rate_total", tot_ids / tot_ms),
                ("drift_waits", waits as f64),
            ] {
                out.push(M::new("sustained", name, rep, metric, v));
            }
            println!(
                "   {name} (bound {bound_ms} ms): {:.0} IDs/ms over the run, {} at the bound",
                tot_ids / tot_ms,
                if rate_at.is_finite() {
                    format!("{rate_at:.0} IDs/ms")
                } else {
                    "bound not reached".into()
                }
            );
            samples.extend(run_samples);
        }
        self.set_drift_bound(&mut admin, None);
        out
    }
}

/// Splits a sustained run's samples: (IDs and ms of the intervals spent at the drift bound,
/// IDs and ms of all intervals in which IDs were issued).
pub fn phases(s: &[Sample], bound_ms: i64) -> (f64, f64, f64, f64) {
    let (mut at_ids, mut at_ms, mut ids, mut ms) = (0.0, 0.0, 0.0, 0.0);
    for w in s.windows(2) {
        let di = (w[1].issued - w[0].issued) as f64;
        let dt = w[1].t_ms - w[0].t_ms;
        if di <= 0.0 {
            continue;
        }
        ids += di;
        ms += dt;
        if w[0].drift_ms >= bound_ms - 10 && w[1].drift_ms >= bound_ms - 10 {
            at_ids += di;
            at_ms += dt;
        }
    }
    (at_ids, at_ms, ids, ms)
}
