//! Self-designing a non-Hermitian system with FFM: learning the gain and loss of two coupled
//! waveguides until the output turns asymmetric, across the exceptional point, from forward
//! runs only (seed 002 "Self-designing non-Hermitian system", Methods "Exceptional point
//! searching", Extended Data Fig. 1; SPEC B4).
//!
//! **The system.** Two identical coupled waveguides (coupled-mode theory, insitu-optics'
//! [`CoupledWaveguides`]): `da/dz = iHa`, `H = [[β + iγ₁, κ], [κ, β + iγ₂]]`, with gain `g` on
//! guide 1 (`γ₁ = −g`) and loss `l` on guide 2 (`γ₂ = l`). Its eigenvalues
//! `β − i(g − l)/2 ± sqrt(κ² − ((g + l)/2)²)` coalesce at the exceptional point
//! `(g + l)/2 = κ`; below it (PT-symmetric phase) power beats between the guides, above it
//! (broken phase) the supermode that lives in the gain guide takes over.
//!
//! **The task** (seed 002: "feeding input to symmetrical channels but maximize the output of one
//! waveguide"): launch `(1, 1)/√2` and minimise `L = −(P₁ − P₂)/(P₁ + P₂)`, the negative
//! output contrast (**reading**: the contrast is scale-free, so gain alone cannot raise it; the
//! paper names no formula).
//!
//! **FFM here.** The pair is discretised into `K` symmetric sections (Strang splitting: half a
//! coupling step, the gain/loss of length `Δz`, half a coupling step — the `K` sections of the
//! digital model are [`SplitStepPair`]); each part is a symmetric matrix and the chain reads the
//! same from either end, so the error field `conj(∂L/∂ȳ)` launched into the *input* of the
//! same pair crosses the sections in reverse order — the error pass of SPEC B2 is a second
//! forward run. With the fields `u_k` just after the `k`-th gain/loss element in the data run
//! and `e_k` just before it in the error run (section `K + 1 − k` counted from the input),
//! `∂L/∂g = 2Δz Σ_k Re(e_{k,1} u_{k,1})` and `∂L/∂l = −2Δz Σ_k Re(e_{k,2} u_{k,2})`
//! ([`ffm_gain_loss_gradient`]). What the trainer may do with a pair is [`WaveguideBench::run`]:
//! set gain and loss, launch two field amplitudes, measure the fields at the gain/loss
//! elements' ends (the probes of a numerical experiment, as in the paper's Extended Data
//! Fig. 1c) and at the output. It never sees `H`: the eigenvalues in the result come from the
//! bench's own [`CoupledWaveguides`] — an oracle for the report, not an input to training.
//!
//! **What it must not do.** No I/O, no printing; no access to a bench's internals from the
//! trainer.

use insitu_linalg::{derive_seed, substream};
use insitu_optics::CoupledWaveguides;
use num_complex::Complex64;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::{require_positive, FfmError};

/// A field of the two guides.
pub type PairField = [Complex64; 2];

/// Gain on guide 1 and loss on guide 2 (field rates, 1/m, both ≥ 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GainLoss {
    /// Gain `g` of guide 1 (`γ₁ = −g`).
    pub gain: f64,
    /// Loss `l` of guide 2 (`γ₂ = l`).
    pub loss: f64,
}

/// What a trainer may do with a waveguide pair: set the gain and loss, launch a field and
/// measure. Nothing else.
pub trait WaveguideBench {
    /// Number of gain/loss sections `K`.
    fn sections(&self) -> usize;
    /// Length of one section `Δz` (m): how far the gain and loss act in each.
    fn section_length(&self) -> f64;
    /// Sets `setting`, launches `input` into the pair's input and writes the fields measured
    /// just before (`before[k]`) and just after (`after[k]`) the gain/loss of section `k`
    /// (`k = 0..K`, from the input) and returns the output field. `shot` labels the
    /// measurement noise.
    ///
    /// # Panics
    /// If `before` or `after` do not hold `K` fields (a trainer's programming error).
    fn run(
        &mut self,
        setting: GainLoss,
        input: PairField,
        before: &mut [PairField],
        after: &mut [PairField],
        shot: u64,
    ) -> PairField;
}

