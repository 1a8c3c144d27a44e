//! Runs pending specs in parallel (rayon, one single-threaded run per job, so results equal a
//! serial run's; FF specs that differ only in depth run as one depth sweep, whose results equal
//! the separate runs'), storing each result atomically the moment it finishes, with indicatif bars:
//! one per running job and an overall bar with the time left (hidden when stderr is not a
//! terminal; then one line per finished run is printed instead).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use insitu_data::{load_image_set_first, load_task, CheckpointFile, Task, TrainTest};
use insitu_ffm::{FfmCheckpoint, CHECKPOINT_KIND};
use rayon::prelude::*;

use crate::matrix::estimated_seconds;
use crate::runspec::{RunResult, RunSpec, RESULTS_SCHEMA_VERSION};
use crate::store::{now_rfc3339, Store, StoredResult};
use insitu_ffzero::{Model, TrainSpec};

type Loaded = Arc<OnceLock<Result<Arc<TrainTest>, String>>>;

/// Data sets loaded once and shared by every run that needs them.
#[derive(Default)]
pub struct DataCache {
    dir: PathBuf,
    sets: Mutex<HashMap<(String, u64), Loaded>>,
}

impl DataCache {
    /// A cache over the datasets directory `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            sets: Mutex::default(),
        }
    }

    /// The train/test split of `task` (`seed` matters for the synthetic sets only).
    pub fn get(&self, task: &str, seed: u64) -> Result<Arc<TrainTest>, String> {
        let task = Task::from_name(task).map_err(|e| e.to_string())?;
        let seed = if matches!(task, Task::SyntheticF1 | Task::SyntheticF2 | Task::Iris) {
            seed
        } else {
            0
        };
        let cell = {
            let mut sets = self.sets.lock().expect("no panics while locked");
            sets.entry((task.name().to_string(), seed)).or_default().clone()
        };
        cell.get_or_init(|| {
            load_task(task, &self.dir, seed)
                .map(Arc::new)
                .map_err(|e| format!("cannot load {task}: {e}"))
        })
        .clone()
    }

    /// All 60,000 training and 10,000 test images of an image task (seed 000's photonic runs,
    /// SPEC A9), where [`DataCache::get`] gives the MLPs' first 50,000.
    pub fn get_all_images(&self, task: &str) -> Result<Arc<TrainTest>, String> {
        let task = Task::from_name(task).map_err(|e| e.to_string())?;
        let set = task
            .image_set()
            .ok_or_else(|| format!("{task} is not an image task: the photonic network reads images"))?;
        let cell = {
            let mut sets = self.sets.lock().expect("no panics while locked");
            sets.entry((format!("{}/all-images", task.name()), 0))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| {
            load_image_set_first(set, &self.dir, None, None)
                .map(Arc::new)
                .map_err(|e| format!("cannot load {task}: {e}"))
        })
        .clone()
    }
}

/// A one-thread rayon pool: a run inside it keeps its library's parallel loops serial (and its
/// results equal to a serial run's), while `run_all` spends the cores on parallel runs.
fn one_thread_pool() -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string())
}

/// Seconds between two checkpoints of a seed 002 run (at most this much work is lost when
/// `reproduce` is killed; a checkpoint of a 400 × 400, 8-layer run is 15 MB).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);

