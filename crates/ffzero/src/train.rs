//! One training run: the four methods as four wirings of the same parts (SPEC A3–A8).
//!
//! Parts: the [`Mlp`]'s layers; the local ([`LayerTarget`]) and global ([`GlobalTarget`])
//! losses; a gradient source (reverse-mode AD from `insitu-autodiff`, or the
//! directional-derivative estimator of `insitu-optim`); a step rule (SGD or Adam); a schedule
//! (local and sequential, or global). [`optimise`] is the single loop they all run in.

use std::borrow::Cow;
use std::time::Instant;

use insitu_autodiff::{loss as lossfn, Tape};
use insitu_data::{epoch_permutation, gather_columns, gather_columns_par, Dataset, Targets, TrainTest};
use insitu_linalg::{all_finite, derive_seed, huge_page_zeros, rng, set_shape, Mat, MatRef, Par, SparseColumns};
use insitu_optim::{Adam, AnyStep, DirectionalDerivative, Sgd, StepRule, DIRECTION_BLOCK};
use insitu_proto::{antipodal_pair, simplex_prototypes};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::metrics::{accuracy, cosine_score, majority_vote, r_squared};
use crate::mlp::{layer_forward_into, relu_in_place, DenseShape, LayerInput, Mlp};
use crate::objective::{
    layer_gradient_autodiff, network_gradient_autodiff, GlobalTarget, LayerObjective, LayerScratch, LayerTarget,
    NetworkObjective,
};
use crate::spec::{Method, Model, Optimizer, SpecError, TrainSpec};
use insitu_optim::Progress;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Trained for every epoch.
    Ok,
    /// A loss became NaN or infinite; training stopped there (SPEC A7).
    Diverged,
}

/// Where a run diverged (0-based layer for FF, `None` for the global BP schedule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The layer being trained (FF), or `None` (BP: the whole network).
    pub layer: Option<usize>,
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based step within the epoch.
    pub step: usize,
}

/// Mean training loss of one epoch of one unit (a layer in FF — for a CNN convolution layer the
/// mean over its channels' local losses — the network in BP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLoss {
    /// The layer trained (FF) or `None` (BP).
    pub layer: Option<usize>,
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean of the step losses (for DD: of the perturbed evaluations).
    pub loss: f64,
}

/// The result of a run: what `insitu train --json` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    /// Every setting, resolved.
    pub spec: TrainSpec,
    /// Test accuracy as a fraction (classification).
    pub test_accuracy: Option<f64>,
    /// Test coefficient of determination (regression).
    pub test_r2: Option<f64>,
    /// Accuracy of each layer's own vote on the test set (FF classification).
    pub per_layer_test_accuracy: Option<Vec<f64>>,
    /// R² of each layer's own prediction on the test set (FF regression; [`Evaluation`]). Left
    /// out of the JSON when absent, so results from before it existed read back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_layer_test_r2: Option<Vec<f64>>,
    /// Wall time of training alone: data loading, data preparation (the inputs' conversion to
    /// sparse columns, [`SPARSE_INPUT_MAX_DENSITY`]) and evaluation excluded.
    pub train_seconds: f64,
    /// Sample-passes through physical layers during training, every traversed layer counted
    /// (SPEC A7): a layer-`m` FF evaluation of a batch of B costs `B·(m+1)`.
    pub forward_passes: u64,
    /// `ok` or `diverged`.
    pub status: Status,
    /// Where it diverged, if it did.
    pub divergence: Option<Divergence>,
    /// Mean training loss per epoch (per layer for FF).
    pub loss_curve: Vec<EpochLoss>,
    /// Number of trainable parameters.
    pub parameters: usize,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Inconsistent options.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The data does not fit the task (e.g. regression targets with more than one output).
    #[error("data: {0}")]
    Data(String),
}

/// The gradient source of a method.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GradientSource {
    Autodiff,
    Directional(DirectionalDerivative),
}

/// The task as the network sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Classes(usize),
    Regression,
}

impl Kind {
    /// The class count (`None` for regression), as [`TrainSpec::validate`] takes it.
    fn num_classes(self) -> Option<usize> {
        match self {
            Kind::Classes(c) => Some(c),
            Kind::Regression => None,
        }
    }
}

/// The method's gradient source: the directional-derivative estimator or reverse mode.
pub(crate) fn gradient_source(spec: &TrainSpec, par: Par) -> GradientSource {
    if spec.method.is_directional() {
        GradientSource::Directional(DirectionalDerivative {
            directions: spec.directions,
            eps: spec.eps,
            kind: spec.direction_kind,
            difference: spec.difference,
            par,
        })
    } else {
        GradientSource::Autodiff
    }
}

fn kind_of(ds: &Dataset) -> Result<Kind, TrainError> {
    match &ds.targets {
        Targets::Classes { num_classes, .. } => Ok(Kind::Classes(*num_classes)),
        Targets::Values(v) if v.nrows() == 1 => Ok(Kind::Regression),
        Targets::Values(v) => Err(TrainError::Data(format!(
            "regression with {} outputs is not supported by the MLP runner (scalar targets only)",
            v.nrows()
        ))),
    }
}

pub(crate) fn step_rule(spec: &TrainSpec, n: usize) -> AnyStep {
    match spec.optimizer {
        Optimizer::Sgd => AnyStep::Sgd(Sgd { lr: spec.lr }),
        Optimizer::Adam => AnyStep::Adam(Adam::new(n, spec.lr)),
    }
}

