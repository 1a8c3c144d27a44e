//! The results store: `results/<profile>/<spec-hash>.json`, one [`StoredResult`] per file,
//! each written atomically (a temporary file in the same directory, fsync, rename; the directory
//! is fsynced too), so a reader sees either nothing or a whole file, and a run killed at any
//! point (SIGKILL included) leaves at most a temporary file, which [`Store::scan`] ignores and
//! removes once its writer is dead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runspec::{RunResult, RunSpec, HASH_HEX_DIGITS, RESULTS_SCHEMA_VERSION};

/// One stored result: what ran, what came out, and where and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResult {
    /// [`RESULTS_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The resolved spec (its hash is the file name).
    pub spec: RunSpec,
    /// The result.
    pub result: RunResult,
    /// `git rev-parse HEAD` of the workspace that produced it, or `unknown`.
    pub commit: String,
    /// UTC time the result was stored, RFC 3339.
    pub finished_at: String,
    /// Wall time of the whole run (data loading and evaluation included), seconds; for a run
    /// done in an FF depth sweep, an equal share of the sweep's (its `result.train_seconds` is
    /// what it would take alone).
    pub wall_seconds: f64,
}

/// Why a file in the store is not a valid result.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// the OS error
        source: std::io::Error,
    },
    /// Writing a result failed.
    #[error(transparent)]
    Write(#[from] insitu_data::DataError),
    /// The file is not a stored result (truncated, edited, another format).
    #[error("{path}: not a valid result file: {reason}")]
    Corrupt {
        /// the file
        path: PathBuf,
        /// what is wrong with it
        reason: String,
    },
}

/// What a scan of the store found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Valid results by spec hash.
    pub done: BTreeMap<String, StoredResult>,
    /// Files named like results that are not valid ones (reported, then redone).
    pub corrupt: Vec<StoreError>,
    /// Stale temporary files removed (their writer is gone).
    pub removed_temporaries: Vec<PathBuf>,
}

/// A directory of results of one profile.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// The writer's process id of a temporary file named as the store named them before
/// `insitu_data::write_atomically` (session 20): `.tmp-<hash>-<pid>`, so that a store
/// written then is cleaned too.
fn legacy_temporary_pid(name: &str) -> Option<u32> {
    let (hash, pid) = name.strip_prefix(".tmp-")?.rsplit_once('-')?;
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `name` is a result file name: 16 lowercase hex digits and `.json`.
pub fn is_result_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(|stem| {
        stem.len() == HASH_HEX_DIGITS && stem.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.is_dir() {
        return true; // cannot tell: leave it alone
    }
    proc_root.join(pid.to_string()).exists()
}

impl Store {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the result of the spec with hash `hash` lives.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.json"))
    }

    /// Where the trained phase masks of the seed 002 run with spec hash `hash` are kept
    /// (`<hash>.masks.npy`, float32 `(layers, n, n)`; written before its result, not tracked by
    /// git: `insitu ffm evaluate --run <hash>.json --masks <hash>.masks.npy` deploys them).
    pub fn masks_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.masks.npy"))
    }

    /// Where the checkpoint of the run with spec hash `hash` lives while it runs
    /// (`checkpoints/<hash>.ckpt`; seed 002 runs, `insitu_ffm::FfmCheckpoint`).
    pub fn checkpoint_path(&self, hash: &str) -> PathBuf {
        self.dir.join("checkpoints").join(format!("{hash}.ckpt"))
    }

    /// Parses and validates one result file: schema version, the hash of its spec equal to its
    /// name, and a result of that spec.
    pub fn read(&self, path: &Path) -> Result<StoredResult, StoreError> {
        let text = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })?;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.into(),
            reason,
        };
        let stored: StoredResult = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if stored.schema_version != RESULTS_SCHEMA_VERSION {
            return Err(corrupt(format!(
                "schema version {} (this xtask writes {RESULTS_SCHEMA_VERSION})",
                stored.schema_version
            )));
        }
        let hash = stored.spec.hash();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem != hash {
            return Err(corrupt(format!(
                "its spec hashes to {hash}, not to its file name (renamed, or written when a spec type had other fields)"
            )));
        }
        if !stored.spec.matches(&stored.result) {
            return Err(corrupt("the result was produced by a different spec".into()));
        }
        Ok(stored)
    }

    /// Every valid result; corrupt files are listed (not deleted: the rerun replaces them);
    /// temporary files of dead writers are removed. A missing directory is an empty store.
    pub fn scan(&self) -> Result<Scan, StoreError> {
        let mut scan = Scan::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            if let Some(pid) = insitu_data::temporary_writer_pid(&name).or_else(|| legacy_temporary_pid(&name)) {
                if !process_alive(pid) && std::fs::remove_file(&path).is_ok() {
                    scan.removed_temporaries.push(path);
                }
                continue;
            }
            if !is_result_name(&name) {
                continue;
            }
            match self.read(&path) {
                Ok(r) => {
                    scan.done.insert(r.spec.hash(), r);
                }
                Err(e) => scan.corrupt.push(e),
            }
        }
        Ok(scan)
    }

    /// Writes `record` as `<hash>.json` atomically (`insitu_data::write_atomically`:
    /// temporary file in the same directory, fsync, rename over any previous file, fsync of the
    /// directory).
    pub fn write(&self, record: &StoredResult) -> Result<PathBuf, StoreError> {
        let target = self.path_of(&record.spec.hash());
        let mut text = serde_json::to_vec_pretty(record).expect("results are plain data");
        text.push(b'\n');
        insitu_data::write_atomically(&target, &text)?;
        Ok(target)
    }
}

