//! `matmul` against the naive triple loop over many shapes, strides, transposes and element
//! types, with a fixed seed (rustfft's accuracy-test style).

use insitu_linalg::{matmul, matmul_reference, rng, Accum, Complex32, Complex64, GemmScalar, MatMut, MatRef, Par};
use nalgebra::DMatrix;
use rand::Rng;

fn random_real<T: GemmScalar + From<f32>>(r: usize, c: usize, g: &mut impl Rng) -> DMatrix<T> {
    DMatrix::from_fn(r, c, |_, _| T::from(g.random_range(-1.0f32..1.0)))
}

fn random_c32(r: usize, c: usize, g: &mut impl Rng) -> DMatrix<Complex32> {
    DMatrix::from_fn(r, c, |_, _| {
        Complex32::new(g.random_range(-1.0..1.0), g.random_range(-1.0..1.0))
    })
}

fn random_c64(r: usize, c: usize, g: &mut impl Rng) -> DMatrix<Complex64> {
    DMatrix::from_fn(r, c, |_, _| {
        Complex64::new(g.random_range(-1.0..1.0), g.random_range(-1.0..1.0))
    })
}

/// Operand `m×k` viewed directly (`false`) or as the transpose of its stored transpose (`true`).
fn operand<'a, T: GemmScalar>(m: &'a DMatrix<T>, stored_transposed: &'a DMatrix<T>, transposed: bool) -> MatRef<'a, T> {
    if transposed {
        MatRef::from(stored_transposed).t()
    } else {
        MatRef::from(m)
    }
}

fn max_abs_diff_f32(a: &DMatrix<f32>, b: &DMatrix<f32>) -> f32 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const SIZES: [usize; 9] = [1, 2, 3, 4, 5, 7, 16, 33, 100];

#[test]
fn real_f32_all_transposes_and_shapes() {
    let mut g = rng(1);
    let mut count = 0;
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &[1usize, 2, 3, 5, 17, 64] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    for accum in [Accum::Replace, Accum::Add] {
                        let a: DMatrix<f32> = random_real(m, k, &mut g);
                        let at = a.transpose();
                        let b: DMatrix<f32> = random_real(k, n, &mut g);
                        let bt = b.transpose();
                        let c0: DMatrix<f32> = random_real(m, n, &mut g);
                        let (mut c, mut c_ref) = (c0.clone(), c0.clone());
                        let (av, bv) = (operand(&a, &at, ta), operand(&b, &bt, tb));
                        matmul(MatMut::from(&mut c), accum, av, bv, 0.75, Par::Seq);
                        matmul_reference(MatMut::from(&mut c_ref), accum, av, bv, 0.75);
                        let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                        let err = max_abs_diff_f32(&c, &c_ref);
                        assert!(
                            err <= tol,
                            "m={m} n={n} k={k} ta={ta} tb={tb} {accum:?}: error {err} > {tol}"
                        );
                        count += 1;
                    }
                }
            }
        }
    }
    assert_eq!(count, SIZES.len() * SIZES.len() * 6 * 8);
}

#[test]
fn real_f64_matches_reference() {
    let mut g = rng(2);
    for &m in &SIZES {
        for &n in &[1usize, 4, 9] {
            for &k in &[1usize, 3, 8, 31] {
                let a: DMatrix<f64> = DMatrix::from_fn(m, k, |_, _| g.random_range(-1.0..1.0));
                let b: DMatrix<f64> = DMatrix::from_fn(k, n, |_, _| g.random_range(-1.0..1.0));
                let mut c = DMatrix::zeros(m, n);
                let mut c_ref = DMatrix::zeros(m, n);
                matmul(
                    MatMut::from(&mut c),
                    Accum::Replace,
                    MatRef::from(&a),
                    MatRef::from(&b),
                    1.0,
                    Par::Seq,
                );
                matmul_reference(
                    MatMut::from(&mut c_ref),
                    Accum::Replace,
                    MatRef::from(&a),
                    MatRef::from(&b),
                    1.0,
                );
                assert!((c - c_ref).amax() < 1e-12);
            }
        }
    }
}

