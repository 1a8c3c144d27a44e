//! SHA-256 verification and the `SHA256SUMS` manifest (the format `sha256sum` writes and
//! `sha256sum -c` reads: `<64 lower-case hex digits>  <relative path>`, one file a line).
//!
//! This is the one implementation shared by the loaders (which check the file they load) and by
//! `cargo xtask datasets` (which checks and repairs the whole directory).

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::DataError;

/// The manifest's file name inside a datasets directory.
pub const MANIFEST_FILE: &str = "SHA256SUMS";

/// A SHA-256 digest. Displays as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of everything `reader` yields (read in 64 KiB chunks).
    pub fn of_reader<R: Read>(mut reader: R) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// The digest as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// Parsing a digest from hex failed: not exactly 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (64 hex digits)")]
pub struct BadDigest(pub String);

impl FromStr for Sha256Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, BadDigest> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(BadDigest(s.to_string()));
        }
        Ok(Self(out))
    }
}

/// One manifest line: a file, relative to the manifest's directory, and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Relative path with `/` separators, e.g. `mnist/train-images-idx3-ubyte.gz`.
    pub path: String,
    /// Its expected SHA-256.
    pub sha256: Sha256Digest,
}

/// A parsed `SHA256SUMS` file, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The entries, in the order of the file.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Parses manifest text. `file` names the manifest in error messages.
    ///
    /// Accepted line format: 64 hex digits, then either two spaces (text mode) or a space and
    /// `*` (binary mode), then the path. Blank lines and lines starting with `#` are skipped.
    /// Rejected: malformed digests, absolute paths, paths with `..`, `.` or empty components or
    /// backslashes (the manifest must not be able to name a file outside its directory), and a
    /// path listed twice.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, DataError> {
        let mut entries: Vec<ManifestEntry> = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            let bad = |reason: String| DataError::ManifestSyntax {
                file: file.to_string(),
                line: line_no,
                reason,
            };
            let line = std::str::from_utf8(raw).map_err(|_| DataError::NotUtf8 {
                file: file.to_string(),
                line: line_no,
            })?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (hex_part, rest) = line
                .split_at_checked(64)
                .ok_or_else(|| bad("expected `<64 hex digits>  <path>`".to_string()))?;
            let sha256 = Sha256Digest::from_str(hex_part).map_err(|e| bad(e.to_string()))?;
            let path = rest
                .strip_prefix("  ")
                .or_else(|| rest.strip_prefix(" *"))
                .ok_or_else(|| bad("expected two spaces (or ` *`) between the digest and the path".to_string()))?;
            check_relative_path(path).map_err(bad)?;
            if entries.iter().any(|e| e.path == path) {
                return Err(bad(format!("{path} is listed twice")));
            }
            entries.push(ManifestEntry {
                path: path.to_string(),
                sha256,
            });
        }
        Ok(Self { entries })
    }

    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Loads `<datasets_dir>/SHA256SUMS` if it exists (`Ok(None)` if it does not).
    pub fn load_from_dir(datasets_dir: &Path) -> Result<Option<Self>, DataError> {
        let path = datasets_dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataError::Io { path, source }),
        }
    }

    /// The expected digest of `path` (relative, `/`-separated), if listed.
    pub fn get(&self, path: &str) -> Option<&Sha256Digest> {
        self.entries.iter().find(|e| e.path == path).map(|e| &e.sha256)
    }

    /// Renders the manifest back into `sha256sum` format.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}  {}\n", e.sha256, e.path))
            .collect()
    }
}

/// Checks that a manifest path is relative and stays inside its directory.
fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".to_string());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(format!("{path:?} must be a relative path with `/` separators"));
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("{path:?} has an empty, `.` or `..` component"));
    }
    Ok(())
}

/// Compares `bytes` against `expected`; `file` names them in the error.
pub fn verify_bytes(bytes: &[u8], expected: &Sha256Digest, file: &str) -> Result<(), DataError> {
    let found = Sha256Digest::of_bytes(bytes);
    if &found == expected {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            file: file.to_string(),
            expected: expected.to_hex(),
            found: found.to_hex(),
        })
    }
}