/// Runs one spec on the calling thread (inside a one-thread rayon pool, so a library's inner
/// parallel loops stay serial), reporting steps to `bar`. With `checkpoints` (a store), a
/// seed 002 run resumes from its checkpoint in the store ([`Store::checkpoint_path`]) and keeps
/// it up to date every [`CHECKPOINT_EVERY`] (the caller removes it once the result is stored),
/// and its trained masks are written to the store ([`Store::masks_path`]).
pub fn run_spec(
    spec: &RunSpec,
    data: &DataCache,
    bar: &ProgressBar,
    checkpoints: Option<&Store>,
) -> Result<RunResult, String> {
    let pool = one_thread_pool()?;
    match spec {
        RunSpec::Ffzero(s) => {
            let tt = match s.model {
                Model::Mlp | Model::Cnn => data.get(&s.task, s.seed)?,
                Model::Photonic => data.get_all_images(&s.task)?,
            };
            let mut progress = BarProgress { bar: bar.clone() };
            pool.install(|| insitu_ffzero::train(s, &tt, &mut progress))
                .map(RunResult::Ffzero)
                .map_err(|e| e.to_string())
        }
        RunSpec::Ffm(f) => {
            let tt = data.get(spec.task(), f.seed)?;
            let selected;
            let tt: &TrainTest = if f.task.classes().is_some() {
                selected = f.task.select((*tt).clone()).map_err(|e| e.to_string())?;
                &selected
            } else {
                &tt
            };
            let mut progress = BarProgress { bar: bar.clone() };
            let Some(store) = checkpoints else {
                return pool
                    .install(|| insitu_ffm::run_with_progress(f, &tt.train, &tt.test, &mut progress))
                    .map(RunResult::Ffm)
                    .map_err(|e| e.to_string());
            };
            let mut file = CheckpointFile::new(store.checkpoint_path(&spec.hash()), CHECKPOINT_KIND, CHECKPOINT_EVERY);
            let resume = FfmCheckpoint::read_from(&file, f).map_err(|e| e.to_string())?;
            if let Some(c) = &resume {
                let line = format!(
                    "resuming {} from {} at {}",
                    spec.label(),
                    file.path().display(),
                    c.position()
                );
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            let trained = pool
                .install(|| insitu_ffm::run_resumable(f, &tt.train, &tt.test, &mut progress, resume, &mut file))
                .map_err(|e| e.to_string())?;
            // before the result, which marks the run done
            let masks = store.masks_path(&spec.hash());
            insitu_data::write_atomically(&masks, &insitu_ffm::phases_to_npy(&trained.phases, f.grid_n))
                .map_err(|e| e.to_string())?;
            Ok(RunResult::Ffm(trained.result))
        }
        RunSpec::Pic(p) => {
            let tt = data.get(spec.task(), p.seed)?;
            let trained = insitu_ffm::pic::run_pic(p, &tt).map_err(|e| e.to_string())?;
            if let Some(store) = checkpoints {
                // before the result, which marks the run done
                let weights = insitu_data::encode_npy_f32(&[trained.parameters.len() / 2, 2], &trained.parameters);
                insitu_data::write_atomically(&store.masks_path(&spec.hash()), &weights).map_err(|e| e.to_string())?;
            }
            Ok(RunResult::Pic(trained.result))
        }
        RunSpec::Focus(f) => insitu_ffm::focusing::focus(f)
            .map(|t| RunResult::Focus(t.result))
            .map_err(|e| e.to_string()),
        RunSpec::Nlos(n) => {
            let trained = if n.task.needs_data() {
                let tt = data.get(spec.task(), n.seed)?;
                insitu_ffm::nlos::run_nlos(n, Some((&tt.train, &tt.test)))
            } else {
                insitu_ffm::nlos::run_nlos(n, None)
            };
            trained.map(|t| RunResult::Nlos(t.result)).map_err(|e| e.to_string())
        }
        RunSpec::Exceptional(e) => insitu_ffm::exceptional::learn_exceptional_point(e)
            .map(RunResult::Exceptional)
            .map_err(|e| e.to_string()),
    }
}

/// Runs FF specs that differ only in depth as one depth sweep
/// (`insitu_ffzero::train_depth_sweep`: the shared hidden layers are trained once, and each
/// result equals the one its own run gives), on the calling thread like [`run_spec`].
pub fn run_sweep(specs: &[&TrainSpec], data: &DataCache, bar: &ProgressBar) -> Result<Vec<RunResult>, String> {
    let pool = one_thread_pool()?;
    let first = specs.first().ok_or("an empty sweep")?;
    let tt = data.get(&first.task, first.seed)?;
    let depths: Vec<usize> = specs.iter().map(|s| s.depth).collect();
    let mut progress = BarProgress { bar: bar.clone() };
    let sweep = pool
        .install(|| insitu_ffzero::train_depth_sweep(first, &depths, &tt, &mut progress))
        .map_err(|e| e.to_string())?;
    Ok(sweep.results.into_iter().map(RunResult::Ffzero).collect())
}

/// Pending runs grouped into the units that execute together: FF specs (FF+DD, FF+AD) that
/// differ only in depth form one depth sweep, every other spec runs alone. Order of first
/// appearance is kept.
pub fn jobs_of(pending: &[RunSpec]) -> Vec<Vec<usize>> {
    let mut jobs: Vec<Vec<usize>> = Vec::new();
    let mut sweep_of: HashMap<String, usize> = HashMap::new();
    for (i, spec) in pending.iter().enumerate() {
        match spec {
            RunSpec::Ffzero(s) if s.method.is_local() && s.model == Model::Mlp => {
                let key = RunSpec::Ffzero(TrainSpec { depth: 0, ..s.clone() }).canonical_json();
                match sweep_of.get(&key) {
                    Some(&j) => jobs[j].push(i),
                    None => {
                        sweep_of.insert(key, jobs.len());
                        jobs.push(vec![i]);
                    }
                }
            }
            _ => jobs.push(vec![i]),
        }
    }
    jobs
}

struct BarProgress {
    bar: ProgressBar,
}

impl insitu_optim::Progress for BarProgress {
    fn phase(&mut self, label: &str, epochs: usize, steps_per_epoch: usize) {
        self.bar.set_length((epochs * steps_per_epoch) as u64);
        self.bar.set_position(0);
        self.bar.set_message(label.to_string());
    }
    fn step(&mut self) {
        self.bar.inc(1);
    }
}

/// What a batch of runs did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Runs stored.
    pub finished: usize,
    /// Runs that failed (message per run); nothing is stored for them.
    pub failed: Vec<(String, String)>,
    /// Wall time of the whole batch.
    pub wall: Duration,
}

