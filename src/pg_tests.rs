//! `#[pg_test]`s: the SQL surface on a server that preloads the library with node id 42
//! (see `pg_test::postgresql_conf_options` in lib.rs).

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use std::collections::HashSet;

    fn scalar<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .expect("query failed")
            .expect("NULL result")
    }

    /// The tests run at once in separate sessions. Those that issue IDs hold this lock shared
    /// until they end; the one that counts issued IDs server-wide holds it exclusively.
    const ISSUING_LOCK: &str = "4242";

    fn issuing() {
        Spi::run(&format!(
            "SELECT pg_advisory_xact_lock_shared({ISSUING_LOCK})"
        ))
        .unwrap();
    }

    #[pg_test]
    fn nextval_is_increasing_unique_and_carries_the_node_id() {
        issuing();
        let ids: Vec<i64> = Spi::connect(|c| {
            c.select(
                "SELECT snowflake_nextval() FROM generate_series(1, 20000)",
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<i64>(1).unwrap().unwrap())
            .collect()
        });
        assert_eq!(ids.len(), 20_000);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids.iter().copied().collect::<HashSet<_>>().len(), ids.len());
        assert!(ids.iter().all(|&id| id > 0 && (id >> 12) & 1023 == 42));
    }

    #[pg_test]
    fn ids_decode_to_now() {
        issuing();
        let skew: f64 = scalar(
            "SELECT abs(extract(epoch FROM snowflake_timestamp(snowflake_nextval()) - clock_timestamp()))::float8",
        );
        assert!(skew < 2.5, "decoded time is {skew} s from now");
        assert_eq!(
            scalar::<i32>("SELECT snowflake_node(snowflake_nextval())"),
            42
        );
    }

    #[pg_test]
    fn parse_agrees_with_the_single_decoders() {
        issuing();
        let same: bool = scalar(
            "WITH i AS (SELECT snowflake_nextval() AS id FROM generate_series(1, 5000))
             SELECT bool_and(p.ts = snowflake_timestamp(id) AND p.node = snowflake_node(id)
                             AND p.sequence = snowflake_sequence(id)
                             AND id = (((extract(epoch FROM p.ts) * 1000 - 1735689600000)::bigint << 22)
                                      | (p.node::bigint << 12) | p.sequence))
             FROM i, LATERAL snowflake_parse(id) p",
        );
        assert!(same);
    }

    #[pg_test]
    fn from_timestamp_bounds_the_millisecond() {
        issuing();
        let ok: bool = scalar(
            "WITH i AS (SELECT snowflake_nextval() AS id)
             SELECT snowflake_from_timestamp(snowflake_timestamp(id)) <= id
                AND snowflake_from_timestamp(snowflake_timestamp(id) + interval '1 millisecond') > id
             FROM i",
        );
        assert!(ok);
        assert_eq!(
            scalar::<i64>("SELECT snowflake_from_timestamp('2025-01-01 00:00:00+00')"),
            0
        );
        assert_eq!(
            scalar::<i64>("SELECT snowflake_from_timestamp('2025-01-01 00:00:01.0009+00')"),
            1000 << 22
        );
    }

    #[pg_test]
    fn decoders_are_immutable_strict_parallel_safe() {
        let n: i64 = scalar(
            "SELECT count(*) FROM pg_proc
             WHERE proname IN ('snowflake_timestamp', 'snowflake_node', 'snowflake_sequence',
                               'snowflake_parse', 'snowflake_from_timestamp')
               AND provolatile = 'i' AND proisstrict AND proparallel = 's'",
        );
        assert_eq!(n, 5);
        assert_eq!(
            scalar::<String>(
                "SELECT provolatile::text FROM pg_proc WHERE proname = 'snowflake_nextval'"
            ),
            "v"
        );
    }

    #[pg_test]
    fn column_default_and_expression_index_work() {
        issuing();
        Spi::run(
            "CREATE TABLE audit_log(id bigint PRIMARY KEY DEFAULT snowflake_nextval(), note text);
             CREATE INDEX audit_log_day ON audit_log ((snowflake_timestamp(id)));
             INSERT INTO audit_log(note) SELECT 'n' || g FROM generate_series(1, 1000) g;",
        )
        .unwrap();
        assert_eq!(
            scalar::<i64>("SELECT count(DISTINCT id) FROM audit_log"),
            1000
        );
        let found: i64 = scalar(
            "SELECT count(*) FROM audit_log WHERE id >= snowflake_from_timestamp(now() - interval '1 hour')",
        );
        assert_eq!(found, 1000);
    }

    #[pg_test]
    fn stats_count_what_was_issued() {
        Spi::run(&format!("SELECT pg_advisory_xact_lock({ISSUING_LOCK})")).unwrap();
        let before: i64 = scalar("SELECT issued FROM snowflake_stats()");
        let last: i64 = scalar("SELECT max(snowflake_nextval()) FROM generate_series(1, 777)");
        let (issued, last_id, node) = Spi::get_three::<i64, i64, i32>(
            "SELECT issued, last_id, node_id FROM snowflake_stats()",
        )
        .unwrap();
        assert_eq!(issued.unwrap() - before, 777);
        assert_eq!(last_id.unwrap(), last);
        assert_eq!(node.unwrap(), 42);
        let ceiling_ahead: bool =
            scalar("SELECT ceiling > snowflake_timestamp(last_id) FROM snowflake_stats()");
        assert!(ceiling_ahead);
    }

    /// Every ceiling the generator saves goes to the WAL first: the counters show records
    /// written, the last one above the last ID.
    #[pg_test]
    fn ceilings_are_written_to_the_wal() {
        issuing();
        let before: i64 = scalar("SELECT wal_records_written FROM snowflake_stats()");
        let lsn: String = scalar("SELECT pg_current_wal_insert_lsn()::text");
        // The ceiling leads the last ID by 1 s: after more than that, the next ID needs a new
        // one, which is logged before the ID is issued.
        Spi::run("SELECT snowflake_nextval(), pg_sleep(1.2)").unwrap();
        Spi::run("SELECT snowflake_nextval()").unwrap();
        let after: i64 = scalar("SELECT wal_records_written FROM snowflake_stats()");
        assert!(
            after > before,
            "no ceiling record written ({before} -> {after})"
        );
        let above: bool =
            scalar("SELECT wal_ceiling > snowflake_timestamp(last_id) FROM snowflake_stats()");
        assert!(above, "the last logged ceiling is not above the last ID");
        let moved: bool = scalar(&format!(
            "SELECT pg_current_wal_insert_lsn() > '{lsn}'::pg_lsn"
        ));
        assert!(moved);
    }

    // The errors a caller can cause (SQLSTATE, message, DETAIL, HINT) are asserted once, in the
    // pg_regress files under tests/pg_regress (tests/tests/regress.rs), not here as well.
}
