//! Imaging hidden phase objects (seed 002 Extended Data Fig. 4a; Methods "NLOS scene imaging
//! and processing"): the hidden plane shows a phase digit (an MNIST image, pixel values mapped to
//! phase 0…π) and the camera, around the corner, must show its intensity image.
//!
//! - **FFM** learns one mask for the learned digits (the paper: one image each of '0', '2', '7'
//!   and '9', "four handwritten digits employed for learning"): Adam on the sum over the digits
//!   of the FFM gradient of SPEC B3's max-normalised intensity MSE against the digit's binarised
//!   image on the camera (Methods: "the target is obtained by binarizing greyscale images of the
//!   object"; threshold 0.5), the digit's 28 × 28 pixels enlarged to blocks of the object's
//!   square. The recovered image is the camera read over that square at the paper's 28 × 28
//!   resolution (each block's mean), negatives clipped, divided by its maximum.
//! - **The electronic reconstruction** ("an ANN for image reconstruction (Supplementary Note 7)
//!   was trained for the same task"; not available, our reading): ridge regression
//!   ([`RidgeReconstruction`]) from the flat-mask camera read in `ann_bins × ann_bins` bins
//!   (over the frame's mean) to the binarised 28 × 28 image, trained on the same learned digits,
//!   noise-free ("ANN") or on `noise_draws` noisy copies of each at the test's SNR ("ANN-t");
//!   its output clipped to [0, 1].
//!
//! Both are then read at each signal-to-noise ratio of the camera: white Gaussian noise on every
//! pixel of the frame, of variance `mean(I²) / 10^(SNR/10)` over the frame (**reading**: the
//! paper does not say how its SNR was set; this one treats both cameras alike). The similarity
//! is [`super::ssim`] against the binarised 28 × 28 image, mean over the images and the noise
//! draws.
//! The paper reads it on the learned digits; we also image `unseen_per_digit` digits of the
//! same classes from the test split through the same mask (does the mask image a digit it did
//! not learn?).
//!
//! The learner only runs the scene ([`HiddenScene`]); reading the camera with noise and the
//! reconstruction are the experiment's.

use std::time::Instant;

use insitu_data::Dataset;
use insitu_linalg::{derive_seed, rng};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    camera_bins, for_each_scene, image_side, intensity_of, phase_object, scene_side, scene_workers, ssim, HiddenScene,
    MaskLearner, NlosOutcome, NlosResult, NlosSpec, NlosTrained, SceneWorker,
};
use crate::bench::CountingSystem;
use crate::classifier::resize_coordinates;
use crate::gradient::data_pass;
use crate::loss::FieldLoss;
use crate::FfmError;

/// Extended Data Fig. 4a's task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseImagingTask {
    /// The digits imaged (the paper: 0, 2, 7 and 9).
    pub digits: Vec<u32>,
    /// Learned images of each digit: the first ones of that digit in the training split (the
    /// paper: one each).
    pub learned_per_digit: usize,
    /// Unseen images of each digit, the first ones in the test split, imaged through the same
    /// mask (not in the paper).
    pub unseen_per_digit: usize,
    /// Side of the hidden digit's square and of its image on the camera (pixels; a multiple of
    /// the data set's image side, the image resized bilinearly in the hidden plane and by
    /// blocks on the camera).
    pub object_px: usize,
    /// FFM steps, each over all learned digits.
    pub iterations: usize,
    /// Adam learning rate (radians).
    pub lr: f32,
    /// The camera's signal-to-noise ratios to read at (dB).
    pub snr_db: Vec<f64>,
    /// Noise draws per image and SNR (the similarities are their mean); also the noisy copies
    /// of each learned digit "ANN-t" learns from.
    pub noise_draws: usize,
    /// The electronic reconstruction reads the camera in `ann_bins × ann_bins` bins.
    pub ann_bins: usize,
    /// Its ridge penalty, relative to the mean squared norm of its centred training features.
    pub ann_ridge: f64,
}

impl Default for PhaseImagingTask {
    /// [`PhaseImagingTask::at_grid`]`(128)`.
    fn default() -> Self {
        Self::at_grid(128)
    }
}

impl PhaseImagingTask {
    /// The paper's digits 0, 2, 7, 9 (one learned image each) and five unseen ones each, a
    /// digit of the multiple of 28 pixels nearest `n/4` (Fig. 4c's size; 28 at n = 128, 84 at
    /// n = 400), 300 FFM steps at lr 0.1 (Fig. 4b's), SNR −20…30 dB, 8 noise draws, 16 × 16
    /// bins, ridge 10⁻³.
    pub fn at_grid(n: usize) -> Self {
        Self {
            digits: vec![0, 2, 7, 9],
            learned_per_digit: 1,
            unseen_per_digit: 5,
            object_px: 28 * ((n as f64 / 112.0).round() as usize).max(1),
            iterations: 300,
            lr: 0.1,
            snr_db: vec![-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0],
            noise_draws: 8,
            ann_bins: 16,
            ann_ridge: 1e-3,
        }
    }
}

