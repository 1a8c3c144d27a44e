//! The one hot matrix product, [`matmul`], and the strided views it takes.

use std::marker::PhantomData;

use nalgebra::{Dim, Matrix, RawStorage, RawStorageMut, Scalar};
use num_complex::{Complex32, Complex64};

use crate::meter::{self, Layout};
use crate::{batch_lanes, few_rows, rows_to_columns, short_k};

/// Element types [`matmul`] accepts: `f32`, `f64`, `Complex32`, `Complex64`.
///
/// Sealed: the backend has kernels for exactly these four.
pub trait GemmScalar:
    Scalar + Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + sealed::Sealed
{
    /// Additive identity.
    fn zero() -> Self;
    /// Multiplicative identity.
    fn one() -> Self;
    /// Complex conjugate (identity for real types).
    fn conj(self) -> Self;
    /// The type's name, as the product meter reports it ([`crate::ProductTally::element`]).
    #[doc(hidden)]
    const ELEMENT: &'static str;
    /// Real FLOPs of one multiply-add (2, or 8 for a complex one), for the product meter.
    #[doc(hidden)]
    const FLOPS_PER_MULTIPLY_ADD: f64;
    /// The backend product for this type (called by [`matmul`] after its shape checks).
    #[doc(hidden)]
    fn product(c: MatMut<'_, Self>, accum: Accum, a: MatRef<'_, Self>, b: MatRef<'_, Self>, alpha: Self, par: Par);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for num_complex::Complex32 {}
    impl Sealed for num_complex::Complex64 {}
}

/// Implements [`GemmScalar`] for one element type: its zero, one and conjugate, and the
/// backend call (the same for all four types).
macro_rules! gemm_scalar {
    ($t:ty, $flops:expr, zero: $zero:expr, one: $one:expr, conj: |$x:ident| $conj:expr) => {
        impl GemmScalar for $t {
            const ELEMENT: &'static str = stringify!($t);
            const FLOPS_PER_MULTIPLY_ADD: f64 = $flops;
            fn zero() -> Self {
                $zero
            }
            fn one() -> Self {
                $one
            }
            fn conj(self) -> Self {
                let $x = self;
                $conj
            }
            fn product(
                c: MatMut<'_, Self>,
                accum: Accum,
                a: MatRef<'_, Self>,
                b: MatRef<'_, Self>,
                alpha: Self,
                par: Par,
            ) {
                faer_product(c, accum, a, b, alpha, par)
            }
        }
    };
}
impl GemmScalar for f32 {
    const ELEMENT: &'static str = "f32";
    const FLOPS_PER_MULTIPLY_ADD: f64 = 2.0;
    fn zero() -> Self {
        0.0
    }
    fn one() -> Self {
        1.0
    }
    fn conj(self) -> Self {
        self
    }
    /// [`batch_lanes`] when `B` and `C` are stored by rows (the batch along the lanes);
    /// [`rows_to_columns`] when `B` is stored by rows, `C` by columns and `C` has at most
    /// [`rows_to_columns::MAX_ROWS`] rows (a narrow layer's weight gradient; the same bits as
    /// faer); [`short_k`] when `2 ≤ k ≤` [`short_k::MAX_K`], `B` and `C` are stored by columns
    /// and `C` has at least [`short_k::MIN_ROWS`] rows (faer's bits too); else faer, except that
    /// up to [`few_rows::MAX_ROWS`] rows left over after faer's 16-row
    /// tiles go through [`few_rows::product_few_rows`] (see those modules for the measurements).
    ///
    /// With `par` parallel, a product of at least [`SPLIT_FLOPS`] is first cut into column
    /// blocks of `C` (and `B`), one per thread, each computed sequentially by the same dispatch
    /// ([`product_by_columns`]).
    fn product(mut c: MatMut<'_, Self>, accum: Accum, a: MatRef<'_, Self>, b: MatRef<'_, Self>, alpha: Self, par: Par) {
        if batch_lanes::applies(&c, accum, &a, &b, alpha) {
            batch_lanes::product_batch_lanes(c, accum, a, b, alpha, par);
            return;
        }
        let parts = column_parts(&c, &a, &b, par);
        if parts > 1 {
            product_by_columns(c, accum, a, b, alpha, parts);
            return;
        }
        if rows_to_columns::applies(&c, &a, &b, alpha) {
            rows_to_columns::product_rows_to_columns(c, accum, a, b, par);
            return;
        }
        if short_k::applies(&c, &a, &b, alpha) {
            short_k::product_short_k(c, accum, a, b);
            return;
        }
        let (m, k) = (a.rows, a.cols);
        let rest = m % 16;
        if let Some(layout) = few_rows::applies(rest, m, b) {
            let main = m - rest;
            if main > 0 {
                faer_product(c.rows_view(0, main), accum, a.submatrix(0, 0, main, k), b, alpha, par);
            }
            let (c_rest, a_rest) = (c.rows_view(main, rest), a.submatrix(main, 0, rest, k));
            few_rows::product_few_rows(c_rest, accum, a_rest, b, alpha, layout);
        } else {
            faer_product(c, accum, a, b, alpha, par)
        }
    }
}

/// The fewest FLOPs (`2·m·k·n`) for which an f32 product with `par` parallel is cut into
/// column blocks, one per thread. Measured on this 2-vCPU VM with the second worker awake (as
/// it is inside a training run, [`Par::with_polling_workers`]), 1 thread against 2 column
/// halves: (100, 784, 256) 159 → 83 µs, (100, 256, 784) with `B` by rows 166 → 85, (100, 100,
/// 256) 20.5 → 11.7, (100, 256, 100) 21.4 → 14.9, but (10, 100, 256) and (100, 10, 256),
/// 0.5 MFLOP, only 2.5 → 2.0–2.1 µs; faer's own parallel path gave 137, 109, 17.4 and 23.7 µs
/// for the first four (docs/performance.md, round 17).
const SPLIT_FLOPS: usize = 2_000_000;
/// The fewest columns of `C` per block of [`product_by_columns`].
const SPLIT_MIN_COLUMNS: usize = 32;
/// The longest inner dimension for which a product whose `B` is stored by rows is cut into
/// column blocks. faer's order of sums depends on the column count there beyond `k = 512`
/// (a scan of 2,976 shapes, `m` 10…1024, `k` 10…5000, `n` 64…1500, both layouts of `A` and
/// `B`, found all 102 differences at `B` by rows with `k > 512`); FFzero's weight gradients
/// `dZ·Xᵀ` have `k` = the batch, 256 or less.
const SPLIT_MAX_K_B_BY_ROWS: usize = 256;

/// How many column blocks [`product_by_columns`] cuts an f32 product into: one per thread of
/// `par`, as many as hold [`SPLIT_MIN_COLUMNS`] columns, for products of at least
/// [`SPLIT_FLOPS`] whose `C` is stored by columns and whose `B` is stored by columns or has
/// `k ≤` [`SPLIT_MAX_K_B_BY_ROWS`]; 1 (no cut) otherwise.
fn column_parts(c: &MatMut<'_, f32>, a: &MatRef<'_, f32>, b: &MatRef<'_, f32>, par: Par) -> usize {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    let n_independent = c.row_stride == 1 && (b.row_stride == 1 || k <= SPLIT_MAX_K_B_BY_ROWS);
    if !par.is_parallel() || !n_independent || 2 * m * n * k < SPLIT_FLOPS {
        return 1;
    }
    par.threads().min(n / SPLIT_MIN_COLUMNS).max(1)
}

/// `C ← α·A·B` (or `C + α·A·B`) as `parts` column blocks of `C` and `B`, computed in parallel
/// (halved recursively with `rayon::join`), each by [`GemmScalar::product`] with [`Par::Seq`].
/// **The same bits as one sequential product**: every kernel `product` dispatches to computes
/// each column of `C` from its own column of `B` alone, in an order that does not depend on
/// how many columns the call has, for the products [`column_parts`] admits (faer's order
/// depends on `n` only as [`SPLIT_MAX_K_B_BY_ROWS`] says; `tests/matmul.rs` checks FFzero's
/// shapes, odd column counts, both accumulations and the layouts at 2 and 3 threads, and that
/// the products left whole keep their bits). Blocks start at multiples of 8 columns.
fn product_by_columns(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    parts: usize,
) {
    if parts <= 1 {
        <f32 as GemmScalar>::product(c, accum, a, b, alpha, Par::Seq);
        return;
    }
    let (n, k) = (c.cols, a.cols);
    let left = parts / 2;
    let at = (n * left / parts).next_multiple_of(8).min(n - 1);
    let (c_left, c_right) = c.split_columns(at);
    let (b_left, b_right) = (b.submatrix(0, 0, k, at), b.submatrix(0, at, k, n - at));
    rayon::join(
        || product_by_columns(c_left, accum, a, b_left, alpha, left),
        || product_by_columns(c_right, accum, a, b_right, alpha, parts - left),
    );
}

gemm_scalar!(f64, 2.0, zero: 0.0, one: 1.0, conj: |x| x);
gemm_scalar!(Complex32, 8.0, zero: Complex32::new(0.0, 0.0), one: Complex32::new(1.0, 0.0), conj: |x| num_complex::Complex::conj(&x));
gemm_scalar!(Complex64, 8.0, zero: Complex64::new(0.0, 0.0), one: Complex64::new(1.0, 0.0), conj: |x| num_complex::Complex::conj(&x));

/// Whether [`matmul`] overwrites or adds to its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accum {
    /// `C ← α·A·B`
    Replace,
    /// `C ← C + α·A·B`
    Add,
}

