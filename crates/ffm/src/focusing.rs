//! Focusing through a scattering medium with FFM, against particle-swarm optimisation
//! (seed 002 "Focusing through scattering media", Fig. 3; SPEC B4).
//!
//! **The system.** `Y = T S T M X` (SPEC B4): a plane wave `X` over a centred square aperture
//! (`aperture_fraction` of the grid; 1/2 in the paper's numbers, see below), a phase-only
//! modulator `M` (what is learned), free space `T` over `distance`, a thin random phase
//! scatterer `S` (insitu-optics' `RandomPhaseScatterer`, its grain and depth adjustable, drawn
//! from `scatterer_seed`) and free space `T` over the same distance to the camera. The path
//! `P = T S T` is one fixed propagation ([`scattering_path`], a [`ScreenPath`]); it is symmetric (`Pᵀ = T S T`
//! because `T = Tᵀ` and `S` is diagonal), so FFM's error pass is a forward run of the same path
//! (a one-layer [`ffm_gradient`]) — exactly, when both distances are equal.
//!
//! **The target.** A disc of `spot_diameter_px` pixels (paper: 10) centred at `focus` pixels
//! from the centre; the loss is SPEC B3's max-normalised intensity MSE
//! ([`FieldLoss::NormalizedIntensityMse`]) against the binary disc.
//!
//! **Readings** (the paper gives the numbers, not the geometry): the paper's diffraction limit
//! `0.5 λ/NA = 64.5 µm` at 532 nm and 0.194 m gives `NA = 0.00412`, an aperture of
//! `2 · 0.194 m · NA = 1.6 mm` = 200 pixels of 8 µm: half of the paper's 400-pixel grid, so the
//! aperture is half the grid; the distance scales with the grid (`0.194 m · n/400`, as in
//! `FfmSpec::default`), which keeps the NA — so the diffraction limit stays 64.5 µm at any `n`
//! ([`FocusSpec::diffraction_limit`]). Scatterer: grain 1 pixel, depth 1 (phase rms 2π).
//!
//! **The baseline** ([`FocusMethod::Pso`]): global-best particle-swarm optimisation of the mask
//! at the resolution of `segments × segments` macro-pixels (`swarm`: inertia 0.7298, both
//! accelerations 1.49618, positions in radians, velocities clipped to ±π): one forward run per
//! particle and iteration, no gradient.
//!
//! **What it must not do.** The FFM trainer gets a [`PhysicalSystem`] and only runs it; no I/O.

use std::time::Instant;

use insitu_linalg::{derive_seed, rng};
use insitu_optics::{Complex32, FreeSpace, Grid, PropagationMethod, RandomPhaseScatterer};
use insitu_optim::{Adam, StepRule};
use serde::{Deserialize, Serialize};

use crate::gradient::{data_pass, ffm_gradient, FfmWorkspace};
use crate::loss::FieldLoss;
use crate::path::{centred_aperture, ScreenPath};
use crate::swarm::particle_swarm;
use crate::system::{DigitalChain, PhysicalSystem};
use crate::{require_aperture_fraction, require_positive, FfmError};

/// The fixed path `P = T_back · S · T_front` from the modulator to the camera: a
/// [`ScreenPath`] through one screen, the scatterer drawn from `spec.scatterer_seed`.
pub fn scattering_path(spec: &FocusSpec) -> Result<ScreenPath, FfmError> {
    let grid = Grid::new(spec.grid_n, spec.dx)?;
    let method = PropagationMethod::BandLimitedAngularSpectrum;
    let front = FreeSpace::new(grid, spec.wavelength, spec.distance, method, spec.padding)?;
    let back = FreeSpace::new(grid, spec.wavelength, spec.distance_back(), method, spec.padding)?;
    let phase = RandomPhaseScatterer {
        grain: spec.scatterer_grain_px,
        depth: spec.scatterer_depth,
    }
    .phase(spec.grid_n, &mut rng(derive_seed(spec.scatterer_seed, &[0x5CA7])))?;
    let scatterer = phase.iter().map(|&p| Complex32::from_polar(1.0, p)).collect();
    ScreenPath::new(vec![front, back], vec![scatterer])
}

