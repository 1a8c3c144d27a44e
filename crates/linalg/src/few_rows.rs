//! The f32 kernel for the last few rows of a product, where faer's smallest tile wastes most of
//! its time.
//!
//! faer covers the rows of `C` with tiles of 96 rows and finishes with a 16-row tile whose four
//! accumulator chains wait on each FMA's latency: on (m × 784)·(784 × 256) it takes the same
//! 58 µs for m = 4, 10 or 16 rows, a 100-row product (96 + 4) costs 284 µs where 96 rows cost
//! 211, and a hidden layer's (100 × 100)·(100 × 256) 36.6 µs where 96 rows cost 27.4
//! (`cargo bench -p insitu-linalg --bench matmul`). FFzero's layers have 100, 50 and 10 rows.
//! This kernel computes up to [`MAX_ROWS`] rows itself: as dot products along `k` when `B`'s
//! columns are contiguous (a forward product `W·x`: tiles of 4 rows × 4 columns, 16 FMA chains,
//! their sums formed together by a shuffle tree), or as rank-one updates of 32 columns at a
//! time when `B`'s rows are contiguous (a weight gradient `dZ·Xᵀ`); see [`applies`] for when
//! each pays.
//!
//! Each element is `Σ_k` in a fixed order (16 lanes in `k` order with fused multiply-adds, the
//! last `k % 16` values as a zero-padded chunk, then a fixed tree over the lanes), independent
//! of the thread count and of `C`'s layout. AVX-512 only: without it faer computes all rows (as
//! it picks its own kernels by instruction set, products were never bitwise equal across
//! instruction sets).
//!
//! **Results changed in their last bits** in commit fe7d0b2, when the dot-product
//! kernel got its tiles and took over the leftover rows of products with `16 ≤ k < 256` (the
//! hidden layers' `k = 100`), which faer computed before.

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
/// how: `1 ≤ rows ≤ MAX_ROWS`, AVX-512F and VL (elsewhere faer does all rows), and `B` either
/// column-contiguous with `k ≥ 16`, or row-contiguous with `n ≥ 64`, `rows ≤ 8` and at least 96
/// rows for faer. Measured with `cargo bench -p insitu-linalg --bench matmul`: the column
/// kernel takes (4 × 100)·(100 × 256) in 2.4–3.1 µs where faer takes 8.3, and
/// (10 × 784)·(784 × 256) in 34 µs where faer takes 55; the row kernel takes
/// (m × 256)·(256 × 784) in 257–310 µs for m = 97…104 where faer alone takes 325–335, but is
/// 3–7 % slower than faer for m = 10, 50 and 106…108.
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
        // Columns: row-major `rows × k` with rows `ld` apart and 64-byte aligned (a load that
        // straddles two cache lines costs two); Rows: `k × rows` (the rows' values at one `p`
        // together).
        let ld = k.next_multiple_of(LANES);
        if packed.len() < rows * ld + LANES {
            packed.resize(rows * ld + LANES, 0.0);
        }
        if layout == Layout::Columns {
            let offset = (LANES - (packed.as_ptr() as usize / 4) % LANES) % LANES;
            let aligned = &mut packed[offset..offset + rows * ld];
            // SAFETY: `applies` checked AVX-512F.
            unsafe { pack_rows_avx512(a, aligned, ld) };
            // SAFETY: `applies` checked AVX-512F/VL and the layout; `aligned` is rows × ld.
            unsafe { few_rows_avx512(c, accum, aligned, ld, rows, b, alpha) };
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

/// `packed ← A` as `rows × k`, row-major with rows `ld` apart: 16 values of a row per gather (a scalar copy read
/// `A`'s columns across and cost 4 µs of a 45 µs (10 × 784)·(784 × 256) product).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_rows_avx512(a: MatRef<'_, f32>, packed: &mut [f32], ld: usize) {
    use std::arch::x86_64::*;
    let (rows, k) = (a.nrows(), a.ncols());
    assert!(ld >= k && packed.len() >= rows * ld, "packed rows");
    let (rs, cs) = (a.row_stride(), a.col_stride());
    // Offsets of 16 consecutive columns, in elements; a gather takes i32 offsets.
    let span = cs.unsigned_abs() * LANES;
    if span > i32::MAX as usize / 4 {
        for r in 0..rows {
            for p in 0..k {
                packed[r * ld + p] = a.get_raw(r, p);
            }
        }
        return;
    }
    let offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(cs as i32),
    );
    let (chunks, tail) = (k / LANES, k % LANES);
    for r in 0..rows {
        let out = &mut packed[r * ld..r * ld + k];
        for q in 0..=chunks {
            let (mask, at) = if q < chunks {
                (0xFFFF, q * LANES)
            } else if tail > 0 {
                (((1u32 << tail) - 1) as __mmask16, q * LANES)
            } else {
                break;
            };
            // SAFETY: element (r, at + lane) is in the view for every lane the mask keeps;
            // masked-off lanes are not read; `out` has `at + tail` (or `at + 16`) values.
            unsafe {
                let base = a.as_ptr().wrapping_offset(r as isize * rs + at as isize * cs);
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base);
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), mask, v);
            }
        }
    }
}