/// Layer widths `[in, w, …, w, out]` of the network a method trains (SPEC A7): `depth`
/// hidden layers of `width`; the last layer has one unit per class (classification), one
/// output (BP regression, MSE), or `width` units (FF regression: a 1-D output cannot carry a
/// cosine goodness — SPEC A7 Reading).
pub fn layer_widths(spec: &TrainSpec, inputs: usize, num_classes: Option<usize>) -> Vec<usize> {
    let mut w = vec![inputs];
    w.extend(std::iter::repeat_n(spec.width, spec.depth));
    w.push(match num_classes {
        Some(c) => c,
        None if spec.method.is_local() => spec.width,
        None => 1,
    });
    w
}

/// The seed of a trained unit's mini-batch order: FF layer `Some(m)`, or the whole network
/// (`None`, BP). Keyed by the unit alone (ARCHITECTURE: an FF layer's randomness is keyed by
/// `(seed, layer)`), for MLPs and the photonic network alike.
pub(crate) fn batch_order_seed(seed: u64, unit: Option<usize>) -> u64 {
    derive_seed(seed, &[0x0BA7C4, unit.map_or(u64::MAX, |m| m as u64)])
}

/// The seed of the directions drawn at step `step` of a unit ([`batch_order_seed`]'s units).
pub(crate) fn direction_seed(seed: u64, unit: Option<usize>, step: u64) -> u64 {
    derive_seed(seed, &[0xDD, unit.map_or(u64::MAX, |m| m as u64), step])
}

/// Outcome of [`optimise`] on one unit.
pub(crate) struct UnitOutcome {
    pub(crate) divergence: Option<Divergence>,
    pub(crate) forward_passes: u64,
}

/// The one training loop: `epochs` passes over `n` samples in seeded shuffled mini-batches;
/// each step asks `gradient(batch_indices, params, grad)` for `(loss, forward_passes)` and
/// hands the estimate to the step rule. Stops at the first non-finite loss or gradient.
pub(crate) fn optimise(
    params: &mut [f32],
    step: &mut AnyStep,
    n: usize,
    spec: &TrainSpec,
    order_seed: u64,
    layer: Option<usize>,
    par: Par,
    progress: &mut dyn Progress,
    curve: &mut Vec<EpochLoss>,
    mut gradient: impl FnMut(u64, &[usize], &[f32], &mut [f32]) -> (f64, u64),
) -> UnitOutcome {
    let mut grad = vec![0.0f32; params.len()];
    let mut perm = Vec::with_capacity(n);
    let mut passes = 0u64;
    let mut step_counter = 0u64;
    for epoch in 0..spec.epochs {
        epoch_permutation(n, order_seed, epoch as u64, &mut perm);
        let mut sum = 0.0;
        let mut count = 0usize;
        for (s, batch) in perm.chunks(spec.batch).enumerate() {
            let (loss, p) = gradient(step_counter, batch, params, &mut grad);
            step_counter += 1;
            passes += p;
            if !loss.is_finite()
                || !grad
                    .par_chunks(DIRECTION_BLOCK)
                    .with_min_len(par.min_blocks_per_job())
                    .all(all_finite)
            {
                return UnitOutcome {
                    divergence: Some(Divergence { layer, epoch, step: s }),
                    forward_passes: passes,
                };
            }
            step.step_par(params, &grad, par);
            sum += loss;
            count += 1;
            progress.step();
        }
        let mean = sum / count.max(1) as f64;
        curve.push(EpochLoss {
            layer,
            epoch,
            loss: mean,
        });
        progress.epoch_done(epoch, mean);
    }
    UnitOutcome {
        divergence: None,
        forward_passes: passes,
    }
}

/// Copies of one batch's inputs and targets, reused across steps.
#[derive(Default)]
struct BatchBuffers {
    x: Mat,
    labels: Vec<u32>,
    targets: Vec<f32>,
    targets_mat: Mat,
}

impl BatchBuffers {
    fn gather(&mut self, inputs: &Mat, targets: &Targets, idx: &[usize], par: Par) {
        gather_columns_par(inputs, idx, &mut self.x, par);
        self.gather_targets(targets, idx);
    }

    /// Batch `idx`'s targets, and a dense copy of its inputs unless they are read in place as
    /// the sparse columns `sparse`; [`BatchBuffers::input`] then gives the batch.
    fn load(&mut self, inputs: &Mat, sparse: Option<&SparseColumns>, targets: &Targets, idx: &[usize], par: Par) {
        match sparse {
            Some(_) => self.gather_targets(targets, idx),
            None => self.gather(inputs, targets, idx, par),
        }
    }

    /// The batch [`BatchBuffers::load`] loaded (with the same `sparse` and `idx`).
    fn input<'a>(&'a self, sparse: Option<&'a SparseColumns>, idx: &'a [usize]) -> LayerInput<'a> {
        match sparse {
            Some(s) => LayerInput::Sparse(s.select(idx)),
            None => LayerInput::Dense(MatRef::from(&self.x)),
        }
    }

    fn gather_targets(&mut self, targets: &Targets, idx: &[usize]) {
        match targets {
            Targets::Classes { labels, .. } => {
                self.labels.clear();
                self.labels.extend(idx.iter().map(|&i| labels[i]));
            }
            Targets::Values(v) => {
                self.targets.clear();
                self.targets.extend(idx.iter().map(|&i| v[(0, i)]));
                gather_columns(v, idx, &mut self.targets_mat);
            }
        }
    }
}

/// Train per `spec` on `data` and evaluate on its test split.
///
/// Validation happens first; a diverging run is not an error but a result with
/// `status: diverged`. `progress` receives phase, step and epoch events (the library prints
/// nothing).
///
/// **Threads.** `train` uses the rayon pool it is called in: run it inside
/// `rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(|| train(..))` to use `n`
/// threads (the CLI's `--threads` does this); called from a thread outside any pool it runs
/// sequentially. While it runs, the pool's other workers poll for work (they use their cores
/// fully). The numbers are the same for any thread count.
///
/// A photonic spec (`model: photonic`) runs [`crate::photonic::train_photonic_network`].
pub fn train(spec: &TrainSpec, data: &TrainTest, progress: &mut dyn Progress) -> Result<TrainResult, TrainError> {
    match spec.model {
        Model::Mlp => train_network(spec, data, progress).map(|t| t.result),
        Model::Photonic => crate::photonic::train_photonic_network(spec, data, progress).map(|t| t.result),
        Model::Cnn => crate::cnn::train_cnn(spec, data, progress).map(|t| t.result),
    }
}