/// How the mask is learned.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FocusMethod {
    /// FFM: Adam on the full-resolution mask with gradients from two forward runs.
    Ffm {
        /// Adam learning rate (radians).
        lr: f32,
    },
    /// Particle-swarm optimisation on `segments × segments` macro-pixels.
    Pso {
        /// Swarm size.
        particles: usize,
        /// Macro-pixels per side (must divide the grid side).
        segments: usize,
    },
}

/// Everything that defines a focusing run (serialisable; part of the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FocusSpec {
    /// Grid side `n`.
    pub grid_n: usize,
    /// Pixel pitch (m).
    pub dx: f64,
    /// Wavelength (m).
    pub wavelength: f64,
    /// Modulator → scatterer distance (m); the scatterer → camera distance equals it unless
    /// `back_distance` is set.
    pub distance: f64,
    /// Scatterer → camera distance (m) when it differs from `distance` (breaks the path's
    /// symmetry: FFM's gradient is then approximate).
    pub back_distance: Option<f64>,
    /// Zero-padding factor of the propagations.
    pub padding: usize,
    /// Side of the illuminated square aperture as a fraction of the grid.
    pub aperture_fraction: f64,
    /// Scatterer grain (correlation length, pixels).
    pub scatterer_grain_px: f64,
    /// Scatterer phase rms in units of 2π.
    pub scatterer_depth: f64,
    /// Which scatterer.
    pub scatterer_seed: u64,
    /// Diameter of the target spot (pixels).
    pub spot_diameter_px: f64,
    /// Position of the spot's centre relative to the grid centre (rows, columns; pixels).
    pub focus: (i64, i64),
    /// Iterations (FFM steps or PSO generations).
    pub iterations: usize,
    /// The method.
    pub method: FocusMethod,
    /// Seed of the swarm (PSO).
    pub seed: u64,
}

impl Default for FocusSpec {
    /// A 128 × 128 grid at the paper's 8 µm and 532 nm, distances `0.194 m · 128/400`, half-grid
    /// aperture (the paper's NA), a 10-pixel spot at the centre, FFM with lr 1 for 100 steps (lr
    /// measured on scatterer 0 at 200 steps: the loss falls from 568 to 21.3, 14.6 and 18.0 with
    /// lr 0.1, 0.3 and 1, within 10 % of its final value after 183, 161 and 65 steps).
    fn default() -> Self {
        Self {
            grid_n: 128,
            dx: 8e-6,
            wavelength: 532e-9,
            distance: 0.194 * 128.0 / 400.0,
            back_distance: None,
            padding: 2,
            aperture_fraction: 0.5,
            scatterer_grain_px: 1.0,
            scatterer_depth: 1.0,
            scatterer_seed: 0,
            spot_diameter_px: 10.0,
            focus: (0, 0),
            iterations: 100,
            method: FocusMethod::Ffm { lr: 1.0 },
            seed: 0,
        }
    }
}

impl FocusSpec {
    /// The scatterer → camera distance.
    pub fn distance_back(&self) -> f64 {
        self.back_distance.unwrap_or(self.distance)
    }

    /// Side of the illuminated aperture in pixels.
    pub fn aperture_px(&self) -> usize {
        ((self.aperture_fraction * self.grid_n as f64).round() as usize).clamp(1, self.grid_n)
    }

    /// The diffraction limit `0.5 λ / NA` (m) with `NA = (aperture / 2) / distance_back`.
    pub fn diffraction_limit(&self) -> f64 {
        let na = self.aperture_px() as f64 * self.dx / 2.0 / self.distance_back();
        0.5 * self.wavelength / na
    }

