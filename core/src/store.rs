//! The ceiling store: a millisecond value above every ID the node has issued, kept in the data
//! directory so that IDs issued after a restart or a crash start above it.
//!
//! Format (text, so a DBA can read it; the checksum catches torn or edited files):
//! ```text
//! snowflake_id state 2
//! ceiling_unix_ms 1767225601123
//! system_identifier 7441234567890123456
//! node_id 5
//! crc32 5d1a0c3e
//! ```
//! The writer's identity is there because `pg_basebackup` and `pg_rewind` copy the file from
//! another server: a ceiling written by another server (or under another node id) says nothing
//! about what this server issued, and the generator then starts above both (see
//! [`crate::generator`]). Version 1 files (no identity) are still read, as this server's own.
//! The file is replaced atomically: written to `<file>.tmp`, fsynced, renamed over the file, and
//! the directory fsynced, so a crash leaves either the old or the new ceiling, never a torn one.

use crate::layout;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const HEADER_V1: &str = "snowflake_id state 1";
const HEADER: &str = "snowflake_id state 2";

/// Who wrote a ceiling: the server (`pg_control`'s system identifier) and the node id it issued
/// IDs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub system_identifier: u64,
    pub node_id: u16,
}

/// A loaded ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// Milliseconds since the epoch, above every ID issued by `writer`.
    pub ceiling_ms: u64,
    /// `None` for a file of format 1, which did not record it.
    pub writer: Option<Writer>,
}

/// Where the ceiling survives restarts.
pub trait CeilingStore {
    /// The saved ceiling, `None` if none was ever saved.
    fn load(&self) -> Result<Option<Saved>, StoreError>;
    /// The ceiling this store itself holds, without what it may add from elsewhere (a server's
    /// store adds the floor replayed from the WAL to its file's): what a replayed floor is
    /// compared with before it is written.
    fn load_own(&self) -> Result<Option<Saved>, StoreError> {
        self.load()
    }
    /// Saves a ceiling durably; returns only once it would survive a crash.
    fn save(&self, ceiling_ms: u64) -> Result<(), StoreError>;
    /// Who this server is: a loaded ceiling of another writer was copied from elsewhere.
    fn writer(&self) -> Option<Writer> {
        None
    }
}

