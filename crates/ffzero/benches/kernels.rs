//! Micro-benchmarks of FFzero's hot kernels (issue 8 item 3), on the first layer of the paper's
//! MNIST MLP (784 → 100, batch 256, 10 classes):
//! - `dense_forward`: `z = W·x + b`, (100×784)·(784×256);
//! - `losses_along_pm_eps`: one FF+DD direction of [`LayerObjective`]: `V·x` once, then the
//!   margin loss at `base ± ε·along` (what one step costs besides drawing the direction);
//! - `margin_loss`: seed 000 eq. 16 on a 100×256 pre-activation.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p insitu-ffzero --bench kernels`.

use divan::Bencher;
use insitu_autodiff::loss::margin_loss;
use insitu_ffzero::{dense_forward, DenseShape, LayerObjective, LayerScratch, LayerTarget, LocalLoss};
use insitu_linalg::{rng, Mat, MatRef, Par};
use insitu_optim::PerturbedObjective;
use insitu_proto::simplex_prototypes;
use rand::Rng;
use rand_distr::StandardNormal;

const SHAPE: DenseShape = DenseShape {
    inputs: 784,
    outputs: 100,
};
const BATCH: usize = 256;
const CLASSES: usize = 10;

fn main() {
    divan::main();
}

fn gaussian(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = rng(seed);
    (0..len).map(|_| scale * r.sample::<f32, _>(StandardNormal)).collect()
}

fn inputs() -> Mat {
    let mut r = rng(3);
    Mat::from_fn(SHAPE.inputs, BATCH, |_, _| r.random::<f32>())
}

fn labels() -> Vec<u32> {
    (0..BATCH as u32).map(|j| j % CLASSES as u32).collect()
}

#[divan::bench]
fn dense_forward_100x784_by_784x256(bencher: Bencher) {
    let params = gaussian(SHAPE.len(), 1, 0.05);
    let x = inputs();
    let mut z = Mat::zeros(SHAPE.outputs, BATCH);
    bencher.bench_local(|| {
        dense_forward(SHAPE, &params, MatRef::from(&x), &mut z);
        divan::black_box(&z);
    });
}

#[divan::bench]
fn losses_along_pm_eps(bencher: Bencher) {
    let params = gaussian(SHAPE.len(), 1, 0.05);
    let direction = gaussian(SHAPE.len(), 2, 1.0 / (SHAPE.len() as f32).sqrt());
    let x = inputs();
    let labels = labels();
    let prototypes = simplex_prototypes(CLASSES, SHAPE.outputs, &mut rng(4)).expect("100 ≥ 10");
    let target = LayerTarget::Classes {
        prototypes: &prototypes,
        labels: &labels,
        loss: LocalLoss::Margin,
        margin: 0.3,
    };
    let mut scratch = LayerScratch::default();
    let mut objective = LayerObjective::new(SHAPE, &params, MatRef::from(&x), target, &mut scratch, Par::Seq);
    let mut out = [0.0f64; 2];
    bencher.bench_local(|| {
        objective.losses_along(&direction, &[1e-3, -1e-3], &mut out);
        divan::black_box(&out);
    });
}

#[divan::bench]
fn margin_loss_100x256(bencher: Bencher) {
    let z = Mat::from_vec(SHAPE.outputs, BATCH, gaussian(SHAPE.outputs * BATCH, 5, 1.0));
    let labels = labels();
    let prototypes = simplex_prototypes(CLASSES, SHAPE.outputs, &mut rng(4)).expect("100 ≥ 10");
    bencher.bench_local(|| divan::black_box(margin_loss(&z, &prototypes, &labels, 0.3)));
}
