//! # insitu-linalg — matrices, the one hot product, Haar-random groups
//!
//! **What it is for.** The dense real (`f32`, `f64`) and complex (`Complex32`, `Complex64`)
//! matrices every other insitu crate uses (nalgebra storage, column-major), and **the one
//! function through which every hot matrix product goes**: [`matmul`]. It also holds the
//! Haar-random samplers of the orthogonal group O(d), the special orthogonal group SO(d)
//! (seed 000, Supplementary Information 1: QR of a Gaussian matrix, `Q ← Q·diag(sign R_ii)`,
//! rejection while `det Q < 0`) and the unitary group U(n) (used by seed 000's MZI meshes and
//! seed 002's scattering media), a QR factorisation, and the seeded random-number streams that
//! all randomness in the workspace flows from ([`rng`]).
//!
//! **Backend (chosen by measurement, `../shared/research/gemm-bench.md`).** [`matmul`] passes
//! pointers and strides to faer's `matmul` (AVX-512 kernels of `private-gemm-x86`, chosen at run
//! time): 84–95 % of one core's peak on the FFzero shapes, where nalgebra's own `*` reaches
//! 31–69 % and its `tr_mul` 1.4 %. faer packs into a per-thread buffer allocated once, so a
//! product allocates nothing after warm-up; the `gemm` crate, used before, allocated its packing
//! buffers on every call (docs/performance.md). Four exceptions for f32, all measured there:
//! the few rows faer's last tile would waste (`few_rows`), and products whose `B` and `C` are
//! stored by rows — the batch along the registers' lanes, rows [`padded_row_stride`] apart —
//! which a kernel of this crate computes whole (`batch_lanes`: 66–82 % of the peak on the
//! 10-row and 50-row layer shapes where the column-major layout gives 25–65 %; [`copy_matrix`]
//! converts between the layouts); and products of up to 24 rows whose `B` is stored by rows
//! and `C` by columns — a narrow layer's weight gradient `dZ·Xᵀ` — which `rows_to_columns`
//! computes with the batch in the lanes and a transpose on the way out, 1.5× faer's speed at
//! 10 rows with faer's bits; and products with a short inner dimension (`2 ≤ k ≤ 15`, e.g.
//! the backward `Wᵀ·dY` through a 10-output layer) whose `B` and `C` are stored by columns,
//! which `short_k` computes with `A`'s columns in panels of registers, also with faer's bits.
//! [`meter_products`] times every product a closure makes (issue 8's
//! products inside the epochs, `cargo xtask bench`). Operands are strided views ([`MatRef`],
//! [`MatMut`]); a transpose or an adjoint is a free view ([`MatRef::t`], [`MatRef::adjoint`]),
//! never a copy.
//!
//! **What it must not do.** No I/O, no printing, no global thread pool: parallelism is an
//! explicit [`Par`] argument and defaults to sequential. It knows nothing about learning or
//! optics. Hot code elsewhere must not call nalgebra's `tr_mul`, `ad_mul`, `gemm_tr` or complex
//! `DMatrix` products (40–85× slower); `clippy.toml` at the workspace root bans them.
//!
//! # Example
//!
//! A dense layer's forward product `Z = W·X` and its weight gradient `dW = dZ·Xᵀ`, the
//! transpose a free view of `X`'s storage; both checked against the naive triple loop.
//!
//! ```
//! use insitu_linalg::{matmul, matmul_reference, Accum, Mat, MatMut, MatRef, Par};
//!
//! let (outputs, inputs, batch) = (100, 784, 256);
//! let w = Mat::from_fn(outputs, inputs, |i, j| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
//! let x = Mat::from_fn(inputs, batch, |i, j| ((i + 5 * j) % 13) as f32 / 13.0);
//!
//! let mut z = Mat::zeros(outputs, batch);
//! matmul(MatMut::from(&mut z), Accum::Replace, MatRef::from(&w), MatRef::from(&x), 1.0, Par::Seq);
//!
//! // Two threads split the columns of `Z`, never a sum: the same bits as one.
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
//! let mut z_two_threads = Mat::zeros(outputs, batch);
//! pool.install(|| {
//!     let (c, a, b) = (MatMut::from(&mut z_two_threads), MatRef::from(&w), MatRef::from(&x));
//!     matmul(c, Accum::Replace, a, b, 1.0, Par::of_current_pool())
//! });
//! assert_eq!(z, z_two_threads);
//!
//! let dz = z.map(|v| v / batch as f32);
//! let mut dw = Mat::zeros(outputs, inputs);
//! matmul(MatMut::from(&mut dw), Accum::Replace, MatRef::from(&dz), MatRef::from(&x).t(), 1.0, Par::Seq);
//!
//! let mut dw_naive = Mat::zeros(outputs, inputs);
//! matmul_reference(MatMut::from(&mut dw_naive), Accum::Replace, MatRef::from(&dz), MatRef::from(&x).t(), 1.0);
//! let scale = dw_naive.amax();
//! assert!((&dw - &dw_naive).amax() <= 1e-5 * scale);
//! ```

mod batch_lanes;
mod few_rows;
mod haar;
mod kernels;
mod matmul;
mod memory;
mod meter;
mod normal;
mod rng;
mod rows_to_columns;
mod short_k;
mod simd;
mod sparse;

pub use batch_lanes::{copy_matrix, padded_row_stride};
pub use haar::{haar_orthogonal, haar_special_orthogonal, haar_unitary, qr, Qr};
pub use kernels::{add_scaled, all_finite, dot, relu, sum_of_squares};
pub use matmul::{matmul, matmul_reference, Accum, GemmScalar, MatMut, MatRef, Par};
pub use memory::{huge_page_vec, huge_page_zeros, set_shape};
pub use meter::{meter_products, Layout, MeterBusy, ProductTally};
pub use normal::NormalStream;
pub use rng::{derive_seed, fast_stream, rng, splitmix64, substream, FastRng, Rng64};
pub use simd::{fma_available, fma_peak_gflops, vectorized, VectorKernel};
pub use sparse::{matmul_sparse, SparseColumns, SparseRef};

pub use nalgebra::{self, DMatrix, DVector};
pub use num_complex::{self, Complex32, Complex64};

/// Real single-precision matrix (column-major): the training kernels' type.
pub type Mat = DMatrix<f32>;
/// Complex single-precision matrix (column-major).
pub type CMat = DMatrix<Complex32>;
/// Real double-precision matrix, for gradient checks and physics tests.
pub type Mat64 = DMatrix<f64>;
/// Complex double-precision matrix.
pub type CMat64 = DMatrix<Complex64>;