/// The kernel for `B` with contiguous columns: dot products along `k`. Columns go in groups
/// of [`GROUP`]; inside a group, rows go in tiles of up to 4, so a tile keeps up to 16
/// accumulators of 16 lanes, and the group's columns of `B` are read from memory once and from
/// L1 for the other tiles. The `k % 16` last values are one masked chunk. Then
/// [`sum_lanes_of_16`] turns the tile's accumulators into its sums with 30 shuffles and 15
/// additions (a store and 15 dependent scalar additions per sum took as long as the products at
/// `k = 100`), and a column's sums go to `C` as one masked store when `C`'s rows are contiguous.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL (see [`applies`]); `a` holds `rows` rows of
/// `k` values, `ld ≥ k` apart; `B` has row stride 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn few_rows_avx512(
    mut c: MatMut<'_, f32>,
    accum: Accum,
    a: &[f32],
    ld: usize,
    rows: usize,
    b: MatRef<'_, f32>,
    alpha: f32,
) {
    let (k, n) = (b.nrows(), b.ncols());
    assert!(ld >= k && a.len() >= rows * ld, "packed rows");
    for j in (0..n).step_by(GROUP) {
        let tile = Tile {
            a,
            ld,
            k,
            b,
            j,
            valid: (n - j).min(GROUP),
            accum,
            alpha,
        };
        let mut r0 = 0;
        while r0 < rows {
            // SAFETY: AVX-512F/VL as this function; the tile's rows and columns are in bounds.
            r0 += unsafe {
                match rows - r0 {
                    1 => tile.run::<1>(&mut c, r0),
                    2 => tile.run::<2>(&mut c, r0),
                    3 => tile.run::<3>(&mut c, r0),
                    _ => tile.run::<4>(&mut c, r0),
                }
            };
        }
    }
    std::arch::x86_64::_mm256_zeroupper();
}

/// Columns of `C` per group in [`few_rows_avx512`].
const GROUP: usize = 4;

/// One group of [`few_rows_avx512`]: columns `j..j + valid` (`valid ≤ GROUP`).
#[cfg(target_arch = "x86_64")]
struct Tile<'a, 'b> {
    a: &'a [f32],
    ld: usize,
    k: usize,
    b: MatRef<'b, f32>,
    j: usize,
    valid: usize,
    accum: Accum,
    alpha: f32,
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_, '_> {
    /// Rows `r0..r0 + TR` of `C` in the group's columns (a short group repeats its last column
    /// in the unused slots and stores only its own); returns `TR`.
    ///
    /// # Safety
    /// AVX-512F and AVX-512VL; `r0 + TR ≤ rows`, `TR ≤ 4`.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn run<const TR: usize>(&self, c: &mut MatMut<'_, f32>, r0: usize) -> usize {
        use std::arch::x86_64::*;
        let k = self.k;
        let (chunks, tail) = (k / LANES, k % LANES);
        let tail_mask = ((1u32 << tail) - 1) as __mmask16;
        let mut rows = [std::ptr::null::<f32>(); TR];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = self.a[(r0 + r) * self.ld..].as_ptr();
        }
        let mut cols = [std::ptr::null::<f32>(); GROUP];
        for (t, col) in cols.iter_mut().enumerate() {
            *col = self.b.column_slice(self.j + t.min(self.valid - 1)).as_ptr();
        }
        let mut acc = [[_mm512_setzero_ps(); GROUP]; TR];
        let mut x = [_mm512_setzero_ps(); GROUP];
        // SAFETY (loads): q·16 + 16 ≤ k for each full chunk of a packed row (k values from
        // `rows[r]`) and of a column (length k); the tail's masked loads touch only the `tail`
        // values that remain.
        for q in 0..chunks {
            for t in 0..GROUP {
                x[t] = unsafe { _mm512_loadu_ps(cols[t].add(q * LANES)) };
            }
            for r in 0..TR {
                let w = unsafe { _mm512_loadu_ps(rows[r].add(q * LANES)) };
                for t in 0..GROUP {
                    acc[r][t] = _mm512_fmadd_ps(w, x[t], acc[r][t]);
                }
            }
        }
        if tail > 0 {
            let at = chunks * LANES;
            for t in 0..GROUP {
                x[t] = unsafe { _mm512_maskz_loadu_ps(tail_mask, cols[t].add(at)) };
            }
            for r in 0..TR {
                let w = unsafe { _mm512_maskz_loadu_ps(tail_mask, rows[r].add(at)) };
                for t in 0..GROUP {
                    acc[r][t] = _mm512_fmadd_ps(w, x[t], acc[r][t]);
                }
            }
        }
        // Accumulator (r, t) goes in as v[4r + t], so its sum lands at lane 4t + r: column t's
        // rows are lanes 4t.. of the result.
        let mut v = [_mm512_setzero_ps(); 16];
        for r in 0..TR {
            for t in 0..GROUP {
                v[4 * r + t] = acc[r][t];
            }
        }
        let mut sums = [0.0f32; LANES];
        // SAFETY: `sums` has 16 f32s.
        unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), sum_lanes_of_16(v)) };
        if c.row_stride() == 1 {
            let mask = ((1u32 << TR) - 1) as __mmask8;
            let alpha = _mm_set1_ps(self.alpha);
            for t in 0..self.valid {
                let slot: *mut f32 = c.get_mut_internal(r0, self.j + t);
                // SAFETY: rows r0..r0 + TR of this column are in the view and contiguous;
                // `sums` has 4t + 4 ≤ 16 values.
                unsafe {
                    let s = _mm_loadu_ps(sums.as_ptr().add(4 * t));
                    let out = match self.accum {
                        Accum::Replace => _mm_mul_ps(alpha, s),
                        Accum::Add => _mm_fmadd_ps(alpha, s, _mm_maskz_loadu_ps(mask, slot)),
                    };
                    _mm_mask_storeu_ps(slot, mask, out);
                }
            }
        } else {
            for t in 0..self.valid {
                for r in 0..TR {
                    store(
                        c.get_mut_internal(r0 + r, self.j + t),
                        sums[4 * t + r],
                        self.accum,
                        self.alpha,
                    );
                }
            }
        }
        TR
    }
}

