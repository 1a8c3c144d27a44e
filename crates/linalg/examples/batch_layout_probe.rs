//! A measurement probe for issue 8's open item (docs/performance.md, round 10): would storing
//! activations **batch-contiguous** (each feature's 256 samples consecutive, the batch along the
//! registers' lanes) bring the narrow products — 10 output rows, 10 → 10 — closer to the peak
//! than today's layout (each sample's features consecutive)?
//!
//! It times, at 1 thread, fastest of 1,000 calls, each FFzero product shape
//! `C (m × n) = A (m × k) · B (k × n)` for a batch of `n` = 128 (FF+DD's column block) and 256
//! samples, all through [`insitu_linalg::matmul`]:
//! 1. with `B` and `C` column-major (today's layout);
//! 2. with `B` and `C` stored by rows, `n` apart (the batch along the lanes: the
//!    `batch_lanes` kernel);
//! 3. the same with the rows [`padded_row_stride`] apart.
//!
//! It prints the fraction of one core's FMA peak (measured first, as `cargo xtask bench` does).
//!
//! `cargo run --release -p insitu-linalg --example batch_layout_probe`

#[path = "common/timing.rs"]
mod timing;

use insitu_linalg::{fma_peak_gflops, matmul, padded_row_stride, Accum, MatMut, MatRef, Par};

/// Product shapes `(m, k)` of FFzero's layers (MNIST, widths 100, 50, 10).
const SHAPES: [(usize, usize); 7] = [
    (100, 784),
    (100, 100),
    (10, 100),
    (50, 784),
    (50, 50),
    (10, 784),
    (10, 10),
];

fn main() {
    let Some(peak) = fma_peak_gflops() else {
        println!("no AVX-512F: nothing to probe");
        return;
    };
    println!("FMA peak {peak:.0} GFLOP/s (1 core); fastest of 1,000 calls; percent of the peak");
    println!("| (m, k, n) | samples as columns (today) | by rows | by rows, padded |");
    println!("|---|---|---|---|");
    for n in [128, 256] {
        for (m, k) in SHAPES {
            let a = timing::operand(m * k, 131, 1);
            let b = timing::operand(k * n, 17, 3);
            let a_view = MatRef::from_col_major(&a, m, k);
            let mut c = vec![0f32; m * n];
            let columns = fastest(|| {
                product(
                    MatMut::from_col_major(&mut c, m, n),
                    a_view,
                    MatRef::from_col_major(&b, k, n),
                )
            });
            let rows = fastest(|| {
                product(
                    MatMut::from_row_major(&mut c, m, n),
                    a_view,
                    MatRef::from_row_major(&b, k, n),
                )
            });
            let ld = padded_row_stride(n);
            let b_padded: Vec<f32> = (0..k * ld)
                .map(|e| if e % ld < n { b[(e / ld) * n + e % ld] } else { 0.0 })
                .collect();
            let mut c_padded = vec![0f32; m * ld];
            let padded = fastest(|| {
                product(
                    MatMut::from_row_major_strided(&mut c_padded, m, n, ld),
                    a_view,
                    MatRef::from_row_major_strided(&b_padded, k, n, ld),
                )
            });
            let percent = |seconds: f64| 2.0 * (m * k * n) as f64 / seconds / 1e9 / peak * 100.0;
            println!(
                "| ({m}, {k}, {n}) | {:.2} µs, {:.0} % | {:.2} µs, {:.0} % | {:.2} µs, {:.0} % |",
                columns * 1e6,
                percent(columns),
                rows * 1e6,
                percent(rows),
                padded * 1e6,
                percent(padded)
            );
        }
    }
}

/// `C ← A·B` through [`matmul`] at 1 thread: the product both layouts are timed with.
fn product(c: MatMut<'_, f32>, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    matmul(c, Accum::Replace, a, b, 1.0, Par::Seq);
}

/// Fastest of 1,000 calls after one warm-up call, in seconds.
fn fastest(f: impl FnMut()) -> f64 {
    timing::fastest(1000, 1, f)
}