/// Parallelism of one product, passed explicitly (never a global setting).
///
/// `gemm-bench.md`: on this 2-core machine faer's own intra-product threads pay only for
/// products of ≥ ~40 MFLOP. f32 products of ≥ 2 MFLOP are instead cut into column blocks, one
/// per thread (the same bits; 1.43–1.96× at 2 threads for FFzero's width-100 products with the
/// second worker awake, [`Par::with_polling_workers`]); below that, spend cores at an outer
/// level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Par {
    /// One thread.
    #[default]
    Seq,
    /// Up to `n` rayon threads inside the product.
    Rayon(usize),
}

impl Par {
    /// The `Par` for the rayon pool this call runs in: `Rayon(n)` on a worker of an `n`-thread
    /// pool (`n ≥ 2`, e.g. inside `ThreadPool::install`), [`Par::Seq`] in a one-thread pool
    /// **and on any thread outside a pool**: from there every parallel region would be sent
    /// to the global pool and waited for, which costs more than it gains for the short
    /// regions of a training step.
    pub fn of_current_pool() -> Self {
        if rayon::current_thread_index().is_none() {
            return Par::Seq;
        }
        match rayon::current_num_threads() {
            0 | 1 => Par::Seq,
            n => Par::Rayon(n),
        }
    }