    fn validate(&self) -> Result<(), FfmError> {
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        if self.grid_n < 8 {
            return bad(format!("grid_n must be ≥ 8, got {}", self.grid_n));
        }
        require_positive(&[
            ("dx", self.dx),
            ("wavelength", self.wavelength),
            ("distance", self.distance),
            ("back_distance", self.distance_back()),
            ("spot_diameter_px", self.spot_diameter_px),
        ])?;
        require_aperture_fraction(self.aperture_fraction)?;
        if !(self.scatterer_grain_px.is_finite() && self.scatterer_grain_px >= 0.0) {
            return bad(format!(
                "scatterer_grain_px must be ≥ 0, got {}",
                self.scatterer_grain_px
            ));
        }
        if !self.scatterer_depth.is_finite() {
            return bad(format!("scatterer_depth must be finite, got {}", self.scatterer_depth));
        }
        let half = self.grid_n as i64 / 2;
        let r = (self.spot_diameter_px / 2.0).ceil() as i64;
        if self.focus.0.abs() + r >= half || self.focus.1.abs() + r >= half {
            return bad(format!(
                "the spot at {:?} with diameter {} px does not fit in the {}-pixel grid",
                self.focus, self.spot_diameter_px, self.grid_n
            ));
        }
        match self.method {
            FocusMethod::Ffm { lr } if !(lr.is_finite() && lr > 0.0) => bad(format!("lr must be > 0, got {lr}")),
            FocusMethod::Pso { particles, .. } if particles < 2 => {
                bad(format!("PSO needs ≥ 2 particles, got {particles}"))
            }
            FocusMethod::Pso { segments, .. } if segments == 0 || !self.grid_n.is_multiple_of(segments) => bad(
                format!("PSO segments ({segments}) must divide the grid side ({})", self.grid_n),
            ),
            _ => Ok(()),
        }
    }

    /// The input field: 1 inside the centred square aperture, 0 outside.
    pub fn input(&self) -> Vec<Complex32> {
        centred_aperture(self.grid_n, self.aperture_px())
    }

