//! `cargo xtask reproduce` and `collect` end to end on the hidden `tiny` profile (six short
//! synthetic-regression runs of `seed000-fig6`), each test in temporary directories:
//! * killed with SIGKILL mid-way, plus a corrupted result file, then restarted: the store ends
//!   equal to an uninterrupted run's, with no duplicate and no temporary file;
//! * `--shard 0/2` and `1/2` into two stores, collected into a third: equal to the full run;
//! * `--emit-slurm`: a script that `bash -n` accepts, whose `#SBATCH` block is well formed and
//!   whose array range covers the specs, that calls `insitu train --spec … --json …`; results
//!   written as the array would write them are collected into the store, and a result that does
//!   not belong to its spec is rejected.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xtask::runspec::{RunResult, RunSpec};
use xtask::slurm::Manifest;
use xtask::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_xtask");

fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

fn reproduce_args<'a>(results: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    reproduce_args_jobs(results, "2", extra)
}

fn reproduce_args_jobs<'a>(results: &'a str, jobs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "reproduce",
        "--profile",
        "tiny",
        "--only",
        "seed000-fig6",
        "--jobs",
        jobs,
        "--results",
        results,
        "--no-render",
    ];
    v.extend_from_slice(extra);
    v
}

fn run_ok(args: &[&str]) -> String {
    let out = xtask(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "xtask {args:?} failed:\n{stderr}");
    stderr
}

/// A store's results with timing fields removed: hash → (spec, result).
type Contents = BTreeMap<String, (RunSpec, RunResult)>;

/// The store's [`Contents`].
fn contents(dir: &Path) -> Contents {
    let scan = Store::new(dir).scan().unwrap();
    assert!(scan.corrupt.is_empty(), "{:?}", scan.corrupt);
    scan.done
        .into_iter()
        .map(|(h, r)| (h, (r.spec, r.result.without_timings())))
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The uninterrupted run, shared by the tests (the `tiny` matrix is six runs).
fn baseline() -> &'static (tempfile::TempDir, Contents) {
    static B: OnceLock<(tempfile::TempDir, Contents)> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        run_ok(&reproduce_args(&root, &[]));
        let c = contents(&dir.path().join("tiny"));
        let plan = xtask::reproduce::plan(xtask::matrix::Profile::Tiny, &["seed000-fig6".into()]).unwrap();
        assert_eq!(c.len(), plan.unique.len());
        assert!(c.len() >= 4);
        (dir, c)
    })
}

#[test]
fn killed_mid_way_and_restarted_equals_an_uninterrupted_run() {
    let (_, expected) = baseline();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let store_dir = dir.path().join("tiny");
    let count = |d: &Path| {
        std::fs::read_dir(d).map_or(0, |e| {
            e.filter(|e| xtask::store::is_result_name(&e.as_ref().unwrap().file_name().to_string_lossy()))
                .count()
        })
    };
    let mut child = xtask(&reproduce_args(&root, &[]))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while count(&store_dir) == 0 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = count(&store_dir);
    assert!(after_kill >= 1, "the first run stored something before the kill");
    assert!(
        after_kill < expected.len(),
        "killed mid-way: {after_kill} of {} were done",
        expected.len()
    );
    // every file present is whole and valid (never half-written) …
    let partial = contents(&store_dir);
    for (h, v) in &partial {
        assert_eq!(&expected[h], v);
    }
    // … then damage one, and leave a stale temporary file of a dead writer
    let victim = partial.keys().next().unwrap().clone();
    let victim_path = store_dir.join(format!("{victim}.json"));
    let text = std::fs::read_to_string(&victim_path).unwrap();
    std::fs::write(&victim_path, &text[..text.len() / 3]).unwrap();
    std::fs::write(
        store_dir.join(format!(".{victim}.json.tmp-{}", u32::MAX - 7)),
        "{\"half",
    )
    .unwrap();

    let stderr = run_ok(&reproduce_args(&root, &[]));
    assert!(
        stderr.contains("corrupt result file") && stderr.contains(&victim),
        "the corrupt file is reported by name:\n{stderr}"
    );
    let redone = stderr.lines().filter(|l| l.contains(" done ")).count();
    assert_eq!(
        redone,
        expected.len() - after_kill + 1,
        "only the unfinished runs and the corrupt one are redone:\n{stderr}"
    );
    assert_eq!(&contents(&store_dir), expected);
    let names = file_names(&store_dir);
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".json")).count(),
        expected.len(),
        "no duplicates: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains(".tmp")),
        "no temporary left: {names:?}"
    );

    // a third run has nothing to do
    let stderr = run_ok(&reproduce_args(&root, &[]));
    assert!(
        stderr.contains(&format!("{} already done, 0 to run", expected.len())),
        "{stderr}"
    );
}

