//! Sparse columns (compressed sparse column storage) and the product of a dense matrix with a
//! selection of them, [`matmul_sparse`]: the first layer's `W·x` on image data, most of whose
//! pixels are exactly zero (MNIST: 19 % of the pixels of the first 50,000 training images are
//! non-zero).
//!
//! **Exact.** A zero entry of `x` contributes `A[i, k]·0 = 0` to a dense product, so skipping it
//! gives the dense product's value, computed in a different (fixed) order: each element of `C` is
//! one chain of fused multiply-adds over the column's non-zeros in increasing row order, starting
//! from `0` ([`Accum::Replace`]) or from `C`'s value ([`Accum::Add`]). The bits are therefore not
//! faer's (whose order depends on its blocking), but they are the same on every instruction set
//! (AVX-512, AVX2, scalar `f32::mul_add`, all correctly rounded fused operations) and for any
//! thread count. The one difference from a dense product: a non-finite `A[i, k]` meeting a zero
//! gives `NaN` densely and nothing here.

use rayon::prelude::*;

use crate::matmul::{Accum, MatMut, MatRef, Par};
use crate::meter::{self, Layout};

/// A `nrows × ncols` matrix stored by columns with only its non-zero entries (CSC): column `j`'s
/// entries are `rows[starts[j]..starts[j + 1]]` (strictly increasing) and the values beside them.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseColumns {
    nrows: usize,
    starts: Vec<usize>,
    rows: Vec<u32>,
    values: Vec<f32>,
}

impl SparseColumns {
    /// The non-zero entries of a dense matrix (`+0.0` and `−0.0` are dropped; a NaN is kept).
    ///
    /// # Panics
    /// If `m` has more than `u32::MAX` rows.
    pub fn from_dense(m: MatRef<'_, f32>) -> Self {
        Self::from_dense_if_sparse(m, 1.0, Par::Seq).expect("every matrix has density ≤ 1")
    }

    /// The non-zero entries of `m` if at most `max_density` of its entries are non-zero, else
    /// `None` (found by a counting pass, before anything is stored). Columns are converted in
    /// parallel blocks when `par` allows; the result is the same for any `par`.
    ///
    /// # Panics
    /// If `m` has more than `u32::MAX` rows.
    pub fn from_dense_if_sparse(m: MatRef<'_, f32>, max_density: f64, par: Par) -> Option<Self> {
        const BLOCK: usize = 512;
        let (nrows, ncols) = (m.nrows(), m.ncols());
        assert!(
            u32::try_from(nrows).is_ok(),
            "SparseColumns: {nrows} rows do not fit in u32"
        );
        // Column `j` copied out of a strided view (cold: contiguous columns are read in place).
        let column = |j: usize| -> Vec<f32> { (0..nrows).map(|i| m.get_raw(i, j)).collect() };
        let contiguous = m.row_stride() == 1;
        let count = |j: usize| -> usize {
            if contiguous {
                count_nonzeros(m.column_slice(j))
            } else {
                count_nonzeros(&column(j))
            }
        };
        let mut starts = vec![0usize; ncols + 1];
        starts[1..]
            .par_chunks_mut(BLOCK)
            .enumerate()
            .with_min_len(par.min_blocks_per_job())
            .for_each(|(b, out)| out.iter_mut().enumerate().for_each(|(i, o)| *o = count(b * BLOCK + i)));
        for j in 0..ncols {
            starts[j + 1] += starts[j];
        }
        let nnz = starts[ncols];
        if nrows * ncols > 0 && nnz as f64 > max_density * (nrows * ncols) as f64 {
            return None;
        }
        let (mut rows, mut values) = (vec![0u32; nnz], vec![0.0f32; nnz]);
        // Split the outputs at column-block boundaries so that blocks fill in parallel.
        let mut jobs = Vec::with_capacity(ncols.div_ceil(BLOCK));
        {
            let (mut rows_rest, mut values_rest) = (&mut rows[..], &mut values[..]);
            for b in 0..ncols.div_ceil(BLOCK) {
                let (j0, j1) = (b * BLOCK, ((b + 1) * BLOCK).min(ncols));
                let len = starts[j1] - starts[j0];
                let take = len;
                let (r, rr) = std::mem::take(&mut rows_rest).split_at_mut(take);
                let (v, vr) = std::mem::take(&mut values_rest).split_at_mut(take);
                rows_rest = rr;
                values_rest = vr;
                jobs.push((j0, j1, r, v));
            }
        }
        jobs.into_par_iter()
            .with_min_len(par.min_blocks_per_job())
            .for_each(|(j0, j1, r, v)| {
                let mut at = 0usize;
                for j in j0..j1 {
                    let owned;
                    let col: &[f32] = if contiguous {
                        m.column_slice(j)
                    } else {
                        owned = column(j);
                        &owned
                    };
                    at += compress_column(col, &mut r[at..], &mut v[at..]);
                }
            });
        Some(Self {
            nrows,
            starts,
            rows,
            values,
        })
    }

    /// Rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Columns.
    pub fn ncols(&self) -> usize {
        self.starts.len() - 1
    }

