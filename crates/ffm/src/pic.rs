//! FFM on an integrated photonic network of symmetric cores that classifies Iris
//! (seed 002 Fig. 5, "Onsite photonic integrated circuits with FFM", Methods "PIC network" and
//! "Iris dataset"; SPEC B4).
//!
//! **The network** ([`PIC_NETWORK`]). Five layers of 16, 16, 16, 8 and 8 input channels. Each
//! layer is a row of symmetric 2×2 cores `[[w1, w2], [w2, w4]]` on adjacent channel pairs
//! (insitu-optics' [`SymmetricCore`]), realised on the chip by variable optical attenuators;
//! the channels are mutually incoherent, so intensities add and a core multiplies a pair of
//! intensities by its matrix. The cores' outputs are detected by photodiodes; layers 3 and 5
//! sum each core's two detected outputs into one channel (16 → 8, 8 → 4), and the detected
//! values are re-launched into the next layer in the order of the Methods' shuffle tables
//! `T1 … T4` (`x_next[i] = y[T[i]]`, 0-based: SPEC B4's reading). The four outputs are the
//! logits (times [`PicSpec::output_gain`]) of a softmax cross-entropy over four classes, the
//! fourth unused (Iris has three).
//!
//! **Readings** (SPEC B4 and this module's own, where the paper is silent; `docs/ffm.md`):
//! * weights are attenuations in `[0, 1]`; each core trains its two diagonal weights `w1`, `w4`
//!   while the off-diagonal weight is tied to the "symmetry ratio" `r = w2/w1 ∈ {1, 0.75, 0.5}`
//!   (`w2 = w3 = r·w1`), so the core stays symmetric; after each Adam step the weights are
//!   clipped to `[0, 1]` (what a VOA can show);
//! * "summing adjacent channel inputs" (layers 3, 5) is the electrical sum of a core's two
//!   detected outputs: its transpose in the error pass is a digital fan-out, so the optical
//!   part of every layer stays a symmetric core and the error crosses it *forward*;
//! * inputs: the four features min–max scaled to `[0, 1]` with the training set's range
//!   (test values clipped), each one repeated four times *per quadruple*
//!   (`[f1, f2, f3, f4, f1, f2, f3, f4, …]`, [`encode_features`]): with the other order
//!   (`[f1, f1, f1, f1, f2, …]`) the tables `T1 … T4` never let outputs 1–2 see features 3–4
//!   (tested), so the Methods' tables imply this one;
//! * initial weights uniform in `[0.25, 0.75]` (seeded); full details in [`PicSpec`].
//!
//! **FFM here** ([`ffm_sample_gradient`]). The data pass runs every layer on the chip and
//! records what was launched into each layer. The output error `∂L/∂y` is formed digitally,
//! fanned out where outputs were summed, and launched *forward* into the same layer's cores:
//! since every core is symmetric, the chip returns `Wᵀ·g = W·g`, the error at the layer's input,
//! measured on the hardware itself. Intensities cannot be negative, so a signed error is sent
//! as its positive and negative parts in two runs and the measurements subtracted (two runs
//! per layer and sample; linearity makes this exact). Each core's weight gradient is the
//! product of its launched input and its output error. The trainer holds a `&mut impl`
//! [`PicChip`], which offers nothing but `run` (program, launch, measure): no transpose, no
//! model; runs are counted.
//!
//! **The chip** ([`FabricatedPic`]): the digital model plus fabrication errors that keep each
//! core symmetric (per-attenuator gain and response-exponent errors, the off-diagonal pair
//! sharing theirs; an extinction floor) and per-measurement detector noise; an optional
//! asymmetry (the two off-diagonal attenuators drawn apart) breaks the symmetry FFM relies on,
//! to measure what that costs.
//!
//! **What it must not do.** No I/O and no printing; no thread-dependent result (the network is
//! tiny, samples run in order on one thread); the in-situ trainer never reads the chip's
//! realised transmissions ([`FabricatedPic::realised`] exists for tests and reports only).

use std::time::Instant;

use insitu_data::{epoch_permutation, Dataset, TrainTest};
use insitu_linalg::{derive_seed, rng, substream};
use insitu_optics::SymmetricCore;
use insitu_optim::{Adam, StepRule};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::classifier::TrainingMode;
use crate::FfmError;

/// Shuffle after layer 1 (seed 002 Methods "PIC network", `T1`).
pub const SHUFFLE_1: [usize; 16] = [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15];
/// Shuffle after layer 2 (`T2`: a 4×4 transposition).
pub const SHUFFLE_2: [usize; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
/// Shuffle after layer 3 (`T3`).
pub const SHUFFLE_3: [usize; 8] = [0, 2, 1, 3, 4, 6, 5, 7];
/// Shuffle after layer 4 (`T4`).
pub const SHUFFLE_4: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// Number of input channels (each Iris feature four times).
pub const PIC_INPUTS: usize = 16;
/// Number of output channels (logits; Iris uses the first three).
pub const PIC_OUTPUTS: usize = 4;
/// Number of Iris features.
const FEATURES: usize = 4;

/// One layer of the PIC network: cores on adjacent channel pairs, an optional electrical sum
/// of each core's two outputs, and the shuffle into the next layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PicLayer {
    /// Input channels (twice the number of cores; also the number of core outputs).
    pub channels: usize,
    /// Whether each core's two detected outputs are summed into one channel (layers 3 and 5).
    pub pair_sum: bool,
    /// `x_next[i] = y[table[i]]` (0-based) into the next layer; `None` for the last layer.
    pub shuffle: Option<&'static [usize]>,
}

