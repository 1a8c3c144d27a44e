//! # insitu — the command-line front end
//!
//! A thin binary (ripgrep style): it parses arguments, shows progress, prints a summary and
//! writes the result JSON; every computation lives in the library crates. One run per call,
//! so xtask and cluster schedulers can run many of them as independent tasks.
//!
//! **What it must not do.** No training, data or physics logic of its own.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use insitu_data::{default_datasets_dir, load_image_set_first, load_task_first, Task, TrainTest};
use insitu_ffzero::{
    DepthSweep, Difference, DirectionKind, LocalLoss, Method, Model, Optimizer, Progress, TrainError, TrainResult,
    TrainSpec,
};

mod exceptional;
mod ffm;
mod focus;
mod interchange;
mod nlos;
mod optics;
mod output;
mod pic;

#[derive(Parser)]
#[command(
    name = "insitu",
    version,
    about = "Train neural networks and optical systems without backpropagation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one network with FFzero or a baseline (seed 000) and evaluate it on the test set.
    Train(Box<TrainArgs>),
    /// Evaluate a network exported by `insitu train --weights DIR` on a task's test set (the
    /// same metrics the run reported: FF vote and per-layer accuracies when DIR holds
    /// prototypes, else BP's output).
    Evaluate(EvaluateArgs),
    /// FFM learning of optical systems (seed 002).
    #[command(subcommand)]
    Ffm(ffm::FfmCommand),
    /// Interchange commands for cross-checking the optics simulator (JSON in, JSON out).
    #[command(subcommand)]
    Optics(optics::OpticsCommand),
}

