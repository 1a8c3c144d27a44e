//! Deep free-space optical classifiers trained ideally, in silico or in situ with FFM
//! (seed 002 Fig. 2d and Methods "Free-space neural network"; SPEC B3).
//!
//! A run ([`run`]) embeds each 28×28 image as an amplitude field with zero phase (bilinear
//! resize to `input_fraction·n`, centred, zero-padded; 392/400 in the paper), passes it through
//! `layers` phase masks (starting at zero) each followed by band-limited angular-spectrum
//! propagation, detects the intensity in ten square regions (insitu-optics' 3-4-3
//! `DetectorRegions`), and trains the masks with Adam (`insitu_optim::Adam`) on a
//! [`ClassifierLoss`]: by default the squared error of the per-detector energy fractions against
//! the one-hot label; SPEC B3's reading (intensity divided by its maximum, squared error against
//! the binary target image) is selectable, and measured worse (`docs/ffm.md`). Three modes:
//! * [`TrainingMode::Ideal`]: train and test on the digital model;
//! * [`TrainingMode::InSilico`]: train on the digital model, deploy (test) on the bench;
//! * [`TrainingMode::InSitu`]: FFM on the bench (forward runs only), test on the bench.
//!
//! The gradient of a mini-batch is the mean of the per-sample gradients, summed in sample
//! order after a parallel map, so the result does not depend on the number of threads.

use std::time::Instant;

use insitu_data::{epoch_permutation, Dataset, TrainTest};
use insitu_linalg::derive_seed;
use insitu_optics::{DetectorRegions, FreeSpace, Grid, Optoelectronic, Photorefractive, PropagationMethod};
use insitu_optim::{NoProgress, Progress, StepRule};
use num_complex::Complex32;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bench::{CountingSystem, ImperfectBench, Imperfections};
use crate::checkpoint::{spec_json, CheckpointSink, FfmCheckpoint, NoCheckpoints};
use crate::gradient::{data_pass, ffm_gradient, FfmWorkspace};
use crate::loss::FieldLoss;
use crate::system::{DigitalChain, PhysicalSystem};
use crate::{ElementwiseActivation, FfmError};

/// Where the masks are trained and where they are tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainingMode {
    /// Train and test on the digital model.
    Ideal,
    /// Train on the digital model, test on the (imperfect) bench.
    InSilico,
    /// Train on the bench with FFM (forward runs only), test on the bench.
    InSitu,
}

/// Activation after every layer's propagation except the last (nonlinear FFM, SPEC B2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// Linear network.
    #[default]
    None,
    /// `x e^{i|x|²}`.
    Optoelectronic,
    /// `x e^{iπ|x|²/(1+|x|²)}`.
    Photorefractive,
}

/// The training loss of a classifier run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierLoss {
    /// SPEC B3's reading: output intensity divided by its maximum, summed squared error against
    /// the binary target image (1 in the true class's detector square).
    MaxNormalizedMse,
    /// Squared error between the fractions of detected energy per detector square and the
    /// one-hot label ([`FieldLoss::RegionFractionMse`]); the default, see `docs/ffm.md`.
    #[default]
    RegionFractionMse,
}

/// The classification task of a run: which data set and which classes (the data themselves
/// are loaded by the caller, e.g. `insitu_data::load_task(task.data_task(), ..)`, then narrowed
/// by [`FfmTask::select`]; `run` itself does no I/O).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FfmTask {
    /// Fashion-MNIST, 10 classes (seed 002 Fig. 2d).
    #[default]
    FashionMnist,
    /// MNIST, 10 classes (seed 002 Fig. 2d).
    Mnist,
    /// MNIST digits {0, 2, 4, 6, 8} relabelled 0..5 (seed 002's nonlinear experiment, Fig. 2f);
    /// five detector regions (the first five of the 3-4-3 layout).
    MnistEven,
}

impl FfmTask {
    /// The insitu-data task whose files this one reads.
    pub fn data_task(self) -> insitu_data::Task {
        match self {
            FfmTask::FashionMnist => insitu_data::Task::FashionMnist,
            FfmTask::Mnist | FfmTask::MnistEven => insitu_data::Task::Mnist,
        }
    }