impl PicLayer {
    /// Number of symmetric cores.
    pub fn cores(&self) -> usize {
        self.channels / 2
    }

    /// Number of channels leaving the layer (after any pair sum).
    pub fn outputs(&self) -> usize {
        if self.pair_sum {
            self.channels / 2
        } else {
            self.channels
        }
    }
}

/// The paper's network: 16 → 16 → 16 → (sum) 8 → 8 → (sum) 4 channels with `T1 … T4`.
pub const PIC_NETWORK: [PicLayer; 5] = [
    PicLayer {
        channels: 16,
        pair_sum: false,
        shuffle: Some(&SHUFFLE_1),
    },
    PicLayer {
        channels: 16,
        pair_sum: false,
        shuffle: Some(&SHUFFLE_2),
    },
    PicLayer {
        channels: 16,
        pair_sum: true,
        shuffle: Some(&SHUFFLE_3),
    },
    PicLayer {
        channels: 8,
        pair_sum: false,
        shuffle: Some(&SHUFFLE_4),
    },
    PicLayer {
        channels: 8,
        pair_sum: true,
        shuffle: None,
    },
];

/// Number of trained parameters (`w1`, `w4` of every core): 2·(8 + 8 + 8 + 4 + 4) = 64.
pub fn num_parameters() -> usize {
    PIC_NETWORK.iter().map(|l| 2 * l.cores()).sum()
}

/// Offset of layer `layer`'s parameters in the flat parameter vector (`[w1, w4]` per core).
fn parameter_offset(layer: usize) -> usize {
    PIC_NETWORK[..layer].iter().map(|l| 2 * l.cores()).sum()
}

/// What a trainer may do with a chip: program one layer's cores, launch intensities into it and
/// measure the intensities at the cores' outputs. Nothing else — no transpose, no model.
pub trait PicChip {
    /// Programs the cores of `layer` (one per adjacent channel pair of [`PIC_NETWORK`]`[layer]`),
    /// launches the non-negative, mutually incoherent intensities `input` (one per channel),
    /// and writes the intensities measured at the cores' outputs into `output` (one per
    /// channel, before any pair sum). `shot` labels the measurement: its noise is a function of
    /// the chip's seed and `shot` only.
    ///
    /// # Panics
    /// On a layer index out of range, slices of the wrong length or a negative input
    /// (programming errors of the trainer).
    fn run(&mut self, layer: usize, cores: &[SymmetricCore], input: &[f64], output: &mut [f64], shot: u64);
}

fn check_run(layer: usize, cores: &[SymmetricCore], input: &[f64], output: &[f64]) {
    let spec = PIC_NETWORK[layer];
    assert_eq!(cores.len(), spec.cores(), "layer {layer}: wrong number of cores");
    assert_eq!(input.len(), spec.channels, "layer {layer}: wrong input length");
    assert_eq!(output.len(), spec.channels, "layer {layer}: wrong output length");
    assert!(
        input.iter().all(|&v| v >= 0.0),
        "layer {layer}: a launched intensity is negative"
    );
}

/// The digital model: ideal attenuators (`t = w`), noise-free detectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdealPic;

impl PicChip for IdealPic {
    fn run(&mut self, layer: usize, cores: &[SymmetricCore], input: &[f64], output: &mut [f64], _shot: u64) {
        check_run(layer, cores, input, output);
        for ((c, x), y) in cores.iter().zip(input.chunks_exact(2)).zip(output.chunks_exact_mut(2)) {
            let (w1, w2, w4) = (f64::from(c.w1), f64::from(c.w2), f64::from(c.w4));
            y[0] = w1 * x[0] + w2 * x[1];
            y[1] = w2 * x[0] + w4 * x[1];
        }
    }
}

/// Fabrication errors and detector noise of a [`FabricatedPic`] (all zero: the ideal model).
/// An attenuator commanded to `w ∈ [0, 1]` transmits
/// `t = (1 + g)·(floor + (1 − floor)·w^(1+γ))`, with its own fixed gain error `g` and response
/// exponent error `γ` (the two off-diagonal attenuators of a core share theirs, so the core
/// stays symmetric, unless `asymmetry > 0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PicImperfections {
    /// Standard deviation of each attenuator's relative gain error `g` (clipped at `g ≥ −0.9`).
    pub gain_error: f64,
    /// Standard deviation of each attenuator's response-exponent error `γ` (clipped at
    /// `|γ| ≤ 0.9`): the attenuation curve bows away from the linear one the model assumes.
    pub response_error: f64,
    /// Transmission of a fully closed attenuator (finite extinction).
    pub floor: f64,
    /// Standard deviation of an extra relative gain error of the lower off-diagonal attenuator
    /// only (`w3`): `0` keeps every core symmetric; `> 0` breaks what FFM relies on.
    pub asymmetry: f64,
    /// Standard deviation of additive Gaussian detector noise, relative to the RMS of the
    /// measured intensities of the run.
    pub detector_noise: f64,
    /// Seed of the chip (which piece of hardware it is).
    pub seed: u64,
}

impl Default for PicImperfections {
    fn default() -> Self {
        Self {
            gain_error: 0.0,
            response_error: 0.0,
            floor: 0.0,
            asymmetry: 0.0,
            detector_noise: 0.0,
            seed: 2024,
        }
    }
}

