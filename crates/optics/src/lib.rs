//! # insitu-optics — the optics simulator
//!
//! **What it is for.** The physical components the two papers train, simulated with explicit,
//! documented conventions (`docs/optics.md`; users may depend on this crate alone):
//! - [`mzi`]: the MZI and the rectangular (Clements) mesh in neurophox's convention written for
//!   column vectors (SPEC A9, seed 000's photonic emulation): allocation-free batch application,
//!   the unitary, Haar initialisation (Pai et al. 2019), the Clements decomposition, coupler
//!   errors and phase quantisation; parameters as one flat slice for gradient estimators;
//! - [`activation`]: elementwise nonlinearities with Wirtinger derivatives — the electro-optic
//!   activation of Williamson et al. (SPEC A9) and seed 002's optoelectronic and photorefractive
//!   activations (SPEC B2);
//! - [`freespace`]: angular-spectrum, Fresnel and band-limited angular-spectrum propagation on a
//!   square grid, zero-padded, symmetric `T = Tᵀ` on the grid (SPEC B1, seed 002 Methods);
//!   [`elements`]: thin lenses, apertures, phase / amplitude masks;
//! - [`detector`]: intensity, the 3-4-3 ten-region detector (SPEC B3 reading), photon-limited
//!   camera noise; [`imperfections`]: seeded reciprocal imperfections that make a "physical"
//!   system differ from its digital model (SPEC B3, B4); [`pic`]: the symmetric 2×2 core and the
//!   coupled waveguide pair with gain/loss (SPEC B4).
//!
//! **Conventions.** Time dependence `exp(−iωt)`; propagation over `z` multiplies the angular
//! spectrum by `exp(+i k_z z)`. Fields are row-major `n × n` slices (`row * n + col`), sample
//! `j` at `dx·(j − n/2)`. Mesh: `y = U x`, `U = Layer_{L−1} ⋯ Layer_0 · diag(e^{iγ})`
//! (neurophox's `.matrix` is `Uᵀ`).
//!
//! **What it must not do.** No I/O, no printing, no learning logic (gradients, optimisers and
//! losses live in insitu-ffzero / insitu-ffm); no hidden randomness (every random draw takes an
//! explicit seeded generator); no allocation inside the per-propagation / per-batch kernels.
//!
//! # Example
//!
//! A Haar-random 8-mode Clements mesh conserves power and is rebuilt from its own unitary; a
//! band-limited free-space propagation is reciprocal, `a·(T b) = b·(T a)` (no conjugate), the
//! symmetry FFM learning's forward error propagation rests on.
//!
//! ```
//! use insitu_linalg::{rng, CMat};
//! use insitu_optics::{Complex32, FreeSpace, Grid, OpticsError, PropagationMethod, RectangularMesh};
//!
//! let mut r = rng(1);
//! let mesh = RectangularMesh::haar_rect(8, &mut r)?;
//! let mut fields = CMat::from_fn(8, 4, |i, j| Complex32::new((i + j) as f32, 1.0 - i as f32));
//! let power = fields.norm_squared();
//! mesh.apply_batch(&mut fields)?; // four fields, one per column, in place
//! assert!((fields.norm_squared() - power).abs() < 1e-5 * power);
//!
//! let u = mesh.matrix64();
//! let rebuilt = RectangularMesh::from_unitary(&u, 1e-9)?; // Clements decomposition
//! assert!((rebuilt.matrix64() - &u).norm() < 1e-5);
//!
//! // 64 × 64 samples at 8 µm, 532 nm light, 5 cm, zero-padded to 128 × 128.
//! let grid = Grid::new(64, 8e-6)?;
//! let method = PropagationMethod::BandLimitedAngularSpectrum;
//! let mut free_space = FreeSpace::new(grid, 532e-9, 0.05, method, 2)?;
//! let a: Vec<Complex32> = (0..64 * 64).map(|i| Complex32::new((i % 7) as f32, (i % 5) as f32)).collect();
//! let b: Vec<Complex32> = (0..64 * 64).map(|i| Complex32::new((i % 3) as f32, -((i % 11) as f32))).collect();
//! let (mut ta, mut tb) = (a.clone(), b.clone());
//! free_space.propagate(&mut ta);
//! free_space.propagate(&mut tb);
//! let bilinear = |u: &[Complex32], v: &[Complex32]| u.iter().zip(v).map(|(x, y)| x * y).sum::<Complex32>();
//! let (a_tb, b_ta) = (bilinear(&a, &tb), bilinear(&b, &ta));
//! assert!((a_tb - b_ta).norm() < 1e-4 * a_tb.norm(), "{a_tb} vs {b_ta}");
//! # Ok::<(), OpticsError>(())
//! ```

pub mod activation;
pub mod detector;
pub mod elements;
pub mod error;
pub mod fft;
pub mod freespace;
pub mod imperfections;
pub mod mzi;
pub mod pic;

pub use activation::{Activation, ElectroOptic, Optoelectronic, Photorefractive};
pub use detector::{intensity, DetectorRegions, PhotonDetector};
pub use elements::{
    apply_amplitude_mask, apply_complex_mask, apply_phase_mask, CircularAperture, RectangularAperture, ThinLens,
};
pub use error::OpticsError;
pub use fft::Fft2;
pub use freespace::{fft_frequency, transfer_function, FreeSpace, Grid, PropagationMethod, MAX_PADDED_SIDE};
pub use imperfections::{
    correlated_noise, rotate_periodic, BeamsplitterError, DiffuseReflector, DistanceError, MaskShift,
    ModulatorResponse, RandomPhaseScatterer, SmoothRandomPhase, ZernikeAberration,
};
pub use mzi::{clements_decomposition, mzi_transfer, MeshPhases64, MeshTransfer, RectangularMesh};
pub use num_complex::{Complex32, Complex64};
pub use pic::{CoupledWaveguides, SymmetricCore};
