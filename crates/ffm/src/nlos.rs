//! Imaging and classifying objects hidden around a corner with FFM (seed 002 Fig. 4 and
//! Extended Data Fig. 2; Methods "NLOS scene imaging and processing"; SPEC B4).
//!
//! **The system.** `Y = T R_ref T R_ob T R_ref T M X` (seed 002 Methods): a plane wave `X` over
//! a centred square aperture, the learned phase mask `M`, free space to a diffuse wall
//! (`R_ref`, insitu-optics' `DiffuseReflector`), free space to the hidden object (`R_ob`, its
//! reflectance), back to the same spot of the wall and to the camera, which sits where the
//! modulator is (through a beam splitter). The path `P = T R T O T R T` is a [`ScreenPath`]
//! that reads the same from both ends, so `Pᵀ = P` and FFM's error pass is a forward run of the
//! same scene (a one-layer [`ffm_gradient`]); the trainer never sees the wall.
//!
//! **What the trainer may do** ([`HiddenScene`]): run the system forward and place a hidden
//! object — the training scenes, as the paper moves its letter plate or shows its data set on
//! a second modulator in the hidden region. Nothing else: no adjoint, no wall. The trainers copy
//! the scene once per thread and run scenes (samples) on the copies, summing in order: the bits
//! one bench running them in turn gives.
//!
//! **Imaging** ([`NlosTask::Imaging`], Fig. 4b). One mask must send each cell of a 3 × 3 grid
//! in the hidden plane to its own cell on the camera, for all nine single-cell scenes at once
//! (the paper's "project all the grids in the object to their target positions
//! simultaneously"); the loss is SPEC B3's max-normalised intensity MSE against the binary image
//! of the cell, summed over the nine scenes ([`ImagingLoss::CellFraction`]: the detector-fraction
//! MSE over the nine cells instead). Tested on the letters 'T', 'H' and 'U' (several cells
//! reflecting at once) by the camera read at the cells ([`LetterImage`]): the SSIM ([`ssim`]) of
//! that read-out against the letter, the contrast between the dimmest reflecting and the
//! brightest dark cell, and how many of the nine cells a half-maximum threshold reads right.
//! Baselines: the flat mask ("Raw") and particle-swarm optimisation (`swarm`).
//!
//! **Classification** ([`NlosTask::Classification`], Fig. 4c). Hidden phase objects (MNIST
//! digits, pixel values mapped to phase 0…π) are classified all-optically: the mask sends each
//! class's light to its own detector square, FFM-trained with Adam on mini-batches (SPEC B3's
//! loss against the class's square). Under photon-limited detection (sCMOS and CMOS of the
//! Methods: shot noise, read noise, quantum efficiency; `L` photons per camera pixel on
//! average) the prediction is the square with the most detected light. Baseline: an electronic
//! classifier (softmax regression on the camera image read in `ann_bins × ann_bins` bins) of
//! the unshaped (flat-mask) camera image, trained on noise-free images ("ANN") or on images
//! with the test's noise ("ANN-t"). The turning point is the photon level above which a curve
//! stays at or above one point below the lower of FFM's and the ANN's noise-free accuracies
//! (the paper's 94.5 %, "about 1 % below the best").
//!
//! **While the wall turns** ([`NlosTask::Drift`], Extended Data Fig. 4b; [`drift`]): the same
//! classification learned online by FFM and by the electronic classifier while the experiment
//! turns the wall ([`TurningWall`]) between iterations.
//!
//! **Imaging hidden phase digits** ([`NlosTask::PhaseImaging`], Extended Data Fig. 4a;
//! [`phase_imaging`]): one mask, learned on a few digits, must turn each hidden phase digit into
//! its binarised intensity image on the camera; read at the camera's SNR against an electronic
//! reconstruction of the flat-mask camera ([`RidgeReconstruction`]).
//!
//! **Readings** (the paper gives the distances, not the geometry): modulator → wall
//! `0.154 m·n/400`, wall → object `0.04 m·n/400` (Methods: objects 0.04 m from the reflector,
//! 0.194 m from the modulator; scaled with the grid as in [`crate::focusing`], which keeps the
//! numerical aperture); the whole modulator illuminated; a wall of amplitude reflectivity 1, height rms
//! `λ` and grain 1 pixel (fully diffuse); the letters' cells and the camera's cells coincide in
//! position; a hidden object reflects (amplitude 1) only inside its extent (a letter's cells, a
//! digit's square), phase `π·v` for a digit pixel of value `v ∈ [0, 1]`; the electronic
//! classifier of Supplementary Note 7 (not available) is softmax regression on binned camera
//! images. SSIM is Wang et al.'s with 7 × 7 windows on images scaled to [0, 1].
//!
//! **What it must not do.** The trainers get a [`HiddenScene`] and only run it; no I/O.

use std::time::Instant;

pub mod drift;
pub mod phase_imaging;
pub use drift::{classify_while_the_wall_turns, DriftOutcome, DriftTask};
pub use phase_imaging::{
    image_hidden_phase_objects, with_camera_noise, PhaseImagingOutcome, PhaseImagingTask, RidgeReconstruction,
    SsimCurves,
};

use insitu_data::{epoch_permutation, Dataset};
use insitu_linalg::{derive_seed, rng};
use insitu_optics::{
    correlated_noise, intensity, rotate_periodic, Complex32, DetectorRegions, DiffuseReflector, FreeSpace, Grid,
    PhotonDetector, PropagationMethod,
};
use insitu_optim::{Adam, StepRule};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bench::CountingSystem;
use crate::classifier::{embed_resized, resize_coordinates};
use crate::gradient::{data_pass, ffm_gradient, FfmWorkspace};
use crate::loss::FieldLoss;
use crate::path::{centred_aperture, ScreenPath};
use crate::swarm::particle_swarm;
use crate::system::{DigitalChain, PhysicalSystem};
use crate::{require_aperture_fraction, require_positive, FfmError};

/// The scene around the corner (serialisable; part of a spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NlosScene {
    /// Grid side `n`.
    pub grid_n: usize,
    /// Pixel pitch (m).
    pub dx: f64,
    /// Wavelength (m).
    pub wavelength: f64,
    /// Modulator → wall distance (m); the wall → camera distance is the same.
    pub wall_distance: f64,
    /// Wall → hidden object distance (m).
    pub object_distance: f64,
    /// Zero-padding factor of the propagations.
    pub padding: usize,
    /// Side of the illuminated square aperture as a fraction of the grid.
    pub aperture_fraction: f64,
    /// The wall's amplitude reflectivity.
    pub wall_reflectivity: f32,
    /// The wall's surface height rms, in wavelengths.
    pub wall_roughness: f64,
    /// The wall's surface correlation length (pixels).
    pub wall_grain_px: f64,
    /// Which wall.
    pub wall_seed: u64,
}

impl Default for NlosScene {
    /// [`NlosScene::at_grid`]`(128)`.
    fn default() -> Self {
        Self::at_grid(128)
    }
}

impl NlosScene {
    /// The paper's scene (8 µm pixels, 532 nm) on an `n × n` grid, distances scaled by `n/400`.
    pub fn at_grid(n: usize) -> Self {
        let scale = n as f64 / 400.0;
        Self {
            grid_n: n,
            dx: 8e-6,
            wavelength: 532e-9,
            wall_distance: 0.154 * scale,
            object_distance: 0.04 * scale,
            padding: 2,
            aperture_fraction: 1.0,
            wall_reflectivity: 1.0,
            wall_roughness: 1.0,
            wall_grain_px: 1.0,
            wall_seed: 0,
        }
    }

    fn validate(&self) -> Result<(), FfmError> {
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        if self.grid_n < 16 {
            return bad(format!("grid_n must be ≥ 16, got {}", self.grid_n));
        }
        require_positive(&[
            ("dx", self.dx),
            ("wavelength", self.wavelength),
            ("wall_distance", self.wall_distance),
            ("object_distance", self.object_distance),
        ])?;
        require_aperture_fraction(self.aperture_fraction)?;
        if !(self.wall_roughness.is_finite() && self.wall_roughness >= 0.0) {
            return bad(format!("wall_roughness must be ≥ 0, got {}", self.wall_roughness));
        }
        Ok(())
    }

    /// Side of the illuminated aperture in pixels.
    pub fn aperture_px(&self) -> usize {
        ((self.aperture_fraction * self.grid_n as f64).round() as usize).clamp(1, self.grid_n)
    }

