//! Metering of the products a piece of code makes: how many, of which shapes, and how long
//! each shape took in all — so that "the product-bound parts" of a training epoch can be
//! measured inside the epoch itself, not only in isolation (issue 8; docs/performance.md).
//!
//! [`meter_products`] runs a closure with the meter on and returns one [`ProductTally`] per
//! distinct product (element type, shape, layouts) that [`crate::matmul`] and
//! [`crate::matmul_sparse`] computed meanwhile, from any thread. Off, the meter costs each
//! product one relaxed atomic load; on, two clock readings and a short lock per product
//! (≈ 0.1 µs against products of ≥ 0.5 µs), and nothing it records changes a result.
//!
//! The meter is process-wide, like an allocation counter: one closure at a time is metered
//! ([`MeterBusy`] otherwise), and products made by other threads meanwhile are counted too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether a meter is running (read by every product; written by [`meter_products`]).
static METERING: AtomicBool = AtomicBool::new(false);
/// The running meter's tallies.
static TALLIES: Mutex<Vec<ProductTally>> = Mutex::new(Vec::new());

/// How an operand is stored, as its strides say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Row stride 1: each column contiguous (nalgebra's layout; `Aᵀ` of a row-major `A`).
    Columns,
    /// Column stride 1 and more than one row: each row contiguous (`Xᵀ` of a column-major
    /// `X`, or the by-rows layout of [`crate::padded_row_stride`]).
    Rows,
    /// Neither, or a vector (one row or one column: both strides fit).
    Other,
    /// A sparse operand ([`crate::SparseRef`]: stored columns of non-zeros).
    Sparse,
}

impl Layout {
    /// The layout of a `rows × cols` view with these strides. A single column counts as
    /// [`Layout::Columns`]; a single row (both strides fit) as [`Layout::Other`].
    pub(crate) fn of(rows: usize, cols: usize, row_stride: isize, col_stride: isize) -> Self {
        if rows > 1 && row_stride == 1 && (cols == 1 || col_stride != 1) {
            Layout::Columns
        } else if rows > 1 && cols > 1 && col_stride == 1 {
            Layout::Rows
        } else {
            Layout::Other
        }
    }

    /// One letter: `c` columns, `r` rows, `o` other, `s` sparse.
    pub fn letter(self) -> char {
        match self {
            Layout::Columns => 'c',
            Layout::Rows => 'r',
            Layout::Other => 'o',
            Layout::Sparse => 's',
        }
    }
}

/// Every product of one kind that the metered closure made.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductTally {
    /// The element type: `f32`, `f64`, `Complex32` or `Complex64`.
    pub element: &'static str,
    /// `(m, k, n)` of `C (m×n) = A (m×k)·B (k×n)`.
    pub shape: (usize, usize, usize),
    /// Layouts of `C`, `A` and `B`.
    pub layouts: [Layout; 3],
    /// Products of this kind.
    pub calls: u64,
    /// Their wall-clock time, summed.
    pub seconds: f64,
    /// Floating-point operations executed: `2·m·k·n` per real product (`8·m·k·n` complex);
    /// for a sparse `B`, `2·m` per stored entry.
    pub flops: f64,
    /// `2·m·k·n` per product whatever `B`'s zeros: the dense product's count.
    pub dense_flops: f64,
}

impl ProductTally {
    /// Executed FLOPs per second, in GFLOP/s.
    pub fn gflops(&self) -> f64 {
        self.flops / self.seconds / 1e9
    }
}

/// [`meter_products`] was called while another meter ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a product meter is already running in this process (one at a time)")]
pub struct MeterBusy;

/// Runs `f` with the product meter on and returns its result with one tally per distinct
/// product kind, in the order first seen. `Err(MeterBusy)`, without running `f`, if a meter
/// is already running.
pub fn meter_products<R>(f: impl FnOnce() -> R) -> Result<(R, Vec<ProductTally>), MeterBusy> {
    if METERING
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(MeterBusy);
    }
    lock().clear();
    // Turn the meter off even if `f` panics, so that a caught panic leaves none running.
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            METERING.store(false, Ordering::Release);
        }
    }
    let off = Off;
    let result = f();
    drop(off);
    let tallies = std::mem::take(&mut *lock());
    Ok((result, tallies))
}

fn lock() -> std::sync::MutexGuard<'static, Vec<ProductTally>> {
    // A panic while holding the lock leaves only counts behind: keep using them.
    TALLIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether products are being metered (one relaxed load: the cost of the meter when off).
#[inline]
pub(crate) fn is_metering() -> bool {
    METERING.load(Ordering::Relaxed)
}

/// What [`record`] needs to know of one product besides its time.
pub(crate) struct ProductKey {
    pub element: &'static str,
    pub shape: (usize, usize, usize),
    pub layouts: [Layout; 3],
    pub flops: f64,
    pub dense_flops: f64,
}

/// Times `product` and adds it to the running meter's tallies.
pub(crate) fn record<R>(key: ProductKey, product: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let result = product();
    let elapsed: Duration = started.elapsed();
    let mut tallies = lock();
    match tallies
        .iter_mut()
        .find(|t| t.element == key.element && t.shape == key.shape && t.layouts == key.layouts)
    {
        Some(t) => {
            t.calls += 1;
            t.seconds += elapsed.as_secs_f64();
            t.flops += key.flops;
            t.dense_flops += key.dense_flops;
        }
        None => tallies.push(ProductTally {
            element: key.element,
            shape: key.shape,
            layouts: key.layouts,
            calls: 1,
            seconds: elapsed.as_secs_f64(),
            flops: key.flops,
            dense_flops: key.dense_flops,
        }),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_the_strides() {
        assert_eq!(Layout::of(10, 256, 1, 10), Layout::Columns);
        assert_eq!(Layout::of(10, 256, 272, 1), Layout::Rows);
        assert_eq!(Layout::of(10, 1, 1, 10), Layout::Columns);
        assert_eq!(Layout::of(1, 10, 1, 1), Layout::Other);
        assert_eq!(Layout::of(10, 10, 2, 30), Layout::Other);
    }
}