/// The digital model (and, with its own `kappa`, `beta1 ≠ beta2` or measurement noise, a
/// simulated bench the trainer does not know):
/// `K` Strang sections `C(κΔz/2) · G · C(κΔz/2)` with the coupling
/// `C(θ) = [[cos θ, i sin θ], [i sin θ, cos θ]]` and the gain/loss element
/// `G = diag(e^{(iβ₁ + g)Δz}, e^{(iβ₂ − l)Δz})`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitStepPair {
    /// Coupling coefficient κ (1/m).
    pub kappa: f64,
    /// Propagation constant of guide 1 (rad/m).
    pub beta1: f64,
    /// Propagation constant of guide 2 (rad/m); `beta2 ≠ beta1` detunes the pair (`H` stays
    /// symmetric).
    pub beta2: f64,
    /// Length of the pair (m).
    pub length: f64,
    /// Number of sections `K`.
    pub sections: usize,
    /// Standard deviation of complex Gaussian noise on every measured field, relative to the
    /// RMS amplitude of that field (0: exact).
    pub measurement_noise: f64,
    /// Seed of the measurement noise.
    pub seed: u64,
}

impl Default for SplitStepPair {
    /// κ = 1 mm⁻¹, length 2 mm (κL = 2), 400 sections, identical guides, exact probes.
    fn default() -> Self {
        Self {
            kappa: 1e3,
            beta1: 0.0,
            beta2: 0.0,
            length: 2e-3,
            sections: 400,
            measurement_noise: 0.0,
            seed: 0,
        }
    }
}

impl SplitStepPair {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), FfmError> {
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        for (name, v) in [("kappa", self.kappa), ("beta1", self.beta1), ("beta2", self.beta2)] {
            if !v.is_finite() {
                return bad(format!("waveguide pair: {name} must be finite, got {v}"));
            }
        }
        if !(self.length.is_finite() && self.length > 0.0) {
            return bad(format!("waveguide pair: length must be > 0, got {}", self.length));
        }
        if self.sections == 0 {
            return bad("waveguide pair: sections must be ≥ 1".into());
        }
        if !(self.measurement_noise.is_finite() && self.measurement_noise >= 0.0) {
            return bad(format!(
                "waveguide pair: measurement_noise must be ≥ 0, got {}",
                self.measurement_noise
            ));
        }
        Ok(())
    }

    /// The continuous system this discretises, at `setting` (for the exact transfer and the
    /// eigenvalues).
    pub fn continuum(&self, setting: GainLoss) -> CoupledWaveguides {
        CoupledWaveguides {
            beta1: self.beta1,
            beta2: self.beta2,
            gamma1: -setting.gain,
            gamma2: setting.loss,
            kappa: self.kappa,
            length: self.length,
        }
    }

    fn half_coupling(&self, a: PairField) -> PairField {
        let theta = self.kappa * self.length / self.sections as f64 / 2.0;
        let (c, s) = (theta.cos(), Complex64::new(0.0, theta.sin()));
        [c * a[0] + s * a[1], s * a[0] + c * a[1]]
    }

    fn gain_loss(&self, setting: GainLoss) -> PairField {
        let dz = self.length / self.sections as f64;
        [
            Complex64::new(setting.gain * dz, self.beta1 * dz).exp(),
            Complex64::new(-setting.loss * dz, self.beta2 * dz).exp(),
        ]
    }

    /// The field at the output for `input`, without probes or noise.
    pub fn transmit(&self, setting: GainLoss, input: PairField) -> PairField {
        let g = self.gain_loss(setting);
        let mut a = input;
        for _ in 0..self.sections {
            a = self.half_coupling(a);
            a = [g[0] * a[0], g[1] * a[1]];
            a = self.half_coupling(a);
        }
        a
    }

    fn noisy(&self, a: PairField, rng: &mut insitu_linalg::Rng64) -> PairField {
        if self.measurement_noise == 0.0 {
            return a;
        }
        let rms = ((a[0].norm_sqr() + a[1].norm_sqr()) / 2.0).sqrt();
        let s = self.measurement_noise * rms / std::f64::consts::SQRT_2;
        let mut draw = || -> f64 { StandardNormal.sample(rng) };
        [
            a[0] + Complex64::new(s * draw(), s * draw()),
            a[1] + Complex64::new(s * draw(), s * draw()),
        ]
    }
}