    /// Threads this `Par` allows: 1 for [`Par::Seq`] and for `Rayon(0 | 1)`.
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::Rayon(n) => n.max(1),
        }
    }

    /// Whether work may be split over more than one thread.
    pub fn is_parallel(self) -> bool {
        self.threads() > 1
    }

    /// Runs `f` while the other workers of the current rayon pool poll for work instead of
    /// going to sleep, so that the many short parallel regions of a training step (a few
    /// hundred µs each) do not pay a sleeping worker's wake-up. On this project's 2-vCPU VM a
    /// `rayon::join` of two 50 µs tasks took 70–130 µs when the second worker had to be woken
    /// and 51–52 µs with it polling (docs/performance.md). For [`Par::Seq`] this just calls `f`.
    /// The pollers burn their cores until `f` returns; the results do not depend on them.
    pub fn with_polling_workers<R>(self, f: impl FnOnce() -> R) -> R {
        if !self.is_parallel() {
            return f();
        }
        let pollers = self.threads().min(rayon::current_num_threads()) - 1;
        use std::sync::atomic::{AtomicBool, Ordering};
        /// Stops the pollers when `f` returns **or panics** (the scope waits for them before it
        /// lets a panic through, so without this a panic would hang).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let done = AtomicBool::new(false);
        rayon::in_place_scope(|s| {
            for _ in 0..pollers {
                s.spawn(|_| {
                    while !done.load(Ordering::Acquire) {
                        if let Some(rayon::Yield::Idle) | None = rayon::yield_now() {
                            std::hint::spin_loop();
                        }
                    }
                });
            }
            let _stop = StopOnDrop(&done);
            f()
        })
    }

    /// The `with_min_len` for a rayon iterator over **fixed** blocks of work: `usize::MAX` when
    /// sequential (one job, run on the calling thread, no splitting, no allocation), `1`
    /// otherwise. Blocks never depend on the thread count, so neither do the results.
    pub fn min_blocks_per_job(self) -> usize {
        if self.is_parallel() {
            1
        } else {
            usize::MAX
        }
    }
}

