//! Micro-benchmarks of the one product function on the FFzero shapes (issue 8 item 3), next to
//! the `gemm` crate called directly with the same operands (the backend used before faer), so a
//! regression of either shows up as a number.
//!
//! Run: `cargo bench -p insitu-linalg --bench matmul`.

use divan::Bencher;
use insitu_linalg::{matmul, rng, Accum, Mat, MatMut, MatRef, Par};
use rand::Rng;

fn main() {
    divan::main();
}

/// (m, k, n): `C (m×n) = A (m×k) · B (k×n)`, the forward products of the paper's MLP
/// (784 → 100 → 100 → 10, batch 256) and a backward-shaped one.
const SHAPES: [(usize, usize, usize); 7] = [
    (100, 784, 256),
    (100, 100, 256),
    (10, 100, 256),
    (100, 256, 784),
    (256, 784, 100),
    (112, 784, 256),
    (1024, 1024, 1024),
];

fn random(r: usize, c: usize, seed: u64) -> Mat {
    let mut g = rng(seed);
    Mat::from_fn(r, c, |_, _| g.random_range(-1.0..1.0))
}

#[divan::bench(args = SHAPES)]
fn insitu_matmul(bencher: Bencher, (m, k, n): (usize, usize, usize)) {
    let (a, b) = (random(m, k, 1), random(k, n, 2));
    let mut c = Mat::zeros(m, n);
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k))
        .bench_local(|| {
            matmul(
                MatMut::from(&mut c),
                Accum::Add,
                MatRef::from(&a),
                MatRef::from(&b),
                1.0,
                Par::Seq,
            )
        });
}

#[divan::bench(args = SHAPES)]
fn gemm_crate(bencher: Bencher, (m, k, n): (usize, usize, usize)) {
    let (a, b) = (random(m, k, 1), random(k, n, 2));
    let mut c = Mat::zeros(m, n);
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k))
        .bench_local(|| unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                m as isize,
                1,
                true,
                a.as_ptr(),
                m as isize,
                1,
                b.as_ptr(),
                k as isize,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        });
}

/// Weight-gradient shapes `dW (o×i) = dZ (o×B) · Xᵀ`, `X` (i×B) column-major, so `B`'s rows are
/// contiguous (the case of `few_rows`'s row kernel for the rows left over).
#[divan::bench(args = [(100, 256, 784), (104, 256, 784), (50, 256, 784), (10, 256, 784), (100, 256, 100)])]
fn weight_gradient(bencher: Bencher, (m, k, n): (usize, usize, usize)) {
    let (dz, x) = (random(m, k, 1), random(n, k, 2));
    let mut c = Mat::zeros(m, n);
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k))
        .bench_local(|| {
            matmul(
                MatMut::from(&mut c),
                Accum::Replace,
                MatRef::from(&dz),
                MatRef::from(&x).t(),
                1.0,
                Par::Seq,
            )
        });
}
