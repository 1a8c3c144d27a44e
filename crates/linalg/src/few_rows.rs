//! The f32 kernels for the last few rows of a product, where faer's smallest tile wastes most of
//! its time.
//!
//! faer covers the rows of `C` with tiles of 96 rows and finishes with a 16-row tile whose four
//! accumulator chains wait on each FMA's latency: on (m × 784)·(784 × 256) it takes the same
//! 58 µs for m = 4, 10 or 16 rows, a 100-row product (96 + 4) costs 284 µs where 96 rows cost
//! 211, and a hidden layer's (100 × 100)·(100 × 256) 36.6 µs where 96 rows cost 27.4
//! (`cargo bench -p insitu-linalg --bench matmul`). FFzero's layers have 100, 50 and 10 rows.
//! This module computes up to [`MAX_ROWS`] rows itself, with one of three kernels (see
//! [`applies`] for when each pays):
//! - **`k` groups** ([`groups_avx512`]) when `B`'s columns are contiguous and `k ≥ 16` (a
//!   forward product `W·x`: a 10-output layer, the 4 rows a 100-row layer leaves, the 2 rows a
//!   50-row layer leaves, a regression's 1 output; the goodness projections `Ξᵀ·z`): a
//!   register holds `16/G` rows × `G` consecutive `k`, with `G` ∈ {4, 8, 16} chosen by the row
//!   count so that the registers' lanes are full where they can be (10 rows: 5 registers of
//!   2 rows × 8 `k`), and each sum ends with a short lane sum;
//! - **rows in lanes** ([`lanes_avx512`]) when `B`'s columns are contiguous and `k < 16` (a
//!   width-10 hidden layer's 10 × 10 `W`): `A`'s `k` columns stay in registers for the whole
//!   product, one register of rows per column of `C`, no lane sums;
//! - **rank-one updates** ([`few_rows_row_major_b_avx512`]) of 32 columns at a time when `B`'s
//!   rows are contiguous (a weight gradient `dZ·Xᵀ`).
//!
//! Each element is `Σ_k` in a fixed order that depends only on the shape (see each kernel),
//! never on the thread count or on `C`'s layout. AVX-512 only: without it faer computes all
//! rows (as it picks its own kernels by instruction set, products were never bitwise equal
//! across instruction sets).
//!
//! **Results changed in their last bits** in commit fe7d0b2, when a dot-product kernel (16
//! lanes along `k`, then a shuffle tree) took over the leftover rows of products with
//! `16 ≤ k < 256` (the hidden layers' `k = 100`) from faer; in session 7, when 4 rows × 4 `k`
//! per register (quads) replaced it; and in session 8, when 10, 2 and 1 rows moved to 8 and 16
//! consecutive `k` per row (full registers) and `k < 16` moved from faer to rows in lanes
//! (docs/performance.md, rounds 7 and 8): every MLP's output layer and goodness projections,
//! and its hidden layers of widths 10, 50 and 100.

use std::cell::RefCell;

use crate::matmul::{Accum, MatMut, MatRef};

/// Most rows this kernel takes (more would spill the accumulators out of registers).
pub(crate) const MAX_ROWS: usize = 12;
/// Rows, and consecutive values of `k`, per block of a sum's last step ([`sum_quads`]).
const QUAD: usize = 4;
/// Lanes per accumulator (one AVX-512 register).
const LANES: usize = 16;
/// Columns of `C` per pass of [`lanes_avx512`]: 8 independent accumulator chains cover the
/// FMA's latency.
const LANE_COLUMNS: usize = 8;