impl WaveguideBench for SplitStepPair {
    fn sections(&self) -> usize {
        self.sections
    }
    fn section_length(&self) -> f64 {
        self.length / self.sections as f64
    }
    fn run(
        &mut self,
        setting: GainLoss,
        input: PairField,
        before: &mut [PairField],
        after: &mut [PairField],
        shot: u64,
    ) -> PairField {
        assert_eq!(before.len(), self.sections, "probe buffers must hold K fields");
        assert_eq!(after.len(), self.sections, "probe buffers must hold K fields");
        let mut rng = substream(derive_seed(self.seed, &[shot]), 0);
        let g = self.gain_loss(setting);
        let mut a = input;
        for k in 0..self.sections {
            a = self.half_coupling(a);
            before[k] = self.noisy(a, &mut rng);
            a = [g[0] * a[0], g[1] * a[1]];
            after[k] = self.noisy(a, &mut rng);
            a = self.half_coupling(a);
        }
        self.noisy(a, &mut rng)
    }
}

/// The symmetric launch `(1, 1)/√2`.
pub fn symmetric_input() -> PairField {
    let v = Complex64::new(std::f64::consts::FRAC_1_SQRT_2, 0.0);
    [v, v]
}

/// What the learning asks of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ContrastTarget {
    /// Maximise the contrast `c`: `L = −c` (the output leaves through guide 1; seed 002's task).
    #[default]
    Asymmetric,
    /// Cancel it: `L = c²` (the output leaves through both guides alike: "vice versa").
    Symmetric,
}

impl ContrastTarget {
    /// The loss and `∂L/∂ȳ` at the output `y`, and the contrast.
    pub fn loss(self, y: PairField) -> (f64, f64, PairField) {
        let (c, dc) = contrast_and_derivative(y);
        match self {
            ContrastTarget::Asymmetric => (-c, c, [-dc[0], -dc[1]]),
            ContrastTarget::Symmetric => (c * c, c, [dc[0] * (2.0 * c), dc[1] * (2.0 * c)]),
        }
    }
}

/// The output contrast `c = (P₁ − P₂)/(P₁ + P₂)` and `∂c/∂ȳ` (zero for a dark output).
pub fn contrast_and_derivative(y: PairField) -> (f64, PairField) {
    let (p1, p2) = (y[0].norm_sqr(), y[1].norm_sqr());
    let total = p1 + p2;
    if total <= 0.0 {
        return (0.0, [Complex64::new(0.0, 0.0); 2]);
    }
    // ∂c/∂p1 = 2p2/t², ∂c/∂p2 = −2p1/t²; ∂c/∂ȳ_j = ∂c/∂p_j · y_j
    let t2 = total * total;
    ((p1 - p2) / total, [y[0] * (2.0 * p2 / t2), y[1] * (-2.0 * p1 / t2)])
}

/// Buffers of one FFM gradient (allocated once per run).
#[derive(Clone, Debug)]
pub struct PairWorkspace {
    data_before: Vec<PairField>,
    data_after: Vec<PairField>,
    error_before: Vec<PairField>,
    error_after: Vec<PairField>,
}

impl PairWorkspace {
    /// Buffers for `sections` sections.
    pub fn new(sections: usize) -> Self {
        let z = [Complex64::new(0.0, 0.0); 2];
        Self {
            data_before: vec![z; sections],
            data_after: vec![z; sections],
            error_before: vec![z; sections],
            error_after: vec![z; sections],
        }
    }
}

