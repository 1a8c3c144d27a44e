//! The f32 kernel for products whose `B` and `C` are stored **by rows** — each row's `n`
//! values contiguous, i.e. a batch of samples along the registers' lanes ("batch-major").
//!
//! Why: a layer's product `Z = W·X` with `X` stored sample by sample (each sample's features
//! contiguous, nalgebra's column-major) has to put `W`'s rows or `X`'s features in the lanes;
//! with 10 rows (an output layer, the goodness projections `Ξᵀ·Z`) or `k = 10` that leaves
//! lanes empty or ends every sum with a lane sum, and those products run at 25–60 % of one
//! core's peak (docs/performance.md, round 10). Stored by rows, the batch fills the lanes for
//! any row count: `C[i, j..j+16] += A[i, p] · B[p, j..j+16]`, `A[i, p]` broadcast, no lane sums.
//!
//! The kernel: tiles of [`TILE_ROWS`] rows × [`TILE_VECTORS`] 16-lane vectors of `C`
//! (accumulators in registers), `k` walked in blocks of [`K_BLOCK`] so that a tile's slice of
//! `B` stays in L1 while every row tile of `C` reads it; a masked last vector for `n` not a
//! multiple of 16. Every element of `C` is one fused multiply-add chain over `p = 0, 1, …, k−1`
//! in order — from zero, or from `C` itself for `Accum::Add` with `α = 1` — so the result
//! depends only on the operands (not on the blocking, the tile a row falls in, the thread count
//! or the strides). Blocks of `k` continue the chain through `C` (an f32 store and load are
//! exact).
//!
//! **Rows should be padded**: a row stride of a power-of-two bytes (256 floats = 1,024 bytes)
//! puts a tile's slice of `B` into a fraction of L1's sets; [`padded_row_stride`] gives the
//! stride callers should allocate with (an odd number of 64-byte lines). [`copy_matrix`]
//! converts a batch stored sample by sample into this layout and back (≈ 2.2 µs for
//! 100 × 128, about what the kernel saves on a 10-row layer: docs/performance.md, round 11,
//! which is why no trainer uses this layout yet).

use crate::matmul::{Accum, MatMut, MatRef, Par};

/// Lanes per accumulator (one AVX-512 register).
pub(crate) const LANES: usize = 16;
/// Rows of `C` per tile.
const TILE_ROWS: usize = 5;
/// 16-lane vectors of `C` per tile row (64 samples).
const TILE_VECTORS: usize = 4;
/// Values of `k` per block: a tile's slice of `B` is `K_BLOCK × 64` floats (32 KiB).
const K_BLOCK: usize = 64;
/// Products of at least this many FLOPs are split over threads when `par` allows
/// (`../shared/research/gemm-bench.md`: below ≈ 40 MFLOP a second thread does not pay).
const PARALLEL_FLOPS: usize = 40_000_000;

/// The row stride, in values, to store an `n`-column matrix by rows with: `n` rounded up to a
/// whole number of 64-byte lines, plus one line when that number is even, so that consecutive
/// rows start in different L1 sets (256 → 272, 128 → 144, 80 → 80, 10 → 16).
pub fn padded_row_stride(n: usize) -> usize {
    let lines = n.div_ceil(LANES).max(1);
    LANES * if lines.is_multiple_of(2) { lines + 1 } else { lines }
}

/// Whether [`product_batch_lanes`] computes `C ← α·A·B` (or `C + α·A·B`): AVX-512F, `B` and
/// `C` stored by rows (column stride 1), at least 2 rows and 16 columns, and — when `k` spans
/// more than one block — not `Accum::Add` with `α ≠ 1` (the chain through `C` would mix in
/// `α`). A single row is excluded because it has both layouts' strides: a 1-row column-major
/// `C` (a regression head's weight gradient `dZ·Xᵀ`, whose `B = Xᵀ` has contiguous rows) is
/// not a batch stored by rows, and stays on the path it always took.
pub(crate) fn applies(c: &MatMut<'_, f32>, accum: Accum, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, alpha: f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let k = a.ncols();
        b.col_stride() == 1
            && c.col_stride() == 1
            && c.nrows() >= 2
            && c.ncols() >= LANES
            && c.row_stride() >= 0
            && b.row_stride() >= 0
            && (k <= K_BLOCK || accum == Accum::Replace || alpha == 1.0)
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (c, accum, a, b, alpha);
        false
    }
}