/// The class count of `data` for the entry point `entry` of a classifier-only `model` (the
/// network `what`), or the error that says why `spec` or `data` does not fit it.
pub(crate) fn classifier_classes(
    spec: &TrainSpec,
    data: &TrainTest,
    model: Model,
    entry: &str,
    what: &str,
) -> Result<usize, TrainError> {
    require_model(spec, model, entry)?;
    match &data.train.targets {
        Targets::Classes { num_classes, .. } => Ok(*num_classes),
        Targets::Values(_) => Err(TrainError::Data(format!(
            "{what} classifies; this task has regression targets"
        ))),
    }
}

/// The error for the entry point `entry` of `model` given a spec of another model.
pub(crate) fn require_model(spec: &TrainSpec, model: Model, entry: &str) -> Result<(), TrainError> {
    if spec.model == model {
        return Ok(());
    }
    Err(SpecError::OutOfRange {
        option: "--model",
        value: spec.model.name().into(),
        reason: format!("{entry} trains the {} model", model.name()),
    }
    .into())
}

/// The error for an MLP-only entry point given another model.
fn mlp_only(spec: &TrainSpec, entry: &str) -> Result<(), TrainError> {
    match spec.model {
        Model::Mlp => Ok(()),
        other => Err(SpecError::OutOfRange {
            option: "--model",
            value: other.name().into(),
            reason: format!("{entry} trains MLPs (the photonic network: train or train_photonic_network)"),
        }
        .into()),
    }
}

/// A trained network: [`train`]'s result, the network, and (FF methods) each layer's
/// prototypes, which FF inference compares the layer's outputs with (SPEC A6).
#[derive(Clone, Debug)]
pub struct TrainedNetwork {
    /// What [`train`] returns.
    pub result: TrainResult,
    /// The trained weights: layer `l` computes `z_l = W_l·a_{l−1} + b_l`, and `a_l = ReLU(z_l)`
    /// feeds the next layer (`a_0` the input); the goodness and the outputs use `z_l`.
    pub mlp: Mlp,
    /// One per layer for FF methods (in layer order), empty for BP methods.
    pub prototypes: Vec<LayerPrototypes>,
}

/// [`train`], keeping the trained network and its prototypes.
pub fn train_network(
    spec: &TrainSpec,
    data: &TrainTest,
    progress: &mut dyn Progress,
) -> Result<TrainedNetwork, TrainError> {
    mlp_only(spec, "train_network")?;
    let kind = kind_of(&data.train)?;
    let num_classes = kind.num_classes();
    spec.validate(num_classes)?;
    let train_set = limited(&data.train, spec.train_limit);
    let test_set = limited(&data.test, spec.test_limit);
    let widths = layer_widths(spec, train_set.features(), num_classes);
    let mut mlp = Mlp::new(&widths, spec.seed);
    // The pool this call runs in decides how many threads the kernels may use; every kernel
    // splits its work into fixed blocks, so the numbers do not depend on it.
    let par = Par::of_current_pool();
    let source = gradient_source(spec, par);
    // Data preparation, like loading, happens before the clock starts. BP+AD's tape takes
    // dense batches only.
    let sparse = if spec.method == Method::BpAd {
        None
    } else {
        sparse_inputs(&train_set.inputs, par)
    };

    let started = Instant::now();
    let (prototypes, outcome, curve) = par.with_polling_workers(|| {
        if spec.method.is_local() {
            train_local(spec, &mut mlp, &train_set, &sparse, kind, source, par, progress)
        } else {
            let (o, c) = train_global(spec, &mut mlp, &train_set, &sparse, source, par, progress);
            (Vec::new(), o, c)
        }
    });
    let train_seconds = started.elapsed().as_secs_f64();

    let result = evaluated_result(
        spec.clone(),
        &mlp,
        &prototypes,
        &test_set,
        train_seconds,
        outcome,
        curve,
    );
    Ok(TrainedNetwork {
        result,
        mlp,
        prototypes,
    })
}

/// The result of a trained (or diverged) network: what training gave, and the test metrics
/// from [`evaluate`].
fn evaluated_result(
    spec: TrainSpec,
    mlp: &Mlp,
    prototypes: &[LayerPrototypes],
    test: &Dataset,
    train_seconds: f64,
    outcome: UnitOutcome,
    loss_curve: Vec<EpochLoss>,
) -> TrainResult {
    let parameters = mlp.params().len();
    let mut result = TrainResult::before_evaluation(spec, train_seconds, outcome, loss_curve, parameters);
    result.set_evaluation(evaluate_network(mlp, prototypes, test));
    result
}

impl TrainResult {
    /// What training gave (status and divergence from `outcome`), with the test metrics still
    /// empty for an evaluation to fill in.
    pub(crate) fn before_evaluation(
        spec: TrainSpec,
        train_seconds: f64,
        outcome: UnitOutcome,
        loss_curve: Vec<EpochLoss>,
        parameters: usize,
    ) -> TrainResult {
        TrainResult {
            spec,
            test_accuracy: None,
            test_r2: None,
            per_layer_test_accuracy: None,
            per_layer_test_r2: None,
            train_seconds,
            forward_passes: outcome.forward_passes,
            status: if outcome.divergence.is_some() {
                Status::Diverged
            } else {
                Status::Ok
            },
            divergence: outcome.divergence,
            loss_curve,
            parameters,
        }
    }
}