/// A read-only, strided matrix view: `rows × cols`, element `(i, j)` at
/// `ptr + i·row_stride + j·col_stride`, optionally conjugated.
///
/// Build one from any nalgebra matrix or view with `MatRef::from(&m)`, or from a column-major
/// slice with [`MatRef::from_col_major`]. [`MatRef::t`] and [`MatRef::adjoint`] are free.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
    conj: bool,
    _life: PhantomData<&'a T>,
}

// SAFETY: a MatRef is a shared borrow of `T` data.
unsafe impl<T: Sync> Send for MatRef<'_, T> {}
unsafe impl<T: Sync> Sync for MatRef<'_, T> {}

impl<'a, T: GemmScalar> MatRef<'a, T> {
    /// View of a column-major slice of `rows × cols` elements.
    ///
    /// # Panics
    /// If `data.len() != rows * cols` (a programming error, not a data error).
    pub fn from_col_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatRef::from_col_major: slice of {} elements for a {rows}×{cols} matrix",
            data.len()
        );
        Self::from_raw(data.as_ptr(), rows, cols, 1, rows.max(1) as isize)
    }

    /// View of a row-major slice of `rows × cols` elements (row `i` contiguous).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn from_row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatRef::from_row_major: slice of {} elements for a {rows}×{cols} matrix",
            data.len()
        );
        Self::from_raw(data.as_ptr(), rows, cols, cols.max(1) as isize, 1)
    }

    /// View of `rows × cols` elements stored by rows, row `i` starting at `i·row_stride`
    /// (`row_stride ≥ cols`; the values between a row's end and the next row's start are not
    /// part of the view). With [`crate::padded_row_stride`] this is the layout
    /// [`matmul`]'s batch-along-the-lanes kernel is fast on.
    ///
    /// # Panics
    /// If `row_stride < cols` or `data` is shorter than the last row's end.
    pub fn from_row_major_strided(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        check_strided_rows(data.len(), rows, cols, row_stride);
        Self::from_raw(data.as_ptr(), rows, cols, row_stride as isize, 1)
    }

    fn from_raw(ptr: *const T, rows: usize, cols: usize, row_stride: isize, col_stride: isize) -> Self {
        Self {
            ptr,
            rows,
            cols,
            row_stride,
            col_stride,
            conj: false,
            _life: PhantomData,
        }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.cols
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The conjugate transpose (adjoint), as a view (no copy).
    pub fn adjoint(self) -> Self {
        let mut v = self.t();
        v.conj = !v.conj;
        v
    }

    /// The element-wise conjugate, as a view (no copy).
    pub fn conjugate(mut self) -> Self {
        self.conj = !self.conj;
        self
    }

    /// The sub-block of `nrows × ncols` starting at `(row, col)`, as a view.
    ///
    /// # Panics
    /// If the block does not fit.
    pub fn submatrix(self, row: usize, col: usize, nrows: usize, ncols: usize) -> Self {
        assert!(
            row + nrows <= self.rows && col + ncols <= self.cols,
            "submatrix ({row}, {col}) + {nrows}×{ncols} outside a {}×{} view",
            self.rows,
            self.cols
        );
        let ptr = if nrows == 0 || ncols == 0 {
            self.ptr
        } else {
            self.ptr
                .wrapping_offset(row as isize * self.row_stride + col as isize * self.col_stride)
        };
        Self {
            ptr,
            rows: nrows,
            cols: ncols,
            ..self
        }
    }

    /// Pointer to element `(0, 0)` (for kernels in this crate).
    pub(crate) fn as_ptr(&self) -> *const T {
        self.ptr
    }

    /// Distance between consecutive rows' elements.
    pub(crate) fn row_stride(&self) -> isize {
        self.row_stride
    }

    /// Distance between consecutive columns' elements.
    pub(crate) fn col_stride(&self) -> isize {
        self.col_stride
    }

    /// Row `i` as a slice, for a view whose rows are contiguous (`col_stride == 1`).
    #[inline]
    pub(crate) fn row_slice(&self, i: usize) -> &'a [T] {
        assert!(
            self.col_stride == 1 && i < self.rows,
            "row_slice: row {i} of a {}×{} view with column stride {}",
            self.rows,
            self.cols,
            self.col_stride
        );
        // SAFETY: row i exists and its `cols` elements are contiguous (column stride 1) and
        // borrowed for 'a by this view.
        unsafe { std::slice::from_raw_parts(self.ptr.offset(i as isize * self.row_stride), self.cols) }
    }

    /// Column `j` as a slice, for a view whose columns are contiguous (`row_stride == 1`).
    pub(crate) fn column_slice(&self, j: usize) -> &'a [T] {
        assert!(
            self.row_stride == 1 && j < self.cols,
            "column_slice: column {j} of a {}×{} view with row stride {}",
            self.rows,
            self.cols,
            self.row_stride
        );
        // SAFETY: column j exists and its `rows` elements are contiguous (row stride 1) and
        // borrowed for 'a by this view.
        unsafe { std::slice::from_raw_parts(self.ptr.offset(j as isize * self.col_stride), self.rows) }
    }

    /// Element `(i, j)` without the conjugation flag (callers handle it or use real types).
    ///
    /// # Panics
    /// If `(i, j)` is outside the view.
    pub(crate) fn get_raw(&self, i: usize, j: usize) -> T {
        assert!(i < self.rows && j < self.cols);
        // SAFETY: in bounds by the assertion and the view's construction.
        unsafe {
            *self
                .ptr
                .offset(i as isize * self.row_stride + j as isize * self.col_stride)
        }
    }

    /// Element `(i, j)` (bounds-checked; for tests and cold code).
    pub fn get(&self, i: usize, j: usize) -> T {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) outside {}×{}",
            self.rows,
            self.cols
        );
        // SAFETY: in bounds by the assertion and the view's construction.
        let v = unsafe {
            *self
                .ptr
                .offset(i as isize * self.row_stride + j as isize * self.col_stride)
        };
        if self.conj {
            v.conj()
        } else {
            v
        }
    }
}