#[test]
fn complex_with_adjoints_matches_reference() {
    let mut g = rng(3);
    for &m in &[1usize, 2, 3, 5, 12, 40] {
        for &n in &[1usize, 2, 5, 17] {
            for &k in &[1usize, 4, 13] {
                for mode in 0..4 {
                    let a = random_c32(m, k, &mut g);
                    let ah = a.adjoint();
                    let b = random_c32(k, n, &mut g);
                    let bt = b.transpose();
                    let av = if mode & 1 == 1 {
                        MatRef::from(&ah).adjoint()
                    } else {
                        MatRef::from(&a)
                    };
                    let bv = if mode & 2 == 2 {
                        MatRef::from(&bt).t()
                    } else {
                        MatRef::from(&b)
                    };
                    let alpha = Complex32::new(0.5, -0.25);
                    let mut c = random_c32(m, n, &mut g);
                    let mut c_ref = c.clone();
                    matmul(MatMut::from(&mut c), Accum::Add, av, bv, alpha, Par::Seq);
                    matmul_reference(MatMut::from(&mut c_ref), Accum::Add, av, bv, alpha);
                    let err = (c - c_ref).iter().map(|z| z.norm()).fold(0.0f32, f32::max);
                    assert!(err < 1e-4, "m={m} n={n} k={k} mode={mode}: {err}");
                }
            }
        }
    }
}

#[test]
fn complex64_conjugate_view_matches_reference() {
    let mut g = rng(4);
    let a = random_c64(6, 5, &mut g);
    let b = random_c64(5, 7, &mut g);
    let mut c = DMatrix::zeros(6, 7);
    let mut c_ref = DMatrix::zeros(6, 7);
    let one = Complex64::new(1.0, 0.0);
    matmul(
        MatMut::from(&mut c),
        Accum::Replace,
        MatRef::from(&a).conjugate(),
        MatRef::from(&b),
        one,
        Par::Seq,
    );
    matmul_reference(
        MatMut::from(&mut c_ref),
        Accum::Replace,
        MatRef::from(&a).conjugate(),
        MatRef::from(&b),
        one,
    );
    let expected = a.map(|z| z.conj()) * &b;
    assert!((c.clone() - c_ref).iter().all(|z| z.norm() < 1e-12));
    assert!((c - expected).iter().all(|z| z.norm() < 1e-12));
}

#[test]
fn submatrix_views_and_parallel_agree_bitwise() {
    let mut g = rng(5);
    let a: DMatrix<f32> = random_real(300, 200, &mut g);
    let b: DMatrix<f32> = random_real(150, 120, &mut g);
    let av = MatRef::from(&a).submatrix(10, 20, 128, 100);
    let bv = MatRef::from(&b).submatrix(5, 7, 100, 64);
    let mut c1 = DMatrix::<f32>::zeros(128, 64);
    let mut c2 = DMatrix::<f32>::zeros(128, 64);
    let mut c_ref = DMatrix::<f32>::zeros(128, 64);
    matmul(MatMut::from(&mut c1), Accum::Replace, av, bv, 1.0, Par::Seq);
    matmul(MatMut::from(&mut c2), Accum::Replace, av, bv, 1.0, Par::Rayon(2));
    matmul_reference(MatMut::from(&mut c_ref), Accum::Replace, av, bv, 1.0);
    assert!(max_abs_diff_f32(&c1, &c_ref) < 1e-4);
    assert_eq!(c1, c2, "the product must not depend on the thread count");
}

#[test]
fn empty_inner_dimension_zeroes_or_keeps() {
    let a = DMatrix::<f32>::zeros(3, 0);
    let b = DMatrix::<f32>::zeros(0, 2);
    let mut c = DMatrix::<f32>::from_element(3, 2, 7.0);
    matmul(
        MatMut::from(&mut c),
        Accum::Add,
        MatRef::from(&a),
        MatRef::from(&b),
        1.0,
        Par::Seq,
    );
    assert!(c.iter().all(|&x| x == 7.0));
    matmul(
        MatMut::from(&mut c),
        Accum::Replace,
        MatRef::from(&a),
        MatRef::from(&b),
        1.0,
        Par::Seq,
    );
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn slices_row_and_column_major() {
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3 row-major [[1,2,3],[4,5,6]]
    let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3×2 column-major [[1,1],[0,1],[0,1]]
    let mut c = [0.0f32; 4];
    matmul(
        MatMut::from_col_major(&mut c, 2, 2),
        Accum::Replace,
        MatRef::from_row_major(&a, 2, 3),
        MatRef::from_col_major(&b, 3, 2),
        1.0,
        Par::Seq,
    );
    // [[1,2,3],[4,5,6]]·[[1,1],[0,1],[0,1]] = [[1,6],[4,15]], column-major
    assert_eq!(c, [1.0, 4.0, 6.0, 15.0]);
}

#[test]
fn polling_workers_return_the_result_and_let_a_panic_through() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let sum: u64 = pool.install(|| Par::Rayon(2).with_polling_workers(|| (0..100u64).sum()));
    assert_eq!(sum, 4950);
    // A panic inside must reach the caller, not hang the scope on its pollers.
    let caught = pool.install(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Par::Rayon(2).with_polling_workers(|| panic!("inside"));
        }))
    });
    assert!(caught.is_err());
    assert_eq!(Par::Seq.with_polling_workers(|| 7), 7);
}