#[test]
fn shards_run_serially_or_in_parallel_collected_into_one_store_equal_the_full_run() {
    let (_, expected) = baseline();
    let dir = tempfile::tempdir().unwrap();
    let s0 = dir.path().join("s0");
    let s1 = dir.path().join("s1");
    let merged = dir.path().join("merged");
    // one shard serially, the other with three jobs: the results must not depend on it
    run_ok(&reproduce_args_jobs(s0.to_str().unwrap(), "1", &["--shard", "0/2"]));
    run_ok(&reproduce_args_jobs(s1.to_str().unwrap(), "3", &["--shard", "1/2"]));
    let (c0, c1) = (contents(&s0.join("tiny")), contents(&s1.join("tiny")));
    assert!(!c0.is_empty() && !c1.is_empty());
    assert!(c0.keys().all(|k| !c1.contains_key(k)), "shards are disjoint");
    assert_eq!(c0.len() + c1.len(), expected.len());
    let m = merged.to_str().unwrap();
    for s in [&s0, &s1] {
        let out = xtask(&[
            "collect",
            s.join("tiny").to_str().unwrap(),
            "--results",
            m,
            "--no-render",
        ])
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(&contents(&merged.join("tiny")), expected);
    // collecting again adds nothing
    let out = xtask(&[
        "collect",
        s0.join("tiny").to_str().unwrap(),
        "--results",
        m,
        "--no-render",
    ])
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("collected 0 new results"));
}

/// The `#SBATCH` directives of a script: they must come before the first command, each
/// `--option=value` with a known option.
fn sbatch_directives(script: &str) -> BTreeMap<String, String> {
    let mut lines = script.lines();
    assert_eq!(lines.next(), Some("#!/bin/bash"), "sbatch needs a shebang first");
    let mut d = BTreeMap::new();
    let mut commands_started = false;
    for line in lines {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("#SBATCH") {
            assert!(
                !commands_started,
                "#SBATCH after the first command is ignored by sbatch: {line}"
            );
            let (k, v) = rest.trim().split_once('=').expect("--option=value");
            let k = k.strip_prefix("--").expect("long option");
            assert!(
                ["job-name", "array", "ntasks", "cpus-per-task", "mem", "time", "output"].contains(&k),
                "unknown option {k}"
            );
            assert!(!v.is_empty() && !v.contains(' '), "{line}");
            d.insert(k.to_string(), v.to_string());
        } else if !t.is_empty() && !t.starts_with('#') {
            commands_started = true;
        }
    }
    d
}

#[test]
fn emit_slurm_writes_valid_sbatch_input_and_collect_merges_its_results() {
    let (_, expected) = baseline();
    let dir = tempfile::tempdir().unwrap();
    let em = dir.path().join("slurm");
    let root = dir.path().join("store");
    let r = root.to_str().unwrap();
    run_ok(&reproduce_args(r, &["--emit-slurm", em.to_str().unwrap()]));
    let script = std::fs::read_to_string(em.join("job.sbatch")).unwrap();
    let d = sbatch_directives(&script);
    let n = expected.len();
    assert_eq!(d["array"], format!("0-{}", n - 1));
    assert_eq!(d["cpus-per-task"], "1");
    let time = &d["time"];
    let parts: Vec<&str> = time.split(':').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "time {time}"
    );
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(em.join("job.sbatch"))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));

    // run array task 3 with a stand-in for `insitu` that records its arguments
    let stub = dir.path().join("insitu-stub");
    std::fs::write(&stub, "#!/bin/bash\necho \"$@\" >> \"$STUB_LOG\"\n").unwrap();
    Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
    let log = dir.path().join("stub.log");
    let st = Command::new("bash")
        .arg("job.sbatch")
        .current_dir(&em)
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("INSITU", &stub)
        .env("STUB_LOG", &log)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "train --spec specs/0003.json --json results/0003.json"
    );

    // the manifest and the bare specs agree; write each result as `insitu train --json` would
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(em.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.entries.len(), n);
    for e in &manifest.entries {
        assert_eq!(e.spec.hash(), e.hash);
        let bare: insitu_ffzero::TrainSpec =
            serde_json::from_str(&std::fs::read_to_string(em.join(format!("specs/{:04}.json", e.index))).unwrap())
                .unwrap();
        assert_eq!(RunSpec::Ffzero(bare), e.spec);
        let RunResult::Ffzero(result) = &expected[&e.hash].1 else {
            panic!("tiny is seed 000 only")
        };
        std::fs::write(
            em.join(format!("results/{:04}.json", e.index)),
            serde_json::to_string_pretty(result).unwrap(),
        )
        .unwrap();
    }
    // one result swapped for another spec's: rejected, not stored under the wrong hash
    let swapped = em.join("results/0000.json");
    std::fs::copy(em.join("results/0001.json"), &swapped).unwrap();
    let out = xtask(&["collect", em.to_str().unwrap(), "--results", r, "--no-render"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("0000.json"), "{stderr}");
    let got = contents(&root.join("tiny"));
    assert_eq!(got.len(), n - 1);
    for (h, v) in &got {
        assert_eq!(&expected[h], v);
    }
}

#[test]
fn list_shows_costs_and_what_is_done() {
    let (dir, expected) = baseline();
    let out = xtask(&[
        "reproduce",
        "--profile",
        "tiny",
        "--list",
        "--results",
        dir.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains(&format!("seed000-fig6: {0} runs, {0} done", expected.len())),
        "{stdout}"
    );
    assert!(stdout.contains("total:") && stdout.contains("≈"), "{stdout}");
    let bad = xtask(&["reproduce", "--only", "fig99", "--list"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("seed000-fig4"));
}