impl<'a, T, R, C, S> From<&'a Matrix<T, R, C, S>> for MatRef<'a, T>
where
    T: GemmScalar,
    R: Dim,
    C: Dim,
    S: RawStorage<T, R, C>,
{
    fn from(m: &'a Matrix<T, R, C, S>) -> Self {
        let (rs, cs) = m.strides();
        let (rows, cols) = m.shape();
        Self::from_raw(m.data.ptr(), rows, cols, rs as isize, cs as isize)
    }
}

/// The checks of the `from_row_major_strided` constructors: rows at least `cols` apart, all
/// inside a slice of `len` elements.
fn check_strided_rows(len: usize, rows: usize, cols: usize, row_stride: usize) {
    let needed = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + cols
    };
    assert!(
        row_stride >= cols && len >= needed,
        "from_row_major_strided: {rows}×{cols} with rows {row_stride} apart needs {needed} elements \
         and a stride ≥ {cols}; the slice has {len}"
    );
}

/// A mutable, strided matrix view (the destination of [`matmul`]).
#[derive(Debug)]
pub struct MatMut<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
    _life: PhantomData<&'a mut T>,
}

// SAFETY: a MatMut is an exclusive borrow of `T` data.
unsafe impl<T: Send> Send for MatMut<'_, T> {}

