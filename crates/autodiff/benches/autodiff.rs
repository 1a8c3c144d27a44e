//! Benchmarks: one BP+AD step of the paper's MLP (784-100-100-100-10, batch 256, SPEC A7) on
//! the tape, and the forward-only margin loss (seed 000 eq. 16) on a 100 × 256 batch with 10
//! classes — the function the directional-derivative trainer evaluates twice per step.
//!
//! Run: `cargo bench -p insitu-autodiff --bench autodiff`

use divan::{black_box, Bencher};
use insitu_autodiff::{loss, Tape};
use insitu_linalg::{rng, Mat, Rng64};
use rand::Rng;

fn main() {
    divan::main();
}

fn rand_mat(r: &mut Rng64, rows: usize, cols: usize, scale: f32) -> Mat {
    Mat::from_fn(rows, cols, |_, _| r.random_range(-scale..scale))
}

fn unit_columns(mut m: Mat) -> Mat {
    for mut c in m.column_iter_mut() {
        let n = c.norm();
        c /= n;
    }
    m
}

const BATCH: usize = 256;

/// Forward + backward of the 784-100-100-100-10 ReLU MLP with softmax cross-entropy, on a
/// reused tape (no allocation after the first iteration).
#[divan::bench]
fn mlp_784_100_100_100_10_forward_backward(bencher: Bencher) {
    let mut r = rng(0);
    let x = rand_mat(&mut r, 784, BATCH, 1.0);
    let dims = [784, 100, 100, 100, 10];
    let params: Vec<(Mat, Mat)> = dims
        .windows(2)
        .map(|d| {
            let s = (1.0 / d[0] as f32).sqrt();
            (rand_mat(&mut r, d[1], d[0], s), rand_mat(&mut r, d[1], 1, s))
        })
        .collect();
    let labels: Vec<u32> = (0..BATCH).map(|_| r.random_range(0..10)).collect();
    let mut tape = Tape::new();
    bencher.bench_local(|| {
        tape.reset();
        let mut h = tape.constant(&x);
        let mut vars = Vec::with_capacity(8);
        for (k, (w, b)) in params.iter().enumerate() {
            let wv = tape.param(w);
            let bv = tape.param(b);
            vars.push(wv);
            let z = tape.matmul(wv, h);
            let z = tape.add_bias(z, bv);
            h = if k + 1 < params.len() { tape.relu(z) } else { z };
        }
        let l = tape.softmax_cross_entropy(h, &labels);
        tape.backward(l);
        black_box(tape.grad(vars[0]).map(|g| g[(0, 0)]));
    });
}

/// The forward-only margin loss (eq. 16), width 100, batch 256, 10 classes.
#[divan::bench]
fn margin_loss_100x256_10_classes(bencher: Bencher) {
    let mut r = rng(1);
    let z = rand_mat(&mut r, 100, BATCH, 1.0);
    let p = unit_columns(rand_mat(&mut r, 100, 10, 1.0));
    let labels: Vec<u32> = (0..BATCH).map(|_| r.random_range(0..10)).collect();
    bencher.bench_local(|| loss::margin_loss(black_box(&z), black_box(&p), black_box(&labels), 0.3));
}

/// One FF+AD local step's differentiation: margin loss of `W·x + b` (100 ← 100, batch 256),
/// forward and backward on a reused tape, `x` constant.
#[divan::bench]
fn local_layer_margin_forward_backward_100x100(bencher: Bencher) {
    let mut r = rng(2);
    let x = rand_mat(&mut r, 100, BATCH, 1.0);
    let w = rand_mat(&mut r, 100, 100, 0.1);
    let b = rand_mat(&mut r, 100, 1, 0.1);
    let p = unit_columns(rand_mat(&mut r, 100, 10, 1.0));
    let labels: Vec<u32> = (0..BATCH).map(|_| r.random_range(0..10)).collect();
    let mut tape = Tape::new();
    bencher.bench_local(|| {
        tape.reset();
        let xv = tape.constant(&x);
        let wv = tape.param(&w);
        let bv = tape.param(&b);
        let z = tape.matmul(wv, xv);
        let z = tape.add_bias(z, bv);
        let l = tape.margin_loss(z, &p, &labels, 0.3);
        tape.backward(l);
        black_box(tape.grad(wv).map(|g| g[(0, 0)]));
    });
}