/// Estimated seconds of one unit of [`jobs_of`]: a run's [`estimated_seconds`]; a depth sweep
/// costs about its deepest run (each other depth adds an output layer, a few per cent).
pub fn unit_cost(pending: &[RunSpec], unit: &[usize]) -> f64 {
    let each: Vec<f64> = unit.iter().map(|&i| estimated_seconds(&pending[i])).collect();
    let deepest = each.iter().cloned().fold(0.0, f64::max);
    deepest + 0.05 * (each.iter().sum::<f64>() - deepest)
}

/// Estimated seconds of one core for all of `pending`, as [`run_all`] runs it (sweeps included).
pub fn estimated_total(pending: &[RunSpec]) -> f64 {
    jobs_of(pending).iter().map(|unit| unit_cost(pending, unit)).sum()
}

/// Runs `pending` with `jobs` parallel jobs, writing each result into `store` as it finishes.
/// FF specs that differ only in depth run as one depth sweep ([`jobs_of`], [`run_sweep`]);
/// their results are stored one by one, each under its own spec, when the sweep ends.
pub fn run_all(pending: &[RunSpec], jobs: usize, store: &Store, data: &DataCache, commit: &str) -> RunSummary {
    let started = Instant::now();
    let visible = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let units = jobs_of(pending);
    // the overall bar counts estimated milliseconds of work, so its ETA weighs runs by cost
    let costs: Vec<f64> = units.iter().map(|unit| unit_cost(pending, unit)).collect();
    let total_ms: u64 = costs.iter().map(|c| (c * 1000.0) as u64).sum();
    let overall = multi.add(ProgressBar::new(total_ms.max(1)));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {msg} elapsed {elapsed_precise}, about {eta} left")
            .expect("static template")
            .progress_chars("=> "),
    );
    overall.set_prefix("overall");
    let done = AtomicUsize::new(0);
    let n = pending.len();
    overall.set_message(format!("0/{n} runs"));
    let summary = Mutex::new(RunSummary::default());
    let job_style = ProgressStyle::with_template("{prefix:>8} {wide_msg} [{bar:30}] {pos}/{len}")
        .expect("static template")
        .progress_chars("=> ");

    // cheapest first: an interrupted run (or one cut short on a busy machine) leaves as many
    // finished points as possible, and every figure fills in early; the overall bar counts
    // estimated cost, so its ETA stays honest
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]).then(a.cmp(&b)));
    let next = AtomicUsize::new(0);
    let say = |line: String| {
        if visible {
            multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    };
    let store_one = |spec: &RunSpec, outcome: Result<RunResult, String>, wall_seconds: f64| {
        let hash = spec.hash();
        let k = done.fetch_add(1, Ordering::SeqCst) + 1;
        let line = match outcome {
            Ok(result) => {
                let record = StoredResult {
                    schema_version: RESULTS_SCHEMA_VERSION,
                    spec: spec.clone(),
                    result,
                    commit: commit.to_string(),
                    finished_at: now_rfc3339(),
                    wall_seconds,
                };
                match store.write(&record) {
                    Ok(_) => {
                        if matches!(spec, RunSpec::Ffm(_)) {
                            // stored: its checkpoint (if the run made one) has served
                            let checkpoint = store.checkpoint_path(&hash);
                            let _ = std::fs::remove_file(&checkpoint);
                            let _ = checkpoint.parent().map(std::fs::remove_dir);
                        }
                        summary.lock().expect("not poisoned").finished += 1;
                        format!("[{k}/{n}] done {hash} {} in {wall_seconds:.1} s", spec.label())
                    }
                    Err(e) => {
                        summary
                            .lock()
                            .expect("not poisoned")
                            .failed
                            .push((hash.clone(), e.to_string()));
                        format!("[{k}/{n}] FAILED to store {hash}: {e}")
                    }
                }
            }
            Err(e) => {
                summary
                    .lock()
                    .expect("not poisoned")
                    .failed
                    .push((hash.clone(), e.clone()));
                format!("[{k}/{n}] FAILED {hash} {}: {e}", spec.label())
            }
        };
        say(line);
        overall.set_message(format!("{k}/{n} runs"));
    };
    let run_unit = |u: usize| {
        let unit = &units[u];
        let first = &pending[unit[0]];
        let bar = multi.insert_before(&overall, ProgressBar::new(1));
        bar.set_style(job_style.clone());
        bar.set_prefix(first.hash()[..8].to_string());
        let t0 = Instant::now();
        if unit.len() == 1 {
            bar.set_message(first.label());
            let outcome = run_spec(first, data, &bar, Some(store));
            bar.finish_and_clear();
            multi.remove(&bar);
            store_one(first, outcome, t0.elapsed().as_secs_f64());
        } else {
            let specs: Vec<&TrainSpec> = unit
                .iter()
                .map(|&i| match &pending[i] {
                    RunSpec::Ffzero(s) => s,
                    RunSpec::Ffm(_)
                    | RunSpec::Pic(_)
                    | RunSpec::Exceptional(_)
                    | RunSpec::Focus(_)
                    | RunSpec::Nlos(_) => {
                        unreachable!("jobs_of groups FF specs only")
                    }
                })
                .collect();
            let depths: Vec<String> = specs.iter().map(|s| s.depth.to_string()).collect();
            bar.set_message(format!("{} (depths {})", first.label(), depths.join(",")));
            let outcome = run_sweep(&specs, data, &bar);
            bar.finish_and_clear();
            multi.remove(&bar);
            // each result of the sweep records an equal share of its wall time, so that the
            // wall times of a store add up to the time spent
            let wall = t0.elapsed().as_secs_f64() / unit.len() as f64;
            match outcome {
                Ok(results) => {
                    for (&i, result) in unit.iter().zip(results) {
                        store_one(&pending[i], Ok(result), wall);
                    }
                }
                Err(e) => {
                    for &i in unit {
                        store_one(&pending[i], Err(e.clone()), wall);
                    }
                }
            }
        }
        overall.inc((costs[u] * 1000.0) as u64);
    };
    let jobs = jobs.max(1);
    // a shared queue in `order`: each job takes the next pending unit
    let work = || {
        (0..jobs).into_par_iter().for_each(|_| loop {
            let j = next.fetch_add(1, Ordering::SeqCst);
            if j >= units.len() {
                break;
            }
            run_unit(order[j]);
        })
    };
    match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
    overall.finish_and_clear();
    let mut s = summary.into_inner().expect("not poisoned");
    s.wall = started.elapsed();
    s
}

