//! # insitu-optics — the optics simulator
//!
//! **What it is for.** The physical components the two papers train, simulated so that the
//! conventions are explicit and documented (`docs/optics.md`):
//! - free-space propagation on a square grid (exact, Fresnel and band-limited angular spectrum,
//!   zero-padded, symmetric `T = Tᵀ` on the grid; SPEC B1, seed 002 Methods), thin lenses,
//!   apertures, phase and amplitude masks;
//! - elementwise optical nonlinearities with Wirtinger derivatives: the electro-optic activation
//!   of Williamson et al. (SPEC A9, seed 000's photonic emulation) and seed 002's optoelectronic
//!   and photorefractive activations (SPEC B2);
//!
//! **Conventions.** Time dependence `exp(−iωt)`; propagation over `z` multiplies the angular
//! spectrum by `exp(+i k_z z)`. Fields are row-major `n × n` slices (`row * n + col`), sample
//! `j` at `dx·(j − n/2)`.
//!
//! **What it must not do.** No I/O, no printing, no learning logic (gradients, optimisers and
//! losses live in insitu-ffzero / insitu-ffm); no hidden randomness (every random draw takes an
//! explicit seeded generator); no allocation inside the per-propagation / per-batch kernels.

pub mod activation;
pub mod detector;
pub mod elements;
pub mod error;
pub mod fft;
pub mod freespace;
pub mod imperfections;
pub mod mzi;

pub use activation::{Activation, ElectroOptic, Optoelectronic, Photorefractive};
pub use detector::{intensity, DetectorRegions, PhotonDetector};
pub use elements::{
    apply_amplitude_mask, apply_complex_mask, apply_phase_mask, CircularAperture, RectangularAperture, ThinLens,
};
pub use error::OpticsError;
pub use fft::Fft2;
pub use freespace::{fft_frequency, transfer_function, FreeSpace, Grid, PropagationMethod};
pub use imperfections::{
    correlated_noise, BeamsplitterError, DiffuseReflector, DistanceError, MaskShift, ModulatorResponse,
    RandomPhaseScatterer, SmoothRandomPhase, ZernikeAberration,
};
pub use mzi::{clements_decomposition, mzi_transfer, MeshPhases64, RectangularMesh};
pub use num_complex::{Complex32, Complex64};