impl<'a, T: GemmScalar> MatMut<'a, T> {
    /// Mutable view of a column-major slice of `rows × cols` elements.
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn from_col_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatMut::from_col_major: slice of {} elements for a {rows}×{cols} matrix",
            data.len()
        );
        Self {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            row_stride: 1,
            col_stride: rows.max(1) as isize,
            _life: PhantomData,
        }
    }

    /// Mutable view of a row-major slice of `rows × cols` elements.
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn from_row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatMut::from_row_major: slice of {} elements for a {rows}×{cols} matrix",
            data.len()
        );
        Self {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            row_stride: cols.max(1) as isize,
            col_stride: 1,
            _life: PhantomData,
        }
    }

    /// Mutable view of `rows × cols` elements stored by rows, `row_stride ≥ cols` apart
    /// (see [`MatRef::from_row_major_strided`]).
    ///
    /// # Panics
    /// If `row_stride < cols` or `data` is shorter than the last row's end.
    pub fn from_row_major_strided(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        check_strided_rows(data.len(), rows, cols, row_stride);
        Self {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            row_stride: row_stride as isize,
            col_stride: 1,
            _life: PhantomData,
        }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.cols
    }

    /// The transpose, as a mutable view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The view's columns `0..at` and `at..`, as two views of disjoint elements.
    ///
    /// # Panics
    /// If `at` is beyond the last column.
    pub(crate) fn split_columns(self, at: usize) -> (MatMut<'a, T>, MatMut<'a, T>) {
        assert!(at <= self.cols, "column {at} of a {}-column view", self.cols);
        let right = MatMut {
            ptr: self.ptr.wrapping_offset(at as isize * self.col_stride),
            cols: self.cols - at,
            ..self
        };
        (MatMut { cols: at, ..self }, right)
    }

    /// Rows `start..start + count`, all columns, as a mutable view.
    ///
    /// # Panics
    /// If the rows do not fit.
    pub(crate) fn rows_view(&mut self, start: usize, count: usize) -> MatMut<'_, T> {
        assert!(
            start + count <= self.rows,
            "rows {start}..{} of a {}-row view",
            start + count,
            self.rows
        );
        MatMut {
            ptr: self.ptr.wrapping_offset(start as isize * self.row_stride),
            rows: count,
            _life: PhantomData,
            ..*self
        }
    }

    /// Element `(i, j)`, mutably.
    ///
    /// # Panics
    /// If `(i, j)` is outside the view.
    #[inline]
    pub(crate) fn get_mut_internal(&mut self, i: usize, j: usize) -> &mut T {
        assert!(i < self.rows && j < self.cols);
        // SAFETY: in bounds by the assertion; the view borrows its elements exclusively.
        unsafe {
            &mut *self
                .ptr
                .offset(i as isize * self.row_stride + j as isize * self.col_stride)
        }
    }

    /// Pointer to element `(0, 0)` (for kernels in this crate).
    pub(crate) fn as_ptr_mut(&self) -> *mut T {
        self.ptr
    }

    /// Distance between consecutive rows, in elements.
    pub(crate) fn row_stride(&self) -> isize {
        self.row_stride
    }

    /// Distance between consecutive columns, in elements.
    pub(crate) fn col_stride(&self) -> isize {
        self.col_stride
    }

    /// Sets element `(i, j)`.
    ///
    /// # Panics
    /// If `(i, j)` is outside the view.
    pub(crate) fn set_raw(&mut self, i: usize, j: usize, value: T) {
        *self.get_mut_internal(i, j) = value;
    }

    /// Reborrow as a shorter-lived mutable view.
    pub fn rb_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            ptr: self.ptr,
            _life: PhantomData,
            ..*self
        }
    }

    /// Read-only view of the same elements.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef::from_raw(self.ptr, self.rows, self.cols, self.row_stride, self.col_stride)
    }
}

impl<'a, T, R, C, S> From<&'a mut Matrix<T, R, C, S>> for MatMut<'a, T>
where
    T: GemmScalar,
    R: Dim,
    C: Dim,
    S: RawStorageMut<T, R, C>,
{
    fn from(m: &'a mut Matrix<T, R, C, S>) -> Self {
        let (rs, cs) = m.strides();
        let (rows, cols) = m.shape();
        Self {
            ptr: m.data.ptr_mut(),
            rows,
            cols,
            row_stride: rs as isize,
            col_stride: cs as isize,
            _life: PhantomData,
        }
    }
}

/// `C ← α·A·B` ([`Accum::Replace`]) or `C ← C + α·A·B` ([`Accum::Add`]): **the one function
/// through which every hot real and complex matrix product in insitu goes.**
///
/// Operands are strided views; pass `a.t()` for `Aᵀ` and `a.adjoint()` for `Aᴴ` (no copies).
/// Backend: faer's run-time-dispatched AVX-512 kernels (see the crate docs for the
/// measurement). The result does not depend on `par`: threads split the output, never the
/// inner dimension, so each output element is reduced in the same order (a test checks this
/// bitwise).
///
/// # Panics
/// On inconsistent shapes (`A: m×k`, `B: k×n`, `C: m×n` required); this is a programming
/// error in the caller, which validates user-facing shapes long before a product runs.
pub fn matmul<T: GemmScalar>(c: MatMut<'_, T>, accum: Accum, a: MatRef<'_, T>, b: MatRef<'_, T>, alpha: T, par: Par) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    assert!(
        a.rows == m && b.rows == k && b.cols == n,
        "matmul: C is {}×{}, A is {}×{}, B is {}×{}",
        c.rows,
        c.cols,
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if accum == Accum::Replace {
            for j in 0..n {
                for i in 0..m {
                    // SAFETY: (i, j) lies inside the exclusive view `c`.
                    unsafe { *c.ptr.offset(i as isize * c.row_stride + j as isize * c.col_stride) = T::zero() };
                }
            }
        }
        return;
    }
    if meter::is_metering() {
        let dense_flops = T::FLOPS_PER_MULTIPLY_ADD * (m * n * k) as f64;
        let key = meter::ProductKey {
            element: T::ELEMENT,
            shape: (m, k, n),
            layouts: [
                Layout::of(m, n, c.row_stride, c.col_stride),
                Layout::of(m, k, a.row_stride, a.col_stride),
                Layout::of(k, n, b.row_stride, b.col_stride),
            ],
            flops: dense_flops,
            dense_flops,
        };
        meter::record(key, || T::product(c, accum, a, b, alpha, par));
    } else {
        T::product(c, accum, a, b, alpha, par);
    }
}

