//! FFzero on an emulated photonic network (seed 000, "Photonic neural network" experiment;
//! SPEC A9), trained by the two forward-only methods.
//!
//! **The network.** `depth` layers; layer `l` is a programmable rectangular (Clements) mesh of
//! `N` modes and `N` MZI columns ([`RectangularMesh`], neurophox's conventions, Haar-random
//! initial phases) acting on the complex field; between two layers the electro-optic
//! activation of Williamson et al. ([`ElectroOptic`], SPEC A9's reading α = 0.1, g = 0.05π,
//! φ_b = π) acts on every mode, and the next mesh receives the complex field leaving it. The
//! input is the image's pixel values as real field amplitudes, all in phase, average-pooled to
//! `N = (28/pool)²` modes ([`insitu_data::Dataset::average_pooled`]). What a layer shows the
//! outside world is the **intensity** `|y|²` of each of its output ports.
//!
//! **Training.** FF+DD (FFzero): layer `m`'s phases are trained alone, for `epochs` epochs, on
//! the margin loss (eq. 16) or eq. 5 of the cosine goodness (eq. 4) of **all** `N` output
//! intensities against `10` fixed simplex prototypes in `R^N` (SPEC A1–A3), from directional
//! derivatives (eq. 12–14); the layers below are frozen and their output fields cached (an
//! exact shortcut: the physical machine would run them again, and each evaluation of layer
//! `m` counts `m + 1` forward passes per sample). BP+DD: one directional-derivative estimate
//! over every phase of every mesh, on the softmax cross-entropy of the intensities of the
//! **first 10 output ports** of the last mesh. Both reach the network only through
//! [`PerturbedObjective`]: forward evaluations at perturbed phases. Phases are unconstrained
//! reals (the mesh is periodic in them); [`RectangularMesh::wrap_phases`] rewrites a trained
//! mesh into θ ∈ [0, π], φ, γ ∈ [0, 2π) without changing it.
//!
//! **Inference** (SPEC A6): FF by majority vote over the layers of each layer's best-matching
//! prototype; BP by the brightest of the first 10 ports of the last mesh.
//!
//! **Not here:** the AD baselines (BP+AD, FF+AD) on this network, which need reverse mode
//! through the meshes; [`TrainSpec::validate`] refuses them.
//!
//! # Example
//!
//! Two meshes of 49 modes (7 × 7 images); the first is unitary, so it keeps an image's power,
//! and the activation behind it passes little of it on (docs/photonic.md). Training is
//! [`crate::train()`] with `model: Model::Photonic` (or [`train_photonic_network`]).
//!
//! ```
//! use insitu_ffzero::PhotonicNetwork;
//! use insitu_linalg::Mat;
//!
//! let network = PhotonicNetwork::new(49, 2, 0)?;
//! let images = Mat::from_fn(49, 4, |i, j| ((i + j) % 5) as f32 / 4.0);
//! let mut power = Vec::new();
//! network.forward_taps(&images, &mut Vec::new(), |_mesh, intensities| {
//!     power.push(intensities.column(0).sum());
//! })?;
//! let power_in: f32 = images.column(0).iter().map(|v| v * v).sum();
//! assert!((power[0] - power_in).abs() < 1e-4 * power_in);
//! assert!(power[1] < 0.01 * power_in);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Instant;

use insitu_autodiff::loss as lossfn;
use insitu_data::{Dataset, TrainTest};
use insitu_linalg::{derive_seed, rng, set_shape, Mat, Par};
use insitu_optics::{Activation, Complex32, ElectroOptic, MeshTransfer, RectangularMesh};
use insitu_optim::{PerturbedObjective, Progress};
use rayon::prelude::*;

use crate::metrics::{accuracy, majority_vote};
use crate::objective::LayerTarget;
use crate::spec::{Model, SpecError, TrainSpec};
use crate::train::{
    batch_order_seed, classifier_classes, direction_seed, gradient_source, layer_prototypes, limited, optimise,
    step_rule, Evaluation, GradientSource, Kind, LayerPrototypes, TrainError, TrainResult, UnitOutcome,
};

/// Side of the images the photonic network reads (MNIST and Fashion-MNIST).
pub const IMAGE_SIDE: usize = 28;

/// Fields per block of the activation's work on the frozen-mesh cache (fixed, like every
/// block in the workspace).
const FIELD_BLOCK: usize = 32;

/// The most fields [`apply_mesh`] sends through a mesh together: the mesh walks all of them
/// per 64 MZIs, so a block must stay in L2 (128 fields of 784 modes: 0.8 MB). At 784 modes
/// one block of 128 fields ran an FF+DD step 20 % faster than four blocks of 32 (the mesh's
/// 9.8 MB of matrices read once instead of four times), and one block of 2,560 fields (the
/// frozen-mesh cache in a single block) 35 % slower (`insitu train --model photonic --pool 1
/// --train-limit 2560 --epochs 1`: 1.9–2.0 s, 2.3–2.5 s, 2.7–3.1 s).
const MESH_BLOCK: usize = 128;

