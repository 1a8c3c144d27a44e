//! The f32 kernel for the last few rows of a product, where faer's smallest tile wastes most of
//! its time.
//!
//! faer covers the rows of `C` with tiles of 96 rows and finishes with a 16-row tile whose four
//! accumulator chains wait on each FMA's latency: on (m × 784)·(784 × 256) it takes the same
//! 58 µs for m = 4, 10 or 16 rows, a 100-row product (96 + 4) costs 284 µs where 96 rows cost
//! 211, and a hidden layer's (100 × 100)·(100 × 256) 36.6 µs where 96 rows cost 27.4
//! (`cargo bench -p insitu-linalg --bench matmul`). FFzero's layers have 100, 50 and 10 rows.
//! This module computes up to [`MAX_ROWS`] rows itself, with one of two kernels (see
//! [`applies`] for when each pays):
//! - **quads** ([`quads_avx512`]) when `B`'s columns are contiguous (a forward product `W·x`:
//!   a 10-output layer, the 4 rows a 100-row layer leaves, a regression's 1 output): a register
//!   holds 4 rows × 4 consecutive `k`, so 10 rows fill 3 registers (83 % of their lanes) and each
//!   sum ends with a 4-way lane sum;
//! - **rank-one updates** ([`few_rows_row_major_b_avx512`]) of 32 columns at a time when `B`'s
//!   rows are contiguous (a weight gradient `dZ·Xᵀ`).
//!
//! Each element is `Σ_k` in a fixed order that depends only on the shape (quads: for each
//! `e < 4`, the `k ≡ e (mod 4)` terms fused in `k` order, then `(e₀ + e₂) + (e₁ + e₃)`;
//! rank-one updates: `k` order, fused), never on the thread count or on `C`'s layout. AVX-512
//! only: without it faer computes all rows (as it picks its own kernels by instruction set,
//! products were never bitwise equal across instruction sets).
//!
//! **Results changed in their last bits** in commit fe7d0b2, when a dot-product kernel (16
//! lanes along `k`, then a shuffle tree) took over the leftover rows of products with
//! `16 ≤ k < 256` (the hidden layers' `k = 100`) from faer; and again in session 7, when the
//! quads kernel replaced it (faster for every row count but 1 at `k = 784`, where it is 25 %
//! slower; docs/performance.md round 7): every MLP's output layer, and its hidden layers of
//! widths 10 and 100.

use std::cell::RefCell;

use crate::matmul::{Accum, MatMut, MatRef};

/// Most rows this kernel takes (more would spill the accumulators out of registers).
pub(crate) const MAX_ROWS: usize = 12;
/// Rows, and consecutive values of `k`, per quad in [`quads_avx512`].
const QUAD: usize = 4;
/// Columns of `C` per pass of [`quads_avx512`]: 8 beat 12 and 16 for 4, 6 and 10 rows
/// (`(m × 100)·(100 × 256)`, `(10 × 784)·(784 × 256)`), and 3 × 8 accumulators still fit the
/// 32 registers with the 3 quads of `A` and a broadcast.
const QUAD_COLUMNS: usize = 8;
/// Lanes per accumulator (one AVX-512 register).
const LANES: usize = 16;

