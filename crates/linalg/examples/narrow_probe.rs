//! A measurement probe for the narrow products of FFzero's MLPs (docs/performance.md, rounds
//! 14 to 16): the few-row kernels (`few_rows.rs`) and the short-`k` kernel (`short_k.rs`),
//! with `A` stored by columns (a layer's `W` or `V`, the prototypes `Ξ`) and by rows (the
//! transposed prototypes `Ξᵀ` of the goodness projections, a layer's `Wᵀ` in a backward
//! product), `B` and `C` column-major as the trainers keep them; then the few-row weight
//! gradients `dY·Hᵀ` (`rows_to_columns.rs`: `B = Hᵀ` stored by rows). (Called
//! `few_rows_probe` until round 15 added the short-`k` shapes.)
//!
//! It times, at 1 thread, the fastest of 3,000 calls (after 20 warm-up calls) of each shape
//! `C (m × n) = A (m × k) · B (k × n)` through [`insitu_linalg::matmul`], and prints µs per
//! call and the fraction of one core's FMA peak (measured first, as `cargo xtask bench`
//! does). Rounds 14's and 15's before/after numbers come from this loop, run with each binary.
//!
//! `cargo run --release -p insitu-linalg --example narrow_probe`

#[path = "common/timing.rs"]
mod timing;

use timing::operand;

use insitu_linalg::{fma_peak_gflops, matmul, Accum, MatMut, MatRef, Par};

/// `(m, k, n)`: the 10-output layer and the goodness projections at width 100 (256 samples,
/// and FF+DD's 128-sample blocks), the 10-output layer on 784 inputs, the 4 rows a 100-row
/// layer leaves to this kernel, a width-10 hidden layer, a regression's 1 output; then the
/// AD methods' backward products through a 10-output layer (`Wᵀ·dY`, `Ξ·dP`) at widths 100
/// and 50.
const SHAPES: [(usize, usize, usize); 9] = [
    (10, 100, 256),
    (10, 100, 128),
    (10, 784, 256),
    (4, 100, 256),
    (10, 10, 256),
    (1, 100, 256),
    (100, 10, 256),
    (100, 10, 128),
    (50, 10, 256),
];

/// `(m, k, n)` of weight gradients `dW (m × n) = dY (m × k)·Hᵀ`, `H` (n × k) column-major:
/// the 10-output layer at widths 100 and 784 (a width-10 network's first layer), and the
/// neighbouring shapes round 16 timed to find where (10, 256, 100) lost its time (a 2-row
/// tile, a 4-column panel).
const WEIGHT_GRADIENT_SHAPES: [(usize, usize, usize); 5] = [
    (10, 256, 100),
    (10, 256, 96),
    (8, 256, 96),
    (8, 256, 100),
    (10, 256, 784),
];

/// Fastest of 3,000 calls (after 20 warm-up calls) of `C (m × n) ← A·B` through
/// [`matmul`], `C` column-major: µs per call and percent of `peak`.
fn time_product(a: MatRef<'_, f32>, b: MatRef<'_, f32>, peak: f64) -> (f64, f64) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut c = vec![0f32; m * n];
    let seconds = timing::fastest(3000, 20, || {
        matmul(
            MatMut::from_col_major(&mut c, m, n),
            Accum::Replace,
            a,
            b,
            1.0,
            Par::Seq,
        );
        std::hint::black_box(&c);
    });
    (seconds * 1e6, 2.0 * (m * k * n) as f64 / seconds / 1e9 / peak * 100.0)
}

fn main() {
    let Some(peak) = fma_peak_gflops() else {
        println!("no AVX-512F: faer computes every row; nothing to probe");
        return;
    };
    println!("FMA peak {peak:.0} GFLOP/s (1 core); fastest of 3,000 calls");
    println!("| (m, k, n) | A stored by | µs | of peak |");
    println!("|---|---|---|---|");
    for (m, k, n) in SHAPES {
        let a = operand(m * k, 131, 1);
        let b = operand(k * n, 17, 3);
        for (stored, a_view) in [
            ("columns", MatRef::from_col_major(&a, m, k)),
            ("rows", MatRef::from_row_major(&a, m, k)),
        ] {
            let (micros, percent) = time_product(a_view, MatRef::from_col_major(&b, k, n), peak);
            println!("| ({m}, {k}, {n}) | {stored} | {micros:.2} | {percent:.0} % |");
        }
    }
    println!();
    println!("| weight gradient (m, k, n), B by rows | µs | of peak |");
    println!("|---|---|---|");
    for (m, k, n) in WEIGHT_GRADIENT_SHAPES {
        let a = operand(m * k, 131, 1);
        let h = operand(n * k, 17, 3);
        let (micros, percent) = time_product(
            MatRef::from_col_major(&a, m, k),
            MatRef::from_col_major(&h, n, k).t(),
            peak,
        );
        println!("| ({m}, {k}, {n}) | {micros:.2} | {percent:.0} % |");
    }
}