/// The datasets directory: `$INSITU_DATASETS`, else the workspace's `datasets/`.
pub fn datasets_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("INSITU_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("datasets"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_ffzero::Method;

    fn ff(method: Method, depth: usize, width: usize) -> RunSpec {
        RunSpec::Ffzero(TrainSpec {
            task: "synthetic-f1".into(),
            method,
            depth,
            width,
            epochs: 1,
            batch: 32,
            train_limit: Some(300),
            test_limit: Some(60),
            ..Default::default()
        })
    }

    #[test]
    fn ff_specs_that_differ_only_in_depth_form_one_unit() {
        let pending = vec![
            ff(Method::FfDd, 2, 6),
            ff(Method::BpDd, 2, 6),
            ff(Method::FfDd, 1, 6),
            ff(Method::FfAd, 1, 6),
            ff(Method::FfDd, 3, 8),
            ff(Method::BpDd, 1, 6),
            ff(Method::FfDd, 4, 6),
        ];
        assert_eq!(
            jobs_of(&pending),
            vec![vec![0, 2, 6], vec![1], vec![3], vec![4], vec![5]]
        );
    }

    #[test]
    fn a_sweep_stores_what_separate_runs_give() {
        let pending = vec![
            ff(Method::FfDd, 3, 6),
            ff(Method::FfDd, 1, 6),
            ff(Method::BpAd, 2, 6),
            ff(Method::FfAd, 2, 6),
            ff(Method::FfAd, 1, 6),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let data = DataCache::new(dir.path().join("no-datasets-needed"));
        let summary = run_all(&pending, 2, &store, &data, "test");
        assert_eq!(summary.finished, pending.len(), "{:?}", summary.failed);
        let stored = store.scan().unwrap().done;
        let hidden = ProgressBar::hidden();
        for spec in &pending {
            let alone = run_spec(spec, &data, &hidden, None).unwrap();
            let got = &stored[&spec.hash()];
            assert_eq!(&got.spec, spec);
            assert_eq!(
                got.result.without_timings(),
                alone.without_timings(),
                "{}",
                spec.label()
            );
        }
    }

    #[test]
    fn a_seed_002_run_resumes_from_its_checkpoint_in_the_store() {
        use insitu_ffm::{CheckpointSink, FfmSpec, TrainingMode};
        let spec = RunSpec::Ffm(FfmSpec {
            grid_n: 24,
            distance: 0.388 * 24.0 / 400.0,
            epochs: 2,
            batch: 8,
            train_limit: Some(40),
            test_limit: Some(20),
            mode: TrainingMode::InSitu,
            ..FfmSpec::default()
        });
        let RunSpec::Ffm(f) = &spec else { unreachable!() };
        let data = DataCache::new(insitu_data::default_datasets_dir());
        let hidden = ProgressBar::hidden();
        let whole = run_spec(&spec, &data, &hidden, None).unwrap();

        // a run killed after its third checkpoint left one in the store
        struct Killed(CheckpointFile, usize);
        impl CheckpointSink for Killed {
            fn due(&mut self) -> bool {
                true
            }
            fn save(&mut self, c: &FfmCheckpoint) -> Result<(), String> {
                self.1 -= 1;
                if self.1 == 0 {
                    return Err("killed".into());
                }
                self.0.save(c)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let path = store.checkpoint_path(&spec.hash());
        let tt = data.get(spec.task(), f.seed).unwrap();
        let mut killed = Killed(CheckpointFile::new(&path, CHECKPOINT_KIND, Duration::ZERO), 4);
        let stopped =
            insitu_ffm::run_resumable(f, &tt.train, &tt.test, &mut insitu_optim::NoProgress, None, &mut killed);
        assert!(stopped.is_err() && path.exists());
        let left = FfmCheckpoint::read_from(&CheckpointFile::new(&path, CHECKPOINT_KIND, Duration::ZERO), f)
            .unwrap()
            .unwrap();
        assert_eq!((left.epoch(), left.batches_done()), (0, 3));

        let summary = run_all(std::slice::from_ref(&spec), 1, &store, &data, "test");
        assert_eq!(summary.finished, 1, "{:?}", summary.failed);
        let stored = &store.scan().unwrap().done[&spec.hash()];
        assert_eq!(stored.result.without_timings(), whole.without_timings());
        assert!(
            !path.exists() && !path.parent().unwrap().exists(),
            "the checkpoint is removed once stored"
        );
        // the masks are kept beside the result, and test to its accuracy
        let bytes = std::fs::read(store.masks_path(&spec.hash())).unwrap();
        let phases = insitu_ffm::phases_from_npy(&bytes, "masks", f).unwrap();
        let again = insitu_ffm::evaluate_phases(f, &phases, &tt.test, insitu_ffm::TestSystem::Bench).unwrap();
        let RunResult::Ffm(r) = &stored.result else {
            unreachable!()
        };
        assert_eq!(again, r.test_accuracy);
    }
}
