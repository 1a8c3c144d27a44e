//! `insitu ffm …`: seed 002's FFM learning from the command line.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use insitu_data::{default_datasets_dir, load_task_first, write_atomically, CheckpointFile};
use insitu_ffm::{
    evaluate_phases, gradients_of_dense_system, phases_from_npy, phases_to_npy, ActivationKind, ClassifierLoss,
    DenseLayer, DenseLoss, FfmCheckpoint, FfmResult, FfmSpec, FfmTask as LibTask, FfmTrained, Imperfections,
    NoCheckpoints, TestSystem, TrainingMode, CHECKPOINT_KIND,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::interchange::{complex_matrix, complex_vector, read_json, real_vector};

#[derive(Subcommand)]
pub enum FfmCommand {
    /// Train a deep free-space optical classifier: ideal, in silico (deployed on the imperfect
    /// bench) and/or FFM in situ (trained on the bench through forward propagations only).
    Train(Box<FfmTrainArgs>),
    /// Test trained phase masks (`insitu ffm train --masks`) on the digital model or on a
    /// bench, e.g. one with other imperfections than the bench they were trained or tested on.
    Evaluate(Box<FfmEvaluateArgs>),
    /// Print the FFM gradient (forward error propagation) and the adjoint gradient of a small
    /// dense system given as JSON, with each layer's asymmetry ‖T − Tᵀ‖_F/‖T‖_F.
    Gradient(FfmGradientArgs),
    /// Train seed 002's integrated photonic network of symmetric cores on Iris (Fig. 5):
    /// ideal, in silico (deployed on the fabricated chip) and/or FFM on the chip, for each
    /// symmetry ratio and seed.
    Pic(Box<crate::pic::PicArgs>),
    /// Learn the gain and loss of two coupled waveguides from forward runs until the output
    /// turns asymmetric (or symmetric), across the exceptional point (seed 002 Extended Data
    /// Fig. 1).
    Exceptional(Box<crate::exceptional::ExceptionalArgs>),
    /// Learn a phase mask that focuses light through a scattering medium, by FFM or by
    /// particle-swarm optimisation (seed 002 Fig. 3).
    Focus(Box<crate::focus::FocusArgs>),
    /// Image or classify objects hidden around a corner, through a diffuse wall, with a mask
    /// learned by FFM (or PSO) on the scene (seed 002 Fig. 4).
    Nlos(Box<crate::nlos::NlosArgs>),
}

#[derive(Args)]
pub struct FfmGradientArgs {
    /// JSON `{"x": complex vector, "layers": [{"phase": [...], "transfer": complex matrix}, ...],
    /// "loss": "field-mse" | "intensity-mse", "target": complex vector | real vector}`; layer l
    /// applies its mask, then its transfer.
    #[arg(long)]
    system: PathBuf,
}

/// `insitu ffm gradient`: parse the system, call the library, print JSON.
pub fn gradient(a: &FfmGradientArgs) -> Result<Value, String> {
    let v = read_json(&a.system)?;
    let field = |k: &str| v.get(k).ok_or_else(|| format!("system: missing field \"{k}\""));
    let x = complex_vector(field("x")?, "x")?;
    let layers = field("layers")?.as_array().ok_or("layers: expected an array")?;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let phase = real_vector(
                layer.get("phase").ok_or(format!("layers[{l}]: missing \"phase\""))?,
                &format!("layers[{l}].phase"),
            )?;
            let (rows, cols, transfer) = complex_matrix(
                layer
                    .get("transfer")
                    .ok_or(format!("layers[{l}]: missing \"transfer\""))?,
                &format!("layers[{l}].transfer"),
            )?;
            if rows != x.len() || cols != x.len() {
                return Err(format!(
                    "layers[{l}].transfer is {rows}×{cols}; the field has {} entries",
                    x.len()
                ));
            }
            Ok(DenseLayer { phase, transfer })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let loss = match field("loss")?.as_str() {
        Some("field-mse") => DenseLoss::FieldMse(complex_vector(field("target")?, "target")?),
        Some("intensity-mse") => DenseLoss::IntensityMse(real_vector(field("target")?, "target")?),
        other => {
            return Err(format!(
                "loss: expected \"field-mse\" or \"intensity-mse\", found {other:?}"
            ))
        }
    };
    let g = gradients_of_dense_system(&x, &layers, &loss).map_err(|e| e.to_string())?;
    Ok(json!({"loss": g.loss, "gradients": g.ffm, "adjoint_gradients": g.adjoint, "asymmetry": g.asymmetry}))
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FfmTask {
    /// Fashion-MNIST (seed 002 Fig. 2d).
    FashionMnist,
    /// MNIST.
    Mnist,
    /// MNIST digits {0, 2, 4, 6, 8} (seed 002's nonlinear experiment).
    MnistEven,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Mode {
    /// Train and test on the digital model.
    Ideal,
    /// Train on the model, deploy on the physical bench.
    InSilico,
    /// Train on the bench with FFM, test on it.
    InSitu,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Loss {
    /// Energy fractions on the detectors against the one-hot label.
    RegionFractionMse,
    /// Max-normalised output intensity against the binary target image (SPEC B3).
    MaxNormalizedMse,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Activation {
    /// Linear network.
    None,
    /// x·e^{i|x|²}.
    Optoelectronic,
    /// x·e^{iπ|x|²/(1+|x|²)}.
    Photorefractive,
}

#[derive(Args)]
pub struct FfmTrainArgs {
    /// Data set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    task: FfmTask,
    /// Number of layers (phase mask + propagation).
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Grid side n (n × n pixels); default the paper's 400 (seed 002 Methods); `--grid 64` for
    /// quick runs. The distance scales as 0.388 m · n/400 (the paper's 0.388 m at 400) unless
    /// --distance is given, keeping the propagation ≈ 8× the critical distance n·dx²/λ.
    #[arg(long, default_value_t = 400)]
    grid: usize,
    /// Pixel pitch (m).
    #[arg(long, default_value_t = 8e-6)]
    dx: f64,
    /// Wavelength (m).
    #[arg(long, default_value_t = 532e-9)]
    wavelength: f64,
    /// Distance between masks (m).
    #[arg(long)]
    distance: Option<f64>,
    /// Strength of the bench's imperfections: 0 = the bench equals the model, 1 = docs/ffm.md's
    /// realistic bench (`Imperfections::at_strength`).
    #[arg(long, default_value_t = 0.5)]
    imperfection_level: f64,
    /// An `Imperfections` JSON (overrides --imperfection-level).
    #[arg(long)]
    imperfections_file: Option<PathBuf>,
    /// Modes to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ideal,in-silico,in-situ")]
    mode: Vec<Mode>,
    /// Activation between layers.
    #[arg(long, value_enum, default_value = "none")]
    activation: Activation,
    /// Training loss: the squared error of the detected energy fractions against the one-hot
    /// label (the default, docs/ffm.md), or SPEC B3's reading of the paper (output intensity
    /// divided by its maximum, squared error against the binary target image).
    #[arg(long, value_enum, default_value = "region-fraction-mse")]
    loss: Loss,
    /// Side of each detector square as a fraction of the grid.
    #[arg(long, default_value_t = 0.1)]
    detector_fraction: f64,
    /// Side of the resized input image as a fraction of the grid (the paper's 392/400).
    #[arg(long, default_value_t = 392.0 / 400.0)]
    input_fraction: f64,
    /// Zero-padding factor of the angular-spectrum propagation (2: no wrap-around reaches the
    /// aperture).
    #[arg(long, default_value_t = 2)]
    padding: usize,
    /// Input power: the image amplitude is scaled by its square root (sets the |x|² scale the
    /// activations see).
    #[arg(long, default_value_t = 1.0)]
    input_power: f64,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Adam learning rate (radians).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training samples used (first N).
    #[arg(long, default_value_t = 3000)]
    train_limit: usize,
    /// Test samples used (first N).
    #[arg(long, default_value_t = 1000)]
    test_limit: usize,
    /// Worker threads (results are identical for any value).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where the datasets live.
    #[arg(long)]
    datasets: Option<PathBuf>,
    /// Write the result JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run exactly this `FfmSpec` JSON (one mode; what xtask's Slurm arrays pass) instead of the
    /// options above.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Make the run survive being killed: keep each mode's state in DIR/MODE.ckpt (replaced
    /// atomically every --checkpoint-every seconds) and each finished mode's result in
    /// DIR/MODE.json. Run the same command again to resume where it stopped; the result is
    /// the one an uninterrupted run gives, bit for bit. A checkpoint or result of other options
    /// in DIR is an error.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Seconds between checkpoints (with --checkpoint).
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    checkpoint_every: f64,
    /// Write each mode's trained phase masks to DIR/MODE.npy: a NumPy float32 array of shape
    /// (layers, n, n), radians, unwrapped (`numpy.load`; an SLM takes them modulo 2π).
    #[arg(long, value_name = "DIR")]
    masks: Option<PathBuf>,
}

/// Where `--checkpoint` keeps things.
struct Checkpoints {
    dir: PathBuf,
    every: std::time::Duration,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum On {
    /// The digital model.
    Model,
    /// The physical bench (the run's imperfections, or those given here).
    Bench,
}

#[derive(Args)]
pub struct FfmEvaluateArgs {
    /// The masks: a float32 .npy array of shape (layers, n, n), as `insitu ffm train --masks`
    /// writes them.
    #[arg(long)]
    masks: PathBuf,
    /// The run they come from: the JSON of `insitu ffm train --json` (with --mode if it holds
    /// several modes), a result stored by `cargo xtask reproduce` (results/PROFILE/HASH.json,
    /// whose masks are HASH.masks.npy beside it) or a bare `FfmSpec` JSON. It gives the
    /// geometry, the data set, the test samples and the bench.
    #[arg(long)]
    run: PathBuf,
    /// Which mode of the run's JSON.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Test on the digital model or on the bench. With the system the run tested on (the
    /// model for ideal runs, the bench otherwise) this gives the run's test accuracy.
    #[arg(long, value_enum, default_value = "bench")]
    on: On,
    /// Deploy on a bench of this imperfection strength instead of the run's.
    #[arg(long)]
    imperfection_level: Option<f64>,
    /// Deploy on the bench of this `Imperfections` JSON instead of the run's.
    #[arg(long)]
    imperfections_file: Option<PathBuf>,
    /// Test samples (the first N) instead of the run's.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Worker threads (results are identical for any value).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where the datasets live.
    #[arg(long)]
    datasets: Option<PathBuf>,
}

/// `insitu ffm evaluate`: read the run's spec and the masks, test them, print JSON.
pub fn evaluate(a: &FfmEvaluateArgs) -> Result<Value, String> {
    if a.threads == 0 {
        return Err("invalid --threads = 0: must be at least 1".into());
    }
    let v = read_json(&a.run)?;
    let mut spec: FfmSpec = match v.get("modes").and_then(Value::as_array) {
        Some(modes) => {
            let wanted = a.mode.map(|m| mode_name(mode_of(m)));
            let picked: Vec<&Value> = modes
                .iter()
                .filter(|m| wanted.is_none_or(|w| m.get(0).and_then(Value::as_str) == Some(w)))
                .collect();
            let [one] = picked[..] else {
                let names: Vec<&str> = modes.iter().filter_map(|m| m.get(0).and_then(Value::as_str)).collect();
                return Err(format!(
                    "{} holds the modes {names:?}: name one with --mode",
                    a.run.display()
                ));
            };
            serde_json::from_value(one[1]["spec"].clone())
                .map_err(|e| format!("{}: invalid spec: {e}", a.run.display()))?
        }
        // a stored result of `cargo xtask reproduce` ({"spec", "result": {"spec", …}}), an
        // `FfmResult` ({"spec", …}) or a bare spec
        None => {
            let spec = v
                .get("result")
                .and_then(|r| r.get("spec"))
                .or_else(|| v.get("spec"))
                .unwrap_or(&v)
                .clone();
            serde_json::from_value(spec)
                .map_err(|e| format!("{}: not an FFM spec, result or report: {e}", a.run.display()))?
        }
    };
    if a.imperfection_level.is_some() || a.imperfections_file.is_some() {
        spec.imperfections = imperfections_of(a.imperfection_level.unwrap_or(0.0), a.imperfections_file.as_deref())?;
    }
    if let Some(limit) = a.test_limit {
        spec.test_limit = Some(limit);
    }
    let phases = read_masks(&a.masks, &spec)?;
    let dir = a.datasets.clone().unwrap_or_else(default_datasets_dir);
    let test_limit = if spec.task.classes().is_some() {
        None
    } else {
        spec.test_limit
    };
    let data =
        load_task_first(spec.task.data_task(), &dir, spec.seed, Some(0), test_limit).map_err(|e| e.to_string())?;
    let data = spec.task.select(data).map_err(|e| e.to_string())?;
    let on = match a.on {
        On::Model => TestSystem::Model,
        On::Bench => TestSystem::Bench,
    };
    let accuracy = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .map_err(|e| e.to_string())?
        .install(|| evaluate_phases(&spec, &phases, &data.test, on))
        .map_err(|e| e.to_string())?;
    Ok(json!({"test_accuracy": accuracy, "on": on, "spec": spec}))
}

pub(crate) fn mode_name(m: TrainingMode) -> &'static str {
    match m {
        TrainingMode::Ideal => "ideal",
        TrainingMode::InSilico => "in-silico",
        TrainingMode::InSitu => "in-situ",
    }
}

/// What `insitu ffm train --json` writes: the task, the common spec, one result per mode.
#[derive(Serialize)]
pub struct FfmReport {
    /// Data set name.
    pub task: String,
    /// `(mode, result)` in the order run; each result holds its full spec.
    pub modes: Vec<(String, FfmResult)>,
}

pub(crate) fn mode_of(m: Mode) -> TrainingMode {
    match m {
        Mode::Ideal => TrainingMode::Ideal,
        Mode::InSilico => TrainingMode::InSilico,
        Mode::InSitu => TrainingMode::InSitu,
    }
}

/// The bench of `--imperfections-file` if given, else `Imperfections::at_strength(level)`.
fn imperfections_of(level: f64, file: Option<&Path>) -> Result<Imperfections, String> {
    match file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("invalid imperfections {}: {e}", p.display()))
        }
        None if level.is_finite() && level >= 0.0 => Ok(Imperfections::at_strength(level)),
        None => Err(format!("invalid --imperfection-level = {level}: must be ≥ 0")),
    }
}

pub fn train(a: &FfmTrainArgs, progress_visible: bool) -> Result<FfmReport, String> {
    if a.threads == 0 {
        return Err("invalid --threads = 0: must be at least 1".into());
    }
    if a.mode.is_empty() {
        return Err("--mode: give at least one of ideal, in-silico, in-situ".into());
    }
    let imperfections = imperfections_of(a.imperfection_level, a.imperfections_file.as_deref())?;
    let task = match a.task {
        FfmTask::FashionMnist => LibTask::FashionMnist,
        FfmTask::Mnist => LibTask::Mnist,
        FfmTask::MnistEven => LibTask::MnistEven,
    };
    let checkpoints = match &a.checkpoint {
        Some(dir) => Some(Checkpoints {
            dir: dir.clone(),
            every: std::time::Duration::try_from_secs_f64(a.checkpoint_every).map_err(|_| {
                format!(
                    "invalid --checkpoint-every = {}: must be a number of seconds ≥ 0",
                    a.checkpoint_every
                )
            })?,
        }),
        None => None,
    };
    if let Some(path) = &a.spec {
        let spec: FfmSpec = crate::interchange::read_json_as(path, "spec")?;
        return run_specs(vec![spec], a, progress_visible, checkpoints);
    }
    let base = FfmSpec {
        task,
        input_power: a.input_power,
        layers: a.layers,
        grid_n: a.grid,
        dx: a.dx,
        wavelength: a.wavelength,
        distance: a.distance.unwrap_or(0.388 * a.grid as f64 / 400.0),
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        train_limit: Some(a.train_limit),
        test_limit: Some(a.test_limit),
        activation: match a.activation {
            Activation::None => ActivationKind::None,
            Activation::Optoelectronic => ActivationKind::Optoelectronic,
            Activation::Photorefractive => ActivationKind::Photorefractive,
        },
        imperfections,
        loss: match a.loss {
            Loss::RegionFractionMse => ClassifierLoss::RegionFractionMse,
            Loss::MaxNormalizedMse => ClassifierLoss::MaxNormalizedMse,
        },
        detector_fraction: a.detector_fraction,
        input_fraction: a.input_fraction,
        padding: a.padding,
        ..FfmSpec::default()
    };
    let specs = a
        .mode
        .iter()
        .map(|&m| FfmSpec {
            mode: mode_of(m),
            ..base.clone()
        })
        .collect();
    run_specs(specs, a, progress_visible, checkpoints)
}

/// Run specs that share a data set (one per mode), in order.
fn run_specs(
    specs: Vec<FfmSpec>,
    a: &FfmTrainArgs,
    progress_visible: bool,
    checkpoints: Option<Checkpoints>,
) -> Result<FfmReport, String> {
    let (datasets, threads) = (a.datasets.clone(), a.threads);
    let task = specs[0].task;
    if specs.iter().any(|s| s.task != task) {
        return Err("all modes of one report must use the same task".into());
    }
    let dir = datasets.unwrap_or_else(default_datasets_dir);
    // Only the samples some mode uses, when no class filter comes first (the same data).
    let most = |limit: fn(&FfmSpec) -> Option<usize>| {
        let limits: Option<Vec<usize>> = specs.iter().map(limit).collect();
        limits.and_then(|l| l.into_iter().max())
    };
    let (train_limit, test_limit) = match task.classes() {
        None => (most(|s| s.train_limit), most(|s| s.test_limit)),
        Some(_) => (None, None),
    };
    let data =
        load_task_first(task.data_task(), &dir, specs[0].seed, train_limit, test_limit).map_err(|e| e.to_string())?;
    let data = task.select(data).map_err(|e| e.to_string())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    // One bar per mode, step by step, with the epoch and its mean loss (`insitu_ffm`'s
    // progress events).
    let mut bars = crate::Bars::new(progress_visible);
    let mut modes = Vec::new();
    for spec in specs {
        let name = mode_name(spec.mode);
        let trained = match &checkpoints {
            None => pool
                .install(|| {
                    insitu_ffm::run_resumable(&spec, &data.train, &data.test, &mut bars, None, &mut NoCheckpoints)
                })
                .map_err(|e| e.to_string())?,
            Some(c) => run_checkpointed(&spec, name, c, &data, &pool, &mut bars)?,
        };
        if let Some(dir) = &a.masks {
            write_masks(&dir.join(format!("{name}.npy")), &spec, &trained.phases)?;
        }
        modes.push((name.to_string(), trained.result));
    }
    bars.clear();
    let task = serde_json::to_value(task)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    Ok(FfmReport { task, modes })
}

/// `phases` as a `(layers, n, n)` float32 `.npy` file, written atomically.
fn write_masks(path: &Path, spec: &FfmSpec, phases: &[Vec<f32>]) -> Result<(), String> {
    write_atomically(path, &phases_to_npy(phases, spec.grid_n)).map_err(|e| e.to_string())
}

/// The masks of a `(layers, n, n)` float32 `.npy` file, checked against `spec`'s network.
fn read_masks(path: &Path, spec: &FfmSpec) -> Result<Vec<Vec<f32>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    phases_from_npy(&bytes, &path.display().to_string(), spec).map_err(|e| e.to_string())
}

/// One mode under `--checkpoint`: its stored result and masks if it finished before, otherwise
/// the run resumed from (or started with) its checkpoint file; the masks and then the result
/// are stored before the checkpoint is removed, so a kill at any moment loses at most `every`
/// of training.
fn run_checkpointed(
    spec: &FfmSpec,
    name: &str,
    c: &Checkpoints,
    data: &insitu_data::TrainTest,
    pool: &rayon::ThreadPool,
    bars: &mut crate::Bars,
) -> Result<FfmTrained, String> {
    let done = c.dir.join(format!("{name}.json"));
    let masks = c.dir.join(format!("{name}.npy"));
    if done.exists() {
        let text = std::fs::read(&done).map_err(|e| format!("cannot read {}: {e}", done.display()))?;
        let stored: FfmResult = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{} is not an `insitu ffm train` result ({e}); delete it to rerun",
                done.display()
            )
        })?;
        if stored.spec != *spec {
            return Err(format!(
                "{} holds the result of a run with other options; delete it or choose another --checkpoint",
                done.display()
            ));
        }
        let phases = read_masks(&masks, spec).map_err(|e| format!("{e} (delete {} to rerun)", done.display()))?;
        eprintln!("{name}: finished before, result read from {}", done.display());
        return Ok(FfmTrained { result: stored, phases });
    }
    let mut file = CheckpointFile::new(c.dir.join(format!("{name}.ckpt")), CHECKPOINT_KIND, c.every);
    let resume = FfmCheckpoint::read_from(&file, spec).map_err(|e| e.to_string())?;
    if let Some(c) = &resume {
        eprintln!("{name}: resuming from {} at {}", file.path().display(), c.position());
    }
    let trained = pool
        .install(|| insitu_ffm::run_resumable(spec, &data.train, &data.test, bars, resume, &mut file))
        .map_err(|e| e.to_string())?;
    write_masks(&masks, spec, &trained.phases)?;
    crate::output::write_json_atomically(&done, &trained.result)?;
    file.remove().map_err(|e| e.to_string())?;
    Ok(trained)
}

/// One line per mode.
pub fn summary(r: &FfmReport) -> String {
    r.modes
        .iter()
        .map(|(name, res)| {
            format!(
                "{} {} layers {}×{} {name}: test accuracy {:.2} %; {:.1} s training, {} forward propagations ({} on the bench){}",
                r.task,
                res.spec.layers,
                res.spec.grid_n,
                res.spec.grid_n,
                100.0 * res.test_accuracy,
                res.train_seconds,
                res.forward_propagations,
                res.physical_forward_propagations,
                match (&res.divergence, res.status.as_str()) {
                    (Some(d), _) => format!(
                        " — DIVERGED in epoch {}, mini-batch {}: {}",
                        d.epoch, d.mini_batch, d.cause
                    ),
                    (None, "ok") => String::new(),
                    (None, other) => format!(" — {other}"),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