impl PicImperfections {
    /// The project's default fabricated chip (`docs/ffm.md`): 20 % attenuator gain errors,
    /// response exponents off by 0.2 (std), 2 % extinction floor, 0.5 % detector noise, symmetric.
    pub fn realistic() -> Self {
        Self {
            gain_error: 0.2,
            response_error: 0.2,
            floor: 0.02,
            asymmetry: 0.0,
            detector_noise: 0.005,
            seed: 2024,
        }
    }

    fn validate(&self) -> Result<(), FfmError> {
        for (name, v) in [
            ("gain_error", self.gain_error),
            ("response_error", self.response_error),
            ("asymmetry", self.asymmetry),
            ("detector_noise", self.detector_noise),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(FfmError::InvalidSpec(format!(
                    "PIC imperfection {name} must be finite and ≥ 0, got {v}"
                )));
            }
        }
        if !(self.floor.is_finite() && (0.0..1.0).contains(&self.floor)) {
            return Err(FfmError::InvalidSpec(format!(
                "PIC imperfection floor must be in [0, 1), got {}",
                self.floor
            )));
        }
        Ok(())
    }
}

/// One attenuator's fixed errors.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Attenuator {
    gain: f64,
    exponent: f64,
}

impl Attenuator {
    fn transmission(&self, commanded: f32, floor: f64) -> f64 {
        let w = f64::from(commanded).clamp(0.0, 1.0);
        self.gain * (floor + (1.0 - floor) * w.powf(self.exponent))
    }
}

/// A simulated fabricated chip: [`PIC_NETWORK`]'s cores with [`PicImperfections`].
#[derive(Clone, Debug)]
pub struct FabricatedPic {
    imperfections: PicImperfections,
    /// Per layer, per core: the attenuators of `w1`, `w2`, `w3`, `w4`.
    attenuators: Vec<Vec<[Attenuator; 4]>>,
}

impl FabricatedPic {
    /// Draws the chip's fixed errors from `imperfections.seed` (one stream per layer).
    pub fn new(imperfections: &PicImperfections) -> Result<Self, FfmError> {
        imperfections.validate()?;
        let imp = imperfections.clone();
        let attenuators = PIC_NETWORK
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let mut r = substream(derive_seed(imp.seed, &[DOMAIN_PIC, l as u64]), 0);
                let mut normal = || -> f64 { StandardNormal.sample(&mut r) };
                (0..layer.cores())
                    .map(|_| {
                        let mut draw = || Attenuator {
                            gain: 1.0 + (imp.gain_error * normal()).max(-0.9),
                            exponent: 1.0 + (imp.response_error * normal()).clamp(-0.9, 0.9),
                        };
                        let (w1, w2, w4) = (draw(), draw(), draw());
                        let split = (imp.asymmetry * normal()).max(-0.9);
                        let w3 = Attenuator {
                            gain: w2.gain * (1.0 + split),
                            ..w2
                        };
                        [w1, w2, w3, w4]
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            imperfections: imp,
            attenuators,
        })
    }

    /// The transmissions `[t11, t12, t21, t22]` this chip realises for `core` of `layer` when
    /// commanded `commanded` — the hardware's internals, for tests and reports (an oracle no
    /// trainer may read).
    pub fn realised(&self, layer: usize, core: usize, commanded: &SymmetricCore) -> [f64; 4] {
        let a = &self.attenuators[layer][core];
        let floor = self.imperfections.floor;
        [
            a[0].transmission(commanded.w1, floor),
            a[1].transmission(commanded.w2, floor),
            a[2].transmission(commanded.w2, floor),
            a[3].transmission(commanded.w4, floor),
        ]
    }
}

impl PicChip for FabricatedPic {
    fn run(&mut self, layer: usize, cores: &[SymmetricCore], input: &[f64], output: &mut [f64], shot: u64) {
        check_run(layer, cores, input, output);
        for (k, ((c, x), y)) in cores
            .iter()
            .zip(input.chunks_exact(2))
            .zip(output.chunks_exact_mut(2))
            .enumerate()
        {
            let t = self.realised(layer, k, c);
            y[0] = t[0] * x[0] + t[1] * x[1];
            y[1] = t[2] * x[0] + t[3] * x[1];
        }
        let sigma = self.imperfections.detector_noise;
        if sigma > 0.0 {
            let rms = (output.iter().map(|v| v * v).sum::<f64>() / output.len() as f64).sqrt();
            let mut r = substream(derive_seed(self.imperfections.seed, &[0x004e_4f49_5345, shot]), 0);
            for y in output.iter_mut() {
                let n: f64 = StandardNormal.sample(&mut r);
                *y += sigma * rms * n;
            }
        }
    }
}

/// A chip that counts its runs (what the result reports as forward runs).
#[derive(Clone, Debug)]
pub struct CountedPic<C> {
    chip: C,
    runs: u64,
}

impl<C> CountedPic<C> {
    /// Wraps `chip` with a count of zero.
    pub fn new(chip: C) -> Self {
        Self { chip, runs: 0 }
    }
    /// Runs made so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }
}

impl<C: PicChip> PicChip for CountedPic<C> {
    fn run(&mut self, layer: usize, cores: &[SymmetricCore], input: &[f64], output: &mut [f64], shot: u64) {
        self.runs += 1;
        self.chip.run(layer, cores, input, output, shot);
    }
}

