//! `cargo xtask datasets` on temporary copies of the real datasets directory: verification,
//! repair from a mirror directory and from an HTTP mirror (a local one-shot server), refusal of
//! a corrupt mirror, `--check`, and no partial file left behind in any case. No network.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use insitu_data::{default_datasets_dir, verify_file, FileStatus, Manifest};
use xtask::datasets::{fetch_one, run, Candidate, FetchError, Options, Outcome, Report, Source};

fn real() -> PathBuf {
    default_datasets_dir()
}

/// A temporary copy of the datasets directory (manifest and every file it lists).
fn copy_datasets() -> tempfile::TempDir {
    let src = real();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("SHA256SUMS"), tmp.path().join("SHA256SUMS")).unwrap();
    for e in Manifest::load_from_dir(&src).unwrap().unwrap().entries {
        let dst = tmp.path().join(&e.path);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src.join(&e.path), dst).unwrap();
    }
    tmp
}

fn opts(dir: &Path, mirrors: Vec<Source>, check_only: bool) -> Options {
    Options {
        datasets_dir: dir.to_path_buf(),
        mirrors,
        official: false,
        check_only,
        progress: false,
    }
}

fn run_logged(o: &Options) -> (Report, Vec<String>) {
    let mut lines = Vec::new();
    let report = run(o, &mut |l| lines.push(l.to_string())).unwrap();
    (report, lines)
}

/// Every file under `dir`, recursively, whose name marks it as a temporary download.
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(partials(&p));
        } else if p.file_name().unwrap().to_str().unwrap().ends_with(".tmp") {
            out.push(p);
        }
    }
    out
}

fn corrupt(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(path, b).unwrap();
}

const LABELS: &str = "mnist/t10k-labels-idx1-ubyte.gz";
const IRIS_CSV: &str = "iris/iris.csv";

#[test]
fn a_complete_directory_verifies() {
    let tmp = copy_datasets();
    let (report, lines) = run_logged(&opts(tmp.path(), vec![], true));
    assert!(report.all_verified());
    assert_eq!(lines.len(), 11);
    assert!(lines.iter().all(|l| l.starts_with("verified  ")), "{lines:?}");
}

#[test]
fn check_only_reports_without_touching() {
    let tmp = copy_datasets();
    corrupt(&tmp.path().join(LABELS));
    std::fs::remove_file(tmp.path().join(IRIS_CSV)).unwrap();
    let before = std::fs::read(tmp.path().join(LABELS)).unwrap();
    let (report, lines) = run_logged(&opts(tmp.path(), vec![Source::Dir(real())], true));
    assert!(!report.all_verified());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("corrupt   mnist/t10k-labels-idx1-ubyte.gz (expected f7ae60f9")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "missing   iris/iris.csv"), "{lines:?}");
    assert_eq!(std::fs::read(tmp.path().join(LABELS)).unwrap(), before);
    assert!(!tmp.path().join(IRIS_CSV).exists());
}

#[test]
fn corrupt_and_missing_files_are_repaired_from_a_mirror_directory() {
    let tmp = copy_datasets();
    corrupt(&tmp.path().join(LABELS));
    std::fs::remove_file(tmp.path().join(IRIS_CSV)).unwrap();
    let (report, lines) = run_logged(&opts(tmp.path(), vec![Source::Dir(real())], false));
    assert!(report.all_verified(), "{lines:?}");
    let fetched: Vec<&str> = report
        .files
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::Fetched { .. }))
        .map(|(p, _, _)| p.as_str())
        .collect();
    assert_eq!(fetched, [LABELS, IRIS_CSV]);
    let m = Manifest::load_from_dir(tmp.path()).unwrap().unwrap();
    for e in &m.entries {
        verify_file(&tmp.path().join(&e.path), &e.sha256).unwrap();
    }
    assert!(partials(tmp.path()).is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join(IRIS_CSV))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "fetched files are readable by all");
    }
    // A second run finds everything verified.
    let (report, _) = run_logged(&opts(tmp.path(), vec![], true));
    assert!(report.all_verified());
}

