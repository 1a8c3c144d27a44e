//! The f32 kernel for products with **few rows** whose `B` is stored **by rows** and `C` **by
//! columns**: a weight gradient `dW = dZ·Xᵀ` of a layer with few outputs (an output layer of
//! 10 classes, every layer of a width-10 network), `X` stored sample by sample (so `B = Xᵀ`
//! has contiguous rows) and `dW` in the weights' column-major layout. faer tiles `C`'s rows by
//! 16, so 10 rows leave 6 lanes of 16 empty: 67–71 GFLOP/s on `(10, 256, 100)` and
//! `(10, 256, 784)`, where this kernel runs at 103–109 (docs/performance.md, round 12).
//!
//! `C = Σ_p A[:, p] ⊗ B[p, :]`: `B`'s row `p` goes into the lanes (16 columns of `C` per
//! register, as in `batch_lanes`) and `A[i, p]` is broadcast, so the lanes are full whatever
//! `C`'s row count; each tile of up to [`TILE_ROWS`] rows × 16·[`TILE_VECTORS`] columns runs
//! over all of `k` in registers and is transposed into `C`'s columns once at the end (32
//! shuffles per 8 × 16 values, against `8·k` multiply-adds). From about 30 rows on faer's
//! packed tiles are as fast or faster (measured up to 100 rows), so [`MAX_ROWS`] bounds it.
//!
//! **The same bits as faer.** Every element is one fused multiply-add chain over
//! `p = 0, 1, …, k−1` in order from zero, stored as is (`Accum::Replace`) or added to `C`
//! (`Accum::Add`: `C + chain`). For `k ≤` [`MAX_K`] and `α = 1` that is what faer computes for
//! these layouts (`tests/rows_to_columns.rs` checks both), so routing a product here changes
//! no trained number; beyond `MAX_K` faer splits `k`, and this kernel does not apply.

#[cfg(target_arch = "x86_64")]
use crate::batch_lanes::accumulate;
use crate::batch_lanes::{for_each_panel, Operands, LANES};
use crate::matmul::{Accum, MatMut, MatRef, Par};

/// Rows of `C` per tile: one 8-float column segment per lane at the end.
const TILE_ROWS: usize = 8;
/// 16-lane vectors of `C` per tile row.
const TILE_VECTORS: usize = 3;
/// The largest `k` taken: up to here faer's sums are single chains (its `k` blocks are longer).
pub(crate) const MAX_K: usize = 512;
/// The most rows of `C` taken: 10 and 20 rows run 1.3–2× faster than through faer, 30 rows
/// about the same, 40–50 within ±10 %, 60–100 rows 10–20 % slower (round 12).
pub(crate) const MAX_ROWS: usize = 24;

/// Whether [`product_rows_to_columns`] computes this product: AVX-512F and VL, `C` stored by
/// columns with 2 to [`MAX_ROWS`] rows and at least 16 columns, `B` stored by rows with
/// `2 ≤ k ≤` [`MAX_K`], and `α = 1`.
pub(crate) fn applies(c: &MatMut<'_, f32>, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, alpha: f32) -> bool {
    let k = a.ncols();
    c.row_stride() == 1
        && (2..=MAX_ROWS).contains(&c.nrows())
        && c.ncols() >= LANES
        && c.col_stride() >= c.nrows() as isize
        && b.col_stride() == 1
        && b.row_stride() >= 0
        && (2..=MAX_K).contains(&k)
        && alpha == 1.0
        && crate::simd::avx512_f_and_vl()
}

/// `C ← A·B` or `C ← C + A·B` with `B` by rows and `C` by columns; the caller checked
/// [`applies`]. Columns go in panels of 16·[`TILE_VECTORS`]; with `par` parallel and at least
/// 40 MFLOP the panels are shared among threads (a panel's bits do not depend on the thread).
pub(crate) fn product_rows_to_columns(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    par: Par,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    let ops = Operands::of(&c, c.col_stride(), &a, &b);
    let panel = LANES * TILE_VECTORS;
    let add = accum == Accum::Add;
    for_each_panel(n.div_ceil(panel), 2 * m * n * k, par, |p| {
        let start = p * panel;
        // SAFETY: `applies` checked AVX-512F/VL and the layouts; columns start..start + len are
        // inside the views and written by this call only.
        unsafe { panel_avx512(ops, start, panel.min(n - start), add) }
    });
}