/// The backend call, monomorphised per element type through [`GemmScalar::product`]: faer's
/// `matmul`, which on x86-64 runs `private-gemm-x86`'s run-time-dispatched AVX-512 kernels and
/// packs into a per-thread buffer that is allocated once and then reused (zero allocations per
/// product after warm-up; `cargo xtask bench` counts them).
fn faer_product<T>(c: MatMut<'_, T>, accum: Accum, a: MatRef<'_, T>, b: MatRef<'_, T>, alpha: T, par: Par)
where
    T: faer::traits::ComplexField + faer::traits::Conjugate<Canonical = T>,
    T::Conj: faer::traits::Conjugate<Canonical = T>,
{
    // A matrix-vector product (n = 1 or m = 1) is split along `k` by faer's parallel path,
    // which changes the bits (found by `parallel_products_agree_bitwise_including_vectors`);
    // it is memory-bound anyway.
    let par = if par.is_parallel() && c.rows > 1 && c.cols > 1 {
        faer::Par::rayon(par.threads())
    } else {
        faer::Par::Seq
    };
    let accum = match accum {
        Accum::Replace => faer::Accum::Replace,
        Accum::Add => faer::Accum::Add,
    };
    // SAFETY: the three views describe memory valid for their shapes and strides (guaranteed by
    // their constructors and lifetimes); `c` is an exclusive borrow, so it does not alias `a` or
    // `b`.
    let (dst, lhs, rhs) = unsafe {
        (
            faer::MatMut::from_raw_parts_mut(c.ptr, c.rows, c.cols, c.row_stride, c.col_stride),
            faer::MatRef::from_raw_parts(a.ptr, a.rows, a.cols, a.row_stride, a.col_stride),
            faer::MatRef::from_raw_parts(b.ptr, b.rows, b.cols, b.row_stride, b.col_stride),
        )
    };
    use faer::linalg::matmul::matmul as product;
    match (a.conj, b.conj) {
        (false, false) => product(dst, accum, lhs, rhs, alpha, par),
        (true, false) => product(dst, accum, lhs.conjugate(), rhs, alpha, par),
        (false, true) => product(dst, accum, lhs, rhs.conjugate(), alpha, par),
        (true, true) => product(dst, accum, lhs.conjugate(), rhs.conjugate(), alpha, par),
    }
    clear_upper_vector_state();
}

/// `vzeroupper` after the backend's AVX-512 kernels, which return with the upper halves of the
/// vector registers dirty: without it, every later scalar or SSE instruction (the losses,
/// `expf` in softmax) pays a false-dependency penalty on this CPU — measured: BP+AD's epoch
/// took 2× as long, a third of it in `expf` (docs/performance.md).
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked at run time); vzeroupper only clears the upper
        // halves of the vector registers, which hold no live values between Rust statements.
        unsafe { zeroupper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zeroupper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// The naive triple loop `C ← α·A·B` (or `C + α·A·B`), the reference [`matmul`] is tested
/// against. Slow; for tests only.
pub fn matmul_reference<T: GemmScalar>(
    mut c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    alpha: T,
) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    assert!(
        a.rows == m && b.rows == k && b.cols == n,
        "matmul_reference: shape mismatch"
    );
    for j in 0..n {
        for i in 0..m {
            let mut acc = T::zero();
            for p in 0..k {
                acc = acc + a.get(i, p) * b.get(p, j);
            }
            let cm = c.rb_mut();
            // SAFETY: (i, j) is inside the exclusive view.
            let slot = unsafe { &mut *cm.ptr.offset(i as isize * cm.row_stride + j as isize * cm.col_stride) };
            *slot = match accum {
                Accum::Replace => alpha * acc,
                Accum::Add => *slot + alpha * acc,
            };
        }
    }
}
