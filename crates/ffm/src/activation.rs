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

/// Every insitu-optics activation, in the f32 training kernels.
impl<A: insitu_optics::Activation + ?Sized> ElementwiseActivation<f32> for A {
    fn apply(&self, u: Complex<f32>) -> Complex<f32> {
        insitu_optics::Activation::apply(self, u)
    }
    fn wirtinger(&self, u: Complex<f32>) -> (Complex<f32>, Complex<f32>) {
        insitu_optics::Activation::wirtinger(self, u)
    }
}

macro_rules! f64_activation {
    ($t:ty) => {
        /// The same activation in f64 (gradient checks), from insitu-optics' f64 formulas.
        impl ElementwiseActivation<f64> for $t {
            fn apply(&self, u: Complex<f64>) -> Complex<f64> {
                self.apply_f64(u)
            }
            fn wirtinger(&self, u: Complex<f64>) -> (Complex<f64>, Complex<f64>) {
                self.wirtinger_f64(u)
            }
        }
    };
}
f64_activation!(insitu_optics::Optoelectronic);
f64_activation!(insitu_optics::Photorefractive);
f64_activation!(insitu_optics::ElectroOptic);