/// The results of one FF spec at several depths ([`train_depth_sweep`]).
#[derive(Clone, Debug, Serialize)]
pub struct DepthSweep {
    /// Wall time of the whole sweep's training (data preparation and evaluation excluded).
    pub train_seconds: f64,
    /// One result per requested depth, in the order asked; each equal to what [`train`] gives
    /// for the spec at that depth, except `train_seconds` (see [`train_depth_sweep`]).
    pub results: Vec<TrainResult>,
}

/// FF (FF+DD, FF+AD) at several depths for the cost of the deepest: seed 000 Fig. 4 is a
/// depth sweep, and an FF network of depth `d` is the first `d` hidden layers of a deeper one
/// plus its own output layer.
///
/// **Why this is exact.** Layer `m` of an FF network is trained on its own loss from the frozen
/// output of layers `0..m` (SPEC A3), and its initial parameters, prototypes, batch order and
/// directions are drawn from streams keyed by `(seed, m)` alone. So layers `0..d` of the
/// depth-`d` network and of any deeper one with the same spec train to the same bits. The sweep
/// trains hidden layers `0..D` once (`D` the largest depth) and, for each requested depth `d`,
/// the depth-`d` output layer on the cached output of hidden layer `d − 1`. Every result —
/// accuracy, per-layer accuracy, loss curve, forward passes (each network's own physical count,
/// SPEC A7), divergence — equals [`train`]'s for that depth bit for bit (tested).
///
/// `train_seconds` of a result is the measured training time of the layers its network
/// consists of (shared hidden layers counted for every depth that contains them) and their
/// caching: what the run would take alone. [`DepthSweep::train_seconds`] is what the sweep took.
///
/// Errors: BP methods (their layers are not trained separately), no depths, or a spec that
/// [`TrainSpec::validate`] refuses at one of the depths.
pub fn train_depth_sweep(
    spec: &TrainSpec,
    depths: &[usize],
    data: &TrainTest,
    progress: &mut dyn Progress,
) -> Result<DepthSweep, TrainError> {
    mlp_only(spec, "a depth sweep")?;
    let kind = kind_of(&data.train)?;
    let num_classes = kind.num_classes();
    if !spec.method.is_local() {
        return Err(TrainError::Data(format!(
            "a depth sweep shares layers between depths, which only FF methods train separately; {:?} trains the whole network",
            spec.method
        )));
    }
    let Some(&deepest) = depths.iter().max() else {
        return Err(TrainError::Data("a depth sweep needs at least one depth".into()));
    };
    let spec_at = |d: usize| TrainSpec {
        depth: d,
        ..spec.clone()
    };
    for &d in depths {
        spec_at(d).validate(num_classes)?;
    }
    let train_set = limited(&data.train, spec.train_limit);
    let test_set = limited(&data.test, spec.test_limit);
    let par = Par::of_current_pool();
    let source = gradient_source(spec, par);
    // Hidden layers 0..deepest as in the deepest network, and each depth's own network (its
    // output layer is trained in place; its hidden layers are copied in afterwards).
    let mut hidden = Mlp::new(
        &layer_widths(&spec_at(deepest), train_set.features(), num_classes),
        spec.seed,
    );
    let mut wanted: Vec<usize> = depths.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut nets: Vec<Mlp> = wanted
        .iter()
        .map(|&d| Mlp::new(&layer_widths(&spec_at(d), train_set.features(), num_classes), spec.seed))
        .collect();
    let mut hidden_runs: Vec<(LayerRun, f64)> = Vec::new(); // with seconds (training + caching)
    let mut output_runs: Vec<Option<(LayerRun, f64)>> = wanted.iter().map(|_| None).collect();
    // Data preparation, like loading, happens before the clock starts.
    let sparse = sparse_inputs(&train_set.inputs, par);

    let started = Instant::now();
    par.with_polling_workers(|| {
        let mut cache = LayerCache::new(&train_set.inputs, &sparse);
        let mut ws = LocalWorkspace::default();
        let targets = &train_set.targets;
        let mut train_at = |m: usize, shape: DenseShape, params: &mut [f32], inputs: LayerInputs<'_>, label: &str| {
            let t = Instant::now();
            let run = train_layer(
                spec, m, shape, params, inputs, targets, kind, source, par, progress, label, &mut ws,
            );
            (run, t.elapsed().as_secs_f64())
        };
        for m in 0..=deepest {
            let inputs = cache.inputs();
            // The output layer of depth m, on the output of hidden layer m − 1.
            if let Ok(i) = wanted.binary_search(&m) {
                let net = &mut nets[i];
                let shape = net.shapes()[m];
                let label = format!("output layer of depth {m}");
                output_runs[i] = Some(train_at(m, shape, net.layer_params_mut(m), inputs, &label));
            }
            if m == deepest {
                break;
            }
            let shape = hidden.shapes()[m];
            let label = format!("layer {} (depths above {m})", m + 1);
            let (run, seconds) = train_at(m, shape, hidden.layer_params_mut(m), inputs, &label);
            let t = Instant::now();
            let diverged = run.outcome.divergence.is_some();
            if !diverged {
                cache.advance(shape, hidden.layer_params(m), par);
            }
            hidden_runs.push((run, seconds + t.elapsed().as_secs_f64()));
            if diverged {
                break;
            }
        }
    });
    let sweep_seconds = started.elapsed().as_secs_f64();

    // Assemble each depth's result as `train` would have made it.
    let mut by_depth = Vec::with_capacity(wanted.len());
    for (i, &d) in wanted.iter().enumerate() {
        let net = &mut nets[i];
        let mut prototypes = Vec::with_capacity(d + 1);
        let mut curve = Vec::new();
        let (mut passes, mut seconds) = (0u64, 0.0);
        let mut divergence = None;
        for (m, (run, secs)) in hidden_runs.iter().enumerate().take(d) {
            net.layer_params_mut(m).copy_from_slice(hidden.layer_params(m));
            prototypes.push(run.prototypes.clone());
            curve.extend(run.curve.iter().cloned());
            passes += run.outcome.forward_passes;
            seconds += secs;
            if run.outcome.divergence.is_some() {
                divergence = run.outcome.divergence;
                break;
            }
        }
        if divergence.is_none() {
            let (run, secs) = output_runs[i]
                .as_ref()
                .expect("trained: no hidden layer below it diverged");
            prototypes.push(run.prototypes.clone());
            curve.extend(run.curve.iter().cloned());
            passes += run.outcome.forward_passes;
            seconds += secs;
            divergence = run.outcome.divergence;
        }
        let outcome = UnitOutcome {
            divergence,
            forward_passes: passes,
        };
        by_depth.push(evaluated_result(
            spec_at(d),
            net,
            &prototypes,
            &test_set,
            seconds,
            outcome,
            curve,
        ));
    }
    let results = depths
        .iter()
        .map(|d| by_depth[wanted.binary_search(d).expect("every depth was run")].clone())
        .collect();
    Ok(DepthSweep {
        results,
        train_seconds: sweep_seconds,
    })
}