/// How a tile's accumulators start and how they leave.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Chain {
    /// From zero; store `α·s` (`α = 1`: `s`, also a partial sum a later block continues).
    ZeroStore(f32),
    /// From `C` (a partial sum, or `C` itself for `Add` with `α = 1`); store the sum.
    ContinueStore,
    /// From `C` (a partial sum); store `α·s` (the last block of a `Replace` with `α ≠ 1`).
    ContinueScale(f32),
    /// From zero; store `C + α·s` (`Add` with `α ≠ 1`, one block of `k`).
    ZeroAdd(f32),
}

/// The chain of `k` block `block` of `blocks`.
fn chain(accum: Accum, alpha: f32, block: usize, blocks: usize) -> Chain {
    let (first, last) = (block == 0, block + 1 == blocks);
    match accum {
        Accum::Add if alpha == 1.0 => Chain::ContinueStore,
        Accum::Add => Chain::ZeroAdd(alpha),
        Accum::Replace if first && last => Chain::ZeroStore(alpha),
        Accum::Replace if first => Chain::ZeroStore(1.0),
        Accum::Replace if last && alpha != 1.0 => Chain::ContinueScale(alpha),
        Accum::Replace => Chain::ContinueStore,
    }
}

/// Raw pointers and strides of one product, or of one tile and block of `k` of it
/// (`C[0, 0]`, `A[0, 0]`, `B[0, 0]` of the part, `m × k` of it), for the kernels that put `B`'s
/// rows in the lanes (this one and `rows_to_columns`): `B`'s columns are contiguous and `ldb`
/// is its row stride; `C`'s other direction is contiguous too and `ldc` is its stride in the
/// one that is not (rows here, columns in `rows_to_columns`). Shared by the threads that
/// split a product's columns (each writes only its own columns of `C`).
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub c: *mut f32,
    pub ldc: usize,
    pub a: *const f32,
    pub a_rs: isize,
    pub a_cs: isize,
    pub b: *const f32,
    pub ldb: usize,
    pub m: usize,
    pub k: usize,
}
// SAFETY: the pointers come from views borrowed for the whole product; threads write disjoint
// column ranges of `C` and only read `A` and `B`.
unsafe impl Send for Operands {}
unsafe impl Sync for Operands {}

impl Operands {
    /// The whole product `C (m × n) = A (m × k)·B (k × n)`, `C`'s stride `ldc` as above.
    pub fn of(c: &MatMut<'_, f32>, ldc: isize, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>) -> Self {
        Operands {
            c: c.as_ptr_mut(),
            ldc: ldc as usize,
            a: a.as_ptr(),
            a_rs: a.row_stride(),
            a_cs: a.col_stride(),
            b: b.as_ptr(),
            ldb: b.row_stride() as usize,
            m: c.nrows(),
            k: a.ncols(),
        }
    }
}

/// `run(panel)` for every panel of `panels`, over rayon's threads when `par` is parallel and
/// the product has at least [`PARALLEL_FLOPS`] (`flops`); the panels' bits do not depend on
/// which thread computes them.
pub(crate) fn for_each_panel(panels: usize, flops: usize, par: Par, run: impl Fn(usize) + Send + Sync) {
    if par.is_parallel() && flops >= PARALLEL_FLOPS && panels > 1 {
        use rayon::prelude::*;
        (0..panels).into_par_iter().for_each(run);
    } else {
        (0..panels).for_each(run);
    }
}

/// `C ← α·A·B` or `C ← C + α·A·B` with `B` and `C` stored by rows; the caller checked
/// [`applies`]. Columns are split into 64-column panels; with `par` parallel and a product of
/// at least 40 MFLOP the panels are shared among threads (the bits do not change: a panel's
/// sums do not depend on which thread computes it).
pub(crate) fn product_batch_lanes(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    par: Par,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    let ops = Operands::of(&c, c.row_stride(), &a, &b);
    let panel = LANES * TILE_VECTORS;
    for_each_panel(n.div_ceil(panel), 2 * m * n * k, par, |p| {
        let start = p * panel;
        // SAFETY: `applies` checked AVX-512F and the layouts; columns start..start + len of
        // the views are in bounds; this panel's columns of C are written by this call only.
        unsafe { panel_avx512(ops, start, panel.min(n - start), accum, alpha) }
    });
}

