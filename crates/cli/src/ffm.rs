//! `insitu ffm …`: seed 002's FFM learning from the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use insitu_data::{default_datasets_dir, load_task_first, CheckpointFile};
use insitu_ffm::{
    gradients_of_dense_system, ActivationKind, DenseLayer, DenseLoss, FfmCheckpoint, FfmResult, FfmSpec,
    FfmTask as LibTask, Imperfections, TrainingMode, CHECKPOINT_KIND,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::interchange::{complex_matrix, complex_vector, read_json, real_vector};

#[derive(Subcommand)]
pub enum FfmCommand {
    /// Train a deep free-space optical classifier: ideal, in silico (deployed on the imperfect
    /// bench) and/or FFM in situ (trained on the bench through forward propagations only).
    Train(Box<FfmTrainArgs>),
    /// Print the FFM gradient (forward error propagation) and the adjoint gradient of a small
    /// dense system given as JSON, with each layer's asymmetry ‖T − Tᵀ‖_F/‖T‖_F.
    Gradient(FfmGradientArgs),
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
}

/// Where `--checkpoint` keeps things.
struct Checkpoints {
    dir: PathBuf,
    every: std::time::Duration,
}

/// What `insitu ffm train --json` writes: the task, the common spec, one result per mode.
#[derive(Serialize)]
pub struct FfmReport {
    /// Data set name.
    pub task: String,
    /// `(mode, result)` in the order run; each result holds its full spec.
    pub modes: Vec<(String, FfmResult)>,
}

fn mode_of(m: Mode) -> TrainingMode {
    match m {
        Mode::Ideal => TrainingMode::Ideal,
        Mode::InSilico => TrainingMode::InSilico,
        Mode::InSitu => TrainingMode::InSitu,
    }
}

pub fn train(a: &FfmTrainArgs, progress_visible: bool) -> Result<FfmReport, String> {
    if a.threads == 0 {
        return Err("invalid --threads = 0: must be at least 1".into());
    }
    if a.mode.is_empty() {
        return Err("--mode: give at least one of ideal, in-silico, in-situ".into());
    }
    let imperfections = match &a.imperfections_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("invalid imperfections {}: {e}", p.display()))?
        }
        None => {
            if !(a.imperfection_level.is_finite() && a.imperfection_level >= 0.0) {
                return Err(format!(
                    "invalid --imperfection-level = {}: must be ≥ 0",
                    a.imperfection_level
                ));
            }
            Imperfections::at_strength(a.imperfection_level)
        }
    };
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
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read spec {}: {e}", path.display()))?;
        let spec: FfmSpec = serde_json::from_str(&text).map_err(|e| format!("invalid spec {}: {e}", path.display()))?;
        return run_specs(vec![spec], a.datasets.clone(), a.threads, progress_visible, checkpoints);
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
    run_specs(specs, a.datasets.clone(), a.threads, progress_visible, checkpoints)
}

/// Run specs that share a data set (one per mode), in order.
fn run_specs(
    specs: Vec<FfmSpec>,
    datasets: Option<PathBuf>,
    threads: usize,
    progress_visible: bool,
    checkpoints: Option<Checkpoints>,
) -> Result<FfmReport, String> {
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
        let name = match spec.mode {
            TrainingMode::Ideal => "ideal",
            TrainingMode::InSilico => "in-silico",
            TrainingMode::InSitu => "in-situ",
        };
        let result = match &checkpoints {
            None => pool
                .install(|| insitu_ffm::run_with_progress(&spec, &data.train, &data.test, &mut bars))
                .map_err(|e| e.to_string())?,
            Some(c) => run_checkpointed(&spec, name, c, &data, &pool, &mut bars)?,
        };
        modes.push((name.to_string(), result));
    }
    bars.clear();
    let task = serde_json::to_value(task)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    Ok(FfmReport { task, modes })
}

/// One mode under `--checkpoint`: its stored result if it finished before, otherwise the run
/// resumed from (or started with) its checkpoint file; the result is stored before the
/// checkpoint is removed, so a kill at any moment loses at most `every` of training.
fn run_checkpointed(
    spec: &FfmSpec,
    name: &str,
    c: &Checkpoints,
    data: &insitu_data::TrainTest,
    pool: &rayon::ThreadPool,
    bars: &mut crate::Bars,
) -> Result<FfmResult, String> {
    let done = c.dir.join(format!("{name}.json"));
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
        eprintln!("{name}: finished before, result read from {}", done.display());
        return Ok(stored);
    }
    let mut file = CheckpointFile::new(c.dir.join(format!("{name}.ckpt")), CHECKPOINT_KIND, c.every);
    let resume = FfmCheckpoint::read_from(&file, spec).map_err(|e| e.to_string())?;
    if let Some(c) = &resume {
        eprintln!(
            "{name}: resuming from {} at epoch {}, after {} of its mini-batches",
            file.path().display(),
            c.epoch() + 1,
            c.batches_done()
        );
    }
    let result = pool
        .install(|| insitu_ffm::run_resumable(spec, &data.train, &data.test, bars, resume, &mut file))
        .map_err(|e| e.to_string())?;
    crate::output::write_json_atomically(&done, &result)?;
    file.remove().map_err(|e| e.to_string())?;
    Ok(result)
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
                if res.status == "ok" { String::new() } else { format!(" — {}", res.status) }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