/// `ds` itself, or a copy of its first `limit` samples (copying only those: a full MNIST
/// training set is 157 MB, and cloning it took 11 % of a 1-epoch run's wall time).
pub(crate) fn limited(ds: &Dataset, limit: Option<usize>) -> Cow<'_, Dataset> {
    match limit {
        Some(n) if n < ds.len() => Cow::Owned(ds.first(n)),
        _ => Cow::Borrowed(ds),
    }
}

/// A layer's fixed prototypes (SPEC A1): classes (width × c), or the antipodal pair's `ξ^u`
/// as a width × 1 matrix. Drawn from the run seed and the layer index.
#[derive(Clone, Debug)]
pub enum LayerPrototypes {
    /// One column per class.
    Classes(Mat),
    /// `ξ^u` (the label +1 direction); `ξ^l = −ξ^u`.
    Regression(Vec<f32>),
}

pub(crate) fn layer_prototypes(seed: u64, layer: usize, width: usize, kind: Kind) -> LayerPrototypes {
    let mut g = rng(derive_seed(seed, &[0x9907, layer as u64]));
    match kind {
        Kind::Classes(c) => {
            LayerPrototypes::Classes(simplex_prototypes(c, width, &mut g).expect("validated: width ≥ classes"))
        }
        Kind::Regression => LayerPrototypes::Regression(antipodal_pair(width, &mut g).expect("validated: width ≥ 2").0),
    }
}

/// Buffers an FF trainer reuses from layer to layer; none of them affects the numbers.
#[derive(Default)]
struct LocalWorkspace {
    batch: BatchBuffers,
    scratch: LayerScratch,
    tape: Tape,
    direction: Vec<f32>,
}

/// Inputs at most this dense go to the first layer as sparse columns
/// ([`insitu_linalg::matmul_sparse`]): MNIST (19 % non-zero) does, Fashion-MNIST (50 %) does
/// not. Measured on the first layer's (100×784)·(784×256) product, `cargo bench -p
/// insitu-linalg --bench matmul -- first_layer`: at density 0.19 the sparse product takes 137 µs
/// where gathering the batch and the dense product take 316; at 0.50, 275 against 310, but an
/// FF+DD step gathers once for two products, so there the dense path is as fast.
pub const SPARSE_INPUT_MAX_DENSITY: f64 = 0.3;

/// The training inputs as sparse columns, when they are sparse enough
/// ([`SPARSE_INPUT_MAX_DENSITY`]).
fn sparse_inputs(inputs: &Mat, par: Par) -> Option<SparseColumns> {
    SparseColumns::from_dense_if_sparse(MatRef::from(inputs), SPARSE_INPUT_MAX_DENSITY, par)
}

/// Every sample's input to one FF layer: the data (with its sparse form, if it has one) for the
/// first layer, the cached output of the frozen layers below for the others.
#[derive(Clone, Copy)]
struct LayerInputs<'a> {
    dense: &'a Mat,
    sparse: Option<&'a SparseColumns>,
}

impl<'a> LayerInputs<'a> {
    /// The cached output of the layers below when there is one, else the data.
    fn of_layer(cached: &'a Option<Mat>, data: &'a Mat, sparse: &'a Option<SparseColumns>) -> Self {
        match cached {
            Some(c) => LayerInputs { dense: c, sparse: None },
            None => LayerInputs {
                dense: data,
                sparse: sparse.as_ref(),
            },
        }
    }

    fn samples(&self) -> usize {
        self.dense.ncols()
    }

    /// Samples `start..start + len`, in the sparse form when there is one.
    fn columns(&self, start: usize, len: usize) -> LayerInput<'a> {
        match self.sparse {
            Some(s) => LayerInput::Sparse(s.columns(start, len)),
            None => LayerInput::Dense(MatRef::from(self.dense).submatrix(0, start, self.dense.nrows(), len)),
        }
    }
}

/// What training one FF layer gave.
struct LayerRun {
    prototypes: LayerPrototypes,
    outcome: UnitOutcome,
    curve: Vec<EpochLoss>,
}