    /// The illumination `X`.
    pub fn input(&self) -> Vec<Complex32> {
        centred_aperture(self.grid_n, self.aperture_px())
    }

    /// The wall's surface: heights in units of its rms (`n × n`, row-major), drawn from
    /// `wall_seed`.
    pub fn wall_heights(&self) -> Result<Vec<f64>, FfmError> {
        Ok(correlated_noise(
            self.grid_n,
            self.wall_grain_px,
            &mut rng(derive_seed(self.wall_seed, &[0x0005_7A11])),
        )?)
    }

    /// The wall's reflection for the surface `unit_heights` ([`NlosScene::wall_heights`], or
    /// those turned: [`TurningWall`]).
    pub fn wall_reflection(&self, unit_heights: &[f64]) -> Result<Vec<Complex32>, FfmError> {
        Ok(DiffuseReflector {
            reflectivity: self.wall_reflectivity,
            height_rms: self.wall_roughness * self.wavelength,
            correlation_length: self.wall_grain_px,
        }
        .reflection_of(unit_heights, self.wavelength)?)
    }

    /// The path `T_w R T_o O T_o R T_w` with nothing hidden (`O = 0`; screens: wall, object,
    /// wall).
    pub fn path(&self) -> Result<ScreenPath, FfmError> {
        self.validate()?;
        let grid = Grid::new(self.grid_n, self.dx)?;
        let method = PropagationMethod::BandLimitedAngularSpectrum;
        let to_wall = FreeSpace::new(grid, self.wavelength, self.wall_distance, method, self.padding)?;
        let to_object = FreeSpace::new(grid, self.wavelength, self.object_distance, method, self.padding)?;
        let wall = self.wall_reflection(&self.wall_heights()?)?;
        let nothing = vec![Complex32::new(0.0, 0.0); grid.len()];
        ScreenPath::new(
            vec![to_wall.clone(), to_object.clone(), to_object, to_wall],
            vec![wall.clone(), nothing, wall],
        )
    }
}

/// What a trainer may do with a scene around a corner: run it forward (a [`PhysicalSystem`] of
/// one layer) and place a hidden object in it.
pub trait HiddenScene: PhysicalSystem<f32> {
    /// Places the hidden object of reflectance `reflectance` (`n × n`, row-major).
    ///
    /// # Panics
    /// On a reflectance of the wrong length (a programming error of the caller).
    fn place_object(&mut self, reflectance: &[Complex32]);
}

impl<S: HiddenScene + ?Sized> HiddenScene for &mut S {
    fn place_object(&mut self, reflectance: &[Complex32]) {
        (**self).place_object(reflectance);
    }
}

impl<S: HiddenScene> HiddenScene for CountingSystem<S> {
    fn place_object(&mut self, reflectance: &[Complex32]) {
        self.inner_mut().place_object(reflectance);
    }
}

/// The simulated scene: the digital model of [`NlosScene::path`] behind [`HiddenScene`].
#[derive(Clone, Debug)]
pub struct NlosBench {
    chain: DigitalChain<ScreenPath, f32>,
    scene: NlosScene,
    /// The wall's surface as drawn (turned copies of it replace the wall's screens).
    wall_heights: Vec<f64>,
}

impl NlosBench {
    /// The bench of `scene`, nothing hidden yet.
    pub fn new(scene: &NlosScene) -> Result<Self, FfmError> {
        let chain = DigitalChain::new(vec![scene.path()?]).ok_or_else(|| FfmError::InvalidSpec("no path".into()))?;
        Ok(Self {
            chain,
            scene: scene.clone(),
            wall_heights: scene.wall_heights()?,
        })
    }

    /// The digital model (for the reverse-mode baseline in tests, never for a trainer).
    pub fn digital_model(&mut self) -> &mut DigitalChain<ScreenPath, f32> {
        &mut self.chain
    }
}

impl PhysicalSystem<f32> for NlosBench {
    fn num_layers(&self) -> usize {
        1
    }
    fn field_len(&self) -> usize {
        self.chain.field_len()
    }
    fn run(&mut self, modulator: Option<(usize, &[f32])>, propagation: usize, field: &mut [Complex32], shot: u64) {
        self.chain.run(modulator, propagation, field, shot);
    }
}

impl HiddenScene for NlosBench {
    fn place_object(&mut self, reflectance: &[Complex32]) {
        self.chain.propagations_mut()[0]
            .set_screen(1, reflectance)
            .expect("a hidden object of n × n values");
    }
}

/// A scene whose wall turns about its centre (seed 002 Extended Data Fig. 4b, Supplementary
/// Fig. 14: the scattering phase rotated between iterations). What the *world* does between a
/// learner's iterations, not something a learner may call: the experiment
/// ([`drift::classify_while_the_wall_turns`]) turns the wall, the learners only run the scene.
pub trait TurningWall {
    /// Sets the wall to its drawn surface turned by `degrees` ([`insitu_optics::rotate_periodic`]).
    fn turn_wall_to(&mut self, degrees: f64) -> Result<(), FfmError>;
}

impl TurningWall for NlosBench {
    fn turn_wall_to(&mut self, degrees: f64) -> Result<(), FfmError> {
        let heights = rotate_periodic(&self.wall_heights, self.scene.grid_n, degrees);
        let wall = self.scene.wall_reflection(&heights)?;
        let path = &mut self.chain.propagations_mut()[0];
        // the light meets the wall twice, on the way in and on the way out
        path.set_screen(0, &wall)?;
        path.set_screen(2, &wall)
    }
}

impl<S: TurningWall> TurningWall for CountingSystem<S> {
    fn turn_wall_to(&mut self, degrees: f64) -> Result<(), FfmError> {
        self.inner_mut().turn_wall_to(degrees)
    }
}

/// How the imaging mask is found.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NlosMethod {
    /// FFM: Adam on the full-resolution mask, gradients from two forward runs per scene.
    Ffm {
        /// Adam learning rate (radians).
        lr: f32,
    },
    /// Particle-swarm optimisation on `segments × segments` macro-pixels (one run per scene,
    /// particle and iteration).
    Pso {
        /// Swarm size.
        particles: usize,
        /// Macro-pixels per side (must divide the grid side).
        segments: usize,
    },
    /// No learning: the flat mask (the paper's "Raw").
    Flat,
}

/// What the imaging mask is trained against, per single-cell scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImagingLoss {
    /// The paper's: SPEC B3's max-normalised intensity MSE against the binary image of the
    /// cell, over the whole camera ([`FieldLoss::NormalizedIntensityMse`]).
    Image,
    /// The detector-fraction MSE over the nine camera cells
    /// ([`FieldLoss::RegionFractionMse`]): light sent into another cell costs, light outside
    /// the grid does not, and the cells' brightness is free.
    CellFraction,
}

/// The imaging task (Fig. 4b).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagingTask {
    /// Side of a grid cell, in the hidden plane and on the camera (pixels).
    pub cell_px: usize,
    /// The training loss.
    pub loss: ImagingLoss,
    /// How the mask is found.
    pub method: NlosMethod,
    /// Iterations (FFM steps over all nine scenes, or PSO generations).
    pub iterations: usize,
}

impl Default for ImagingTask {
    /// [`ImagingTask::at_grid`]`(128)`.
    fn default() -> Self {
        Self::at_grid(128)
    }
}

impl ImagingTask {
    /// Cells of `n/8` pixels, the paper's loss, FFM with lr 0.1 for 300 steps (measured at
    /// n = 128: every letter read right at half the brightest cell, mean contrast 1.9–2.0
    /// over three walls; docs/ffm.md §8).
    pub fn at_grid(n: usize) -> Self {
        Self {
            cell_px: n / 8,
            loss: ImagingLoss::Image,
            method: NlosMethod::Ffm { lr: 0.1 },
            iterations: 300,
        }
    }
}