/// The rows left over after faer's 16-row tiles (1..=12 of them) take the few-rows kernel when
/// `B`'s columns are contiguous: the paper's layer widths 10, 50, 100 and every remainder, odd
/// and even column counts, `k` with and without a tail, transposed and sub-matrix views of `A`,
/// both accumulation modes, `C` stored by columns or by rows, 1 and 2 threads (bitwise equal).
#[test]
fn leftover_rows_match_the_reference_at_every_remainder() {
    let mut g = rng(11);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for m in (1..=13).chain([10, 17, 28, 50, 98, 100, 104, 110]) {
        for &k in &[1usize, 2, 7, 10, 15, 16, 17, 50, 64, 65, 99, 100, 784] {
            for &n in &[1usize, 2, 3, 70, 256] {
                for (ta, b_rows_contiguous) in [(false, false), (true, false), (false, true), (true, true)] {
                    for accum in [Accum::Replace, Accum::Add] {
                        let a: DMatrix<f32> = random_real(m, k, &mut g);
                        let at = a.transpose();
                        // B is a sub-matrix view with contiguous columns (column stride k + 3),
                        // or the transpose of one (contiguous rows, row stride n + 5).
                        let (mut b_cols, mut b_rows): (DMatrix<f32>, DMatrix<f32>) =
                            (random_real(k + 3, n + 1, &mut g), random_real(n + 5, k + 1, &mut g));
                        // NaN around the views: a kernel that reads past a column's end (a
                        // tail without its mask) would carry it into C, even where it
                        // multiplies padding zeros.
                        for ((i, j), x) in b_cols
                            .iter_mut()
                            .enumerate()
                            .map(|(e, x)| ((e % (k + 3), e / (k + 3)), x))
                        {
                            if !(2..2 + k).contains(&i) || j == 0 {
                                *x = f32::NAN;
                            }
                        }
                        for ((i, j), x) in b_rows
                            .iter_mut()
                            .enumerate()
                            .map(|(e, x)| ((e % (n + 5), e / (n + 5)), x))
                        {
                            if !(3..3 + n).contains(&i) || j == 0 {
                                *x = f32::NAN;
                            }
                        }
                        let bv = if b_rows_contiguous {
                            MatRef::from(&b_rows).submatrix(3, 1, n, k).t()
                        } else {
                            MatRef::from(&b_cols).submatrix(2, 1, k, n)
                        };
                        let av = operand(&a, &at, ta);
                        let c0: DMatrix<f32> = random_real(m, n, &mut g);
                        let (mut c, mut c_par) = (c0.clone(), c0.clone());
                        matmul(MatMut::from(&mut c), accum, av, bv, -0.5, Par::Seq);
                        pool.install(|| matmul(MatMut::from(&mut c_par), accum, av, bv, -0.5, Par::Rayon(2)));
                        // C with contiguous columns (row stride ≠ 1): the kernels' other store path.
                        let mut c_rows = c0.transpose();
                        matmul(MatMut::from(&mut c_rows).t(), accum, av, bv, -0.5, Par::Seq);
                        // Reference in f64.
                        let (a64, b64) = (a.map(f64::from), bv_to_f64(bv));
                        let prod = &a64 * &b64;
                        for j in 0..n {
                            for i in 0..m {
                                let want = match accum {
                                    Accum::Replace => -0.5 * prod[(i, j)],
                                    Accum::Add => c0[(i, j)] as f64 - 0.5 * prod[(i, j)],
                                };
                                for (got, layout) in [(c[(i, j)], "C by columns"), (c_rows[(j, i)], "C by rows")] {
                                    let err = (got as f64 - want).abs();
                                    assert!(
                                        err < 2e-6 * k as f64,
                                        "m={m} k={k} n={n} ta={ta} {accum:?} {layout} ({i},{j}): {err}"
                                    );
                                }
                            }
                        }
                        assert_eq!(c, c_par, "m={m} k={k} n={n}: thread count changed the result");
                    }
                }
            }
        }
    }
}