/// Why the ceiling could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// The file exists but is not a valid state file; never treated as "no file".
    Corrupt { path: PathBuf, reason: String },
    /// The operating system refused an operation.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The store should exist and does not (a state file deleted or lost): its ceiling is
    /// unknown, and "no ceiling" would let IDs repeat.
    Missing { path: PathBuf },
    /// The ceiling was logged but its durability elsewhere was not confirmed (a wait for the
    /// synchronous standbys that was cancelled): it must not be used.
    Unconfirmed { reason: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { path, reason } => {
                write!(
                    f,
                    "snowflake_id state file \"{}\" is corrupted: {reason}",
                    path.display()
                )
            }
            StoreError::Io { path, op, source } => {
                write!(
                    f,
                    "could not {op} snowflake_id state file \"{}\": {source}",
                    path.display()
                )
            }
            StoreError::Missing { path } => {
                write!(
                    f,
                    "snowflake_id state file \"{}\" is missing",
                    path.display()
                )
            }
            StoreError::Unconfirmed { reason } => {
                write!(f, "the new ceiling was not confirmed: {reason}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// The ceiling file at a path (normally `$PGDATA/snowflake_id.state`).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    writer: Option<Writer>,
}

impl FileStore {
    /// A store that writes format 1 (no identity): for tests and tools.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore {
            path: path.into(),
            writer: None,
        }
    }

    /// A store of the server `writer`, recorded in every save.
    pub fn with_writer(path: impl Into<PathBuf>, writer: Writer) -> Self {
        FileStore {
            path: path.into(),
            writer: Some(writer),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

/// The file's text for a ceiling (milliseconds since the Snowflake epoch) and its writer.
pub fn render(ceiling_ms: u64, writer: Option<Writer>) -> String {
    let unix = layout::unix_ms(ceiling_ms);
    let body = match writer {
        Some(w) => format!(
            "{HEADER}\nceiling_unix_ms {unix}\nsystem_identifier {}\nnode_id {}\n",
            w.system_identifier, w.node_id
        ),
        None => format!("{HEADER_V1}\nceiling_unix_ms {unix}\n"),
    };
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32 {crc:08x}\n")
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> Result<T, String> {
    line.strip_prefix(name)
        .and_then(|v| v.strip_prefix(' '))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("line \"{line}\" is not \"{name} <integer>\""))
}

/// Parses the file's text back into the ceiling and its writer.
pub fn parse(text: &str) -> Result<Saved, String> {
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let expected = match lines.first() {
        Some(&HEADER_V1) => 3,
        Some(&HEADER) => 5,
        Some(other) => {
            return Err(format!("first line is \"{other}\", expected \"{HEADER}\""));
        }
        None => return Err("the file is empty".into()),
    };
    if lines.len() != expected {
        return Err(format!("expected {expected} lines, found {}", lines.len()));
    }
    let unix: i64 = field(lines[1], "ceiling_unix_ms")?;
    let writer = if expected == 5 {
        let node_id: u16 = field(lines[3], "node_id")?;
        if node_id > layout::MAX_NODE {
            return Err(format!("node_id {node_id} is above {}", layout::MAX_NODE));
        }
        Some(Writer {
            system_identifier: field(lines[2], "system_identifier")?,
            node_id,
        })
    } else {
        None
    };
    let last = lines[expected - 1];
    let crc = last
        .strip_prefix("crc32 ")
        .filter(|v| v.len() == 8 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|v| u32::from_str_radix(v, 16).ok())
        .ok_or_else(|| format!("last line \"{last}\" is not \"crc32 <hex>\""))?;
    let body_len: usize = lines[..expected - 1].iter().map(|l| l.len() + 1).sum();
    let actual = crc32fast::hash(&text.as_bytes()[..body_len]);
    if actual != crc {
        return Err(format!(
            "checksum mismatch: file says {crc:08x}, contents give {actual:08x}"
        ));
    }
    let ceiling_ms = layout::ms_since_epoch(unix).map_err(|e| e.to_string())?;
    Ok(Saved { ceiling_ms, writer })
}

impl CeilingStore for FileStore {
    fn load(&self) -> Result<Option<Saved>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| self.corrupt("not UTF-8 text"))?;
        parse(&text).map(Some).map_err(|r| self.corrupt(r))
    }

    fn save(&self, ceiling_ms: u64) -> Result<(), StoreError> {
        self.save_as(ceiling_ms, self.writer)
    }

    fn writer(&self) -> Option<Writer> {
        self.writer
    }
}

impl FileStore {
    /// Saves a ceiling recorded as written by `writer` (a standby records its primary: the
    /// floor it holds came from the primary's WAL).
    pub fn save_as(&self, ceiling_ms: u64, writer: Option<Writer>) -> Result<(), StoreError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(self.io("create temporary"))?;
            f.write_all(render(ceiling_ms, writer).as_bytes())
                .map_err(self.io("write"))?;
            f.sync_all().map_err(self.io("fsync"))?;
        }
        fs::rename(&tmp, &self.path).map_err(self.io("rename"))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io("fsync the directory of"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path().join("snowflake_id.state"));
        assert_eq!(s.load().unwrap(), None);
    }

    #[test]
    fn save_then_load_in_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snowflake_id.state");
        FileStore::new(&path).save(31_536_000_123).unwrap();
        let loaded = FileStore::new(&path).load().unwrap();
        assert_eq!(
            loaded,
            Some(Saved {
                ceiling_ms: 31_536_000_123,
                writer: None
            })
        );
        let me = Writer {
            system_identifier: u64::MAX - 7,
            node_id: 1023,
        };
        FileStore::with_writer(&path, me)
            .save(31_536_000_124)
            .unwrap();
        let loaded = FileStore::new(&path).load().unwrap();
        assert_eq!(
            loaded,
            Some(Saved {
                ceiling_ms: 31_536_000_124,
                writer: Some(me)
            })
        );
        assert!(!dir.path().join("snowflake_id.state.tmp").exists());
    }

    #[test]
    fn corrupted_files_are_errors_not_resets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snowflake_id.state");
        let good = render(1000, None);
        let good2 = render(
            1000,
            Some(Writer {
                system_identifier: 1,
                node_id: 5,
            }),
        );
        let cases: Vec<Vec<u8>> = vec![
            good2.replace("node_id 5", "node_id 1024").into_bytes(),
            good2.replace("state 2", "state 1").into_bytes(),
            good2.replace("node_id 5\n", "").into_bytes(),
            Vec::new(),
            good.replace("1735689601000", "1735689609000").into_bytes(),
            good.as_bytes()[..good.len() - 4].to_vec(),
            vec![0xff, 0xfe, 0x00],
            good.replace("state 1", "state 9").into_bytes(),
        ];
        for bytes in cases {
            fs::write(&path, &bytes).unwrap();
            match FileStore::new(&path).load() {
                Err(StoreError::Corrupt { .. }) => {}
                other => panic!("{:?} loaded as {other:?}", String::from_utf8_lossy(&bytes)),
            }
        }
    }

    #[test]
    fn unwritable_directory_is_an_io_error() {
        let s = FileStore::new("/nonexistent-dir-for-snowflake/snowflake_id.state");
        assert!(matches!(s.save(5), Err(StoreError::Io { .. })));
    }

    proptest! {
        #[test]
        fn render_parse_roundtrip(ms in 0..=layout::MAX_MS, sysid in any::<u64>(), node in 0..=layout::MAX_NODE, v2 in any::<bool>()) {
            let writer = v2.then_some(Writer { system_identifier: sysid, node_id: node });
            prop_assert_eq!(parse(&render(ms, writer)), Ok(Saved { ceiling_ms: ms, writer }));
        }

        #[test]
        fn any_single_byte_change_is_detected(ms in 0..=layout::MAX_MS, sysid in any::<u64>(), pos in 0usize..120, byte in any::<u8>()) {
            let good = render(ms, Some(Writer { system_identifier: sysid, node_id: 7 }));
            let mut bad = good.clone().into_bytes();
            let pos = pos % bad.len();
            prop_assume!(bad[pos] != byte);
            bad[pos] = byte;
            if let Ok(text) = String::from_utf8(bad) {
                prop_assert!(parse(&text).is_err(), "accepted {:?}", text);
            }
        }
    }
}
