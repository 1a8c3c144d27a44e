//! Beyond one machine: `reproduce --emit-slurm DIR` writes every pending spec and a Slurm
//! job-array script calling the `insitu` binary; `collect DIR` validates what came back and
//! merges it into the store. No scheduler of our own: Slurm is what the clusters run.
//!
//! Layout of DIR: `specs/NNNN.json` (the bare `TrainSpec` / `FfmSpec` that
//! `insitu train --spec` / `insitu ffm train --spec` read; an `FfmSpec` names its data set),
//! `manifest.json` (profile, commit,
//! and the full [`RunSpec`] and hash of every index), `job.sbatch`, `results/NNNN.json` (what
//! the array tasks write), `checkpoints/NNNN/` (an `FfmSpec` run's state while it runs: a task
//! killed by the time limit or preempted resumes there when it is resubmitted; once it is done,
//! its result and its trained masks `MODE.npy` stay there), `logs/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::matrix::{estimated_seconds, Profile};
use crate::runspec::{RunResult, RunSpec, RESULTS_SCHEMA_VERSION};
use crate::store::{rfc3339, Store, StoreError, StoredResult};

/// `manifest.json` of an emitted directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`RESULTS_SCHEMA_VERSION`] of the emitter.
    pub schema_version: u32,
    /// The profile the specs belong to.
    pub profile: String,
    /// Commit of the workspace that emitted them.
    pub commit: String,
    /// One entry per array index.
    pub entries: Vec<ManifestEntry>,
}

/// One spec of an emitted directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Array index (file `specs/NNNN.json`).
    pub index: usize,
    /// Hash of `spec`.
    pub hash: String,
    /// The full spec.
    pub spec: RunSpec,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(io_err(path))
}

/// Writes `specs` into `dir` as described in the module doc, `per_task` specs per array task.
/// Returns the number of array tasks.
pub fn emit(dir: &Path, profile: Profile, commit: &str, specs: &[RunSpec], per_task: usize) -> Result<usize, String> {
    let per_task = per_task.max(1);
    for sub in ["specs", "results", "logs"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io_err(&dir.join(sub)))?;
    }
    let mut entries = Vec::new();
    let mut kinds = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let path = dir.join("specs").join(format!("{index:04}.json"));
        let bare = match spec {
            RunSpec::Ffzero(s) => serde_json::to_string_pretty(s),
            RunSpec::Ffm(f) => serde_json::to_string_pretty(f),
            RunSpec::Pic(p) => serde_json::to_string_pretty(p),
            RunSpec::Exceptional(e) => serde_json::to_string_pretty(e),
            RunSpec::Focus(f) => serde_json::to_string_pretty(f),
            RunSpec::Nlos(n) => serde_json::to_string_pretty(n),
        }
        .expect("specs are plain data");
        write_file(&path, &(bare + "\n"))?;
        kinds.push(match spec {
            RunSpec::Ffzero(_) => "train",
            RunSpec::Ffm(_) => "ffm",
            RunSpec::Pic(_) => "pic",
            RunSpec::Exceptional(_) => "exceptional",
            RunSpec::Focus(_) => "focus",
            RunSpec::Nlos(_) => "nlos",
        });
        entries.push(ManifestEntry {
            index,
            hash: spec.hash(),
            spec: spec.clone(),
        });
    }
    let manifest = Manifest {
        schema_version: RESULTS_SCHEMA_VERSION,
        profile: profile.name().into(),
        commit: commit.into(),
        entries,
    };
    write_file(
        &dir.join("manifest.json"),
        &(serde_json::to_string_pretty(&manifest).expect("plain data") + "\n"),
    )?;
    let array_tasks = specs.len().div_ceil(per_task);
    let longest = specs
        .chunks(per_task)
        .map(|c| c.iter().map(estimated_seconds).sum::<f64>())
        .fold(0.0, f64::max);
    let script = sbatch_script(profile, commit, &kinds, per_task, array_tasks, longest);
    write_file(&dir.join("job.sbatch"), &script)?;
    Ok(array_tasks)
}

