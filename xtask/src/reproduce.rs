//! `cargo xtask reproduce` and `cargo xtask collect`: the experiment matrix of every paper
//! figure the workspace can compute, run resumably and in parallel into the store
//! `results/<profile>/`, then drawn (`docs/figures/<profile>/`) and reported
//! (`docs/reproduction.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::figures;
use crate::matrix::{estimated_seconds, figure_specs, Profile, FIGURES};
use crate::report::{self, FigureSection, Invocation};
use crate::runner::{datasets_dir, estimated_total, run_all, DataCache};
use crate::runspec::RunSpec;
use crate::slurm;
use crate::store::{current_commit, now_rfc3339, Store, StoredResult};

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where things go; every path defaults to the workspace's.
#[derive(Debug, Clone, Args)]
pub struct Paths {
    /// Root of the results store (one directory per profile).
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Root of the figures (one directory per profile).
    #[arg(long, value_name = "DIR")]
    pub figures: Option<PathBuf>,
    /// The generated report (default: docs/reproduction.md for quick, docs/reproduction-paper.md
    /// for paper, `<figures>/<profile>/reproduction.md` for smoke).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Do not draw figures or write the report.
    #[arg(long)]
    pub no_render: bool,
}

impl Paths {
    fn results_root(&self) -> PathBuf {
        self.results.clone().unwrap_or_else(|| workspace_root().join("results"))
    }
    fn figures_dir(&self, profile: Profile) -> PathBuf {
        self.figures
            .clone()
            .unwrap_or_else(|| workspace_root().join("docs").join("figures"))
            .join(profile.name())
    }
    fn report_path(&self, profile: Profile) -> PathBuf {
        self.report.clone().unwrap_or_else(|| match profile {
            Profile::Quick if self.figures.is_none() => workspace_root().join("docs").join("reproduction.md"),
            Profile::Paper if self.figures.is_none() => workspace_root().join("docs").join("reproduction-paper.md"),
            _ => self.figures_dir(profile).join("reproduction.md"),
        })
    }
}

/// `cargo xtask reproduce`.
#[derive(Debug, Clone, Args)]
pub struct ReproduceArgs {
    /// smoke (minutes, CI), quick (under an hour on 2 cores), paper (the papers' settings).
    #[arg(long, value_enum, default_value = "quick")]
    pub profile: Profile,
    /// Only this figure (repeatable).
    #[arg(long, value_name = "FIGURE", value_parser = clap::builder::PossibleValuesParser::new(FIGURES.map(|f| f.id)))]
    pub only: Vec<String>,
    /// List what would run, with estimated costs and what is already done; run nothing.
    #[arg(long)]
    pub list: bool,
    /// Runs in parallel (each run single-threaded; results identical to a serial run).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Run only the deterministic slice i of n (0-based) of the matrix, e.g. `--shard 0/4`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Write the pending specs and a Slurm job-array script into DIR instead of running.
    #[arg(long, value_name = "DIR")]
    pub emit_slurm: Option<PathBuf>,
    /// With --emit-slurm: specs per array task.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub per_task: usize,
    /// Run nothing: draw the figures and write the report from the results already stored.
    #[arg(long, conflicts_with_all = ["list", "emit_slurm"])]
    pub render_only: bool,
    /// Paths of the store, figures and report.
    #[command(flatten)]
    pub paths: Paths,
}

/// `cargo xtask collect`.
#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    /// A directory written by `reproduce --emit-slurm` (after the array ran), or any directory
    /// holding store-format result files (e.g. another machine's `results/<profile>/`).
    pub dir: PathBuf,
    /// The profile to file them under (default: the manifest's, or the directory's name).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Paths of the store, figures and report.
    #[command(flatten)]
    pub paths: Paths,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let i: usize = i.trim().parse().map_err(|_| format!("'{i}' is not a number"))?;
    let n: usize = n.trim().parse().map_err(|_| format!("'{n}' is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("need 0 ≤ I < N, got {i}/{n}"));
    }
    Ok((i, n))
}