thread_local! {
    /// Packed `A` (groups, or `k × rows` for the row kernel), allocated on first use per thread
    /// and reused.
    static PACKED_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How [`product_few_rows`] reads `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `B`'s columns are contiguous (e.g. a batch of samples) and `k ≥ 16`: each register
    /// holds `16/G` rows × `G` consecutive `k` ([`groups_avx512`]).
    Groups,
    /// `B`'s columns are contiguous and `k < 16`: `A`'s columns in registers, rows in lanes
    /// ([`lanes_avx512`]).
    Lanes,
    /// `B`'s rows are contiguous (e.g. the transpose of a batch, in a weight gradient
    /// `dZ·Xᵀ`): rank-one updates of 32 columns of `C` at a time along `k`.
    Rows,
}

/// Whether [`product_few_rows`] takes the last `rows` of a product with `total_rows` rows, and
/// how: `1 ≤ rows ≤ MAX_ROWS`, AVX-512F and VL (elsewhere faer does all rows), and `B` either
/// column-contiguous (groups for `k ≥ 16`, rows in lanes below), or row-contiguous with
/// `n ≥ 64`, `rows ≤ 8` and at least 96 rows for faer. Measured in runs alternated with the
/// previous build (docs/performance.md, round 8): groups take (10 × 100)·(100 × 256) in
/// 4.45 µs where quads took 4.7–4.8 (dot products along `k` 6.7, faer 8.4),
/// (10 × 784)·(784 × 256) in 24 µs (quads 28.4–29.6, faer 55), (1 × 784)·(784 × 256) in 9.7
/// (quads 12.3–12.7) and (4 × 100)·(100 × 256) in 2.0–2.1 (as quads; faer 8.3); rows in lanes
/// (10 × 10)·(10 × 256) in 0.73–0.79 µs where faer takes 1.16. The row kernel, with
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
            Some(Layout::Groups)
        } else if b.row_stride() == 1 && b.nrows() >= 1 {
            Some(Layout::Lanes)
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

/// `(G, V)` of [`groups_avx512`] for `rows` rows: `G` consecutive `k` per row in a register,
/// `V` registers per group of `G` values of `k`. Full registers where the row count allows
/// (2, 4, 6, 8, 10, 12 rows); 10 rows take 5 registers of 2 rows × 8 `k` where quads
/// (`G = 4`) would take 3 of 4 × 4 with 2 rows empty.
fn group_shape(rows: usize) -> (usize, usize) {
    match rows {
        1 => (16, 1),
        2 => (8, 1),
        3 | 4 => (4, 1),
        5 | 6 => (8, 3),
        7 | 8 => (4, 2),
        9 | 10 => (8, 5),
        _ => (4, 3),
    }
}

/// 64-byte-aligned `len` values at the start of `buffer`'s first aligned position (a load that
/// straddles two cache lines costs two); `buffer` must hold `len + 16`.
fn aligned(buffer: &mut [f32], len: usize) -> &mut [f32] {
    let offset = (LANES - (buffer.as_ptr() as usize / 4) % LANES) % LANES;
    &mut buffer[offset..offset + len]
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
    if layout == Layout::Lanes {
        macro_rules! dispatch {
            ($($k:literal)*) => {
                match k {
                    // SAFETY: `applies` checked AVX-512F/VL, `B`'s layout and 1 ≤ k < 16.
                    $($k => unsafe { lanes_avx512::<$k>(c, accum, a, b, alpha) },)*
                    _ => unreachable!("applies() admits rows in lanes for 1 ≤ k < 16"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        return;
    }
    let (g, v) = group_shape(rows);
    PACKED_A.with(|packed| {
        let mut packed = packed.borrow_mut();
        let len = match layout {
            Layout::Groups => k.div_ceil(g) * v * LANES,
            _ => rows * k,
        };
        if packed.len() < len + LANES {
            packed.resize(len + LANES, 0.0);
        }
        if layout == Layout::Groups {
            let packed = aligned(&mut packed, len);
            // SAFETY: `applies` checked AVX-512F/VL, `B`'s layout and `k ≥ 16`; `packed` is
            // 64-byte aligned and holds the packed groups for (g, v) = group_shape(rows).
            unsafe {
                pack_groups_avx512(a, packed, g, v);
                match (g, v) {
                    (16, 1) => groups_avx512::<16, 1, 8>(c, accum, packed, rows, b, alpha),
                    (8, 1) => groups_avx512::<8, 1, 8>(c, accum, packed, rows, b, alpha),
                    (8, 3) => groups_avx512::<8, 3, 8>(c, accum, packed, rows, b, alpha),
                    (8, 5) => groups_avx512::<8, 5, 4>(c, accum, packed, rows, b, alpha),
                    (4, 1) => groups_avx512::<4, 1, 8>(c, accum, packed, rows, b, alpha),
                    (4, 2) => groups_avx512::<4, 2, 8>(c, accum, packed, rows, b, alpha),
                    _ => groups_avx512::<4, 3, 8>(c, accum, packed, rows, b, alpha),
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
                match rows {
                    // SAFETY: `applies` checked AVX-512F and the layout; `packed` is rows × k.
                    $($n => unsafe { few_rows_row_major_b_avx512::<$n>(c, accum, packed, b, alpha) },)*
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

/// `packed ← A` for [`groups_avx512`] with `G = g` consecutive `k` per row and `V = v`
/// registers of `16/g` rows: for each group `q` of `g` values of `k` and each register `u`,
/// one 64-byte-aligned vector at `packed[(q·v + u)·16..]` whose lane `g·i + e` is
/// `A[(16/g)·u + i, g·q + e]`, zero past the last row or the last `k`. Plain loads of rows
/// when `A`'s rows are contiguous ([`pack_groups_from_rows`]), masked loads of columns and
/// permutes when its columns are and `g < 16` ([`pack_groups_from_columns`]), one gather per
/// vector otherwise.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `g` is 4, 8 or 16 and `v·16/g ≥ rows`;
/// `packed` is 64-byte aligned and holds `⌈k/g⌉·v·16` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn pack_groups_avx512(a: MatRef<'_, f32>, packed: &mut [f32], g: usize, v: usize) {
    // SAFETY: as this function's.
    unsafe { pack_groups_by(a, packed, g, v, Packing::Fastest) }
}

/// How [`pack_groups_by`] reads `A`: the fastest way its strides allow (what the kernel uses),
/// or forced to the gather or the scalar path, so that tests can compare the three.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // the kernel uses `Fastest`; tests force the others
enum Packing {
    /// Loads of rows when `A`'s rows are contiguous; masked loads of columns
    /// interleaved by permutes ([`pack_groups_from_columns`]) when its columns are and
    /// `g < 16`; else a gather when the offsets fit in i32; else scalar reads.
    Fastest,
    /// A gather (when the offsets fit), never masked loads.
    Gather,
    /// Scalar reads, the path for strides beyond i32 offsets.
    Scalar,
}

/// [`pack_groups_avx512`] by the path `how` allows.
///
/// # Safety
/// As [`pack_groups_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn pack_groups_by(a: MatRef<'_, f32>, packed: &mut [f32], g: usize, v: usize, how: Packing) {
    use std::arch::x86_64::*;
    let (rows, k) = (a.nrows(), a.ncols());
    let (per_register, groups) = (LANES / g, k.div_ceil(g));
    assert!(
        [4, 8, 16].contains(&g) && v * per_register >= rows && packed.len() >= groups * v * LANES,
        "packed groups"
    );
    let (rs, cs) = (a.row_stride(), a.col_stride());
    if cs == 1 && how == Packing::Fastest {
        // Rows contiguous (e.g. a transposed prototype matrix): one load of up to `g` values
        // per row and register, no gather.
        // SAFETY: as this function's.
        unsafe {
            match g {
                4 => pack_groups_from_rows::<4>(a, packed, v),
                8 => pack_groups_from_rows::<8>(a, packed, v),
                _ => pack_groups_from_rows::<16>(a, packed, v),
            }
        }
        return;
    }
    if rs == 1 && how == Packing::Fastest {
        // Columns contiguous (a layer's `W` or `V`, column-major): one masked load per column
        // and permutes, no gather (a gather per vector took 10 % of a (10 × 100)·(100 × 256)
        // product; docs/performance.md, round 14).
        match g {
            // SAFETY: as this function's; g is 4 or 8.
            4 => return unsafe { pack_groups_from_columns::<4>(a, packed, v) },
            8 => return unsafe { pack_groups_from_columns::<8>(a, packed, v) },
            _ => {}
        }
    }
    // The gather's offsets (lane g·i + e: element (i, e) of a register), the same for every
    // vector; none when they do not fit its i32 offsets.
    let reach = (per_register - 1) * rs.unsigned_abs() + (g - 1) * cs.unsigned_abs();
    let offsets = (how != Packing::Scalar && reach <= i32::MAX as usize / 4).then(|| {
        let lanes: [i32; LANES] =
            std::array::from_fn(|lane| ((lane / g) as isize * rs + (lane % g) as isize * cs) as i32);
        // SAFETY: `lanes` holds 16 i32s.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    });
    // Lanes g·i + e for every i, with e < `count`.
    let every_row = |count: usize| -> u32 { (0..per_register).map(|i| ((1u32 << count) - 1) << (g * i)).sum() };
    for q in 0..groups {
        let k_lanes = every_row((k - g * q).min(g));
        for u in 0..v {
            // Lanes g·i + e with i < the register's rows.
            let rows_here = rows.saturating_sub(per_register * u).min(per_register);
            let row_lanes = ((1u64 << (g * rows_here)) - 1) as u32;
            let mask = (k_lanes & row_lanes) as __mmask16;
            let out = &mut packed[(q * v + u) * LANES..][..LANES];
            let Some(offsets) = offsets else {
                for (lane, value) in out.iter_mut().enumerate() {
                    let (i, e) = (lane / g, lane % g);
                    *value = if mask >> lane & 1 == 1 {
                        a.get_raw(per_register * u + i, g * q + e)
                    } else {
                        0.0
                    };
                }
                continue;
            };
            // SAFETY: every lane the mask keeps is an element of the view (so is the base, the
            // register's first row at the group's first k); masked-off lanes are not read;
            // `out` holds 16 values, 64-byte aligned (the caller's buffer is and each vector
            // is 16 values long).
            unsafe {
                let base = a
                    .as_ptr()
                    .wrapping_offset((per_register * u) as isize * rs + (g * q) as isize * cs);
                let values = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base);
                _mm512_store_ps(out.as_mut_ptr(), values);
            }
        }
    }
}

/// [`pack_groups_by`]'s path for `A` with contiguous rows (column stride 1, e.g. the
/// transposed prototypes `Ξᵀ`): lanes `G·i..G·i + G` of vector `(q, u)` are one load of row
/// `(16/G)·u + i` at `k = G·q` (masked in the last group; zero past the last row), joined by
/// inserts: `G = 8` two 256-bit loads and one insert per vector, `G = 4` four 128-bit loads and
/// three inserts. (Masked loads of the whole register per row, the earlier path, spanned 64
/// bytes before each row and took 10 % of a (10 × 100)·(100 × 128) product.)
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `G` is 4, 8 or 16; `A` has column stride 1;
/// `v·16/G ≥ rows`; `packed` is 64-byte aligned and holds `⌈k/G⌉·v·16` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn pack_groups_from_rows<const G: usize>(a: MatRef<'_, f32>, packed: &mut [f32], v: usize) {
    use std::arch::x86_64::*;
    let (rows, k) = (a.nrows(), a.ncols());
    let per_register = LANES / G;
    assert!(
        (G == 4 || G == 8 || G == 16)
            && a.col_stride() == 1
            && v * per_register >= rows
            && packed.len() >= k.div_ceil(G) * v * LANES,
        "packed groups from rows"
    );
    let rs = a.row_stride();
    for q in 0..k.div_ceil(G) {
        let count = (k - G * q).min(G);
        let mask = ((1u32 << count) - 1) as __mmask16;
        // Row r's values k = G·q.. (the first `count` of them), or nothing past the last row.
        let at = |r: usize| (r < rows).then(|| a.as_ptr().wrapping_offset(r as isize * rs + (G * q) as isize));
        // SAFETY (the loads below): `at` points at row r's `count` values from G·q, elements of
        // the view; the masks keep only those; AVX-512F/VL as this function.
        let quarter = |r: usize| -> __m128 {
            match at(r) {
                Some(p) if count == G => unsafe { _mm_loadu_ps(p) },
                Some(p) => unsafe { _mm_maskz_loadu_ps(mask as __mmask8, p) },
                None => _mm_setzero_ps(),
            }
        };
        let half = |r: usize| -> __m256 {
            match at(r) {
                Some(p) if count == G => unsafe { _mm256_loadu_ps(p) },
                Some(p) => unsafe { _mm256_maskz_loadu_ps(mask as __mmask8, p) },
                None => _mm256_setzero_ps(),
            }
        };
        let join = |low: __m256, high: __m256| -> __m512 {
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(low)),
                _mm256_castps_pd(high),
            ))
        };
        for u in 0..v {
            let r = per_register * u;
            let values = match G {
                16 => match at(r) {
                    Some(p) if count == G => unsafe { _mm512_loadu_ps(p) },
                    Some(p) => unsafe { _mm512_maskz_loadu_ps(mask, p) },
                    None => _mm512_setzero_ps(),
                },
                8 => join(half(r), half(r + 1)),
                _ => join(
                    _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(quarter(r)), quarter(r + 1)),
                    _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(quarter(r + 2)), quarter(r + 3)),
                ),
            };
            // SAFETY: vector (q, u) of `packed` is in bounds and 64-byte aligned.
            unsafe { _mm512_store_ps(packed.as_mut_ptr().add((q * v + u) * LANES), values) };
        }
    }
}