/// The cores a trainer programs from the flat parameters (`[w1, w4]` per core, layer after
/// layer) and the symmetry ratio `r` (`w2 = r·w1`).
pub fn cores_from_parameters(params: &[f32], ratio: f32) -> Vec<Vec<SymmetricCore>> {
    assert_eq!(params.len(), num_parameters(), "wrong number of PIC parameters");
    PIC_NETWORK
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            params[parameter_offset(l)..parameter_offset(l) + 2 * layer.cores()]
                .chunks_exact(2)
                .map(|w| SymmetricCore {
                    w1: w[0],
                    w2: ratio * w[0],
                    w4: w[1],
                })
                .collect()
        })
        .collect()
}

/// How the four features become launched intensities in `[0, 1]` (both use the training set's
/// range; test values are clipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureScaling {
    /// `v / max`: the features' own zero stays zero, so their offsets reach the network.
    #[default]
    Max,
    /// `(v − min)/(max − min)`: the full range of each feature.
    MinMax,
}

/// The 16 launched intensities of one sample: each feature scaled with the training range
/// (`min`, `max` per feature) as `scaling` says, clipped to `[0, 1]`, the quadruple
/// `[f1, f2, f3, f4]` repeated four times (see the module's readings).
pub fn encode_features(features: &[f32], min: &[f32], max: &[f32], scaling: FeatureScaling, out: &mut [f64]) {
    assert_eq!(features.len(), FEATURES);
    assert_eq!(out.len(), PIC_INPUTS);
    for (i, o) in out.iter_mut().enumerate() {
        let f = i % FEATURES;
        let (v, lo, hi) = (f64::from(features[f]), f64::from(min[f]), f64::from(max[f]));
        let scaled = match scaling {
            FeatureScaling::Max if hi > 0.0 => v / hi,
            FeatureScaling::MinMax if hi > lo => (v - lo) / (hi - lo),
            _ => 0.5,
        };
        *o = scaled.clamp(0.0, 1.0);
    }
}

/// Buffers of one sample's passes (allocated once per run).
#[derive(Clone, Debug)]
pub struct PicWorkspace {
    /// What was launched into each layer (data pass).
    launched: Vec<Vec<f64>>,
    /// Measured core outputs of each layer (data pass).
    measured: Vec<Vec<f64>>,
    /// Error at each layer's core outputs (`∂L/∂z_l`).
    output_error: Vec<Vec<f64>>,
    /// Error at each layer's input (`∂L/∂x_l`), measured by the error pass (layer 0 unused).
    input_error: Vec<Vec<f64>>,
    positive: Vec<f64>,
    negative: Vec<f64>,
    measured_positive: Vec<f64>,
}

impl Default for PicWorkspace {
    fn default() -> Self {
        let per_layer = || PIC_NETWORK.iter().map(|l| vec![0.0; l.channels]).collect::<Vec<_>>();
        Self {
            launched: per_layer(),
            measured: per_layer(),
            output_error: per_layer(),
            input_error: per_layer(),
            positive: vec![0.0; PIC_INPUTS],
            negative: vec![0.0; PIC_INPUTS],
            measured_positive: vec![0.0; PIC_INPUTS],
        }
    }
}

impl PicWorkspace {
    /// The error at layer `layer`'s input measured by the last [`ffm_sample_gradient`]
    /// (`∂L/∂x_l`; layer 0 is not measured: nothing upstream is trained).
    pub fn input_error(&self, layer: usize) -> &[f64] {
        &self.input_error[layer]
    }
    /// The intensities launched into layer `layer` by the last data pass.
    pub fn launched(&self, layer: usize) -> &[f64] {
        &self.launched[layer]
    }
}

/// Shot label of a run: distinct for every (sample, pass, layer, part) of a step.
fn shot(base: u64, pass: u64, layer: usize) -> u64 {
    derive_seed(base, &[pass, layer as u64])
}

/// The data pass: launches `input` (16 intensities) through every layer of `chip`, recording
/// what each layer received and measured; returns the four outputs. 5 runs.
pub fn data_pass<C: PicChip>(
    chip: &mut C,
    cores: &[Vec<SymmetricCore>],
    input: &[f64],
    ws: &mut PicWorkspace,
    shot_base: u64,
) -> [f64; PIC_OUTPUTS] {
    ws.launched[0].copy_from_slice(input);
    let mut out = [0.0; PIC_OUTPUTS];
    for (l, layer) in PIC_NETWORK.iter().enumerate() {
        let (launched, rest) = ws.launched.split_at_mut(l + 1);
        chip.run(l, &cores[l], &launched[l], &mut ws.measured[l], shot(shot_base, 0, l));
        let z = &ws.measured[l];
        let detected = |i: usize| if layer.pair_sum { z[2 * i] + z[2 * i + 1] } else { z[i] };
        match layer.shuffle {
            // re-launched by a modulator: a negative (noisy) reading launches nothing
            Some(table) => {
                for (x, &t) in rest[0].iter_mut().zip(table) {
                    *x = detected(t).max(0.0);
                }
            }
            None => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = detected(i);
                }
            }
        }
    }
    out
}