/// The emulated photonic network of SPEC A9: `layers` meshes of `modes` modes with the
/// electro-optic activation between consecutive meshes.
#[derive(Clone, Debug)]
pub struct PhotonicNetwork {
    meshes: Vec<RectangularMesh>,
    activation: ElectroOptic,
}

impl PhotonicNetwork {
    /// `layers` Clements meshes (`modes` MZI columns each) with Haar-random phases drawn from
    /// `seed` and the layer index, and SPEC A9's activation.
    pub fn new(modes: usize, layers: usize, seed: u64) -> Result<PhotonicNetwork, TrainError> {
        if layers == 0 {
            return Err(TrainError::Data("a photonic network needs at least one mesh".into()));
        }
        let meshes = (0..layers)
            .map(|l| {
                let mut mesh = RectangularMesh::clements(modes).map_err(|e| TrainError::Data(e.to_string()))?;
                mesh.randomize_haar(&mut rng(derive_seed(seed, &[0xA9, l as u64])));
                Ok(mesh)
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        Ok(PhotonicNetwork {
            meshes,
            activation: ElectroOptic::default(),
        })
    }

    /// The network of these meshes (in the order light meets them) with SPEC A9's activation,
    /// e.g. meshes whose phases were read back from `insitu train --weights`'
    /// `meshL.phases.npy`. Errors when there is no mesh or the meshes' mode counts differ.
    pub fn from_meshes(meshes: Vec<RectangularMesh>) -> Result<PhotonicNetwork, TrainError> {
        let Some(first) = meshes.first() else {
            return Err(TrainError::Data("a photonic network needs at least one mesh".into()));
        };
        if let Some((l, m)) = meshes.iter().enumerate().find(|(_, m)| m.n() != first.n()) {
            return Err(TrainError::Data(format!(
                "mesh {} has {} modes, mesh 1 has {}",
                l + 1,
                m.n(),
                first.n()
            )));
        }
        Ok(PhotonicNetwork {
            meshes,
            activation: ElectroOptic::default(),
        })
    }

    /// The meshes, in the order light meets them.
    pub fn meshes(&self) -> &[RectangularMesh] {
        &self.meshes
    }

    /// The activation between consecutive meshes.
    pub fn activation(&self) -> ElectroOptic {
        self.activation
    }

    /// Modes `N` of every mesh.
    pub fn modes(&self) -> usize {
        self.meshes[0].n()
    }

    /// Phases of all meshes together.
    pub fn num_params(&self) -> usize {
        self.meshes.iter().map(RectangularMesh::num_params).sum()
    }

    /// Sends the images `x` (`N × B` pixel amplitudes, column-major) through the network and
    /// calls `tap(l, intensities)` with each layer's output intensities (`N × B`). `fields` is
    /// scratch (`N·B` values once grown). Errors when `x` does not have `N` rows.
    pub fn forward_taps(
        &self,
        x: &Mat,
        fields: &mut Vec<Complex32>,
        mut tap: impl FnMut(usize, &Mat),
    ) -> Result<(), TrainError> {
        if x.nrows() != self.modes() {
            return Err(TrainError::Data(format!(
                "images of {} pixels for a network of {} modes",
                x.nrows(),
                self.modes()
            )));
        }
        let mut intensities = Mat::zeros(0, 0);
        let mut transfer = MeshTransfer::default();
        load_amplitudes(x.as_slice(), fields);
        let layers = self.meshes.len();
        for (l, mesh) in self.meshes.iter().enumerate() {
            apply_mesh(mesh, fields, &mut transfer, Par::of_current_pool());
            intensities_into(fields, self.modes(), &mut intensities);
            tap(l, &intensities);
            if l + 1 < layers {
                self.activation.apply_slice(fields);
            }
        }
        Ok(())
    }
}

/// `fields ← x` as real amplitudes, all in phase.
fn load_amplitudes(x: &[f32], fields: &mut Vec<Complex32>) {
    fields.clear();
    fields.extend(x.iter().map(|&v| Complex32::new(v, 0.0)));
}

/// Applies `mesh` to every field (`N` values each) of `fields`, in blocks of at most
/// [`MESH_BLOCK`] fields, one per thread of `par` where there are fewer fields (a batch of 128
/// is one block on one thread, two on two); the MZIs' matrices are computed once into
/// `transfer` and shared by the blocks. Unlike the workspace's other blocks these depend on
/// the thread count, which is exact here: each field goes through the mesh on its own, with
/// the mesh's own bits whatever block holds it (tested: one and two threads give the same
/// runs).
fn apply_mesh(mesh: &RectangularMesh, fields: &mut [Complex32], transfer: &mut MeshTransfer, par: Par) {
    let n = mesh.n();
    mesh.transfer_into(transfer);
    let transfer = &*transfer;
    let per_block = (fields.len() / n).div_ceil(par.threads()).clamp(1, MESH_BLOCK);
    fields.par_chunks_mut(per_block * n).for_each(|block| {
        transfer
            .apply_batch_slice(block, block.len() / n)
            .expect("a block holds whole fields of the mesh's size")
    });
}

/// `out ← |fields|²` as an `n × B` matrix.
fn intensities_into(fields: &[Complex32], n: usize, out: &mut Mat) {
    set_shape(out, n, fields.len() / n);
    for (o, f) in out.as_mut_slice().iter_mut().zip(fields) {
        *o = f.norm_sqr();
    }
}

/// The first `rows` rows of `m` (the BP logits: the first 10 output ports).
fn leading_rows_into(m: &Mat, rows: usize, out: &mut Mat) {
    set_shape(out, rows, m.ncols());
    for (dst, src) in out
        .as_mut_slice()
        .chunks_exact_mut(rows)
        .zip(m.as_slice().chunks_exact(m.nrows()))
    {
        dst.copy_from_slice(&src[..rows]);
    }
}

/// Scratch the photonic objectives reuse from step to step.
#[derive(Default)]
struct PhotonicScratch {
    /// The batch's fields entering the layer being trained (`N × B`).
    input: Vec<Complex32>,
    /// Fields during one evaluation.
    fields: Vec<Complex32>,
    /// Output intensities of one evaluation.
    intensities: Mat,
    /// BP logits (first 10 ports).
    logits: Mat,
    /// Labels of the batch.
    labels: Vec<u32>,
    /// The perturbed mesh's matrices.
    transfer: MeshTransfer,
    /// FF goodness (classes × B).
    goodness: Mat,
}

/// FF+DD's view of mesh `m` (SPEC A9): `L(θ)` = the local loss of the mesh's output
/// intensities for the batch's cached input fields, at perturbed phases. Forward evaluations
/// only.
struct MeshLayerObjective<'a> {
    mesh: &'a mut RectangularMesh,
    params: &'a [f32],
    input: &'a [Complex32],
    fields: &'a mut Vec<Complex32>,
    intensities: &'a mut Mat,
    transfer: &'a mut MeshTransfer,
    goodness: &'a mut Mat,
    target: LayerTarget<'a>,
    par: Par,
}

impl PerturbedObjective for MeshLayerObjective<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        let n = self.mesh.n();
        for (o, &step) in out.iter_mut().zip(steps) {
            perturb_into(self.params, direction, step, self.mesh.params_mut());
            self.fields.clear();
            self.fields.extend_from_slice(self.input);
            apply_mesh(self.mesh, self.fields, self.transfer, self.par);
            intensities_into(self.fields, n, self.intensities);
            *o = self.target.loss_with_goodness(self.intensities, self.goodness);
        }
    }
}

