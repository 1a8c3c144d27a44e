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
//!   (seed 002 Fig. 2d, Methods "Free-space neural network"; SPEC B3) — [`classifier`];
//! * checkpoints of those runs, from which a killed run resumes with the result it would have
//!   had, bit for bit — [`checkpoint`];
//! * the integrated photonic network of symmetric cores trained on Iris, ideally, in silico or
//!   with FFM on a simulated fabricated chip through its forward runs only (seed 002 Fig. 5,
//!   Methods "PIC network"; SPEC B4) — [`pic`];
//! * the gain and loss of two coupled waveguides learned from forward runs across their
//!   exceptional point (seed 002 Extended Data Fig. 1; SPEC B4) — [`exceptional`];
//! * a phase mask learned to focus through a scattering medium, FFM against particle-swarm
//!   optimisation (seed 002 Fig. 3; SPEC B4) — [`focusing`];
//! * objects hidden around a corner imaged and classified through a diffuse wall, the latter
//!   under photon-limited detection against an electronic classifier (seed 002 Fig. 4; SPEC B4),
//!   classified while the wall turns (Extended Data Fig. 4b) and hidden phase digits imaged onto
//!   the camera (Extended Data Fig. 4a) — [`nlos`]; both on a [`ScreenPath`] of propagations
//!   through diagonal screens.
//!
//! The derivations (sign conventions, why `e_l = conj(∂L/∂ū_l)` needs `T = Tᵀ`, the activation
//! rule, the max-normalisation) are in `docs/ffm.md`.
//!
//! **What it must not do.** An in-situ trainer receives a [`PhysicalSystem`]: it may load a
//! field and a mask, propagate through one layer and measure, nothing else — no adjoint, no
//! access to the digital model. No printing, and no file I/O of its own (a checkpoint goes to
//! the [`CheckpointSink`] the caller gives, e.g. an `insitu_data::CheckpointFile`); all
//! randomness from seeded streams keyed by seed, epoch, step and sample, never a stream that
//! runs across mini-batches (a checkpoint would then have to hold it).
//!
//! # Example: FFM gradients from forward runs only
//!
//! A three-layer system of phase masks and reciprocal transfers `T = U·Uᵀ` (`U` Haar-random;
//! symmetric and lossless). A physical system is anything that implements
//! [`PhysicalSystem`]; this one wraps the digital model and counts its runs. The FFM gradient
//! (data propagation, then the error sent *forward*) takes `2L` runs and equals the
//! reverse-mode gradient, which needs `Tᴴ`.
//!
//! ```
//! use insitu_ffm::{adjoint_gradient, ffm_gradient, DenseTransfer, DigitalChain, FfmWorkspace, FieldLoss, PhysicalSystem};
//! use insitu_linalg::{haar_unitary, rng, CMat64, Complex64};
//! use rand::Rng;
//!
//! struct CountedBench {
//!     model: DigitalChain<DenseTransfer<f64>, f64>,
//!     runs: u64,
//! }
//!
//! impl PhysicalSystem<f64> for CountedBench {
//!     fn num_layers(&self) -> usize {
//!         self.model.num_layers()
//!     }
//!     fn field_len(&self) -> usize {
//!         self.model.field_len()
//!     }
//!     fn run(&mut self, modulator: Option<(usize, &[f64])>, layer: usize, field: &mut [Complex64], shot: u64) {
//!         self.runs += 1;
//!         self.model.run(modulator, layer, field, shot);
//!     }
//! }
//!
//! let (layers, n) = (3, 16);
//! let mut r = rng(3);
//! let transfers = (0..layers)
//!     .map(|_| {
//!         let u: CMat64 = haar_unitary(n, &mut r);
//!         DenseTransfer::new(&u * u.transpose()).unwrap()
//!     })
//!     .collect();
//! let mut bench = CountedBench { model: DigitalChain::new(transfers).unwrap(), runs: 0 };
//! let phases: Vec<Vec<f64>> = (0..layers).map(|_| (0..n).map(|_| r.random_range(0.0..6.28)).collect()).collect();
//! let input: Vec<Complex64> = (0..n).map(|i| Complex64::new(1.0, 0.1 * i as f64)).collect();
//! let target: Vec<f64> = (0..n).map(|i| if i < 4 { 4.0 } else { 0.0 }).collect();
//! let loss = FieldLoss::IntensityMse(&target);
//! let mut workspace = FfmWorkspace::new(layers, n);
//! let linear = &[]; // no activations
//!
//! let mut ffm = vec![vec![0.0; n]; layers];
//! ffm_gradient(&mut bench, &phases, linear, &input, &loss, &mut workspace, &mut ffm, 0);
//! assert_eq!(bench.runs, 2 * layers as u64);
//!
//! let mut reverse_mode = vec![vec![0.0; n]; layers];
//! adjoint_gradient(&mut bench.model, &phases, linear, &input, &loss, &mut workspace, &mut reverse_mode);
//! for (f, a) in ffm.iter().flatten().zip(reverse_mode.iter().flatten()) {
//!     assert!((f - a).abs() < 1e-9 * (1.0 + a.abs()), "{f} vs {a}");
//! }
//! ```

