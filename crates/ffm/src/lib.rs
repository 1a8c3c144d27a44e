//! # insitu-ffm — fully forward mode (FFM) learning of optical systems
//!
//! **What it is for.** Training the phase masks of an optical system on the system itself,
//! from forward propagations only (seed 002, Xue et al., Nature 632, 280 (2024)):
//! * the FFM gradient of a chain `y = T_L M_L ⋯ T_1 M_1 x` of phase masks and fixed reciprocal
//!   propagations (`Tᵀ = T`) from a data propagation and an error propagation that sends
//!   `conj(∂L/∂ȳ)` *forward* through the same components in reverse order
//!   (seed 002 main text eq. 2 and "FFM learning"; SPEC B2) — [`ffm_gradient`];
//! * nonlinear FFM with elementwise non-holomorphic activations crossed by
//!   `ε ← f_u ε + conj(f_ū) conj(ε)` (seed 002 Fig. 2f; SPEC B2);
//! * the reverse-mode (adjoint) gradient of the digital model as a baseline
//!   ([`adjoint_gradient`]), which needs `Tᴴ`;
//! * both gradients of a small dense system given as plain data, with each transfer's
//!   asymmetry `‖T − Tᵀ‖_F/‖T‖_F` ([`gradients_of_dense_system`], for `insitu ffm gradient`);
//! * field, intensity and max-normalised classification losses (seed 002 Methods; SPEC B3);
//! * the in-situ / in-silico / ideal comparison on deep free-space classifiers
//!   (seed 002 Fig. 2d, Methods "Free-space neural network"; SPEC B3) — [`classifier`].
//!
//! The derivations (sign conventions, why `e_l = conj(∂L/∂ū_l)` needs `T = Tᵀ`, the activation
//! rule, the max-normalisation) are in `docs/ffm.md`.
//!
//! **What it must not do.** An in-situ trainer receives a [`PhysicalSystem`]: it may load a
//! field and a mask, propagate through one layer and measure, nothing else — no adjoint, no
//! access to the digital model. No I/O or printing; all randomness from seeded streams.

pub mod activation;
pub mod bench;
pub mod classifier;
pub mod component;
pub mod dense;
pub mod gradient;
pub mod loss;
pub mod scalar;
pub mod system;

pub use activation::ElementwiseActivation;
pub use bench::{CountingSystem, ImperfectBench, Imperfections};
pub use classifier::{
    run, run_with_progress, ActivationKind, ClassifierLoss, FfmResult, FfmSpec, FfmTask, TrainingMode,
};
pub use component::{AdjointPropagation, DenseTransfer, Propagation};
pub use dense::{gradients_of_dense_system, transpose_asymmetry, DenseLayer, DenseLoss, DenseSystemGradients};
pub use gradient::{adjoint_gradient, data_pass, ffm_gradient, Activations, FfmWorkspace};
pub use loss::FieldLoss;
pub use scalar::Real;
pub use system::{apply_phase_mask, DigitalChain, PhysicalSystem};

/// Errors of the FFM crate: bad specs or data, and the simulator's own errors.
#[derive(Debug, thiserror::Error)]
pub enum FfmError {
    /// A spec field or a data set does not make sense (the message says which and why).
    #[error("invalid FFM run: {0}")]
    InvalidSpec(String),
    /// The optics simulator rejected a parameter.
    #[error(transparent)]
    Optics(#[from] insitu_optics::OpticsError),
}