/// The matrix of a profile: the figures asked for with their specs, and the unique specs
/// sorted by hash (a spec shared by two figures runs once).
pub struct Plan {
    /// `(figure id, its specs or why unavailable)`.
    pub figures: Vec<(&'static str, Result<Vec<RunSpec>, String>)>,
    /// Unique specs by hash.
    pub unique: BTreeMap<String, RunSpec>,
}

/// The plan for `profile`, restricted to `only` (all figures when empty).
pub fn plan(profile: Profile, only: &[String]) -> Result<Plan, String> {
    for id in only {
        if crate::matrix::figure(id).is_none() {
            figure_specs(id, profile)?; // the unknown-figure error lists the valid names
        }
    }
    let mut figures = Vec::new();
    let mut unique = BTreeMap::new();
    for f in FIGURES {
        if !only.is_empty() && !only.iter().any(|o| o == f.id) {
            continue;
        }
        let specs = figure_specs(f.id, profile);
        if let Ok(list) = &specs {
            for s in list {
                unique.insert(s.hash(), s.clone());
            }
        }
        figures.push((f.id, specs));
    }
    Ok(Plan { figures, unique })
}

/// The specs of shard `i` of `n`: every n-th of the hash-sorted matrix, starting at i.
pub fn shard_of(unique: &BTreeMap<String, RunSpec>, shard: Option<(usize, usize)>) -> Vec<RunSpec> {
    unique
        .values()
        .enumerate()
        .filter(|(k, _)| shard.is_none_or(|(i, n)| k % n == i))
        .map(|(_, s)| s.clone())
        .collect()
}

fn fmt_seconds(s: f64) -> String {
    let s = s + 0.0; // an empty f64 sum is −0.0
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// `cargo xtask reproduce`.
pub fn main(args: ReproduceArgs) -> ExitCode {
    match reproduce(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn reproduce(args: &ReproduceArgs) -> Result<bool, String> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let profile = args.profile;
    let plan = plan(profile, &args.only)?;
    let store = Store::new(args.paths.results_root().join(profile.name()));
    let scan = store.scan().map_err(|e| e.to_string())?;
    for e in &scan.corrupt {
        eprintln!("corrupt result file, will be redone: {e}");
    }
    for p in &scan.removed_temporaries {
        eprintln!("removed the temporary file of an interrupted run: {}", p.display());
    }
    let selected = shard_of(&plan.unique, args.shard);
    let pending: Vec<RunSpec> = selected
        .iter()
        .filter(|s| !scan.done.contains_key(&s.hash()))
        .cloned()
        .collect();
    let jobs = args.jobs.max(1);

    if args.list {
        let mut out = std::io::stdout().lock();
        for (id, specs) in &plan.figures {
            match specs {
                Err(why) => {
                    let _ = writeln!(out, "{id}: unavailable: {why}");
                }
                Ok(specs) => {
                    let done = specs.iter().filter(|s| scan.done.contains_key(&s.hash())).count();
                    let cost: f64 = specs
                        .iter()
                        .filter(|s| !scan.done.contains_key(&s.hash()))
                        .map(estimated_seconds)
                        .sum();
                    let _ = writeln!(
                        out,
                        "{id}: {} runs, {done} done, {} pending ≈ {} of one core",
                        specs.len(),
                        specs.len() - done,
                        fmt_seconds(cost)
                    );
                    for s in specs {
                        let h = s.hash();
                        let state = if scan.done.contains_key(&h) { "done" } else { "pending" };
                        let _ = writeln!(
                            out,
                            "  {h} {state:7} ~{:>8} {}",
                            fmt_seconds(estimated_seconds(s)),
                            s.label()
                        );
                    }
                }
            }
        }
        // FF depths of one spec run as one sweep (see runner::jobs_of)
        let cost = estimated_total(&pending);
        let _ = writeln!(
            out,
            "total: {} unique runs selected, {} pending ≈ {} of one core, ≈ {} with --jobs {jobs}",
            selected.len(),
            pending.len(),
            fmt_seconds(cost),
            fmt_seconds(cost / jobs as f64)
        );
        return Ok(true);
    }

    if args.render_only {
        render_profile(profile, &args.paths)?;
        return Ok(true);
    }
    let commit = current_commit(&workspace_root());
    if let Some(dir) = &args.emit_slurm {
        let tasks = slurm::emit(dir, profile, &commit, &pending, args.per_task)?;
        println!(
            "wrote {} specs and {} ({} array tasks) to {}; after the array ran: cargo xtask collect {}",
            pending.len(),
            dir.join("job.sbatch").display(),
            tasks,
            dir.display(),
            dir.display()
        );
        return Ok(true);
    }

    let cost = estimated_total(&pending);
    eprintln!(
        "reproduce --profile {}: {} runs selected, {} already done, {} to run (≈ {} with {jobs} jobs)",
        profile.name(),
        selected.len(),
        selected.len() - pending.len(),
        pending.len(),
        fmt_seconds(cost / jobs as f64)
    );
    let data = DataCache::new(datasets_dir(&workspace_root()));
    let summary = run_all(&pending, jobs, &store, &data, &commit);
    for (hash, e) in &summary.failed {
        eprintln!("failed: {hash}: {e}");
    }
    let invocation = Invocation {
        started_at,
        wall_seconds: started.elapsed().as_secs_f64(),
        finished: summary.finished,
        failed: summary.failed.len(),
        jobs,
        only: args.only.clone(),
        shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
        commit,
    };
    if !pending.is_empty() {
        append_invocation(store.dir(), &invocation);
    }
    eprintln!(
        "{} runs stored, {} failed, in {}",
        summary.finished,
        summary.failed.len(),
        fmt_seconds(summary.wall.as_secs_f64())
    );
    if !args.paths.no_render {
        render_profile(profile, &args.paths)?;
    }
    Ok(summary.failed.is_empty())
}

fn append_invocation(dir: &Path, inv: &Invocation) {
    let path = dir.join("invocations.jsonl");
    let line = serde_json::to_string(inv).expect("plain data") + "\n";
    let _ = std::fs::create_dir_all(dir);
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = ok {
        eprintln!("warning: cannot append to {}: {e}", path.display());
    }
}

fn read_invocations(dir: &Path) -> Vec<Invocation> {
    std::fs::read_to_string(dir.join("invocations.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Draws every figure of `profile` from its store and writes the report.
pub fn render_profile(profile: Profile, paths: &Paths) -> Result<(), String> {
    let plan = plan(profile, &[])?;
    let store = Store::new(paths.results_root().join(profile.name()));
    let scan = store.scan().map_err(|e| e.to_string())?;
    let fig_dir = paths.figures_dir(profile);
    let report_path = paths.report_path(profile);
    let mut sections = Vec::new();
    for (id, specs) in &plan.figures {
        let figure = crate::matrix::figure(id).expect("planned from FIGURES");
        let mut section = FigureSection {
            figure,
            panels: Vec::new(),
            image: None,
            done: 0,
            total: 0,
            unavailable: None,
            commits: BTreeSet::new(),
            run_seconds: 0.0,
        };
        match specs {
            Err(why) => section.unavailable = Some(why.clone()),
            Ok(specs) => {
                let runs: Vec<(RunSpec, Option<&StoredResult>)> =
                    specs.iter().map(|s| (s.clone(), scan.done.get(&s.hash()))).collect();
                section.total = runs.len();
                for r in runs.iter().filter_map(|r| r.1) {
                    section.done += 1;
                    section.commits.insert(r.commit.clone());
                    section.run_seconds += r.wall_seconds;
                }
                if !runs.is_empty() {
                    let (panels, cols) = figures::panels(id, &runs);
                    let png = figures::render(&fig_dir, id, figure.plot_title, &panels, cols)?;
                    section.image = Some(relative_to(&png, report_path.parent().unwrap_or(Path::new("."))));
                    section.panels = panels;
                }
            }
        }
        sections.push(section);
    }
    let text = report::render(profile, &sections, &read_invocations(store.dir()));
    report::write_atomically(&report_path, &text)?;
    eprintln!("figures in {}, report {}", fig_dir.display(), report_path.display());
    Ok(())
}

/// `path` relative to `base` when it lies below it, else absolute.
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    p.strip_prefix(&b)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string_lossy().into_owned())
}

/// `cargo xtask collect`.
pub fn collect_main(args: CollectArgs) -> ExitCode {
    let root = args.paths.results_root();
    match slurm::collect(&args.dir, &root, args.profile) {
        Ok(c) => {
            for r in &c.rejected {
                eprintln!("rejected: {r}");
            }
            if !c.missing.is_empty() {
                eprintln!(
                    "{} specs of the manifest have no result yet (indices {:?}…)",
                    c.missing.len(),
                    &c.missing[..c.missing.len().min(10)]
                );
            }
            println!(
                "collected {} new results ({} already in the store, {} rejected)",
                c.stored,
                c.already_present,
                c.rejected.len()
            );
            if let (Some(p), false) = (c.profile, args.paths.no_render) {
                if let Err(e) = render_profile(p, &args.paths) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if c.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
