//! The Snowflake ID bit layout.
//!
//! ```text
//!  63  62                                   22 21          12 11            0
//! +---+---------------------------------------+--------------+---------------+
//! | 0 | milliseconds since EPOCH (41 bits)     | node (10)    | sequence (12) |
//! +---+---------------------------------------+--------------+---------------+
//! ```
//!
//! The generator works on a *tick*: `(milliseconds << 12) | sequence`, which orders exactly like
//! the IDs of one node. The node bits are put in between only when an ID is composed.

use std::fmt;

/// The custom epoch: 2025-01-01 00:00:00 UTC, in Unix milliseconds.
pub const EPOCH_UNIX_MS: i64 = 1_735_689_600_000;
/// Bits of the millisecond field.
pub const TIMESTAMP_BITS: u32 = 41;
/// Bits of the node field.
pub const NODE_BITS: u32 = 10;
/// Bits of the sequence field.
pub const SEQUENCE_BITS: u32 = 12;

/// Largest millisecond offset from [`EPOCH_UNIX_MS`]: 2094-09-07 15:47:35.551 UTC.
pub const MAX_MS: u64 = (1 << TIMESTAMP_BITS) - 1;
/// Largest node id.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
/// Largest sequence number within one millisecond.
pub const MAX_SEQUENCE: u16 = (1 << SEQUENCE_BITS) - 1;
/// IDs one node can issue in one millisecond.
pub const IDS_PER_MS: u64 = 1 << SEQUENCE_BITS;
/// Largest tick, `(MAX_MS << 12) | MAX_SEQUENCE`.
pub const MAX_TICK: u64 = (MAX_MS << SEQUENCE_BITS) | MAX_SEQUENCE as u64;

const NODE_SHIFT: u32 = SEQUENCE_BITS;
const MS_SHIFT: u32 = SEQUENCE_BITS + NODE_BITS;

/// The three fields of an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Parts {
    /// Milliseconds since [`EPOCH_UNIX_MS`].
    pub ms: u64,
    /// Node id, `0..=1023`.
    pub node: u16,
    /// Sequence within the millisecond, `0..=4095`.
    pub sequence: u16,
}

