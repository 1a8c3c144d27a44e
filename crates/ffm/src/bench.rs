//! A simulated *physical* free-space bench (SPEC B3): the digital model's layers plus the
//! imperfections a real bench has, hidden behind [`PhysicalSystem`]. Every imperfection is a
//! diagonal screen or a symmetric propagation, so the bench stays reciprocal and FFM stays
//! exact on it, while in-silico designs (trained on the ideal model) are deployed on a system
//! they were not trained for. The same imperfections act in data and error passes (it is the
//! same hardware): they live in the object, not in the pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use insitu_linalg::{derive_seed, rng, substream};
use insitu_optics::FreeSpace;
use num_complex::Complex32;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::system::PhysicalSystem;
use crate::FfmError;

/// Strengths of the bench's imperfections (all zero: the bench equals the digital model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Imperfections {
    /// Largest lateral misalignment of each layer's modulator against the beam, in pixels:
    /// each layer gets integer shifts `(s_r, s_c)` drawn uniformly from `−k..=k`.
    pub misalignment_px: usize,
    /// Relative standard deviation of each layer's propagation distance (`z·(1 + δ)`).
    pub distance_error: f64,
    /// RMS (radians) of a smooth random aberration phase screen half-way along each layer's
    /// propagation (`T → T_{z/2} A T_{z/2}`, which stays symmetric).
    pub aberration_rms: f64,
    /// Size of each modulator's phase-response (look-up-table) error: the imprinted phase is
    /// `φ + γ_l sin(φ + θ_l)` with `γ_l ~ N(0, phase_gain_error²)` (clamped to ±0.9, so the
    /// response stays monotonic) and `θ_l` uniform; periodic, so it has no jump at the 2π wrap.
    pub phase_gain_error: f64,
    /// Phase quantisation levels of the modulators (0 = continuous; the paper's SLMs: 256).
    pub phase_levels: u32,
    /// Standard deviation of complex Gaussian measurement noise, relative to the RMS amplitude
    /// of the measured field.
    pub detector_noise: f64,
    /// Seed of the bench (which hardware it is); fixed across training runs by default.
    pub seed: u64,
}

impl Default for Imperfections {
    fn default() -> Self {
        Self {
            misalignment_px: 0,
            distance_error: 0.0,
            aberration_rms: 0.0,
            phase_gain_error: 0.0,
            phase_levels: 0,
            detector_noise: 0.0,
            seed: 2024,
        }
    }
}

impl Imperfections {
    /// The project's default "realistic bench" (documented in `docs/ffm.md`): 2-pixel
    /// misalignment, 2 % distance error, 1 rad RMS aberrations, 0.1 rad phase-response error,
    /// 8-bit phase, 1 % measurement noise.
    pub fn realistic() -> Self {
        Self {
            misalignment_px: 2,
            distance_error: 0.02,
            aberration_rms: 1.0,
            phase_gain_error: 0.1,
            phase_levels: 256,
            detector_noise: 0.01,
            seed: 2024,
        }
    }