/// BP+DD's view of the whole network: the cross-entropy of the first 10 output intensities of
/// the last mesh, at perturbed phases of every mesh. Forward evaluations only.
struct PhotonicNetworkObjective<'a> {
    network: &'a mut PhotonicNetwork,
    params: &'a [f32],
    input: &'a [Complex32],
    scratch: &'a mut PhotonicScratch,
    classes: usize,
    par: Par,
}

impl PerturbedObjective for PhotonicNetworkObjective<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        let n = self.network.modes();
        let layers = self.network.meshes.len();
        let s = &mut *self.scratch;
        for (o, &step) in out.iter_mut().zip(steps) {
            let mut at = 0;
            for mesh in &mut self.network.meshes {
                let k = mesh.num_params();
                perturb_into(
                    &self.params[at..at + k],
                    &direction[at..at + k],
                    step,
                    mesh.params_mut(),
                );
                at += k;
            }
            s.fields.clear();
            s.fields.extend_from_slice(self.input);
            for l in 0..layers {
                apply_mesh(&self.network.meshes[l], &mut s.fields, &mut s.transfer, self.par);
                if l + 1 < layers {
                    self.network.activation.apply_slice(&mut s.fields);
                }
            }
            intensities_into(&s.fields, n, &mut s.intensities);
            leading_rows_into(&s.intensities, self.classes, &mut s.logits);
            // in f64: these logits are ~10⁻⁵ and a perturbation changes the loss by ~10⁻⁹
            // (`softmax_cross_entropy_f64`)
            *o = lossfn::softmax_cross_entropy_f64(&s.logits, &s.labels);
        }
    }
}