/// [`pack_groups_by`]'s path for `A` with contiguous columns (row stride 1): per group `q`,
/// `G` columns of `A` as `G` registers (one masked load each: rows in lanes, zero past the
/// last row; zero registers past the last `k`), then `log₂ G` rounds of two-source permutes
/// that each merge pairs of neighbouring column sets. After round `L`, register `(m, t)`
/// holds columns `m·2^L..(m + 1)·2^L` of the group and the `16/2^L` rows of block `t`, lane
/// `2^L·r + c` = row `t·16/2^L + r`, column `m·2^L + c`; after the last round (`2^L = G`)
/// register `(0, u)` is vector `(q, u)` of the packed layout. For 10 rows and `G = 8`:
/// 8 masked loads and 8 + 6 + 5 permutes per group, where the gather path takes 5 gathers.
///
/// # Safety
/// The CPU must support AVX-512F; `G` is 4 or 8; `A` has row stride 1 and at most
/// [`MAX_ROWS`] rows; `v·16/G ≥ rows`; `packed` is 64-byte aligned and holds `⌈k/G⌉·v·16`
/// values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_groups_from_columns<const G: usize>(a: MatRef<'_, f32>, packed: &mut [f32], v: usize) {
    use std::arch::x86_64::*;
    let (rows, k) = (a.nrows(), a.ncols());
    assert!(
        (G == 4 || G == 8)
            && a.row_stride() == 1
            && rows <= MAX_ROWS
            && v == rows.div_ceil(LANES / G)
            && v <= MERGED_BLOCKS[G.trailing_zeros() as usize]
            && packed.len() >= k.div_ceil(G) * v * LANES,
        "packed groups from columns"
    );
    let row_mask = ((1u32 << rows) - 1) as __mmask16;
    // SAFETY: each row of MERGE_INDEX holds 16 i32s.
    let index: [__m512i; 6] = std::array::from_fn(|i| unsafe { _mm512_loadu_si512(MERGE_INDEX[i].as_ptr().cast()) });
    let cs = a.col_stride();
    for q in 0..k.div_ceil(G) {
        let columns: [__m512; 8] = std::array::from_fn(|e| {
            let p = G * q + e;
            if e < G && p < k {
                // SAFETY: column p's `rows` values are contiguous and in the view; the other
                // lanes are masked off and not read.
                unsafe { _mm512_maskz_loadu_ps(row_mask, a.as_ptr().wrapping_offset(p as isize * cs)) }
            } else {
                _mm512_setzero_ps()
            }
        });
        // Every round at its most blocks (rows ≤ 12), so that all indices are constants and the
        // registers stay registers; blocks past the rows are zero and cost a permute each.
        let pairs = merge_round::<1>(&columns, &index, G / 2);
        let quads = merge_round::<2>(&pairs, &index, G / 4);
        let packed_group = if G == 8 {
            merge_round::<3>(&quads, &index, 1)
        } else {
            quads
        };
        for (u, reg) in packed_group.iter().enumerate().take(v) {
            // SAFETY: vector (q, u) of `packed` is in bounds and 64-byte aligned.
            unsafe { _mm512_store_ps(packed.as_mut_ptr().add((q * v + u) * LANES), *reg) };
        }
    }
}