/// The classification task (Fig. 4c).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassificationTask {
    /// The data set's classes to tell apart (the paper: 0 and 7), in detector order.
    pub classes: Vec<u32>,
    /// Training samples (the first of those classes in the training split; paper 2,000).
    pub train_samples: usize,
    /// Test samples (the first of those classes in the test split; paper 200).
    pub test_samples: usize,
    /// Side of the hidden digit's square (pixels; the 28 × 28 image resized bilinearly).
    pub object_px: usize,
    /// Side of each class's detector square (pixels); the squares sit on the centre row, one
    /// side apart.
    pub region_px: usize,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam learning rate (radians).
    pub lr: f32,
    /// Mean photons per camera pixel at which the test is repeated, ascending.
    pub photons_per_pixel: Vec<f64>,
    /// The electronic baseline reads the camera in `ann_bins × ann_bins` bins.
    pub ann_bins: usize,
}

impl Default for ClassificationTask {
    /// [`ClassificationTask::at_grid`]`(128)`.
    fn default() -> Self {
        Self::at_grid(128)
    }
}

impl ClassificationTask {
    /// Digits 0 and 7, 2,000 / 200 samples (the paper's), a digit of `n/4` pixels, detectors
    /// of `n/12` pixels, 5 epochs of 20, lr 0.05, 10⁻³…10² photons per pixel, 16 × 16 bins
    /// (measured at n = 128: noise-free FFM 98.0 %; docs/ffm.md §8).
    pub fn at_grid(n: usize) -> Self {
        Self {
            classes: vec![0, 7],
            train_samples: 2000,
            test_samples: 200,
            object_px: n / 4,
            region_px: (n / 12).max(2),
            epochs: 5,
            batch: 20,
            lr: 0.05,
            photons_per_pixel: vec![0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
            ann_bins: 16,
        }
    }
}

/// Which task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NlosTask {
    /// Fig. 4b: parallel imaging of hidden letters.
    Imaging(ImagingTask),
    /// Fig. 4c: all-optical classification of hidden phase objects under photon-limited
    /// detection.
    Classification(ClassificationTask),
    /// Extended Data Fig. 4b: the same classification learned while the wall turns.
    Drift(DriftTask),
    /// Extended Data Fig. 4a: hidden phase digits imaged as intensity images on the camera.
    PhaseImaging(PhaseImagingTask),
}

impl NlosTask {
    /// Whether the task reads a data set (the hidden digits); imaging the letters does not.
    pub fn needs_data(&self) -> bool {
        !matches!(self, NlosTask::Imaging(_))
    }
}

/// Everything that defines a run around the corner (serialisable; part of the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NlosSpec {
    /// The scene.
    pub scene: NlosScene,
    /// The task.
    pub task: NlosTask,
    /// Seed of the swarm, the mini-batch order and the detection noise.
    pub seed: u64,
}

impl Default for NlosSpec {
    /// The default scene and imaging task.
    fn default() -> Self {
        Self {
            scene: NlosScene::default(),
            task: NlosTask::Imaging(ImagingTask::default()),
            seed: 0,
        }
    }
}

/// The two cameras of the Methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NlosSensor {
    /// Andor Zyla 4.2: QE 0.82, 0.9 e⁻ read noise ([`PhotonDetector::zyla_scmos`]).
    Scmos,
    /// FLIR BFS-U3-89S6M: QE 0.6399, 2.47 e⁻ ([`PhotonDetector::ffm_cmos`]).
    Cmos,
}

impl std::fmt::Display for NlosSensor {
    /// `sCMOS` or `CMOS`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NlosSensor::Scmos => "sCMOS",
            NlosSensor::Cmos => "CMOS",
        })
    }
}

impl NlosSensor {
    /// Both, in the order results list them.
    pub const ALL: [NlosSensor; 2] = [NlosSensor::Scmos, NlosSensor::Cmos];

    /// The sensor at `photons_per_unit` photons per unit simulated intensity.
    pub fn detector(self, photons_per_unit: f64) -> PhotonDetector {
        match self {
            NlosSensor::Scmos => PhotonDetector::zyla_scmos(photons_per_unit),
            NlosSensor::Cmos => PhotonDetector::ffm_cmos(photons_per_unit),
        }
    }
}

/// One hidden letter seen through the learned scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LetterImage {
    /// The letter.
    pub letter: char,
    /// Each camera cell's summed intensity over the brightest cell's, row by row (what a
    /// camera binned to the grid reads).
    pub cell_levels: Vec<f64>,
    /// Mean SSIM of that read-out (each cell's pixels set to its level) against the letter's
    /// binary image, over the 3 × 3 grid.
    pub ssim: f64,
    /// Mean SSIM of the camera image itself (scaled by its maximum) against the letter's
    /// binary image, over the grid and a half-cell margin.
    pub pixel_ssim: f64,
    /// The dimmest reflecting cell's level over the brightest dark cell's: above 1, one
    /// threshold reads the letter.
    pub contrast: f64,
    /// Cells (of 9) on the right side of half the brightest cell's level.
    pub cells_correct: usize,
}

/// Outcome of an imaging run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagingOutcome {
    /// The mean loss over the nine scenes at each iteration's mask (FFM: the data runs'; PSO:
    /// the swarm's best so far), then the final mask's.
    pub loss_curve: Vec<f64>,
    /// The letters 'T', 'H', 'U'.
    pub letters: Vec<LetterImage>,
    /// Their mean SSIM.
    pub mean_ssim: f64,
}

/// Accuracy against the light level for one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotonCurve {
    /// The sensor.
    pub sensor: NlosSensor,
    /// FFM's test accuracy at each level of the task's `photons_per_pixel`.
    pub ffm: Vec<f64>,
    /// The electronic classifier trained on noise-free images ("ANN").
    pub ann: Vec<f64>,
    /// The electronic classifier trained on images with the level's noise ("ANN-t").
    pub ann_noise_trained: Vec<f64>,
    /// Photons per pixel above which each curve stays at or above the turning accuracy
    /// (interpolated log-linearly; `None`: never).
    pub ffm_turning_photons: Option<f64>,
    /// The same for "ANN".
    pub ann_turning_photons: Option<f64>,
    /// The same for "ANN-t".
    pub ann_noise_trained_turning_photons: Option<f64>,
}

/// Outcome of a classification run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationOutcome {
    /// Mean training loss of each epoch.
    pub loss_curve: Vec<f64>,
    /// FFM's noise-free test accuracy.
    pub ffm_accuracy: f64,
    /// The flat mask's noise-free accuracy with the detector squares (no learning).
    pub flat_accuracy: f64,
    /// The electronic classifier's noise-free test accuracy.
    pub ann_accuracy: f64,
    /// One point below the lower of FFM's and the electronic classifier's noise-free accuracies:
    /// where the turning points are read (the paper: 94.5 %, "about 1 % below the best").
    pub turning_accuracy: f64,
    /// Accuracy against photons per pixel, per sensor.
    pub curves: Vec<PhotonCurve>,
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NlosOutcome {
    /// Fig. 4b.
    Imaging(ImagingOutcome),
    /// Fig. 4c.
    Classification(ClassificationOutcome),
    /// Extended Data Fig. 4b.
    Drift(DriftOutcome),
    /// Extended Data Fig. 4a.
    PhaseImaging(PhaseImagingOutcome),
}

/// Outcome of a run (serialisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NlosResult {
    /// The spec.
    pub spec: NlosSpec,
    /// What it produced.
    pub outcome: NlosOutcome,
    /// Forward runs of the scene during learning.
    pub forward_runs: u64,
    /// Wall time of the learning (seconds).
    pub train_seconds: f64,
}

/// A finished run with its mask.
#[derive(Clone, Debug, PartialEq)]
pub struct NlosTrained {
    /// The result.
    pub result: NlosResult,
    /// The learned phase mask (n × n, radians).
    pub phase: Vec<f32>,
    /// Imaging: the camera's intensity for 'T', 'H' and 'U' (n × n each); classification: for
    /// the first test sample of each class; phase imaging: for the learned digits, then the
    /// unseen ones; drift: none.
    pub images: Vec<Vec<f32>>,
}

/// Runs `spec` on its simulated scene: imaging the letters needs no data; the hidden digits
/// (classification, drift, phase imaging) read `data` (train, test) of a task whose labels
/// include their classes.
pub fn run_nlos(spec: &NlosSpec, data: Option<(&Dataset, &Dataset)>) -> Result<NlosTrained, FfmError> {
    let bench = NlosBench::new(&spec.scene)?;
    match (&spec.task, data) {
        (NlosTask::Imaging(task), _) => image_hidden_letters(&bench, spec, task),
        (NlosTask::Classification(task), Some((train, test))) => {
            classify_hidden_objects(&bench, spec, task, train, test)
        }
        (NlosTask::Drift(task), Some((train, test))) => classify_while_the_wall_turns(&bench, spec, task, train, test),
        (NlosTask::PhaseImaging(task), Some((train, test))) => {
            image_hidden_phase_objects(&bench, spec, task, train, test)
        }
        (NlosTask::Classification(_) | NlosTask::Drift(_) | NlosTask::PhaseImaging(_), None) => {
            Err(FfmError::InvalidSpec("a task of hidden digits needs a data set".into()))
        }
    }
}