/// Columns `start..start + len` (`len ≤ 16·TILE_VECTORS`) of `C`, every row tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn panel_avx512(ops: Operands, start: usize, len: usize, add: bool) {
    let vectors = len.div_ceil(LANES);
    let mut i0 = 0;
    while i0 < ops.m {
        let rows = TILE_ROWS.min(ops.m - i0);
        // SAFETY: rows i0..i0 + rows and columns start..start + len lie inside the operands.
        unsafe {
            let part = Operands {
                c: ops.c.add(start * ops.ldc + i0),
                a: ops.a.offset(i0 as isize * ops.a_rs),
                b: ops.b.add(start),
                m: rows,
                ..ops
            };
            macro_rules! dispatch {
                ($($r:literal)*) => {
                    match (rows, vectors) {
                        $(($r, 1) => tile_avx512::<$r, 1>(part, len, add),
                          ($r, 2) => tile_avx512::<$r, 2>(part, len, add),
                          ($r, 3) => tile_avx512::<$r, 3>(part, len, add),)*
                        _ => unreachable!("tiles are 1..=TILE_ROWS rows × 1..=TILE_VECTORS vectors"),
                    }
                };
            }
            dispatch!(1 2 3 4 5 6 7 8);
        }
        i0 += rows;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_avx512(_: Operands, _: usize, _: usize, _: bool) {
    unreachable!("applies() is false off x86-64")
}

/// `R` rows × `V` vectors of `C` (`cols` of its columns inside `C`) over all of `k`: `R·V`
/// accumulators, `V` loads of `B`'s row and `R` broadcasts of `A`'s column per `p`; then each
/// vector's `R × 16` sums are transposed into 16 column segments of `R` values and stored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn tile_avx512<const R: usize, const V: usize>(t: Operands, cols: usize, add: bool) {
    use std::arch::x86_64::*;
    let lanes_in = |v: usize| cols.saturating_sub(v * LANES).min(LANES);
    let mask = |v: usize| {
        let l = lanes_in(v);
        if l == LANES {
            u16::MAX
        } else {
            (1u16 << l) - 1
        }
    };
    // SAFETY (whole body): the tile's R rows of A's k columns, k rows × `cols` columns of B
    // and R rows × `cols` columns of C are in bounds (the caller's contract); masked lanes and
    // rows are neither read nor written.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        accumulate(&mut acc, &t, std::array::from_fn(mask));
        let row_mask = ((1u16 << R) - 1) as u8;
        for v in 0..V {
            let rows: [__m512; TILE_ROWS] =
                std::array::from_fn(|r| if r < R { acc[r][v] } else { _mm512_setzero_ps() });
            let columns = transpose_8x16(rows);
            for (l, &column) in columns.iter().enumerate().take(lanes_in(v)) {
                let dst = t.c.add((v * LANES + l) * t.ldc);
                let out = if add {
                    _mm256_add_ps(_mm256_maskz_loadu_ps(row_mask, dst), column)
                } else {
                    column
                };
                _mm256_mask_storeu_ps(dst, row_mask, out);
            }
        }
    }
}

/// The 8 × 16 values of `rows` (row `r` in register `r`) as 16 columns of 8: column `l` holds
/// lane `l` of every row. Unpacks and 4-lane shuffles within 128-bit blocks (16), then one
/// two-source permute per pair of column quadruples (8) and the upper halves' extracts (8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn transpose_8x16(rows: [std::arch::x86_64::__m512; TILE_ROWS]) -> [std::arch::x86_64::__m256; LANES] {
    use std::arch::x86_64::*;
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    // Per 128-bit block b, t holds pairs of rows' lanes 4b..4b+3 interleaved.
    let (t0, t1) = (_mm512_unpacklo_ps(r0, r1), _mm512_unpackhi_ps(r0, r1));
    let (t2, t3) = (_mm512_unpacklo_ps(r2, r3), _mm512_unpackhi_ps(r2, r3));
    let (t4, t5) = (_mm512_unpacklo_ps(r4, r5), _mm512_unpackhi_ps(r4, r5));
    let (t6, t7) = (_mm512_unpacklo_ps(r6, r7), _mm512_unpackhi_ps(r6, r7));
    // u[c] block b: rows 0–3 of column 4b + c; u[4 + c] block b: rows 4–7 of it.
    let u = [
        _mm512_shuffle_ps::<0x44>(t0, t2),
        _mm512_shuffle_ps::<0xEE>(t0, t2),
        _mm512_shuffle_ps::<0x44>(t1, t3),
        _mm512_shuffle_ps::<0xEE>(t1, t3),
        _mm512_shuffle_ps::<0x44>(t4, t6),
        _mm512_shuffle_ps::<0xEE>(t4, t6),
        _mm512_shuffle_ps::<0x44>(t5, t7),
        _mm512_shuffle_ps::<0xEE>(t5, t7),
    ];
    // Blocks 0, 1 of u[c] and u[4 + c] interleaved: columns c and 4 + c; blocks 2, 3: 8 + c, 12 + c.
    let low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    let high = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    let mut columns = [_mm256_setzero_ps(); LANES];
    for c in 0..4 {
        let lo = _mm512_permutex2var_ps(u[c], low, u[4 + c]);
        let hi = _mm512_permutex2var_ps(u[c], high, u[4 + c]);
        columns[c] = _mm512_castps512_ps256(lo);
        // SAFETY: AVX-512F is enabled here as in `upper_half`.
        columns[4 + c] = unsafe { upper_half(lo) };
        columns[8 + c] = _mm512_castps512_ps256(hi);
        columns[12 + c] = unsafe { upper_half(hi) };
    }
    columns
}

/// Lanes 8–15 of `x` (AVX-512F has no `f32x8` extract without DQ; the `f64x4` one moves the
/// same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn upper_half(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)))
}