#[derive(Args)]
struct TrainArgs {
    /// mnist, fashion-mnist, mnist-regression, synthetic-f1, synthetic-f2
    #[arg(long, default_value = "mnist")]
    task: String,
    /// Model family: mlp, photonic (SPEC A9: `--depth` MZI meshes of `--width` modes with
    /// the electro-optic activation between them; ff-dd or bp-dd; mnist or fashion-mnist), or
    /// cnn (SPEC A7: two convolution layers of `--width` channels and fully connected layers;
    /// every method; classification and mnist-regression).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Hidden width [default: 100; photonic: the number of modes, the pooled pixel count
    /// (28/pool)², which is its default; cnn: channels per convolution layer, default 16].
    #[arg(long)]
    width: Option<usize>,
    /// Number of hidden layers [default: 3; photonic: meshes, default 2 as in the paper; cnn:
    /// convolution layers, 2].
    #[arg(long)]
    depth: Option<usize>,
    /// Photonic model: average-pool the images over pool × pool blocks (1: 784 modes, 2: 196,
    /// 4: 49).
    #[arg(long, default_value_t = 1)]
    pool: usize,
    /// CNN: widths of hidden fully connected layers before the output layer, comma-separated
    /// (SPEC A7's Fashion-MNIST network: `--fc-hidden 100 --dropout 0.1`) [default: none, MNIST's
    /// network].
    #[arg(long, value_delimiter = ',', value_name = "WIDTHS")]
    fc_hidden: Vec<usize>,
    /// CNN: dropout probability after each convolution layer and each hidden FC layer while
    /// training (SPEC A7's Fashion-MNIST network: 0.1).
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// FF methods: train these depths (comma-separated, e.g. 1,3,6,10) in one sweep that
    /// trains each shared hidden layer once; every depth's result equals its own run's
    /// (`insitu_ffzero::train_depth_sweep`). The JSON then holds `{train_seconds, results}`.
    #[arg(long, value_delimiter = ',', conflicts_with = "depth")]
    depths: Option<Vec<usize>>,
    /// bp-ad, bp-dd, ff-ad or ff-dd (= FFzero).
    #[arg(long, default_value = "ff-dd")]
    method: String,
    /// Epochs (per layer for the FF methods).
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Mini-batch size [default: 256; photonic: 128, SPEC A9].
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Perturbation size ε of the directional derivatives.
    #[arg(long, default_value_t = 1e-3)]
    eps: f32,
    /// Number of directions P per step.
    #[arg(long, default_value_t = 1)]
    directions: usize,
    /// DD methods: how directions are drawn, unit-gaussian (eq. 13) or rademacher (SPSA).
    #[arg(long, default_value = "unit-gaussian")]
    direction_kind: String,
    /// DD methods: central differences (2P forward passes per step, eq. 12) or forward (P + 1).
    #[arg(long, default_value = "central")]
    difference: String,
    /// sgd or adam.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Local classification loss: margin (eq. 16) or eq5.
    #[arg(long, default_value = "margin")]
    loss: String,
    /// Margin q of eq. 16.
    #[arg(long, default_value_t = 0.3)]
    margin: f32,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (results are identical for any value).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Use only the first N training samples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test samples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Where the datasets live (default: $INSITU_DATASETS, or the nearest `datasets/`).
    #[arg(long)]
    datasets: Option<PathBuf>,
    /// Write the result JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
    /// A spec JSON to run instead of the options above (what xtask and Slurm arrays pass).
    #[arg(long, conflicts_with_all = ["task", "method"])]
    spec: Option<PathBuf>,
    /// Write the trained network as NumPy float32 arrays (`numpy.load`): DIR/layerL.weight.npy
    /// (outputs × inputs, as PyTorch's nn.Linear), DIR/layerL.bias.npy and, for ff-dd and
    /// ff-ad, DIR/layerL.prototypes.npy (classes × width; regression: the width-vector of label
    /// +1), L = 1, 2, …. Layer L computes z = W·a + b; ReLU(z) is the next layer's input a.
    /// Photonic model: DIR/meshL.phases.npy (θ of every MZI, then φ, then the input screen γ,
    /// as trained, unwrapped; insitu_optics::RectangularMesh's layout) and, for ff-dd,
    /// DIR/meshL.prototypes.npy (classes × modes). CNN: DIR/convL.weight.npy (C × C_in × 6 × 6,
    /// as nn.Conv2d), convL.bias.npy, fcL.weight.npy, fcL.bias.npy and, for ff-dd and ff-ad,
    /// each unit's convL / fcL.prototypes.npy and each channel's fixed reduction
    /// convL.reductions.npy (C × 10 × H_out·W_out).
    #[arg(long, value_name = "DIR", conflicts_with = "depths")]
    weights: Option<PathBuf>,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The directory `insitu train --weights` wrote (layerL.*.npy for an MLP, meshL.*.npy for
    /// the photonic network, convL.*.npy and fcL.*.npy for the CNN).
    #[arg(long, value_name = "DIR")]
    weights: PathBuf,
    /// mnist, fashion-mnist, mnist-regression, synthetic-f1, synthetic-f2 (photonic: mnist or
    /// fashion-mnist).
    #[arg(long, default_value = "mnist")]
    task: String,
    /// The seed of the synthetic sets' split (it is the training run's seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N test samples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Where the datasets live (default: $INSITU_DATASETS, or the nearest `datasets/`).
    #[arg(long)]
    datasets: Option<PathBuf>,
    /// Write the metrics JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn run_evaluate(a: &EvaluateArgs) -> Result<insitu_ffzero::Evaluation, String> {
    if a.test_limit == Some(0) {
        return Err("invalid --test-limit = 0: must be at least 1".into());
    }
    let task = Task::from_name(&a.task).map_err(|e| e.to_string())?;
    let dir = a.datasets.clone().unwrap_or_else(default_datasets_dir);
    let data = load_task_first(task, &dir, a.seed, Some(0), a.test_limit).map_err(|e| e.to_string())?;
    match output::read_exported(&a.weights)? {
        output::Exported::Mlp(mlp, prototypes) => {
            if mlp.shapes()[0].inputs != data.test.features() {
                return Err(format!(
                    "the network in {} takes {} inputs; {} has {} features",
                    a.weights.display(),
                    mlp.shapes()[0].inputs,
                    task.name(),
                    data.test.features()
                ));
            }
            Ok(insitu_ffzero::evaluate_network(&mlp, &prototypes, &data.test))
        }
        output::Exported::Photonic(network, prototypes) => {
            insitu_ffzero::evaluate_photonic_network(&network, &prototypes, &data.test).map_err(|e| e.to_string())
        }
        output::Exported::Cnn(network, prototypes, reductions) => {
            let pixels = insitu_ffzero::cnn::IMAGE_SIDE.pow(2);
            if data.test.features() != pixels {
                return Err(format!(
                    "the CNN in {} reads 28 × 28 images; {} has {} features",
                    a.weights.display(),
                    task.name(),
                    data.test.features()
                ));
            }
            let regression = matches!(data.test.targets, insitu_data::Targets::Values(_));
            let outputs = network.outputs();
            let fits = match (prototypes.is_empty(), regression) {
                // BP: 10 logits, or the one-output regression head
                (true, false) => outputs == 10,
                (true, true) => outputs == 1,
                // FF: prototypes of the 10 classes, or ξ^u
                (false, false) => prototypes.iter().all(|p| p.ncols() == 10),
                (false, true) => prototypes.iter().all(|p| p.ncols() == 1),
            };
            if !fits {
                return Err(format!(
                    "the CNN in {} was not trained for {} ({})",
                    a.weights.display(),
                    task.name(),
                    if regression { "a regression task" } else { "10 classes" }
                ));
            }
            Ok(insitu_ffzero::evaluate_cnn(
                &network,
                &prototypes,
                &reductions,
                &data.test,
            ))
        }
    }
}

fn parse_named<T: Copy>(what: &str, value: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!("unknown {what} '{value}' (valid: {})", names.join(", "))
        })
}