fn bash_array(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|s| format!("'{}'", s.as_ref().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The job-array script: one array task runs `per_task` consecutive specs, skipping those whose
/// result exists (so a resubmission only redoes what is missing).
fn sbatch_script(
    profile: Profile,
    commit: &str,
    kinds: &[&str],
    per_task: usize,
    array_tasks: usize,
    longest_seconds: f64,
) -> String {
    // generous: cluster cores differ from this machine's, and the estimate is rough
    let limit = (longest_seconds * 4.0 + 600.0).ceil() as u64;
    let time = format!("{}:{:02}:{:02}", limit / 3600, limit % 3600 / 60, limit % 60);
    let last = array_tasks.saturating_sub(1);
    let n = kinds.len();
    format!(
        r#"#!/bin/bash
#SBATCH --job-name=insitu-{profile}
#SBATCH --array=0-{last}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time={time}
#SBATCH --output=logs/%A_%a.out
# Generated by `cargo xtask reproduce --profile {profile} --emit-slurm` at commit {commit}.
# {n} specs, {per_task} per array task. Submit from this directory (`cd` here, then
# `sbatch job.sbatch`); put the `insitu` binary of that commit on PATH or set INSITU=/path/to/insitu
# (and INSITU_DATASETS to the datasets directory). Then, on a machine with the workspace:
# `cargo xtask collect THIS_DIRECTORY`.
set -euo pipefail
INSITU="${{INSITU:-insitu}}"
N={n}
PER_TASK={per_task}
KINDS=({kinds})
first=$((SLURM_ARRAY_TASK_ID * PER_TASK))
for ((i = first; i < first + PER_TASK && i < N; i++)); do
  id=$(printf '%04d' "$i")
  if [ -s "results/$id.json" ]; then continue; fi
  case "${{KINDS[$i]}}" in
    train) "$INSITU" train --spec "specs/$id.json" --json "results/$id.json" ;;
    ffm) "$INSITU" ffm train --spec "specs/$id.json" --json "results/$id.json" --checkpoint "checkpoints/$id" ;;
    pic) "$INSITU" ffm pic --spec "specs/$id.json" --json "results/$id.json" ;;
    exceptional) "$INSITU" ffm exceptional --spec "specs/$id.json" --json "results/$id.json" ;;
    focus) "$INSITU" ffm focus --spec "specs/$id.json" --json "results/$id.json" ;;
    nlos) "$INSITU" ffm nlos --spec "specs/$id.json" --json "results/$id.json" ;;
  esac
done
"#,
        profile = profile.name(),
        kinds = bash_array(kinds),
    )
}

/// What a collect did.
#[derive(Debug, Default)]
pub struct Collected {
    /// Results newly stored, by profile.
    pub stored: usize,
    /// Valid results already in the store.
    pub already_present: usize,
    /// Files rejected, with the reason.
    pub rejected: Vec<String>,
    /// Array indices of the manifest with no result yet.
    pub missing: Vec<usize>,
    /// The profile the results went to.
    pub profile: Option<Profile>,
}

fn profile_named(name: &str) -> Option<Profile> {
    [Profile::Smoke, Profile::Quick, Profile::Paper, Profile::Tiny]
        .into_iter()
        .find(|p| p.name() == name)
}

fn store_one(store: &Store, record: StoredResult, out: &mut Collected) {
    let hash = record.spec.hash();
    if store.read(&store.path_of(&hash)).is_ok() {
        out.already_present += 1;
        return;
    }
    match store.write(&record) {
        Ok(_) => out.stored += 1,
        Err(e) => out.rejected.push(e.to_string()),
    }
}

fn mtime_rfc3339(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(rfc3339)
        .unwrap_or_else(|_| crate::store::now_rfc3339())
}