/// Similarity against the camera's SNR for one set of images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SsimCurves {
    /// Images in the set.
    pub images: usize,
    /// FFM's image without noise.
    pub ffm_noise_free: f64,
    /// The electronic reconstruction's without noise.
    pub ann_noise_free: f64,
    /// The flat mask's camera read as FFM's is (no learning; the paper's "Raw").
    pub flat_noise_free: f64,
    /// FFM at each of the task's `snr_db`.
    pub ffm: Vec<f64>,
    /// The reconstruction trained on noise-free images ("ANN").
    pub ann: Vec<f64>,
    /// The reconstruction trained on images with the SNR's noise ("ANN-t").
    pub ann_noise_trained: Vec<f64>,
}

/// What Extended Data Fig. 4a measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseImagingOutcome {
    /// The mean loss over the learned digits at each step's mask, then the final mask's.
    pub loss_curve: Vec<f64>,
    /// The SNRs read at (dB).
    pub snr_db: Vec<f64>,
    /// On the learned digits (the paper's).
    pub learned: SsimCurves,
    /// On the unseen digits.
    pub unseen: SsimCurves,
}

/// Ridge regression from features to images in its kernel (dual) form — `m` training pairs,
/// `m × m` solve — with centred features and targets: the electronic reconstruction of
/// Extended Data Fig. 4a (our reading of the paper's ANN).
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeReconstruction {
    mean_x: Vec<f64>,
    mean_y: Vec<f64>,
    /// Centred training features, `m × d` row-major.
    centred: Vec<f64>,
    /// `(K + λI)⁻¹ Y_c`, `m × p` row-major.
    dual: Vec<f64>,
}

impl RidgeReconstruction {
    /// Fits `x` (`m` rows of `d` features) to `y` (`m` rows of `p` values): minimises
    /// `Σ ‖y_i − ȳ − W(x_i − x̄)‖² + λ‖W‖²` with `λ = ridge · tr(K)/m`, `K` the Gram matrix of
    /// the centred features.
    pub fn fit(x: &[Vec<f64>], y: &[Vec<f64>], ridge: f64) -> Result<Self, FfmError> {
        let m = x.len();
        let bad = |msg: String| Err(FfmError::InvalidSpec(msg));
        if m == 0 || y.len() != m {
            return bad(format!(
                "ridge regression needs ≥ 1 pair, got {m} inputs and {} outputs",
                y.len()
            ));
        }
        let (d, p) = (x[0].len(), y[0].len());
        if x.iter().any(|r| r.len() != d) || y.iter().any(|r| r.len() != p) {
            return bad("ridge regression: rows of unequal length".into());
        }
        if !(ridge.is_finite() && ridge > 0.0) {
            return bad(format!("the ridge penalty must be > 0, got {ridge}"));
        }
        let mean = |rows: &[Vec<f64>], len: usize| -> Vec<f64> {
            let mut out = vec![0.0; len];
            for r in rows {
                for (o, v) in out.iter_mut().zip(r) {
                    *o += v / m as f64;
                }
            }
            out
        };
        let (mean_x, mean_y) = (mean(x, d), mean(y, p));
        let centred: Vec<f64> = x
            .iter()
            .flat_map(|r| r.iter().zip(&mean_x).map(|(v, c)| v - c))
            .collect();
        let row = |i: usize| &centred[i * d..(i + 1) * d];
        let mut gram = DMatrix::from_fn(m, m, |i, j| row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum::<f64>());
        let lambda = ridge * (gram.trace() / m as f64).max(f64::MIN_POSITIVE);
        for i in 0..m {
            gram[(i, i)] += lambda;
        }
        let targets = DMatrix::from_fn(m, p, |i, k| y[i][k] - mean_y[k]);
        let dual = gram
            .cholesky()
            .ok_or_else(|| FfmError::InvalidSpec("ridge regression: the Gram matrix is not positive definite".into()))?
            .solve(&targets);
        if dual.iter().any(|v| !v.is_finite()) {
            return bad("ridge regression: the solve gave non-finite weights (features not finite?)".into());
        }
        Ok(Self {
            mean_x,
            mean_y,
            centred,
            dual: (0..m)
                .flat_map(|i| (0..p).map(move |k| (i, k)))
                .map(|(i, k)| dual[(i, k)])
                .collect(),
        })
    }