fn spec_from_args(a: &TrainArgs) -> Result<TrainSpec, String> {
    if let Some(path) = &a.spec {
        return interchange::read_json_as(path, "spec");
    }
    let task = Task::from_name(&a.task).map_err(|e| e.to_string())?;
    if !matches!(
        task,
        Task::Mnist | Task::FashionMnist | Task::MnistRegression | Task::SyntheticF1 | Task::SyntheticF2
    ) {
        return Err(format!("task '{}' is not available for `insitu train` (MLP tasks: mnist, fashion-mnist, mnist-regression, synthetic-f1, synthetic-f2)", a.task));
    }
    let model = parse_named(
        "model",
        &a.model,
        &[("mlp", Model::Mlp), ("photonic", Model::Photonic), ("cnn", Model::Cnn)],
    )?;
    let width = match (a.width, model) {
        (Some(w), _) => w,
        (None, Model::Mlp) => 100,
        // one mode per pooled pixel; a pool that does not divide the side is refused by the library
        (None, Model::Photonic) => (insitu_ffzero::photonic::IMAGE_SIDE / a.pool.max(1)).pow(2),
        // channels per convolution layer (SPEC A7's MNIST range is 4..32)
        (None, Model::Cnn) => 16,
    };
    // SPEC A7 (MLP) and A9 (photonic: two meshes, batch 128)
    let (depth, batch) = match model {
        Model::Mlp => (a.depth.unwrap_or(3), a.batch.unwrap_or(256)),
        Model::Photonic => (a.depth.unwrap_or(2), a.batch.unwrap_or(128)),
        Model::Cnn => (a.depth.unwrap_or(2), a.batch.unwrap_or(256)),
    };
    Ok(TrainSpec {
        task: task.name().into(),
        model,
        width,
        depth,
        method: Method::from_name(&a.method).map_err(|e| e.to_string())?,
        epochs: a.epochs,
        batch,
        lr: a.lr,
        eps: a.eps,
        directions: a.directions,
        direction_kind: parse_named(
            "direction kind",
            &a.direction_kind,
            &[
                ("unit-gaussian", DirectionKind::UnitGaussian),
                ("rademacher", DirectionKind::Rademacher),
            ],
        )?,
        difference: parse_named(
            "difference",
            &a.difference,
            &[("central", Difference::Central), ("forward", Difference::Forward)],
        )?,
        optimizer: parse_named(
            "optimizer",
            &a.optimizer,
            &[("sgd", Optimizer::Sgd), ("adam", Optimizer::Adam)],
        )?,
        loss: parse_named(
            "loss",
            &a.loss,
            &[("margin", LocalLoss::Margin), ("eq5", LocalLoss::Eq5)],
        )?,
        margin: a.margin,
        seed: a.seed,
        train_limit: a.train_limit,
        test_limit: a.test_limit,
        pool: a.pool,
        fc_hidden: a.fc_hidden.clone(),
        dropout: a.dropout,
    })
}

