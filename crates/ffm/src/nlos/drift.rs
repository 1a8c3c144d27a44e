//! Classifying hidden objects while the wall turns (seed 002 Extended Data Fig. 4b;
//! Supplementary Fig. 14): the scattering surface rotates about its centre by a fixed angle
//! between iterations (the paper's `v₁ = 1.0` and `v₂ = 2.5` degrees per iteration), and two
//! learners keep learning on the scene as it is now.
//!
//! - **FFM** learns the mask in situ: one Adam step per iteration on the mini-batch's FFM
//!   gradient, measured on the scene of that iteration (Fig. 4c's learner, run online).
//! - **The electronic classifier** (softmax regression on the flat-mask camera read in bins, as
//!   in Fig. 4c) learns from camera images of the same scene: one Adam step per iteration on
//!   the same mini-batch's images. **Reading:** the paper's "in silico ANN" (Supplementary Note
//!   7) is not available; this is the most favourable electronic learner we can give it — it
//!   sees the current scene every iteration, as FFM does. Its features are standardised with
//!   the statistics of the first iteration's images.
//!
//! Every `eval_every` iterations (and after the last) both are tested on the test samples
//! through the scene as it is then. The wall turns between iterations, never within one.
//!
//! The learners only run the scene ([`HiddenScene`]); the experiment turns the wall
//! ([`TurningWall`]) — what the world does, not what a learner may call.

use std::time::Instant;

use insitu_data::{epoch_permutation, Dataset};
use insitu_linalg::derive_seed;
use insitu_optim::{Adam, StepRule};
use serde::{Deserialize, Serialize};

use super::{
    argmax, expose, for_each_scene, scene_workers, ClassificationTask, Exposure, HiddenDigits, HiddenScene,
    MaskLearner, NlosOutcome, NlosResult, NlosSpec, NlosTrained, SoftmaxRegression, TurningWall,
};
use crate::bench::CountingSystem;
use crate::FfmError;

/// Extended Data Fig. 4b's task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftTask {
    /// The classification set-up (classes, samples, digit and detector sizes, batch, FFM's
    /// learning rate, the baseline's bins); its `epochs` and `photons_per_pixel` are not used.
    pub classification: ClassificationTask,
    /// How far the wall turns between iterations (degrees; the paper's `v₁ = 1.0`,
    /// `v₂ = 2.5`).
    pub degrees_per_iteration: f64,
    /// Iterations (mini-batches) in all.
    pub iterations: usize,
    /// Test both learners every this many iterations.
    pub eval_every: usize,
    /// The electronic classifier's Adam learning rate.
    pub ann_lr: f32,
}

impl Default for DriftTask {
    /// [`DriftTask::at_grid`]`(128)`.
    fn default() -> Self {
        Self::at_grid(128)
    }
}

impl DriftTask {
    /// Fig. 4c's set-up on an `n × n` grid (200 test samples) with FFM's learning rate 0.5 (it
    /// must learn within tens of iterations: at Fig. 4c's 0.05 it needs hundreds), the wall
    /// turning by `v₁`, 300 iterations of 20, tested every 10; the electronic learner's rate
    /// 0.05 (measured at n = 128 on a still wall: FFM 99 % after 50 iterations, the electronic
    /// classifier 100 %).
    pub fn at_grid(n: usize) -> Self {
        Self {
            classification: ClassificationTask {
                lr: 0.5,
                ..ClassificationTask::at_grid(n)
            },
            degrees_per_iteration: 1.0,
            iterations: 300,
            eval_every: 10,
            ann_lr: 0.05,
        }
    }
}

/// What Extended Data Fig. 4b measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftOutcome {
    /// The iterations after which both learners were tested (0: before the first step).
    pub iterations: Vec<usize>,
    /// The wall's angle at each test (degrees).
    pub wall_degrees: Vec<f64>,
    /// FFM's test accuracy at each test.
    pub ffm_accuracy: Vec<f64>,
    /// The electronic classifier's test accuracy at each test.
    pub ann_accuracy: Vec<f64>,
    /// The mean FFM training loss of each iteration's mini-batch.
    pub loss_curve: Vec<f64>,
}

