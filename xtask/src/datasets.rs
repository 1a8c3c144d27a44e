//! `cargo xtask datasets`: verify every file listed in `datasets/SHA256SUMS` and fetch what is
//! missing or corrupt.
//!
//! For each manifest entry, in manifest order:
//! 1. hash the file on disk (insitu-data's [`check_entry`]) and print `verified`, `missing` or
//!    `corrupt` (with both digests);
//! 2. unless `--check`, try the sources of a missing or corrupt file in order — each
//!    `--mirror` (a local directory or a base URL; `<mirror>/<relative path>` then
//!    `<mirror>/<file name>`), then the official mirrors ([`official_urls`]) — until one yields
//!    the right bytes.
//!
//! A download goes to a temporary file in the destination's own directory (named
//! `.<file name>.<random>.partial.tmp`), is hashed while it is written, and is renamed over the
//! destination only if its SHA-256 matches; otherwise the temporary file is deleted and the next
//! source is tried. The rename is atomic, so the destination is either the old file or a verified
//! new one, never a partial file. Temporary files are deleted on every error path (they are
//! [`tempfile::NamedTempFile`]s); one left by a killed process is deleted by the next run.
//!
//! The command exits non-zero if any file is still missing or corrupt at the end.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use insitu_data::{
    check_entry, default_datasets_dir, FileStatus, Manifest, ManifestEntry, Sha256Digest, MANIFEST_FILE,
};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Command-line arguments of `cargo xtask datasets`.
#[derive(Debug, Clone, Args)]
pub struct DatasetsArgs {
    /// Verify only: report missing and corrupt files, fetch nothing, use no network.
    #[arg(long)]
    pub check: bool,

    /// A local directory or a base URL (http:// or https://) tried before the official
    /// mirrors, as `<mirror>/<relative path>` then `<mirror>/<file name>`. May be repeated.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub mirror: Vec<String>,

    /// Use only the --mirror sources, not the official ones.
    #[arg(long)]
    pub no_official: bool,

    /// The datasets directory (default: $INSITU_DATASETS, else the nearest ancestor's
    /// `datasets/` holding a SHA256SUMS, else the workspace's `datasets/`).
    #[arg(long, value_name = "DIR")]
    pub datasets_dir: Option<PathBuf>,
}

/// Where a file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory.
    Dir(PathBuf),
    /// A base URL (`http://` or `https://`), without a trailing `/`.
    Url(String),
}

impl Source {
    /// Reads `--mirror`'s value: a URL if it starts with `http://` or `https://`, a directory
    /// otherwise (`file://` prefixes are stripped).
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.trim_end_matches('/').to_string())
        } else {
            Source::Dir(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        }
    }
}

/// One concrete place to get one file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A local file.
    File(PathBuf),
    /// A URL.
    Url(String),
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::File(p) => write!(f, "{}", p.display()),
            Candidate::Url(u) => f.write_str(u),
        }
    }
}

/// The official download locations of a manifest entry (empty for files with none).
pub fn official_urls(rel: &str) -> Vec<String> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match rel.split('/').next() {
        Some("mnist") => vec![
            format!("https://ossci-datasets.s3.amazonaws.com/mnist/{name}"),
            format!("https://storage.googleapis.com/cvdf-datasets/mnist/{name}"),
        ],
        Some("fashion-mnist") => vec![format!(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}"
        )],
        Some("iris") if name == "iris.csv" => {
            vec![
                "https://raw.githubusercontent.com/scikit-learn/scikit-learn/main/sklearn/datasets/data/iris.csv"
                    .into(),
            ]
        }
        Some("iris") => vec![format!(
            "https://archive.ics.uci.edu/ml/machine-learning-databases/iris/{name}"
        )],
        _ => Vec::new(),
    }
}