fn bv_to_f64(b: MatRef<'_, f32>) -> DMatrix<f64> {
    DMatrix::from_fn(b.nrows(), b.ncols(), |i, j| b.get(i, j) as f64)
}

/// Threads never change a product's bits, also for matrix-vector shapes (n = 1, m = 1), where
/// faer's parallel path splits the inner dimension (`matmul` runs those sequentially).
#[test]
fn parallel_products_agree_bitwise_including_vectors() {
    let mut g = rng(12);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (m, n) in [
        (16, 1),
        (96, 1),
        (1000, 1),
        (1, 96),
        (1, 1000),
        (96, 2),
        (256, 3),
        (100, 64),
    ] {
        for k in [64usize, 784, 5000] {
            let a: DMatrix<f32> = random_real(m, k, &mut g);
            let b: DMatrix<f32> = random_real(k, n, &mut g);
            let bt = b.transpose();
            for transposed in [false, true] {
                let bv = operand(&b, &bt, transposed);
                let mut c1 = DMatrix::<f32>::zeros(m, n);
                let mut c2 = DMatrix::<f32>::zeros(m, n);
                matmul(
                    MatMut::from(&mut c1),
                    Accum::Replace,
                    MatRef::from(&a),
                    bv,
                    1.0,
                    Par::Seq,
                );
                pool.install(|| {
                    matmul(
                        MatMut::from(&mut c2),
                        Accum::Replace,
                        MatRef::from(&a),
                        bv,
                        1.0,
                        Par::Rayon(2),
                    )
                });
                assert_eq!(c1, c2, "m={m} k={k} n={n} transposed B: {transposed}");
            }
        }
    }
}

