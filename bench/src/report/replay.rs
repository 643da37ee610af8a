//! Replay: archive recovery through ceiling records.

use super::*;

/// The replay line, if the run has one.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let replay = |metric: &str| data::value(ms, "replay", "snowflake", 1, metric);
    if let (Some(records), Some(secs), Some(writes)) =
        (replay("records"), replay("seconds"), replay("file_writes"))
    {
        let _ = writeln!(
            w,
            "Archive recovery of a restored base backup through {} ceiling records (the test-only \
             emitter's, 1 ms apart), start to promotion: {} s, {} µs a record; replay wrote the state \
             file {} times (at checkpoint records and at the end of recovery, not per record).\n",
            fmt_int(records),
            f(secs, 2),
            f(secs * 1e6 / records.max(1.0), 1),
            f(writes, 0)
        );
    }
}
