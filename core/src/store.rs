//! The ceiling file: a millisecond value above every ID the node has issued, kept in the data
//! directory so that IDs issued after a restart or a crash start above it.
//!
//! Format (text, so a DBA can read it; the checksum catches torn or edited files):
//! ```text
//! snowflake_id state 1
//! ceiling_unix_ms 1767225601123
//! crc32 5d1a0c3e
//! ```
//! It is replaced atomically: written to `<file>.tmp`, fsynced, renamed over the file, and the
//! directory fsynced, so a crash leaves either the old or the new ceiling, never a torn one.

use crate::generator::CeilingStore;
use crate::layout;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const HEADER: &str = "snowflake_id state 1";

/// Why the ceiling could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// The file exists but is not a valid state file; never treated as "no file".
    Corrupt { path: PathBuf, reason: String },
    /// The operating system refused an operation.
    Io { path: PathBuf, op: &'static str, source: io::Error },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { path, reason } => {
                write!(f, "snowflake_id state file \"{}\" is corrupted: {reason}", path.display())
            }
            StoreError::Io { path, op, source } => {
                write!(f, "could not {op} snowflake_id state file \"{}\": {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// The ceiling file at a path (normally `$PGDATA/snowflake_id.state`).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: self.path.clone(), op, source }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), reason: reason.into() }
    }
}

/// The file's text for a ceiling (milliseconds since the Snowflake epoch).
pub fn render(ceiling_ms: u64) -> String {
    let body = format!("{HEADER}\nceiling_unix_ms {}\n", layout::unix_ms(ceiling_ms));
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32 {crc:08x}\n")
}

/// Parses the file's text back into the ceiling (milliseconds since the Snowflake epoch).
pub fn parse(text: &str) -> Result<u64, String> {
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if lines.len() != 3 {
        return Err(format!("expected 3 lines, found {}", lines.len()));
    }
    if lines[0] != HEADER {
        return Err(format!("first line is \"{}\", expected \"{HEADER}\"", lines[0]));
    }
    let unix: i64 = lines[1]
        .strip_prefix("ceiling_unix_ms ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("second line \"{}\" is not \"ceiling_unix_ms <integer>\"", lines[1]))?;
    let crc = lines[2]
        .strip_prefix("crc32 ")
        .filter(|v| v.len() == 8 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|v| u32::from_str_radix(v, 16).ok())
        .ok_or_else(|| format!("third line \"{}\" is not \"crc32 <hex>\"", lines[2]))?;
    let body_len = lines[0].len() + lines[1].len() + 2;
    let actual = crc32fast::hash(&text.as_bytes()[..body_len]);
    if actual != crc {
        return Err(format!("checksum mismatch: file says {crc:08x}, contents give {actual:08x}"));
    }
    layout::ms_since_epoch(unix).map_err(|e| e.to_string())
}

impl CeilingStore for FileStore {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| self.corrupt("not UTF-8 text"))?;
        parse(&text).map(Some).map_err(|r| self.corrupt(r))
    }

    fn save(&self, ceiling_ms: u64) -> Result<(), StoreError> {
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
            f.write_all(render(ceiling_ms).as_bytes()).map_err(self.io("write"))?;
            f.sync_all().map_err(self.io("fsync"))?;
        }
        fs::rename(&tmp, &self.path).map_err(self.io("rename"))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir).and_then(|d| d.sync_all()).map_err(self.io("fsync the directory of"))?;
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
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(31_536_000_123));
        assert!(!dir.path().join("snowflake_id.state.tmp").exists());
    }

    #[test]
    fn corrupted_files_are_errors_not_resets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snowflake_id.state");
        let good = render(1000);
        let cases: Vec<Vec<u8>> = vec![
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
        fn render_parse_roundtrip(ms in 0..=layout::MAX_MS) {
            prop_assert_eq!(parse(&render(ms)), Ok(ms));
        }

        #[test]
        fn any_single_byte_change_is_detected(ms in 0..=layout::MAX_MS, pos in 0usize..60, byte in any::<u8>()) {
            let good = render(ms);
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