/// The letters of Fig. 4b on the 3 × 3 grid, row by row (1: the cell reflects).
pub const LETTERS: [(char, [u8; 9]); 3] = [
    ('T', [1, 1, 1, 0, 1, 0, 0, 1, 0]),
    ('H', [1, 0, 1, 1, 1, 1, 1, 0, 1]),
    ('U', [1, 0, 1, 1, 0, 1, 1, 1, 1]),
];

/// The 3 × 3 grid of `cell` pixel cells centred on an `n × n` plane (the same in the hidden
/// plane and on the camera).
pub fn letter_cells(n: usize, cell: usize) -> Result<DetectorRegions, FfmError> {
    let half = 3 * cell / 2;
    if cell == 0 || 3 * cell + 2 > n {
        return Err(FfmError::InvalidSpec(format!(
            "a 3 × 3 grid of {cell}-pixel cells does not fit in {n} × {n}"
        )));
    }
    let lo = n / 2 - half;
    let origins = (0..9).map(|k| (lo + (k / 3) * cell, lo + (k % 3) * cell)).collect();
    Ok(DetectorRegions::new(n, cell, origins)?)
}

/// The reflectance (or the camera's binary image) of the cells set in `cells`.
fn cells_image(regions: &DetectorRegions, n: usize, cells: &[u8; 9]) -> Vec<f32> {
    let mut out = vec![0.0f32; n * n];
    let mut one = vec![0.0f32; out.len()];
    for (k, &on) in cells.iter().enumerate() {
        if on != 0 {
            regions.target_image(k, &mut one).expect("a cell of the grid");
            for (o, v) in out.iter_mut().zip(&one) {
                *o += v;
            }
        }
    }
    out
}

fn real_field(values: &[f32]) -> Vec<Complex32> {
    values.iter().map(|&v| Complex32::new(v, 0.0)).collect()
}

fn intensity_of(field: &[Complex32]) -> Vec<f32> {
    let mut out = vec![0.0; field.len()];
    intensity(field, &mut out);
    out
}

fn diverged(what: &str, step: usize, loss: f64, grads: &[f32]) -> Result<(), FfmError> {
    if loss.is_finite() && grads.iter().all(|g| g.is_finite()) {
        Ok(())
    } else {
        Err(FfmError::InvalidSpec(format!(
            "{what} diverged at step {step}: loss {loss}"
        )))
    }
}

/// The grid side of `scene` (validated), if `bench` is a one-layer system of its size.
fn scene_side<S: HiddenScene>(bench: &S, scene: &NlosScene) -> Result<usize, FfmError> {
    scene.validate()?;
    let n = scene.grid_n;
    if bench.field_len() != n * n || bench.num_layers() != 1 {
        return Err(FfmError::InvalidSpec(format!(
            "the scene has {} layers of {} values, the spec one of {}",
            bench.num_layers(),
            bench.field_len(),
            n * n
        )));
    }
    Ok(n)
}

