//! The f32 kernel for products with a **short inner dimension** (`2 ≤ k ≤ 15`) whose `B` and
//! `C` are stored by columns and whose `C` has more rows than one register holds: the backward
//! product `Wᵀ·dY` through a 10-output layer and the goodness gradient `Ξ·dP` against 10
//! prototypes (`(100, 10, 256)` in the AD methods' epochs), and any wider layer fed by a
//! width-10 one.
//!
//! faer computes these with its packed tiles, built for long `k`: at `k = 10` each tile of `C`
//! gets 10 rank-one updates between its load and its store, and `(100, 10, 256)` ran at 53–55 %
//! of the FMA peak inside the AD methods' epochs (docs/performance.md, round 14). Here `A` is
//! copied once per call into 64-byte aligned columns padded to a multiple of 16 rows (`k`
//! columns: 1,120 values at 100 rows), and each panel of up to [`PANEL_VECTORS`] registers of
//! rows × [`PANEL_COLUMNS`] columns of `C` runs over all of `k` in registers: per `p`, the
//! panel's registers of `A[:, p]` and one broadcast of `B[p, j]` per column, so the lanes are
//! full except past the last row, and no lane sums are needed.
//!
//! **The same bits as faer.** Every element is one fused multiply-add chain over
//! `p = 0, 1, …, k−1` in order from zero, stored as is (`Accum::Replace`) or added to `C`
//! (`Accum::Add`: `C + chain`). For `2 ≤ k` and `n ≥ 2` with `α = 1` that is what faer computes
//! for these layouts, and what [`crate::few_rows`]' rows-in-lanes kernel computes for the rows
//! faer's tiles leave (`tests/short_k.rs` checks every element of both paths); at `k = 1` faer
//! starts the chain from `C` instead, so `k = 1` is left to it. Routing a product here therefore
//! changes no trained number.

use std::cell::RefCell;

use crate::matmul::{Accum, MatMut, MatRef};

/// Lanes per register.
const LANES: usize = 16;
/// The longest `k` taken (beyond it faer's tiles amortise their loads and stores of `C`).
pub(crate) const MAX_K: usize = 15;
/// Registers of rows per panel: with [`PANEL_COLUMNS`] columns, 16 accumulators, 4 registers of
/// `A` and 4 broadcasts, inside the 32 vector registers.
const PANEL_VECTORS: usize = 4;
/// Columns of `C` per panel: 4 broadcasts of `B` per `p` feed 16 multiply-adds.
const PANEL_COLUMNS: usize = 4;
/// The fewest rows taken: up to 12 rows [`crate::few_rows`]' rows-in-lanes kernel already
/// computes the whole product (the same order of sums); from 13 rows on faer would tile them.
pub(crate) const MIN_ROWS: usize = 13;

thread_local! {
    /// `A` packed by columns, 64-byte aligned and padded to a multiple of 16 rows; allocated on
    /// first use per thread and reused.
    static PACKED_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`product_short_k`] computes this product: AVX-512F and VL, `α = 1`,
/// `2 ≤ k ≤` [`MAX_K`], at least [`MIN_ROWS`] rows and 2 columns, `B` and `C` with contiguous
/// columns.
pub(crate) fn applies(c: &MatMut<'_, f32>, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, alpha: f32) -> bool {
    c.row_stride() == 1
        && b.row_stride() == 1
        && c.nrows() >= MIN_ROWS
        && c.ncols() >= 2
        && (2..=MAX_K).contains(&a.ncols())
        && alpha == 1.0
        && crate::simd::avx512_f_and_vl()
}