/// Blocks of rows per column set after each round of [`pack_groups_from_columns`] at most
/// ([`MAX_ROWS`] = 12 rows): `⌈12 / (16/2^L)⌉`.
#[cfg(target_arch = "x86_64")]
const MERGED_BLOCKS: [usize; 4] = [1, 2, 3, 6];

/// The permutes' indices of [`pack_groups_from_columns`], row `2(L − 1) + half` for round `L`:
/// block `t` of a merged set comes from block `t / 2` of the two sets it merges, `half = t % 2`
/// picks which half of that block's rows. Lane `2^L·r + c` reads lane
/// `2^(L−1)·(half·16/2^L + r) + c` of the first set (`c < 2^(L−1)`), or lane
/// `2^(L−1)·(half·16/2^L + r) + c − 2^(L−1)` of the second (16 added: `permutex2var`'s second
/// source).
#[cfg(target_arch = "x86_64")]
const MERGE_INDEX: [[i32; LANES]; 6] = {
    let mut index = [[0i32; LANES]; 6];
    let mut row = 0;
    while row < 6 {
        let (level, half) = (row / 2 + 1, row % 2);
        let (width, block_rows) = (1usize << level, LANES >> level);
        let mut lane = 0;
        while lane < LANES {
            let (r, c) = (lane / width, lane % width);
            let parent_row = half * block_rows + r;
            let (source, column) = if c < width / 2 { (0, c) } else { (LANES, c - width / 2) };
            index[row][lane] = (source + (width / 2) * parent_row + column) as i32;
            lane += 1;
        }
        row += 1;
    }
    index
};

/// One round `L` of [`pack_groups_from_columns`]: `sets` column sets of `MERGED_BLOCKS[L]`
/// blocks from `2·sets` sets of `MERGED_BLOCKS[L − 1]` blocks (`parents`, set-major), with
/// rows `2(L − 1)` and `2L − 1` of [`MERGE_INDEX`] (`index`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn merge_round<const L: usize>(
    parents: &[std::arch::x86_64::__m512],
    index: &[std::arch::x86_64::__m512i; 6],
    sets: usize,
) -> [std::arch::x86_64::__m512; 8] {
    use std::arch::x86_64::*;
    let (blocks, parent_blocks) = (MERGED_BLOCKS[L], MERGED_BLOCKS[L - 1]);
    std::array::from_fn(|i| {
        let (m, t) = (i / blocks, i % blocks);
        if m < sets {
            let first = parents[2 * m * parent_blocks + t / 2];
            let second = parents[(2 * m + 1) * parent_blocks + t / 2];
            _mm512_permutex2var_ps(first, index[2 * (L - 1) + t % 2], second)
        } else {
            _mm512_setzero_ps()
        }
    })
}