    /// The image predicted for the features `x`: `ȳ + Σ_i ⟨x − x̄, x_i − x̄⟩ α_i`.
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let (d, p) = (self.mean_x.len(), self.mean_y.len());
        assert_eq!(x.len(), d, "RidgeReconstruction::predict: wrong feature count");
        let mut out = self.mean_y.clone();
        for (row, alpha) in self.centred.chunks(d).zip(self.dual.chunks(p)) {
            let k: f64 = row
                .iter()
                .zip(x.iter().zip(&self.mean_x))
                .map(|(a, (v, c))| a * (v - c))
                .sum();
            for (o, a) in out.iter_mut().zip(alpha) {
                *o += k * a;
            }
        }
        out
    }
}

/// The first `per_class` images of each of `classes` in `data`, class by class: `(column,
/// class index)`.
fn first_of_each(
    data: &Dataset,
    classes: &[u32],
    per_class: usize,
    what: &str,
) -> Result<Vec<(usize, usize)>, FfmError> {
    let labels = data
        .labels()
        .ok_or_else(|| FfmError::InvalidSpec(format!("the {what} split has no class labels")))?;
    let mut out = Vec::with_capacity(classes.len() * per_class);
    for (k, &c) in classes.iter().enumerate() {
        let found: Vec<(usize, usize)> = labels
            .iter()
            .enumerate()
            .filter(|&(_, l)| *l == c)
            .map(|(j, _)| (j, k))
            .take(per_class)
            .collect();
        if found.len() < per_class {
            return Err(FfmError::InvalidSpec(format!(
                "the {what} split has {} images of digit {c}, the task asks for {per_class}",
                found.len()
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// `intensity` with white Gaussian noise of variance `mean(I²)/10^(snr_db/10)` on every pixel.
pub fn with_camera_noise(intensity: &[f32], snr_db: f64, seed: u64) -> Vec<f32> {
    let power = intensity.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / intensity.len().max(1) as f64;
    let sigma = (power / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    let mut r = rng(seed);
    intensity
        .iter()
        .map(|&v| v + sigma * r.sample::<f32, _>(StandardNormal))
        .collect()
}

/// The camera read over the centred `side · block` square of an `n × n` frame at `side × side`
/// resolution (each `block × block` block's mean), negatives clipped, divided by its maximum
/// (all zero if nothing is left).
fn read_blocks(frame: &[f32], n: usize, side: usize, block: usize) -> Vec<f32> {
    let off = (n - side * block) / 2;
    let mut out = vec![0.0f32; side * side];
    for r in 0..side * block {
        let row = &frame[(off + r) * n + off..(off + r) * n + off + side * block];
        for (c, v) in row.iter().enumerate() {
            out[(r / block) * side + c / block] += v;
        }
    }
    let scale = 1.0 / (block * block) as f32;
    out.iter_mut().for_each(|v| *v = (*v * scale).max(0.0));
    let max = out.iter().fold(0.0f32, |m, &v| m.max(v));
    out.into_iter().map(|v| if max > 0.0 { v / max } else { 0.0 }).collect()
}

/// One image of the experiment: its binarised image (`side × side`) and the noise-free camera
/// frames through the learned and the flat mask.
struct Exposed {
    truth: Vec<f32>,
    through_mask: Vec<f32>,
    through_flat: Vec<f32>,
}

/// Extended Data Fig. 4a on copies of `bench` (one per rayon thread; the result does not depend
/// on their number): FFM-learns one mask for the learned digits, then reads every image through
/// it and through the flat mask at each SNR, against the electronic reconstruction.
pub fn image_hidden_phase_objects<S: HiddenScene + Clone + Send>(
    bench: &S,
    spec: &NlosSpec,
    task: &PhaseImagingTask,
    train: &Dataset,
    test: &Dataset,
) -> Result<NlosTrained, FfmError> {
    let n = scene_side(bench, &spec.scene)?;
    let n2 = n * n;
    let bad = |m: String| Err(FfmError::InvalidSpec(m));
    let k = task.digits.len();
    if k == 0 || (1..k).any(|i| task.digits[..i].contains(&task.digits[i])) {
        return bad(format!("phase imaging needs ≥ 1 distinct digit, got {:?}", task.digits));
    }
    if task.learned_per_digit == 0 || task.unseen_per_digit == 0 || task.noise_draws == 0 {
        return bad("learned_per_digit, unseen_per_digit and noise_draws must be ≥ 1".into());
    }
    if !(task.lr.is_finite() && task.lr > 0.0) {
        return bad(format!("lr must be > 0, got {}", task.lr));
    }
    if task.object_px == 0 || task.object_px > n {
        return bad(format!("object_px must be in 1..={n}, got {}", task.object_px));
    }
    if task.snr_db.iter().any(|s| !s.is_finite()) {
        return bad(format!("snr_db must be finite, got {:?}", task.snr_db));
    }
    let bins = camera_bins(n, task.ann_bins)?;
    let side = image_side(train, test)?;
    if side < 7 || !task.object_px.is_multiple_of(side) {
        return bad(format!(
            "object_px ({}) must be a multiple of the images' side ({side}, at least 7: the similarity window)",
            task.object_px
        ));
    }
    let block = task.object_px / side;
    let learned_idx = first_of_each(train, &task.digits, task.learned_per_digit, "training")?;
    let unseen_idx = first_of_each(test, &task.digits, task.unseen_per_digit, "test")?;
    let coordinates = resize_coordinates(side, task.object_px);
    let input = spec.scene.input();
    // the binarised image of column `j`, and on the camera: the hidden digit's square, each
    // pixel a block
    let truth_of = |data: &Dataset, j: usize| -> Vec<f32> {
        let image = &data.inputs.as_slice()[j * side * side..(j + 1) * side * side];
        image.iter().map(|&v| if v >= 0.5 { 1.0 } else { 0.0 }).collect()
    };
    let on_camera = |truth: &[f32]| -> Vec<f32> {
        let off = (n - task.object_px) / 2;
        let mut out = vec![0.0f32; n2];
        for r in 0..task.object_px {
            for c in 0..task.object_px {
                out[(off + r) * n + off + c] = truth[(r / block) * side + c / block];
            }
        }
        out
    };
    let learned_targets: Vec<Vec<f32>> = learned_idx
        .iter()
        .map(|&(j, _)| on_camera(&truth_of(train, j)))
        .collect();
    let place = |w: &mut SceneWorker<S>, data: &Dataset, j: usize| {
        phase_object(data, j, side, n, &coordinates, &mut w.object);
        w.bench.place_object(&w.object);
    };

    let counted = CountingSystem::new(bench.clone());
    let mut workers = scene_workers(&counted, n2);
    let m = learned_idx.len();
    let mut learner = MaskLearner::new(n2, m, task.lr);
    let mut loss_curve = Vec::with_capacity(task.iterations + 1);
    let started = Instant::now();
    for it in 0..task.iterations {
        let total = learner.step(
            &mut workers,
            &input,
            m,
            |w, b| {
                place(w, train, learned_idx[b].0);
                FieldLoss::NormalizedIntensityMse(&learned_targets[b])
            },
            |b| derive_seed(spec.seed, &[0x4A_F7, it as u64, b as u64]),
            "phase imaging around the corner",
            it + 1,
        )?;
        loss_curve.push(total / m as f64);
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let forward_runs = counted.count();

    // every image through the learned and the flat mask, noise-free (and the final mask's loss)
    let flat = vec![vec![0.0f32; n2]];
    let mask = &learner.phases;
    let mut expose = |data: &Dataset, idx: &[(usize, usize)], split: u64| {
        let mut out: Vec<Option<(Exposed, f64)>> = (0..idx.len()).map(|_| None).collect();
        for_each_scene(&mut workers, &mut out, |w, i, o| {
            let truth = truth_of(data, idx[i].0);
            place(w, data, idx[i].0);
            let shot = |which: u64| derive_seed(spec.seed, &[0x4A_E0, split, which, i as u64]);
            data_pass(&mut w.bench, mask, &[], &input, &mut w.ws, shot(0));
            let through_mask = intensity_of(w.ws.output());
            let loss = FieldLoss::NormalizedIntensityMse(&on_camera(&truth)).eval(w.ws.output(), &mut w.object);
            data_pass(&mut w.bench, &flat, &[], &input, &mut w.ws, shot(1));
            let through_flat = intensity_of(w.ws.output());
            *o = Some((
                Exposed {
                    truth,
                    through_mask,
                    through_flat,
                },
                loss,
            ));
        });
        out.into_iter()
            .map(|e| e.expect("every image exposed"))
            .unzip::<_, _, Vec<_>, Vec<_>>()
    };
    let (learned, learned_losses) = expose(train, &learned_idx, 0);
    let (unseen, _) = expose(test, &unseen_idx, 1);
    loss_curve.push(learned_losses.iter().sum::<f64>() / m as f64);

    let crop = |frame: &[f32]| read_blocks(frame, n, side, block);
    let similarity = |image: &[f32], e: &Exposed| ssim(image, &e.truth, side, side);
    let features = |frame: &[f32]| -> Vec<f64> {
        let mut sums = vec![0.0f32; bins.len()];
        bins.integrate(frame, &mut sums);
        let mean = frame.iter().map(|&v| f64::from(v)).sum::<f64>() / frame.len() as f64;
        sums.iter().map(|&s| f64::from(s) / mean.max(1e-300)).collect()
    };
    let reconstructed = |model: &RidgeReconstruction, frame: &[f32]| -> Vec<f32> {
        model
            .predict(&features(frame))
            .iter()
            .map(|&v| v.clamp(0.0, 1.0) as f32)
            .collect()
    };
    let train_targets: Vec<Vec<f64>> = learned
        .iter()
        .map(|e| e.truth.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let ann = RidgeReconstruction::fit(
        &learned.iter().map(|e| features(&e.through_flat)).collect::<Vec<_>>(),
        &train_targets,
        task.ann_ridge,
    )?;
    let mean_of = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
        sum / count.max(1) as f64
    };
    // every (set, SNR) on its own: seeded draws, in parallel, collected in order
    let sets: [&[Exposed]; 2] = [&learned, &unseen];
    let points: Vec<(usize, usize)> = (0..2)
        .flat_map(|s| (0..task.snr_db.len()).map(move |l| (s, l)))
        .collect();
    let draws = task.noise_draws;
    let measured: Vec<[f64; 3]> = points
        .par_iter()
        .map(|&(s, l)| -> Result<[f64; 3], FfmError> {
            let snr = task.snr_db[l];
            let noisy = |role: u64, i: usize, d: usize, frame: &[f32]| {
                with_camera_noise(
                    frame,
                    snr,
                    derive_seed(spec.seed, &[0x4A_A0, s as u64, l as u64, role, i as u64, d as u64]),
                )
            };
            // "ANN-t": trained on noisy copies of the learned digits' flat-mask frames
            let (mut x, mut y) = (Vec::with_capacity(m * draws), Vec::with_capacity(m * draws));
            for (i, e) in learned.iter().enumerate() {
                for d in 0..draws {
                    x.push(features(&noisy(9, i, d, &e.through_flat)));
                    y.push(train_targets[i].clone());
                }
            }
            let ann_t = RidgeReconstruction::fit(&x, &y, task.ann_ridge)?;
            let set = sets[s];
            let pairs = || (0..set.len()).flat_map(|i| (0..draws).map(move |d| (i, d)));
            let ffm =
                mean_of(&mut pairs().map(|(i, d)| similarity(&crop(&noisy(0, i, d, &set[i].through_mask)), &set[i])));
            let (mut ann_sum, mut ann_t_sum) = (0.0, 0.0);
            for (i, d) in pairs() {
                let frame = noisy(1, i, d, &set[i].through_flat);
                ann_sum += similarity(&reconstructed(&ann, &frame), &set[i]);
                ann_t_sum += similarity(&reconstructed(&ann_t, &frame), &set[i]);
            }
            let count = (set.len() * draws).max(1) as f64;
            Ok([ffm, ann_sum / count, ann_t_sum / count])
        })
        .collect::<Result<_, _>>()?;
    let curves = |s: usize, set: &[Exposed]| {
        let rows = &measured[s * task.snr_db.len()..(s + 1) * task.snr_db.len()];
        SsimCurves {
            images: set.len(),
            ffm_noise_free: mean_of(&mut set.iter().map(|e| similarity(&crop(&e.through_mask), e))),
            ann_noise_free: mean_of(&mut set.iter().map(|e| similarity(&reconstructed(&ann, &e.through_flat), e))),
            flat_noise_free: mean_of(&mut set.iter().map(|e| similarity(&crop(&e.through_flat), e))),
            ffm: rows.iter().map(|r| r[0]).collect(),
            ann: rows.iter().map(|r| r[1]).collect(),
            ann_noise_trained: rows.iter().map(|r| r[2]).collect(),
        }
    };
    let outcome = PhaseImagingOutcome {
        loss_curve,
        snr_db: task.snr_db.clone(),
        learned: curves(0, &learned),
        unseen: curves(1, &unseen),
    };
    Ok(NlosTrained {
        result: NlosResult {
            spec: spec.clone(),
            outcome: NlosOutcome::PhaseImaging(outcome),
            forward_runs,
            train_seconds,
        },
        phase: learner.phases.remove(0),
        // the learned digits through the mask, then the unseen ones
        images: learned.into_iter().chain(unseen).map(|e| e.through_mask).collect(),
    })
}
