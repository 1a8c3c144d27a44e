//! A measurement probe for the sparse first layer ([`insitu_linalg::matmul_sparse`];
//! docs/performance.md, round 15): `C (m × 256) = A (m × 784) · B`, where `B` is 256 columns
//! drawn at random from 60,000 sparse 784-pixel samples, `A` column-major with `m` rows apart
//! (a layer's `W` or `V`, as the trainers keep them), two products per batch with different `A`
//! (an FF+DD step's `W·x` and `V·x`).
//!
//! The samples imitate MNIST's sparsity: pixel `(r, c)` of a 28 × 28 image is non-zero with a
//! probability that falls with its distance from the centre (19 % of the pixels on average,
//! none in the outer rows), so a column's non-zeros cluster in the middle rows of `B` as
//! MNIST's do. It times, at 1 thread, the fastest of 2,000 batches (after 20 warm-up batches),
//! and prints µs per product and ns per non-zero and row of 16 lanes.
//!
//! `cargo run --release -p insitu-linalg --example sparse_probe`

#[path = "common/timing.rs"]
mod timing;

use insitu_linalg::{matmul_sparse, rng, Accum, Mat, MatMut, MatRef, SparseColumns};
use rand::Rng;

const SAMPLES: usize = 60_000;
const BATCH: usize = 256;

fn main() {
    let mut g = rng(7);
    let x = Mat::from_fn(784, SAMPLES, |i, _| {
        let (r, c) = ((i / 28) as f64 - 13.5, (i % 28) as f64 - 13.5);
        let p = (0.7 - (r * r + c * c) / 200.0).clamp(0.0, 1.0);
        if g.random::<f64>() < p {
            g.random_range(0.1..1.0)
        } else {
            0.0
        }
    });
    let samples = SparseColumns::from_dense(MatRef::from(&x));
    let batches: Vec<Vec<usize>> = (0..64)
        .map(|_| (0..BATCH).map(|_| g.random_range(0..SAMPLES)).collect())
        .collect();
    let mean_nnz = batches.iter().map(|b| samples.select(b).nnz()).sum::<usize>() as f64 / batches.len() as f64;
    println!(
        "density {:.3}, {:.0} non-zeros per batch of {BATCH}; fastest of 2,000 batches, µs per product",
        samples.density(),
        mean_nnz
    );
    println!("| m | µs | ns per non-zero | ns per non-zero and 16 rows |");
    println!("|---|---|---|---|");
    for m in [10usize, 50, 100] {
        let w = timing::operand(m * 784, 131, 1);
        let v: Vec<f32> = (0..m * 784).map(|i| ((i * 17 + 3) % 89) as f32 / 89.0 - 0.5).collect();
        let mut c = vec![0f32; m * BATCH];
        let mut next = 0;
        let seconds = timing::fastest(2000, 20, || {
            let batch = samples.select(&batches[next % batches.len()]);
            next += 1;
            for a in [&w, &v] {
                matmul_sparse(
                    MatMut::from_col_major(&mut c, m, BATCH),
                    Accum::Replace,
                    MatRef::from_col_major(a, m, 784),
                    batch,
                );
                std::hint::black_box(&c);
            }
        }) / 2.0;
        let per_nnz = seconds * 1e9 / mean_nnz;
        println!(
            "| {m} | {:.1} | {:.2} | {:.3} |",
            seconds * 1e6,
            per_nnz,
            per_nnz / m.div_ceil(16) as f64
        );
    }
}