pub mod activation;
pub mod bench;
pub mod checkpoint;
pub mod classifier;
pub mod component;
pub mod dense;
pub mod exceptional;
pub mod focusing;
pub mod gradient;
pub mod loss;
pub mod nlos;
pub mod path;
pub mod pic;
pub mod scalar;
mod swarm;
pub mod system;

pub use activation::ElementwiseActivation;
pub use bench::{CountingSystem, ImperfectBench, Imperfections};
pub use checkpoint::{CheckpointSink, FfmCheckpoint, NoCheckpoints, CHECKPOINT_KIND};
pub use classifier::{
    evaluate_phases, phases_from_npy, phases_to_npy, run, run_resumable, run_with_progress, ActivationKind,
    ClassifierLoss, FfmResult, FfmSpec, FfmTask, FfmTrained, TestSystem, TrainingMode,
};
pub use component::{AdjointPropagation, DenseTransfer, Propagation};
pub use dense::{gradients_of_dense_system, transpose_asymmetry, DenseLayer, DenseLoss, DenseSystemGradients};
pub use gradient::{adjoint_gradient, data_pass, ffm_gradient, Activations, FfmWorkspace};
pub use loss::FieldLoss;
pub use path::ScreenPath;
pub use scalar::Real;
pub use system::{apply_phase_mask, DigitalChain, PhysicalSystem};

/// Errors of the FFM crate: bad specs or data, and the simulator's own errors.
#[derive(Debug, thiserror::Error)]
pub enum FfmError {
    /// A spec field or a data set does not make sense (the message says which and why).
    #[error("invalid FFM run: {0}")]
    InvalidSpec(String),
    /// A checkpoint could not be saved, or does not belong to the run resumed from it.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Reading or writing a checkpoint file failed, or the file is unusable.
    #[error(transparent)]
    Data(#[from] insitu_data::DataError),
    /// The optics simulator rejected a parameter.
    #[error(transparent)]
    Optics(#[from] insitu_optics::OpticsError),
}

/// The first of `fields` (name, value) that is not finite and positive, as a spec error.
pub(crate) fn require_positive(fields: &[(&str, f64)]) -> Result<(), FfmError> {
    match fields.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some((name, v)) => Err(FfmError::InvalidSpec(format!("{name} must be finite and > 0, got {v}"))),
        None => Ok(()),
    }
}

/// An aperture given as a fraction of the grid must be in `(0, 1]`.
pub(crate) fn require_aperture_fraction(fraction: f64) -> Result<(), FfmError> {
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(())
    } else {
        Err(FfmError::InvalidSpec(format!(
            "aperture_fraction must be in (0, 1], got {fraction}"
        )))
    }
}