#[test]
fn a_flat_mirror_directory_works() {
    let tmp = copy_datasets();
    std::fs::remove_file(tmp.path().join(LABELS)).unwrap();
    let flat = tempfile::tempdir().unwrap();
    std::fs::copy(real().join(LABELS), flat.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let (report, lines) = run_logged(&opts(tmp.path(), vec![Source::Dir(flat.path().to_path_buf())], false));
    assert!(report.all_verified(), "{lines:?}");
}

#[test]
fn a_corrupt_mirror_is_refused_naming_both_digests_and_leaves_nothing() {
    let tmp = copy_datasets();
    std::fs::remove_file(tmp.path().join(IRIS_CSV)).unwrap();
    corrupt(&tmp.path().join(LABELS));
    let corrupted_local = std::fs::read(tmp.path().join(LABELS)).unwrap();
    let mirror = copy_datasets();
    corrupt(&mirror.path().join(IRIS_CSV));
    corrupt(&mirror.path().join(LABELS));
    let bad_digest = insitu_data::Sha256Digest::of_bytes(&std::fs::read(mirror.path().join(IRIS_CSV)).unwrap());

    let (report, lines) = run_logged(&opts(tmp.path(), vec![Source::Dir(mirror.path().to_path_buf())], false));
    assert!(!report.all_verified());
    let (_, expected, outcome) = report.files.iter().find(|(p, _, _)| p == IRIS_CSV).unwrap();
    let Outcome::Unverified { status, attempts } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*status, FileStatus::Missing);
    // The mirror's `<mirror>/iris/iris.csv` is corrupt; `<mirror>/iris.csv` does not exist.
    assert_eq!(attempts.len(), 2);
    let msg = attempts[0].to_string();
    assert!(matches!(attempts[0], FetchError::Mismatch { .. }));
    assert!(
        msg.contains(&format!(
            "checksum mismatch for iris/iris.csv: expected {expected}, found {bad_digest}"
        )),
        "{msg}"
    );
    assert!(lines.iter().any(|l| l.contains(&msg)), "{lines:?}");
    // Nothing partial or wrong was left: the missing file is still missing, the corrupt one
    // unchanged, and no temporary file remains.
    assert!(!tmp.path().join(IRIS_CSV).exists());
    assert_eq!(std::fs::read(tmp.path().join(LABELS)).unwrap(), corrupted_local);
    assert!(partials(tmp.path()).is_empty(), "{:?}", partials(tmp.path()));
}

#[test]
fn stale_partial_files_are_removed() {
    let tmp = copy_datasets();
    let stale = tmp.path().join("mnist/.t10k-labels-idx1-ubyte.gz.abc123.partial.tmp");
    std::fs::write(&stale, b"half a download").unwrap();
    let unrelated = tmp.path().join("mnist/notes.txt");
    std::fs::write(&unrelated, b"keep me").unwrap();
    let (report, _) = run_logged(&opts(tmp.path(), vec![], false));
    assert!(report.all_verified());
    assert!(!stale.exists());
    assert!(unrelated.exists());
}

#[test]
fn a_missing_manifest_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = run(&opts(tmp.path(), vec![], true), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("SHA256SUMS"), "{e}");
}

/// Serves `routes` (`path → body`) over HTTP/1.1 on localhost for `requests` requests; other
/// paths get 404. Returns the base URL.
fn serve(routes: Vec<(String, Vec<u8>)>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
            match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body).unwrap();
                }
                None => {
                    stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .unwrap();
                }
            }
        }
    });
    base
}

#[test]
fn files_are_fetched_over_http_and_verified() {
    let tmp = copy_datasets();
    std::fs::remove_file(tmp.path().join(LABELS)).unwrap();
    let good = std::fs::read(real().join(LABELS)).unwrap();
    // `<base>/mnist/...` is absent (404), `<base>/<file name>` serves the right bytes.
    let base = serve(vec![("/t10k-labels-idx1-ubyte.gz".into(), good.clone())], 2);
    let (report, lines) = run_logged(&opts(tmp.path(), vec![Source::parse(&base)], false));
    assert!(report.all_verified(), "{lines:?}");
    assert_eq!(std::fs::read(tmp.path().join(LABELS)).unwrap(), good);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("fetched   mnist/t10k-labels-idx1-ubyte.gz from http://127.0.0.1:")));
}

#[test]
fn a_corrupt_http_download_is_deleted() {
    let tmp = copy_datasets();
    std::fs::remove_file(tmp.path().join(LABELS)).unwrap();
    let mut bad = std::fs::read(real().join(LABELS)).unwrap();
    bad[100] ^= 0xff;
    let base = serve(vec![("/mnist/t10k-labels-idx1-ubyte.gz".into(), bad)], 1);
    let m = Manifest::load_from_dir(tmp.path()).unwrap().unwrap();
    let entry = m.entries.iter().find(|e| e.path == LABELS).unwrap();
    let e = fetch_one(tmp.path(), entry, &Candidate::Url(format!("{base}/{LABELS}")), false).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "checksum mismatch for {LABELS}: expected {}, found ",
            entry.sha256
        )),
        "{msg}"
    );
    assert!(!tmp.path().join(LABELS).exists());
    assert!(partials(tmp.path()).is_empty());
    // An unreachable URL is an `Unavailable` error, not a panic.
    let e = fetch_one(tmp.path(), entry, &Candidate::Url(format!("{base}/gone")), false).unwrap_err();
    assert!(matches!(e, FetchError::Unavailable { .. }), "{e}");
}