    /// The classes kept (in label order), or `None` for all ten.
    pub fn classes(self) -> Option<&'static [u32]> {
        match self {
            FfmTask::MnistEven => Some(&[0, 2, 4, 6, 8]),
            FfmTask::FashionMnist | FfmTask::Mnist => None,
        }
    }

    /// Narrows a loaded train/test pair of [`FfmTask::data_task`] to this task's classes.
    pub fn select(self, data: TrainTest) -> Result<TrainTest, FfmError> {
        let Some(keep) = self.classes() else {
            return Ok(data);
        };
        let filter = |d: Dataset| {
            d.filter_classes(keep)
                .map_err(|e| FfmError::InvalidSpec(format!("selecting the classes of {self:?}: {e}")))
        };
        Ok(TrainTest {
            train: filter(data.train)?,
            test: filter(data.test)?,
        })
    }
}

/// Everything that defines one classifier run (serialisable; part of the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FfmSpec {
    /// The task (recorded for the caller, who loads the data; `run` reads the number of classes
    /// from the data it is given).
    pub task: FfmTask,
    /// Number of layers (mask + propagation).
    pub layers: usize,
    /// Grid side `n` (`n × n` modulator pixels).
    pub grid_n: usize,
    /// Pixel pitch in metres.
    pub dx: f64,
    /// Wavelength in metres.
    pub wavelength: f64,
    /// Distance between successive masks (and to the detector) in metres.
    pub distance: f64,
    /// Zero-padding factor of the angular-spectrum propagation.
    pub padding: usize,
    /// Side of the resized image as a fraction of `grid_n` (paper: 392/400).
    pub input_fraction: f64,
    /// Side of each detector square as a fraction of `grid_n`.
    pub detector_fraction: f64,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam learning rate (radians).
    pub lr: f32,
    /// Seed of the run (batch order).
    pub seed: u64,
    /// Use only the first `train_limit` training samples (None: all).
    pub train_limit: Option<usize>,
    /// Use only the first `test_limit` test samples (None: all).
    pub test_limit: Option<usize>,
    /// Where training and testing happen.
    pub mode: TrainingMode,
    /// Activation between layers.
    pub activation: ActivationKind,
    /// Optical input power: the embedded image amplitude (pixel values in [0, 1]) is multiplied
    /// by `√input_power`. Linear networks with the default loss do not depend on it; the
    /// activations' nonlinear phase (`|x|²` and `π|x|²/(1+|x|²)`) scales with it.
    pub input_power: f64,
    /// Training loss.
    pub loss: ClassifierLoss,
    /// The bench's imperfections (used by `InSilico` and `InSitu`); one scalar level:
    /// [`Imperfections::at_strength`].
    pub imperfections: Imperfections,
}

impl Default for FfmSpec {
    /// The quick configuration documented in `docs/ffm.md`: 64×64 grid at the paper's 8 µm
    /// pitch and 532 nm, distance scaled with the grid (`0.388 m · 64/400`) so that the
    /// propagation distance stays ≈ 8× the critical distance `n·dx²/λ` as in the paper; the
    /// calibrated bench `Imperfections::at_strength(0.5)` of `docs/results/ffm.md`.
    fn default() -> Self {
        Self {
            task: FfmTask::FashionMnist,
            layers: 2,
            grid_n: 64,
            dx: 8e-6,
            wavelength: 532e-9,
            distance: 0.388 * 64.0 / 400.0,
            padding: 2,
            input_fraction: 392.0 / 400.0,
            detector_fraction: 0.1,
            epochs: 3,
            batch: 16,
            lr: 0.05,
            seed: 0,
            train_limit: Some(3000),
            test_limit: Some(1000),
            mode: TrainingMode::InSitu,
            activation: ActivationKind::None,
            input_power: 1.0,
            loss: ClassifierLoss::default(),
            imperfections: Imperfections::at_strength(0.5),
        }
    }
}

impl FfmSpec {
    /// The paper's geometry (seed 002 Methods): 400×400 pixels of 8 µm, 532 nm, 0.388 m.
    pub fn paper() -> Self {
        Self {
            grid_n: 400,
            distance: 0.388,
            train_limit: Some(30_000),
            test_limit: Some(5_000),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), FfmError> {
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        if self.layers == 0 {
            return bad("layers must be ≥ 1".into());
        }
        if self.grid_n < 8 {
            return bad(format!("grid_n must be ≥ 8, got {}", self.grid_n));
        }
        if self.batch == 0 {
            return bad("batch must be ≥ 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be finite and > 0, got {}", self.lr));
        }
        if !(self.input_power.is_finite() && self.input_power > 0.0) {
            return bad(format!("input_power must be finite and > 0, got {}", self.input_power));
        }
        if !(self.input_fraction > 0.0 && self.input_fraction <= 1.0) {
            return bad(format!("input_fraction must be in (0, 1], got {}", self.input_fraction));
        }
        if !(self.detector_fraction > 0.0 && self.detector_fraction <= 0.2) {
            return bad(format!(
                "detector_fraction must be in (0, 0.2], got {}",
                self.detector_fraction
            ));
        }
        Ok(())
    }
}