/// The lane sums of 16 vectors in one vector: lane `4L + e` holds `Σ v[L + 4e]`. A fixed tree
/// (lanes `l` and `l + 8`, then `l` and `l + 4`, then `l` and `l + 2`, then `l` and `l + 1` of
/// each vector), so the result never depends on anything but the inputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sum_lanes_of_16(v: [std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // 16 → 8: 128-bit lanes 0–1 of w[i] hold v[2i]'s halves summed, lanes 2–3 v[2i + 1]'s.
    let mut w = [_mm512_setzero_ps(); 8];
    for (i, w) in w.iter_mut().enumerate() {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        *w = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b));
    }
    // 8 → 4: 128-bit lane L of x[i] holds four partial sums of v[4i + L].
    let mut x = [_mm512_setzero_ps(); 4];
    for (i, x) in x.iter_mut().enumerate() {
        let (a, b) = (w[2 * i], w[2 * i + 1]);
        *x = _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b));
    }
    // 4 → 2: in 128-bit lane L of y[i], two partial sums of v[8i + L], then two of v[8i + 4 + L].
    let mut y = [_mm512_setzero_ps(); 2];
    for (i, y) in y.iter_mut().enumerate() {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        *y = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b));
    }
    // 2 → 1: 128-bit lane L holds the sums of v[L], v[4 + L], v[8 + L], v[12 + L].
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(y[0], y[1]),
        _mm512_shuffle_ps::<0xDD>(y[0], y[1]),
    )
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
    use super::{sum_lanes_of_16, LANES};

    /// Lane `4L + e` of the result is the sum of vector `L + 4e`, and every vector's lanes are
    /// added in the same tree whatever its slot (so a tile's shape never changes a sum's bits).
    #[test]
    fn sum_lanes_of_16_puts_each_sum_where_the_kernel_reads_it() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        use std::arch::x86_64::*;
        // Values whose sums depend on the order of addition (different magnitudes).
        let value = |v: usize, l: usize| ((v * 37 + l * 11) % 29) as f32 * 10f32.powi((l % 5) as i32 - 2);
        let tree = |lanes: [f32; LANES]| {
            let h: Vec<f32> = (0..8).map(|l| lanes[l] + lanes[l + 8]).collect();
            let q: Vec<f32> = (0..4).map(|l| h[l] + h[l + 4]).collect();
            (q[0] + q[2]) + (q[1] + q[3])
        };
        let mut out = [0.0f32; LANES];
        // SAFETY: AVX-512F checked above; every pointer covers 16 f32s.
        unsafe {
            let mut v = [_mm512_setzero_ps(); 16];
            for (i, slot) in v.iter_mut().enumerate() {
                let lanes: [f32; LANES] = std::array::from_fn(|l| value(i, l));
                *slot = _mm512_loadu_ps(lanes.as_ptr());
            }
            _mm512_storeu_ps(out.as_mut_ptr(), sum_lanes_of_16(v));
        }
        for (position, &got) in out.iter().enumerate() {
            let vector = position / 4 + 4 * (position % 4);
            let want = tree(std::array::from_fn(|l| value(vector, l)));
            assert_eq!(got.to_bits(), want.to_bits(), "lane {position} (vector {vector})");
        }
    }
}