/// The FFM gradient `(∂L/∂g, ∂L/∂l)` of `target`'s loss at `setting`, from two forward runs of
/// `bench` (a data run of the symmetric input and an error run of `conj(∂L/∂ȳ)`); returns the
/// loss and the contrast of the data run too.
pub fn ffm_gain_loss_gradient<B: WaveguideBench>(
    bench: &mut B,
    setting: GainLoss,
    target: ContrastTarget,
    ws: &mut PairWorkspace,
    shot: u64,
) -> (f64, f64, [f64; 2]) {
    let k = bench.sections();
    let dz = bench.section_length();
    let y = bench.run(
        setting,
        symmetric_input(),
        &mut ws.data_before,
        &mut ws.data_after,
        derive_seed(shot, &[0]),
    );
    let (loss, contrast, delta) = target.loss(y);
    let launch = [delta[0].conj(), delta[1].conj()];
    bench.run(
        setting,
        launch,
        &mut ws.error_before,
        &mut ws.error_after,
        derive_seed(shot, &[1]),
    );
    let (mut dg, mut dl) = (0.0, 0.0);
    for s in 0..k {
        // the data run's s-th element is the error run's (K − 1 − s)-th
        let u = ws.data_after[s];
        let e = ws.error_before[k - 1 - s];
        dg += 2.0 * dz * (e[0] * u[0]).re;
        dl -= 2.0 * dz * (e[1] * u[1]).re;
    }
    (loss, contrast, [dg, dl])
}

/// Where the learning starts and how it steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExceptionalSpec {
    /// The bench: the hardware, whose κ, detuning and noise the trainer does not know (it only
    /// runs it).
    pub bench: SplitStepPair,
    /// What the output should do.
    pub target: ContrastTarget,
    /// The unit of gain and loss settings (1/m): the trainer's scale, e.g. a nominal κ.
    pub unit: f64,
    /// Initial gain and loss, in `unit`s.
    pub start: GainLoss,
    /// Largest gain and loss, in `unit`s: what the amplifier and attenuator can do.
    pub limit: f64,
    /// Adam steps.
    pub steps: usize,
    /// Adam learning rate, in `unit`s per step.
    pub lr: f64,
    /// Seed of the measurement shots.
    pub seed: u64,
}

impl Default for ExceptionalSpec {
    /// The bench of [`SplitStepPair::default`] (κ = 1 mm⁻¹, κL = 2), unit 1 mm⁻¹, start at
    /// `g = l = 0.5` (below the exceptional point at `(g + l)/2 = 1`), limit 3, 200 steps of
    /// lr 0.02.
    fn default() -> Self {
        Self {
            bench: SplitStepPair::default(),
            target: ContrastTarget::Asymmetric,
            unit: 1e3,
            start: GainLoss { gain: 0.5, loss: 0.5 },
            limit: 3.0,
            steps: 200,
            lr: 0.02,
            seed: 0,
        }
    }
}

impl ExceptionalSpec {
    fn validate(&self) -> Result<(), FfmError> {
        self.bench.validate()?;
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        require_positive(&[("unit", self.unit), ("limit", self.limit), ("lr", self.lr)])?;
        for (name, v) in [("start.gain", self.start.gain), ("start.loss", self.start.loss)] {
            if !(v.is_finite() && (0.0..=self.limit).contains(&v)) {
                return bad(format!("{name} must be in [0, limit = {}], got {v}", self.limit));
            }
        }
        Ok(())
    }
}

/// One point of the learning trajectory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExceptionalStep {
    /// Gain, in the spec's unit (the setting this step measured).
    pub gain: f64,
    /// Loss, in the spec's unit.
    pub loss: f64,
    /// Output contrast measured by the data run.
    pub contrast: f64,
    /// The bench's eigenvalues `λ±` as (re, im), in the spec's unit: an oracle for the report
    /// (the trainer never computes them).
    pub eigenvalues: [[f64; 2]; 2],
    /// Whether the bench is in the PT-broken phase: `|Im(λ₊ − λ₋)| > |Re(λ₊ − λ₋)|` (for
    /// identical guides: `(g + l)/2 > κ`).
    pub broken: bool,
}