/// Outcome of a run (serialisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FfmResult {
    /// The spec that produced it.
    pub spec: FfmSpec,
    /// `"ok"` or `"diverged"` (a non-finite loss or gradient ended training).
    pub status: String,
    /// Where and why training diverged (`None` for `"ok"`; absent from the JSON then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<FfmDivergence>,
    /// Test accuracy on the test system (digital model for `Ideal`, bench otherwise).
    pub test_accuracy: f64,
    /// Mean training loss per epoch.
    pub loss_curve: Vec<f64>,
    /// Test accuracy after each epoch.
    pub test_accuracy_curve: Vec<f64>,
    /// Wall time of training (seconds), evaluation excluded.
    pub train_seconds: f64,
    /// Forward runs (one layer each) made during training, on the training system.
    pub forward_propagations: u64,
    /// Of those, the runs on the physical bench (0 unless `InSitu`).
    pub physical_forward_propagations: u64,
    /// Forward runs made during evaluation.
    pub eval_propagations: u64,
    /// `InSilico` only: the test accuracy of the same trained masks on the digital model, i.e.
    /// the `Ideal` result of the same spec (training is identical: same model, same batches),
    /// measured without training twice. `None` for the other modes (and in older JSON).
    #[serde(default)]
    pub model_test_accuracy: Option<f64>,
}

/// A finished run: its result and its trained phase masks.
#[derive(Clone, Debug, PartialEq)]
pub struct FfmTrained {
    /// What [`run`] returns.
    pub result: FfmResult,
    /// One `n × n` row-major mask per layer, in radians, unwrapped (a modulator shows them
    /// modulo 2π, as the bench does); what an SLM is loaded with after training.
    pub phases: Vec<Vec<f32>>,
}

/// `phases` (one `n × n` mask per layer) as the bytes of a NumPy `.npy` float32 array of shape
/// `(layers, n, n)` (`insitu_data::encode_npy_f32`).
pub fn phases_to_npy(phases: &[Vec<f32>], n: usize) -> Vec<u8> {
    insitu_data::encode_npy_f32(&[phases.len(), n, n], &phases.concat())
}

/// The masks in the `.npy` bytes of a float32 array of shape `(layers, n, n)`, checked against
/// `spec`'s network; `file` names the source in errors.
pub fn phases_from_npy(bytes: &[u8], file: &str, spec: &FfmSpec) -> Result<Vec<Vec<f32>>, FfmError> {
    let (shape, values) = insitu_data::decode_npy_f32(bytes, file)?;
    let n = spec.grid_n;
    if shape != [spec.layers, n, n] {
        return Err(FfmError::InvalidSpec(format!(
            "{file} holds an array of shape {shape:?}; the network needs ({}, {n}, {n})",
            spec.layers
        )));
    }
    Ok(values.chunks_exact(n * n).map(<[f32]>::to_vec).collect())
}

/// Where a run stopped on a non-finite value: nothing after it is trained, and the result holds
/// the curves up to the last finished epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FfmDivergence {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Mini-batch within that epoch, counted from 1 (its update was not applied).
    pub mini_batch: usize,
    /// What was not finite: the loss of a training sample (its index in the training set) or
    /// a layer's gradient (layers counted from 1).
    pub cause: String,
}

/// Writes the amplitude image `img` (`side × side`, row-major, values in [0, 1]) into `field`
/// (`n × n`): bilinear resize to `inner × inner` (pixel centres aligned, edges clamped),
/// centred, zero elsewhere, zero phase. Allocates its coordinate table; a training loop keeps
/// one ([`resize_coordinates`]) and calls [`embed_resized`].
pub fn embed_image(img: &[f32], side: usize, n: usize, inner: usize, field: &mut [Complex32]) {
    embed_resized(img, side, n, &resize_coordinates(side, inner), field);
}

/// For each of `inner` output pixels of a bilinear resize from `side` input pixels (pixel
/// centres aligned, edges clamped): the two input pixels it reads and the second one's weight.
/// Rows and columns use the same table.
pub fn resize_coordinates(side: usize, inner: usize) -> Vec<(usize, usize, f32)> {
    let scale = side as f32 / inner as f32;
    (0..inner)
        .map(|i| {
            let x = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, (side - 1) as f32);
            let i0 = (x.floor() as usize).min(side - 1);
            let i1 = (i0 + 1).min(side - 1);
            (i0, i1, x - i0 as f32)
        })
        .collect()
}

