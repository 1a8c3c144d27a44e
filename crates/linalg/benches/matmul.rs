//! Micro-benchmarks of the one product function on the FFzero shapes (issue 8 item 3), next to
//! the `gemm` crate called directly with the same operands (the backend used before faer), so a
//! regression of either shows up as a number.
//!
//! Run: `cargo bench -p insitu-linalg --bench matmul`.

use divan::Bencher;
use insitu_linalg::{copy_matrix, matmul, padded_row_stride, rng, Accum, Mat, MatMut, MatRef, Par};
use rand::Rng;

fn main() {
    divan::main();
}

/// (m, k, n): `C (m×n) = A (m×k) · B (k×n)`, the forward products of the paper's MLP
/// (784 → 100 → 100 → 10, batch 256), the narrow layers of widths 10 and 50, a backward-shaped one, and the split of a 100-row product
/// into faer's 96 rows and the few-rows kernel's 4.
const SHAPES: [(usize, usize, usize); 13] = [
    (96, 100, 256),
    (4, 100, 256),
    (10, 784, 256),
    (100, 784, 256),
    (100, 100, 256),
    (10, 100, 256),
    (10, 10, 256),
    (50, 50, 256),
    (50, 784, 256),
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

/// The FFzero shapes with the batch along the lanes: `B` and `C` stored by rows,
/// [`padded_row_stride`] apart (the `batch_lanes` kernel), for FF+DD's column block of 128
/// samples and a batch of 256.
const BY_ROWS_SHAPES: [(usize, usize, usize); 10] = [
    (100, 784, 256),
    (100, 100, 256),
    (10, 100, 256),
    (10, 10, 256),
    (50, 50, 256),
    (100, 100, 128),
    (10, 100, 128),
    (10, 10, 128),
    (50, 50, 128),
    (50, 784, 128),
];

#[divan::bench(args = BY_ROWS_SHAPES)]
fn insitu_matmul_by_rows(bencher: Bencher, (m, k, n): (usize, usize, usize)) {
    let ld = padded_row_stride(n);
    let (a, b) = (random(m, k, 1), random(k, ld, 2));
    let mut c = vec![0.0f32; m * ld];
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k))
        .bench_local(|| {
            matmul(
                MatMut::from_row_major_strided(&mut c, m, n, ld),
                Accum::Replace,
                MatRef::from(&a),
                MatRef::from_row_major_strided(b.as_slice(), k, n, ld),
                1.0,
                Par::Seq,
            )
        });
}

/// `copy_matrix` of a batch stored sample by sample (`rows` features × `cols` samples,
/// column-major) into the by-rows layout, padded: what a layer would pay per block to use
/// the `batch_lanes` kernel on today's activations.
#[divan::bench(args = [(100, 128), (50, 128), (10, 128), (784, 128), (100, 256)])]
fn copy_to_rows(bencher: Bencher, (rows, cols): (usize, usize)) {
    let src = random(rows, cols, 3);
    let ld = padded_row_stride(cols);
    let mut dst = vec![0.0f32; rows * ld];
    bencher
        .counter(divan::counter::ItemsCount::new(rows * cols))
        .bench_local(|| {
            copy_matrix(
                MatMut::from_row_major_strided(&mut dst, rows, cols, ld),
                MatRef::from(&src),
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
/// contiguous (the case of `few_rows`'s row kernel for the rows left over, and of the
/// `rows_to_columns` kernel for up to 24 rows: the 10-row ones).
#[divan::bench(args = [(100, 256, 784), (104, 256, 784), (50, 256, 784), (10, 256, 784), (100, 256, 100), (10, 256, 100)])]
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

/// The short-`k` products (the `short_k` kernel): the AD methods' backward through a
/// 10-output layer, `Wᵀ·dY` (`A` stored by rows: `W` read transposed) and the goodness's
/// `Ξ·dP` (`A` by columns), at widths 100 and 50 and FF+DD's 128-column blocks; `B` and `C`
/// column-major; the last two add to `C` (a layer's `W·x + b` after the bias, as the DD
/// methods compute it), whose 50-row columns overlap each other's 64-byte stores.
#[divan::bench(args = [
    (100, 10, 256, false, false),
    (100, 10, 256, true, false),
    (100, 10, 128, false, false),
    (50, 10, 256, true, false),
    (50, 10, 256, false, true),
    (100, 10, 256, false, true),
])]
fn short_k(bencher: Bencher, (m, k, n, a_by_rows, add): (usize, usize, usize, bool, bool)) {
    let (a, b) = (
        if a_by_rows { random(k, m, 1) } else { random(m, k, 1) },
        random(k, n, 2),
    );
    let mut c = Mat::zeros(m, n);
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k))
        .bench_local(|| {
            let a = if a_by_rows {
                MatRef::from(&a).t()
            } else {
                MatRef::from(&a)
            };
            let accum = if add { Accum::Add } else { Accum::Replace };
            matmul(MatMut::from(&mut c), accum, a, MatRef::from(&b), 1.0, Par::Seq)
        });
}