/// `out ← params + step·direction`, written straight into the mesh's phases.
fn perturb_into(params: &[f32], direction: &[f32], step: f32, out: &mut [f32]) {
    for (o, (&p, &d)) in out.iter_mut().zip(params.iter().zip(direction)) {
        *o = p + step * d;
    }
}

/// Every mesh's phases from one flat vector (meshes in order).
fn set_network_params(network: &mut PhotonicNetwork, params: &[f32]) {
    let mut rest = params;
    for mesh in &mut network.meshes {
        let (mine, others) = rest.split_at(mesh.num_params());
        mesh.set_params(mine).expect("phase count of this mesh");
        rest = others;
    }
}

/// Every mesh's phases as one flat vector (meshes in order).
fn network_params(network: &PhotonicNetwork) -> Vec<f32> {
    network.meshes.iter().flat_map(|m| m.params().iter().copied()).collect()
}

/// `out ← fields[:, idx]` for `N`-value fields.
fn gather_fields(fields: &[Complex32], n: usize, idx: &[usize], out: &mut Vec<Complex32>) {
    out.clear();
    for &j in idx {
        out.extend_from_slice(&fields[j * n..(j + 1) * n]);
    }
}

/// A trained photonic network: [`train`](crate::train())'s result, the meshes (phases as
/// trained, unwrapped) and, for FF+DD, each layer's prototypes (`N × 10`).
#[derive(Clone, Debug)]
pub struct TrainedPhotonic {
    /// What [`train`](crate::train()) returns for the spec.
    pub result: TrainResult,
    /// The trained network.
    pub network: PhotonicNetwork,
    /// One per mesh for FF+DD, empty for BP+DD.
    pub prototypes: Vec<Mat>,
}

/// The number of modes the spec's pooling gives, or the error that says why the data and the
/// spec do not fit a photonic network.
fn photonic_modes(spec: &TrainSpec, data: &Dataset) -> Result<usize, TrainError> {
    if data.features() != IMAGE_SIDE * IMAGE_SIDE {
        return Err(TrainError::Data(format!(
            "the photonic network reads {IMAGE_SIDE} × {IMAGE_SIDE} images; this task has {} features",
            data.features()
        )));
    }
    if !IMAGE_SIDE.is_multiple_of(spec.pool) {
        return Err(SpecError::OutOfRange {
            option: "--pool",
            value: spec.pool.to_string(),
            reason: format!("must divide the image side {IMAGE_SIDE} (1, 2, 4, 7, 14 or 28)"),
        }
        .into());
    }
    let modes = (IMAGE_SIDE / spec.pool).pow(2);
    if spec.width != modes {
        return Err(SpecError::OutOfRange {
            option: "--width",
            value: spec.width.to_string(),
            reason: format!(
                "the photonic network has one mode per pooled pixel: --pool {} gives {modes} modes, so --width must be {modes}",
                spec.pool
            ),
        }
        .into());
    }
    if modes < 2 {
        return Err(SpecError::OutOfRange {
            option: "--pool",
            value: spec.pool.to_string(),
            reason: "leaves a single pixel; a mesh needs at least 2 modes".into(),
        }
        .into());
    }
    Ok(modes)
}

/// Trains the photonic network of SPEC A9 per `spec` (`model: photonic`, method `ff-dd` or
/// `bp-dd`) and evaluates it on `data`'s test split; [`train`](crate::train()) calls this for
/// photonic specs. Threads as in [`train`](crate::train()): the pool it is called in, the same
/// numbers for any thread count.
pub fn train_photonic_network(
    spec: &TrainSpec,
    data: &TrainTest,
    progress: &mut dyn Progress,
) -> Result<TrainedPhotonic, TrainError> {
    let classes = classifier_classes(
        spec,
        data,
        Model::Photonic,
        "train_photonic_network",
        "the photonic network",
    )?;
    spec.validate(Some(classes))?;
    let modes = photonic_modes(spec, &data.train)?;
    if modes < classes {
        return Err(SpecError::OutOfRange {
            option: "--pool",
            value: spec.pool.to_string(),
            reason: format!("leaves {modes} modes, fewer than the {classes} classes"),
        }
        .into());
    }
    let side = IMAGE_SIDE;
    let pooled = |ds: &Dataset, limit| {
        limited(ds, limit)
            .average_pooled(side, spec.pool)
            .map_err(|e| TrainError::Data(e.to_string()))
    };
    let train_set = pooled(&data.train, spec.train_limit)?;
    let test_set = pooled(&data.test, spec.test_limit)?;
    let mut network = PhotonicNetwork::new(modes, spec.depth, spec.seed)?;
    let par = Par::of_current_pool();
    let started = Instant::now();
    let (prototypes, outcome, curve) = par.with_polling_workers(|| {
        if spec.method.is_local() {
            train_photonic_local(spec, &mut network, &train_set, classes, par, progress)
        } else {
            let (o, c) = train_photonic_global(spec, &mut network, &train_set, classes, par, progress);
            (Vec::new(), o, c)
        }
    });
    let train_seconds = started.elapsed().as_secs_f64();

    let mut result = TrainResult::before_evaluation(spec.clone(), train_seconds, outcome, curve, network.num_params());
    result.set_evaluation(evaluate_pooled(&network, &prototypes, classes, &test_set));
    Ok(TrainedPhotonic {
        result,
        network,
        prototypes,
    })
}