/// The first values of `B`'s columns `j..j + J` for one pass of a kernel; past the `valid`
/// columns left, the last one again (computed and never stored), so that every pass runs the
/// same straight-line code. Pointer arithmetic in a plain loop, inlined: as a call to
/// `array::from_fn` over `column_slice` it took 14 % of a (10 × 10)·(10 × 256) product.
///
/// # Panics
/// If `valid` is 0 or columns `j..j + valid` are not all in `b`.
#[inline(always)]
pub(crate) fn pass_columns<const J: usize>(b: MatRef<'_, f32>, j: usize, valid: usize) -> [*const f32; J] {
    assert!(valid >= 1 && j + valid <= b.ncols(), "pass columns");
    let mut columns = [b.as_ptr(); J];
    for (t, column) in columns.iter_mut().enumerate() {
        // Column j + min(t, valid − 1) of the view: in bounds by the assertion.
        *column = b
            .as_ptr()
            .wrapping_offset((j + t.min(valid - 1)) as isize * b.col_stride());
    }
    columns
}

/// The kernel for `B` with contiguous columns, `k ≥ 16` and 1 to 12 rows: each register holds
/// `16/G` rows × `G` consecutive `k` (`V` registers cover the rows) and multiplies
/// `B[G·q..G·q + G, j]` broadcast to its `16/G` lane groups; `J` columns per pass, `V·J`
/// accumulators. At the end [`store_block`] halves each column's registers to blocks of 4 rows
/// × 4 partial sums ([`quad_block`]), and each 4 × 4 block of `C` is the 4-way lane sums of
/// four such blocks ([`sum_quads`]). A 16-way dot product per row pays a 16-way reduction per
/// sum (as long as the multiply-adds at `k = 100`); a register of rows (`A`'s column in lanes)
/// leaves 6 of 16 lanes empty for 10 rows and needs a load per multiply-add.
///
/// Each element: for each `e < G`, the sum of the `p ≡ e (mod G)` terms in `p` order (fused);
/// then, while more than 4 partial sums remain, each 4-lane half-group plus its neighbour
/// (`G = 8`: `t_e = s_e + s_{e+4}`; `G = 16`: `t_e = (s_e + s_{e+4}) + (s_{e+8} + s_{e+12})`);
/// then `(t₀ + t₂) + (t₁ + t₃)`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `a` is [`pack_groups_avx512`]'s output for
/// `(G, V)` and `rows ≤ V·16/G` rows; `B` has row stride 1; `J` is 4 or 8; `G` is 4, 8 or 16;
/// `V·16/G ≤ 12`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn groups_avx512<const G: usize, const V: usize, const J: usize>(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: &[f32],
    rows: usize,
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.nrows(), b.ncols());
    let (groups, tail) = (k / G, k % G);
    assert!(
        [4, 8, 16].contains(&G)
            && rows <= V * LANES / G
            && V * LANES / G <= MAX_ROWS
            && a.len() >= k.div_ceil(G) * V * LANES
            && (J == 4 || J == 8),
        "groups"
    );
    let tail_mask = ((1u32 << tail) - 1) as __mmask16;
    // `B[p..p + G, column]` (the first `count` of them, zeros after) in each of the 16/G lane
    // groups.
    let broadcast = |column: *const f32, mask: Option<__mmask16>| -> __m512 {
        // SAFETY: the caller passes a pointer to `G` values of a column, or to `tail` values
        // with their mask; AVX-512F/VL as this function.
        unsafe {
            match (G, mask) {
                (4, None) => _mm512_broadcast_f32x4(_mm_loadu_ps(column)),
                (4, Some(m)) => _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(m as __mmask8, column)),
                (8, None) => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(column.cast()))),
                (8, Some(m)) => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_maskz_loadu_ps(
                    m as __mmask8,
                    column,
                )))),
                (_, None) => _mm512_loadu_ps(column),
                (_, Some(m)) => _mm512_maskz_loadu_ps(m, column),
            }
        }
    };
    for j in (0..n).step_by(J) {
        let valid = (n - j).min(J);
        let cols = pass_columns::<J>(b, j, valid);
        let mut acc = [[_mm512_setzero_ps(); J]; V];
        // The multiply-adds of group `q` of `k` (`mask`: the tail's values, fewer than `G`).
        let mut group = |q: usize, mask: Option<__mmask16>| {
            // SAFETY: vector (q, u) of `a` is in bounds and 64-byte aligned; each column has
            // G·q + G values (or the tail's, which the mask keeps).
            unsafe {
                let w: [__m512; V] = std::array::from_fn(|u| _mm512_load_ps(a.as_ptr().add((q * V + u) * LANES)));
                for t in 0..J {
                    let x = broadcast(cols[t].add(G * q), mask);
                    for u in 0..V {
                        acc[u][t] = _mm512_fmadd_ps(w[u], x, acc[u][t]);
                    }
                }
            }
        };
        for q in 0..groups {
            group(q, None);
        }
        if tail > 0 {
            group(groups, Some(tail_mask));
        }
        // 10 rows of 4 whole columns 10 apart, α = 1 (every trainer's output layer and
        // goodness projections): the 40 sums are 40 consecutive floats of `C`.
        if G == 8
            && V == 5
            && J == 4
            && rows == 10
            && valid == 4
            && alpha == 1.0
            && c.row_stride() == 1
            && c.col_stride() == 10
        {
            // SAFETY: AVX-512F/VL as this function; columns j..j + 4 of `C`'s 10 rows are the
            // 40 floats from row 0 of column j on.
            unsafe { store_ten_rows::<V, J>(&acc, c.get_mut_internal(0, j), accum) };
            continue;
        }
        // Straight-line code per 4 columns and block of 4 rows (constant indices keep the
        // accumulators in registers).
        // SAFETY: AVX-512F/VL as this function; `c` holds `rows` rows and columns j..j + valid.
        unsafe {
            let args = (j, valid, rows, accum, alpha);
            store_block::<G, V, J, 0, 0>(&acc, &mut c, args);
            store_block::<G, V, J, 0, 1>(&acc, &mut c, args);
            store_block::<G, V, J, 0, 2>(&acc, &mut c, args);
            store_block::<G, V, J, 4, 0>(&acc, &mut c, args);
            store_block::<G, V, J, 4, 1>(&acc, &mut c, args);
            store_block::<G, V, J, 4, 2>(&acc, &mut c, args);
        }
    }
    _mm256_zeroupper();
}