/// Columns `start..start + len` (`len ≤ 64`) of `C`: every block of `k`, every row tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn panel_avx512(ops: Operands, start: usize, len: usize, accum: Accum, alpha: f32) {
    let vectors = len.div_ceil(LANES);
    let tail = len - (vectors - 1) * LANES;
    let last: u16 = if tail == LANES { u16::MAX } else { (1u16 << tail) - 1 };
    let blocks = ops.k.div_ceil(K_BLOCK).max(1);
    for block in 0..blocks {
        let p0 = block * K_BLOCK;
        let kc = K_BLOCK.min(ops.k - p0);
        let how = chain(accum, alpha, block, blocks);
        let mut i0 = 0;
        while i0 < ops.m {
            let rows = TILE_ROWS.min(ops.m - i0);
            // SAFETY: rows i0..i0 + rows, columns start..start + len and k block p0..p0 + kc
            // lie inside the operands (the caller's contract).
            unsafe {
                let tile = Tile {
                    part: Operands {
                        c: ops.c.add(i0 * ops.ldc + start),
                        a: ops.a.offset(i0 as isize * ops.a_rs + p0 as isize * ops.a_cs),
                        b: ops.b.add(p0 * ops.ldb + start),
                        m: rows,
                        k: kc,
                        ..ops
                    },
                    last,
                    how,
                };
                macro_rules! dispatch {
                    ($($r:literal)*) => {
                        match (rows, vectors) {
                            $(($r, 1) => tile_avx512::<$r, 1>(tile),
                              ($r, 2) => tile_avx512::<$r, 2>(tile),
                              ($r, 3) => tile_avx512::<$r, 3>(tile),
                              ($r, 4) => tile_avx512::<$r, 4>(tile),)*
                            _ => unreachable!("tiles are 1..=TILE_ROWS rows × 1..=TILE_VECTORS vectors"),
                        }
                    };
                }
                dispatch!(1 2 3 4 5);
            }
            i0 += rows;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_avx512(_: Operands, _: usize, _: usize, _: Accum, _: f32) {
    unreachable!("applies() is false off x86-64")
}

/// One tile: its part of the product (`m` rows, `k` one block), how its chain starts and ends.
#[derive(Clone, Copy)]
struct Tile {
    part: Operands,
    /// Lanes of the last vector inside `C` (all 16 unless `n`'s tail is shorter).
    last: u16,
    how: Chain,
}

/// `R` rows × `V` vectors of `C` over `k` values: `R·V` accumulators, `V` loads of `B`'s row
/// and `R` broadcasts of `A`'s column per `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const R: usize, const V: usize>(tile: Tile) {
    let (t, last, how) = (tile.part, tile.last, tile.how);
    use std::arch::x86_64::*;
    let mask = |v: usize| if v + 1 == V { last } else { u16::MAX };
    // SAFETY (whole body): the tile's R rows × V vectors of C (the last vector's lanes limited
    // by `last`, masked lanes neither read nor written) and its k rows of B and k columns of
    // A's R rows are in bounds (`Tile`'s contract).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if matches!(how, Chain::ContinueStore | Chain::ContinueScale(_)) {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_maskz_loadu_ps(mask(v), t.c.add(r * t.ldc + v * LANES));
                }
            }
        }
        accumulate(&mut acc, &t, std::array::from_fn(mask));
        for (r, acc) in acc.iter().enumerate() {
            for (v, &s) in acc.iter().enumerate() {
                let dst = t.c.add(r * t.ldc + v * LANES);
                let out = match how {
                    Chain::ZeroStore(alpha) | Chain::ContinueScale(alpha) if alpha != 1.0 => {
                        _mm512_mul_ps(_mm512_set1_ps(alpha), s)
                    }
                    Chain::ZeroAdd(alpha) => {
                        let old = _mm512_maskz_loadu_ps(mask(v), dst);
                        _mm512_add_ps(old, _mm512_mul_ps(_mm512_set1_ps(alpha), s))
                    }
                    _ => s,
                };
                _mm512_mask_storeu_ps(dst, mask(v), out);
            }
        }
    }
}

