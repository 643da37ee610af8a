//! `snowflake_json(id)`: an ID's JSON form for APIs, built in SQL.
//!
//! The ID is a JSON *string*: most JSON readers (JavaScript's `JSON.parse`, and every reader that
//! maps numbers to IEEE doubles) keep 53 bits of a number exactly, and every Snowflake ID issued
//! since 2025-01-25 is above 2^53, so `to_json(id)` is rounded by the reader, silently, to a
//! neighbouring ID. The decoded fields are the columns of `snowflake_parse()` (`ts`, `node`,
//! `sequence`), small numbers that every reader keeps exactly. `ts` is written in UTC with a `Z`
//! and milliseconds, whatever the session's `TimeZone` or `DateStyle`: the result depends on the
//! ID alone, which is what makes the function honestly `IMMUTABLE` (unlike `to_json` of a
//! `timestamptz`, which follows `TimeZone`).

use crate::errors;
use pgrx::prelude::*;
use pgrx::JsonB;
use snowflake_core::layout;

/// `{"id": "<id as text>", "ts": "YYYY-MM-DDTHH:MM:SS.mmmZ", "node": n, "sequence": s}`.
/// A negative ID is the decoders' ERROR (none was ever issued).
#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_json(id: i64) -> JsonB {
    let p = layout::decode(id).unwrap_or_else(|e| errors::bad_id(e));
    JsonB(serde_json::json!({
        "id": id.to_string(),
        "ts": utc_iso8601(layout::unix_ms(p.ms)),
        "node": p.node,
        "sequence": p.sequence,
    }))
}

/// Unix milliseconds (from 2025-01-01 on: never negative here) as ISO 8601 in UTC,
/// `2026-01-02T03:04:05.678Z`.
fn utc_iso8601(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`; exact for every date a Snowflake ID can carry).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::utc_iso8601;

    #[test]
    fn utc_iso8601_of_known_instants() {
        assert_eq!(utc_iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_iso8601(snowflake_core::layout::EPOCH_UNIX_MS),
            "2025-01-01T00:00:00.000Z"
        );
        // A leap day and the last millisecond of a day.
        assert_eq!(utc_iso8601(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        // The last millisecond of the layout: 2094-09-07 15:47:35.551 UTC.
        assert_eq!(
            utc_iso8601(snowflake_core::layout::unix_ms(
                snowflake_core::layout::MAX_MS
            )),
            "2094-09-07T15:47:35.551Z"
        );
    }
}