/// FF+DD on the photonic network: mesh by mesh (SPEC A3), each on its own loss against its
/// prototypes, from the cached fields leaving the frozen meshes below (after the activation).
fn train_photonic_local(
    spec: &TrainSpec,
    network: &mut PhotonicNetwork,
    train: &Dataset,
    classes: usize,
    par: Par,
    progress: &mut dyn Progress,
) -> (Vec<Mat>, UnitOutcome, Vec<crate::train::EpochLoss>) {
    let n = network.modes();
    let layers = network.meshes.len();
    let samples = train.len();
    let labels = train.labels().expect("classification, checked");
    let GradientSource::Directional(dd) = gradient_source(spec, par) else {
        unreachable!("validated: ff-dd")
    };
    // The frozen-layer cache: every sample's field entering the mesh being trained.
    let mut cache = Vec::with_capacity(n * samples);
    load_amplitudes(train.inputs.as_slice(), &mut cache);
    let mut scratch = PhotonicScratch::default();
    let mut direction = Vec::new();
    let mut prototypes = Vec::with_capacity(layers);
    let mut curve = Vec::new();
    let mut passes = 0u64;
    for m in 0..layers {
        let protos = match layer_prototypes(spec.seed, m, n, Kind::Classes(classes)) {
            LayerPrototypes::Classes(p) => p,
            LayerPrototypes::Regression(_) => unreachable!("classification"),
        };
        let mut params = network.meshes[m].params().to_vec();
        let mut rule = step_rule(spec, params.len());
        direction.resize(params.len(), 0.0);
        progress.phase(
            &format!("mesh {}/{}", m + 1, layers),
            spec.epochs,
            samples.div_ceil(spec.batch),
        );
        let order_seed = batch_order_seed(spec.seed, Some(m));
        let mut mesh = network.meshes[m].clone();
        let outcome = optimise(
            &mut params,
            &mut rule,
            samples,
            spec,
            order_seed,
            Some(m),
            par,
            progress,
            &mut curve,
            |step_index, idx, params, grad| {
                let PhotonicScratch {
                    input,
                    fields,
                    intensities,
                    labels: batch_labels,
                    transfer,
                    goodness,
                    ..
                } = &mut scratch;
                gather_fields(&cache, n, idx, input);
                batch_labels.clear();
                batch_labels.extend(idx.iter().map(|&i| labels[i]));
                let mut objective = MeshLayerObjective {
                    mesh: &mut mesh,
                    params,
                    input,
                    fields,
                    intensities,
                    transfer,
                    goodness,
                    target: LayerTarget::classes_of(spec, &protos, batch_labels),
                    par,
                };
                let seed = direction_seed(spec.seed, Some(m), step_index);
                let e = dd.estimate(&mut objective, seed, grad, &mut direction);
                (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * (m as u64 + 1))
            },
        );
        network.meshes[m].set_params(&params).expect("same mesh");
        passes += outcome.forward_passes;
        prototypes.push(protos);
        if outcome.divergence.is_some() {
            return (
                prototypes,
                UnitOutcome {
                    divergence: outcome.divergence,
                    forward_passes: passes,
                },
                curve,
            );
        }
        if m + 1 < layers {
            // Freeze mesh m: the next mesh's input is the field leaving the activation.
            apply_mesh(&network.meshes[m], &mut cache, &mut scratch.transfer, par);
            let activation = network.activation;
            cache
                .par_chunks_mut(FIELD_BLOCK * n)
                .with_min_len(par.min_blocks_per_job())
                .for_each(|block| activation.apply_slice(block));
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

/// BP+DD on the photonic network: every phase of every mesh at once, on the cross-entropy of
/// the first 10 output intensities of the last mesh.
fn train_photonic_global(
    spec: &TrainSpec,
    network: &mut PhotonicNetwork,
    train: &Dataset,
    classes: usize,
    par: Par,
    progress: &mut dyn Progress,
) -> (UnitOutcome, Vec<crate::train::EpochLoss>) {
    let n = network.modes();
    let layers = network.meshes.len() as u64;
    let samples = train.len();
    let labels = train.labels().expect("classification, checked");
    let GradientSource::Directional(dd) = gradient_source(spec, par) else {
        unreachable!("validated: bp-dd")
    };
    let mut inputs = Vec::with_capacity(n * samples);
    load_amplitudes(train.inputs.as_slice(), &mut inputs);
    let mut params = network_params(network);
    let mut rule = step_rule(spec, params.len());
    let mut direction = vec![0.0f32; params.len()];
    let mut scratch = PhotonicScratch::default();
    let mut perturbed = network.clone();
    let mut batch_input = Vec::new();
    let mut curve = Vec::new();
    progress.phase("network", spec.epochs, samples.div_ceil(spec.batch));
    let order_seed = batch_order_seed(spec.seed, None);
    let outcome = optimise(
        &mut params,
        &mut rule,
        samples,
        spec,
        order_seed,
        None,
        par,
        progress,
        &mut curve,
        |step_index, idx, params, grad| {
            gather_fields(&inputs, n, idx, &mut batch_input);
            scratch.labels.clear();
            scratch.labels.extend(idx.iter().map(|&i| labels[i]));
            let mut objective = PhotonicNetworkObjective {
                network: &mut perturbed,
                params,
                input: &batch_input,
                scratch: &mut scratch,
                classes,
                par,
            };
            let seed = direction_seed(spec.seed, None, step_index);
            let e = dd.estimate(&mut objective, seed, grad, &mut direction);
            (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * layers)
        },
    );
    set_network_params(network, &params);
    (outcome, curve)
}

/// Test metrics (SPEC A6): FF+DD by majority vote over the meshes of the best-matching
/// prototype of each mesh's output intensities, with per-mesh accuracies; BP+DD by the
/// brightest of the first 10 ports of the last mesh.
fn evaluate_pooled(network: &PhotonicNetwork, prototypes: &[Mat], classes: usize, test: &Dataset) -> Evaluation {
    let local = !prototypes.is_empty();
    let samples = test.len();
    let layers = network.meshes.len();
    let n = network.modes();
    let labels = test.labels().expect("classification, checked");
    let chunk = 1024;
    let mut fields = Vec::new();
    let mut scores = Mat::zeros(0, 0);
    let mut per_layer: Vec<Vec<u32>> = vec![Vec::with_capacity(samples); layers];
    let mut output: Vec<u32> = Vec::with_capacity(samples);
    let mut predictions = vec![0u32; chunk];
    for start in (0..samples).step_by(chunk) {
        let len = chunk.min(samples - start);
        let x = Mat::from_column_slice(n, len, &test.inputs.as_slice()[start * n..(start + len) * n]);
        let taps = network.forward_taps(&x, &mut fields, |l, intensities| {
            if local {
                if let Some(p) = prototypes.get(l) {
                    set_shape(&mut scores, classes, len);
                    lossfn::cosine_goodness(intensities, p, &mut scores);
                    lossfn::predict_classes(&scores, &mut predictions[..len]);
                    per_layer[l].extend_from_slice(&predictions[..len]);
                }
            } else if l + 1 == layers {
                leading_rows_into(intensities, classes, &mut scores);
                lossfn::predict_classes(&scores, &mut predictions[..len]);
                output.extend_from_slice(&predictions[..len]);
            }
        });
        taps.expect("the test images are pooled to the network's modes");
    }
    if local {
        // A run that diverged in mesh m votes with meshes 0..=m (those with prototypes), as
        // the MLP's evaluation does.
        let trained: Vec<&Vec<u32>> = per_layer.iter().take(prototypes.len()).collect();
        Evaluation {
            test_accuracy: Some(accuracy(&majority_vote(&trained, samples), labels)),
            per_layer_test_accuracy: Some(trained.iter().map(|p| accuracy(p, labels)).collect()),
            ..Evaluation::default()
        }
    } else {
        Evaluation {
            test_accuracy: Some(accuracy(&output, labels)),
            ..Evaluation::default()
        }
    }
}

/// The test metrics of a photonic network on `test`'s 28 × 28 images (pooled to the network's
/// modes), as training reports them: with `prototypes` (one `N × classes` matrix per mesh,
/// [`TrainedPhotonic::prototypes`]) FF+DD's majority vote and per-mesh accuracies, without
/// BP+DD's brightest of the first `classes` ports. Errors when the network's modes are not a
/// pooled 28 × 28 image or the data is not a classification set.
pub fn evaluate_photonic_network(
    network: &PhotonicNetwork,
    prototypes: &[Mat],
    test: &Dataset,
) -> Result<Evaluation, TrainError> {
    let Some(classes) = test.num_classes() else {
        return Err(TrainError::Data(
            "the photonic network classifies; this task has regression targets".into(),
        ));
    };
    let modes = network.modes();
    let side = Some(modes.isqrt())
        .filter(|s| s * s == modes && *s > 0 && IMAGE_SIDE.is_multiple_of(*s))
        .ok_or_else(|| {
            TrainError::Data(format!(
                "{modes} modes are not a {IMAGE_SIDE} × {IMAGE_SIDE} image average-pooled by a divisor of {IMAGE_SIDE}"
            ))
        })?;
    if let Some((l, p)) = prototypes
        .iter()
        .enumerate()
        .find(|(_, p)| p.shape() != (modes, classes))
    {
        return Err(TrainError::Data(format!(
            "mesh {}'s prototypes are {} × {}, expected {modes} × {classes}",
            l + 1,
            p.nrows(),
            p.ncols()
        )));
    }
    let pooled = test
        .average_pooled(IMAGE_SIDE, IMAGE_SIDE / side)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    Ok(evaluate_pooled(network, prototypes, classes, &pooled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LocalLoss;
    use insitu_linalg::CMat64;
    use insitu_optics::Complex64;
    use insitu_proto::simplex_prototypes;
    use rand::Rng;

    /// `U·x` for every column of `x` (`N × B` complex, column-major), in f64.
    fn apply_f64(u: &CMat64, x: &[Complex64]) -> Vec<Complex64> {
        let n = u.nrows();
        x.chunks_exact(n)
            .flat_map(|col| (0..n).map(move |i| (0..n).map(|k| u[(i, k)] * col[k]).sum::<Complex64>()))
            .collect()
    }

    fn intensities64(fields: &[Complex64], n: usize) -> Mat {
        Mat::from_iterator(n, fields.len() / n, fields.iter().map(|f| f.norm_sqr() as f32))
    }

    fn images(n: usize, batch: usize, seed: u64) -> Mat {
        let mut g = rng(seed);
        Mat::from_fn(n, batch, |_, _| {
            if g.random::<f32>() < 0.4 {
                g.random::<f32>()
            } else {
                0.0
            }
        })
    }

    /// The network's intensities equal an independent f64 evaluation: each mesh's unitary
    /// formed by `matrix64` (2×2 blocks multiplied out, not the batch kernel), the activation
    /// in f64. Also checks that the first mesh conserves power.
    #[test]
    fn forward_equals_unitaries_and_activation_in_f64() {
        for (modes, layers, seed) in [(9, 2, 1), (16, 3, 2), (10, 1, 3)] {
            let network = PhotonicNetwork::new(modes, layers, seed).unwrap();
            let x = images(modes, 70, seed + 10);
            let mut taps = Vec::new();
            network
                .forward_taps(&x, &mut Vec::new(), |l, i| taps.push((l, i.clone())))
                .unwrap();
            let wrong = images(modes + 1, 3, 0);
            assert!(network.forward_taps(&wrong, &mut Vec::new(), |_, _| {}).is_err());
            assert!(PhotonicNetwork::new(modes, 0, seed).is_err());
            assert_eq!(taps.len(), layers);
            let mut fields: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v as f64, 0.0)).collect();
            for (l, mesh) in network.meshes().iter().enumerate() {
                fields = apply_f64(&mesh.matrix64(), &fields);
                let want = intensities64(&fields, modes);
                let (tap_l, got) = &taps[l];
                assert_eq!(*tap_l, l);
                let scale = want.amax().max(1e-6);
                let err = (got - &want).amax();
                assert!(err <= 2e-5 * scale, "{modes} modes, layer {l}: error {err} of {scale}");
                fields.iter_mut().for_each(|f| *f = network.activation().apply_f64(*f));
            }
            // mesh 0 is unitary: power in = power out, per sample
            for j in 0..x.ncols() {
                let p_in: f32 = x.column(j).iter().map(|v| v * v).sum();
                let p_out: f32 = taps[0].1.column(j).sum();
                assert!((p_in - p_out).abs() <= 1e-5 * p_in.max(1.0), "{p_in} vs {p_out}");
            }
        }
    }

    /// FF+DD's mesh objective at `ω + s·v` equals the local loss of a mesh whose phases were
    /// set to `ω + s·v`, evaluated in f64 through its unitary; BP+DD's network objective
    /// likewise with the cross-entropy of the first 10 ports. The steps a directional
    /// derivative takes (±ε) and a large one.
    #[test]
    fn objectives_equal_the_loss_of_the_perturbed_system() {
        let (modes, batch) = (12, 40);
        let network = PhotonicNetwork::new(modes, 2, 7).unwrap();
        let x = images(modes, batch, 8);
        let labels: Vec<u32> = (0..batch as u32).map(|j| j % 10).collect();
        let protos = simplex_prototypes(10, modes, &mut rng(9)).unwrap();
        let input: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        let input64: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v as f64, 0.0)).collect();
        let mut g = rng(10);
        let params = network.meshes()[0].params().to_vec();
        let direction: Vec<f32> = (0..params.len()).map(|_| g.random::<f32>() - 0.5).collect();
        let steps = [1e-3f32, -1e-3, 0.3];
        let mut ff_difference = (0.0, 0.0);
        for loss in [LocalLoss::Margin, LocalLoss::Eq5] {
            let target = LayerTarget::Classes {
                prototypes: &protos,
                labels: &labels,
                loss,
                margin: 0.3,
            };
            // the buffered goodness gives the allocating loss's value, bit for bit, also when
            // the buffer held another shape
            let z = images(modes, batch, 11);
            let mut g = Mat::zeros(3, 7);
            assert_eq!(
                target.loss_with_goodness(&z, &mut g).to_bits(),
                target.loss(&z).to_bits()
            );
            let mut mesh = network.meshes()[0].clone();
            let (mut fields, mut intensities) = (Vec::new(), Mat::zeros(0, 0));
            let mut objective = MeshLayerObjective {
                mesh: &mut mesh,
                params: &params,
                input: &input,
                fields: &mut fields,
                intensities: &mut intensities,
                transfer: &mut MeshTransfer::default(),
                goodness: &mut Mat::zeros(0, 0),
                target,
                par: Par::Seq,
            };
            let mut out = [0.0; 3];
            objective.losses_along(&direction, &steps, &mut out);
            let mut reference_losses = Vec::new();
            for (&step, &got) in steps.iter().zip(&out) {
                let mut reference = network.meshes()[0].clone();
                let moved: Vec<f32> = params.iter().zip(&direction).map(|(p, d)| p + step * d).collect();
                reference.set_params(&moved).unwrap();
                let want = target.loss(&intensities64(&apply_f64(&reference.matrix64(), &input64), modes));
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{loss:?} step {step}: {got} vs {want}"
                );
                reference_losses.push(want);
            }
            if loss == LocalLoss::Margin {
                ff_difference = (out[0] - out[1], reference_losses[0] - reference_losses[1]);
            }
        }

        let all = network_params(&network);
        let direction: Vec<f32> = (0..all.len()).map(|_| g.random::<f32>() - 0.5).collect();
        let mut scratch = PhotonicScratch {
            labels: labels.clone(),
            ..PhotonicScratch::default()
        };
        let mut perturbed = network.clone();
        let mut objective = PhotonicNetworkObjective {
            network: &mut perturbed,
            params: &all,
            input: &input,
            scratch: &mut scratch,
            classes: 10,
            par: Par::Seq,
        };
        let mut out = [0.0; 3];
        objective.losses_along(&direction, &steps, &mut out);
        let mut bp_reference = Vec::new();
        for (&step, &got) in steps.iter().zip(&out) {
            let mut reference = network.clone();
            let moved: Vec<f32> = all.iter().zip(&direction).map(|(p, d)| p + step * d).collect();
            set_network_params(&mut reference, &moved);
            let mut fields = input64.clone();
            for (l, mesh) in reference.meshes().iter().enumerate() {
                fields = apply_f64(&mesh.matrix64(), &fields);
                if l == 0 {
                    fields
                        .iter_mut()
                        .for_each(|f| *f = reference.activation().apply_f64(*f));
                }
            }
            let want = cross_entropy64(&fields, modes, &labels);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "BP step {step}: {got} vs {want}"
            );
            bp_reference.push(want);
        }
        // The central differences a directional derivative reads. The BP logits behind the
        // activation are small (~10⁻⁵ on MNIST): this fails when the cross-entropy is formed in
        // f32 (the difference reads 0).
        for (what, got, want) in [
            ("FF", ff_difference.0, ff_difference.1),
            ("BP", out[0] - out[1], bp_reference[0] - bp_reference[1]),
        ] {
            assert!(
                want != 0.0 && (got - want).abs() <= 0.02 * want.abs(),
                "{what} difference {got} vs {want}"
            );
        }
    }

    /// Softmax cross-entropy of the first 10 output intensities, all in f64.
    fn cross_entropy64(fields: &[Complex64], n: usize, labels: &[u32]) -> f64 {
        let per_sample = fields.chunks_exact(n).zip(labels).map(|(col, &y)| {
            let logits: Vec<f64> = col[..10].iter().map(|f| f.norm_sqr()).collect();
            let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln() - logits[y as usize]
        });
        per_sample.sum::<f64>() / labels.len() as f64
    }
}