/// Rows `4·BLOCK..4·BLOCK + 4` (those below `rows`) of columns `j + T0..j + T0 + 4` (those
/// below `j + valid`) of [`groups_avx512`]'s pass at column `j`: [`quad_block`] of each
/// column, [`sum_quads`], then `C ← α·sum` or `C + α·sum` (fused).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `c` holds `rows` rows and the columns
/// `j..j + valid`, `valid ≤ J`; `G` is 4, 8 or 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
unsafe fn store_block<const G: usize, const V: usize, const J: usize, const T0: usize, const BLOCK: usize>(
    acc: &[[std::arch::x86_64::__m512; J]; V],
    c: &mut MatMut<'_, f32>,
    (j, valid, rows, accum, alpha): (usize, usize, usize, Accum, f32),
) {
    use std::arch::x86_64::*;
    let block_rows = rows.saturating_sub(QUAD * BLOCK).min(QUAD);
    if T0 >= valid || block_rows == 0 {
        return;
    }
    let row_mask = ((1u32 << block_rows) - 1) as __mmask8;
    let column = |s: usize| -> [__m512; V] { std::array::from_fn(|u| acc[u][(T0 + s).min(J - 1)]) };
    // Lane 4i + s of a reduced block (row i, column s) → lane 4s + i (column s's rows together).
    let to_columns = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    // SAFETY: AVX-512F as this function.
    let sums = unsafe {
        _mm512_permutexvar_ps(
            to_columns,
            sum_quads(
                quad_block::<G, V>(column(0), BLOCK),
                quad_block::<G, V>(column(1), BLOCK),
                quad_block::<G, V>(column(2), BLOCK),
                quad_block::<G, V>(column(3), BLOCK),
            ),
        )
    };
    if c.row_stride() == 1 && T0 + QUAD <= valid {
        let alpha_v = _mm_set1_ps(alpha);
        let step = c.col_stride();
        let first: *mut f32 = c.get_mut_internal(QUAD * BLOCK, j + T0);
        let put = |slot: *mut f32, x: __m128| {
            // SAFETY: `slot` is row 4·BLOCK of one of the four columns, whose rows
            // 4·BLOCK..4·BLOCK + block_rows are in the view and contiguous.
            unsafe {
                let out = match accum {
                    Accum::Replace => _mm_mul_ps(alpha_v, x),
                    Accum::Add => _mm_fmadd_ps(alpha_v, x, _mm_maskz_loadu_ps(row_mask, slot)),
                };
                _mm_mask_storeu_ps(slot, row_mask, out);
            }
        };
        put(first, _mm512_extractf32x4_ps::<0>(sums));
        put(first.wrapping_offset(step), _mm512_extractf32x4_ps::<1>(sums));
        put(first.wrapping_offset(2 * step), _mm512_extractf32x4_ps::<2>(sums));
        put(first.wrapping_offset(3 * step), _mm512_extractf32x4_ps::<3>(sums));
    } else {
        let mut lanes = [0.0f32; LANES];
        // SAFETY: `lanes` has 16 f32s.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sums) };
        for s in 0..(valid - T0).min(QUAD) {
            for i in 0..block_rows {
                store(
                    c.get_mut_internal(QUAD * BLOCK + i, j + T0 + s),
                    lanes[QUAD * s + i],
                    accum,
                    alpha,
                );
            }
        }
    }
}

/// For each of the 3 registers [`store_ten_rows`] stores (`C`'s values `16·i..16·i + 16`
/// of 40, value `f` being row `f % 10` of column `f / 10`): where each lane comes from —
/// lanes of the reduced blocks of rows 0–3 (`0..16`) and 4–7 (`16..32`), or (the lanes of
/// the mask) of the paired block of rows 8–9 — and that mask.
const TEN_ROW_LANES: [([i32; LANES], [i32; LANES], u16); 3] = [ten_row_lanes(0), ten_row_lanes(1), ten_row_lanes(2)];

const fn ten_row_lanes(register: usize) -> ([i32; LANES], [i32; LANES], u16) {
    let (mut low_rows, mut last_rows, mut mask) = ([0i32; LANES], [0i32; LANES], 0u16);
    let mut lane = 0;
    while lane < LANES {
        let f = LANES * register + lane;
        let (column, row) = (f / 10, f % 10);
        if f < 40 && row < 8 {
            // Blocks of rows 0–3 and 4–7: lane 4i + s holds row 4·block + i of column s.
            low_rows[lane] = ((row / 4) * LANES + 4 * (row % 4) + column) as i32;
        } else if f < 40 {
            // Rows 8–9 paired: lane 4i + s holds, for i = 2·(c mod 2) + (row − 8), column
            // c = 2s + (i ≥ 2).
            last_rows[lane] = (4 * (2 * (column % 2) + row - 8) + column / 2) as i32;
            mask |= 1 << lane;
        }
        lane += 1;
    }
    (low_rows, last_rows, mask)
}

