//! The f32 kernel for the last few rows of a product, where faer's smallest tile wastes most of
//! its time.
//!
//! faer covers the rows of `C` with tiles of 96 rows and finishes with a 16-row tile whose four
//! accumulator chains wait on each FMA's latency: on (m × 784)·(784 × 256) it takes the same
//! 58 µs for m = 4, 10 or 16 rows, and a 100-row product (96 + 4) costs 284 µs where 96 rows cost
//! 211 (`cargo bench -p insitu-linalg --bench matmul`). FFzero's layers have 100, 50 and 10
//! rows. This kernel computes up to [`MAX_ROWS`] rows itself, with `2·rows` independent FMA
//! chains of 16 lanes that keep both FMA pipes busy: as dot products along `k` when `B`'s
//! columns are contiguous (a forward product `W·x`), or as rank-one updates of 32 columns at a
//! time when `B`'s rows are contiguous (a weight gradient `dZ·Xᵀ`); see [`applies`] for when
//! each pays.
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

/// How [`product_few_rows`] reads `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `B`'s columns are contiguous (e.g. a batch of samples): dot products along `k`.
    Columns,
    /// `B`'s rows are contiguous (e.g. the transpose of a batch, in a weight gradient
    /// `dZ·Xᵀ`): rank-one updates of 32 columns of `C` at a time along `k`.
    Rows,
}

/// Whether [`product_few_rows`] takes the last `rows` of a product with `total_rows` rows, and
/// how: `1 ≤ rows ≤ MAX_ROWS`, AVX-512 (elsewhere faer does all rows), and `B` either
/// column-contiguous with `k ≥ 256`, or row-contiguous with `n ≥ 64`, `rows ≤ 8` and at least 96
/// rows for faer. Measured on (m × 256)·(256 × 784), `cargo bench -p insitu-linalg --bench
/// matmul -- weight_gradient`: the row kernel takes 257–310 µs for m = 97…104 where faer alone
/// takes 325–335, but is 3–7 % slower than faer for m = 10, 50 and 106…108.
pub(crate) fn applies(rows: usize, total_rows: usize, b: MatRef<'_, f32>) -> Option<Layout> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(1..=MAX_ROWS).contains(&rows) || !std::arch::is_x86_feature_detected!("avx512f") {
            return None;
        }
        if b.row_stride() == 1 && b.nrows() >= 16 * LANES {
            Some(Layout::Columns)
        } else if b.col_stride() == 1 && b.ncols() >= 4 * LANES && rows <= 8 && total_rows >= 96 + rows {
            Some(Layout::Rows)
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, total_rows, b);
        None
    }
}

/// `C ← α·A·B` or `C + α·A·B` for `A` of [`applies`]'s shape. Sequential: it is a few µs, and
/// running no rayon work while it borrows its thread-local buffer means no other job can
/// re-enter it on this thread.
pub(crate) fn product_few_rows(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    layout: Layout,
) {
    let (rows, k) = (a.nrows(), a.ncols());
    PACKED_ROWS.with(|packed| {
        let mut packed = packed.borrow_mut();
        if packed.len() < rows * k {
            packed.resize(rows * k, 0.0);
        }
        // Columns: row-major `rows × k`; Rows: `k × rows` (the rows' values at one `p` together).
        for r in 0..rows {
            for p in 0..k {
                let at = match layout {
                    Layout::Columns => r * k + p,
                    Layout::Rows => p * rows + r,
                };
                packed[at] = a.get_raw(r, p);
            }
        }
        let packed = &packed[..rows * k];
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match (rows, layout) {
                    // SAFETY: `applies` checked AVX-512F and the layout; `packed` is rows × k.
                    $(($n, Layout::Columns) => unsafe { few_rows_avx512::<$n>(c, accum, packed, b, alpha) },
                      ($n, Layout::Rows) => unsafe { few_rows_row_major_b_avx512::<$n>(c, accum, packed, b, alpha) },)*
                    _ => unreachable!("applies() admits 1..=MAX_ROWS rows"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12);
    });
}

/// The kernel for exactly `R` rows when `B`'s rows are contiguous: 32 columns of `C` per pass,
/// `2R` accumulators of 16 lanes, one rank-one update per `p` (`k` in order, fused); the last
/// pass masks the columns past `n`.
///
/// # Safety
/// The CPU must support AVX-512F; `a` holds `k × R` values (`a[p·R + r] = A[r, p]`); `B` has
/// column stride 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn few_rows_row_major_b_avx512<const R: usize>(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: &[f32],
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.nrows(), b.ncols());
    assert_eq!(a.len(), R * k, "packed rows");
    let mut lanes = [0.0f32; LANES];
    // Passes of 32 columns; the last pass masks the columns past `n`.
    for j0 in (0..n).step_by(2 * LANES) {
        let width = (n - j0).min(2 * LANES);
        let mask_of = |count: usize| -> __mmask16 {
            if count >= LANES {
                0xFFFF
            } else {
                ((1u32 << count) - 1) as u16
            }
        };
        let (m0, m1) = (mask_of(width), mask_of(width.saturating_sub(LANES)));
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for p in 0..k {
            let row = b.row_slice(p);
            // SAFETY: the masks only let lanes with j0 + lane < n = row.len() touch memory;
            // p·R + R ≤ a.len().
            unsafe {
                let x0 = _mm512_maskz_loadu_ps(m0, row.as_ptr().add(j0));
                let x1 = _mm512_maskz_loadu_ps(m1, row.as_ptr().wrapping_add(j0 + LANES));
                for r in 0..R {
                    let w = _mm512_set1_ps(*a.get_unchecked(p * R + r));
                    acc0[r] = _mm512_fmadd_ps(w, x0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(w, x1, acc1[r]);
                }
            }
        }
        for (offset, acc) in [(0, &acc0), (LANES, &acc1)] {
            let count = width.saturating_sub(offset).min(LANES);
            for r in 0..R {
                // SAFETY: `lanes` has 16 f32s.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
                for (l, &s) in lanes[..count].iter().enumerate() {
                    store(c.get_mut_internal(r, j0 + offset + l), s, accum, alpha);
                }
            }
        }
    }
    _mm256_zeroupper();
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
                store(c.get_mut_internal(r, col), s, accum, alpha);
            }
        }
        j += 2;
    }
    _mm256_zeroupper();
}

/// `slot ← α·s` or `slot + α·s` (fused).
#[inline(always)]
fn store(slot: &mut f32, s: f32, accum: Accum, alpha: f32) {
    *slot = match accum {
        Accum::Replace => alpha * s,
        Accum::Add => alpha.mul_add(s, *slot),
    };
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