/// Softmax cross-entropy of `gain·outputs` against `label`, in f64; writes `∂L/∂outputs`.
fn cross_entropy(outputs: &[f64; PIC_OUTPUTS], gain: f64, label: usize, grad: &mut [f64; PIC_OUTPUTS]) -> f64 {
    let max = outputs.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(gain * v));
    let mut sum = 0.0;
    for (g, &o) in grad.iter_mut().zip(outputs) {
        *g = (gain * o - max).exp();
        sum += *g;
    }
    for (i, g) in grad.iter_mut().enumerate() {
        let p = *g / sum;
        *g = gain * (p - if i == label { 1.0 } else { 0.0 });
    }
    sum.ln() + max - gain * outputs[label]
}

/// The FFM gradient of one sample's cross-entropy with respect to the parameters
/// (`[w1, w4]` per core, [`cores_from_parameters`] with `ratio`), **added** to `grad`;
/// returns the loss. Data pass (5 runs), then the error pass: for each layer from the last,
/// the output error (fanned out where outputs were summed) gives the layer's weight gradient
/// with the recorded input, and — except for the first layer — is launched forward into the
/// same cores as its positive and negative parts (2 runs), giving the error at the layer's
/// input, which the inverse shuffle carries to the previous layer's outputs. 13 runs.
#[allow(clippy::too_many_arguments)]
pub fn ffm_sample_gradient<C: PicChip>(
    chip: &mut C,
    cores: &[Vec<SymmetricCore>],
    ratio: f32,
    output_gain: f64,
    input: &[f64],
    label: usize,
    ws: &mut PicWorkspace,
    grad: &mut [f64],
    shot_base: u64,
) -> f64 {
    assert_eq!(grad.len(), num_parameters(), "wrong gradient length");
    let outputs = data_pass(chip, cores, input, ws, shot_base);
    let mut d_out = [0.0; PIC_OUTPUTS];
    let loss = cross_entropy(&outputs, output_gain, label, &mut d_out);
    let r = f64::from(ratio);
    for l in (0..PIC_NETWORK.len()).rev() {
        let layer = PIC_NETWORK[l];
        // ∂L/∂(detected outputs of layer l): the loss's for the last layer; otherwise the error
        // measured at the next layer's input, carried back by the inverse shuffle (digital), and
        // stopped where a negative reading was launched as zero (x = max(0, y))
        let mut detected_error = [0.0f64; PIC_INPUTS];
        match layer.shuffle {
            None => detected_error[..PIC_OUTPUTS].copy_from_slice(&d_out),
            Some(table) => {
                let z = &ws.measured[l];
                for (j, &t) in table.iter().enumerate() {
                    let detected = if layer.pair_sum { z[2 * t] + z[2 * t + 1] } else { z[t] };
                    detected_error[t] = if detected >= 0.0 { ws.input_error[l + 1][j] } else { 0.0 };
                }
            }
        }
        // → ∂L/∂z_l at the core outputs: a pair sum fans its error out to both outputs
        let g = &mut ws.output_error[l];
        for (i, gi) in g.iter_mut().enumerate() {
            *gi = detected_error[if layer.pair_sum { i / 2 } else { i }];
        }
        // weight gradient: y1 = w1 x1 + r w1 x2, y2 = r w1 x1 + w4 x2
        let x = &ws.launched[l];
        let g = &ws.output_error[l];
        let off = parameter_offset(l);
        for k in 0..layer.cores() {
            let (x1, x2, g1, g2) = (x[2 * k], x[2 * k + 1], g[2 * k], g[2 * k + 1]);
            grad[off + 2 * k] += g1 * x1 + r * (g1 * x2 + g2 * x1);
            grad[off + 2 * k + 1] += g2 * x2;
        }
        if l == 0 {
            break;
        }
        // error pass through the chip: W·g⁺ − W·g⁻ = Wᵀ·g for a symmetric core
        let n = layer.channels;
        for (i, &v) in g.iter().enumerate() {
            ws.positive[i] = v.max(0.0);
            ws.negative[i] = (-v).max(0.0);
        }
        chip.run(
            l,
            &cores[l],
            &ws.positive[..n],
            &mut ws.measured_positive[..n],
            shot(shot_base, 1, l),
        );
        chip.run(
            l,
            &cores[l],
            &ws.negative[..n],
            &mut ws.input_error[l],
            shot(shot_base, 2, l),
        );
        for (e, &p) in ws.input_error[l].iter_mut().zip(&ws.measured_positive[..n]) {
            *e = p - *e;
        }
    }
    loss
}

/// Physical runs of one sample's FFM gradient: 5 data runs and 2 error runs per layer after
/// the first.
pub const RUNS_PER_SAMPLE: u64 = 5 + 2 * 4;

/// Everything that defines one PIC run (serialisable; part of the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PicSpec {
    /// Symmetry ratio `r = w2/w1` held fixed during training (paper: 1.0, 0.75, 0.5).
    pub ratio: f32,
    /// Training epochs (paper: "approximately 100 epochs to converge").
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Logits are `output_gain ×` the four detected outputs (the detector's gain).
    pub output_gain: f64,
    /// Seed of the run: the Iris split (the caller's), the initial weights, the batch order.
    pub seed: u64,
    /// How features become intensities.
    pub scaling: FeatureScaling,
    /// Where training and testing happen.
    pub mode: TrainingMode,
    /// The fabricated chip (used by `InSilico` for testing and by `InSitu` throughout).
    pub imperfections: PicImperfections,
}