/// FF layer `m` (SPEC A3): `params` (of `shape`) trained for `spec.epochs` epochs on its own
/// loss against its prototypes, from `inputs` — the data for `m = 0`, else the cached output
/// of the frozen layers `0..m`. A layer-`m` evaluation of a batch of B counts `B·(m+1)`
/// forward passes (the physical machine runs the frozen prefix again).
#[allow(clippy::too_many_arguments)]
fn train_layer(
    spec: &TrainSpec,
    m: usize,
    shape: DenseShape,
    params: &mut [f32],
    inputs: LayerInputs<'_>,
    targets: &Targets,
    kind: Kind,
    source: GradientSource,
    par: Par,
    progress: &mut dyn Progress,
    label: &str,
    ws: &mut LocalWorkspace,
) -> LayerRun {
    let n = inputs.samples();
    let protos = layer_prototypes(spec.seed, m, shape.outputs, kind);
    let mut rule = step_rule(spec, shape.len());
    ws.direction.resize(shape.len(), 0.0);
    progress.phase(label, spec.epochs, n.div_ceil(spec.batch));
    let order_seed = batch_order_seed(spec.seed, Some(m));
    let mut curve = Vec::new();
    let LocalWorkspace {
        batch,
        scratch,
        tape,
        direction,
    } = ws;
    // The tape's products may use the pool's threads (column blocks of the batch, the same
    // bits as one thread: `insitu_linalg::matmul`).
    tape.set_par(par);
    let outcome = optimise(
        params,
        &mut rule,
        n,
        spec,
        order_seed,
        Some(m),
        par,
        progress,
        &mut curve,
        |step_index, idx, params, grad| {
            // FF+DD reads sparse inputs in place; the tape takes a dense copy of the batch.
            let sparse = match source {
                GradientSource::Directional(_) => inputs.sparse,
                GradientSource::Autodiff => None,
            };
            batch.load(inputs.dense, sparse, targets, idx, par);
            let target = match &protos {
                LayerPrototypes::Classes(p) => LayerTarget::classes_of(spec, p, &batch.labels),
                LayerPrototypes::Regression(u) => LayerTarget::Regression {
                    prototype: u,
                    targets: &batch.targets,
                },
            };
            let b = idx.len() as u64;
            match source {
                GradientSource::Directional(dd) => {
                    let x = batch.input(sparse, idx);
                    let mut objective = LayerObjective::new(shape, params, x, target, scratch, par);
                    let seed = direction_seed(spec.seed, Some(m), step_index);
                    let e = dd.estimate(&mut objective, seed, grad, direction);
                    (e.mean_loss, e.evaluations as u64 * b * (m as u64 + 1))
                }
                GradientSource::Autodiff => {
                    let loss = layer_gradient_autodiff(tape, shape, params, &mut batch.x, target, grad);
                    (loss, b * (m as u64 + 1))
                }
            }
        },
    );
    LayerRun {
        prototypes: protos,
        outcome,
        curve,
    }
}

/// FF's frozen-layer cache (SPEC A3): the input of the layer being trained for every sample —
/// the data itself (with its sparse form) for the first layer, then the output of the frozen
/// layers below.
struct LayerCache<'a> {
    data: &'a Mat,
    sparse: &'a Option<SparseColumns>,
    /// The current layer's input when it is not the data.
    cached: Option<Mat>,
    /// A buffer no longer needed, reused by the next cache that has its shape.
    spare: Option<Mat>,
}

impl<'a> LayerCache<'a> {
    fn new(data: &'a Mat, sparse: &'a Option<SparseColumns>) -> Self {
        Self {
            data,
            sparse,
            cached: None,
            spare: None,
        }
    }

    /// The current layer's inputs.
    fn inputs(&self) -> LayerInputs<'_> {
        LayerInputs::of_layer(&self.cached, self.data, self.sparse)
    }

    /// Moves on to the next layer: its input is `ReLU(W·x + b)` of the frozen layer `shape,
    /// params` over every sample. A square layer (as wide as its input) overwrites its input in
    /// place — each output column depends on its own input column only —; otherwise the output
    /// goes into the spare buffer when it has the shape, else a new one. A network of one hidden
    /// width thus allocates and first-touches one 20 MB cache at width 100, not two (a fresh
    /// huge-page buffer measured 2–40 ms to first touch on this project's VM).
    fn advance(&mut self, shape: DenseShape, params: &[f32], par: Par) {
        match self.cached.take() {
            Some(mut cache) if cache.nrows() == shape.outputs && shape.inputs == shape.outputs => {
                layer_output_in_place(shape, params, &mut cache, par);
                self.cached = Some(cache);
            }
            current => {
                let inputs = LayerInputs::of_layer(&current, self.data, self.sparse);
                let n = inputs.samples();
                let mut out = match self.spare.take() {
                    Some(buffer) if buffer.shape() == (shape.outputs, n) => buffer,
                    _ => huge_page_zeros(shape.outputs, n),
                };
                layer_output_all(shape, params, inputs, &mut out, par);
                self.spare = current;
                self.cached = Some(out);
            }
        }
    }
}

/// FF: layers trained one after another, each on its own loss against its prototypes, the
/// input of layer `m` (the frozen prefix's output) computed once and cached (SPEC A3).
#[allow(clippy::too_many_arguments)]
fn train_local(
    spec: &TrainSpec,
    mlp: &mut Mlp,
    train: &Dataset,
    sparse: &Option<SparseColumns>,
    kind: Kind,
    source: GradientSource,
    par: Par,
    progress: &mut dyn Progress,
) -> (Vec<LayerPrototypes>, UnitOutcome, Vec<EpochLoss>) {
    let layers = mlp.num_layers();
    let mut curve = Vec::new();
    let mut passes = 0u64;
    let mut prototypes = Vec::with_capacity(layers);
    let mut cache = LayerCache::new(&train.inputs, sparse);
    let mut ws = LocalWorkspace::default();
    for m in 0..layers {
        let shape = mlp.shapes()[m];
        let inputs = cache.inputs();
        let label = format!("layer {}/{}", m + 1, layers);
        let run = train_layer(
            spec,
            m,
            shape,
            mlp.layer_params_mut(m),
            inputs,
            &train.targets,
            kind,
            source,
            par,
            progress,
            &label,
            &mut ws,
        );
        passes += run.outcome.forward_passes;
        prototypes.push(run.prototypes);
        curve.extend(run.curve);
        if run.outcome.divergence.is_some() {
            return (
                prototypes,
                UnitOutcome {
                    divergence: run.outcome.divergence,
                    forward_passes: passes,
                },
                curve,
            );
        }
        if m + 1 < layers {
            cache.advance(shape, mlp.layer_params(m), par);
        }
    }
    (
        prototypes,
        UnitOutcome {
            divergence: None,
            forward_passes: passes,
        },
        curve,
    )
}

