//! Elementwise activations between layers, seen through their Wirtinger derivatives
//! (SPEC B2, "Nonlinear FFM").

use num_complex::Complex;

use crate::scalar::Real;

/// An elementwise, generally non-holomorphic map `w = f(u)` with its Wirtinger derivatives
/// `(∂f/∂u, ∂f/∂ū)`: the precision-generic view of an activation the FFM core needs.
pub trait ElementwiseActivation<F: Real>: Sync {
    /// `f(u)`.
    fn apply(&self, u: Complex<F>) -> Complex<F>;
    /// `(∂f/∂u, ∂f/∂ū)` at `u`.
    fn wirtinger(&self, u: Complex<F>) -> (Complex<F>, Complex<F>);
}