/// The places to try for `rel`, in order: each mirror (`<mirror>/<rel>`, then
/// `<mirror>/<file name>`), then, if `official`, [`official_urls`].
pub fn candidates(rel: &str, mirrors: &[Source], official: bool) -> Vec<Candidate> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let mut out = Vec::new();
    for m in mirrors {
        for tail in [rel, name] {
            let c = match m {
                Source::Dir(d) => Candidate::File(d.join(tail)),
                Source::Url(u) => Candidate::Url(format!("{u}/{tail}")),
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if official {
        out.extend(official_urls(rel).into_iter().map(Candidate::Url));
    }
    out
}

/// Why one source did not yield a file.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The bytes arrived but their digest is wrong.
    #[error("{from}: checksum mismatch for {file}: expected {expected}, found {found}")]
    Mismatch {
        /// The source.
        from: String,
        /// The manifest path.
        file: String,
        /// The manifest's digest.
        expected: Sha256Digest,
        /// The downloaded bytes' digest.
        found: Sha256Digest,
    },
    /// The source could not be read (absent, HTTP error, network failure, disk error).
    #[error("{from}: {message}")]
    Unavailable {
        /// The source.
        from: String,
        /// What went wrong.
        message: String,
    },
}

/// What happened to one manifest entry.
#[derive(Debug)]
pub enum Outcome {
    /// It was already present and correct.
    Verified,
    /// It was missing or corrupt (`before`) and has been replaced by a verified copy from `from`.
    Fetched {
        /// Its state before.
        before: FileStatus,
        /// Where the verified copy came from.
        from: Candidate,
    },
    /// It is missing or corrupt and stays so: `--check`, or every source failed (`attempts`,
    /// empty when there was no source to try).
    Unverified {
        /// Its state.
        status: FileStatus,
        /// One error per source tried.
        attempts: Vec<FetchError>,
    },
}

/// The result of a run: one outcome per manifest entry, in manifest order.
#[derive(Debug)]
pub struct Report {
    /// `(relative path, expected digest, outcome)`.
    pub files: Vec<(String, Sha256Digest, Outcome)>,
}

impl Report {
    /// Whether every file is now present and verified.
    pub fn all_verified(&self) -> bool {
        self.files
            .iter()
            .all(|(_, _, o)| !matches!(o, Outcome::Unverified { .. }))
    }
}

/// Options of [`run`], independent of the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The datasets directory (holding `SHA256SUMS`).
    pub datasets_dir: PathBuf,
    /// Sources tried first.
    pub mirrors: Vec<Source>,
    /// Whether to try the official mirrors after `mirrors`.
    pub official: bool,
    /// Verify only.
    pub check_only: bool,
    /// Whether to draw progress bars (on stderr).
    pub progress: bool,
}

/// Errors that stop the whole command (as opposed to one file's fetch failing).
#[derive(Debug, Error)]
pub enum DatasetsError {
    /// The manifest is missing or malformed, or a file could not be read for hashing.
    #[error(transparent)]
    Data(#[from] insitu_data::DataError),
}

/// A status line for one file, as printed.
pub fn status_line(rel: &str, expected: &Sha256Digest, status: &FileStatus) -> String {
    match status {
        FileStatus::Verified => format!("verified  {rel}"),
        FileStatus::Missing => format!("missing   {rel}"),
        FileStatus::Corrupt { found } => format!("corrupt   {rel} (expected {expected}, found {found})"),
    }
}

/// Verifies every manifest entry and, unless `check_only`, repairs the missing and corrupt
/// ones. `log` receives the human-readable lines (one status line per file, then one line per
/// fetch result).
pub fn run(opts: &Options, log: &mut dyn FnMut(&str)) -> Result<Report, DatasetsError> {
    let manifest_path = opts.datasets_dir.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path)?;
    if !opts.check_only {
        remove_stale_partials(&opts.datasets_dir, &manifest);
    }
    let mut files = Vec::with_capacity(manifest.entries.len());
    for entry in &manifest.entries {
        let status = check_entry(&opts.datasets_dir, entry)?;
        log(&status_line(&entry.path, &entry.sha256, &status));
        let outcome = if status == FileStatus::Verified {
            Outcome::Verified
        } else if opts.check_only {
            Outcome::Unverified {
                status,
                attempts: Vec::new(),
            }
        } else {
            let mut attempts = Vec::new();
            let mut fetched = None;
            for c in candidates(&entry.path, &opts.mirrors, opts.official) {
                match fetch_one(&opts.datasets_dir, entry, &c, opts.progress) {
                    Ok(()) => {
                        fetched = Some(c);
                        break;
                    }
                    Err(e) => attempts.push(e),
                }
            }
            match fetched {
                Some(from) => {
                    log(&format!("fetched   {} from {from} (SHA-256 verified)", entry.path));
                    Outcome::Fetched { before: status, from }
                }
                None => {
                    if attempts.is_empty() {
                        log(&format!("FAILED    {}: no source to fetch it from", entry.path));
                    } else {
                        log(&format!("FAILED    {}:", entry.path));
                        for a in &attempts {
                            log(&format!("            {a}"));
                        }
                    }
                    Outcome::Unverified { status, attempts }
                }
            }
        };
        files.push((entry.path.clone(), entry.sha256, outcome));
    }
    Ok(Report { files })
}

/// The prefix and suffix of the temporary file for `name` (`.<name>.<random>.partial.tmp`).
fn partial_affixes(name: &str) -> (String, &'static str) {
    (format!(".{name}."), ".partial.tmp")
}