/// Hashes the file at `path` (streaming, without loading it whole) and compares with `expected`.
/// A missing file gives [`DataError::Io`] with kind `NotFound`; a different digest gives
/// [`DataError::ChecksumMismatch`] naming `path` and both digests.
pub fn verify_file(path: &Path, expected: &Sha256Digest) -> Result<(), DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let found = Sha256Digest::of_reader(file).map_err(io_err)?;
    if &found == expected {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            file: path.display().to_string(),
            expected: expected.to_hex(),
            found: found.to_hex(),
        })
    }
}

/// The state of one manifest entry on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Present, and its SHA-256 matches.
    Verified,
    /// Not present.
    Missing,
    /// Present with a different SHA-256.
    Corrupt {
        /// The digest found on disk.
        found: Sha256Digest,
    },
}

/// Checks one manifest entry under `datasets_dir`. I/O errors other than "not found" are errors.
pub fn check_entry(datasets_dir: &Path, entry: &ManifestEntry) -> Result<FileStatus, DataError> {
    let path: PathBuf = datasets_dir.join(&entry.path);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileStatus::Missing),
        Err(source) => return Err(DataError::Io { path, source }),
    };
    let found = Sha256Digest::of_reader(file).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(if found == entry.sha256 {
        FileStatus::Verified
    } else {
        FileStatus::Corrupt { found }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_published_value() {
        assert_eq!(Sha256Digest::of_bytes(b"").to_hex(), EMPTY);
        // FIPS 180-2 example "abc".
        assert_eq!(
            Sha256Digest::of_bytes(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reader_and_slice_digests_agree() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(
            Sha256Digest::of_reader(&data[..]).unwrap(),
            Sha256Digest::of_bytes(&data)
        );
    }

    #[test]
    fn manifest_round_trips_and_accepts_binary_mode() {
        let text = format!("{EMPTY}  a/b.gz\n\n{EMPTY} *c.csv\r\n");
        let m = Manifest::parse(text.as_bytes(), "SUMS").unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.get("a/b.gz").unwrap().to_hex(), EMPTY);
        assert_eq!(m.get("c.csv").unwrap().to_hex(), EMPTY);
        assert!(m.get("zzz").is_none());
        assert_eq!(Manifest::parse(m.to_text().as_bytes(), "SUMS").unwrap(), m);
    }

    #[test]
    fn manifest_rejects_bad_lines_with_their_line_number() {
        for (text, line) in [
            (format!("{EMPTY}  ok\nnot a digest line\n"), 2),
            (format!("{}  short\n", &EMPTY[..63]), 1),
            (format!("{EMPTY} one-space\n"), 1),
            (format!("{EMPTY}  ../escape\n"), 1),
            (format!("{EMPTY}  /abs\n"), 1),
            (format!("{EMPTY}  a//b\n"), 1),
            (format!("{EMPTY}  x\n{EMPTY}  x\n"), 2),
            (format!("{}  x\n", "g".repeat(64)), 1),
        ] {
            match Manifest::parse(text.as_bytes(), "SUMS") {
                Err(DataError::ManifestSyntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn verify_file_reports_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        verify_file(&p, &Sha256Digest::of_bytes(b"abc")).unwrap();
        let err = verify_file(&p, &EMPTY.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains(EMPTY) && err.contains("ba7816bf"), "{err}");
        assert!(err.starts_with("checksum mismatch for "), "{err}");
        let missing = verify_file(&dir.path().join("nope"), &EMPTY.parse().unwrap()).unwrap_err();
        assert!(matches!(missing, DataError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn check_entry_classifies_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good"), b"abc").unwrap();
        std::fs::write(dir.path().join("bad"), b"abd").unwrap();
        let abc = Sha256Digest::of_bytes(b"abc");
        let entry = |p: &str| ManifestEntry {
            path: p.to_string(),
            sha256: abc,
        };
        assert_eq!(check_entry(dir.path(), &entry("good")).unwrap(), FileStatus::Verified);
        assert_eq!(check_entry(dir.path(), &entry("gone")).unwrap(), FileStatus::Missing);
        assert_eq!(
            check_entry(dir.path(), &entry("bad")).unwrap(),
            FileStatus::Corrupt {
                found: Sha256Digest::of_bytes(b"abd")
            }
        );
    }
}
