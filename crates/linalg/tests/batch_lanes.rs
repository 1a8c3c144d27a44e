//! `matmul` with `B` and `C` stored by rows (the batch along the lanes), against the naive
//! triple loop over many shapes, strides and accumulation modes, with a fixed seed; and the
//! kernel's promise that every element is one fused chain over `p` in order (so blocking,
//! padding and threads never change a bit).

use insitu_linalg::{matmul, matmul_reference, padded_row_stride, rng, Accum, MatMut, MatRef, Par};
use rand::Rng;

fn random(len: usize, g: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| g.random_range(-1.0f32..1.0)).collect()
}

/// `A` (`m × k`) column-major (a weight matrix) or row-major (`Ξᵀ`, a transposed view).
fn a_view(a: &[f32], m: usize, k: usize, by_rows: bool) -> MatRef<'_, f32> {
    if by_rows {
        MatRef::from_col_major(a, k, m).t()
    } else {
        MatRef::from_col_major(a, m, k)
    }
}

/// Random `A` (`m × k`), `B` (`k` rows `ld` apart) and `C` (`m` rows `ld` apart, padding
/// included).
fn operands(m: usize, k: usize, ld: usize, g: &mut impl Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (random(m * k, g), random(k * ld, g), random(m * ld, g))
}

/// `matmul` at one thread into `c`, stored by rows `ld` apart.
fn product_by_rows(
    c: &mut [f32],
    n: usize,
    ld: usize,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    let m = a.nrows();
    matmul(
        MatMut::from_row_major_strided(c, m, n, ld),
        accum,
        a,
        b,
        alpha,
        Par::Seq,
    );
}

/// The exact sum the kernel promises: `C[i, j] = fma chain over p in order`, from zero (then
/// `α·s`, or `C + α·s`) or, for `Add` with `α = 1`, from `C`.
fn fused_chain(c: f32, accum: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>, alpha: f32, i: usize, j: usize) -> f32 {
    let from_c = accum == Accum::Add && alpha == 1.0;
    let mut s = if from_c { c } else { 0.0 };
    for p in 0..a.ncols() {
        s = a.get(i, p).mul_add(b.get(p, j), s);
    }
    match accum {
        _ if from_c => s,
        Accum::Replace if alpha == 1.0 => s,
        Accum::Replace => alpha * s,
        Accum::Add => c + alpha * s,
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn by_rows_matches_the_reference_over_many_shapes() {
    let mut g = rng(7);
    let mut count = 0;
    for &m in &[1usize, 2, 4, 5, 6, 9, 10, 11, 50, 100] {
        for &k in &[1usize, 3, 10, 16, 100, 128, 129, 300, 784] {
            for &n in &[16usize, 17, 31, 48, 64, 80, 128, 130, 256] {
                let by_rows = (m + k + n) % 2 == 0;
                let padded = (m * k + n) % 3 != 0;
                let ld = if padded { padded_row_stride(n) } else { n };
                let (accum, alpha) = [
                    (Accum::Replace, 1.0),
                    (Accum::Add, 1.0),
                    (Accum::Replace, 0.75),
                    (Accum::Add, -0.5),
                ][(m + 2 * k + 3 * n) % 4];
                let (a, b, c0) = operands(m, k, ld, &mut g);
                let (mut c, mut want) = (c0.clone(), c0.clone());
                let av = a_view(&a, m, k, by_rows);
                let bv = MatRef::from_row_major_strided(&b, k, n, ld);
                product_by_rows(&mut c, n, ld, accum, av, bv, alpha);
                matmul_reference(
                    MatMut::from_row_major_strided(&mut want, m, n, ld),
                    accum,
                    av,
                    bv,
                    alpha,
                );
                let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                for i in 0..m {
                    for j in 0..ld {
                        let (x, y) = (c[i * ld + j], want[i * ld + j]);
                        if j >= n {
                            assert_eq!(x.to_bits(), c0[i * ld + j].to_bits(), "padding written at ({i}, {j})");
                        } else {
                            assert!(
                                (x - y).abs() <= tol,
                                "(m, k, n) = ({m}, {k}, {n}), ld {ld}, {accum:?} α = {alpha}: C[{i}, {j}] = {x}, reference {y}"
                            );
                        }
                    }
                }
                count += 1;
            }
        }
    }
    assert_eq!(count, 10 * 9 * 9);
}

#[test]
fn every_element_is_one_fused_chain_in_order() {
    if !avx512() {
        eprintln!("no AVX-512F: matmul takes faer's path, whose order this test does not describe");
        return;
    }
    let mut g = rng(8);
    for &(m, k, n) in &[
        (10usize, 100usize, 128usize),
        (7, 300, 80),
        (50, 129, 17),
        (2, 784, 64),
        (100, 10, 130),
    ] {
        for (accum, alpha) in [
            (Accum::Replace, 1.0),
            (Accum::Add, 1.0),
            (Accum::Replace, 0.75),
            (Accum::Add, -0.5),
        ] {
            if accum == Accum::Add && alpha != 1.0 && k > 64 {
                continue; // faer's path: more than one block of k (batch_lanes::applies, K_BLOCK)
            }
            let ld = padded_row_stride(n);
            let (a, b, c0) = operands(m, k, ld, &mut g);
            let mut c = c0.clone();
            let av = MatRef::from_col_major(&a, m, k);
            let bv = MatRef::from_row_major_strided(&b, k, n, ld);
            product_by_rows(&mut c, n, ld, accum, av, bv, alpha);
            for i in 0..m {
                for j in 0..n {
                    let want = fused_chain(c0[i * ld + j], accum, av, bv, alpha, i, j);
                    assert_eq!(
                        c[i * ld + j].to_bits(),
                        want.to_bits(),
                        "({m}, {k}, {n}) {accum:?} α = {alpha}: C[{i}, {j}] = {} where the chain gives {want}",
                        c[i * ld + j]
                    );
                }
            }
        }
    }
}

#[test]
fn threads_and_padding_change_no_bit() {
    let mut g = rng(9);
    // 2·m·n·k ≥ 40 MFLOP, so Par::Rayon splits the panels.
    let (m, k, n) = (100, 784, 300);
    let a = random(m * k, &mut g);
    let b = random(k * n, &mut g);
    let av = MatRef::from_col_major(&a, m, k);
    let ld = padded_row_stride(n);
    let mut b_padded = vec![0.0f32; k * ld];
    for p in 0..k {
        b_padded[p * ld..p * ld + n].copy_from_slice(&b[p * n..(p + 1) * n]);
    }
    let mut plain = vec![0.0f32; m * n];
    matmul(
        MatMut::from_row_major(&mut plain, m, n),
        Accum::Replace,
        av,
        MatRef::from_row_major(&b, k, n),
        1.0,
        Par::Seq,
    );
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut threaded = vec![0.0f32; m * ld];
    pool.install(|| {
        matmul(
            MatMut::from_row_major_strided(&mut threaded, m, n, ld),
            Accum::Replace,
            av,
            MatRef::from_row_major_strided(&b_padded, k, n, ld),
            1.0,
            Par::Rayon(2),
        )
    });
    for i in 0..m {
        for j in 0..n {
            assert_eq!(
                plain[i * n + j].to_bits(),
                threaded[i * ld + j].to_bits(),
                "C[{i}, {j}]"
            );
        }
    }
}

#[test]
#[should_panic(expected = "from_row_major_strided")]
fn a_stride_shorter_than_a_row_is_refused() {
    let data = vec![0.0f32; 100];
    let _ = MatRef::from_row_major_strided(&data, 4, 20, 16);
}