/// FFzero's large width-100 products on a 2-thread pool with `Par::Rayon(2)`, which `matmul`
/// cuts into two column blocks of `C`, one per thread (docs/performance.md, round 17, item 60):
/// one iteration is [`TWO_THREAD_CALLS`] products inside `ThreadPool::install` with the second
/// worker polling, as in a training run (`Par::with_polling_workers`).
#[divan::bench(args = [(100, 784, 256, false), (100, 256, 784, true), (100, 100, 256, false)])]
fn two_threads(bencher: Bencher, (m, k, n, b_by_rows): (usize, usize, usize, bool)) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let a = random(m, k, 1);
    let b = if b_by_rows { random(n, k, 2) } else { random(k, n, 2) };
    let mut c = Mat::zeros(m, n);
    bencher
        .counter(divan::counter::ItemsCount::new(2 * m * n * k * TWO_THREAD_CALLS))
        .bench_local(|| {
            let b = if b_by_rows {
                MatRef::from(&b).t()
            } else {
                MatRef::from(&b)
            };
            let par = Par::Rayon(2);
            pool.install(|| {
                par.with_polling_workers(|| {
                    for _ in 0..TWO_THREAD_CALLS {
                        matmul(MatMut::from(&mut c), Accum::Replace, MatRef::from(&a), b, 1.0, par);
                    }
                })
            })
        });
}

/// Products per iteration of [`two_threads`], so that the hand-off into the pool is a small part.
const TWO_THREAD_CALLS: usize = 16;

/// The first layer on image-like inputs (784 features, about `density` of them non-zero): a
/// batch of 256 random samples out of 10,000, as the dense product needs it (gathered into a
/// contiguous batch, then `W·X`) and as [`matmul_sparse`] reads it (the samples' non-zeros in
/// place). MNIST's density is 0.19, Fashion-MNIST's 0.50.
mod first_layer {
    use super::*;
    use insitu_linalg::{matmul_sparse, SparseColumns};

    const SAMPLES: usize = 10_000;

    fn data(density: f64) -> (Mat, Vec<usize>) {
        let mut g = rng(5);
        let x = Mat::from_fn(784, SAMPLES, |_, _| {
            if g.random::<f64>() < density {
                g.random_range(0.0..1.0)
            } else {
                0.0
            }
        });
        let idx = (0..256).map(|_| g.random_range(0..SAMPLES)).collect();
        (x, idx)
    }

    #[divan::bench(args = [0.19, 0.5])]
    fn gather_then_dense(bencher: Bencher, density: f64) {
        let (x, idx) = data(density);
        let w = random(100, 784, 1);
        let (mut batch, mut c) = (Mat::zeros(784, 256), Mat::zeros(100, 256));
        bencher.bench_local(|| {
            for (j, &i) in idx.iter().enumerate() {
                batch.column_mut(j).copy_from(&x.column(i));
            }
            matmul(
                MatMut::from(&mut c),
                Accum::Replace,
                MatRef::from(&w),
                MatRef::from(&batch),
                1.0,
                Par::Seq,
            )
        });
    }

    #[divan::bench(args = [0.19, 0.5])]
    fn sparse(bencher: Bencher, density: f64) {
        let (x, idx) = data(density);
        let s = SparseColumns::from_dense(MatRef::from(&x));
        let w = random(100, 784, 1);
        let mut c = Mat::zeros(100, 256);
        bencher.bench_local(|| matmul_sparse(MatMut::from(&mut c), Accum::Replace, MatRef::from(&w), s.select(&idx)));
    }
}