/// Merges the results in `dir` into `results_root/<profile>/`:
/// * an emitted directory (`manifest.json`): each `results/NNNN.json` is parsed as the result
///   of its manifest entry's kind, its spec rebuilt from the result itself, and its hash must
///   equal the manifest's;
/// * any other directory: every store-format file (`<hash>.json` with a `schema_version`)
///   below it, validated like the store validates its own files; the profile is `profile`, or
///   the name of the file's parent directory.
pub fn collect(dir: &Path, results_root: &Path, profile: Option<Profile>) -> Result<Collected, String> {
    let mut out = Collected::default();
    let manifest_path = dir.join("manifest.json");
    if manifest_path.exists() {
        let text = std::fs::read_to_string(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| format!("{}: invalid manifest: {e}", manifest_path.display()))?;
        let profile = profile
            .or_else(|| profile_named(&manifest.profile))
            .ok_or_else(|| format!("unknown profile '{}' in the manifest", manifest.profile))?;
        out.profile = Some(profile);
        let store = Store::new(results_root.join(profile.name()));
        for entry in &manifest.entries {
            let path = dir.join("results").join(format!("{:04}.json", entry.index));
            if !path.exists() {
                out.missing.push(entry.index);
                continue;
            }
            match read_raw(&path, &entry.spec) {
                Ok((spec, result)) if spec.hash() == entry.hash => {
                    let wall_seconds = result.train_seconds();
                    store_one(
                        &store,
                        StoredResult {
                            schema_version: RESULTS_SCHEMA_VERSION,
                            spec,
                            result,
                            commit: manifest.commit.clone(),
                            finished_at: mtime_rfc3339(&path),
                            wall_seconds,
                        },
                        &mut out,
                    );
                }
                Ok((spec, _)) => out.rejected.push(format!(
                    "{}: its spec hashes to {}, the manifest says {} (a result of another spec)",
                    path.display(),
                    spec.hash(),
                    entry.hash
                )),
                Err(e) => out.rejected.push(format!("{}: {e}", path.display())),
            }
        }
        return Ok(out);
    }
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(io_err(dir))?;
    files.sort();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !crate::store::is_result_name(name) {
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        let p = match profile.or_else(|| parent.file_name().and_then(|n| n.to_str()).and_then(profile_named)) {
            Some(p) => p,
            None => {
                out.rejected.push(format!(
                    "{}: no profile (pass --profile, or keep results under a directory named after one)",
                    path.display()
                ));
                continue;
            }
        };
        out.profile = Some(p);
        match Store::new(parent).read(&path) {
            Ok(record) => store_one(&Store::new(results_root.join(p.name())), record, &mut out),
            Err(StoreError::Corrupt { path, reason }) => out.rejected.push(format!("{}: {reason}", path.display())),
            Err(e) => out.rejected.push(e.to_string()),
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses an `insitu train` / `insitu ffm train` result JSON of the kind of `expected` and
/// rebuilds its spec from the result's own embedded spec. For FFM it accepts a bare
/// `FfmResult`, or the `{task, modes: [[mode, FfmResult], …]}` report of `insitu ffm train`
/// (the entry whose spec is `expected`, else the only one).
fn read_raw(path: &Path, expected: &RunSpec) -> Result<(RunSpec, RunResult), String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    match expected {
        RunSpec::Ffzero(_) => {
            let r: insitu_ffzero::TrainResult =
                serde_json::from_slice(&text).map_err(|e| format!("not an `insitu train` result: {e}"))?;
            Ok((RunSpec::Ffzero(r.spec.clone()), RunResult::Ffzero(r)))
        }
        RunSpec::Ffm(f) => {
            #[derive(Deserialize)]
            struct Report {
                modes: Vec<(String, insitu_ffm::FfmResult)>,
            }
            let r: insitu_ffm::FfmResult = match serde_json::from_slice(&text) {
                Ok(r) => r,
                Err(e) => {
                    let report: Report =
                        serde_json::from_slice(&text).map_err(|_| format!("not an `insitu ffm train` result: {e}"))?;
                    let mut modes = report.modes;
                    match modes.iter().position(|(_, r)| r.spec == *f) {
                        Some(i) => modes.swap_remove(i).1,
                        None if modes.len() == 1 => modes.remove(0).1,
                        None => return Err("no result of this spec among the report's modes".into()),
                    }
                }
            };
            Ok((RunSpec::Ffm(r.spec.clone()), RunResult::Ffm(r)))
        }
        RunSpec::Pic(p) => {
            #[derive(Deserialize)]
            struct Report {
                runs: Vec<insitu_ffm::pic::PicResult>,
            }
            let r: insitu_ffm::pic::PicResult = match serde_json::from_slice(&text) {
                Ok(r) => r,
                Err(e) => {
                    let report: Report =
                        serde_json::from_slice(&text).map_err(|_| format!("not an `insitu ffm pic` result: {e}"))?;
                    let mut runs = report.runs;
                    match runs.iter().position(|r| r.spec == *p) {
                        Some(i) => runs.swap_remove(i),
                        None if runs.len() == 1 => runs.remove(0),
                        None => return Err("no result of this spec among the report's runs".into()),
                    }
                }
            };
            Ok((RunSpec::Pic(r.spec.clone()), RunResult::Pic(r)))
        }
        RunSpec::Exceptional(_) => {
            let r: insitu_ffm::exceptional::ExceptionalResult =
                serde_json::from_slice(&text).map_err(|e| format!("not an `insitu ffm exceptional` result: {e}"))?;
            Ok((RunSpec::Exceptional(r.spec.clone()), RunResult::Exceptional(r)))
        }
        RunSpec::Focus(_) => {
            let r: insitu_ffm::focusing::FocusResult =
                serde_json::from_slice(&text).map_err(|e| format!("not an `insitu ffm focus` result: {e}"))?;
            Ok((RunSpec::Focus(r.spec.clone()), RunResult::Focus(r)))
        }
        RunSpec::Nlos(_) => {
            let r: insitu_ffm::nlos::NlosResult =
                serde_json::from_slice(&text).map_err(|e| format!("not an `insitu ffm nlos` result: {e}"))?;
            Ok((RunSpec::Nlos(r.spec.clone()), RunResult::Nlos(r)))
        }
    }
}