impl Default for PicSpec {
    /// The defaults of `docs/ffm.md` (batch, learning rate and gain chosen by measurement on the
    /// digital model; the paper gives none).
    fn default() -> Self {
        Self {
            ratio: 1.0,
            epochs: 100,
            batch: 8,
            lr: 0.002,
            output_gain: 8.0,
            seed: 0,
            scaling: FeatureScaling::default(),
            mode: TrainingMode::InSitu,
            imperfections: PicImperfections::realistic(),
        }
    }
}

impl PicSpec {
    fn validate(&self) -> Result<(), FfmError> {
        let bad = |m: String| Err(FfmError::InvalidSpec(m));
        if !(self.ratio.is_finite() && (0.0..=1.0).contains(&self.ratio)) {
            return bad(format!("ratio must be in [0, 1], got {}", self.ratio));
        }
        if self.batch == 0 {
            return bad("batch must be ≥ 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be finite and > 0, got {}", self.lr));
        }
        if !(self.output_gain.is_finite() && self.output_gain > 0.0) {
            return bad(format!("output_gain must be finite and > 0, got {}", self.output_gain));
        }
        self.imperfections.validate()
    }
}

/// Outcome of a PIC run (serialisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PicResult {
    /// The spec that produced it.
    pub spec: PicSpec,
    /// `"ok"` or `"diverged"` (a non-finite loss or gradient ended training).
    pub status: String,
    /// Where training diverged (`None` for `"ok"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
    /// Test accuracy on the test system (digital model for `Ideal`, the chip otherwise).
    pub test_accuracy: f64,
    /// Training accuracy on the same system.
    pub train_accuracy: f64,
    /// `InSilico` only: the test accuracy of the same weights on the digital model (the `Ideal`
    /// result of the same spec, whose training is identical).
    #[serde(default)]
    pub model_test_accuracy: Option<f64>,
    /// Mean training loss per epoch.
    pub loss_curve: Vec<f64>,
    /// Test accuracy after each epoch.
    pub test_accuracy_curve: Vec<f64>,
    /// Seed 002 Fig. 5e's "gradient error": `‖g − g*‖/‖g*‖` at the trained weights, where `g`
    /// is the mean gradient over the training set as training measures it (FFM on the chip for
    /// `InSitu`, on the model otherwise) and `g*` the true gradient of the test system (the
    /// chip without detector noise, or the model for `Ideal`) with respect to the commanded
    /// weights, by central differences — an oracle only a simulation has.
    pub gradient_error: f64,
    /// Wall time of training (seconds), evaluation excluded.
    pub train_seconds: f64,
    /// Layer runs made during training on the training system.
    pub forward_runs: u64,
    /// Of those, the runs on the chip (0 unless `InSitu`).
    pub physical_forward_runs: u64,
}

/// A finished run: its result and its trained weights (`[w1, w4]` per core, layer after layer).
#[derive(Clone, Debug, PartialEq)]
pub struct PicTrained {
    /// The result.
    pub result: PicResult,
    /// The trained parameters (what the chip's attenuators are commanded to).
    pub parameters: Vec<f32>,
}

/// The encoded samples of a data set and their labels.
struct Encoded {
    inputs: Vec<[f64; PIC_INPUTS]>,
    labels: Vec<usize>,
}

fn encode(set: &Dataset, min: &[f32], max: &[f32], scaling: FeatureScaling, what: &str) -> Result<Encoded, FfmError> {
    let bad = |m: String| FfmError::InvalidSpec(format!("{what} set: {m}"));
    if set.features() != FEATURES {
        return Err(bad(format!(
            "{} features per sample, the PIC network needs 4",
            set.features()
        )));
    }
    let labels = set.labels().ok_or_else(|| bad("not a classification set".into()))?;
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= PIC_OUTPUTS) {
        return Err(bad(format!("label {l}: the network has {PIC_OUTPUTS} outputs")));
    }
    let mut inputs = Vec::with_capacity(set.len());
    for (j, col) in set.inputs.column_iter().enumerate() {
        let f: Vec<f32> = col.iter().copied().collect();
        if f.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!("sample {j} has a non-finite feature")));
        }
        let mut x = [0.0; PIC_INPUTS];
        encode_features(&f, min, max, scaling, &mut x);
        inputs.push(x);
    }
    Ok(Encoded {
        inputs,
        labels: labels.iter().map(|&l| l as usize).collect(),
    })
}

/// Each feature's smallest and largest value over the training set.
fn feature_range(set: &Dataset) -> Result<(Vec<f32>, Vec<f32>), FfmError> {
    if set.features() != FEATURES {
        return Err(FfmError::InvalidSpec(format!(
            "training set: {} features per sample, the PIC network needs 4",
            set.features()
        )));
    }
    let mut min = vec![f32::INFINITY; FEATURES];
    let mut max = vec![f32::NEG_INFINITY; FEATURES];
    for col in set.inputs.column_iter() {
        for f in 0..FEATURES {
            min[f] = min[f].min(col[f]);
            max[f] = max[f].max(col[f]);
        }
    }
    Ok((min, max))
}