    /// Stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.rows.len()
    }

    /// Fraction of the entries that are stored (`0` for an empty matrix).
    pub fn density(&self) -> f64 {
        let total = self.nrows * self.ncols();
        if total == 0 {
            0.0
        } else {
            self.nnz() as f64 / total as f64
        }
    }

    /// Column `j`: its non-zero rows (increasing) and values.
    pub fn column(&self, j: usize) -> (&[u32], &[f32]) {
        let range = self.starts[j]..self.starts[j + 1];
        (&self.rows[range.clone()], &self.values[range])
    }

    /// A view of columns `start..start + len`.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn columns(&self, start: usize, len: usize) -> SparseRef<'_> {
        assert!(
            start + len <= self.ncols(),
            "SparseColumns::columns: {start}+{len} > {}",
            self.ncols()
        );
        SparseRef {
            matrix: self,
            selection: Selection::Range(start),
            len,
        }
    }

    /// A view of the columns `indices` (in that order, repeats allowed): a mini-batch of
    /// samples without copying them.
    ///
    /// # Panics
    /// If an index is out of bounds.
    pub fn select<'a>(&'a self, indices: &'a [usize]) -> SparseRef<'a> {
        if let Some(&bad) = indices.iter().find(|&&j| j >= self.ncols()) {
            panic!("SparseColumns::select: column {bad} of {}", self.ncols());
        }
        SparseRef {
            matrix: self,
            selection: Selection::Indices(indices),
            len: indices.len(),
        }
    }
}

/// Number of entries of `x` that are not `±0` (a NaN counts).
fn count_nonzeros(x: &[f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F checked.
        return unsafe { x86::count_nonzeros_avx512(x) };
    }
    x.iter().map(|&v| (v != 0.0) as usize).sum()
}

/// Writes the non-zero entries of column `x` to `rows` (their positions) and `values`; returns
/// how many entries. `rows` and `values` must have room for them.
fn compress_column(x: &[f32], rows: &mut [u32], values: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F checked.
        return unsafe { x86::compress_avx512(x, rows, values) };
    }
    compress_column_scalar(x, rows, values)
}

/// [`compress_column`] without vector instructions.
fn compress_column_scalar(x: &[f32], rows: &mut [u32], values: &mut [f32]) -> usize {
    let mut at = 0;
    for (i, &v) in x.iter().enumerate() {
        if v != 0.0 {
            rows[at] = i as u32;
            values[at] = v;
            at += 1;
        }
    }
    at
}

#[derive(Clone, Copy, Debug)]
enum Selection<'a> {
    Range(usize),
    Indices(&'a [usize]),
}

/// Some columns of a [`SparseColumns`], as the right operand of [`matmul_sparse`].
#[derive(Clone, Copy, Debug)]
pub struct SparseRef<'a> {
    matrix: &'a SparseColumns,
    selection: Selection<'a>,
    len: usize,
}

impl<'a> SparseRef<'a> {
    /// Rows (those of the underlying matrix).
    pub fn nrows(&self) -> usize {
        self.matrix.nrows
    }

    /// Columns in the view.
    pub fn ncols(&self) -> usize {
        self.len
    }

    /// The view's column `j`: non-zero rows and values.
    pub fn column(&self, j: usize) -> (&'a [u32], &'a [f32]) {
        assert!(j < self.len, "SparseRef::column: {j} of {}", self.len);
        let range = self.column_range(j);
        (&self.matrix.rows[range.clone()], &self.matrix.values[range])
    }

    /// Where the view's column `j` lies in the matrix's row and value arrays.
    fn column_range(&self, j: usize) -> std::ops::Range<usize> {
        let j = match self.selection {
            Selection::Range(start) => start + j,
            Selection::Indices(idx) => idx[j],
        };
        self.matrix.starts[j]..self.matrix.starts[j + 1]
    }

    /// Columns `start..start + len` of this view.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn subcolumns(&self, start: usize, len: usize) -> SparseRef<'a> {
        assert!(
            start + len <= self.len,
            "SparseRef::subcolumns: {start}+{len} > {}",
            self.len
        );
        let selection = match self.selection {
            Selection::Range(s) => Selection::Range(s + start),
            Selection::Indices(idx) => Selection::Indices(&idx[start..start + len]),
        };
        SparseRef {
            matrix: self.matrix,
            selection,
            len,
        }
    }

    /// Stored entries in the view.
    pub fn nnz(&self) -> usize {
        (0..self.len).map(|j| self.column(j).0.len()).sum()
    }
}