#[test]
fn ten_row_products_store_the_same_bits_through_either_epilogue() {
    // 10 rows, `k ≥ 16`, `B` by columns, α = 1: with `C`'s columns 10 apart the few-rows
    // kernel writes 4 columns' 40 sums in 3 stores (`store_ten_rows`); with any other column
    // stride it stores 4 × 4 blocks. Both must hold the same sums, bit for bit, whatever the
    // column count (whole passes of 4 columns or not) and accumulation.
    let mut g = rng(24);
    for &k in &[16usize, 17, 50, 99, 100, 784] {
        for &n in &[1usize, 4, 7, 8, 128, 257] {
            for a_by_rows in [false, true] {
                for accum in [Accum::Replace, Accum::Add] {
                    let a: DMatrix<f32> = random_real(10, k, &mut g);
                    let at = a.transpose();
                    let b: DMatrix<f32> = random_real(k, n, &mut g);
                    let c0: DMatrix<f32> = random_real(10, n, &mut g);
                    let mut packed = c0.clone();
                    let mut spread = vec![f32::NAN; 13 * n];
                    for j in 0..n {
                        for i in 0..10 {
                            spread[13 * j + i] = c0[(i, j)];
                        }
                    }
                    let av = operand(&a, &at, a_by_rows);
                    matmul(MatMut::from(&mut packed), accum, av, MatRef::from(&b), 1.0, Par::Seq);
                    matmul(
                        MatMut::from_row_major_strided(&mut spread, n, 10, 13).t(),
                        accum,
                        av,
                        MatRef::from(&b),
                        1.0,
                        Par::Seq,
                    );
                    for j in 0..n {
                        for i in 0..10 {
                            assert_eq!(
                                packed[(i, j)].to_bits(),
                                spread[13 * j + i].to_bits(),
                                "k={k} n={n} a_by_rows={a_by_rows} {accum:?} ({i},{j})"
                            );
                        }
                        assert!(
                            spread[13 * j + 10..13 * j + 13].iter().all(|x| x.is_nan()),
                            "padding written"
                        );
                    }
                    let reference = &a.map(f64::from) * &b.map(f64::from);
                    let base = if accum == Accum::Add { 1.0 } else { 0.0 };
                    for j in 0..n {
                        for i in 0..10 {
                            let want = base * c0[(i, j)] as f64 + reference[(i, j)];
                            assert!(
                                (packed[(i, j)] as f64 - want).abs() < 2e-6 * k as f64,
                                "k={k} n={n} ({i},{j})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A one-row `A` whose row stride is beyond 32-bit gather offsets takes the rows-in-lanes
/// kernel's scalar reads of `A` (`k < 16`, `B` by columns) — the path no other test reaches, as
/// a second row would need a buffer that large. The product must equal the one with the same
/// row stored contiguously, bit for bit, in both accumulations.
#[test]
fn a_row_beyond_gather_offsets_gives_the_contiguous_rows_bits() {
    let mut g = rng(31);
    for k in [1usize, 2, 7, 10, 15] {
        for accum in [Accum::Replace, Accum::Add] {
            let a: Vec<f32> = (0..k).map(|_| g.random_range(-1.0f32..1.0)).collect();
            let b: DMatrix<f32> = random_real(k, 70, &mut g);
            let c0: DMatrix<f32> = random_real(1, 70, &mut g);
            let far = MatRef::from_row_major_strided(&a, 1, k, 1 << 33);
            let near = MatRef::from_col_major(&a, 1, k);
            let (mut c_far, mut c_near) = (c0.clone(), c0.clone());
            matmul(MatMut::from(&mut c_far), accum, far, MatRef::from(&b), -0.5, Par::Seq);
            matmul(MatMut::from(&mut c_near), accum, near, MatRef::from(&b), -0.5, Par::Seq);
            let bits = |c: &DMatrix<f32>| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&c_far), bits(&c_near), "k={k} {accum:?}");
        }
    }
}

/// With `par` parallel, f32 products of at least 2 MFLOP are cut into column blocks, one per
/// thread, each computed sequentially: the bits must be those of one sequential product for
/// FFzero's shapes (every kernel `matmul` dispatches to: faer, faer plus the few-rows rows,
/// the short-`k` and rows-to-columns kernels), column counts that do not divide evenly, both
/// accumulations, `A` and `B` by columns and by rows, α ≠ 1, at 2 and 3 threads.
#[test]
fn column_blocks_on_threads_give_the_sequential_bits() {
    let mut g = rng(41);
    let pools: Vec<rayon::ThreadPool> = [2, 3]
        .iter()
        .map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())
        .collect();
    for &(m, k, n) in &[
        (100usize, 784usize, 256usize),
        (100, 100, 256),
        (100, 256, 784),
        (100, 256, 100),
        (50, 784, 256),
        (50, 256, 784),
        (10, 256, 784),
        (10, 784, 256),
        (112, 100, 200),
        (100, 10, 1000),
        (13, 300, 777),
    ] {
        for (a_by_rows, b_by_rows) in [(false, false), (true, false), (false, true)] {
            for (accum, alpha) in [(Accum::Replace, 1.0f32), (Accum::Add, 1.0), (Accum::Add, -0.25)] {
                let a: DMatrix<f32> = random_real(m, k, &mut g);
                let b: DMatrix<f32> = random_real(k, n, &mut g);
                let (at, bt) = (a.transpose(), b.transpose());
                let (av, bv) = (operand(&a, &at, a_by_rows), operand(&b, &bt, b_by_rows));
                let c0: DMatrix<f32> = random_real(m, n, &mut g);
                let mut seq = c0.clone();
                matmul(MatMut::from(&mut seq), accum, av, bv, alpha, Par::Seq);
                for pool in &pools {
                    let threads = pool.current_num_threads();
                    let mut par = c0.clone();
                    pool.install(|| matmul(MatMut::from(&mut par), accum, av, bv, alpha, Par::Rayon(threads)));
                    let same = seq.iter().zip(par.iter()).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "({m}, {k}, {n}) A by rows {a_by_rows}, B by rows {b_by_rows}, {accum:?} α {alpha}, {threads} threads");
                }
            }
        }
    }
}
