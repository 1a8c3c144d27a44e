//! The f32 kernel for products with **few rows** whose `B` is stored **by rows** and `C` **by
//! columns**: a weight gradient `dW = dZ·Xᵀ` of a layer with few outputs (an output layer of
//! 10 classes, every layer of a width-10 network), `X` stored sample by sample (so `B = Xᵀ`
//! has contiguous rows) and `dW` in the weights' column-major layout. faer tiles `C`'s rows by
//! 16, so 10 rows leave 6 lanes of 16 empty: 67–71 GFLOP/s on `(10, 256, 100)` and
//! `(10, 256, 784)`, where this kernel runs at 103–109 (docs/performance.md, round 12).
//!
//! `C = Σ_p A[:, p] ⊗ B[p, :]`: `B`'s row `p` goes into the lanes (16 columns of `C` per
//! register, as in `batch_lanes`) and `A[i, p]` is broadcast, so the lanes are full whatever
//! `C`'s row count; each tile of `R` rows × `V` vectors (16·`V` columns) runs over all of `k`
//! in registers and is transposed into `C`'s columns once at the end (32 shuffles per 8 × 16
//! values, against `8·k` multiply-adds). [`TilePlan`] cuts `C`: up to 8 rows are one tile of
//! up to 3 vectors; 9 to [`ONE_TILE_ROWS`] rows one tile of 2 vectors, except that an odd
//! vector count ends with a panel of 3 vectors in two tiles of rows; more rows are balanced
//! tiles of at most [`TILE_ROWS`]; the vectors are shared out evenly among the panels. So each
//! broadcast of `A` feeds at least 2 multiply-adds and each tile has at least 8 accumulator
//! chains wherever the shape allows: a tile whose broadcasts each feed one multiply-add was
//! measured at about one multiply-add per cycle, half the FMA rate (the instructions alone
//! run at two per cycle, round 17: why such tiles do not is not known), and fewer than 8
//! chains wait on the FMA's latency. Until round
//! 16 10 rows were a tile of 8 and one of 2, and 100 columns panels of 48, 48 and 4: (10, 256,
//! 100) took 3.0 µs and (10, 256, 96) 2.4, now 2.2 and 1.9 (docs/performance.md, round 16).
//! From about 30 rows on faer's packed tiles are as fast or
//! faster (measured up to 100 rows), so [`MAX_ROWS`] bounds it.
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

/// Rows of `C` per tile when there are more than [`ONE_TILE_ROWS`]: one 8-float column
/// segment per lane at the end.
const TILE_ROWS: usize = 8;
/// Up to this many rows of `C` are one tile (two 8-row transposes at the end above 8 rows).
const ONE_TILE_ROWS: usize = 12;
/// 16-lane vectors of `C` per tile of up to 8 rows: `R·V` accumulators, `V` rows of `B` and a
/// broadcast stay within the 32 registers.
const TILE_VECTORS: usize = 3;
/// The same for tiles of 9 to [`ONE_TILE_ROWS`] rows.
const WIDE_TILE_VECTORS: usize = 2;
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

/// How [`product_rows_to_columns`] cuts `C`'s columns (`vectors` 16-lane vectors of them)
/// and `rows` rows into panels: [`Self::panels`] panels, panel `p` covering
/// [`Self::panel`]`(p)`.
#[derive(Clone, Copy, Debug)]
struct TilePlan {
    rows: usize,
    vectors: usize,
}

impl TilePlan {
    /// Whether the rows are one tile of 2 vectors ([`WIDE_TILE_VECTORS`]) per panel.
    fn wide(&self) -> bool {
        (TILE_ROWS + 1..=ONE_TILE_ROWS).contains(&self.rows)
    }

    /// Whether a wide plan's last panel takes 3 vectors in two tiles of rows (an odd vector
    /// count: a lone vector's tile would have one multiply-add per broadcast).
    fn odd_tail(&self) -> bool {
        self.wide() && self.vectors >= 3 && self.vectors % 2 == 1
    }

    fn panels(&self) -> usize {
        if self.odd_tail() {
            (self.vectors - 3) / 2 + 1
        } else if self.wide() {
            self.vectors.div_ceil(WIDE_TILE_VECTORS)
        } else {
            self.vectors.div_ceil(TILE_VECTORS)
        }
    }

    /// Panel `p`: `(first vector, vectors, row tiles)`; the row tiles are balanced
    /// ([`balanced_part`]).
    fn panel(&self, p: usize) -> (usize, usize, usize) {
        let panels = self.panels();
        if self.odd_tail() && p + 1 == panels {
            (self.vectors - 3, 3, 2)
        } else if self.wide() {
            let first = p * WIDE_TILE_VECTORS;
            (first, WIDE_TILE_VECTORS.min(self.vectors - first), 1)
        } else {
            let (first, count) = balanced_part(self.vectors, panels, p);
            (
                first,
                count,
                if self.rows <= TILE_ROWS {
                    1
                } else {
                    self.rows.div_ceil(TILE_ROWS)
                },
            )
        }
    }
}

/// Start and length of part `i` of `total` cut into `parts` balanced parts (the larger first).
fn balanced_part(total: usize, parts: usize, i: usize) -> (usize, usize) {
    let (base, larger) = (total / parts, total % parts);
    (i * base + i.min(larger), base + usize::from(i < larger))
}