/// `C ← A·B` or `C ← C + A·B` for a product [`applies`] admits. Sequential: a few µs (the
/// largest FFzero shape, `(100, 10, 256)`, is 0.5 MFLOP).
pub(crate) fn product_short_k(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    let (m, k) = (a.nrows(), a.ncols());
    let ld = m.next_multiple_of(LANES);
    PACKED_A.with(|packed| {
        let mut packed = packed.borrow_mut();
        if packed.len() < ld * k + LANES {
            packed.resize(ld * k + LANES, 0.0);
        }
        let offset = (LANES - (packed.as_ptr() as usize / 4) % LANES) % LANES;
        let packed = &mut packed[offset..offset + ld * k];
        if a.row_stride() == 1 {
            for (p, column) in packed.chunks_exact_mut(ld).enumerate() {
                column[..m].copy_from_slice(a.submatrix(0, p, m, 1).column_slice(0));
                column[m..].fill(0.0);
            }
        } else {
            // `A` stored by rows (e.g. `Wᵀ`): one gather per register of rows and column
            // (element by element through `get_raw` took 0.5 µs of a 2.9 µs (100, 10, 256)
            // product).
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `applies` checked AVX-512F/VL; `packed` holds `k` columns of `ld` values.
            unsafe {
                pack_by_gathers(a, packed, ld, true)
            };
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked AVX-512F/VL and the layouts; `packed` is 64-byte aligned and
        // holds `k` columns of `ld` values.
        unsafe {
            panels_avx512(c, accum, packed, ld, b, m)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (c, accum, b);
    });
}

/// `packed ← A` (`k` columns of `ld` values, zero past row `m`) for `A` whose columns are
/// not contiguous: per column, one masked gather per 16 rows when `gather` and the offsets fit
/// in i32, element by element otherwise (tests force that path, which only row strides beyond
/// 2²⁵ values would reach).
///
/// # Safety
/// AVX-512F; `packed` holds `A.ncols()` columns of `ld ≥ A.nrows()` values, `ld` a multiple
/// of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_by_gathers(a: MatRef<'_, f32>, packed: &mut [f32], ld: usize, gather: bool) {
    use std::arch::x86_64::*;
    let (m, k, rs) = (a.nrows(), a.ncols(), a.row_stride());
    assert!(
        ld.is_multiple_of(LANES) && ld >= m && packed.len() >= ld * k,
        "short-k packing"
    );
    if !gather || rs.unsigned_abs() * LANES > i32::MAX as usize / 4 {
        for (p, column) in packed.chunks_exact_mut(ld).enumerate().take(k) {
            for (i, value) in column.iter_mut().enumerate() {
                *value = if i < m { a.get_raw(i, p) } else { 0.0 };
            }
        }
        return;
    }
    let lanes: [i32; LANES] = std::array::from_fn(|r| (r as isize * rs) as i32);
    // SAFETY: `lanes` holds 16 i32s.
    let offsets = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
    for (p, column) in packed.chunks_exact_mut(ld).enumerate().take(k) {
        for (v, out) in column.chunks_exact_mut(LANES).enumerate() {
            let rows = m.saturating_sub(LANES * v).min(LANES);
            let mask = ((1u32 << rows) - 1) as __mmask16;
            let values = if rows == 0 {
                _mm512_setzero_ps()
            } else {
                // SAFETY: lane r < rows reads A[16·v + r, p], an element of the view (so is
                // the base); masked-off lanes are not read.
                unsafe {
                    let base = a
                        .as_ptr()
                        .wrapping_offset((LANES * v) as isize * rs + p as isize * a.col_stride());
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base)
                }
            };
            // SAFETY: `out` holds 16 values.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), values) };
        }
    }
}

/// Every panel of `C`: the registers of rows in panels of up to [`PANEL_VECTORS`] (a 100-row
/// `C` is 4 + 3 registers; 5 registers are 3 + 2, so that one register alone, whose panel
/// takes 8 columns at a time, is left only when `C` has no more), each over all columns.
/// (Columns outermost, so that each column of `C` is written in one go, took 2.66 µs for
/// (100, 10, 256) where this order takes 2.24–2.35: a call per panel and 4 columns.)
///
/// # Safety
/// AVX-512F and VL; `a` holds `k = b.nrows()` columns of `ld` values (`ld` a multiple of 16,
/// at least `m`), 64-byte aligned, zero past row `m`; `B` and `C` have row stride 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn panels_avx512(mut c: MatMut<'_, f32>, accum: Accum, a: &[f32], ld: usize, b: MatRef<'_, f32>, m: usize) {
    let vectors = m.div_ceil(LANES);
    let mut v0 = 0;
    while v0 < vectors {
        let count = match vectors - v0 {
            5 => 3,
            left => left.min(PANEL_VECTORS),
        };
        let panel = (&mut c, accum, a, ld, b, m);
        // SAFETY: as this function's; the panel's registers lie inside `ld`.
        unsafe {
            match count {
                1 => panel_avx512::<1, { 2 * PANEL_COLUMNS }>(panel, v0),
                2 => panel_avx512::<2, PANEL_COLUMNS>(panel, v0),
                3 => panel_avx512::<3, PANEL_COLUMNS>(panel, v0),
                _ => panel_avx512::<PANEL_VECTORS, PANEL_COLUMNS>(panel, v0),
            }
        }
        v0 += count;
    }
    std::arch::x86_64::_mm256_zeroupper();
}