/// indicatif bars: one per layer (FF), for the network (BP) or per training mode (FFM); hidden
/// when stderr is not a terminal.
pub(crate) struct Bars {
    bar: Option<ProgressBar>,
    visible: bool,
}

impl Bars {
    /// No bar yet; `visible` says whether bars are drawn at all.
    pub(crate) fn new(visible: bool) -> Self {
        Self { bar: None, visible }
    }

    /// Removes the last bar from the terminal.
    pub(crate) fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn phase(&mut self, label: &str, epochs: usize, steps_per_epoch: usize) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
        let bar = ProgressBar::new((epochs * steps_per_epoch) as u64);
        bar.set_draw_target(if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] epoch {msg} {pos}/{len} steps, {eta} left")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.set_message(format!("1/{epochs}"));
        self.bar = Some(bar);
    }
    fn step(&mut self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
    fn epoch_done(&mut self, epoch: usize, mean_loss: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{} (loss {mean_loss:.4})", epoch + 2));
        }
    }
}

/// Refuses bad options before loading anything (`spec` validated at each of `depths`; the
/// class count is known per task), loads the task's data and runs `f` in a pool of
/// `--threads` threads with progress bars.
fn with_data_and_pool<T: Send>(
    a: &TrainArgs,
    spec: &TrainSpec,
    depths: &[usize],
    f: impl FnOnce(&TrainTest, &mut Bars) -> Result<T, TrainError> + Send,
) -> Result<T, String> {
    if a.threads == 0 {
        return Err("invalid --threads = 0: must be at least 1".into());
    }
    let task = Task::from_name(&spec.task).map_err(|e| e.to_string())?;
    let classes = if task.is_classification() { Some(10) } else { None };
    for &depth in depths {
        TrainSpec { depth, ..spec.clone() }
            .validate(classes)
            .map_err(|e| e.to_string())?;
    }
    let dir = a.datasets.clone().unwrap_or_else(default_datasets_dir);
    // Only the samples the run uses (the same data as cutting them from the whole set). The
    // photonic network trains on all 60,000 training images (SPEC A9), the MLPs on the first
    // 50,000 (SPEC A7).
    let data = match (spec.model, task.image_set()) {
        (Model::Mlp | Model::Cnn, _) => load_task_first(task, &dir, spec.seed, spec.train_limit, spec.test_limit),
        (Model::Photonic, Some(set)) => load_image_set_first(set, &dir, spec.train_limit, spec.test_limit),
        (Model::Photonic, None) => {
            return Err(format!(
                "invalid --task {} for --model photonic: the photonic network reads mnist or fashion-mnist images",
                spec.task
            ))
        }
    }
    .map_err(|e| e.to_string())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .map_err(|e| e.to_string())?;
    let mut bars = Bars::new(std::io::stderr().is_terminal());
    let result = pool.install(|| f(&data, &mut bars)).map_err(|e| e.to_string())?;
    bars.clear();
    Ok(result)
}