/// Extended Data Fig. 4b on copies of `bench` (one per rayon thread; the result does not
/// depend on their number).
pub fn classify_while_the_wall_turns<S: HiddenScene + TurningWall + Clone + Send>(
    bench: &S,
    spec: &NlosSpec,
    task: &DriftTask,
    train: &Dataset,
    test: &Dataset,
) -> Result<NlosTrained, FfmError> {
    let bad = |m: String| Err(FfmError::InvalidSpec(m));
    if task.iterations == 0 || task.eval_every == 0 {
        return bad("iterations and eval_every must be ≥ 1".into());
    }
    if !task.degrees_per_iteration.is_finite() {
        return bad(format!(
            "degrees_per_iteration must be finite, got {}",
            task.degrees_per_iteration
        ));
    }
    if !(task.ann_lr.is_finite() && task.ann_lr > 0.0) {
        return bad(format!("ann_lr must be > 0, got {}", task.ann_lr));
    }
    let digits = HiddenDigits::new(bench, spec, &task.classification, train, test)?;
    let HiddenDigits {
        n,
        side,
        ref regions,
        ref bins,
        ref train_idx,
        ref test_idx,
        ref coordinates,
        ref input,
        ..
    } = digits;
    let n2 = n * n;
    let k = task.classification.classes.len();
    let counted = CountingSystem::new(bench.clone());
    let mut workers = scene_workers(&counted, n2);
    let flat = vec![vec![0.0f32; n2]];
    let batch = task.classification.batch.min(train_idx.len());
    let mut learner = MaskLearner::new(n2, batch, task.classification.lr);
    let features = bins.len();
    let mut ann: Option<SoftmaxRegression> = None;
    let mut ann_adam = Adam::new(k * (features + 1), task.ann_lr);
    let (mut ann_grad, mut ann_grad32) = (vec![0.0f64; k * (features + 1)], vec![0.0f32; k * (features + 1)]);
    let l2 = 1e-3;
    let test_labels: Vec<usize> = test_idx.iter().map(|&(_, c)| c).collect();
    let relative = |e: &Exposure| -> Vec<f64> { e.bins.iter().map(|b| b / e.mean.max(1e-300)).collect() };
    let mut outcome = DriftOutcome {
        iterations: Vec::new(),
        wall_degrees: Vec::new(),
        ffm_accuracy: Vec::new(),
        ann_accuracy: Vec::new(),
        loss_curve: Vec::with_capacity(task.iterations),
    };
    let mut order = Vec::new();
    let (mut epoch, mut cursor) = (0u64, train_idx.len());
    let started = Instant::now();
    let mut test_runs = 0;
    for t in 0..=task.iterations {
        let degrees = t as f64 * task.degrees_per_iteration;
        for w in &mut workers {
            w.bench.turn_wall_to(degrees)?;
        }
        if t % task.eval_every == 0 || t == task.iterations {
            // both learners on the test set, through the scene as it is now
            let exposures = |mask: &[Vec<f32>], split: u64, workers: &mut Vec<_>| {
                let mut out: Vec<Option<Exposure>> = (0..test_idx.len()).map(|_| None).collect();
                for_each_scene(workers, &mut out, |w: &mut super::SceneWorker<S>, i, o| {
                    let shot = derive_seed(spec.seed, &[0x0D21F7, split, t as u64, i as u64]);
                    let intensity = w.camera(test, test_idx[i].0, side, n, coordinates, mask, input, shot);
                    *o = Some(expose(&intensity, regions, bins));
                });
                out.into_iter()
                    .map(|e| e.expect("every sample exposed"))
                    .collect::<Vec<_>>()
            };
            let before = counted.count();
            let through_mask = exposures(&learner.phases, 0, &mut workers);
            let through_flat = exposures(&flat, 1, &mut workers);
            test_runs += counted.count() - before;
            let right = |predicted: &mut dyn Iterator<Item = usize>| {
                predicted.zip(&test_labels).filter(|(p, l)| p == *l).count() as f64 / test_labels.len() as f64
            };
            outcome.iterations.push(t);
            outcome.wall_degrees.push(degrees);
            outcome
                .ffm_accuracy
                .push(right(&mut through_mask.iter().map(|e| argmax(&e.regions))));
            outcome.ann_accuracy.push(match &ann {
                Some(model) => right(&mut through_flat.iter().map(|e| model.predict(&relative(e)))),
                // not trained yet: it predicts the first class
                None => right(&mut through_flat.iter().map(|_| 0)),
            });
        }
        if t == task.iterations {
            break;
        }
        // the next mini-batch, epoch after epoch
        if cursor + batch > train_idx.len() {
            epoch_permutation(train_idx.len(), spec.seed, epoch, &mut order);
            epoch += 1;
            cursor = 0;
        }
        let rows = &order[cursor..cursor + batch];
        cursor += batch;
        // FFM: one step on the batch's gradient, measured on this iteration's scene
        let shot = |b: usize| derive_seed(spec.seed, &[0x0D21F7, 2, t as u64, b as u64]);
        let total = learner.step(
            &mut workers,
            input,
            batch,
            |w, b| digits.place_training_object(w, train, rows[b]),
            shot,
            "classification under a turning wall",
            t + 1,
        )?;
        outcome.loss_curve.push(total / batch as f64);
        // the electronic classifier: one step on the same batch's flat-mask images
        let mut seen: Vec<Option<Exposure>> = (0..batch).map(|_| None).collect();
        for_each_scene(&mut workers, &mut seen, |w, b, o| {
            let shot = derive_seed(spec.seed, &[0x0D21F7, 3, t as u64, b as u64]);
            let intensity = w.camera(train, train_idx[rows[b]].0, side, n, coordinates, &flat, input, shot);
            *o = Some(expose(&intensity, regions, bins));
        });
        let x: Vec<f64> = seen
            .iter()
            .flat_map(|e| relative(e.as_ref().expect("exposed")))
            .collect();
        let labels: Vec<usize> = rows.iter().map(|&r| train_idx[r].1).collect();
        let model = ann.get_or_insert_with(|| SoftmaxRegression::untrained(&x, features, k));
        let z = model.standardised(&x);
        model.loss_and_gradient(&z, &labels, l2, &mut ann_grad);
        for (g32, g) in ann_grad32.iter_mut().zip(&ann_grad) {
            *g32 = *g as f32;
        }
        ann_adam.step(model.weights_mut(), &ann_grad32);
    }
    Ok(NlosTrained {
        result: NlosResult {
            spec: spec.clone(),
            outcome: NlosOutcome::Drift(outcome),
            // the learners' runs: FFM's two per sample, the electronic learner's camera image
            forward_runs: counted.count() - test_runs,
            train_seconds: started.elapsed().as_secs_f64(),
        },
        phase: learner.phases.remove(0),
        images: Vec::new(),
    })
}