thread_local! {
    /// Packed `A` (quads, or `k × rows` for the row kernel), allocated on first use per thread and
    /// reused.
    static PACKED_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How [`product_few_rows`] reads `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `B`'s columns are contiguous (e.g. a batch of samples): each register holds 4 rows ×
    /// 4 consecutive `k` ([`quads_avx512`]).
    Quads,
    /// `B`'s rows are contiguous (e.g. the transpose of a batch, in a weight gradient
    /// `dZ·Xᵀ`): rank-one updates of 32 columns of `C` at a time along `k`.
    Rows,
}

/// Whether [`product_few_rows`] takes the last `rows` of a product with `total_rows` rows, and
/// how: `1 ≤ rows ≤ MAX_ROWS`, AVX-512F and VL (elsewhere faer does all rows), and `B` either
/// column-contiguous with `k ≥ 16` (quads), or row-contiguous with `n ≥ 64`, `rows ≤ 8` and at
/// least 96 rows for faer. Quads, in runs alternated with the previous build
/// (docs/performance.md, round 7): (10 × 100)·(100 × 256) 4.5 µs where dot products along `k`
/// took 6.7 and faer 8.4, (10 × 784)·(784 × 256) 28 µs (dot products 34, faer 55),
/// (4 × 100)·(100 × 256) 2.0 µs (dot products 2.9, faer 8.3); for `k < 16` faer is faster
/// ((10 × 10)·(10 × 256): 1.2 µs against 1.7). The row kernel, with
/// `cargo bench -p insitu-linalg --bench matmul`: (m × 256)·(256 × 784) in 257–310 µs for
/// m = 97…104 where faer alone takes 325–335, but 3–7 % slower than faer for m = 10, 50 and
/// 106…108.
pub(crate) fn applies(rows: usize, total_rows: usize, b: MatRef<'_, f32>) -> Option<Layout> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(1..=MAX_ROWS).contains(&rows)
            || !std::arch::is_x86_feature_detected!("avx512f")
            || !std::arch::is_x86_feature_detected!("avx512vl")
        {
            return None;
        }
        if b.row_stride() == 1 && b.nrows() >= LANES {
            Some(Layout::Quads)
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
    PACKED_A.with(|packed| {
        let mut packed = packed.borrow_mut();
        // Quads: ⌈k/4⌉·⌈rows/4⌉ vectors, 64-byte aligned (a load that straddles two cache
        // lines costs two); Rows: `k × rows` (the rows' values at one `p` together).
        let quads = k.div_ceil(QUAD) * rows.div_ceil(QUAD) * LANES;
        let need = quads.max(rows * k) + LANES;
        if packed.len() < need {
            packed.resize(need, 0.0);
        }
        if layout == Layout::Quads {
            let offset = (LANES - (packed.as_ptr() as usize / 4) % LANES) % LANES;
            let aligned = &mut packed[offset..offset + quads];
            // SAFETY: `applies` checked AVX-512F/VL and the layout; `aligned` holds the
            // packed quads, 64-byte aligned.
            unsafe {
                pack_quads_avx512(a, aligned);
                match rows.div_ceil(QUAD) {
                    1 => quads_avx512::<1, QUAD_COLUMNS>(c, accum, aligned, rows, b, alpha),
                    2 => quads_avx512::<2, QUAD_COLUMNS>(c, accum, aligned, rows, b, alpha),
                    _ => quads_avx512::<3, QUAD_COLUMNS>(c, accum, aligned, rows, b, alpha),
                }
            }
            return;
        }
        for r in 0..rows {
            for p in 0..k {
                packed[p * rows + r] = a.get_raw(r, p);
            }
        }
        let packed = &packed[..rows * k];
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match (rows, layout) {
                    // SAFETY: `applies` checked AVX-512F and the layout; `packed` is rows × k.
                    $(($n, Layout::Rows) => unsafe { few_rows_row_major_b_avx512::<$n>(c, accum, packed, b, alpha) },)*
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

/// `packed ← A` for [`quads_avx512`]: for each group `g` of 4 consecutive `k` and each block
/// `v` of 4 rows, one 64-byte-aligned vector at `packed[(g·V + v)·16..]` (`V` blocks) whose lane
/// `4i + e` is `A[4v + i, 4g + e]`, zero past the last row or the last `k`. One gather per
/// vector.
///
/// # Safety
/// The CPU must support AVX-512F; `packed` is 64-byte aligned and holds
/// `⌈k/4⌉·⌈rows/4⌉·16` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_quads_avx512(a: MatRef<'_, f32>, packed: &mut [f32]) {
    use std::arch::x86_64::*;
    let (rows, k) = (a.nrows(), a.ncols());
    let (blocks, groups) = (rows.div_ceil(QUAD), k.div_ceil(QUAD));
    assert!(packed.len() >= groups * blocks * LANES, "packed quads");
    let (rs, cs) = (a.row_stride(), a.col_stride());
    // The gather's offsets (lane 4i + e: element (i, e) of a quad), the same for every quad;
    // none when they do not fit its i32 offsets.
    let reach = 3 * (rs.unsigned_abs() + cs.unsigned_abs());
    let offsets = (reach <= i32::MAX as usize / 4).then(|| {
        let lanes: [i32; LANES] =
            std::array::from_fn(|lane| ((lane / QUAD) as isize * rs + (lane % QUAD) as isize * cs) as i32);
        // SAFETY: `lanes` holds 16 i32s.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    });
    for g in 0..groups {
        // Lanes 4i + e with e < the group's k values.
        let k_mask = ((1u32 << (k - QUAD * g).min(QUAD)) - 1) * 0x1111;
        for v in 0..blocks {
            // Lanes 4i + e with i < the block's rows.
            let row_lanes = (1u32 << (QUAD * (rows - QUAD * v).min(QUAD))) - 1;
            let mask = (k_mask & row_lanes) as __mmask16;
            let out = &mut packed[(g * blocks + v) * LANES..][..LANES];
            let Some(offsets) = offsets else {
                for (lane, value) in out.iter_mut().enumerate() {
                    let (i, e) = (lane / QUAD, lane % QUAD);
                    *value = if mask >> lane & 1 == 1 {
                        a.get_raw(QUAD * v + i, QUAD * g + e)
                    } else {
                        0.0
                    };
                }
                continue;
            };
            // SAFETY: every lane the mask keeps is an element of the view; masked-off lanes
            // are not read; `out` holds 16 values, 64-byte aligned (the caller's buffer is and
            // each vector is 16 values long).
            unsafe {
                let base = a
                    .as_ptr()
                    .wrapping_offset((QUAD * v) as isize * rs + (QUAD * g) as isize * cs);
                let values = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base);
                _mm512_store_ps(out.as_mut_ptr(), values);
            }
        }
    }
}

/// The kernel for `B` with contiguous columns and 1 to 12 rows: each register holds 4 rows ×
/// 4 consecutive `k` (`V` such blocks cover the rows), and multiplies `B[4g..4g + 4, j]`
/// broadcast to its four 128-bit lanes; `J` columns per pass, `V·J` accumulators. At the end
/// each 4 × 4 block of `C` is the 4-way lane sums of four accumulators ([`sum_quads`]). A
/// 16-way dot product along `k` pays a 16-way reduction per sum (as long as the multiply-adds
/// at `k = 100`); a register of rows (`A`'s column in lanes) leaves 6 of 16 lanes empty for 10
/// rows and needs a load per multiply-add. Each element is the sum over `p ≡ e (mod 4)` in
/// `p` order (fused) for each `e`, then `(e₀ + e₂) + (e₁ + e₃)`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `a` is [`pack_quads_avx512`]'s output for
/// `rows ≤ 4V` rows; `B` has row stride 1; `J` is a multiple of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn quads_avx512<const V: usize, const J: usize>(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: &[f32],
    rows: usize,
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.nrows(), b.ncols());
    let (groups, tail) = (k / QUAD, k % QUAD);
    assert!(
        rows <= QUAD * V && a.len() >= k.div_ceil(QUAD) * V * LANES && J.is_multiple_of(QUAD),
        "quads"
    );
    let tail_mask = ((1u32 << tail) - 1) as __mmask8;
    // Lane 4i + s of a reduced block (row i, column s) → lane 4s + i (column s's rows together).
    let to_columns = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let alpha_v = _mm_set1_ps(alpha);
    let column_contiguous = c.row_stride() == 1;
    for j in (0..n).step_by(J) {
        let valid = (n - j).min(J);
        let mut cols = [std::ptr::null::<f32>(); J];
        for (t, col) in cols.iter_mut().enumerate() {
            *col = b.column_slice(j + t.min(valid - 1)).as_ptr();
        }
        let mut acc = [[_mm512_setzero_ps(); J]; V];
        for g in 0..groups {
            // SAFETY: vector (g, v) of `a` is in bounds and 64-byte aligned; 4g + 4 ≤ k values
            // of each column.
            unsafe {
                let w: [__m512; V] = std::array::from_fn(|v| _mm512_load_ps(a.as_ptr().add((g * V + v) * LANES)));
                for t in 0..J {
                    let x = _mm512_broadcast_f32x4(_mm_loadu_ps(cols[t].add(QUAD * g)));
                    for v in 0..V {
                        acc[v][t] = _mm512_fmadd_ps(w[v], x, acc[v][t]);
                    }
                }
            }
        }
        if tail > 0 {
            // SAFETY: as above; the masked loads read only the `tail` values left in a column.
            unsafe {
                let w: [__m512; V] = std::array::from_fn(|v| _mm512_load_ps(a.as_ptr().add((groups * V + v) * LANES)));
                for t in 0..J {
                    let x = _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(tail_mask, cols[t].add(QUAD * groups)));
                    for v in 0..V {
                        acc[v][t] = _mm512_fmadd_ps(w[v], x, acc[v][t]);
                    }
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            let block_rows = rows.saturating_sub(QUAD * v).min(QUAD);
            if block_rows == 0 {
                break;
            }
            let row_mask = ((1u32 << block_rows) - 1) as __mmask8;
            for t0 in (0..valid).step_by(QUAD) {
                // SAFETY: AVX-512F as this function.
                let block = unsafe {
                    _mm512_permutexvar_ps(to_columns, sum_quads(acc[t0], acc[t0 + 1], acc[t0 + 2], acc[t0 + 3]))
                };
                let mut sums = [0.0f32; LANES];
                // SAFETY: `sums` has 16 f32s.
                unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), block) };
                for s in 0..(valid - t0).min(QUAD) {
                    if column_contiguous {
                        let slot: *mut f32 = c.get_mut_internal(QUAD * v, j + t0 + s);
                        // SAFETY: rows 4v..4v + block_rows of this column are in the view and
                        // contiguous; `sums` has 4s + 4 ≤ 16 values.
                        unsafe {
                            let x = _mm_loadu_ps(sums.as_ptr().add(QUAD * s));
                            let out = match accum {
                                Accum::Replace => _mm_mul_ps(alpha_v, x),
                                Accum::Add => _mm_fmadd_ps(alpha_v, x, _mm_maskz_loadu_ps(row_mask, slot)),
                            };
                            _mm_mask_storeu_ps(slot, row_mask, out);
                        }
                    } else {
                        for i in 0..block_rows {
                            store(
                                c.get_mut_internal(QUAD * v + i, j + t0 + s),
                                sums[QUAD * s + i],
                                accum,
                                alpha,
                            );
                        }
                    }
                }
            }
        }
    }
    _mm256_zeroupper();
}

/// The 4-way lane sums of four vectors in one: element `s` of 128-bit lane `i` is
/// `(x_s[4i] + x_s[4i + 2]) + (x_s[4i + 1] + x_s[4i + 3])`. 6 shuffles, 3 additions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sum_quads(
    x0: std::arch::x86_64::__m512,
    x1: std::arch::x86_64::__m512,
    x2: std::arch::x86_64::__m512,
    x3: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // In each 128-bit lane: [x0₀ + x0₂, x0₁ + x0₃, x1₀ + x1₂, x1₁ + x1₃], and the same of x2, x3.
    let y0 = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(x0, x1), _mm512_shuffle_ps::<0xEE>(x0, x1));
    let y1 = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(x2, x3), _mm512_shuffle_ps::<0xEE>(x2, x3));
    _mm512_add_ps(_mm512_shuffle_ps::<0x88>(y0, y1), _mm512_shuffle_ps::<0xDD>(y0, y1))
}

/// `slot ← α·s` or `slot + α·s` (fused).
#[inline(always)]
fn store(slot: &mut f32, s: f32, accum: Accum, alpha: f32) {
    *slot = match accum {
        Accum::Replace => alpha * s,
        Accum::Add => alpha.mul_add(s, *slot),
    };
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{sum_quads, LANES};

    /// Element `s` of 128-bit lane `i` is the sum of vector `s`'s lanes `4i..4i + 4`, added as
    /// `(e₀ + e₂) + (e₁ + e₃)` (the order the quads kernel documents).
    #[test]
    fn sum_quads_puts_each_sum_where_the_kernel_reads_it() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        use std::arch::x86_64::*;
        // Values whose sums depend on the order of addition (different magnitudes).
        let value = |v: usize, l: usize| ((v * 37 + l * 11) % 29) as f32 * 10f32.powi((l % 5) as i32 - 2);
        let mut out = [0.0f32; LANES];
        // SAFETY: AVX-512F checked above; every pointer covers 16 f32s.
        unsafe {
            let x: [__m512; 4] = std::array::from_fn(|v| {
                let lanes: [f32; LANES] = std::array::from_fn(|l| value(v, l));
                _mm512_loadu_ps(lanes.as_ptr())
            });
            _mm512_storeu_ps(out.as_mut_ptr(), sum_quads(x[0], x[1], x[2], x[3]));
        }
        for (position, &got) in out.iter().enumerate() {
            let (i, s) = (position / 4, position % 4);
            let e = |e: usize| value(s, 4 * i + e);
            let want = (e(0) + e(2)) + (e(1) + e(3));
            assert_eq!(got.to_bits(), want.to_bits(), "lane {position}");
        }
    }
}
