//! Replay of a long WAL history of ceiling records, as archive recovery of a restored backup
//! meets it: a base backup of the server, then `n` ceiling records written by the test-only
//! emitter (`snowflake_emit_ceilings`, not in the extension's SQL), then the backup recovers
//! from the server's WAL directory and promotes. Measured: the time from start to promotion,
//! and how often replay wrote the state file (`ceiling_writes` of the recovered server before
//! its first ID).

use crate::cases::{exec, q_i64, Bench};
use crate::data::M;
use snowflake_cluster::Node;
use std::time::{Duration, Instant};

impl Bench<'_> {
    pub fn replay(&self) -> Vec<M> {
        let n: i32 = if self.p.quick { 2_000 } else { 50_000 };
        let mut c = self.client();
        exec(
            &mut c,
            "CREATE OR REPLACE FUNCTION bench_emit_ceilings(int, bigint, int) RETURNS bigint \
             LANGUAGE c STRICT AS '$libdir/snowflake_id', 'snowflake_emit_ceilings_wrapper'",
        );
        exec(&mut c, "CHECKPOINT");
        let root = self.work.join("replay");
        let _ = std::fs::create_dir_all(&root);
        snowflake_cluster::ensure_traversable(&root.join("x"));
        let port = self.node.port + 50;
        let copy = Node::base_backup(self.node, &root, "restored", port, false);
        // Ceilings 1 ms apart from now: each above the backup's state file, as a live
        // server's history is.
        exec(
            &mut c,
            &format!(
                "SELECT bench_emit_ceilings({n}, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1, 1)"
            ),
        );
        exec(&mut c, "SELECT pg_switch_wal()");
        copy.configure_copy(&[
            &format!(
                "restore_command = 'cp {}/%f %p'",
                self.node.data().join("pg_wal").display()
            ),
            "recovery_target_action = 'promote'",
            "snowflake_id.node_id = 2",
            "archive_mode = off",
        ]);
        copy.signal("recovery.signal");
        let t0 = Instant::now();
        copy.start();
        let mut r = copy.connect();
        let deadline = Instant::now() + Duration::from_secs(3600);
        while q_i64(&mut r, "SELECT pg_is_in_recovery()::int::bigint") == 1 {
            assert!(Instant::now() < deadline, "archive recovery did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = t0.elapsed().as_secs_f64();
        let replayed = q_i64(&mut r, "SELECT wal_records_replayed FROM snowflake_stats()");
        let writes = q_i64(&mut r, "SELECT ceiling_writes FROM snowflake_stats()");
        drop(r);
        copy.stop();
        let _ = std::fs::remove_dir_all(&root);
        println!(
            "   {replayed} ceiling records replayed in {secs:.2} s ({:.1} µs each), state file written {writes} times",
            secs * 1e6 / replayed.max(1) as f64
        );
        vec![
            M::new("replay", "snowflake", 1, "records", replayed as f64),
            M::new("replay", "snowflake", 1, "seconds", secs),
            M::new("replay", "snowflake", 1, "file_writes", writes as f64),
        ]
    }
}