/// `git rev-parse HEAD` in `dir`, or `unknown`.
pub fn current_commit(dir: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The current UTC time as RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `t` in UTC as RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_ffzero::{Status, TrainResult, TrainSpec};

    fn record(width: usize) -> StoredResult {
        let spec = TrainSpec {
            width,
            ..TrainSpec::default()
        };
        StoredResult {
            schema_version: RESULTS_SCHEMA_VERSION,
            spec: RunSpec::Ffzero(spec.clone()),
            result: RunResult::Ffzero(TrainResult {
                spec,
                test_accuracy: Some(0.5),
                test_r2: None,
                per_layer_test_accuracy: None,
                per_layer_test_r2: None,
                train_seconds: 1.0,
                forward_passes: 10,
                status: Status::Ok,
                divergence: None,
                loss_curve: Vec::new(),
                parameters: 3,
            }),
            commit: "abc".into(),
            finished_at: now_rfc3339(),
            wall_seconds: 1.5,
        }
    }

    #[test]
    fn write_then_scan_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("quick"));
        assert!(store.scan().unwrap().done.is_empty(), "a missing directory is empty");
        let r = record(10);
        let path = store.write(&r).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("{}.json", r.spec.hash())
        );
        store.write(&r).unwrap(); // rewriting replaces, never duplicates
        let scan = store.scan().unwrap();
        assert_eq!(scan.done.len(), 1);
        assert_eq!(scan.done[&r.spec.hash()], r);
        assert!(scan.corrupt.is_empty());
        let names: Vec<_> = std::fs::read_dir(store.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    /// Stored numbers read back bit for bit: a resumed sweep compares them with fresh runs.
    /// -0.9100769105542781 is an R² that serde_json's default (fast, not correctly rounded)
    /// float parser read back one unit in the last place off; the `float_roundtrip` feature
    /// fixes it.
    #[test]
    fn stored_floats_read_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let awkward = [
            -0.9100769105542781,
            0.1 + 0.2,
            1.0 / 3.0,
            5e-324,
            1.7976931348623157e308,
            0.8779999999999999,
        ];
        for (i, &value) in awkward.iter().enumerate() {
            let mut r = record(10 + i);
            let RunResult::Ffzero(result) = &mut r.result else {
                unreachable!()
            };
            result.test_r2 = Some(value);
            result.test_accuracy = Some(-value / 7.0);
            store.write(&r).unwrap();
            let back = store.scan().unwrap().done[&r.spec.hash()].clone();
            let RunResult::Ffzero(back) = back.result else {
                unreachable!()
            };
            assert_eq!(back.test_r2.unwrap().to_bits(), value.to_bits(), "{value:e}");
            assert_eq!(
                back.test_accuracy.unwrap().to_bits(),
                (-value / 7.0).to_bits(),
                "{value:e}"
            );
        }
    }

    #[test]
    fn corrupt_truncated_and_misnamed_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let good = record(10);
        store.write(&good).unwrap();
        // half-written: a truncated copy of a valid file under another valid name
        let other = record(20);
        let full = serde_json::to_string_pretty(&other).unwrap();
        std::fs::write(store.path_of(&other.spec.hash()), &full[..full.len() / 2]).unwrap();
        // a valid record under the wrong name
        std::fs::write(store.path_of("0123456789abcdef"), serde_json::to_vec(&good).unwrap()).unwrap();
        // a result that does not belong to its spec
        let mut mixed = record(30);
        mixed.result = record(40).result;
        std::fs::write(store.path_of(&mixed.spec.hash()), serde_json::to_vec(&mixed).unwrap()).unwrap();
        // an unrelated file is ignored
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let scan = store.scan().unwrap();
        assert_eq!(scan.done.len(), 1);
        assert!(scan.done.contains_key(&good.spec.hash()));
        assert_eq!(scan.corrupt.len(), 3, "{:?}", scan.corrupt);
        let msgs: Vec<String> = scan.corrupt.iter().map(|e| e.to_string()).collect();
        assert!(msgs
            .iter()
            .any(|m| m.contains(&other.spec.hash()) && m.contains("not a valid result")));
        assert!(msgs
            .iter()
            .any(|m| m.contains("0123456789abcdef") && m.contains("hashes to")));
        assert!(msgs.iter().any(|m| m.contains("different spec")));
        // the rerun replaces the truncated file atomically
        store.write(&other).unwrap();
        assert_eq!(store.scan().unwrap().done.len(), 2);
    }

    #[test]
    fn temporaries_are_ignored_and_stale_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let r = record(10);
        let stale = dir.path().join(format!(".{}.json.tmp-{}", r.spec.hash(), u32::MAX - 1));
        let live = dir
            .path()
            .join(format!(".{}.json.tmp-{}", r.spec.hash(), std::process::id()));
        // the name the store gave its temporaries before session 20
        let stale_legacy = dir.path().join(format!(".tmp-{}-{}", r.spec.hash(), u32::MAX - 2));
        let live_legacy = dir
            .path()
            .join(format!(".tmp-{}-{}", r.spec.hash(), std::process::id()));
        let half = serde_json::to_string(&r).unwrap();
        for path in [&stale, &live, &stale_legacy, &live_legacy] {
            std::fs::write(path, &half[..10]).unwrap();
        }
        let scan = store.scan().unwrap();
        assert!(scan.done.is_empty() && scan.corrupt.is_empty());
        let mut removed = scan.removed_temporaries.clone();
        removed.sort();
        let mut want = vec![stale.clone(), stale_legacy.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(!stale.exists() && live.exists(), "a live writer's file is left alone");
        assert!(!stale_legacy.exists() && live_legacy.exists());
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && &t[4..5] == "-" && &t[10..11] == "T", "{t}");
        assert!(t.as_str() > "2024-01-01");
    }
}