fn run_train(a: &TrainArgs) -> Result<TrainResult, String> {
    let spec = spec_from_args(a)?;
    if spec.model == Model::Cnn {
        let trained = with_data_and_pool(a, &spec, &[spec.depth], |data, bars| {
            insitu_ffzero::train_cnn(&spec, data, bars)
        })?;
        if let Some(dir) = &a.weights {
            output::write_cnn(dir, &trained)?;
        }
        return Ok(trained.result);
    }
    if spec.model == Model::Photonic {
        let trained = with_data_and_pool(a, &spec, &[spec.depth], |data, bars| {
            insitu_ffzero::train_photonic_network(&spec, data, bars)
        })?;
        if let Some(dir) = &a.weights {
            output::write_photonic(dir, &trained)?;
        }
        return Ok(trained.result);
    }
    let trained = with_data_and_pool(a, &spec, &[spec.depth], |data, bars| {
        insitu_ffzero::train_network(&spec, data, bars)
    })?;
    if let Some(dir) = &a.weights {
        output::write_network(dir, &trained)?;
    }
    Ok(trained.result)
}

/// `insitu train --depths …`: one FF depth sweep.
fn run_sweep(a: &TrainArgs, depths: &[usize]) -> Result<DepthSweep, String> {
    let spec = spec_from_args(a)?;
    if !spec.method.is_local() {
        return Err(format!(
            "invalid --depths with --method {}: a depth sweep shares hidden layers, which only ff-dd and ff-ad train separately",
            spec.method.name()
        ));
    }
    if depths.is_empty() {
        return Err("invalid --depths: give at least one depth".into());
    }
    with_data_and_pool(a, &spec, depths, |data, bars| {
        insitu_ffzero::train_depth_sweep(&spec, depths, data, bars)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(a) => match a.depths.clone() {
            Some(depths) => report(run_sweep(&a, &depths), output::sweep_summary, a.json.as_deref()),
            None => report(run_train(&a), output::summary, a.json.as_deref()),
        },
        Command::Evaluate(a) => report(run_evaluate(&a), output::evaluation_summary, a.json.as_deref()),
        Command::Optics(cmd) => print_json_or_fail(optics::run(&cmd)),
        Command::Ffm(ffm::FfmCommand::Gradient(a)) => print_json_or_fail(ffm::gradient(&a)),
        Command::Ffm(ffm::FfmCommand::Evaluate(a)) => print_json_or_fail(ffm::evaluate(&a)),
        Command::Ffm(ffm::FfmCommand::Exceptional(a)) => {
            report(exceptional::run(&a), exceptional::summary, a.json.as_deref())
        }
        Command::Ffm(ffm::FfmCommand::Focus(a)) => report(focus::run(&a), focus::summary, a.json.as_deref()),
        Command::Ffm(ffm::FfmCommand::Nlos(a)) => report(nlos::run(&a), nlos::summary, a.json.as_deref()),
        Command::Ffm(ffm::FfmCommand::Pic(a)) => report(pic::run(&a), pic::summary, a.json.as_deref()),
        Command::Ffm(ffm::FfmCommand::Train(a)) => report(
            ffm::train(&a, std::io::stderr().is_terminal()),
            ffm::summary,
            a.json.as_deref(),
        ),
    }
}

/// Print a run's summary and write its JSON (atomically) if asked; errors go to stderr with
/// exit code 2 (refused before work) or 1 (the result could not be written).
fn report<T: serde::Serialize>(
    result: Result<T, String>,
    summary: fn(&T) -> String,
    json: Option<&std::path::Path>,
) -> ExitCode {
    match result {
        Ok(r) => {
            println!("{}", summary(&r));
            if let Some(path) = json {
                if let Err(e) = output::write_json_atomically(path, &r) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_json_or_fail(result: Result<serde_json::Value, String>) -> ExitCode {
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
