//! # insitu-autodiff — the backpropagation baselines and the losses every method shares
//!
//! **What it is for.** Two things:
//!
//! 1. [`loss`]: the forward-only loss functions of seed 000 (FFzero) that every training method
//!    evaluates — the cosine goodness `G(c) = ξ_c·z/‖z‖` (seed 000 eq. 4, SPEC A2), the margin
//!    loss (seed 000 Methods eq. 16), eq. 5 as a loss to minimise, the regression loss
//!    `(ξ^u·z/‖z‖ − y)²` (eq. 7–8), and the BP baselines' softmax cross-entropy and mean squared
//!    error (SPEC A8), plus the class prediction `argmax` (SPEC A6). They are pure, allocation-free
//!    functions over `width × batch` matrices (one sample per column), fast enough for the
//!    directional-derivative trainers (SPEC A4), which evaluate them twice per step.
//! 2. [`Tape`]: reverse-mode automatic differentiation over `f32` matrices with exactly the ops
//!    the AD-based methods need (SPEC A8: BP+AD's global back-propagation, FF+AD's exact local
//!    gradients): dense layers `W·x + b` (products through [`insitu_linalg::matmul`] with
//!    transposed views), ReLU, and the losses above, each with a hand-derived vector-Jacobian
//!    product (the cosine's is `(I − ẑẑᵀ)/‖z‖`). The tape reuses its buffers across
//!    [`Tape::reset`], so a training loop does not allocate per step after warm-up.
//!
//! The gradients are checked against central finite differences of naive `f64` reference
//! implementations (tests/gradcheck.rs), as `../shared/research/rust-ecosystem.md` §3 advises
//! instead of a deep-learning framework dependency.
//!
//! **What it must not do.** It is not a general deep-learning framework: no dynamic op registry,
//! no optimiser (step rules live in `insitu-optim`), no data handling, no I/O or printing, no
//! global thread pool (parallelism is an explicit [`insitu_linalg::Par`], sequential by default).
//! Physically plausible trainers (FF+DD, FFM) must use only [`loss`], never the tape.
//!
//! # Example
//!
//! A dense ReLU layer with a squared-error loss, its weight gradient by the tape, and one entry
//! of it checked by central differences of the same forward pass.
//!
//! ```
//! use insitu_autodiff::{Tape, Var};
//! use insitu_linalg::Mat;
//!
//! let w = Mat::from_fn(3, 4, |i, j| 0.3 + 0.1 * i as f32 - 0.05 * j as f32);
//! let b = Mat::from_fn(3, 1, |i, _| 0.1 * i as f32);
//! let x = Mat::from_fn(4, 5, |i, j| ((i * 5 + j) % 7) as f32 / 7.0);
//! let y = Mat::from_fn(3, 5, |i, j| ((i + j) % 2) as f32);
//!
//! // Records `mse(relu(W·x + b), y)` on a reset tape; returns W's handle and the loss's.
//! let record = |tape: &mut Tape, w: &Mat| -> (Var, Var) {
//!     tape.reset();
//!     let (w, b, x) = (tape.param(w), tape.param(&b), tape.constant(&x));
//!     let z = tape.matmul(w, x);
//!     let z = tape.add_bias(z, b);
//!     let a = tape.relu(z);
//!     (w, tape.mse(a, &y))
//! };
//!
//! let mut tape = Tape::new();
//! let (w_var, loss) = record(&mut tape, &w);
//! tape.backward(loss);
//! let dw = tape.grad(w_var).unwrap().clone();
//!
//! let h = 1e-2;
//! let (mut plus, mut minus) = (w.clone(), w.clone());
//! plus[(1, 2)] += h;
//! minus[(1, 2)] -= h;
//! let loss_plus = { let (_, l) = record(&mut tape, &plus); tape.scalar(l) };
//! let loss_minus = { let (_, l) = record(&mut tape, &minus); tape.scalar(l) };
//! let central = (loss_plus - loss_minus) / (2.0 * h as f64);
//! assert!((central - dw[(1, 2)] as f64).abs() < 1e-4, "{central} vs {}", dw[(1, 2)]);
//! ```

pub mod loss;
mod tape;

pub use loss::{
    cosine_goodness, eq5_loss, margin_loss, mse, predict_classes, softmax_cross_entropy, squared_cosine_loss,
    validate_labels,
};
pub use tape::{Tape, Var};

/// Errors for user-facing input to this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutodiffError {
    /// A class label is not smaller than the number of classes.
    #[error("label {label} at position {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// Position of the first offending label.
        index: usize,
        /// Its value.
        label: u32,
        /// Number of classes (valid labels are `0..classes`).
        classes: usize,
    },
}