    fn validate(&self) -> Result<(), FfmError> {
        for (name, v) in [
            ("distance_error", self.distance_error),
            ("aberration_rms", self.aberration_rms),
            ("phase_gain_error", self.phase_gain_error),
            ("detector_noise", self.detector_noise),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(FfmError::InvalidSpec(format!(
                    "imperfection {name} must be finite and ≥ 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct BenchLayer {
    shift: (isize, isize),
    gain: f32,
    lut_offset: f32,
    /// `e^{iα}` of the mid-propagation aberration screen (empty: none).
    aberration: Vec<Complex32>,
    /// The whole propagation without aberration, or its first/second half with one.
    propagation: FreeSpace,
}

/// A simulated imperfect free-space bench of phase modulators and propagations.
#[derive(Clone, Debug)]
pub struct ImperfectBench {
    n: usize,
    layers: Vec<BenchLayer>,
    levels: u32,
    noise: f32,
    noise_seed: u64,
    screen: Vec<f32>,
}

/// A smooth real random screen on `n × n` with unit RMS: random low spatial frequencies
/// (`|k| ≤ 3` cycles across the aperture).
fn smooth_screen(n: usize, r: &mut impl Rng) -> Vec<f32> {
    let kmax = 3i32;
    let mut terms = Vec::new();
    for kx in -kmax..=kmax {
        for ky in 0..=kmax {
            if ky == 0 && kx <= 0 {
                continue;
            }
            let a: f64 = StandardNormal.sample(r);
            let phase: f64 = r.random_range(0.0..std::f64::consts::TAU);
            terms.push((kx as f64, ky as f64, a, phase));
        }
    }
    let mut s: Vec<f64> = (0..n * n)
        .map(|j| {
            let (y, x) = ((j / n) as f64 / n as f64, (j % n) as f64 / n as f64);
            terms
                .iter()
                .map(|&(kx, ky, a, p)| a * (std::f64::consts::TAU * (kx * x + ky * y) + p).cos())
                .sum()
        })
        .collect();
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    s.iter_mut().for_each(|v| *v -= mean);
    let rms = (s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64)
        .sqrt()
        .max(1e-300);
    s.iter().map(|v| (v / rms) as f32).collect()
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
        let k = imp.misalignment_px as i64;
        let mut layers = Vec::with_capacity(model.len());
        for p in model {
            let shift = (r.random_range(-k..=k) as isize, r.random_range(-k..=k) as isize);
            let g: f64 = StandardNormal.sample(&mut r);
            let dz: f64 = StandardNormal.sample(&mut r);
            let screen = smooth_screen(n, &mut r);
            let z = p.distance() * (1.0 + imp.distance_error * dz);
            let (aberration, propagation) = if imp.aberration_rms > 0.0 {
                let a = screen
                    .iter()
                    .map(|&s| Complex32::from_polar(1.0, s * imp.aberration_rms as f32))
                    .collect();
                (a, p.with_distance(z / 2.0)?)
            } else {
                (Vec::new(), p.with_distance(z)?)
            };
            let gain = (imp.phase_gain_error * g).clamp(-0.9, 0.9) as f32;
            let lut_offset = r.random_range(0.0..std::f32::consts::TAU);
            layers.push(BenchLayer {
                shift,
                gain,
                lut_offset,
                aberration,
                propagation,
            });
        }
        Ok(Self {
            n,
            layers,
            levels: imp.phase_levels,
            noise: imp.detector_noise as f32,
            noise_seed: derive_seed(imp.seed, &[0x0015E]),
            screen: vec![0.0; n * n],
        })
    }

    /// The phase the modulator of `layer` actually imprints for a commanded `phase`.
    fn realised_phase(&self, layer: usize, phase: f32) -> f32 {
        let tau = std::f32::consts::TAU;
        let mut p = phase.rem_euclid(tau);
        if self.levels > 0 {
            let q = tau / self.levels as f32;
            p = ((p / q).round() * q).rem_euclid(tau);
        }
        let l = &self.layers[layer];
        p + l.gain * (p + l.lut_offset).sin()
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
            assert_eq!(phase.len(), n * n, "ImperfectBench::run: mask length");
            let (sr, sc) = self.layers[l].shift;
            // the modulator's pixel (r, c) sits over beam pixel (r + sr, c + sc); beam pixels
            // not covered see a flat (zero) command
            let mut screen = std::mem::take(&mut self.screen);
            screen.fill(self.realised_phase(l, 0.0));
            for r in 0..n {
                let br = r as isize + sr;
                if br < 0 || br >= n as isize {
                    continue;
                }
                for c in 0..n {
                    let bc = c as isize + sc;
                    if bc < 0 || bc >= n as isize {
                        continue;
                    }
                    screen[br as usize * n + bc as usize] = self.realised_phase(l, phase[r * n + c]);
                }
            }
            for (f, &s) in field.iter_mut().zip(&screen) {
                *f *= Complex32::from_polar(1.0, s);
            }
            self.screen = screen;
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
    /// Forward runs so far (all clones together).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
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