/// A finished learning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExceptionalResult {
    /// The spec.
    pub spec: ExceptionalSpec,
    /// The state before every step, then the final state.
    pub trajectory: Vec<ExceptionalStep>,
    /// The indices of `trajectory` where the phase differs from the entry before: where the
    /// learning crossed the exceptional point.
    pub transitions: Vec<usize>,
    /// Forward runs of the bench (2 per step, 1 for the final state).
    pub forward_runs: u64,
    /// Wall time of the learning (seconds).
    #[serde(default)]
    pub train_seconds: f64,
}

/// The learning loop on `bench`, which it can only run: Adam on the FFM gradient of `target`'s
/// loss, settings clipped to `[0, limit]` (in `unit`s). Returns the settings and contrasts
/// visited, the final one last, and the number of runs.
fn learn_on<B: WaveguideBench>(bench: &mut B, spec: &ExceptionalSpec) -> Result<(Vec<(GainLoss, f64)>, u64), FfmError> {
    let mut ws = PairWorkspace::new(bench.sections());
    let mut p = [spec.start.gain, spec.start.loss];
    let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
    let (b1, b2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-12);
    let setting = |p: [f64; 2]| GainLoss {
        gain: p[0] * spec.unit,
        loss: p[1] * spec.unit,
    };
    let mut visited = Vec::with_capacity(spec.steps + 1);
    let mut runs = 0;
    for step in 0..spec.steps {
        let (_, contrast, grad) = ffm_gain_loss_gradient(
            bench,
            setting(p),
            spec.target,
            &mut ws,
            derive_seed(spec.seed, &[step as u64]),
        );
        runs += 2;
        if !contrast.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(FfmError::InvalidSpec(format!(
                "diverged at step {}: contrast {contrast}, gradient {grad:?} at gain {}, loss {}",
                step + 1,
                p[0],
                p[1]
            )));
        }
        visited.push((setting(p), contrast));
        let t = (step + 1) as i32;
        for i in 0..2 {
            let g = grad[i] * spec.unit; // per unit
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let (mh, vh) = (m[i] / (1.0 - b1.powi(t)), v[i] / (1.0 - b2.powi(t)));
            p[i] = (p[i] - spec.lr * mh / (vh.sqrt() + eps)).clamp(0.0, spec.limit);
        }
    }
    let y = bench.run(
        setting(p),
        symmetric_input(),
        &mut ws.data_before,
        &mut ws.data_after,
        derive_seed(spec.seed, &[u64::MAX]),
    );
    runs += 1;
    visited.push((setting(p), contrast_and_derivative(y).0));
    Ok((visited, runs))
}

/// Learns gain and loss on the bench of `spec` from forward runs only (seed 002 Extended Data
/// Fig. 1), then reports the trajectory with the bench's eigenvalues.
pub fn learn_exceptional_point(spec: &ExceptionalSpec) -> Result<ExceptionalResult, FfmError> {
    spec.validate()?;
    let mut bench = spec.bench.clone();
    let started = std::time::Instant::now();
    let (visited, forward_runs) = learn_on(&mut bench, spec)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let trajectory: Vec<ExceptionalStep> = visited
        .iter()
        .map(|&(setting, contrast)| {
            let (a, b) = spec.bench.continuum(setting).eigenvalues();
            let split = a - b;
            ExceptionalStep {
                gain: setting.gain / spec.unit,
                loss: setting.loss / spec.unit,
                contrast,
                eigenvalues: [
                    [a.re / spec.unit, a.im / spec.unit],
                    [b.re / spec.unit, b.im / spec.unit],
                ],
                broken: split.im.abs() > split.re.abs(),
            }
        })
        .collect();
    let transitions = (1..trajectory.len())
        .filter(|&i| trajectory[i].broken != trajectory[i - 1].broken)
        .collect();
    Ok(ExceptionalResult {
        spec: spec.clone(),
        trajectory,
        transitions,
        forward_runs,
        train_seconds,
    })
}