/// `C ← A·B` or `C ← C + A·B` with `B` by rows and `C` by columns; the caller checked
/// [`applies`]. Columns go in the panels of [`TilePlan`]; with `par` parallel and at least
/// 40 MFLOP the panels are shared among threads (a panel's bits do not depend on the thread,
/// nor on the tiling: every element is the same chain whatever tile computes it).
pub(crate) fn product_rows_to_columns(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    par: Par,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    let ops = Operands::of(&c, c.col_stride(), &a, &b);
    let plan = TilePlan {
        rows: m,
        vectors: n.div_ceil(LANES),
    };
    let add = accum == Accum::Add;
    for_each_panel(plan.panels(), 2 * m * n * k, par, |p| {
        let (first, count, row_tiles) = plan.panel(p);
        let start = first * LANES;
        // SAFETY: `applies` checked AVX-512F/VL and the layouts; columns start..start + len are
        // inside the views and written by this call only.
        unsafe { panel_avx512(ops, row_tiles, start, (count * LANES).min(n - start), add) }
    });
}

/// Columns `start..start + len` (at most [`TILE_VECTORS`] vectors, [`WIDE_TILE_VECTORS`] for
/// tiles of more than [`TILE_ROWS`] rows) of `C`, in `row_tiles` balanced tiles of rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn panel_avx512(ops: Operands, row_tiles: usize, start: usize, len: usize, add: bool) {
    let vectors = len.div_ceil(LANES);
    for tile in 0..row_tiles {
        let (i0, rows) = balanced_part(ops.m, row_tiles, tile);
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
                ($($r:literal)*; $($wide:literal)*) => {
                    match (rows, vectors) {
                        $(($r, 1) => tile_avx512::<$r, 1>(part, len, add),
                          ($r, 2) => tile_avx512::<$r, 2>(part, len, add),
                          ($r, 3) => tile_avx512::<$r, 3>(part, len, add),)*
                        $(($wide, 1) => tile_avx512::<$wide, 1>(part, len, add),
                          ($wide, 2) => tile_avx512::<$wide, 2>(part, len, add),)*
                        _ => unreachable!("tile_plan: at most 3 vectors up to 8 rows, 2 up to 12"),
                    }
                };
            }
            dispatch!(1 2 3 4 5 6 7 8; 9 10 11 12);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_avx512(_: Operands, _: usize, _: usize, _: usize, _: bool) {
    unreachable!("applies() is false off x86-64")
}

/// `R` rows × `V` vectors of `C` (`cols` of its columns inside `C`) over all of `k`: `R·V`
/// accumulators, `V` loads of `B`'s row and `R` broadcasts of `A`'s column per `p`; then each
/// vector's `R × 16` sums are transposed (8 rows at a time) into 16 column segments and stored.
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
        for v in 0..V {
            for r0 in (0..R).step_by(TILE_ROWS) {
                let in_block = (R - r0).min(TILE_ROWS);
                let row_mask = ((1u16 << in_block) - 1) as u8;
                let rows: [__m512; TILE_ROWS] = std::array::from_fn(|r| {
                    if r < in_block {
                        acc[r0 + r][v]
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                let columns = transpose_8x16(rows);
                for (l, &column) in columns.iter().enumerate().take(lanes_in(v)) {
                    let dst = t.c.add((v * LANES + l) * t.ldc + r0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row count and vector count the kernel can meet: the panels cover each vector once,
    /// in order, and every tile fits the registers and a `tile_avx512` instantiation.
    #[test]
    fn tile_plans_cover_every_vector_once_within_the_register_budget() {
        for rows in 2..=MAX_ROWS {
            for vectors in 1..=60 {
                let plan = TilePlan { rows, vectors };
                let mut next = 0;
                for p in 0..plan.panels() {
                    let (first, count, row_tiles) = plan.panel(p);
                    assert_eq!(first, next, "rows {rows}, vectors {vectors}, panel {p}");
                    assert!(count >= 1);
                    next += count;
                    for tile in 0..row_tiles {
                        let (_, tile_rows) = balanced_part(rows, row_tiles, tile);
                        let most = if tile_rows <= TILE_ROWS {
                            TILE_VECTORS
                        } else {
                            WIDE_TILE_VECTORS
                        };
                        assert!(
                            (1..=ONE_TILE_ROWS).contains(&tile_rows) && count <= most,
                            "{rows} rows, {count} vectors"
                        );
                        // R·V accumulators, V rows of B and a broadcast within 32 registers.
                        assert!(tile_rows * count + count < 32);
                    }
                }
                assert_eq!(next, vectors, "rows {rows}, vectors {vectors}");
            }
        }
        // 10 rows × 100 columns (7 vectors): two panels of 2 vectors in one tile, then 3
        // vectors in two tiles of 5 rows (no lone vector left with one FMA per broadcast).
        let plan = TilePlan { rows: 10, vectors: 7 };
        assert_eq!((plan.panels(), plan.panel(0), plan.panel(2)), (3, (0, 2, 1), (4, 3, 2)));
        assert_eq!(balanced_part(10, 2, 1), (5, 5));
    }
}