/// `out ← ReLU(W·x + b)` of a whole (cached) input set, in fixed chunks of columns that run
/// on rayon's pool when `par` allows: the next layer's frozen input (SPEC A3). Chunks of 256
/// columns, the size of a training batch: the product's operands then stay in L2 (4096-column
/// chunks took 84 ms for the first layer of width 100 over 50,000 samples, 256 take 75).
fn layer_output_all(shape: DenseShape, params: &[f32], inputs: LayerInputs<'_>, out: &mut Mat, par: Par) {
    debug_assert_eq!(out.shape(), (shape.outputs, inputs.samples()));
    out.as_mut_slice()
        .par_chunks_mut(CACHE_CHUNK * shape.outputs)
        .enumerate()
        .with_min_len(par.min_blocks_per_job())
        .for_each(|(i, block)| {
            let len = block.len() / shape.outputs;
            frozen_output(shape, params, inputs.columns(i * CACHE_CHUNK, len), block);
        });
}

/// Columns per chunk of the frozen-layer cache ([`layer_output_all`], [`layer_output_in_place`]).
const CACHE_CHUNK: usize = 256;

/// `out ← ReLU(W·x + b)` for one chunk of the cache.
fn frozen_output(shape: DenseShape, params: &[f32], x: LayerInput<'_>, out: &mut [f32]) {
    layer_forward_into(shape, params, x, out);
    relu_in_place(out);
}

/// [`layer_output_all`] for a square layer (`outputs == inputs`), overwriting its input: each
/// chunk of columns is computed into a scratch block and copied back over itself (the same
/// products on the same chunks, so the same bits as into a separate buffer).
fn layer_output_in_place(shape: DenseShape, params: &[f32], cache: &mut Mat, par: Par) {
    assert!(
        shape.inputs == shape.outputs && cache.nrows() == shape.inputs,
        "layer_output_in_place: a {}→{} layer over {}-row inputs",
        shape.inputs,
        shape.outputs,
        cache.nrows()
    );
    let rows = shape.inputs;
    cache
        .as_mut_slice()
        .par_chunks_mut(CACHE_CHUNK * rows)
        .with_min_len(par.min_blocks_per_job())
        .for_each_init(Vec::new, |scratch: &mut Vec<f32>, block| {
            let len = block.len() / rows;
            scratch.resize(block.len(), 0.0);
            frozen_output(
                shape,
                params,
                LayerInput::Dense(MatRef::from_col_major(block, rows, len)),
                scratch,
            );
            block.copy_from_slice(scratch);
        });
}

/// BP: every parameter at once on the global loss (cross-entropy of the 10 logits, or MSE of
/// the single regression output).
fn train_global(
    spec: &TrainSpec,
    mlp: &mut Mlp,
    train: &Dataset,
    sparse: &Option<SparseColumns>,
    source: GradientSource,
    par: Par,
    progress: &mut dyn Progress,
) -> (UnitOutcome, Vec<EpochLoss>) {
    let n = train.len();
    let layers = mlp.num_layers() as u64;
    let shapes = mlp.shapes().to_vec();
    let mut curve = Vec::new();
    let mut rule = step_rule(spec, mlp.params().len());
    let mut batch = BatchBuffers::default();
    let mut perturbed = mlp.clone();
    let mut buffers: Vec<Mat> = Vec::new();
    let mut tape = Tape::new();
    // As in `train_layer`: the products of BP+AD's tape may use the pool's threads.
    tape.set_par(par);
    let mut direction = vec![0.0f32; mlp.params().len()];
    progress.phase("network", spec.epochs, n.div_ceil(spec.batch));
    let order_seed = batch_order_seed(spec.seed, None);
    let outcome = optimise(
        mlp.params_mut(),
        &mut rule,
        n,
        spec,
        order_seed,
        None,
        par,
        progress,
        &mut curve,
        |step_index, idx, params, grad| {
            // BP+DD reads sparse inputs in place; BP+AD's tape takes a dense copy of the batch.
            let sparse = match source {
                GradientSource::Directional(_) => sparse.as_ref(),
                GradientSource::Autodiff => None,
            };
            batch.load(&train.inputs, sparse, &train.targets, idx, par);
            let target = match &train.targets {
                Targets::Classes { .. } => GlobalTarget::Classes(&batch.labels),
                Targets::Values(_) => GlobalTarget::Regression(&batch.targets_mat),
            };
            let b = idx.len() as u64;
            match source {
                GradientSource::Directional(dd) => {
                    let x = batch.input(sparse, idx);
                    let mut objective =
                        NetworkObjective::new(params, &mut perturbed, x, target, &mut buffers).with_par(par);
                    let seed = direction_seed(spec.seed, None, step_index);
                    let e = dd.estimate(&mut objective, seed, grad, &mut direction);
                    (e.mean_loss, e.evaluations as u64 * b * layers)
                }
                GradientSource::Autodiff => {
                    let value = network_gradient_autodiff(&mut tape, &shapes, params, &mut batch.x, target, grad);
                    (value, b * layers)
                }
            }
        },
    );
    (outcome, curve)
}