/// Why a value does not fit the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// IDs are positive; the sign bit is always 0.
    NegativeId(i64),
    /// The node id does not fit in 10 bits.
    NodeOutOfRange(i64),
    /// The sequence does not fit in 12 bits.
    SequenceOutOfRange(i64),
    /// The time (Unix milliseconds) is before the epoch or after the 41-bit horizon.
    TimeOutOfRange(i64),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NegativeId(v) => write!(f, "{v} is not a Snowflake ID: IDs are positive"),
            LayoutError::NodeOutOfRange(v) => {
                write!(f, "node id {v} is out of range 0..{MAX_NODE}")
            }
            LayoutError::SequenceOutOfRange(v) => {
                write!(f, "sequence {v} is out of range 0..{MAX_SEQUENCE}")
            }
            LayoutError::TimeOutOfRange(ms) => write!(
                f,
                "Unix time {ms} ms is outside the Snowflake range {} .. {} ms",
                EPOCH_UNIX_MS,
                EPOCH_UNIX_MS + MAX_MS as i64
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

/// Builds an ID from its parts.
pub fn encode(parts: Parts) -> Result<i64, LayoutError> {
    if parts.ms > MAX_MS {
        return Err(LayoutError::TimeOutOfRange(
            EPOCH_UNIX_MS.saturating_add(parts.ms as i64),
        ));
    }
    if parts.node > MAX_NODE {
        return Err(LayoutError::NodeOutOfRange(parts.node.into()));
    }
    if parts.sequence > MAX_SEQUENCE {
        return Err(LayoutError::SequenceOutOfRange(parts.sequence.into()));
    }
    Ok(
        ((parts.ms << MS_SHIFT) | (u64::from(parts.node) << NODE_SHIFT) | u64::from(parts.sequence))
            as i64,
    )
}

/// Splits an ID into its parts. Every non-negative `i64` is a well-formed ID.
pub fn decode(id: i64) -> Result<Parts, LayoutError> {
    if id < 0 {
        return Err(LayoutError::NegativeId(id));
    }
    let v = id as u64;
    Ok(Parts {
        ms: v >> MS_SHIFT,
        node: ((v >> NODE_SHIFT) & u64::from(MAX_NODE)) as u16,
        sequence: (v & u64::from(MAX_SEQUENCE)) as u16,
    })
}

/// Composes the ID of a generator tick (`ms << 12 | sequence`) on `node`.
#[inline]
pub fn compose(tick: u64, node: u16) -> Result<i64, LayoutError> {
    encode(Parts {
        ms: tick >> SEQUENCE_BITS,
        node,
        sequence: (tick & u64::from(MAX_SEQUENCE)) as u16,
    })
}

/// Unix milliseconds of a millisecond offset from the epoch.
pub fn unix_ms(ms: u64) -> i64 {
    EPOCH_UNIX_MS + ms as i64
}

/// Millisecond offset from the epoch of a Unix time in milliseconds, if inside the range.
pub fn ms_since_epoch(unix_ms: i64) -> Result<u64, LayoutError> {
    let ms = unix_ms
        .checked_sub(EPOCH_UNIX_MS)
        .ok_or(LayoutError::TimeOutOfRange(unix_ms))?;
    if !(0..=MAX_MS as i64).contains(&ms) {
        return Err(LayoutError::TimeOutOfRange(unix_ms));
    }
    Ok(ms as u64)
}

/// The smallest ID of the millisecond holding `unix_ms` (node 0, sequence 0): every ID issued at
/// or after that millisecond, on any node, is `>=` it.
pub fn first_id_at(unix_ms: i64) -> Result<i64, LayoutError> {
    encode(Parts {
        ms: ms_since_epoch(unix_ms)?,
        node: 0,
        sequence: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_widths_add_up_to_63_bits() {
        assert_eq!(TIMESTAMP_BITS + NODE_BITS + SEQUENCE_BITS, 63);
        let max = encode(Parts {
            ms: MAX_MS,
            node: MAX_NODE,
            sequence: MAX_SEQUENCE,
        })
        .unwrap();
        assert_eq!(max, i64::MAX);
    }

    #[test]
    fn known_id_decodes() {
        // 2026-01-01 00:00:00.123 UTC, node 5, sequence 7, computed independently:
        // ms = 1767225600123 - 1735689600000 = 31536000123
        let id = (31_536_000_123_i64 << 22) | (5 << 12) | 7;
        let p = decode(id).unwrap();
        assert_eq!(
            p,
            Parts {
                ms: 31_536_000_123,
                node: 5,
                sequence: 7
            }
        );
        assert_eq!(unix_ms(p.ms), 1_767_225_600_123);
    }

    #[test]
    fn horizon_is_2094() {
        // 2094-09-07 15:47:35.551 UTC in Unix ms
        assert_eq!(unix_ms(MAX_MS), 3_934_712_855_551);
    }

    #[test]
    fn rejects_out_of_range() {
        assert_eq!(decode(-1), Err(LayoutError::NegativeId(-1)));
        assert!(matches!(
            encode(Parts {
                ms: 0,
                node: 1024,
                sequence: 0
            }),
            Err(LayoutError::NodeOutOfRange(1024))
        ));
        assert!(matches!(
            encode(Parts {
                ms: 0,
                node: 0,
                sequence: 4096
            }),
            Err(LayoutError::SequenceOutOfRange(4096))
        ));
        assert!(first_id_at(EPOCH_UNIX_MS - 1).is_err());
        assert!(first_id_at(EPOCH_UNIX_MS + MAX_MS as i64 + 1).is_err());
        assert!(first_id_at(i64::MIN).is_err());
        assert_eq!(first_id_at(EPOCH_UNIX_MS), Ok(0));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(ms in 0..=MAX_MS, node in 0..=MAX_NODE, sequence in 0..=MAX_SEQUENCE) {
            let parts = Parts { ms, node, sequence };
            let id = encode(parts).unwrap();
            prop_assert!(id >= 0);
            prop_assert_eq!(decode(id).unwrap(), parts);
        }

        #[test]
        fn encode_inverts_decode(id in 0..=i64::MAX) {
            prop_assert_eq!(encode(decode(id).unwrap()).unwrap(), id);
        }

        #[test]
        fn ids_sort_by_time_first(a in (0..=MAX_MS, 0..=MAX_NODE, 0..=MAX_SEQUENCE),
                                  b in (0..=MAX_MS, 0..=MAX_NODE, 0..=MAX_SEQUENCE)) {
            let ia = encode(Parts { ms: a.0, node: a.1, sequence: a.2 }).unwrap();
            let ib = encode(Parts { ms: b.0, node: b.1, sequence: b.2 }).unwrap();
            if a.0 < b.0 { prop_assert!(ia < ib); }
            if a.0 == b.0 && a.1 == b.1 { prop_assert_eq!(ia.cmp(&ib), a.2.cmp(&b.2)); }
        }

        #[test]
        fn first_id_bounds_its_millisecond(unix in EPOCH_UNIX_MS..=EPOCH_UNIX_MS + MAX_MS as i64,
                                           node in 0..=MAX_NODE, sequence in 0..=MAX_SEQUENCE) {
            let lo = first_id_at(unix).unwrap();
            let ms = ms_since_epoch(unix).unwrap();
            let any = encode(Parts { ms, node, sequence }).unwrap();
            prop_assert!(lo <= any);
            if ms > 0 {
                let before = encode(Parts { ms: ms - 1, node: MAX_NODE, sequence: MAX_SEQUENCE }).unwrap();
                prop_assert!(before < lo);
            }
        }

        #[test]
        fn compose_matches_encode(tick in 0..=MAX_TICK, node in 0..=MAX_NODE) {
            let id = compose(tick, node).unwrap();
            let p = decode(id).unwrap();
            prop_assert_eq!(p.ms, tick >> SEQUENCE_BITS);
            prop_assert_eq!(u64::from(p.sequence), tick & 0xfff);
            prop_assert_eq!(p.node, node);
        }
    }
}
