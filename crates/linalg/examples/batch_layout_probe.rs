//! A measurement probe for issue 8's open item (docs/performance.md, round 10): would storing
//! activations **batch-contiguous** (each feature's 256 samples consecutive, the batch along the
//! registers' lanes) bring the narrow products — 10 output rows, 10 → 10 — closer to the peak
//! than today's layout (each sample's features consecutive)?
//!
//! It times, at 1 thread, fastest of 1,000 calls, each FFzero product shape
//! `C (m × 256) = A (m × k) · B (k × 256)`:
//! 1. through [`insitu_linalg::matmul`] with `B` and `C` column-major (today's layout);
//! 2. through the same `matmul` with `B` and `C` row-major (batch-contiguous; faer swaps to
//!    `Cᵀ = Bᵀ·Aᵀ`, 256 rows along its tiles);
//! 3. through [`batch_in_lanes`], a plain kernel for the batch-contiguous layout written for
//!    this probe (tiles of 5 rows × 64 samples, `A[i, p]` broadcast, no lane sums), checked
//!    against 2.
//!
//! It prints GFLOP/s and the fraction of one core's FMA peak (measured first, as
//! `cargo xtask bench` does). Not a benchmark of a shipped kernel: `batch_in_lanes` exists
//! only here.
//!
//! `cargo run --release -p insitu-linalg --example batch_layout_probe`

use std::time::Instant;

use insitu_linalg::{fma_peak_gflops, matmul, Accum, MatMut, MatRef, Par};

/// Columns of `C` (samples) and the product shapes `(m, k)` of FFzero's layers (MNIST, widths
/// 100, 50, 10).
const BATCH: usize = 256;
const SHAPES: [(usize, usize); 7] = [
    (100, 784),
    (100, 100),
    (10, 100),
    (50, 784),
    (50, 50),
    (10, 784),
    (10, 10),
];
/// Rows and 16-lane vectors of samples per tile of [`batch_in_lanes`].
const TILE_ROWS: usize = 5;
const TILE_VECTORS: usize = 4;

fn main() {
    let Some(peak) = fma_peak_gflops() else {
        println!("no AVX-512F: nothing to probe");
        return;
    };
    println!("FMA peak {peak:.0} GFLOP/s (1 core); fastest of 1,000 calls; percent of the peak");
    println!("| (m, k, n) | samples as columns (today) | batch-contiguous, matmul | batch-contiguous, batch_in_lanes | the same, B's rows padded |");
    println!("|---|---|---|---|---|");
    for (m, k) in SHAPES {
        let n = BATCH;
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 131 + 1) % 97) as f32 / 97.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 17 + 3) % 97) as f32 / 97.0 - 0.5).collect();
        let (mut c, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
        let a_view = MatRef::from_col_major(&a, m, k);
        let columns = fastest(|| {
            product(
                MatMut::from_col_major(&mut c, m, n),
                a_view,
                MatRef::from_col_major(&b, k, n),
            )
        });
        let rows = fastest(|| {
            product(
                MatMut::from_row_major(&mut want, m, n),
                a_view,
                MatRef::from_row_major(&b, k, n),
            )
        });
        // SAFETY: AVX-512F is present (the peak was measured); the shapes are multiples of
        // the tile.
        let kernel = fastest(|| unsafe { batch_in_lanes(&mut c, &a, &b, m, k, n, n) });
        // B's rows 16 values apart from a power of two (1,088 bytes instead of 1,024): the
        // 64-sample slice a tile reads no longer falls into a quarter of L1's sets.
        let ld = n + 16;
        let b_padded: Vec<f32> = (0..k * ld)
            .map(|e| if e % ld < n { b[(e / ld) * n + e % ld] } else { 0.0 })
            .collect();
        let mut c_padded = vec![0f32; m * n];
        // SAFETY: as above, with B's leading dimension ld ≥ n.
        let padded = fastest(|| unsafe { batch_in_lanes(&mut c_padded, &a, &b_padded, m, k, n, ld) });
        assert_eq!(c, c_padded, "the padding changed a sum");
        let worst = c
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max);
        assert!(worst < 1e-5 * k as f32, "batch_in_lanes differs from matmul by {worst}");
        let percent = |seconds: f64| 2.0 * (m * k * n) as f64 / seconds / 1e9 / peak * 100.0;
        println!(
            "| ({m}, {k}, {n}) | {:.2} µs, {:.0} % | {:.2} µs, {:.0} % | {:.2} µs, {:.0} % | {:.2} µs, {:.0} % |",
            columns * 1e6,
            percent(columns),
            rows * 1e6,
            percent(rows),
            kernel * 1e6,
            percent(kernel),
            padded * 1e6,
            percent(padded)
        );
    }
}

/// `C ← A·B` through [`matmul`] at 1 thread: the product both layouts are timed with.
fn product(c: MatMut<'_, f32>, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    matmul(c, Accum::Replace, a, b, 1.0, Par::Seq);
}

/// Fastest of 1,000 calls after one warm-up call, in seconds.
fn fastest(mut f: impl FnMut()) -> f64 {
    f();
    (0..1000)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// `C ← A·B` with `C` (`m × n`) and `B` (`k × n`) row-major and `A` (`m × k`) column-major:
/// tiles of 5 rows × 64 samples (samples outer), 20 accumulators, `A[i, p]` broadcast against 4 vectors of
/// `B`'s row `p`. Each element is `Σ_p` in `p` order, fused, from zero.
///
/// `B`'s rows are `ld ≥ n` values apart.
///
/// # Safety
/// The CPU must support AVX-512F; `m` is a multiple of 5 and `n` of 64; the slices hold the
/// shapes' elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn batch_in_lanes(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ld: usize) {
    use std::arch::x86_64::*;
    assert!(
        m.is_multiple_of(TILE_ROWS)
            && n.is_multiple_of(16 * TILE_VECTORS)
            && a.len() == m * k
            && ld >= n
            && b.len() == k * ld
            && c.len() == m * n
    );
    // Samples outer: a 64-sample slice of B (k × 256 bytes) stays in L1 across the row tiles.
    for j0 in (0..n).step_by(16 * TILE_VECTORS) {
        for i0 in (0..m).step_by(TILE_ROWS) {
            let mut acc = [[_mm512_setzero_ps(); TILE_VECTORS]; TILE_ROWS];
            for p in 0..k {
                // SAFETY: row p of B holds n ≥ j0 + 64 values; A[i0 + r, p] is in bounds.
                unsafe {
                    let x: [__m512; TILE_VECTORS] =
                        std::array::from_fn(|v| _mm512_loadu_ps(b.as_ptr().add(p * ld + j0 + 16 * v)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let w = _mm512_set1_ps(*a.get_unchecked(p * m + i0 + r));
                        for (v, x) in x.iter().enumerate() {
                            acc[v] = _mm512_fmadd_ps(w, *x, acc[v]);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    // SAFETY: row i0 + r of C holds n ≥ j0 + 64 values.
                    unsafe { _mm512_storeu_ps(c.as_mut_ptr().add((i0 + r) * n + j0 + 16 * v), *acc) };
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn batch_in_lanes(_: &mut [f32], _: &[f32], _: &[f32], _: usize, _: usize, _: usize, _: usize) {
    unreachable!("fma_peak_gflops() is None off x86-64")
}