/// [`embed_image`] with the resize's coordinate table made once (`coordinates.len()` is the
/// inner size): the interpolation and the zero border only, no allocation.
pub fn embed_resized(img: &[f32], side: usize, n: usize, coordinates: &[(usize, usize, f32)], field: &mut [Complex32]) {
    let inner = coordinates.len();
    assert_eq!(img.len(), side * side);
    assert_eq!(field.len(), n * n);
    assert!(inner <= n);
    let zero = Complex32::new(0.0, 0.0);
    let off = (n - inner) / 2;
    field[..off * n].fill(zero);
    field[(off + inner) * n..].fill(zero);
    for (r, &(r0, r1, fr)) in coordinates.iter().enumerate() {
        let row = &mut field[(off + r) * n..(off + r + 1) * n];
        row[..off].fill(zero);
        row[off + inner..].fill(zero);
        for (out, &(c0, c1, fc)) in row[off..off + inner].iter_mut().zip(coordinates) {
            let v = (1.0 - fr) * ((1.0 - fc) * img[r0 * side + c0] + fc * img[r0 * side + c1])
                + fr * ((1.0 - fc) * img[r1 * side + c0] + fc * img[r1 * side + c1]);
            *out = Complex32::new(v, 0.0);
        }
    }
}

struct Task<'a> {
    images: &'a [f32],
    labels: &'a [u32],
    /// The data set's number of classes.
    classes: Option<usize>,
    side: usize,
    count: usize,
}