/// `C ← A·B` ([`Accum::Replace`]) or `C ← C + A·B` ([`Accum::Add`]) for a sparse `B`: the
/// sibling of [`crate::matmul`] for a right operand with mostly zero entries (module docs: exact,
/// and the order of each element's sum). Sequential: callers split the columns of `C` (each
/// column depends only on its own column of `B`, so any split gives the same bits).
///
/// Fast path (AVX-512 or AVX2 with FMA): `A` and `C` with contiguous columns (row stride 1);
/// elsewhere a scalar loop with the same operations in the same order.
///
/// # Panics
/// On inconsistent shapes (`A: m×k`, `B: k×n`, `C: m×n`), a programming error of the caller.
pub fn matmul_sparse(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: SparseRef<'_>) {
    let (m, n) = (c.nrows(), c.ncols());
    assert!(
        a.nrows() == m && a.ncols() == b.nrows() && b.ncols() == n,
        "matmul_sparse: C is {}×{}, A is {}×{}, B is {}×{}",
        m,
        n,
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    if m == 0 || n == 0 {
        return;
    }
    if meter::is_metering() {
        let k = b.nrows();
        let key = meter::ProductKey {
            element: "f32",
            shape: (m, k, n),
            layouts: [
                Layout::of(m, n, c.row_stride(), c.col_stride()),
                Layout::of(m, k, a.row_stride(), a.col_stride()),
                Layout::Sparse,
            ],
            flops: 2.0 * (m * b.nnz()) as f64,
            dense_flops: 2.0 * (m * k * n) as f64,
        };
        meter::record(key, || sparse_product(c, accum, a, b));
    } else {
        sparse_product(c, accum, a, b);
    }
}

/// [`matmul_sparse`] after its checks: the fastest path the CPU and the strides allow.
fn sparse_product(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: SparseRef<'_>) {
    #[cfg(target_arch = "x86_64")]
    if a.row_stride() == 1 && c.row_stride() == 1 {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F checked; A and C have contiguous columns; shapes checked above.
            unsafe { x86::sparse_avx512(c, accum, a, b) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA checked; as above.
            unsafe { x86::sparse_avx2(c, accum, a, b) };
            return;
        }
    }
    sparse_scalar(c, accum, a, b);
}

/// The reference loop: `C[i, j] = fma(A[i, k], v, C[i, j])` over column `j`'s non-zeros `(k, v)`.
fn sparse_scalar(mut c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: SparseRef<'_>) {
    for j in 0..c.ncols() {
        let (rows, values) = b.column(j);
        for i in 0..c.nrows() {
            let mut acc = match accum {
                Accum::Replace => 0.0,
                Accum::Add => *c.get_mut_internal(i, j),
            };
            for (&k, &v) in rows.iter().zip(values) {
                acc = a.get_raw(i, k as usize).mul_add(v, acc);
            }
            c.set_raw(i, j, acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::SparseRef;
    use crate::matmul::{Accum, MatMut, MatRef};

    /// Rows of `C` per pass: eight 16-lane accumulators (AVX-512), held in registers across a
    /// column's non-zeros.
    const PANEL_512: usize = 128;
    /// Rows per pass with AVX2: eight 8-lane accumulators.
    const PANEL_256: usize = 64;

    /// The mask of `x`'s lanes that are not `±0` (`NEQ_UQ`: a NaN is "not equal").
    #[target_feature(enable = "avx512f")]
    fn nonzero_mask(v: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps())
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn count_nonzeros_avx512(x: &[f32]) -> usize {
        let mut total = 0usize;
        let chunks = x.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            // SAFETY: 16 readable floats.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            total += nonzero_mask(v).count_ones() as usize;
        }
        total + rest.iter().map(|&v| (v != 0.0) as usize).sum::<usize>()
    }

    /// Returns the number of entries written. Panics if `rows` or `values` has no room for
    /// them.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn compress_avx512(x: &[f32], rows: &mut [u32], values: &mut [f32]) -> usize {
        let room = rows.len().min(values.len());
        let mut at = 0usize;
        let mut index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let step = _mm512_set1_epi32(16);
        for start in (0..x.len()).step_by(16) {
            let lanes = (x.len() - start).min(16);
            let load: __mmask16 = if lanes == 16 { 0xFFFF } else { (1u16 << lanes) - 1 };
            // SAFETY: `lanes` readable floats from `start`.
            let v = unsafe { _mm512_maskz_loadu_ps(load, x.as_ptr().add(start)) };
            let mask = nonzero_mask(v) & load;
            let count = mask.count_ones() as usize;
            assert!(at + count <= room, "compress_column: no room");
            // SAFETY: the compressed stores write exactly `count` entries from `at`, checked
            // to fit above.
            unsafe {
                _mm512_mask_compressstoreu_ps(values.as_mut_ptr().add(at), mask, v);
                _mm512_mask_compressstoreu_epi32(rows.as_mut_ptr().add(at) as *mut i32, mask, index);
            }
            at += count;
            index = _mm512_add_epi32(index, step);
        }
        at
    }

    thread_local! {
        /// `A` copied into 64-byte aligned columns, allocated on first use per thread and reused.
        static ALIGNED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        /// Per column of `B`, where its walk stands and where it ends (indices into the
        /// matrix's row and value arrays); allocated on first use per thread and reused.
        static CURSORS: std::cell::RefCell<Vec<(usize, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Bytes of `A` a block of its columns may take: most of a 48 KiB L1 data cache.
    const BLOCK_BYTES: usize = 48 * 1024;
    /// Up to this many vectors per panel, columns are walked two at a time.
    const PAIRED_VECTORS: usize = 2;
    /// Columns of `B` ahead whose next row and value lines are prefetched.
    const PREFETCH_AHEAD: usize = 8;

    /// Per panel of up to 128 rows of `C`, per block of `A`'s columns (rows of `B`) that fits
    /// in L1 ([`BLOCK_BYTES`]: 109 columns at 100 rows, 768 at 16), every column of `C` in
    /// turn (two at a time in lockstep up to [`PAIRED_VECTORS`] vectors, where one column's
    /// chain is latency-bound): its accumulators from `C` (or zero), one multiply-add of `A`'s column per
    /// non-zero of `B`'s column inside the block, in increasing row order (the walk resumes
    /// where the previous block left it), back to `C`. So each element is one chain over its
    /// column's non-zeros in increasing order (module docs), stored and reloaded unchanged
    /// between blocks.
    ///
    /// Why blocks: a column of `A` is 448 B at 100 rows and every non-zero reads one; without
    /// blocks they come from L2, whose ≈ 46 B per cycle on this machine bound a non-zero at
    /// ≈ 9.7 cycles (a scratch program over prebuilt lists, uniform random sparsity 0.19,
    /// `A` 100 × 784: 95 µs per 256 columns; the same with `A`'s reads confined to 8 columns
    /// 56 µs, the 5-cycle chain of a multiply-add per non-zero). Why prefetches: a batch's
    /// columns lie anywhere among 60,000 samples, and the hardware does not follow 256
    /// interleaved streams. Measured in session 14 on MNIST training batches (256 random
    /// samples of 60,000, two products per batch as an FF+DD step does, `A` copied to aligned
    /// columns in both; 1 thread, µs per product, this kernel against session 10's, which
    /// walked the union of two columns' bit sets over all of `A`): 10 rows 51–53 against
    /// 85–89, 20 rows 51 against 66, 50 rows 71–73 against 94, 100 rows 94–104 against
    /// 133–145, 128 rows 107–111 against 157–164; every result the same bits.
    ///
    /// # Safety
    /// AVX-512F; `a` and `c` have row stride 1 and the shapes [`super::matmul_sparse`] checked.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sparse_avx512(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: SparseRef<'_>) {
        let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
        let (cp, ldc) = (c.as_ptr_mut(), c.col_stride());
        let (ap, lda) = (a.as_ptr(), a.col_stride());
        if (!(ap as usize).is_multiple_of(64) || lda % 16 != 0) && n >= 16 {
            return ALIGNED_A.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                let ld = m.next_multiple_of(16);
                if buffer.len() < ld * k + 16 {
                    buffer.resize(ld * k + 16, 0.0);
                }
                let offset = (16 - (buffer.as_ptr() as usize / 4) % 16) % 16;
                let packed = &mut buffer[offset..offset + ld * k];
                for (p, kk) in packed.chunks_exact_mut(ld).zip(0..k) {
                    // SAFETY: column kk < k of A has m rows at stride 1.
                    let column = unsafe { std::slice::from_raw_parts(ap.offset(kk as isize * lda), m) };
                    p[..m].copy_from_slice(column);
                }
                let aligned = MatRef::from_col_major(packed, ld, k).submatrix(0, 0, m, k);
                // SAFETY: as for this call, with an aligned A.
                unsafe { sparse_avx512(c, accum, aligned, b) }
            });
        }
        CURSORS.with(|cursors| {
            let mut cursors = cursors.borrow_mut();
            let (rows_of_b, values_of_b) = (&b.matrix.rows[..], &b.matrix.values[..]);
            let mut r0 = 0;
            while r0 < m {
                let rows = (m - r0).min(PANEL_512);
                let vectors = rows.div_ceil(16);
                let tail = rows - 16 * (vectors - 1);
                let tail_mask: __mmask16 = if tail == 16 { 0xFFFF } else { (1u16 << tail) - 1 };
                cursors.clear();
                cursors.extend((0..n).map(|j| {
                    let range = b.column_range(j);
                    (range.start, range.end)
                }));
                let block = (BLOCK_BYTES / (64 * vectors)).max(1);
                let mut k0 = 0;
                while k0 < k {
                    let walk = Walk {
                        c: cp,
                        ldc,
                        a: ap,
                        lda,
                        r0,
                        tail_mask,
                        end_row: (k0 + block).min(k) as u32,
                        from_c: k0 > 0 || accum == Accum::Add,
                        rows: rows_of_b,
                        values: values_of_b,
                    };
                    macro_rules! dispatch {
                        ($($v:literal)*) => {
                            match vectors {
                                // SAFETY: `vectors` 16-lane vectors cover the panel's rows of
                                // C's columns and of every column of A (checked shapes); the
                                // cursors index the view's own columns.
                                $($v => unsafe { walk.columns::<$v>(&mut cursors) },)*
                                _ => unreachable!("a panel has 1..=8 vectors"),
                            }
                        };
                    }
                    dispatch!(1 2 3 4 5 6 7 8);
                    k0 += block;
                }
                r0 += rows;
            }
        });
        _mm256_zeroupper();
    }

    /// One block of [`sparse_avx512`]'s walk: the non-zeros of rows below `end_row` of every
    /// column, from where each column's cursor stands, for one panel of rows of `C`.
    struct Walk<'b> {
        c: *mut f32,
        ldc: isize,
        a: *const f32,
        lda: isize,
        r0: usize,
        tail_mask: __mmask16,
        end_row: u32,
        /// Start each column from `C` (a later block, or [`Accum::Add`]) rather than from 0.
        from_c: bool,
        rows: &'b [u32],
        values: &'b [f32],
    }

    impl Walk<'_> {
        /// # Safety
        /// AVX-512F; `V` vectors from row `r0` of every column of `C` and of every column
        /// of `A` a cursor reaches are valid (the last masked by `tail_mask`); each cursor
        /// `(at, end)` lies inside `rows` and `values`. The same for every method below.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn columns<const V: usize>(&self, cursors: &mut [(usize, usize)]) {
            let n = cursors.len();
            // With one or two vectors a column's chain (one multiply-add per vector and
            // non-zero, 5 cycles each) leaves the FMA pipes idle: two columns in lockstep
            // fill them (10 rows 50–54 µs per MNIST product against 62, 20 rows 49–52
            // against 65; no gain at 50 rows).
            let paired = if V <= PAIRED_VECTORS { n / 2 * 2 } else { 0 };
            for j in (0..paired).step_by(2) {
                // SAFETY: as this function's.
                unsafe {
                    self.prefetch(cursors, j);
                    self.prefetch(cursors, j + 1);
                    let mut acc = [self.start::<V>(j), self.start::<V>(j + 1)];
                    let mut at = [cursors[j].0, cursors[j + 1].0];
                    let end = [cursors[j].1, cursors[j + 1].1];
                    while self.inside(at[0], end[0]) && self.inside(at[1], end[1]) {
                        let [first, second] = &mut acc;
                        self.multiply_add(first, at[0]);
                        self.multiply_add(second, at[1]);
                        at[0] += 1;
                        at[1] += 1;
                    }
                    self.finish(cursors, j, &mut acc[0], at[0]);
                    self.finish(cursors, j + 1, &mut acc[1], at[1]);
                }
            }
            for j in paired..n {
                // SAFETY: as this function's.
                unsafe {
                    self.prefetch(cursors, j);
                    let mut acc = self.start::<V>(j);
                    self.finish(cursors, j, &mut acc, cursors[j].0);
                }
            }
        }

        /// The lane mask of vector `v` of `V`.
        fn mask<const V: usize>(&self, v: usize) -> __mmask16 {
            if v + 1 == V {
                self.tail_mask
            } else {
                0xFFFF
            }
        }

        /// Rows `r0..` of column `j` of `C`.
        fn out(&self, j: usize) -> *mut f32 {
            self.c.wrapping_offset(j as isize * self.ldc).wrapping_add(self.r0)
        }

        /// Column `j`'s accumulators at the start of the block: `C`'s values or zero.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn start<const V: usize>(&self, j: usize) -> [__m512; V] {
            let out = self.out(j);
            std::array::from_fn(|v| {
                if self.from_c {
                    // SAFETY: as [`Walk::columns`].
                    unsafe { _mm512_maskz_loadu_ps(self.mask::<V>(v), out.add(16 * v)) }
                } else {
                    _mm512_setzero_ps()
                }
            })
        }

        /// Whether entry `at` of a column ending at `end` belongs to this block.
        #[inline]
        fn inside(&self, at: usize, end: usize) -> bool {
            at < end && self.rows[at] < self.end_row
        }

        /// `acc += A[r0.., row] · value` for entry `at`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn multiply_add<const V: usize>(&self, acc: &mut [__m512; V], at: usize) {
            // SAFETY: `at` lies inside the arrays and its row is a column of A ([`Walk::columns`]).
            unsafe {
                let row = *self.rows.get_unchecked(at) as isize;
                let x = _mm512_set1_ps(*self.values.get_unchecked(at));
                let column = self.a.offset(row * self.lda).add(self.r0);
                for (v, slot) in acc.iter_mut().enumerate() {
                    let a = _mm512_maskz_loadu_ps(self.mask::<V>(v), column.add(16 * v));
                    *slot = _mm512_fmadd_ps(a, x, *slot);
                }
            }
        }

        /// Column `j`'s remaining entries of this block from `at`; its cursor left after them
        /// and its accumulators stored to `C`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn finish<const V: usize>(
            &self,
            cursors: &mut [(usize, usize)],
            j: usize,
            acc: &mut [__m512; V],
            mut at: usize,
        ) {
            while self.inside(at, cursors[j].1) {
                // SAFETY: as [`Walk::columns`].
                unsafe { self.multiply_add(acc, at) };
                at += 1;
            }
            cursors[j].0 = at;
            let out = self.out(j);
            for (v, slot) in acc.iter().enumerate() {
                // SAFETY: as [`Walk::columns`].
                unsafe { _mm512_mask_storeu_ps(out.add(16 * v), self.mask::<V>(v), *slot) };
            }
        }

        /// Prefetches the next row and value lines of the column [`PREFETCH_AHEAD`] after
        /// `j`. Prefetches never fault; `wrapping_add` keeps the addresses' arithmetic
        /// defined past the arrays' ends.
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn prefetch(&self, cursors: &[(usize, usize)], j: usize) {
            if let Some(&(at, _)) = cursors.get(j + PREFETCH_AHEAD) {
                for ahead in [0, 16] {
                    _mm_prefetch::<_MM_HINT_T0>(self.rows.as_ptr().wrapping_add(at + ahead) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(self.values.as_ptr().wrapping_add(at + ahead) as *const i8);
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA; `a` and `c` have row stride 1 and the shapes [`super::matmul_sparse`]
    /// checked.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sparse_avx2(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: SparseRef<'_>) {
        unsafe {
            let (m, n) = (c.nrows(), c.ncols());
            let (cp, ldc) = (c.as_ptr_mut(), c.col_stride());
            let (ap, lda) = (a.as_ptr(), a.col_stride());
            let mut r0 = 0;
            while r0 < m {
                let rows = (m - r0).min(PANEL_256);
                let vectors = rows / 8;
                let rest = rows - 8 * vectors;
                for j in 0..n {
                    let (krows, values) = b.column(j);
                    // SAFETY: as in `sparse_avx512`.
                    let cj = cp.offset(j as isize * ldc).add(r0);
                    let mut acc = [_mm256_setzero_ps(); 8];
                    let mut tail = [0.0f32; 8];
                    if accum == Accum::Add {
                        for (v, slot) in acc.iter_mut().enumerate().take(vectors) {
                            *slot = _mm256_loadu_ps(cj.add(8 * v));
                        }
                        for (r, t) in tail.iter_mut().enumerate().take(rest) {
                            *t = *cj.add(8 * vectors + r);
                        }
                    }
                    for (&k, &x) in krows.iter().zip(values) {
                        let ak = ap.offset(k as isize * lda).add(r0);
                        let xv = _mm256_set1_ps(x);
                        for (v, slot) in acc.iter_mut().enumerate().take(vectors) {
                            *slot = _mm256_fmadd_ps(_mm256_loadu_ps(ak.add(8 * v)), xv, *slot);
                        }
                        for (r, t) in tail.iter_mut().enumerate().take(rest) {
                            *t = (*ak.add(8 * vectors + r)).mul_add(x, *t);
                        }
                    }
                    for (v, slot) in acc.iter().enumerate().take(vectors) {
                        _mm256_storeu_ps(cj.add(8 * v), *slot);
                    }
                    for (r, t) in tail.iter().enumerate().take(rest) {
                        *cj.add(8 * vectors + r) = *t;
                    }
                }
                r0 += rows;
            }
            _mm256_zeroupper();
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::{matmul_reference, rng, Mat};

    /// A random `r × c` matrix with about `density` of its entries non-zero.
    fn sparse_random(r: usize, c: usize, density: f64, seed: u64) -> Mat {
        let mut g = rng(seed);
        Mat::from_fn(r, c, |_, _| {
            if g.random::<f64>() < density {
                g.random_range(-1.0..1.0)
            } else {
                0.0
            }
        })
    }

    fn dense_random(r: usize, c: usize, seed: u64) -> Mat {
        let mut g = rng(seed);
        Mat::from_fn(r, c, |_, _| g.random_range(-1.0..1.0))
    }

    #[test]
    fn storage_round_trips_and_counts() {
        let d = sparse_random(37, 11, 0.3, 1);
        let s = SparseColumns::from_dense(MatRef::from(&d));
        assert_eq!((s.nrows(), s.ncols()), (37, 11));
        let mut back = Mat::zeros(37, 11);
        for j in 0..11 {
            let (rows, values) = s.column(j);
            assert!(rows.windows(2).all(|w| w[0] < w[1]));
            for (&i, &v) in rows.iter().zip(values) {
                back[(i as usize, j)] = v;
            }
        }
        assert_eq!(back, d);
        assert_eq!(s.nnz(), d.iter().filter(|v| **v != 0.0).count());
        assert!((s.density() - s.nnz() as f64 / (37.0 * 11.0)).abs() < 1e-15);
        let idx = [3usize, 3, 0, 10];
        let sel = s.select(&idx);
        assert_eq!(sel.column(1), s.column(3));
        assert_eq!(sel.subcolumns(2, 2).column(1), s.column(10));
        assert_eq!(s.columns(4, 5).subcolumns(1, 2).column(0), s.column(5));
        assert_eq!(
            sel.nnz(),
            2 * s.column(3).0.len() + s.column(0).0.len() + s.column(10).0.len()
        );
    }

    /// The blocked, parallel conversion equals a plain scan, for contiguous and strided views,
    /// and refuses a matrix denser than asked.
    #[test]
    fn conversion_is_the_same_for_any_split_and_layout() {
        let d = sparse_random(70, 1300, 0.2, 11);
        let plain = {
            let mut starts = vec![0];
            let (mut rows, mut values) = (vec![], vec![]);
            for j in 0..d.ncols() {
                for i in 0..d.nrows() {
                    if d[(i, j)] != 0.0 {
                        rows.push(i as u32);
                        values.push(d[(i, j)]);
                    }
                }
                starts.push(rows.len());
            }
            (starts, rows, values)
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let par = pool
            .install(|| SparseColumns::from_dense_if_sparse(MatRef::from(&d), 0.3, Par::of_current_pool()).unwrap());
        let transposed = d.transpose();
        let strided = SparseColumns::from_dense(MatRef::from(&transposed).t());
        for s in [&par, &strided] {
            assert_eq!((&s.starts, &s.rows, &s.values), (&plain.0, &plain.1, &plain.2));
        }
        assert_eq!(par, strided);
        assert!(SparseColumns::from_dense_if_sparse(MatRef::from(&d), 0.1, Par::Seq).is_none());
    }

    /// Against the f64 reference product across many shapes and densities (rows across the
    /// panel and vector boundaries, both accumulation modes, selections with repeats).
    #[test]
    fn matches_the_dense_reference_across_shapes() {
        let mut g = rng(7);
        for m in [1usize, 3, 8, 15, 16, 17, 31, 50, 64, 65, 100, 127, 128, 129, 200, 257] {
            for &(k, density) in &[(1usize, 1.0), (9, 0.5), (64, 0.2), (784, 0.19), (300, 0.0), (100, 1.0)] {
                let n = g.random_range(1..20);
                let a = dense_random(m, k, m as u64 * 31 + k as u64);
                let x = sparse_random(k, 2 * n + 3, density, k as u64 + 5);
                let s = SparseColumns::from_dense(MatRef::from(&x));
                let idx: Vec<usize> = (0..n).map(|_| g.random_range(0..x.ncols())).collect();
                let xb = Mat::from_fn(k, n, |i, j| x[(i, idx[j])]);
                for accum in [Accum::Replace, Accum::Add] {
                    let c0 = dense_random(m, n, 99);
                    let mut c = c0.clone();
                    matmul_sparse(MatMut::from(&mut c), accum, MatRef::from(&a), s.select(&idx));
                    let mut want = Mat::zeros(m, n);
                    matmul_reference(
                        MatMut::from(&mut want),
                        Accum::Replace,
                        MatRef::from(&a),
                        MatRef::from(&xb),
                        1.0,
                    );
                    if accum == Accum::Add {
                        want += &c0;
                    }
                    let scale = 1.0 + k as f32;
                    for (got, want) in c.iter().zip(want.iter()) {
                        assert!(
                            (got - want).abs() <= 4.0 * f32::EPSILON * scale,
                            "m {m} k {k} density {density} {accum:?}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Every path computes each element as the same chain of fused multiply-adds, so the vector
    /// kernels equal the scalar loop bit for bit (and a strided `C` takes the scalar loop).
    #[test]
    fn vector_paths_equal_the_scalar_loop_bitwise() {
        for m in [5usize, 16, 100, 130] {
            let a = dense_random(m, 200, 3);
            let x = sparse_random(200, 40, 0.25, 4);
            let s = SparseColumns::from_dense(MatRef::from(&x));
            for accum in [Accum::Replace, Accum::Add] {
                let mut fast = dense_random(m, 40, 8);
                let mut slow = fast.clone();
                matmul_sparse(MatMut::from(&mut fast), accum, MatRef::from(&a), s.columns(0, 40));
                sparse_scalar(MatMut::from(&mut slow), accum, MatRef::from(&a), s.columns(0, 40));
                assert_eq!(fast, slow, "m {m} {accum:?}");
                // a transposed (strided) C goes through the scalar loop: same bits again
                let mut t = Mat::zeros(40, m);
                if accum == Accum::Add {
                    t = dense_random(m, 40, 8).transpose();
                }
                matmul_sparse(MatMut::from(&mut t).t(), accum, MatRef::from(&a), s.columns(0, 40));
                assert_eq!(t.transpose(), fast, "m {m} {accum:?} strided");
            }
        }
    }

    /// The AVX2 kernel and the AVX-512 compression (taken or not by the dispatch, depending on
    /// the CPU) against the scalar paths, bit for bit, where the CPU has them.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn every_instruction_set_path_equals_the_scalar_one() {
        let a = dense_random(77, 150, 1);
        let x = sparse_random(150, 33, 0.3, 2);
        let s = SparseColumns::from_dense(MatRef::from(&x));
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            for accum in [Accum::Replace, Accum::Add] {
                let mut fast = dense_random(77, 33, 3);
                let mut slow = fast.clone();
                // SAFETY: AVX2 and FMA checked; contiguous columns.
                unsafe { x86::sparse_avx2(MatMut::from(&mut fast), accum, MatRef::from(&a), s.columns(0, 33)) };
                sparse_scalar(MatMut::from(&mut slow), accum, MatRef::from(&a), s.columns(0, 33));
                assert_eq!(fast, slow, "{accum:?}");
            }
        }
        let mut column: Vec<f32> = sparse_random(200, 1, 0.4, 4).iter().copied().collect();
        column[7] = f32::NAN;
        column[8] = -0.0;
        let (mut r1, mut v1) = (vec![0u32; 200], vec![0.0f32; 200]);
        let (mut r2, mut v2) = (r1.clone(), v1.clone());
        let n1 = compress_column(&column, &mut r1, &mut v1);
        let n2 = compress_column_scalar(&column, &mut r2, &mut v2);
        assert_eq!(n1, n2);
        assert_eq!(n1, column.iter().filter(|v| **v != 0.0).count());
        assert_eq!(&r1[..n1], &r2[..n2]);
        assert_eq!(format!("{:?}", &v1[..n1]), format!("{:?}", &v2[..n2]));
        assert_eq!(count_nonzeros(&column), n2);
    }

    /// The AVX-512 kernel walks `A`'s columns in blocks and each column of `B` resumes where
    /// the previous block left it: every element must still be its own column's one chain,
    /// bit for bit with the scalar loop, skipping its zeros (an infinite `A[i, k]` against a
    /// zero stays out, a `−0` in `C` stays `−0`), for columns empty in some blocks or in all,
    /// columns whose non-zeros sit on a block's first or last row, repeated columns, both
    /// accumulation modes, and row counts that give 1 to 8 vectors per panel and two panels.
    #[test]
    fn blocked_walk_keeps_each_columns_chain() {
        let k = 2000usize;
        for m in [1usize, 16, 30, 37, 100, 128, 200] {
            let mut a = dense_random(m, k, 5 + m as u64);
            a[(0, 20)] = f32::INFINITY;
            a[(m - 1, 1500)] = f32::NEG_INFINITY;
            // Column 0 meets both infinities; column 1 is column 0 without them; column 2 is
            // empty; column 3 has one non-zero at each multiple of 96 and the row before it
            // (block boundaries for every row count here), column 4 non-zeros in its last
            // rows only.
            let mut x = sparse_random(k, 5, 0.2, 6);
            x[(20, 0)] = 0.5;
            x[(1500, 0)] = 0.25;
            let column0: Vec<f32> = x.column(0).iter().copied().collect();
            x.column_mut(1).copy_from_slice(&column0);
            x[(20, 1)] = 0.0;
            x[(1500, 1)] = 0.0;
            x.column_mut(2).fill(0.0);
            x.column_mut(3).fill(0.0);
            for r in (96..k).step_by(96) {
                x[(r - 1, 3)] = 1.5;
                x[(r, 3)] = -0.75;
            }
            x.column_mut(4).fill(0.0);
            x[(k - 2, 4)] = 2.0;
            x[(k - 1, 4)] = 3.0;
            let s = SparseColumns::from_dense(MatRef::from(&x));
            let bits = |c: &Mat| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            // 16 columns or more take the kernel with A copied to aligned columns; fewer, A in place.
            let long: Vec<usize> = (0..20).map(|j| [0, 1, 2, 3, 4, 1, 3][j % 7]).collect();
            for idx in [vec![0usize, 1, 2, 3, 4], vec![2, 2, 1], vec![4, 3, 4], long] {
                for accum in [Accum::Replace, Accum::Add] {
                    let n = idx.len();
                    let mut fast = Mat::from_element(m, n, -0.0);
                    let mut slow = fast.clone();
                    matmul_sparse(MatMut::from(&mut fast), accum, MatRef::from(&a), s.select(&idx));
                    sparse_scalar(MatMut::from(&mut slow), accum, MatRef::from(&a), s.select(&idx));
                    assert_eq!(bits(&fast), bits(&slow), "m {m} {idx:?} {accum:?}");
                    for (j, &col) in idx.iter().enumerate() {
                        let finite = fast.column(j).iter().all(|v| v.is_finite());
                        assert_eq!(finite, col != 0, "m {m} {idx:?} {accum:?} column {j}");
                        if col == 2 {
                            let want = if accum == Accum::Add { (-0.0f32).to_bits() } else { 0 };
                            assert!(
                                fast.column(j).iter().all(|v| v.to_bits() == want),
                                "m {m} {idx:?} {accum:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zeros_are_skipped_and_nan_is_kept() {
        let d = Mat::from_column_slice(3, 1, &[0.0, -0.0, f32::NAN]);
        let s = SparseColumns::from_dense(MatRef::from(&d));
        assert_eq!(s.nnz(), 1);
        let a = Mat::from_element(2, 3, 1.0);
        let mut c = Mat::zeros(2, 1);
        matmul_sparse(MatMut::from(&mut c), Accum::Replace, MatRef::from(&a), s.columns(0, 1));
        assert!(c.iter().all(|v| v.is_nan()));
    }

    #[test]
    #[should_panic(expected = "matmul_sparse")]
    fn inconsistent_shapes_panic() {
        let s = SparseColumns::from_dense(MatRef::from(&Mat::zeros(4, 2)));
        let a = Mat::zeros(3, 5);
        let mut c = Mat::zeros(3, 2);
        matmul_sparse(MatMut::from(&mut c), Accum::Replace, MatRef::from(&a), s.columns(0, 2));
    }
}