/// Deletes temporary files a killed run may have left next to the manifest's files.
fn remove_stale_partials(dir: &Path, manifest: &Manifest) {
    for entry in &manifest.entries {
        let dest = dir.join(&entry.path);
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name().and_then(|n| n.to_str())) else {
            continue;
        };
        let (prefix, suffix) = partial_affixes(name);
        let Ok(read) = std::fs::read_dir(parent) else { continue };
        for e in read.flatten() {
            let n = e.file_name();
            if n.to_str()
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(suffix))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A `ureq` agent: no transparent decompression (the `.gz` files must arrive as they are),
/// bounded connection and response waits, no overall limit (large files on slow links).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Copies `candidate` into a temporary file next to the destination, hashing as it goes; renames
/// it into place if the digest matches, deletes it otherwise.
pub fn fetch_one(dir: &Path, entry: &ManifestEntry, candidate: &Candidate, progress: bool) -> Result<(), FetchError> {
    let from = candidate.to_string();
    let unavailable = |message: String| FetchError::Unavailable {
        from: from.clone(),
        message,
    };
    let dest = dir.join(&entry.path);
    let parent = dest
        .parent()
        .ok_or_else(|| unavailable("destination has no parent directory".into()))?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("download");
    std::fs::create_dir_all(parent).map_err(|e| unavailable(format!("cannot create {}: {e}", parent.display())))?;

    let (reader, len): (Box<dyn Read>, Option<u64>) = match candidate {
        Candidate::File(p) => {
            let f = File::open(p).map_err(|e| unavailable(e.to_string()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        Candidate::Url(u) => {
            let resp = agent()
                .get(u)
                .header("Accept-Encoding", "identity")
                .call()
                .map_err(|e| unavailable(e.to_string()))?;
            let len = resp.body().content_length();
            (Box::new(resp.into_body().into_reader()), len)
        }
    };

    let (prefix, suffix) = partial_affixes(name);
    // Deleted when dropped: on a mismatch and on every error path below.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .tempfile_in(parent)
        .map_err(|e| unavailable(format!("cannot create a temporary file in {}: {e}", parent.display())))?;

    let bar = progress_bar(progress, len, &entry.path);
    let mut reader = bar.wrap_read(reader);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(unavailable(format!("read failed: {e}")));
            }
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| unavailable(format!("cannot write {}: {e}", tmp.path().display())))?;
    }
    bar.finish_and_clear();

    let found = Sha256Digest(hasher.finalize().into());
    if found != entry.sha256 {
        return Err(FetchError::Mismatch {
            from,
            file: entry.path.clone(),
            expected: entry.sha256,
            found,
        });
    }
    // Temporary files are created private (0600); a data file is world-readable like the rest
    // of the checkout.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| unavailable(format!("cannot set permissions on {}: {e}", tmp.path().display())))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| unavailable(format!("cannot flush {}: {e}", tmp.path().display())))?;
    tmp.persist(&dest)
        .map_err(|e| unavailable(format!("cannot move into {}: {}", dest.display(), e.error)))?;
    Ok(())
}

/// A byte-count progress bar on stderr, hidden when `show` is false.
fn progress_bar(show: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let style =
        ProgressStyle::with_template("{msg:40} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.with_style(style).with_message(what.to_string())
}

/// `cargo xtask datasets`: runs [`run`] with the command line's options, prints the lines on
/// stdout and a summary, and returns failure if anything remains unverified.
pub fn main(args: DatasetsArgs) -> ExitCode {
    let opts = Options {
        datasets_dir: args.datasets_dir.unwrap_or_else(default_datasets_dir),
        mirrors: args.mirror.iter().map(|m| Source::parse(m)).collect(),
        official: !args.no_official,
        check_only: args.check,
        progress: std::io::stderr().is_terminal(),
    };
    println!("datasets directory: {}", opts.datasets_dir.display());
    match run(&opts, &mut |line| println!("{line}")) {
        Ok(report) => {
            let count = |f: fn(&Outcome) -> bool| report.files.iter().filter(|(_, _, o)| f(o)).count();
            let verified = count(|o| matches!(o, Outcome::Verified));
            let fetched = count(|o| matches!(o, Outcome::Fetched { .. }));
            let bad = count(|o| matches!(o, Outcome::Unverified { .. }));
            println!("{verified} verified, {fetched} fetched and verified, {bad} missing or corrupt");
            if report.all_verified() {
                ExitCode::SUCCESS
            } else {
                if opts.check_only {
                    eprintln!("run `cargo xtask datasets` (without --check) to fetch them");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_candidates() {
        assert_eq!(Source::parse("https://x.org/a/"), Source::Url("https://x.org/a".into()));
        assert_eq!(Source::parse("file:///m"), Source::Dir("/m".into()));
        assert_eq!(Source::parse("m"), Source::Dir("m".into()));
        let c = candidates(
            "mnist/a.gz",
            &[Source::Dir("/m".into()), Source::Url("http://h".into())],
            true,
        );
        let s: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            [
                "/m/mnist/a.gz",
                "/m/a.gz",
                "http://h/mnist/a.gz",
                "http://h/a.gz",
                "https://ossci-datasets.s3.amazonaws.com/mnist/a.gz",
                "https://storage.googleapis.com/cvdf-datasets/mnist/a.gz",
            ]
        );
        assert!(candidates("mnist/a.gz", &[], false).is_empty());
        assert_eq!(candidates("top.txt", &[Source::Dir("/m".into())], true).len(), 1);
    }

    #[test]
    fn every_tracked_file_has_an_official_source() {
        let m = Manifest::load_from_dir(&default_datasets_dir()).unwrap().unwrap();
        for e in &m.entries {
            assert!(!official_urls(&e.path).is_empty(), "{}", e.path);
        }
        assert_eq!(
            official_urls("iris/iris.names"),
            ["https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.names"]
        );
        assert_eq!(
            official_urls("fashion-mnist/t10k-labels-idx1-ubyte.gz"),
            ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz"]
        );
    }
}