/// Fig. 4b on copies of `bench` (one per rayon thread; the result does not depend on their
/// number): learns one mask for the nine single-cell scenes by `task.method`, then images the
/// letters.
pub fn image_hidden_letters<S: HiddenScene + Clone + Send>(
    bench: &S,
    spec: &NlosSpec,
    task: &ImagingTask,
) -> Result<NlosTrained, FfmError> {
    let n = scene_side(bench, &spec.scene)?;
    let n2 = n * n;
    let cells = letter_cells(n, task.cell_px)?;
    match task.method {
        NlosMethod::Ffm { lr } if !(lr.is_finite() && lr > 0.0) => {
            return Err(FfmError::InvalidSpec(format!("lr must be > 0, got {lr}")))
        }
        NlosMethod::Pso { particles, .. } if particles < 2 => {
            return Err(FfmError::InvalidSpec(format!(
                "PSO needs ≥ 2 particles, got {particles}"
            )))
        }
        NlosMethod::Pso { segments, .. } if segments == 0 || !n.is_multiple_of(segments) => {
            return Err(FfmError::InvalidSpec(format!(
                "PSO segments ({segments}) must divide the grid side ({n})"
            )))
        }
        _ => {}
    }
    let input = spec.scene.input();
    let single: Vec<[u8; 9]> = (0..9)
        .map(|k| {
            let mut c = [0u8; 9];
            c[k] = 1;
            c
        })
        .collect();
    let objects: Vec<Vec<Complex32>> = single.iter().map(|c| real_field(&cells_image(&cells, n, c))).collect();
    let targets: Vec<Vec<f32>> = single.iter().map(|c| cells_image(&cells, n, c)).collect();
    let squares: Vec<(usize, usize, usize)> = cells.origins().iter().map(|&(r, c)| (r, c, task.cell_px)).collect();
    let scene_objective = |k: usize| match task.loss {
        ImagingLoss::Image => FieldLoss::NormalizedIntensityMse(&targets[k]),
        ImagingLoss::CellFraction => FieldLoss::RegionFractionMse {
            n,
            squares: &squares,
            label: k,
        },
    };
    // the nine scenes on copies of the scene, one per thread (as in classification)
    let counted = CountingSystem::new(bench.clone());
    let mut workers = scene_workers(&counted, n2);
    let mut scene_losses = [0.0f64; 9];
    // the mean loss over the nine scenes of a mask, one run per scene
    let mut evaluations = 0u64;
    let mut scene_loss = |workers: &mut [SceneWorker<S>], phases: &[Vec<f32>]| -> f64 {
        evaluations += 1;
        let evaluation = evaluations;
        for_each_scene(workers, &mut scene_losses, |w, k, l| {
            w.bench.place_object(&objects[k]);
            let shot = derive_seed(spec.seed, &[0x0E7A, evaluation, k as u64]);
            data_pass(&mut w.bench, phases, &[], &input, &mut w.ws, shot);
            *l = scene_objective(k).eval(w.ws.output(), &mut w.object);
        });
        scene_losses.iter().fold(0.0, |t, l| t + l) / 9.0
    };
    let started = Instant::now();
    let (phase, mut loss_curve) = match task.method {
        NlosMethod::Ffm { lr } => {
            let mut phases = vec![vec![0.0f32; n2]];
            let mut grad = vec![0.0f32; n2];
            let mut scene_grads: Vec<(Vec<Vec<f32>>, f64)> = (0..9).map(|_| (vec![vec![0.0f32; n2]], 0.0)).collect();
            let mut adam = Adam::new(n2, lr);
            let mut curve = Vec::with_capacity(task.iterations + 1);
            for it in 0..task.iterations {
                let phases_ref: &[Vec<f32>] = &phases;
                for_each_scene(&mut workers, &mut scene_grads, |w, k, (g, l)| {
                    w.bench.place_object(&objects[k]);
                    g[0].fill(0.0);
                    let shot = derive_seed(spec.seed, &[0x0F7A, it as u64, k as u64]);
                    *l = ffm_gradient(
                        &mut w.bench,
                        phases_ref,
                        &[],
                        &input,
                        &scene_objective(k),
                        &mut w.ws,
                        g,
                        shot,
                    );
                });
                // in scene order: the running sum one bench gives, bit for bit
                grad.fill(0.0);
                let mut total = 0.0;
                for (g, l) in &scene_grads {
                    for (a, v) in grad.iter_mut().zip(&g[0]) {
                        *a += v;
                    }
                    total += l;
                }
                diverged("imaging around the corner", it + 1, total, &grad)?;
                curve.push(total / 9.0);
                adam.step(&mut phases[0], &grad);
            }
            (phases.remove(0), curve)
        }
        NlosMethod::Pso { particles, segments } => {
            let swarm = particle_swarm(n, particles, segments, task.iterations, spec.seed, |mask| {
                scene_loss(&mut workers, mask)
            });
            (swarm.mask, swarm.curve)
        }
        NlosMethod::Flat => (vec![0.0f32; n2], Vec::new()),
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let forward_runs = counted.count();
    let phases = vec![phase];
    loss_curve.push(scene_loss(&mut workers, &phases));
    let w = &mut workers[0];
    // the letters
    let mut letters = Vec::with_capacity(LETTERS.len());
    let mut images = Vec::with_capacity(LETTERS.len());
    for (i, (letter, pattern)) in LETTERS.into_iter().enumerate() {
        w.bench.place_object(&real_field(&cells_image(&cells, n, &pattern)));
        let shot = derive_seed(spec.seed, &[0x1E77, i as u64]);
        data_pass(&mut w.bench, &phases, &[], &input, &mut w.ws, shot);
        let image = intensity_of(w.ws.output());
        letters.push(read_letter(letter, &pattern, &image, &cells, n));
        images.push(image);
    }
    let mean_ssim = letters.iter().map(|l| l.ssim).sum::<f64>() / letters.len() as f64;
    Ok(NlosTrained {
        result: NlosResult {
            spec: spec.clone(),
            outcome: NlosOutcome::Imaging(ImagingOutcome {
                loss_curve,
                letters,
                mean_ssim,
            }),
            forward_runs,
            train_seconds,
        },
        phase: phases.into_iter().next().expect("one mask"),
        images,
    })
}

/// A letter's metrics from the camera image `image` (`n × n`).
fn read_letter(letter: char, pattern: &[u8; 9], image: &[f32], cells: &DetectorRegions, n: usize) -> LetterImage {
    let cell = cells.size();
    let (top, left) = cells.origins()[0];
    debug_assert_eq!(top, left, "the grid is centred");
    let crop = |img: &[f32], lo: usize, side: usize| -> Vec<f32> {
        (lo..lo + side)
            .flat_map(|r| img[r * n + lo..r * n + lo + side].iter().copied())
            .collect()
    };
    let mut sums = vec![0.0f32; 9];
    cells.integrate(image, &mut sums);
    let brightest = sums.iter().fold(0.0f32, |m, &v| m.max(v));
    let cell_levels: Vec<f64> = sums
        .iter()
        .map(|&s| if brightest > 0.0 { f64::from(s / brightest) } else { 0.0 })
        .collect();
    let truth_plane = cells_image(cells, n, pattern);
    // the read-out at cell resolution, on the grid
    let mut read_out = vec![0.0f32; n * n];
    let mut one = vec![0.0f32; n * n];
    for (k, &level) in cell_levels.iter().enumerate() {
        cells.target_image(k, &mut one).expect("a cell of the grid");
        for (o, v) in read_out.iter_mut().zip(&one) {
            *o += v * level as f32;
        }
    }
    let side = 3 * cell;
    let ssim_cells = ssim(&crop(&read_out, top, side), &crop(&truth_plane, top, side), side, side);
    // the camera image, grid and half-cell margin
    let lo = top.saturating_sub(cell / 2);
    let wide = (side + 2 * (top - lo)).min(n - lo);
    let shown = crop(image, lo, wide);
    let max = shown.iter().fold(0.0f32, |m, &v| m.max(v));
    let scaled: Vec<f32> = shown.iter().map(|&v| if max > 0.0 { v / max } else { 0.0 }).collect();
    let pixel_ssim = ssim(&scaled, &crop(&truth_plane, lo, wide), wide, wide);
    let levels_where = |reflects: bool| {
        cell_levels
            .iter()
            .zip(pattern)
            .filter(move |(_, &p)| (p != 0) == reflects)
            .map(|(&l, _)| l)
    };
    let dimmest_on = levels_where(true).fold(f64::INFINITY, f64::min);
    let brightest_off = levels_where(false).fold(0.0, f64::max);
    LetterImage {
        letter,
        ssim: ssim_cells,
        pixel_ssim,
        contrast: if brightest_off > 0.0 {
            dimmest_on / brightest_off
        } else {
            f64::INFINITY
        },
        cells_correct: cell_levels
            .iter()
            .zip(pattern)
            .filter(|(&level, &p)| (level >= 0.5) == (p != 0))
            .count(),
        cell_levels,
    }
}

/// Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) of two images
/// (`rows × cols`, row-major, values in [0, 1]): 7 × 7 uniform windows at every position where
/// one fits, sample (co)variances, `C1 = 0.01²`, `C2 = 0.03²` — scikit-image's
/// `structural_similarity(a, b, data_range=1)`. Images smaller than a window give the single
/// whole-image comparison.
pub fn ssim(a: &[f32], b: &[f32], rows: usize, cols: usize) -> f64 {
    assert_eq!(a.len(), rows * cols, "ssim: image a is not rows × cols");
    assert_eq!(b.len(), rows * cols, "ssim: image b is not rows × cols");
    let (c1, c2) = (1e-4, 9e-4);
    let (wr, wc) = (rows.min(7), cols.min(7));
    let count = (wr * wc) as f64;
    let cov_norm = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
    let mut total = 0.0;
    let mut windows = 0usize;
    for r0 in 0..=rows - wr {
        for c0 in 0..=cols - wc {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for r in r0..r0 + wr {
                for c in c0..c0 + wc {
                    let (x, y) = (f64::from(a[r * cols + c]), f64::from(b[r * cols + c]));
                    sa += x;
                    sb += y;
                    saa += x * x;
                    sbb += y * y;
                    sab += x * y;
                }
            }
            let (ma, mb) = (sa / count, sb / count);
            let va = cov_norm * (saa / count - ma * ma);
            let vb = cov_norm * (sbb / count - mb * mb);
            let vab = cov_norm * (sab / count - ma * mb);
            total += (2.0 * ma * mb + c1) * (2.0 * vab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            windows += 1;
        }
    }
    total / windows.max(1) as f64
}

/// The detector squares of `classes` classes: side `size`, on the centre row, one side apart,
/// centred.
pub fn class_regions(n: usize, size: usize, classes: usize) -> Result<DetectorRegions, FfmError> {
    let width = (2 * classes).saturating_sub(1) * size;
    if size == 0 || classes == 0 || width + 2 > n {
        return Err(FfmError::InvalidSpec(format!(
            "{classes} detector squares of {size} pixels, one side apart, do not fit in {n} × {n}"
        )));
    }
    let (row, left) = (n / 2 - size / 2, n / 2 - width / 2);
    let origins = (0..classes).map(|c| (row, left + 2 * c * size)).collect();
    Ok(DetectorRegions::new(n, size, origins)?)
}

/// The electronic baselines' `bins × bins` bins of an `n × n` camera, row by row.
fn camera_bins(n: usize, bins: usize) -> Result<DetectorRegions, FfmError> {
    if bins == 0 || !n.is_multiple_of(bins) {
        return Err(FfmError::InvalidSpec(format!(
            "ann_bins ({bins}) must divide the grid side ({n})"
        )));
    }
    let bin = n / bins;
    Ok(DetectorRegions::new(
        n,
        bin,
        (0..bins * bins).map(|b| ((b / bins) * bin, (b % bins) * bin)).collect(),
    )?)
}

/// The side of the splits' square images (the hidden digits).
fn image_side(train: &Dataset, test: &Dataset) -> Result<usize, FfmError> {
    let side = (train.features() as f64).sqrt() as usize;
    if side * side != train.features() || test.features() != train.features() {
        return Err(FfmError::InvalidSpec(format!(
            "hidden objects need square images; the splits have {} and {} features",
            train.features(),
            test.features()
        )));
    }
    Ok(side)
}

/// The first `count` samples of `data` whose label is one of `classes`: `(column, class
/// index)`.
fn first_of_classes(
    data: &Dataset,
    classes: &[u32],
    count: usize,
    what: &str,
) -> Result<Vec<(usize, usize)>, FfmError> {
    let labels = data
        .labels()
        .ok_or_else(|| FfmError::InvalidSpec(format!("the {what} split has no class labels")))?;
    let picked: Vec<(usize, usize)> = labels
        .iter()
        .enumerate()
        .filter_map(|(j, l)| classes.iter().position(|c| c == l).map(|k| (j, k)))
        .take(count)
        .collect();
    if picked.len() < count {
        return Err(FfmError::InvalidSpec(format!(
            "the {what} split has {} samples of classes {classes:?}, the task asks for {count}",
            picked.len()
        )));
    }
    Ok(picked)
}

/// Writes the hidden phase object of the image in column `j` of `data` (`side × side`, values
/// in [0, 1]) into `object` (`n × n`): reflectance `e^{iπv}` on the centred square of
/// `coordinates.len()` pixels (bilinear resize), 0 outside.
fn phase_object(
    data: &Dataset,
    j: usize,
    side: usize,
    n: usize,
    coordinates: &[(usize, usize, f32)],
    object: &mut [Complex32],
) {
    let image = &data.inputs.as_slice()[j * side * side..(j + 1) * side * side];
    embed_resized(image, side, n, coordinates, object);
    let inner = coordinates.len();
    let off = (n - inner) / 2;
    for r in off..off + inner {
        for z in &mut object[r * n + off..r * n + off + inner] {
            *z = Complex32::from_polar(1.0, std::f32::consts::PI * z.re);
        }
    }
}

/// Softmax regression on standardised features: the electronic baseline of Fig. 4c (our
/// reading of the paper's ANN, Supplementary Note 7), trained by full-batch Adam on the mean
/// cross-entropy plus `l2/2 ‖W‖²` (biases not decayed).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxRegression {
    features: usize,
    classes: usize,
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `classes × (features + 1)`, row-major; the last entry of a row is the bias.
    weights: Vec<f32>,
}

impl SoftmaxRegression {
    /// Fits `samples` rows of `features` values (`x`, row-major) with labels `labels`
    /// (`< classes`): `steps` Adam steps of rate `lr`.
    pub fn fit(x: &[f64], labels: &[usize], features: usize, classes: usize, steps: usize, lr: f32, l2: f64) -> Self {
        let samples = labels.len();
        assert_eq!(
            x.len(),
            samples * features,
            "SoftmaxRegression::fit: x is not samples × features"
        );
        let mut model = Self::untrained(x, features, classes);
        let z = model.standardised(x);
        let mut adam = Adam::new(model.weights.len(), lr);
        let mut grad = vec![0.0f64; model.weights.len()];
        let mut grad32 = vec![0.0f32; model.weights.len()];
        for _ in 0..steps {
            model.loss_and_gradient(&z, labels, l2, &mut grad);
            for (g32, g) in grad32.iter_mut().zip(&grad) {
                *g32 = *g as f32;
            }
            adam.step(&mut model.weights, &grad32);
        }
        model
    }

    /// Zero weights, standardising features with the mean and deviation of the rows of `x`
    /// (`features` values each, row-major).
    pub fn untrained(x: &[f64], features: usize, classes: usize) -> Self {
        let samples = x.len() / features.max(1);
        let mut mean = vec![0.0; features];
        let mut scale = vec![0.0; features];
        for row in x.chunks_exact(features) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / samples as f64;
            }
        }
        for row in x.chunks_exact(features) {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / samples as f64;
            }
        }
        for s in &mut scale {
            *s = if *s > 1e-24 { 1.0 / s.sqrt() } else { 0.0 };
        }
        Self {
            features,
            classes,
            mean,
            scale,
            weights: vec![0.0; classes * (features + 1)],
        }
    }

    /// The rows of `x` standardised (what [`SoftmaxRegression::loss_and_gradient`] takes).
    pub fn standardised(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.features)
            .flat_map(|row| self.standardise(row))
            .collect()
    }

    /// The weights, `classes × (features + 1)` row-major, each row's bias last.
    pub fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.weights
    }

    fn standardise(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) * s)
            .collect()
    }

    fn scores(&self, z: &[f64], out: &mut [f64]) {
        let stride = self.features + 1;
        for (c, o) in out.iter_mut().enumerate() {
            let w = &self.weights[c * stride..(c + 1) * stride];
            *o = f64::from(w[self.features]) + w.iter().zip(z).map(|(&wi, zi)| f64::from(wi) * zi).sum::<f64>();
        }
    }

    /// The mean cross-entropy over the standardised rows `z` plus `l2/2 ‖W‖²`, its gradient
    /// with respect to the weights into `grad`.
    pub fn loss_and_gradient(&self, z: &[f64], labels: &[usize], l2: f64, grad: &mut [f64]) -> f64 {
        let stride = self.features + 1;
        let samples = labels.len() as f64;
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut scores = vec![0.0; self.classes];
        let mut loss = 0.0;
        for (row, &label) in z.chunks_exact(self.features).zip(labels) {
            self.scores(row, &mut scores);
            let top = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
            let norm: f64 = scores.iter().map(|s| (s - top).exp()).sum();
            loss += norm.ln() + top - scores[label];
            for (c, s) in scores.iter().enumerate() {
                let p = (s - top).exp() / norm - if c == label { 1.0 } else { 0.0 };
                let g = &mut grad[c * stride..(c + 1) * stride];
                for (gi, zi) in g.iter_mut().zip(row) {
                    *gi += p * zi / samples;
                }
                g[self.features] += p / samples;
            }
        }
        let mut decay = 0.0;
        for c in 0..self.classes {
            for i in 0..self.features {
                let w = f64::from(self.weights[c * stride + i]);
                decay += 0.5 * l2 * w * w;
                grad[c * stride + i] += l2 * w;
            }
        }
        loss / samples + decay
    }

    /// The predicted class of the (raw) feature row `row`.
    pub fn predict(&self, row: &[f64]) -> usize {
        let mut scores = vec![0.0; self.classes];
        self.scores(&self.standardise(row), &mut scores);
        scores
            .iter()
            .enumerate()
            .fold(0, |best, (c, &s)| if s > scores[best] { c } else { best })
    }

    /// The fraction of rows of `x` predicted as their label.
    pub fn accuracy(&self, x: &[f64], labels: &[usize]) -> f64 {
        let right = x
            .chunks_exact(self.features)
            .zip(labels)
            .filter(|(row, &l)| self.predict(row) == l)
            .count();
        right as f64 / labels.len().max(1) as f64
    }
}

fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (c, &v)| if v > values[best] { c } else { best })
}

/// The smallest light level above which `accuracy` (one value per level of `levels`,
/// ascending) stays ≥ `threshold`, interpolated log-linearly below the first passing level.
pub fn turning_photons(levels: &[f64], accuracy: &[f64], threshold: f64) -> Option<f64> {
    let first = (0..levels.len()).find(|&i| accuracy[i..].iter().all(|&a| a >= threshold))?;
    if first == 0 {
        return Some(levels[0]);
    }
    let (l0, l1) = (levels[first - 1].ln(), levels[first].ln());
    let (a0, a1) = (accuracy[first - 1], accuracy[first]);
    let t = if a1 > a0 {
        ((threshold - a0) / (a1 - a0)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some((l0 + t * (l1 - l0)).exp())
}

/// One thread's copy of the scene and its buffers.
struct SceneWorker<S> {
    bench: CountingSystem<S>,
    ws: FfmWorkspace<f32>,
    object: Vec<Complex32>,
}

impl<S: HiddenScene> SceneWorker<S> {
    /// The camera's intensity with the hidden phase object of column `j` of `data` and `mask`.
    #[allow(clippy::too_many_arguments)]
    fn camera(
        &mut self,
        data: &Dataset,
        j: usize,
        side: usize,
        n: usize,
        coordinates: &[(usize, usize, f32)],
        mask: &[Vec<f32>],
        input: &[Complex32],
        shot: u64,
    ) -> Vec<f32> {
        phase_object(data, j, side, n, coordinates, &mut self.object);
        self.bench.place_object(&self.object);
        data_pass(&mut self.bench, mask, &[], input, &mut self.ws, shot);
        intensity_of(self.ws.output())
    }
}

/// One [`SceneWorker`] per rayon thread, each with a copy of `counted` (sharing its count).
fn scene_workers<S: HiddenScene + Clone>(counted: &CountingSystem<S>, n2: usize) -> Vec<SceneWorker<S>> {
    (0..rayon::current_num_threads().max(1))
        .map(|_| SceneWorker {
            bench: counted.clone(),
            ws: FfmWorkspace::new(1, n2),
            object: vec![Complex32::new(0.0, 0.0); n2],
        })
        .collect()
}

/// `visit(worker, k, &mut out[k])` for every `k` (a scene, a sample), the items split into one
/// contiguous chunk per worker and run in parallel; what an item gets does not depend on which
/// worker runs it.
fn for_each_scene<S: Send, T: Send>(
    workers: &mut [SceneWorker<S>],
    out: &mut [T],
    visit: impl Fn(&mut SceneWorker<S>, usize, &mut T) + Sync,
) {
    let per_worker = out.len().div_ceil(workers.len()).max(1);
    workers
        .par_iter_mut()
        .zip(out.par_chunks_mut(per_worker))
        .enumerate()
        .for_each(|(chunk, (w, items))| {
            for (i, item) in items.iter_mut().enumerate() {
                visit(w, chunk * per_worker + i, item);
            }
        });
}

/// What the camera gave for one sample: summed intensities of the detector squares and of the
/// electronic baseline's bins, and the mean intensity per pixel.
struct Exposure {
    regions: Vec<f64>,
    bins: Vec<f64>,
    mean: f64,
}

fn expose(intensity: &[f32], regions: &DetectorRegions, bins: &DetectorRegions) -> Exposure {
    let mut r = vec![0.0f32; regions.len()];
    let mut b = vec![0.0f32; bins.len()];
    regions.integrate(intensity, &mut r);
    bins.integrate(intensity, &mut b);
    Exposure {
        regions: r.iter().map(|&v| f64::from(v)).collect(),
        bins: b.iter().map(|&v| f64::from(v)).collect(),
        mean: intensity.iter().map(|&v| f64::from(v)).sum::<f64>() / intensity.len() as f64,
    }
}

/// One photon-limited read of summed intensities `sums` (each over `pixels` pixels) at `level`
/// mean photons per camera pixel for an exposure of mean intensity `mean`: intensity estimates
/// over `mean`.
fn read_noisy(
    sensor: NlosSensor,
    level: f64,
    mean: f64,
    sums: &[f64],
    pixels: usize,
    seed: u64,
) -> Result<Vec<f64>, FfmError> {
    let detector = sensor.detector(level / mean.max(1e-300)).binned(pixels);
    let values: Vec<f32> = sums.iter().map(|&v| v as f32).collect();
    let mut dn = vec![0.0f32; values.len()];
    detector.detect(&values, &mut dn, &mut rng(seed))?;
    Ok(dn.iter().map(|&d| f64::from(detector.to_intensity(d)) / mean).collect())
}

/// What a classification of hidden digits (Fig. 4c, Extended Data Fig. 4b) is set up with,
/// every option checked.
struct HiddenDigits {
    /// Grid side.
    n: usize,
    /// Side of the data set's square images.
    side: usize,
    /// One detector square per class.
    regions: DetectorRegions,
    /// The electronic baseline's bins, and their side.
    bins: DetectorRegions,
    bin: usize,
    /// `(column, class index)` of the training and test samples.
    train_idx: Vec<(usize, usize)>,
    test_idx: Vec<(usize, usize)>,
    /// Each class's detector square as a target image.
    targets: Vec<Vec<f32>>,
    /// The resize of an image onto the hidden digit's square.
    coordinates: Vec<(usize, usize, f32)>,
    /// The illumination.
    input: Vec<Complex32>,
}

impl HiddenDigits {
    fn new<S: HiddenScene>(
        bench: &S,
        spec: &NlosSpec,
        task: &ClassificationTask,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<Self, FfmError> {
        let n = scene_side(bench, &spec.scene)?;
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        let k = task.classes.len();
        if k < 2 || (1..k).any(|i| task.classes[..i].contains(&task.classes[i])) {
            return bad(format!(
                "classification needs ≥ 2 distinct classes, got {:?}",
                task.classes
            ));
        }
        if task.train_samples == 0 || task.test_samples == 0 || task.batch == 0 {
            return bad("train_samples, test_samples and batch must be ≥ 1".into());
        }
        if !(task.lr.is_finite() && task.lr > 0.0) {
            return bad(format!("lr must be > 0, got {}", task.lr));
        }
        if task.object_px == 0 || task.object_px > n {
            return bad(format!("object_px must be in 1..={n}, got {}", task.object_px));
        }
        let bins = camera_bins(n, task.ann_bins)?;
        let bin = bins.size();
        let side = image_side(train, test)?;
        let regions = class_regions(n, task.region_px, k)?;
        if let Some(&c) = task
            .classes
            .iter()
            .find(|&&c| c as usize >= train.num_classes().unwrap_or(0))
        {
            return bad(format!(
                "class {c} is not a class of the data set ({} classes)",
                train.num_classes().unwrap_or(0)
            ));
        }
        let train_idx = first_of_classes(train, &task.classes, task.train_samples, "training")?;
        let test_idx = first_of_classes(test, &task.classes, task.test_samples, "test")?;
        for (idx, what) in [(&train_idx, "training"), (&test_idx, "test")] {
            if let Some(c) = (0..k).find(|&c| idx.iter().all(|&(_, class)| class != c)) {
                return bad(format!(
                    "the {what} samples hold no sample of class {}",
                    task.classes[c]
                ));
            }
        }
        let targets: Vec<Vec<f32>> = (0..k).map(|c| regions.mask(c)).collect::<Result<_, _>>()?;
        Ok(Self {
            n,
            side,
            regions,
            bins,
            bin,
            train_idx,
            test_idx,
            targets,
            coordinates: resize_coordinates(side, task.object_px),
            input: spec.scene.input(),
        })
    }
}

impl HiddenDigits {
    /// Places the training sample `row` (an index into `train_idx`) in `w`'s copy of the scene
    /// and gives its loss: SPEC B3's against its class's detector square.
    fn place_training_object<S: HiddenScene>(
        &self,
        w: &mut SceneWorker<S>,
        train: &Dataset,
        row: usize,
    ) -> FieldLoss<'_, f32> {
        let (j, class) = self.train_idx[row];
        phase_object(train, j, self.side, self.n, &self.coordinates, &mut w.object);
        w.bench.place_object(&w.object);
        FieldLoss::NormalizedIntensityMse(&self.targets[class])
    }
}

/// FFM's learner of the class mask (Fig. 4c, Extended Data Fig. 4b): the mask, its Adam and
/// the buffers of one mini-batch.
struct MaskLearner {
    phases: Vec<Vec<f32>>,
    grad: Vec<f32>,
    sample_grads: Vec<(Vec<Vec<f32>>, f64)>,
    adam: Adam,
}

impl MaskLearner {
    fn new(n2: usize, largest_batch: usize, lr: f32) -> Self {
        Self {
            phases: vec![vec![0.0f32; n2]],
            grad: vec![0.0f32; n2],
            sample_grads: (0..largest_batch).map(|_| (vec![vec![0.0f32; n2]], 0.0)).collect(),
            adam: Adam::new(n2, lr),
        }
    }

    /// One Adam step on a mini-batch of `count` scenes lit by `input`: `scene(worker, b)` places the batch's
    /// `b`-th hidden object in the worker's copy of the scene and gives its loss; each scene's
    /// FFM gradient comes from a data and an error run, on the workers' copies, summed in batch
    /// order (the bits one bench running them in turn gives), and averaged; `shot(b)` seeds the
    /// runs of the batch's `b`-th scene. Returns the summed loss; a non-finite loss or gradient
    /// is an error naming `what` and `step`.
    fn step<'t, S: HiddenScene + Send>(
        &mut self,
        workers: &mut [SceneWorker<S>],
        input: &[Complex32],
        count: usize,
        scene: impl Fn(&mut SceneWorker<S>, usize) -> FieldLoss<'t, f32> + Sync,
        shot: impl Fn(usize) -> u64 + Sync,
        what: &str,
        step: usize,
    ) -> Result<f64, FfmError> {
        let phases: &[Vec<f32>] = &self.phases;
        for_each_scene(workers, &mut self.sample_grads[..count], |w, b, (g, l)| {
            let loss = scene(w, b);
            g[0].fill(0.0);
            *l = ffm_gradient(&mut w.bench, phases, &[], input, &loss, &mut w.ws, g, shot(b));
        });
        // in batch order: the running sum one bench gives, bit for bit
        self.grad.fill(0.0);
        let mut total = 0.0;
        for (g, l) in &self.sample_grads[..count] {
            for (a, v) in self.grad.iter_mut().zip(&g[0]) {
                *a += v;
            }
            total += l;
        }
        diverged(what, step, total, &self.grad)?;
        let scale = 1.0 / count as f32;
        self.grad.iter_mut().for_each(|g| *g *= scale);
        self.adam.step(&mut self.phases[0], &self.grad);
        Ok(total)
    }
}

/// Fig. 4c on copies of `bench` (one per rayon thread; the result does not depend on their
/// number): FFM-trains the mask on the hidden phase objects of `train`, then tests on `test`,
/// noise-free and at each light level, against the electronic baseline.
pub fn classify_hidden_objects<S: HiddenScene + Clone + Send>(
    bench: &S,
    spec: &NlosSpec,
    task: &ClassificationTask,
    train: &Dataset,
    test: &Dataset,
) -> Result<NlosTrained, FfmError> {
    let levels = &task.photons_per_pixel;
    if task.epochs == 0 {
        return Err(FfmError::InvalidSpec("epochs must be ≥ 1".into()));
    }
    if levels.iter().any(|l| !(l.is_finite() && *l > 0.0)) || levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err(FfmError::InvalidSpec(format!(
            "photons_per_pixel must be positive and ascending, got {levels:?}"
        )));
    }
    let digits = HiddenDigits::new(bench, spec, task, train, test)?;
    let HiddenDigits {
        n,
        side,
        ref regions,
        ref bins,
        bin,
        ref train_idx,
        ref test_idx,
        ref coordinates,
        ref input,
        ..
    } = digits;
    let n2 = n * n;
    let k = task.classes.len();
    // one copy of the scene and its buffers per thread (an exact shortcut of running the
    // samples one after the other on one bench: a sample's gradient does not depend on which
    // copy runs it); the copies share the run count
    let counted = CountingSystem::new(bench.clone());
    let mut workers = scene_workers(&counted, n2);
    let mut learner = MaskLearner::new(n2, task.batch.min(train_idx.len()), task.lr);
    let mut order = Vec::new();
    let mut loss_curve = Vec::with_capacity(task.epochs);
    let started = Instant::now();
    let mut step = 0usize;
    for epoch in 0..task.epochs {
        epoch_permutation(train_idx.len(), spec.seed, epoch as u64, &mut order);
        let mut epoch_loss = 0.0;
        for batch in order.chunks(task.batch) {
            let shot = |b: usize| derive_seed(spec.seed, &[0x5407, step as u64, batch[b] as u64]);
            let total = learner.step(
                &mut workers,
                input,
                batch.len(),
                |w, b| digits.place_training_object(w, train, batch[b]),
                shot,
                "hidden-object classification",
                step + 1,
            )?;
            step += 1;
            epoch_loss += total;
        }
        loss_curve.push(epoch_loss / train_idx.len() as f64);
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let forward_runs = counted.count();
    // the camera's exposures: the learned mask on the test set, the flat mask on both
    let flat = vec![vec![0.0f32; n2]];
    let mut exposures = |data: &Dataset, idx: &[(usize, usize)], mask: &[Vec<f32>], split: u64| {
        let mut out: Vec<Option<Exposure>> = (0..idx.len()).map(|_| None).collect();
        for_each_scene(&mut workers, &mut out, |w, i, o| {
            let shot = derive_seed(spec.seed, &[0x0E9, split, i as u64]);
            let intensity = w.camera(data, idx[i].0, side, n, coordinates, mask, input, shot);
            *o = Some(expose(&intensity, regions, bins));
        });
        out.into_iter()
            .map(|e| e.expect("every sample exposed"))
            .collect::<Vec<_>>()
    };
    let mut phases = learner.phases;
    let test_ffm = exposures(test, test_idx, &phases, 0);
    let test_flat = exposures(test, test_idx, &flat, 1);
    let train_flat = exposures(train, train_idx, &flat, 2);
    // the first test sample of each class through the learned mask, for the images
    let images: Vec<Vec<f32>> = (0..k)
        .map(|class| {
            test_idx
                .iter()
                .find(|&&(_, c)| c == class)
                .map_or_else(Vec::new, |&(j, _)| {
                    workers[0].camera(
                        test,
                        j,
                        side,
                        n,
                        coordinates,
                        &phases,
                        input,
                        derive_seed(spec.seed, &[0x1A6, class as u64]),
                    )
                })
        })
        .collect();
    let train_labels: Vec<usize> = train_idx.iter().map(|&(_, c)| c).collect();
    let test_labels: Vec<usize> = test_idx.iter().map(|&(_, c)| c).collect();
    let accuracy_of = |predicted: &mut dyn Iterator<Item = usize>| {
        predicted.zip(&test_labels).filter(|(p, l)| p == *l).count() as f64 / test_labels.len() as f64
    };
    let ffm_accuracy = accuracy_of(&mut test_ffm.iter().map(|e| argmax(&e.regions)));
    let flat_accuracy = accuracy_of(&mut test_flat.iter().map(|e| argmax(&e.regions)));
    let relative = |e: &Exposure| -> Vec<f64> { e.bins.iter().map(|b| b / e.mean.max(1e-300)).collect() };
    let (ann_steps, ann_lr, ann_l2) = (300, 0.05, 1e-3);
    let features = bins.len();
    let fit = |x: &[f64]| SoftmaxRegression::fit(x, &train_labels, features, k, ann_steps, ann_lr, ann_l2);
    let clean_train: Vec<f64> = train_flat.iter().flat_map(relative).collect();
    let clean_test: Vec<f64> = test_flat.iter().flat_map(relative).collect();
    let ann = fit(&clean_train);
    let ann_accuracy = ann.accuracy(&clean_test, &test_labels);
    let turning_accuracy = ffm_accuracy.min(ann_accuracy) - 0.01;
    let (region_px, bin_px) = (task.region_px * task.region_px, bin * bin);
    // every (sensor, level) on its own: seeded reads, in parallel, collected in order
    let points: Vec<(usize, usize)> = (0..NlosSensor::ALL.len())
        .flat_map(|s| (0..levels.len()).map(move |l| (s, l)))
        .collect();
    let measured: Vec<[f64; 3]> = points
        .par_iter()
        .map(|&(s, li)| -> Result<[f64; 3], FfmError> {
            let (sensor, level) = (NlosSensor::ALL[s], levels[li]);
            let seed =
                |split: u64, i: usize| derive_seed(spec.seed, &[0x4E_4C05, s as u64, li as u64, split, i as u64]);
            let mut right = 0usize;
            for (i, (e, &l)) in test_ffm.iter().zip(&test_labels).enumerate() {
                right +=
                    usize::from(argmax(&read_noisy(sensor, level, e.mean, &e.regions, region_px, seed(0, i))?) == l);
            }
            let noisy = |exposures: &[Exposure], split: u64| -> Result<Vec<f64>, FfmError> {
                let mut out = Vec::with_capacity(exposures.len() * features);
                for (i, e) in exposures.iter().enumerate() {
                    out.extend(read_noisy(sensor, level, e.mean, &e.bins, bin_px, seed(split, i))?);
                }
                Ok(out)
            };
            let noisy_test = noisy(&test_flat, 1)?;
            let noisy_train = noisy(&train_flat, 2)?;
            Ok([
                right as f64 / test_labels.len() as f64,
                ann.accuracy(&noisy_test, &test_labels),
                fit(&noisy_train).accuracy(&noisy_test, &test_labels),
            ])
        })
        .collect::<Result<_, _>>()?;
    let curves: Vec<PhotonCurve> = NlosSensor::ALL
        .into_iter()
        .zip(measured.chunks(levels.len().max(1)))
        .map(|(sensor, rows)| {
            let column = |c: usize| rows.iter().map(|r| r[c]).collect::<Vec<f64>>();
            let (ffm, ann_curve, ann_t) = (column(0), column(1), column(2));
            PhotonCurve {
                sensor,
                ffm_turning_photons: turning_photons(levels, &ffm, turning_accuracy),
                ann_turning_photons: turning_photons(levels, &ann_curve, turning_accuracy),
                ann_noise_trained_turning_photons: turning_photons(levels, &ann_t, turning_accuracy),
                ffm,
                ann: ann_curve,
                ann_noise_trained: ann_t,
            }
        })
        .collect();
    Ok(NlosTrained {
        result: NlosResult {
            spec: spec.clone(),
            outcome: NlosOutcome::Classification(ClassificationOutcome {
                loss_curve,
                ffm_accuracy,
                flat_accuracy,
                ann_accuracy,
                turning_accuracy,
                curves,
            }),
            forward_runs,
            train_seconds,
        },
        phase: phases.remove(0),
        images,
    })
}