    /// The binary target: 1 inside the spot's disc (pixel centres within `d/2` of its centre).
    pub fn target(&self) -> Vec<f32> {
        let n = self.grid_n as i64;
        let (cr, cc) = (n / 2 + self.focus.0, n / 2 + self.focus.1);
        let r2 = (self.spot_diameter_px / 2.0).powi(2);
        (0..n * n)
            .map(|k| {
                let (dr, dc) = ((k / n - cr) as f64, (k % n - cc) as f64);
                if dr * dr + dc * dc <= r2 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// The focus's quality (seed 002 Fig. 3: FWHM and PSNR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FocusQuality {
    /// Full width at half maximum through the brightest pixel, along the rows and the columns
    /// (m, linear interpolation at half maximum).
    pub fwhm: [f64; 2],
    /// `10 log10(1 / mean((I/max I − t)²))` over the whole camera (dB).
    pub psnr_db: f64,
    /// Mean intensity inside the target disc over the mean intensity outside it.
    pub spot_to_background: f64,
    /// Distance of the brightest pixel from the target's centre (pixels).
    pub peak_offset_px: f64,
}

/// The quality of the output intensity `intensity` (n × n) against `spec`'s target.
pub fn focus_quality(spec: &FocusSpec, intensity: &[f32]) -> FocusQuality {
    let n = spec.grid_n;
    let target = spec.target();
    let (k, &max) =
        intensity.iter().enumerate().fold(
            (0, &f32::NEG_INFINITY),
            |best, (k, v)| if *v > *best.1 { (k, v) } else { best },
        );
    let (pr, pc) = (k / n, k % n);
    let half = max / 2.0;
    // width of the run of ≥ half maximum through the peak along a line, interpolated
    let width = |at: &dyn Fn(usize) -> f32, peak: usize| -> f64 {
        let edge = |step: isize| -> f64 {
            let mut i = peak as isize;
            loop {
                let j = i + step;
                if j < 0 || j >= n as isize {
                    return (i - peak as isize).unsigned_abs() as f64;
                }
                let (vi, vj) = (at(i as usize), at(j as usize));
                if vj < half {
                    let frac = f64::from((vi - half) / (vi - vj));
                    return (i - peak as isize).unsigned_abs() as f64 + frac;
                }
                i = j;
            }
        };
        edge(-1) + edge(1)
    };
    let along_row = width(&|c| intensity[pr * n + c], pc);
    let along_col = width(&|r| intensity[r * n + pc], pr);
    let mse = if max > 0.0 {
        intensity
            .iter()
            .zip(&target)
            .map(|(&i, &t)| f64::from(i / max - t).powi(2))
            .sum::<f64>()
            / (n * n) as f64
    } else {
        1.0
    };
    let (mut inside, mut ni, mut outside, mut no) = (0.0, 0, 0.0, 0);
    for (&i, &t) in intensity.iter().zip(&target) {
        if t > 0.0 {
            inside += f64::from(i);
            ni += 1;
        } else {
            outside += f64::from(i);
            no += 1;
        }
    }
    let (cr, cc) = (n as i64 / 2 + spec.focus.0, n as i64 / 2 + spec.focus.1);
    FocusQuality {
        fwhm: [along_row * spec.dx, along_col * spec.dx],
        psnr_db: 10.0 * (1.0 / mse.max(1e-300)).log10(),
        spot_to_background: (inside / ni.max(1) as f64) / (outside / no.max(1) as f64).max(1e-300),
        peak_offset_px: (((pr as i64 - cr).pow(2) + (pc as i64 - cc).pow(2)) as f64).sqrt(),
    }
}

/// Outcome of a focusing run (serialisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FocusResult {
    /// The spec.
    pub spec: FocusSpec,
    /// The loss at each iteration's mask (FFM: the data run's; PSO: the swarm's best so far),
    /// then the final mask's.
    pub loss_curve: Vec<f64>,
    /// The first iteration whose loss is within 10 % of the final one (`L ≤ 1.1 L_end`).
    pub iterations_to_converge: usize,
    /// The final focus.
    pub quality: FocusQuality,
    /// The unshaped (flat-mask) output's quality, for comparison.
    pub unshaped: FocusQuality,
    /// `0.5 λ / NA` (m).
    pub diffraction_limit: f64,
    /// Forward runs of the system during learning.
    pub forward_runs: u64,
    /// Wall time (seconds).
    pub train_seconds: f64,
}

/// A finished run with its mask and output intensity.
#[derive(Clone, Debug, PartialEq)]
pub struct FocusTrained {
    /// The result.
    pub result: FocusResult,
    /// The learned phase mask (n × n, radians).
    pub phase: Vec<f32>,
    /// The camera's intensity with it (n × n).
    pub intensity: Vec<f32>,
}

/// One forward run of the one-layer mask `phases[0]`: the camera's intensity into `out`, the
/// loss returned.
fn measure<S: PhysicalSystem<f32>>(
    system: &mut S,
    phases: &[Vec<f32>],
    input: &[Complex32],
    loss: &FieldLoss<'_, f32>,
    ws: &mut FfmWorkspace<f32>,
    grad_scratch: &mut [Complex32],
    out: Option<&mut Vec<f32>>,
) -> f64 {
    data_pass(system, phases, &[], input, ws, 0);
    if let Some(out) = out {
        out.clear();
        out.extend(ws.output().iter().map(|z| z.norm_sqr()));
    }
    loss.eval(ws.output(), grad_scratch)
}

/// Learns a mask that focuses through the scatterer of `spec` by `spec.method`, on the system
/// built from `spec` (the trainer only runs it forward).
pub fn focus(spec: &FocusSpec) -> Result<FocusTrained, FfmError> {
    spec.validate()?;
    focus_on(&mut scattering_system(spec)?, spec)
}

/// The system of `spec`: its modulator and its path (which do not depend on the focus).
fn scattering_system(spec: &FocusSpec) -> Result<DigitalChain<ScreenPath, f32>, FfmError> {
    DigitalChain::new(vec![scattering_path(spec)?]).ok_or_else(|| FfmError::InvalidSpec("no propagation".into()))
}

/// [`focus`] on a system already built from `spec` (validated).
fn focus_on(system: &mut DigitalChain<ScreenPath, f32>, spec: &FocusSpec) -> Result<FocusTrained, FfmError> {
    let n2 = spec.grid_n * spec.grid_n;
    let input = spec.input();
    let target = spec.target();
    let loss = FieldLoss::NormalizedIntensityMse(&target);
    let mut ws = FfmWorkspace::new(1, n2);
    let mut scratch = vec![Complex32::new(0.0, 0.0); n2];
    let mut intensity = Vec::with_capacity(n2);
    let flat = vec![vec![0.0f32; n2]];
    measure(
        system,
        &flat,
        &input,
        &loss,
        &mut ws,
        &mut scratch,
        Some(&mut intensity),
    );
    let unshaped = focus_quality(spec, &intensity);
    let started = Instant::now();
    let (phase, mut loss_curve, forward_runs) = match spec.method {
        FocusMethod::Ffm { lr } => learn_ffm(system, spec, lr, &input, &loss)?,
        FocusMethod::Pso { particles, segments } => {
            let swarm = particle_swarm(spec.grid_n, particles, segments, spec.iterations, spec.seed, |mask| {
                measure(system, mask, &input, &loss, &mut ws, &mut scratch, None)
            });
            (swarm.mask, swarm.curve, swarm.evaluations)
        }
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let phase = vec![phase];
    let end = measure(
        system,
        &phase,
        &input,
        &loss,
        &mut ws,
        &mut scratch,
        Some(&mut intensity),
    );
    loss_curve.push(end);
    let iterations_to_converge = loss_curve
        .iter()
        .position(|&l| l <= 1.1 * end)
        .unwrap_or(loss_curve.len() - 1);
    Ok(FocusTrained {
        result: FocusResult {
            spec: spec.clone(),
            loss_curve,
            iterations_to_converge,
            quality: focus_quality(spec, &intensity),
            unshaped,
            diffraction_limit: spec.diffraction_limit(),
            forward_runs,
            train_seconds,
        },
        phase: phase.into_iter().next().expect("one mask"),
        intensity,
    })
}

/// FFM: Adam on the FFM gradient (a data and an error run per iteration).
fn learn_ffm<S: PhysicalSystem<f32>>(
    system: &mut S,
    spec: &FocusSpec,
    lr: f32,
    input: &[Complex32],
    loss: &FieldLoss<'_, f32>,
) -> Result<(Vec<f32>, Vec<f64>, u64), FfmError> {
    let n2 = spec.grid_n * spec.grid_n;
    let mut phases = vec![vec![0.0f32; n2]];
    let mut grads = vec![vec![0.0f32; n2]];
    let mut ws = FfmWorkspace::new(1, n2);
    let mut adam = Adam::new(n2, lr);
    let mut curve = Vec::with_capacity(spec.iterations + 1);
    for it in 0..spec.iterations {
        grads[0].iter_mut().for_each(|g| *g = 0.0);
        let l = ffm_gradient(system, &phases, &[], input, loss, &mut ws, &mut grads, 2 * it as u64);
        if !l.is_finite() || grads[0].iter().any(|g| !g.is_finite()) {
            return Err(FfmError::InvalidSpec(format!(
                "focusing diverged at iteration {}: loss {l}",
                it + 1
            )));
        }
        curve.push(l);
        adam.step(&mut phases[0], &grads[0]);
    }
    Ok((phases.remove(0), curve, 2 * spec.iterations as u64))
}

/// A scan of an object behind the scatterer with learned foci (seed 002 Fig. 3: "a 20 × 20
/// grid of learned foci scans an object").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Focus positions (rows, columns from the grid centre, pixels), row by row.
    pub positions: Vec<(i64, i64)>,
    /// What a bucket detector behind the object measures with each position's learned mask:
    /// the fraction of the camera-plane light the object transmits, `Σ I·|t|² / Σ I`.
    pub image: Vec<f64>,
    /// The object's mean intensity transmission `|t|²` over each position's target disc.
    pub truth: Vec<f64>,
    /// Pearson correlation of `image` and `truth`.
    pub correlation: f64,
    /// Forward runs of the learning, all positions.
    pub forward_runs: u64,
}

/// Learns one mask per point of a `points × points` grid of foci `pitch_px` apart (centred on
/// the grid centre), each by `spec`'s method, and scans the object whose amplitude
/// transmission `object` (`n × n`, row-major) sits at the camera plane.
pub fn scan_object(spec: &FocusSpec, points: usize, pitch_px: i64, object: &[f32]) -> Result<ScanResult, FfmError> {
    let n = spec.grid_n;
    if object.len() != n * n {
        return Err(FfmError::InvalidSpec(format!(
            "the object has {} values, the {n} × {n} grid needs {}",
            object.len(),
            n * n
        )));
    }
    if points == 0 || pitch_px <= 0 {
        return Err(FfmError::InvalidSpec(format!(
            "a scan needs ≥ 1 point and a pitch ≥ 1 pixel, got {points} points at {pitch_px}"
        )));
    }
    if let Some(bad) = object.iter().find(|v| !v.is_finite()) {
        return Err(FfmError::InvalidSpec(format!(
            "the object holds a non-finite value ({bad})"
        )));
    }
    let transmission: Vec<f64> = object.iter().map(|&t| f64::from(t) * f64::from(t)).collect();
    let half = (points as i64 - 1) * pitch_px / 2;
    // one system for every focus: the path does not depend on where the spot is
    spec.validate()?;
    let mut system = scattering_system(spec)?;
    let mut result = ScanResult {
        positions: Vec::with_capacity(points * points),
        image: Vec::with_capacity(points * points),
        truth: Vec::with_capacity(points * points),
        correlation: 0.0,
        forward_runs: 0,
    };
    for i in 0..points as i64 {
        for j in 0..points as i64 {
            let at = FocusSpec {
                focus: (i * pitch_px - half, j * pitch_px - half),
                ..spec.clone()
            };
            at.validate()?;
            let trained = focus_on(&mut system, &at)?;
            let total: f64 = trained.intensity.iter().map(|&v| f64::from(v)).sum();
            let passed: f64 = trained
                .intensity
                .iter()
                .zip(&transmission)
                .map(|(&v, t)| f64::from(v) * t)
                .sum();
            let disc = at.target();
            let inside = disc.iter().filter(|&&t| t > 0.0).count().max(1);
            let truth = disc
                .iter()
                .zip(&transmission)
                .filter(|(d, _)| **d > 0.0)
                .map(|(_, t)| t)
                .sum::<f64>()
                / inside as f64;
            result.positions.push(at.focus);
            result.image.push(if total > 0.0 { passed / total } else { 0.0 });
            result.truth.push(truth);
            result.forward_runs += trained.result.forward_runs;
        }
    }
    result.correlation = pearson(&result.image, &result.truth);
    Ok(result)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa > 0.0 && sbb > 0.0 {
        sab / (saa * sbb).sqrt()
    } else {
        0.0
    }
}

/// A bar target (a stand-in for the paper's resolution chart): amplitude transmission 1 on
/// vertical bars `bar_px` wide with period `2·bar_px` in the left half of the central square of
/// side `extent_px`, horizontal bars in its right half, 0 elsewhere (`n × n`, row-major).
pub fn bar_target(n: usize, extent_px: usize, bar_px: usize) -> Vec<f32> {
    let bar = bar_px.max(1);
    let lo = n.saturating_sub(extent_px) / 2;
    let hi = (lo + extent_px).min(n);
    let mid = (lo + hi) / 2;
    (0..n * n)
        .map(|k| {
            let (r, c) = (k / n, k % n);
            if r < lo || r >= hi || c < lo || c >= hi {
                return 0.0;
            }
            let along = if c < mid { c - lo } else { r - lo };
            if (along / bar).is_multiple_of(2) {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}