/// A trained network's test metrics (SPEC A6): what [`TrainResult`] reports, computed again
/// from the parameters alone ([`evaluate_network`], [`crate::photonic::evaluate_photonic_network`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Classification accuracy (FF: the layers' majority vote).
    pub test_accuracy: Option<f64>,
    /// FF classification: each layer's own accuracy.
    pub per_layer_test_accuracy: Option<Vec<f64>>,
    /// Regression: R² on the test targets.
    pub test_r2: Option<f64>,
    /// FF regression: the R² of each layer's own prediction (SPEC A6: its goodness against
    /// `ξ^u`; a CNN convolution layer's, the mean over its channels, Supplementary 5.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_layer_test_r2: Option<Vec<f64>>,
}

/// The test metrics of `mlp` on `test`, as training reports them: with `prototypes` (one per
/// FF layer, [`TrainedNetwork::prototypes`]) FF classification by majority vote over the
/// layers (SPEC A6, ties to the latest layer) with per-layer accuracies, FF regression by the
/// last layer's goodness against `ξ^u`; without, BP (argmax of the logits, or the regression
/// output). R² on the test targets.
pub fn evaluate_network(mlp: &Mlp, prototypes: &[LayerPrototypes], test: &Dataset) -> Evaluation {
    let local = !prototypes.is_empty();
    let n = test.len();
    let layers = mlp.num_layers();
    let chunk = 2048;
    let mut buffers = Vec::new();
    let mut goodness = Mat::zeros(0, 0);
    let mut per_layer_preds: Vec<Vec<u32>> = vec![Vec::with_capacity(n); layers];
    let mut output_preds: Vec<u32> = Vec::with_capacity(n);
    let mut regression_preds: Vec<f64> = Vec::with_capacity(n);
    let mut per_layer_scores: Vec<Vec<f64>> = vec![Vec::new(); layers];
    let mut scratch = vec![0u32; chunk];
    for start in (0..n).step_by(chunk) {
        let len = chunk.min(n - start);
        let x = MatRef::from(&test.inputs).submatrix(0, start, test.inputs.nrows(), len);
        mlp.forward_taps(x, &mut buffers, |l, z| {
            if local {
                match &prototypes.get(l) {
                    Some(LayerPrototypes::Classes(p)) => {
                        set_shape(&mut goodness, p.ncols(), len);
                        lossfn::cosine_goodness(z, p, &mut goodness);
                        lossfn::predict_classes(&goodness, &mut scratch[..len]);
                        per_layer_preds[l].extend_from_slice(&scratch[..len]);
                    }
                    Some(LayerPrototypes::Regression(u)) => {
                        per_layer_scores[l].extend((0..len).map(|j| cosine_score(z, j, u)));
                    }
                    _ => {}
                }
            } else if l + 1 == layers {
                match &test.targets {
                    Targets::Classes { .. } => {
                        lossfn::predict_classes(z, &mut scratch[..len]);
                        output_preds.extend_from_slice(&scratch[..len]);
                    }
                    Targets::Values(_) => regression_preds.extend(z.row(0).iter().map(|&v| v as f64)),
                }
            }
        });
    }
    let mut e = Evaluation::default();
    match &test.targets {
        Targets::Classes { labels, .. } => {
            if local {
                // layers that never trained (divergence) still vote: their prototypes exist only
                // for trained layers, so vote over those.
                let voting: Vec<&Vec<u32>> = per_layer_preds.iter().filter(|p| p.len() == n).collect();
                e.per_layer_test_accuracy = Some(voting.iter().map(|p| accuracy(p, labels)).collect());
                let vote = majority_vote(&voting, n);
                e.test_accuracy = Some(accuracy(&vote, labels));
            } else {
                e.test_accuracy = Some(accuracy(&output_preds, labels));
            }
        }
        Targets::Values(v) => {
            let y: Vec<f64> = v.row(0).iter().map(|&t| t as f64).collect();
            if local {
                // FF: the last layer's goodness is the prediction; layers that never trained
                // (divergence) have no prototype and no score
                if per_layer_scores[layers - 1].len() == n {
                    regression_preds = per_layer_scores[layers - 1].clone();
                }
                let scored: Vec<f64> = per_layer_scores
                    .iter()
                    .filter(|s| s.len() == n)
                    .map(|s| r_squared(s, &y))
                    .collect();
                e.per_layer_test_r2 = Some(scored);
            }
            if regression_preds.len() == n {
                e.test_r2 = Some(r_squared(&regression_preds, &y));
            }
        }
    }
    e
}

impl TrainResult {
    /// Takes the metrics of an [`Evaluation`].
    pub(crate) fn set_evaluation(&mut self, e: Evaluation) {
        self.test_accuracy = e.test_accuracy;
        self.per_layer_test_accuracy = e.per_layer_test_accuracy;
        self.test_r2 = e.test_r2;
        self.per_layer_test_r2 = e.per_layer_test_r2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The in-place cache of a square layer equals the cache written to a separate buffer, bit
    /// for bit, for column counts around the chunk size and for one and two threads.
    #[test]
    fn in_place_cache_equals_a_separate_one() {
        let shape = DenseShape {
            inputs: 37,
            outputs: 37,
        };
        let mut g = rng(3);
        let params: Vec<f32> = (0..shape.len()).map(|_| g.random_range(-0.5..0.5)).collect();
        for n in [1usize, 255, 256, 257, 1000] {
            let x = Mat::from_fn(37, n, |_, _| g.random_range(-1.0f32..1.0));
            let inputs = LayerInputs {
                dense: &x,
                sparse: None,
            };
            let mut want = Mat::zeros(37, n);
            layer_output_all(shape, params.as_slice(), inputs, &mut want, Par::Seq);
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut got = x.clone();
                pool.install(|| layer_output_in_place(shape, &params, &mut got, Par::of_current_pool()));
                assert_eq!(got, want, "{n} columns, {threads} thread(s)");
            }
        }
    }
}