/// Accuracy of `params` on `chip` (argmax over the four outputs; noisy chips measure each
/// sample once, shots labelled by `shot_domain`).
fn accuracy<C: PicChip>(chip: &mut C, params: &[f32], ratio: f32, data: &Encoded, shot_domain: u64) -> f64 {
    if data.labels.is_empty() {
        return 0.0;
    }
    let cores = cores_from_parameters(params, ratio);
    let mut ws = PicWorkspace::default();
    let correct = data
        .inputs
        .iter()
        .zip(&data.labels)
        .enumerate()
        .filter(|(j, (x, &label))| {
            let out = data_pass(chip, &cores, &x[..], &mut ws, derive_seed(shot_domain, &[*j as u64]));
            let best = (0..PIC_OUTPUTS).fold(0, |b, i| if out[i] > out[b] { i } else { b });
            best == label
        })
        .count();
    correct as f64 / data.labels.len() as f64
}

/// The mean training loss of `params` on the noise-free `chip` (f64).
fn mean_loss<C: PicChip>(chip: &mut C, params: &[f32], ratio: f32, gain: f64, data: &Encoded) -> f64 {
    let cores = cores_from_parameters(params, ratio);
    let mut ws = PicWorkspace::default();
    let mut d = [0.0; PIC_OUTPUTS];
    data.inputs
        .iter()
        .zip(&data.labels)
        .map(|(x, &label)| cross_entropy(&data_pass(chip, &cores, &x[..], &mut ws, 0), gain, label, &mut d))
        .sum::<f64>()
        / data.labels.len().max(1) as f64
}

/// The mean FFM gradient of the whole set measured on `chip` (f64).
fn mean_gradient<C: PicChip>(
    chip: &mut C,
    params: &[f32],
    spec: &PicSpec,
    data: &Encoded,
    shot_domain: u64,
) -> Vec<f64> {
    let cores = cores_from_parameters(params, spec.ratio);
    let mut ws = PicWorkspace::default();
    let mut grad = vec![0.0; num_parameters()];
    for (j, (x, &label)) in data.inputs.iter().zip(&data.labels).enumerate() {
        ffm_sample_gradient(
            chip,
            &cores,
            spec.ratio,
            spec.output_gain,
            &x[..],
            label,
            &mut ws,
            &mut grad,
            derive_seed(shot_domain, &[j as u64]),
        );
    }
    let n = data.labels.len().max(1) as f64;
    grad.iter_mut().for_each(|g| *g /= n);
    grad
}

/// Seed 002 Fig. 5e's gradient error (see [`PicResult::gradient_error`]): `measured` against
/// central differences of the mean loss on the noise-free `truth` system.
fn gradient_error<C: PicChip>(measured: &[f64], truth: &mut C, params: &[f32], spec: &PicSpec, data: &Encoded) -> f64 {
    // weights are f32; a step of 2⁻¹⁰ keeps every commanded value exact
    let h = 1.0 / 1024.0f32;
    let mut p = params.to_vec();
    let (mut diff, mut norm) = (0.0, 0.0);
    for i in 0..p.len() {
        let w = p[i];
        // one-sided at the ends of [0, 1], where the attenuator's response stops
        let (lo, hi) = ((w - h).max(0.0), (w + h).min(1.0));
        p[i] = hi;
        let up = mean_loss(truth, &p, spec.ratio, spec.output_gain, data);
        p[i] = lo;
        let down = mean_loss(truth, &p, spec.ratio, spec.output_gain, data);
        p[i] = w;
        let exact = (up - down) / (f64::from(hi) - f64::from(lo));
        diff += (measured[i] - exact).powi(2);
        norm += exact * exact;
    }
    if norm > 0.0 {
        (diff / norm).sqrt()
    } else {
        0.0
    }
}

/// What the training loop hands back.
struct Trained {
    params: Vec<f32>,
    loss_curve: Vec<f64>,
    test_accuracy_curve: Vec<f64>,
    divergence: Option<String>,
    seconds: f64,
}

/// The training loop on `chip`, which it can only run forward: Adam on the mean FFM gradient of
/// each mini-batch (samples in order), weights clipped to `[0, 1]`; `test` is called after each
/// epoch.
fn train_on<C: PicChip>(
    chip: &mut C,
    spec: &PicSpec,
    train: &Encoded,
    mut test: impl FnMut(&[f32], usize) -> f64,
) -> Trained {
    let mut params: Vec<f32> = {
        let mut r = rng(derive_seed(spec.seed, &[DOMAIN_PIC, DOMAIN_INIT]));
        (0..num_parameters()).map(|_| r.random_range(0.25f32..0.75)).collect()
    };
    let mut adam = Adam::new(params.len(), spec.lr);
    let n = train.labels.len();
    let mut order = Vec::new();
    let mut grad = vec![0.0f64; num_parameters()];
    let mut grad32 = vec![0.0f32; num_parameters()];
    let mut ws = PicWorkspace::default();
    let (mut loss_curve, mut test_accuracy_curve) = (Vec::new(), Vec::new());
    let mut divergence = None;
    let mut seconds = 0.0;
    'epochs: for epoch in 0..spec.epochs {
        let started = Instant::now();
        epoch_permutation(
            n,
            derive_seed(spec.seed, &[DOMAIN_PIC, DOMAIN_BATCHES]),
            epoch as u64,
            &mut order,
        );
        let mut loss_sum = 0.0;
        for (step, batch) in order.chunks(spec.batch).enumerate() {
            let cores = cores_from_parameters(&params, spec.ratio);
            grad.iter_mut().for_each(|g| *g = 0.0);
            for &j in batch {
                let shots = derive_seed(spec.seed, &[DOMAIN_PIC, epoch as u64, step as u64, j as u64]);
                let loss = ffm_sample_gradient(
                    chip,
                    &cores,
                    spec.ratio,
                    spec.output_gain,
                    &train.inputs[j],
                    train.labels[j],
                    &mut ws,
                    &mut grad,
                    shots,
                );
                if !loss.is_finite() {
                    divergence = Some(format!(
                        "epoch {}, mini-batch {}: the loss of training sample {j} is {loss}",
                        epoch + 1,
                        step + 1
                    ));
                    break 'epochs;
                }
                loss_sum += loss;
            }
            if let Some(i) = grad.iter().position(|g| !g.is_finite()) {
                divergence = Some(format!(
                    "epoch {}, mini-batch {}: gradient entry {i} is not finite",
                    epoch + 1,
                    step + 1
                ));
                break 'epochs;
            }
            for (g32, &g) in grad32.iter_mut().zip(&grad) {
                *g32 = (g / batch.len() as f64) as f32;
            }
            adam.step(&mut params, &grad32);
            params.iter_mut().for_each(|w| *w = w.clamp(0.0, 1.0));
        }
        seconds += started.elapsed().as_secs_f64();
        loss_curve.push(loss_sum / n as f64);
        test_accuracy_curve.push(test(&params, epoch));
    }
    Trained {
        params,
        loss_curve,
        test_accuracy_curve,
        divergence,
        seconds,
    }
}

