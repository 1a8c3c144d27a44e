//! Files the project writes: whole files replaced atomically ([`write_atomically`]) and
//! checksummed checkpoint files for runs that must survive being killed ([`CheckpointFile`]).
//!
//! A reader (another process, a resumed run, `cargo xtask reproduce` scanning its store) never
//! sees a half-written file: the bytes go to a temporary file in the destination's directory,
//! are flushed to disk, and the temporary file is renamed over the destination (atomic on POSIX
//! file systems); the directory is then synced so that the rename itself survives a crash.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::DataError;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (created if
/// missing), `fsync`, rename over any previous file, `fsync` of the directory. On error the
/// temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed = |source| DataError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // make the rename itself durable (not every file system lets a directory be synced)
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

/// The writer's process id if `name` is a temporary file of [`write_atomically`]
/// (`.<file name>.tmp-<pid>`), so that a directory scan can remove those whose writer is gone.
pub fn temporary_writer_pid(name: &str) -> Option<u32> {
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    pid.parse().ok()
}

/// What every checkpoint file starts with.
const CHECKPOINT_MAGIC: &[u8; 18] = b"insitu checkpoint\n";

/// A checkpoint file: the saved state of one long run, replaced atomically every `every` of
/// wall time, so that a run killed at any moment resumes from its last checkpoint, losing at
/// most `every` of work and repeating none of what the checkpoint holds.
///
/// The file holds an opaque payload (its owner's encoding, e.g. `insitu_ffm`'s
/// `FfmCheckpoint`) behind a magic line, a `kind` naming that encoding, the payload's length,
/// and a SHA-256 of all of it: a truncated, corrupt or foreign file is an error that names the
/// file, never a silent restart or a wrong resume.
///
/// Layout: `"insitu checkpoint\n"`, kind length (u16 LE), kind (UTF-8), payload length
/// (u64 LE), payload, SHA-256 of everything before it (32 bytes).
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    kind: String,
    every: Duration,
    last: Instant,
}

impl CheckpointFile {
    /// A checkpoint at `path` for payloads of encoding `kind`, due every `every` of wall time
    /// (counted from now and from each write; `Duration::ZERO`: always due).
    pub fn new(path: impl Into<PathBuf>, kind: &str, every: Duration) -> Self {
        Self {
            path: path.into(),
            kind: kind.to_string(),
            every,
            last: Instant::now(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `every` has passed since the last write (or since [`CheckpointFile::new`]).
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// The payload of the file, verified; `None` when there is no file (a fresh start).
    pub fn read(&self) -> Result<Option<Vec<u8>>, DataError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DataError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        decode_checkpoint(&bytes, &self.kind)
            .map(Some)
            .map_err(|reason| self.unusable(reason))
    }

    /// Replaces the file with `payload`, atomically, and restarts the `every` clock.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), DataError> {
        write_atomically(&self.path, &encode_checkpoint(payload, &self.kind))?;
        self.last = Instant::now();
        Ok(())
    }

    /// Deletes the file (once the run's result is safely written); no file is not an error.
    pub fn remove(&self) -> Result<(), DataError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::Write {
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The error for a file that exists but cannot be resumed from.
    pub fn unusable(&self, reason: impl Into<String>) -> DataError {
        DataError::Checkpoint {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

fn encode_checkpoint(payload: &[u8], kind: &str) -> Vec<u8> {
    let kind_len = u16::try_from(kind.len()).expect("a checkpoint kind is a short name");
    let mut out = Vec::with_capacity(CHECKPOINT_MAGIC.len() + 2 + kind.len() + 8 + payload.len() + 32);
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(&kind_len.to_le_bytes());
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn decode_checkpoint(bytes: &[u8], kind: &str) -> Result<Vec<u8>, String> {
    let rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC.as_slice())
        .ok_or("not an insitu checkpoint (wrong first bytes)")?;
    let truncated = || format!("truncated ({} bytes)", bytes.len());
    let (kind_len, rest) = rest.split_first_chunk::<2>().ok_or_else(truncated)?;
    let kind_len = u16::from_le_bytes(*kind_len) as usize;
    let found = rest.get(..kind_len).ok_or_else(truncated)?;
    if found != kind.as_bytes() {
        return Err(format!(
            "holds a {:?} checkpoint, not {kind:?}",
            String::from_utf8_lossy(found)
        ));
    }
    let (len, rest) = rest[kind_len..].split_first_chunk::<8>().ok_or_else(truncated)?;
    let len = u64::from_le_bytes(*len);
    let body = bytes.len() - rest.len();
    if (rest.len() as u64) < len.saturating_add(32) {
        return Err(format!(
            "truncated: the payload of {len} bytes and its checksum need {} bytes after byte {body}, \
             {} present",
            len.saturating_add(32),
            rest.len()
        ));
    }
    if rest.len() as u64 > len + 32 {
        return Err(format!(
            "{} unexpected bytes after the checksum",
            rest.len() as u64 - len - 32
        ));
    }
    let len = len as usize;
    let digest = Sha256::digest(&bytes[..body + len]);
    if digest.as_slice() != &rest[len..] {
        return Err("checksum mismatch (the file is corrupt)".into());
    }
    Ok(rest[..len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
        assert_eq!(temporary_writer_pid(".out.json.tmp-123"), Some(123));
        assert_eq!(temporary_writer_pid("out.json"), None);
        assert_eq!(temporary_writer_pid(".out.json.tmp-x"), None);
        // a destination that cannot be written is an error that names it
        let blocked = dir.path().join("sub/out.json/inside");
        let e = write_atomically(&blocked, b"x").unwrap_err().to_string();
        assert!(e.contains("cannot write") && e.contains("inside"), "{e}");
    }

    #[test]
    fn checkpoint_round_trip_and_every_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = CheckpointFile::new(dir.path().join("run.ckpt"), "test-v1", Duration::ZERO);
        assert!(ck.read().unwrap().is_none(), "no file: a fresh start");
        assert!(ck.due());
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        ck.write(&payload).unwrap();
        assert_eq!(ck.read().unwrap().unwrap(), payload);
        let good = std::fs::read(ck.path()).unwrap();

        let damaged = |bytes: &[u8]| {
            std::fs::write(ck.path(), bytes).unwrap();
            ck.read().unwrap_err().to_string()
        };
        // every truncation
        for cut in 0..good.len() {
            let e = damaged(&good[..cut]);
            assert!(e.contains("run.ckpt") && e.contains("delete it"), "cut {cut}: {e}");
        }
        // every flipped byte
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            damaged(&bad);
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(damaged(&longer).contains("unexpected bytes"));
        // another encoding's checkpoint
        std::fs::write(ck.path(), &good).unwrap();
        let other = CheckpointFile::new(ck.path(), "other-v2", Duration::ZERO);
        let e = other.read().unwrap_err().to_string();
        assert!(e.contains("\"test-v1\"") && e.contains("\"other-v2\""), "{e}");

        ck.remove().unwrap();
        assert!(ck.read().unwrap().is_none());
        ck.remove().unwrap();

        let later = CheckpointFile::new(dir.path().join("x"), "test-v1", Duration::from_secs(3600));
        assert!(!later.due());
    }
}