/// `acc[r][v] ← fma(A[r, p], B[p, 16v..16v + 16], acc[r][v])` for `p = 0, 1, …, k − 1` in
/// order: `V` loads of `B`'s row (lanes limited by `masks[v]`) and `R` broadcasts of `A`'s
/// column per `p` — the multiply-add loop of both kernels that put `B`'s rows in the lanes
/// (this one and `rows_to_columns`).
///
/// # Safety
/// AVX-512F; `t`'s `R` rows of `A` over its `k` columns and `k` rows of `B` over the lanes
/// `masks` allow are readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn accumulate<const R: usize, const V: usize>(
    acc: &mut [[std::arch::x86_64::__m512; V]; R],
    t: &Operands,
    masks: [u16; V],
) {
    use std::arch::x86_64::*;
    let (mut ap, mut bp) = (t.a, t.b);
    // SAFETY: the reads stay inside the rows, columns and lanes the caller vouches for.
    unsafe {
        for _ in 0..t.k {
            let x: [__m512; V] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], bp.add(v * LANES)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*ap.offset(r as isize * t.a_rs));
                for (acc, x) in acc.iter_mut().zip(&x) {
                    *acc = _mm512_fmadd_ps(w, *x, *acc);
                }
            }
            ap = ap.offset(t.a_cs);
            bp = bp.add(t.ldb);
        }
    }
}

/// `dst ← src`, the same `rows × cols` in any strides: how a batch stored sample by sample
/// (columns contiguous) is put into the batch-along-the-lanes layout (rows contiguous), and
/// back. Between those two layouts (either direction) it moves 16 × 16 blocks through
/// registers (AVX-512F: 16 loads, 64 shuffles, 16 stores per block); other strides, the edges
/// of a shape that is not a multiple of 16 and machines without AVX-512F copy element by
/// element. A copy: the values are bit for bit `src`'s.
///
/// # Panics
/// If the shapes differ.
pub fn copy_matrix(dst: MatMut<'_, f32>, src: MatRef<'_, f32>) {
    assert!(
        dst.nrows() == src.nrows() && dst.ncols() == src.ncols(),
        "copy_matrix: destination {}×{}, source {}×{}",
        dst.nrows(),
        dst.ncols(),
        src.nrows(),
        src.ncols()
    );
    // Orient both so that `src`'s columns and `dst`'s rows are the contiguous ones.
    let (dst, src) = if src.col_stride() == 1 && dst.row_stride() == 1 && src.row_stride() != 1 {
        (dst.t(), src.t())
    } else {
        (dst, src)
    };
    let (rows, cols) = (src.nrows(), src.ncols());
    let mut dst = dst;
    // The 16 × 16 blocks of rows 0..blocked_rows × columns 0..blocked_cols go through
    // registers; every other element is copied one by one below.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let (mut blocked_rows, mut blocked_cols) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if src.row_stride() == 1
        && dst.col_stride() == 1
        && src.col_stride() >= 0
        && dst.row_stride() >= 0
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        (blocked_rows, blocked_cols) = (rows / LANES * LANES, cols / LANES * LANES);
        for i in (0..blocked_rows).step_by(LANES) {
            for j in (0..blocked_cols).step_by(LANES) {
                // SAFETY: AVX-512F is present; the 16 × 16 block at (i, j) is inside both views,
                // `src`'s columns and `dst`'s rows contiguous (checked above).
                unsafe {
                    transpose_block_avx512(
                        dst.as_ptr_mut().add(i * dst.row_stride() as usize + j),
                        dst.row_stride() as usize,
                        src.as_ptr().add(j * src.col_stride() as usize + i),
                        src.col_stride() as usize,
                    )
                }
            }
        }
    }
    for j in 0..cols {
        let first = if j < blocked_cols { blocked_rows } else { 0 };
        for i in first..rows {
            dst.set_raw(i, j, src.get_raw(i, j));
        }
    }
}

