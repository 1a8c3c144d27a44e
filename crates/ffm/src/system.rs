//! What a trainer may do with an optical system (SPEC B3), and the digital model.
//!
//! [`PhysicalSystem`] is the whole interface of the bench: load a complex field, show a phase
//! pattern on one layer's modulator, let the light cross one layer's fixed propagation, and
//! measure the complex field that comes out (phase-shifting holography, with its noise). There
//! is no adjoint and no way to read the system's internals: an in-situ trainer that receives a
//! `PhysicalSystem` can only run it forward. [`DigitalChain`] is the noise-free digital model
//! `y = T_L M_L ⋯ T_1 M_1 x`, which implements the same interface (so in-silico training uses the
//! same FFM code) and, when its components expose `Tᴴ`, the reverse-mode baseline.

use num_complex::Complex;

use crate::component::{AdjointPropagation, Propagation};
use crate::scalar::Real;

/// A forward-only optical system of `num_layers` layers (modulator `M_l` then propagation `T_l`).
pub trait PhysicalSystem<F: Real = f32> {
    /// Number of layers `L`.
    fn num_layers(&self) -> usize;
    /// Number of complex entries of a field (modulator pixels).
    fn field_len(&self) -> usize;
    /// Loads `field`, passes it through the modulator of layer `modulator.0` showing the phase
    /// pattern `modulator.1` (or through no modulator when `None`), then through the fixed
    /// propagation of layer `propagation`, and overwrites `field` with the measured output.
    /// `shot` labels the measurement: the measurement noise of a shot is a function of the
    /// system's own seed and `shot` only, so results do not depend on thread scheduling.
    ///
    /// # Panics
    /// On a layer index `≥ num_layers()` or a field / pattern of the wrong length (programming
    /// errors of the trainer).
    fn run(&mut self, modulator: Option<(usize, &[F])>, propagation: usize, field: &mut [Complex<F>], shot: u64);
}

/// Multiplies `field` by `e^{iφ}` elementwise (an ideal phase-only modulator).
pub fn apply_phase_mask<F: Real>(phase: &[F], field: &mut [Complex<F>]) {
    assert_eq!(phase.len(), field.len(), "phase mask and field lengths differ");
    for (f, &p) in field.iter_mut().zip(phase) {
        *f *= F::cis(p);
    }
}

/// The ideal digital model: ideal phase-only modulators and the given propagations.
#[derive(Clone, Debug)]
pub struct DigitalChain<P> {
    propagations: Vec<P>,
}

impl<P> DigitalChain<P> {
    /// A chain of `propagations.len()` layers. Returns `None` when there is no layer or the
    /// components disagree on the field length.
    pub fn new<F: Real>(propagations: Vec<P>) -> Option<Self>
    where
        P: Propagation<F>,
    {
        let n = propagations.first()?.field_len();
        if propagations.iter().any(|p| p.field_len() != n) {
            return None;
        }
        Some(Self { propagations })
    }

    /// The propagation components.
    pub fn propagations(&self) -> &[P] {
        &self.propagations
    }
}

impl<F: Real, P: Propagation<F>> PhysicalSystem<F> for DigitalChain<P> {
    fn num_layers(&self) -> usize {
        self.propagations.len()
    }
    fn field_len(&self) -> usize {
        self.propagations[0].field_len()
    }
    fn run(&mut self, modulator: Option<(usize, &[F])>, propagation: usize, field: &mut [Complex<F>], _shot: u64) {
        if let Some((layer, phase)) = modulator {
            assert!(layer < self.propagations.len(), "modulator index {layer} out of range");
            apply_phase_mask(phase, field);
        }
        self.propagations[propagation].propagate(field);
    }
}

impl<P> DigitalChain<P> {
    /// `field ← T_lᴴ field` with the digital model's adjoint (the reverse-mode baseline only).
    pub fn propagate_adjoint<F: Real>(&mut self, layer: usize, field: &mut [Complex<F>])
    where
        P: AdjointPropagation<F>,
    {
        self.propagations[layer].propagate_adjoint(field);
    }
}
