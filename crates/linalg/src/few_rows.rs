//! The f32 kernel for the last few rows of a product, where faer's smallest tile wastes most of
//! its time.
//!
//! faer covers the rows of `C` with tiles of 96 rows and finishes with a 16-row tile whose four
//! accumulator chains wait on each FMA's latency: on (m × 784)·(784 × 256) it takes the same
//! 58 µs for m = 4, 10 or 16 rows, and a 100-row product (96 + 4) costs 284 µs where 96 rows cost
//! 211 (`cargo bench -p insitu-linalg --bench matmul`). FFzero's layers have 100, 50 and 10
//! rows. This kernel computes up to [`MAX_ROWS`] rows as dot products along `k`: the rows of
//! `A` are packed once, each pair of columns of `B` (contiguous) is read once, with 16-lane
//! accumulators; `2·rows` independent FMA chains keep both FMA pipes busy.
//!
//! Each element is `Σ_k` in a fixed order (16 lanes in `k` order with fused multiply-adds, then
//! a fixed tree over the lanes, then the tail), independent of the thread count. AVX-512 only:
//! without it faer computes all rows (as it picks its own kernels by instruction set, products
//! were never bitwise equal across instruction sets).

use std::cell::RefCell;

use crate::matmul::{Accum, MatMut, MatRef};

/// Most rows this kernel takes (more would spill the accumulators out of registers).
pub(crate) const MAX_ROWS: usize = 12;
/// Lanes per accumulator (one AVX-512 register).
const LANES: usize = 16;

thread_local! {
    /// Packed rows of `A` (`rows × k`, row-major), allocated on first use per thread and reused.
    static PACKED_ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`product_few_rows`] takes this product: `1 ≤ rows ≤ MAX_ROWS`, `B`'s columns
/// contiguous, a long enough `k`, and AVX-512 (elsewhere faer does all rows).
pub(crate) fn applies(rows: usize, k: usize, b_row_stride: isize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (1..=MAX_ROWS).contains(&rows)
            && b_row_stride == 1
            && k >= 16 * LANES
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, k, b_row_stride);
        false
    }
}

/// `C ← α·A·B` or `C + α·A·B` for `A` of [`applies`]'s shape. Sequential: it is a few µs, and
/// running no rayon work while it borrows its thread-local buffer means no other job can
/// re-enter it on this thread.
pub(crate) fn product_few_rows(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>, alpha: f32) {
    let (rows, k) = (a.nrows(), a.ncols());
    PACKED_ROWS.with(|packed| {
        let mut packed = packed.borrow_mut();
        if packed.len() < rows * k {
            packed.resize(rows * k, 0.0);
        }
        for r in 0..rows {
            for p in 0..k {
                packed[r * k + p] = a.get_raw(r, p);
            }
        }
        let packed = &packed[..rows * k];
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match rows {
                    // SAFETY: `applies` checked AVX-512F; `packed` is rows × k.
                    $($n => unsafe { few_rows_avx512::<$n>(c, accum, packed, b, alpha) },)*
                    _ => unreachable!("applies() admits 1..=MAX_ROWS rows"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12);
    });
}

/// The kernel for exactly `R` rows: AVX-512, two columns of `B` per pass, `2R` accumulators of
/// 16 lanes.
///
/// # Safety
/// The CPU must support AVX-512F (see [`applies`]); `a` holds `R × k` values, row-major.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn few_rows_avx512<const R: usize>(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: &[f32],
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.nrows(), b.ncols());
    assert_eq!(a.len(), R * k, "packed rows");
    let chunks = k / LANES;
    let mut j = 0;
    while j < n {
        // Two columns at a time share the row loads; a last odd column is paired with itself.
        let j1 = if j + 1 < n { j + 1 } else { j };
        let (b0, b1) = (b.column_slice(j), b.column_slice(j1));
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for q in 0..chunks {
            // SAFETY: q·16 + 16 ≤ k for the columns (length k) and for each packed row.
            unsafe {
                let x0 = _mm512_loadu_ps(b0.as_ptr().add(q * LANES));
                let x1 = _mm512_loadu_ps(b1.as_ptr().add(q * LANES));
                for r in 0..R {
                    let w = _mm512_loadu_ps(a.as_ptr().add(r * k + q * LANES));
                    acc0[r] = _mm512_fmadd_ps(w, x0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(w, x1, acc1[r]);
                }
            }
        }
        let pairs = if j1 == j { 1 } else { 2 };
        for (col, acc, x) in [(j, &acc0, b0), (j1, &acc1, b1)].into_iter().take(pairs) {
            for r in 0..R {
                let mut lanes = [0.0f32; LANES];
                // SAFETY: `lanes` has 16 f32s.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
                let mut s = reduce_lanes(&lanes);
                for p in chunks * LANES..k {
                    s = a[r * k + p].mul_add(x[p], s);
                }
                let slot = c.get_mut_internal(r, col);
                *slot = match accum {
                    Accum::Replace => alpha * s,
                    Accum::Add => alpha.mul_add(s, *slot),
                };
            }
        }
        j += 2;
    }
    _mm256_zeroupper();
}

/// The sum of 16 lanes by a fixed pairwise tree.
#[inline(always)]
fn reduce_lanes(v: &[f32; LANES]) -> f32 {
    let mut h = [0.0f32; 8];
    for l in 0..8 {
        h[l] = v[l] + v[l + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}
