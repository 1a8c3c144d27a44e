//! A simulated *physical* free-space bench (SPEC B3): the digital model's layers plus the
//! imperfections a real bench has, hidden behind [`PhysicalSystem`]. Every imperfection is a
//! diagonal screen or a symmetric propagation, so the bench stays reciprocal: errors inside the
//! propagations are absorbed exactly by FFM, modulator-plane errors (misregistration, look-up
//! table) only approximately (the trainer forms `u_l` from the commanded phase), while in-silico designs (trained on the ideal model) are deployed on a system
//! they were not trained for. The same imperfections act in data and error passes (it is the
//! same hardware): they live in the object, not in the pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use insitu_linalg::{derive_seed, rng, substream};
use insitu_optics::{apply_complex_mask, DistanceError, FreeSpace, MaskShift, ModulatorResponse, SmoothRandomPhase};
use num_complex::Complex32;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::system::{PatternCache, PhysicalSystem};
use crate::FfmError;

/// Strengths of the bench's imperfections (all zero: the bench equals the digital model). Each
/// layer draws its own instance from the bench seed; the physics is insitu-optics'
/// (`MaskShift`, `DistanceError`, `SmoothRandomPhase`, `ModulatorResponse`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Imperfections {
    /// Largest lateral misregistration of each layer's modulator, in pixels: sub-pixel shifts
    /// `(dx, dy)` drawn uniformly from `[−k, k]²` (`MaskShift`, bilinear).
    pub misalignment_px: f64,
    /// Relative standard deviation of each layer's propagation distance (`z·(1 + δ)`,
    /// `DistanceError`).
    pub distance_error: f64,
    /// RMS (radians) of a smooth random aberration phase screen half-way along each layer's
    /// propagation (`T → T_{z/2} A T_{z/2}`, which stays symmetric; `SmoothRandomPhase`).
    pub aberration_rms: f64,
    /// Correlation length (pixels) of the aberration screens.
    pub aberration_correlation_px: f64,
    /// Standard deviation of each modulator's look-up-table gain error `γ`: the imparted phase
    /// is `(1+γ)φ̃ − γφ̃²/(2π)` (`ModulatorResponse`, `φ̃ = φ mod 2π`): right at 0 and 2π, so
    /// the response has no jump at the wrap, bowed in between.
    pub phase_gain_error: f64,
    /// Phase quantisation in bits (0 = continuous; the paper's SLMs: 8).
    pub phase_bits: u32,
    /// Standard deviation of complex Gaussian measurement noise, relative to the RMS amplitude
    /// of the measured field.
    pub detector_noise: f64,
    /// Seed of the bench (which hardware it is); fixed across training runs by default.
    pub seed: u64,
}

impl Default for Imperfections {
    fn default() -> Self {
        Self {
            misalignment_px: 0.0,
            distance_error: 0.0,
            aberration_rms: 0.0,
            aberration_correlation_px: 4.0,
            phase_gain_error: 0.0,
            phase_bits: 0,
            detector_noise: 0.0,
            seed: 2024,
        }
    }
}

impl Imperfections {
    /// The project's default "realistic bench" (documented in `docs/ffm.md`): up to 1-pixel
    /// misregistration, 2 % distance error, 1 rad RMS aberrations (correlation 4 px), 10 %
    /// look-up-table gain error, 8-bit phase, 1 % measurement noise.
    pub fn realistic() -> Self {
        Self {
            misalignment_px: 1.0,
            distance_error: 0.02,
            aberration_rms: 1.0,
            aberration_correlation_px: 4.0,
            phase_gain_error: 0.1,
            phase_bits: 8,
            detector_noise: 0.01,
            seed: 2024,
        }
    }