impl<'a> Task<'a> {
    fn new(ds: &'a Dataset, limit: Option<usize>, what: &str) -> Result<Self, FfmError> {
        let labels = ds
            .labels()
            .ok_or_else(|| FfmError::InvalidSpec(format!("{what} set has no class labels")))?;
        let f = ds.features();
        let side = (f as f64).sqrt().round() as usize;
        if side * side != f {
            return Err(FfmError::InvalidSpec(format!(
                "{what} samples have {f} features, not a square image"
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= 10) {
            return Err(FfmError::InvalidSpec(format!(
                "{what} label {bad} ≥ 10 (at most ten detector regions)"
            )));
        }
        let count = limit.map_or(labels.len(), |l| l.min(labels.len()));
        if count == 0 {
            return Err(FfmError::InvalidSpec(format!("{what} set is empty")));
        }
        Ok(Self {
            images: ds.inputs.as_slice(),
            labels,
            classes: ds.num_classes(),
            side,
            count,
        })
    }
    fn image(&self, j: usize) -> &[f32] {
        let f = self.side * self.side;
        &self.images[j * f..(j + 1) * f]
    }
}

/// The network's fixed parts shared by all passes.
struct Setup {
    n: usize,
    /// The input images' side (training and test sets agree).
    side: usize,
    /// The bilinear resize of an image to the inner square ([`resize_coordinates`]).
    coordinates: Vec<(usize, usize, f32)>,
    regions: DetectorRegions,
    squares: Vec<(usize, usize, usize)>,
    targets: Vec<Vec<f32>>,
    activation: ActivationKind,
    layers: usize,
    /// `√input_power`: multiplies the embedded amplitude image.
    amplitude: f32,
}

/// The free-space model: `spec.layers` band-limited angular-spectrum propagations.
fn model_layers(spec: &FfmSpec) -> Result<Vec<FreeSpace>, FfmError> {
    let freespace = FreeSpace::new(
        Grid::new(spec.grid_n, spec.dx)?,
        spec.wavelength,
        spec.distance,
        PropagationMethod::BandLimitedAngularSpectrum,
        spec.padding,
    )?;
    Ok(vec![freespace; spec.layers])
}

impl Setup {
    /// The network's fixed parts for `spec` and the images of `tasks` (`(task, what)`, the
    /// name used in errors): one detector region per class, the 3-4-3 layout's first squares.
    fn new(spec: &FfmSpec, tasks: &[(&Task<'_>, &str)]) -> Result<Self, FfmError> {
        let n = spec.grid_n;
        let size = ((n as f64 * spec.detector_fraction).round() as usize).max(1);
        let classes = tasks.iter().filter_map(|(t, _)| t.classes).max().unwrap_or(10);
        if classes > 10 {
            return Err(FfmError::InvalidSpec(format!(
                "{classes} classes, at most ten detector regions"
            )));
        }
        for (t, what) in tasks {
            if let Some(&bad) = t.labels.iter().find(|&&l| l as usize >= classes) {
                return Err(FfmError::InvalidSpec(format!(
                    "{what} label {bad} is not below the data set's {classes} classes"
                )));
            }
        }
        let side = tasks[0].0.side;
        if let Some((other, what)) = tasks.iter().find(|(t, _)| t.side != side) {
            return Err(FfmError::InvalidSpec(format!(
                "{} images are {side}×{side} and {what} images {1}×{1}",
                tasks[0].1, other.side
            )));
        }
        let ten = DetectorRegions::ten_class_343(n, size)?;
        let regions = DetectorRegions::new(n, size, ten.origins()[..classes].to_vec())?;
        let squares = regions.origins().iter().map(|&(r, c)| (r, c, size)).collect();
        let targets = (0..classes)
            .map(|k| {
                let mut t = vec![0.0f32; n * n];
                regions.target_image(k, &mut t).map(|()| t)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inner = ((n as f64 * spec.input_fraction).round() as usize).clamp(1, n);
        Ok(Self {
            n,
            side,
            coordinates: resize_coordinates(side, inner),
            regions,
            squares,
            targets,
            activation: spec.activation,
            layers: spec.layers,
            amplitude: spec.input_power.sqrt() as f32,
        })
    }

    /// Embeds image `j` of `task` into `field` at the run's input power.
    fn embed(&self, task: &Task<'_>, j: usize, field: &mut [Complex32]) {
        debug_assert_eq!(task.side, self.side, "images of the side the resize was made for");
        embed_resized(task.image(j), self.side, self.n, &self.coordinates, field);
        if self.amplitude != 1.0 {
            field.iter_mut().for_each(|z| *z *= self.amplitude);
        }
    }

    fn activations(&self) -> Vec<Option<&'static dyn ElementwiseActivation<f32>>> {
        static OPTO: Optoelectronic = Optoelectronic;
        static PHOTO: Photorefractive = Photorefractive;
        let f: Option<&'static dyn ElementwiseActivation<f32>> = match self.activation {
            ActivationKind::None => None,
            ActivationKind::Optoelectronic => Some(&OPTO),
            ActivationKind::Photorefractive => Some(&PHOTO),
        };
        (0..self.layers)
            .map(|l| if l + 1 < self.layers { f } else { None })
            .collect()
    }
}

struct Worker {
    ws: FfmWorkspace<f32>,
    input: Vec<Complex32>,
    intensity: Vec<f32>,
}

impl Worker {
    fn new(setup: &Setup) -> Self {
        let nn = setup.n * setup.n;
        Self {
            ws: FfmWorkspace::new(setup.layers, nn),
            input: vec![Complex32::new(0.0, 0.0); nn],
            intensity: vec![0.0; nn],
        }
    }
}

/// Accuracy of `phases` on `system` over the first `task.count` samples.
fn evaluate<S: PhysicalSystem<f32> + Clone + Send + Sync>(
    system: &S,
    phases: &[Vec<f32>],
    setup: &Setup,
    task: &Task<'_>,
    shot_base: u64,
) -> f64 {
    let acts = setup.activations();
    let correct: usize = (0..task.count)
        .into_par_iter()
        .map_init(
            || (system.clone(), Worker::new(setup)),
            |(sys, w), j| {
                setup.embed(task, j, &mut w.input);
                data_pass(sys, phases, &acts, &w.input, &mut w.ws, shot_base + (j as u64) * 64);
                for (i, z) in w.intensity.iter_mut().zip(w.ws.output()) {
                    *i = z.norm_sqr();
                }
                let pred = setup.regions.classify(&w.intensity);
                usize::from(pred as u32 == task.labels[j])
            },
        )
        .sum();
    correct as f64 / task.count as f64
}

/// Trains `state`'s masks with FFM on `system` — forward runs only — from wherever `state`
/// stands (a fresh start or a checkpoint) to the end of the last epoch, testing on `eval`
/// after each epoch and offering `sink` a checkpoint after every mini-batch and evaluation.
/// Returns where training diverged, if it did.
fn train<S, E>(
    system: &S,
    eval: &E,
    state: &mut FfmCheckpoint,
    setup: &Setup,
    spec: &FfmSpec,
    train_task: &Task<'_>,
    test_task: &Task<'_>,
    progress: &mut dyn Progress,
    sink: &mut dyn CheckpointSink,
    counts: &dyn Fn() -> (u64, u64),
) -> Result<Option<FfmDivergence>, FfmError>
where
    S: PhysicalSystem<f32> + Clone + Send + Sync,
    E: PhysicalSystem<f32> + Clone + Send + Sync,
{
    let nn = setup.n * setup.n;
    let acts = setup.activations();
    let mut order = Vec::new();
    let mut sample_grads: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut sample_loss: Vec<f64> = Vec::new();
    let mut grad = vec![vec![0.0f32; nn]; setup.layers];
    let mode = match spec.mode {
        TrainingMode::Ideal => "ideal",
        TrainingMode::InSilico => "in silico",
        TrainingMode::InSitu => "in situ",
    };
    let batches_per_epoch = train_task.count.div_ceil(spec.batch);
    progress.phase(mode, spec.epochs, batches_per_epoch);
    (0..state.epoch * batches_per_epoch + state.batches_done).for_each(|_| progress.step());
    let save = |state: &mut FfmCheckpoint, sink: &mut dyn CheckpointSink| {
        (state.model_runs, state.bench_runs) = counts();
        sink.save(state).map_err(FfmError::Checkpoint)
    };
    // One copy of the system and one set of buffers per thread for the whole run: cloning them
    // per batch (rayon's `for_each_init`) allocated and page-faulted 15 MB per free-space
    // layer each time, 8 % of a 400 × 400 run. Which worker takes a sample does not change its
    // gradient (noise is keyed by the shot), so the result is the same for any thread count.
    let mut workers: Vec<(S, Worker)> = (0..rayon::current_num_threads().max(1))
        .map(|_| (system.clone(), Worker::new(setup)))
        .collect();
    while state.epoch < spec.epochs {
        let mut t0 = Instant::now();
        epoch_permutation(train_task.count, spec.seed, state.epoch as u64, &mut order);
        for batch in order.chunks(spec.batch).skip(state.batches_done) {
            // Grown once to a full batch; a shorter last batch uses the front (no reallocation
            // at the next epoch's first batch).
            if sample_grads.len() < batch.len() {
                sample_grads.resize_with(batch.len(), || vec![vec![0.0; nn]; setup.layers]);
                sample_loss.resize(batch.len(), 0.0);
            }
            let phases_ref: &[Vec<f32>] = &state.phases;
            let step = state.step;
            let per_worker = batch.len().div_ceil(workers.len());
            workers
                .par_iter_mut()
                .zip(sample_grads[..batch.len()].par_chunks_mut(per_worker))
                .zip(sample_loss[..batch.len()].par_chunks_mut(per_worker))
                .zip(batch.par_chunks(per_worker))
                .for_each(|((((sys, w), grads), losses), samples)| {
                    for ((g, l), &j) in grads.iter_mut().zip(losses.iter_mut()).zip(samples) {
                        setup.embed(train_task, j, &mut w.input);
                        g.iter_mut().for_each(|v| v.fill(0.0));
                        let label = train_task.labels[j] as usize;
                        let loss = match spec.loss {
                            ClassifierLoss::MaxNormalizedMse => {
                                FieldLoss::NormalizedIntensityMse(&setup.targets[label])
                            }
                            ClassifierLoss::RegionFractionMse => FieldLoss::RegionFractionMse {
                                n: setup.n,
                                squares: &setup.squares,
                                label,
                            },
                        };
                        let shot = derive_seed(spec.seed, &[step, j as u64]);
                        *l = ffm_gradient(sys, phases_ref, &acts, &w.input, &loss, &mut w.ws, g, shot);
                    }
                });
            // fixed-order reduction: independent of the thread count
            let inv = 1.0 / batch.len() as f32;
            for (l, gl) in grad.iter_mut().enumerate() {
                gl.fill(0.0);
                for sg in &sample_grads[..batch.len()] {
                    for (a, b) in gl.iter_mut().zip(&sg[l]) {
                        *a += b * inv;
                    }
                }
            }
            let batch_loss: f64 = sample_loss[..batch.len()].iter().sum();
            let bad_loss = sample_loss[..batch.len()].iter().position(|l| !l.is_finite());
            let bad_layer = grad.iter().position(|g| g.iter().any(|v| !v.is_finite()));
            if bad_loss.is_some() || bad_layer.is_some() || !batch_loss.is_finite() {
                state.train_seconds += t0.elapsed().as_secs_f64();
                let cause = match (bad_loss, bad_layer) {
                    (Some(k), _) => format!("non-finite loss of training sample {}", batch[k]),
                    (None, Some(l)) => format!("non-finite gradient of layer {}", l + 1),
                    (None, None) => "the mini-batch's loss sum overflowed".into(),
                };
                return Ok(Some(FfmDivergence {
                    epoch: state.epoch + 1,
                    mini_batch: state.batches_done + 1,
                    cause,
                }));
            }
            state.epoch_loss += batch_loss;
            for (adam, (p, g)) in state.adams.iter_mut().zip(state.phases.iter_mut().zip(&grad)) {
                adam.step(p, g);
            }
            state.step += 1;
            state.batches_done += 1;
            progress.step();
            if sink.due() {
                // the save's own time is not training time
                state.train_seconds += t0.elapsed().as_secs_f64();
                save(state, sink)?;
                t0 = Instant::now();
            }
        }
        state.train_seconds += t0.elapsed().as_secs_f64();
        let mean_loss = state.epoch_loss / train_task.count as f64;
        state.losses.push(mean_loss);
        progress.epoch_done(state.epoch, mean_loss);
        state.accuracies.push(evaluate(
            eval,
            &state.phases,
            setup,
            test_task,
            evaluation_shots(spec, state.epoch as u64),
        ));
        state.epoch += 1;
        state.batches_done = 0;
        state.epoch_loss = 0.0;
        if state.epoch < spec.epochs && sink.due() {
            save(state, sink)?;
        }
    }
    Ok(None)
}

/// Runs one classifier experiment (train, then test) as `spec` describes.
pub fn run(spec: &FfmSpec, train_set: &Dataset, test_set: &Dataset) -> Result<FfmResult, FfmError> {
    run_with_progress(spec, train_set, test_set, &mut NoProgress)
}

/// [`run`], reporting the training mode as a phase, every step and every epoch's mean loss to
/// `progress` (from the calling thread; the library prints nothing).
pub fn run_with_progress(
    spec: &FfmSpec,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: &mut dyn Progress,
) -> Result<FfmResult, FfmError> {
    run_resumable(spec, train_set, test_set, progress, None, &mut NoCheckpoints).map(|t| t.result)
}

/// [`run_with_progress`] from `resume` (a checkpoint this spec's run saved; `None`: from the
/// start), handing `sink` a checkpoint whenever it says one is due; returns the trained masks
/// with the result. The result equals the
/// uninterrupted run's bit for bit, except `train_seconds` (the module docs of
/// [`crate::checkpoint`] say why). With a file: [`FfmCheckpoint::read_from`] for `resume`, the
/// [`insitu_data::CheckpointFile`] as `sink`.
pub fn run_resumable(
    spec: &FfmSpec,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: &mut dyn Progress,
    resume: Option<FfmCheckpoint>,
    sink: &mut dyn CheckpointSink,
) -> Result<FfmTrained, FfmError> {
    spec.validate()?;
    let train_task = Task::new(train_set, spec.train_limit, "training")?;
    let test_task = Task::new(test_set, spec.test_limit, "test")?;
    let model_layers = model_layers(spec)?;
    let setup = Setup::new(spec, &[(&train_task, "training"), (&test_task, "test")])?;
    let mut state = match resume {
        Some(checkpoint) => {
            // `FfmCheckpoint::from_bytes` checked the spec; the data decide the batch count
            let batches = train_task.count.div_ceil(spec.batch);
            if checkpoint.spec_json != spec_json(spec) || checkpoint.batches_done > batches {
                return Err(FfmError::Checkpoint(format!(
                    "the checkpoint (epoch {}, {} batches done) does not belong to this run of {batches} \
                     batches per epoch",
                    checkpoint.epoch + 1,
                    checkpoint.batches_done
                )));
            }
            checkpoint
        }
        None => FfmCheckpoint::start(spec),
    };
    let digital = CountingSystem::with_count(
        DigitalChain::new(model_layers.clone()).ok_or_else(|| FfmError::InvalidSpec("empty network".into()))?,
        state.model_runs,
    );
    let bench = CountingSystem::with_count(
        ImperfectBench::new(&model_layers, &spec.imperfections)?,
        state.bench_runs,
    );
    let counts = || (digital.count(), bench.count());
    // The same training loop on (trained system, evaluated system).
    macro_rules! train_on {
        ($system:expr, $eval:expr) => {
            train(
                $system,
                $eval,
                &mut state,
                &setup,
                spec,
                &train_task,
                &test_task,
                progress,
                sink,
                &counts,
            )
        };
    }
    let divergence = match spec.mode {
        TrainingMode::Ideal => train_on!(&digital, &digital),
        TrainingMode::InSilico => train_on!(&digital, &bench),
        TrainingMode::InSitu => train_on!(&bench, &bench),
    }?;
    let FfmCheckpoint {
        losses,
        accuracies: accs,
        train_seconds: secs,
        phases,
        ..
    } = state;
    let per_eval = (test_task.count * spec.layers) as u64;
    let evals = accs.len() as u64 * per_eval;
    let (train_count, physical) = match spec.mode {
        TrainingMode::Ideal => (digital.count() - evals, 0),
        TrainingMode::InSilico => (digital.count(), 0),
        TrainingMode::InSitu => (bench.count() - evals, bench.count() - evals),
    };
    // the same masks on the digital model, with the shots of the last epoch's evaluation
    let model_test_accuracy = (spec.mode == TrainingMode::InSilico && !accs.is_empty()).then(|| {
        let last = accs.len() as u64 - 1;
        evaluate(&digital, &phases, &setup, &test_task, evaluation_shots(spec, last))
    });
    let evals = evals + if model_test_accuracy.is_some() { per_eval } else { 0 };
    let result = FfmResult {
        spec: spec.clone(),
        status: if divergence.is_some() { "diverged" } else { "ok" }.into(),
        divergence,
        test_accuracy: accs.last().copied().unwrap_or(f64::NAN),
        loss_curve: losses,
        test_accuracy_curve: accs,
        train_seconds: secs,
        forward_propagations: train_count,
        physical_forward_propagations: physical,
        eval_propagations: evals,
        model_test_accuracy,
    };
    Ok(FfmTrained { result, phases })
}

/// The measurement shots of the test evaluation after 0-based `epoch` (the in-silico run's
/// model test and [`evaluate_phases`] use the last epoch's, so they see the same noise).
fn evaluation_shots(spec: &FfmSpec, epoch: u64) -> u64 {
    derive_seed(spec.seed, &[0xE7A1, epoch])
}

/// Which system tests trained masks ([`evaluate_phases`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestSystem {
    /// The digital model (what `Ideal` runs test on).
    Model,
    /// The physical bench of `spec.imperfections` (what `InSilico` and `InSitu` runs test on).
    Bench,
}

/// The test accuracy of trained `phases` (one `n × n` row-major mask per layer, radians) on the
/// digital model or on the bench that `spec` describes (geometry, task, test samples,
/// imperfections), with the measurement shots of a run's last evaluation: masks tested on the
/// system their run tested on give that run's `test_accuracy` exactly (tested). Change
/// `spec.imperfections` to deploy them on another bench. Masks of the wrong number or size, or
/// with a non-finite value, are an error.
pub fn evaluate_phases(
    spec: &FfmSpec,
    phases: &[Vec<f32>],
    test_set: &Dataset,
    on: TestSystem,
) -> Result<f64, FfmError> {
    spec.validate()?;
    let nn = spec.grid_n * spec.grid_n;
    if phases.len() != spec.layers {
        return Err(FfmError::InvalidSpec(format!(
            "{} phase masks for a network of {} layers",
            phases.len(),
            spec.layers
        )));
    }
    for (l, p) in phases.iter().enumerate() {
        if p.len() != nn {
            return Err(FfmError::InvalidSpec(format!(
                "phase mask {} has {} pixels; the {2}×{2} grid has {nn}",
                l + 1,
                p.len(),
                spec.grid_n
            )));
        }
        if let Some(i) = p.iter().position(|x| !x.is_finite()) {
            return Err(FfmError::InvalidSpec(format!(
                "phase mask {}, pixel {i} (row {}, column {}) is {}",
                l + 1,
                i / spec.grid_n,
                i % spec.grid_n,
                p[i]
            )));
        }
    }
    let test_task = Task::new(test_set, spec.test_limit, "test")?;
    let setup = Setup::new(spec, &[(&test_task, "test")])?;
    let layers = model_layers(spec)?;
    let shots = evaluation_shots(spec, spec.epochs.saturating_sub(1) as u64);
    Ok(match on {
        TestSystem::Model => evaluate(
            &DigitalChain::new(layers).ok_or_else(|| FfmError::InvalidSpec("empty network".into()))?,
            phases,
            &setup,
            &test_task,
            shots,
        ),
        TestSystem::Bench => evaluate(
            &ImperfectBench::new(&layers, &spec.imperfections)?,
            phases,
            &setup,
            &test_task,
            shots,
        ),
    })
}