/// Registers `v0..v0 + R` of rows (rows `16·v0..`) of every column of `C`, `J` columns at a
/// time: `R·J` accumulators from zero, per `p` in order `R` aligned loads of `A[:, p]` and `J`
/// broadcasts of `B[p, j]`, then `C ← acc` or `C + acc`, masked past row `m`.
///
/// # Safety
/// As [`panels_avx512`]; `v0 + R ≤ ⌈m/16⌉`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn panel_avx512<const R: usize, const J: usize>(
    (c, accum, a, ld, b, m): (&mut MatMut<'_, f32>, Accum, &[f32], usize, MatRef<'_, f32>, usize),
    v0: usize,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.nrows(), b.ncols());
    assert!(
        (v0 + R) * LANES <= ld && ld >= m && a.len() >= ld * k && (a.as_ptr() as usize).is_multiple_of(64),
        "short-k panel"
    );
    let masks: [__mmask16; R] = std::array::from_fn(|v| {
        let rows = m.saturating_sub(LANES * (v0 + v)).min(LANES);
        ((1u32 << rows) - 1) as __mmask16
    });
    let first = a.as_ptr().wrapping_add(LANES * v0);
    for j in (0..n).step_by(J) {
        let valid = (n - j).min(J);
        let columns = crate::few_rows::pass_columns::<J>(b, j, valid);
        let mut acc = [[_mm512_setzero_ps(); J]; R];
        for p in 0..k {
            // SAFETY: column p of the packed `A` holds `ld` aligned values; each column of `B`
            // holds `k` values.
            unsafe {
                let w: [__m512; R] = std::array::from_fn(|v| _mm512_load_ps(first.add(p * ld + LANES * v)));
                for t in 0..J {
                    let x = _mm512_set1_ps(*columns[t].add(p));
                    for v in 0..R {
                        acc[v][t] = _mm512_fmadd_ps(w[v], x, acc[v][t]);
                    }
                }
            }
        }
        let out: [*mut f32; J] =
            std::array::from_fn(|t| std::ptr::from_mut(c.get_mut_internal(LANES * v0, j + t.min(valid - 1))));
        if accum == Accum::Add {
            // Every column's values are read before any is stored: a column's masked last
            // register overlaps the next column's first rows when `C`'s columns are not 16
            // apart, and a load after such a store waits for it to leave the store buffer
            // ((50, 10, 256) added to `C`: 2.13 µs read column by column, 1.47–1.51 read first,
            // 1.30–1.39 replacing; docs/performance.md, round 17).
            for t in 0..valid {
                for v in 0..R {
                    // SAFETY: rows 16·(v0 + v).. of column j + t that the mask keeps are in the
                    // view and contiguous.
                    acc[v][t] = _mm512_add_ps(
                        unsafe { _mm512_maskz_loadu_ps(masks[v], out[t].add(LANES * v)) },
                        acc[v][t],
                    );
                }
            }
        }
        for t in 0..valid {
            for v in 0..R {
                // SAFETY: as above.
                unsafe { _mm512_mask_storeu_ps(out[t].add(LANES * v), masks[v], acc[v][t]) };
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{pack_by_gathers, LANES};
    use crate::MatRef;

    /// Both packing paths put `A[i, p]` at `p·ld + i` and zero past the last row, for `A`
    /// stored by rows (a transposed view) at row counts around one register.
    #[test]
    fn both_packing_paths_give_the_documented_layout() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for m in [1usize, 13, 16, 17, 50, 100] {
            for k in [2usize, 10, 15] {
                let values: Vec<f32> = (0..m * k).map(|x| x as f32 + 0.5).collect();
                // A (m × k) = the transpose of a column-major k × m matrix: rows contiguous.
                let a = MatRef::from_col_major(&values, k, m).t();
                let ld = m.next_multiple_of(LANES);
                for gather in [true, false] {
                    let mut packed = vec![f32::NAN; ld * k];
                    // SAFETY: AVX-512F checked; `packed` holds k columns of ld values.
                    unsafe { pack_by_gathers(a, &mut packed, ld, gather) };
                    for p in 0..k {
                        for i in 0..ld {
                            let want = if i < m { a.get(i, p) } else { 0.0 };
                            assert_eq!(
                                packed[p * ld + i].to_bits(),
                                want.to_bits(),
                                "m {m} k {k} gather {gather}: ({i}, {p})"
                            );
                        }
                    }
                }
            }
        }
    }
}