    /// One scalar imperfection level (the CLI's knob): [`Imperfections::realistic`] with every
    /// continuous *error* strength (misregistration, distance error, aberration RMS, look-up-table
    /// gain error) multiplied by `strength`; the correlation length, 8-bit quantisation, 1 %
    /// measurement noise and the bench seed do not scale. `0` is an 8-bit, 1 %-noise bench
    /// otherwise equal to the model; `0.5` is the calibrated bench of the measurements in
    /// `docs/results/ffm.md` (±0.5 px, 1 %, 0.5 rad RMS ≈ λ/13, 5 %); `1` is `realistic()`.
    /// A negative or non-finite strength yields values the bench rejects (`ImperfectBench::new`).
    pub fn at_strength(strength: f64) -> Self {
        let r = Self::realistic();
        Self {
            misalignment_px: r.misalignment_px * strength,
            distance_error: r.distance_error * strength,
            aberration_rms: r.aberration_rms * strength,
            phase_gain_error: r.phase_gain_error * strength,
            ..r
        }
    }

    fn validate(&self) -> Result<(), FfmError> {
        for (name, v) in [
            ("misalignment_px", self.misalignment_px),
            ("distance_error", self.distance_error),
            ("aberration_rms", self.aberration_rms),
            ("aberration_correlation_px", self.aberration_correlation_px),
            ("phase_gain_error", self.phase_gain_error),
            ("detector_noise", self.detector_noise),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(FfmError::InvalidSpec(format!(
                    "imperfection {name} must be finite and ≥ 0, got {v}"
                )));
            }
        }
        if self.phase_bits > 24 {
            return Err(FfmError::InvalidSpec(format!(
                "phase_bits must be ≤ 24, got {}",
                self.phase_bits
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct BenchLayer {
    shift: MaskShift,
    response: ModulatorResponse,
    /// `e^{iα}` of the mid-propagation aberration screen (empty: none).
    aberration: Vec<Complex32>,
    /// The whole propagation without aberration, or each half with one.
    propagation: FreeSpace,
}

/// A simulated imperfect free-space bench of phase modulators and propagations.
#[derive(Clone, Debug)]
pub struct ImperfectBench {
    n: usize,
    layers: Vec<BenchLayer>,
    noise: f32,
    noise_seed: u64,
    responded: Vec<f32>,
    shifted: Vec<f32>,
    /// Per layer, the modulator's transmission for the pattern it shows (kept while the
    /// pattern stays the same: a mini-batch's samples and both passes of each).
    masks: Vec<PatternCache<f32>>,
}

impl ImperfectBench {
    /// The bench built from the digital model's propagations and `imp`.
    pub fn new(model: &[FreeSpace], imp: &Imperfections) -> Result<Self, FfmError> {
        imp.validate()?;
        let first = model
            .first()
            .ok_or_else(|| FfmError::InvalidSpec("a bench needs at least one layer".into()))?;
        let n = first.grid().n;
        let mut r = rng(derive_seed(imp.seed, &[0xBE_0C]));
        let k = imp.misalignment_px;
        let mut layers = Vec::with_capacity(model.len());
        for p in model {
            let (dx, dy) = if k > 0.0 {
                (r.random_range(-k..=k), r.random_range(-k..=k))
            } else {
                (0.0, 0.0)
            };
            let g: f64 = StandardNormal.sample(&mut r);
            let dz: f64 = StandardNormal.sample(&mut r);
            let gamma = (imp.phase_gain_error * g).clamp(-0.9, 0.9);
            let response = ModulatorResponse {
                linear: 1.0 + gamma,
                quadratic: -gamma / std::f64::consts::TAU,
                bits: (imp.phase_bits > 0).then_some(imp.phase_bits),
            };
            let z = DistanceError {
                offset: p.distance() * imp.distance_error * dz,
            }
            .apply(p)?
            .distance();
            let (aberration, propagation) = if imp.aberration_rms > 0.0 {
                let screen = SmoothRandomPhase {
                    rms: imp.aberration_rms,
                    correlation_length: imp.aberration_correlation_px,
                }
                .phase(n, &mut r)?;
                (
                    screen.iter().map(|&a| Complex32::from_polar(1.0, a)).collect(),
                    p.with_distance(z / 2.0)?,
                )
            } else {
                (Vec::new(), p.with_distance(z)?)
            };
            layers.push(BenchLayer {
                shift: MaskShift { dx, dy, fill: 0.0 },
                response,
                aberration,
                propagation,
            });
        }
        Ok(Self {
            n,
            layers,
            noise: imp.detector_noise as f32,
            noise_seed: derive_seed(imp.seed, &[0x0015E]),
            responded: vec![0.0; n * n],
            shifted: vec![0.0; n * n],
            masks: (0..model.len()).map(|_| PatternCache::new()).collect(),
        })
    }
}

impl PhysicalSystem<f32> for ImperfectBench {
    fn num_layers(&self) -> usize {
        self.layers.len()
    }
    fn field_len(&self) -> usize {
        self.n * self.n
    }
    fn run(&mut self, modulator: Option<(usize, &[f32])>, propagation: usize, field: &mut [Complex32], shot: u64) {
        let n = self.n;
        assert_eq!(field.len(), n * n, "ImperfectBench::run: field length");
        if let Some((l, phase)) = modulator {
            let layer = &self.layers[l];
            let (responded, shifted) = (&mut self.responded, &mut self.shifted);
            let transmission = self.masks[l].get(phase, |phase, out| {
                // programmed phase → imparted phase (LUT, quantisation) → pattern displaced on
                // the beam
                layer
                    .response
                    .apply(phase, responded)
                    .expect("validated modulator response, n·n mask");
                layer
                    .shift
                    .apply(n, responded, shifted)
                    .expect("finite shift, n·n mask");
                out.extend(shifted.iter().map(|&s| Complex32::from_polar(1.0, s)));
            });
            apply_complex_mask(field, transmission).expect("n·n mask and field");
        }
        let layer = &mut self.layers[propagation];
        layer.propagation.propagate(field);
        if !layer.aberration.is_empty() {
            for (f, &a) in field.iter_mut().zip(&layer.aberration) {
                *f *= a;
            }
            layer.propagation.propagate(field);
        }
        if self.noise > 0.0 {
            let rms = (field.iter().map(|z| z.norm_sqr() as f64).sum::<f64>() / field.len() as f64).sqrt() as f32;
            let sigma = self.noise * rms * std::f32::consts::FRAC_1_SQRT_2;
            let mut r = substream(self.noise_seed, shot);
            for f in field.iter_mut() {
                let (a, b): (f32, f32) = (StandardNormal.sample(&mut r), StandardNormal.sample(&mut r));
                *f += Complex32::new(a * sigma, b * sigma);
            }
        }
    }
}

/// Counts the forward runs made through a system (clones share the count, so parallel workers
/// add to one total).
#[derive(Clone, Debug)]
pub struct CountingSystem<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S> CountingSystem<S> {
    /// Wraps `inner` with a fresh count of zero.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            count: Arc::new(AtomicU64::new(0)),
        }
    }
    /// Wraps `inner` with the count starting at `count` (a run resumed from a checkpoint
    /// continues its count).
    pub fn with_count(inner: S, count: u64) -> Self {
        Self {
            inner,
            count: Arc::new(AtomicU64::new(count)),
        }
    }
    /// Forward runs so far (all clones together).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    /// The wrapped system (to change what it holds, e.g. a hidden object; runs made through
    /// it directly are not counted).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: PhysicalSystem<f32>> PhysicalSystem<f32> for CountingSystem<S> {
    fn num_layers(&self) -> usize {
        self.inner.num_layers()
    }
    fn field_len(&self) -> usize {
        self.inner.field_len()
    }
    fn run(&mut self, modulator: Option<(usize, &[f32])>, propagation: usize, field: &mut [Complex32], shot: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.run(modulator, propagation, field, shot);
    }
}