/// One 16 × 16 block: `dst[r, c] = src[r, c]` where `src`'s column `c` starts at
/// `src + c·src_stride` and `dst`'s row `r` at `dst + r·dst_stride` (each 16 contiguous values).
///
/// # Safety
/// AVX-512F; the 16 columns of `src` and the 16 rows of `dst` are valid for 16 values each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block_avx512(dst: *mut f32, dst_stride: usize, src: *const f32, src_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let c: [__m512; 16] = std::array::from_fn(|k| _mm512_loadu_ps(src.add(k * src_stride)));
        // Interleave pairs of columns (32-bit), then pairs of pairs (64-bit), then 128-bit
        // lanes twice: after the four steps, register r holds row r (the index arithmetic was
        // checked by simulating the four instructions; the test below checks every value).
        let t: [__m512; 16] = std::array::from_fn(|k| {
            let (a, b) = (c[k & !1], c[k | 1]);
            if k & 1 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        let u: [__m512; 16] = std::array::from_fn(|k| {
            let base = k & !3;
            let (a, b) = (
                _mm512_castps_pd(t[base + (k & 1)]),
                _mm512_castps_pd(t[base + 2 + (k & 1)]),
            );
            _mm512_castpd_ps(if k & 2 == 0 {
                _mm512_unpacklo_pd(a, b)
            } else {
                _mm512_unpackhi_pd(a, b)
            })
        });
        // Now register 4q + s holds, in 128-bit lane L, row 4L + ρ(s) (ρ = 0, 2, 1, 3) at
        // columns 4q..4q+4. Register 4s + h: the lanes 0 and 2 (h even) or 1 and 3 (h odd) of
        // the registers 4q + s for q = 0, 1 (h < 2) or q = 2, 3 (h ≥ 2).
        let v: [__m512; 16] = std::array::from_fn(|k| {
            let (s, h) = (k / 4, k % 4);
            let (a, b) = if h < 2 { (u[s], u[4 + s]) } else { (u[8 + s], u[12 + s]) };
            if h % 2 == 0 {
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b)
            }
        });
        // Row r = 4L + ρ(s): lane L of the four registers above, in column order.
        const RHO: [usize; 4] = [0, 2, 1, 3];
        let w: [__m512; 16] = std::array::from_fn(|r| {
            let (s, lane) = (RHO[r % 4], r / 4);
            let (a, b) = (v[4 * s + lane % 2], v[4 * s + 2 + lane % 2]);
            if lane < 2 {
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b)
            }
        });
        for (r, w) in w.iter().enumerate() {
            _mm512_storeu_ps(dst.add(r * dst_stride), *w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_between_layouts_are_exact_for_every_size() {
        use crate::rng;
        use rand::Rng;
        let mut g = rng(11);
        for rows in [1usize, 5, 15, 16, 17, 31, 32, 33, 100] {
            for cols in [1usize, 3, 16, 20, 47, 64, 128] {
                let src: Vec<f32> = (0..rows * cols).map(|_| g.random_range(-1.0f32..1.0)).collect();
                let ld = padded_row_stride(cols);
                // Sample by sample (column-major) → by rows, padded.
                let mut by_rows = vec![f32::NAN; rows * ld];
                copy_matrix(
                    MatMut::from_row_major_strided(&mut by_rows, rows, cols, ld),
                    MatRef::from_col_major(&src, rows, cols),
                );
                // And back.
                let mut back = vec![f32::NAN; rows * cols];
                copy_matrix(
                    MatMut::from_col_major(&mut back, rows, cols),
                    MatRef::from_row_major_strided(&by_rows, rows, cols, ld),
                );
                for i in 0..rows {
                    for j in 0..ld {
                        let got = by_rows[i * ld + j];
                        if j < cols {
                            assert_eq!(got.to_bits(), src[j * rows + i].to_bits(), "{rows}×{cols}: ({i}, {j})");
                        } else {
                            assert!(got.is_nan(), "{rows}×{cols}: padding ({i}, {j}) written");
                        }
                    }
                }
                assert!(
                    back.iter().zip(&src).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{rows}×{cols}: the round trip changed a value"
                );
            }
        }
    }

    #[test]
    fn padded_strides_are_an_odd_number_of_lines() {
        for (n, want) in [
            (1, 16),
            (10, 16),
            (16, 16),
            (17, 48),
            (80, 80),
            (128, 144),
            (256, 272),
            (272, 272),
        ] {
            assert_eq!(padded_row_stride(n), want, "n = {n}");
        }
    }

    #[test]
    fn chains_cover_every_case() {
        assert_eq!(chain(Accum::Replace, 1.0, 0, 1), Chain::ZeroStore(1.0));
        assert_eq!(chain(Accum::Replace, 2.0, 0, 1), Chain::ZeroStore(2.0));
        assert_eq!(chain(Accum::Replace, 2.0, 0, 3), Chain::ZeroStore(1.0));
        assert_eq!(chain(Accum::Replace, 2.0, 1, 3), Chain::ContinueStore);
        assert_eq!(chain(Accum::Replace, 2.0, 2, 3), Chain::ContinueScale(2.0));
        assert_eq!(chain(Accum::Replace, 1.0, 2, 3), Chain::ContinueStore);
        assert_eq!(chain(Accum::Add, 1.0, 0, 3), Chain::ContinueStore);
        assert_eq!(chain(Accum::Add, 0.5, 0, 1), Chain::ZeroAdd(0.5));
    }
}