const DOMAIN_PIC: u64 = 0x0050_4943;
const DOMAIN_INIT: u64 = 1;
const DOMAIN_BATCHES: u64 = 2;
const DOMAIN_TEST: u64 = 3;
const DOMAIN_GRADIENT: u64 = 4;

/// Trains the PIC network on `data` (Iris: 4 features, labels < 4) as `spec` says: `Ideal`
/// trains and tests on [`IdealPic`], `InSilico` trains there and tests on the
/// [`FabricatedPic`] of `spec.imperfections`, `InSitu` trains that chip with FFM (it only runs
/// it forward) and tests it. Features are scaled with the training set's range.
pub fn run_pic(spec: &PicSpec, data: &TrainTest) -> Result<PicTrained, FfmError> {
    spec.validate()?;
    let (min, max) = feature_range(&data.train)?;
    let train = encode(&data.train, &min, &max, spec.scaling, "training")?;
    let test = encode(&data.test, &min, &max, spec.scaling, "test")?;
    if train.labels.is_empty() {
        return Err(FfmError::InvalidSpec("the training set is empty".into()));
    }
    let chip = FabricatedPic::new(&spec.imperfections)?;
    let quiet_chip = FabricatedPic::new(&PicImperfections {
        detector_noise: 0.0,
        ..spec.imperfections.clone()
    })?;
    let test_domain = |epoch: u64| derive_seed(spec.seed, &[DOMAIN_PIC, DOMAIN_TEST, epoch]);
    let on_test_system = |params: &[f32], set: &Encoded, domain: u64| match spec.mode {
        TrainingMode::Ideal => accuracy(&mut IdealPic, params, spec.ratio, set, domain),
        TrainingMode::InSilico | TrainingMode::InSitu => accuracy(&mut chip.clone(), params, spec.ratio, set, domain),
    };
    let test_each_epoch = |params: &[f32], epoch: usize| on_test_system(params, &test, test_domain(epoch as u64));
    let (trained, runs) = if spec.mode == TrainingMode::InSitu {
        let mut counted = CountedPic::new(chip.clone());
        (train_on(&mut counted, spec, &train, test_each_epoch), counted.runs())
    } else {
        let mut counted = CountedPic::new(IdealPic);
        (train_on(&mut counted, spec, &train, test_each_epoch), counted.runs())
    };
    let params = trained.params;
    let last = test_domain(u64::MAX);
    let test_accuracy = on_test_system(&params, &test, last);
    let train_accuracy = on_test_system(&params, &train, last ^ 1);
    let model_test_accuracy =
        (spec.mode == TrainingMode::InSilico).then(|| accuracy(&mut IdealPic, &params, spec.ratio, &test, last));
    let gradient_domain = derive_seed(spec.seed, &[DOMAIN_PIC, DOMAIN_GRADIENT]);
    let gradient_error = match spec.mode {
        TrainingMode::Ideal => {
            let measured = mean_gradient(&mut IdealPic, &params, spec, &train, gradient_domain);
            gradient_error(&measured, &mut IdealPic, &params, spec, &train)
        }
        TrainingMode::InSilico => {
            let measured = mean_gradient(&mut IdealPic, &params, spec, &train, gradient_domain);
            gradient_error(&measured, &mut quiet_chip.clone(), &params, spec, &train)
        }
        TrainingMode::InSitu => {
            let measured = mean_gradient(&mut chip.clone(), &params, spec, &train, gradient_domain);
            gradient_error(&measured, &mut quiet_chip.clone(), &params, spec, &train)
        }
    };
    Ok(PicTrained {
        result: PicResult {
            spec: spec.clone(),
            status: if trained.divergence.is_some() { "diverged" } else { "ok" }.into(),
            divergence: trained.divergence,
            test_accuracy,
            train_accuracy,
            model_test_accuracy,
            loss_curve: trained.loss_curve,
            test_accuracy_curve: trained.test_accuracy_curve,
            gradient_error,
            train_seconds: trained.seconds,
            forward_runs: runs,
            physical_forward_runs: if spec.mode == TrainingMode::InSitu { runs } else { 0 },
        },
        parameters: params,
    })
}