/// The epilogue of [`groups_avx512`] for 10 rows (`G = 8`, `V = 5`, `J = 4`), 4 whole columns
/// stored 10 floats apart from `first` and `α = 1`, with the same sums as [`store_block`]
/// (`tests/matmul.rs` compares the two bit for bit): rows 0–3 and 4–7 reduce as there; the
/// third block, whose registers hold only rows 8 and 9, [`halve`]s two columns' registers
/// together instead of each with zeros; then 3 two-source permutes and 3 masked permutes
/// put the 40 sums in memory order, and 3 stores write them (or add them to `C`'s values),
/// where the general path needs 12 extracts and permutes and 12 masked stores.
///
/// # Safety
/// The CPU must support AVX-512F; `first` points at 40 writable floats; `V = 5`, `J = 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_ten_rows<const V: usize, const J: usize>(
    acc: &[[std::arch::x86_64::__m512; J]; V],
    first: *mut f32,
    accum: Accum,
) {
    use std::arch::x86_64::*;
    let column = |s: usize| -> [__m512; V] { std::array::from_fn(|u| acc[u][s.min(J - 1)]) };
    let register = |u: usize, s: usize| acc[u.min(V - 1)][s.min(J - 1)];
    // SAFETY (whole body): AVX-512F as this function; the 40 floats are the caller's.
    unsafe {
        let zero = _mm512_setzero_ps();
        let blocks = [
            sum_quads(
                quad_block::<8, V>(column(0), 0),
                quad_block::<8, V>(column(1), 0),
                quad_block::<8, V>(column(2), 0),
                quad_block::<8, V>(column(3), 0),
            ),
            sum_quads(
                quad_block::<8, V>(column(0), 1),
                quad_block::<8, V>(column(1), 1),
                quad_block::<8, V>(column(2), 1),
                quad_block::<8, V>(column(3), 1),
            ),
        ];
        let last = sum_quads(
            halve(register(4, 0), register(4, 1)),
            halve(register(4, 2), register(4, 3)),
            zero,
            zero,
        );
        for (i, (low_rows, last_rows, mask)) in TEN_ROW_LANES.iter().enumerate() {
            let low = _mm512_permutex2var_ps(blocks[0], _mm512_loadu_si512(low_rows.as_ptr().cast()), blocks[1]);
            let sums = _mm512_mask_permutexvar_ps(low, *mask, _mm512_loadu_si512(last_rows.as_ptr().cast()), last);
            let (slot, store_mask) = (first.add(LANES * i), if i < 2 { u16::MAX } else { 0xFF });
            let out = match accum {
                Accum::Replace => sums,
                // `C + sum`, as `store_block`'s fused `1·sum + C`.
                Accum::Add => _mm512_add_ps(_mm512_maskz_loadu_ps(store_mask, slot), sums),
            };
            _mm512_mask_storeu_ps(slot, store_mask, out);
        }
    }
}

/// Block `block` (rows `4·block..4·block + 4`) of one column's `V` registers of `16/G` rows ×
/// `G` partial sums, as 4 rows × 4 partial sums (lane `4i + e`), the layout [`sum_quads`]
/// reduces: `G = 4` is the register itself; `G = 8` joins two registers of 2 rows with one
/// [`halve`], `G = 16` four registers of 1 row with three. Registers past `V` are zero.
///
/// # Safety
/// The CPU must support AVX-512F; `G` is 4, 8 or 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn quad_block<const G: usize, const V: usize>(
    registers: [std::arch::x86_64::__m512; V],
    block: usize,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let register = |u: usize| if u < V { registers[u] } else { _mm512_setzero_ps() };
    let first = block * G / QUAD;
    // SAFETY: AVX-512F as this function.
    unsafe {
        match G {
            4 => register(first),
            8 => halve(register(first), register(first + 1)),
            _ => halve(
                halve(register(first), register(first + 1)),
                halve(register(first + 2), register(first + 3)),
            ),
        }
    }
}

/// Two registers of rows with `G ≥ 8` consecutive partial sums per row, as one with twice the
/// rows and `G/2` partial sums per row: 128-bit lane `l` of the result is the sum of 128-bit
/// lanes `2l` and `2l + 1` of `x` (`l < 2`) or of `y` (`l ≥ 2`). 2 shuffles, 1 addition.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn halve(x: std::arch::x86_64::__m512, y: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // [x₀, x₂, y₀, y₂] + [x₁, x₃, y₁, y₃] (128-bit lanes).
    _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(x, y), _mm512_shuffle_f32x4::<0xDD>(x, y))
}

/// The kernel for `B` with contiguous columns and `k = K < 16`: `A`'s `K` columns stay in
/// registers (rows in lanes, zero past the last row) for the whole product, and column `j` of
/// `C` is `Σ_p A[:, p]·B[p, j]` with `B[p, j]` broadcast from memory, 8 columns at a time (8
/// independent chains). Each element is the sum in `p` order, fused. No lane sums: what is
/// lost is the 16 − rows empty lanes (10 rows: 6 of 16).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL; `A` has at most 16 rows and `K` columns; `B`
/// has row stride 1 and `K` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes_avx512<const K: usize>(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    use std::arch::x86_64::*;
    let (rows, n) = (a.nrows(), b.ncols());
    assert!(rows <= LANES && a.ncols() == K && b.nrows() == K, "rows in lanes");
    let row_mask = ((1u32 << rows) - 1) as __mmask16;
    // Row r's offset from row 0 for a gather of one column (rows ≤ 16) when `A`'s columns are
    // not contiguous and the offsets fit in i32.
    let rs = a.row_stride();
    let gather_offsets = (rs != 1 && rs.unsigned_abs() * LANES <= i32::MAX as usize / 4).then(|| {
        let lanes: [i32; LANES] = std::array::from_fn(|r| (r as isize * rs) as i32);
        // SAFETY: `lanes` holds 16 i32s.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    });
    let w: [__m512; K] = std::array::from_fn(|p| {
        let column = a.as_ptr().wrapping_offset(p as isize * a.col_stride());
        if rs == 1 {
            // SAFETY: column p's `rows` values are contiguous and in the view; the other lanes
            // are masked off and not read.
            unsafe { _mm512_maskz_loadu_ps(row_mask, column) }
        } else if let Some(offsets) = gather_offsets {
            // SAFETY: lane r < rows reads A[r, p], an element of the view; the other lanes are
            // masked off and not read. (Rows contiguous, as the transposed prototypes `Ξᵀ`: the
            // scalar path below took 0.1 µs of a 0.7 µs (10 × 10)·(10 × 256) product.)
            unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), row_mask, offsets, column) }
        } else {
            let lanes: [f32; LANES] = std::array::from_fn(|r| if r < rows { a.get_raw(r, p) } else { 0.0 });
            // SAFETY: `lanes` holds 16 f32s.
            unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
        }
    });
    let alpha_v = _mm512_set1_ps(alpha);
    let column_contiguous = c.row_stride() == 1;
    let ldc = c.col_stride();
    for j in (0..n).step_by(LANE_COLUMNS) {
        let valid = (n - j).min(LANE_COLUMNS);
        let cols = pass_columns::<LANE_COLUMNS>(b, j, valid);
        // Column j + t of `C` (t < valid); its rows are contiguous where `column_contiguous`.
        // One pointer per pass instead of a bounds-checked index per column (no change in time
        // measured; simpler code for the reads and the stores below).
        let first = c.as_ptr_mut().wrapping_offset(j as isize * ldc);
        let column = |t: usize| first.wrapping_offset(t as isize * ldc);
        // `C`'s columns to add to, read before this pass's multiply-adds: read after the
        // previous column's masked store (its 64 bytes overlap this column's first values when
        // `C`'s columns are 10 apart), a load waits for that store to leave the store buffer
        // (the add path took 1.42 µs for (10 × 10)·(10 × 256) where replacing took 0.50; now
        // 0.58: docs/performance.md, round 17).
        let mut before = [_mm512_setzero_ps(); LANE_COLUMNS];
        if column_contiguous && accum == Accum::Add {
            for (t, slot) in before.iter_mut().enumerate().take(valid) {
                // SAFETY: rows 0..rows of column j + t < n are in the view and contiguous.
                *slot = unsafe { _mm512_maskz_loadu_ps(row_mask, column(t)) };
            }
        }
        let mut acc = [_mm512_setzero_ps(); LANE_COLUMNS];
        for (p, w) in w.iter().enumerate() {
            for t in 0..LANE_COLUMNS {
                // SAFETY: each column holds K values.
                acc[t] = _mm512_fmadd_ps(*w, _mm512_set1_ps(unsafe { *cols[t].add(p) }), acc[t]);
            }
        }
        if column_contiguous {
            for t in 0..valid {
                let out = match accum {
                    Accum::Replace => _mm512_mul_ps(alpha_v, acc[t]),
                    Accum::Add => _mm512_fmadd_ps(alpha_v, acc[t], before[t]),
                };
                // SAFETY: as above.
                unsafe { _mm512_mask_storeu_ps(column(t), row_mask, out) };
            }
        } else {
            for (t, acc) in acc.iter().enumerate().take(valid) {
                let mut sums = [0.0f32; LANES];
                // SAFETY: `sums` has 16 f32s.
                unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), *acc) };
                for (i, &s) in sums[..rows].iter().enumerate() {
                    store(c.get_mut_internal(i, j + t), s, accum, alpha);
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
    use super::{aligned, group_shape, pack_groups_by, sum_quads, Packing, LANES};
    use crate::{Mat, MatRef};

    /// The ways of packing `A` (loads of contiguous rows, `Fastest` on the transposed view;
    /// masked loads of contiguous columns and permutes, `Fastest` on the column-major view for
    /// `g` = 4 and 8; a gather; scalar reads: the path for strides beyond i32 offsets, which no
    /// test could otherwise reach) give the same vectors, and those are the documented layout:
    /// lane `g·i + e` of vector (q, u) is `A[(16/g)·u + i, g·q + e]`, zero past the last row or
    /// `k`.
    #[test]
    fn every_packing_path_gives_the_documented_layout() {
        if !std::arch::is_x86_feature_detected!("avx512f") || !std::arch::is_x86_feature_detected!("avx512vl") {
            return;
        }
        for rows in 1..=12 {
            for k in [16usize, 17, 33, 50, 100] {
                let (g, v) = group_shape(rows);
                let groups = k.div_ceil(g);
                let m = Mat::from_fn(rows + 3, k + 2, |i, j| (i * 1000 + j) as f32 + 0.5);
                let mt = m.transpose();
                // Column-major, rows contiguous (a transposed view), both as sub-matrices.
                let views = [
                    MatRef::from(&m).submatrix(1, 2, rows, k),
                    MatRef::from(&mt).t().submatrix(1, 2, rows, k),
                ];
                for (layout, a) in views.into_iter().enumerate() {
                    let want: Vec<f32> = (0..groups * v * LANES)
                        .map(|index| {
                            let (vector, lane) = (index / LANES, index % LANES);
                            let (q, u) = (vector / v, vector % v);
                            let (i, e) = (lane / g, lane % g);
                            let (r, p) = ((LANES / g) * u + i, g * q + e);
                            if r < rows && p < k {
                                a.get(r, p)
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    for how in [Packing::Fastest, Packing::Gather, Packing::Scalar] {
                        let mut buffer = vec![f32::NAN; want.len() + LANES];
                        let packed = aligned(&mut buffer, want.len());
                        // SAFETY: AVX-512F and VL checked; `packed` is aligned and holds the vectors.
                        unsafe { pack_groups_by(a, packed, g, v, how) };
                        let same = packed.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "rows={rows} k={k} layout={layout} {how:?}");
                    }
                }
            }
        }
    }

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
