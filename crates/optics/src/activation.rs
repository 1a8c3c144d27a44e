//! Elementwise optical nonlinearities with their Wirtinger derivatives (SPEC A9, B2).
//!
//! Every activation here is *radial*: `f(z) = z·q(|z|²)` for a complex function `q` of the
//! intensity `s = |z|²`. Then (Wirtinger calculus, `∂s/∂z = z̄`, `∂s/∂z̄ = z`)
//! `∂f/∂z = q(s) + s·q'(s)` and `∂f/∂z̄ = z²·q'(s)`, and the real partials are
//! `∂f/∂Re z = ∂f/∂z + ∂f/∂z̄`, `∂f/∂Im z = i(∂f/∂z − ∂f/∂z̄)`.
//! None is holomorphic (`∂f/∂z̄ ≠ 0`), which is why FFM's nonlinear error pass needs both.
//! Formulas are evaluated in f64 (`*_f64` methods) and rounded for the f32 trait methods.

use num_complex::{Complex32, Complex64};
use std::f64::consts::PI;

/// An elementwise complex activation `w = f(z)` with its derivatives.
pub trait Activation: Send + Sync {
    /// `f(z)`.
    fn apply(&self, z: Complex32) -> Complex32;
    /// (∂f/∂z, ∂f/∂z̄) Wirtinger derivatives
    fn wirtinger(&self, z: Complex32) -> (Complex32, Complex32);
    /// (∂f/∂Re z, ∂f/∂Im z): the derivatives along the real and imaginary axes, from the
    /// Wirtinger pair: `f_Re = f_z + f_z̄`, `f_Im = i(f_z − f_z̄)`.
    fn real_partials(&self, z: Complex32) -> (Complex32, Complex32) {
        let (dz, dzb) = self.wirtinger(z);
        (dz + dzb, Complex32::i() * (dz - dzb))
    }
    /// Applies `f` to every element of `z` in place.
    fn apply_slice(&self, z: &mut [Complex32]) {
        for v in z {
            *v = self.apply(*v);
        }
    }
}

/// A radial activation `f(z) = z·q(|z|²)` described by `q` and `q'` in f64.
trait Radial {
    /// `(q(s), q'(s))`.
    fn q(&self, s: f64) -> (Complex64, Complex64);
}

fn radial_apply<R: Radial>(r: &R, z: Complex64) -> Complex64 {
    z * r.q(z.norm_sqr()).0
}

fn radial_wirtinger<R: Radial>(r: &R, z: Complex64) -> (Complex64, Complex64) {
    let s = z.norm_sqr();
    let (q, dq) = r.q(s);
    (q + dq * s, z * z * dq)
}

fn c64(z: Complex32) -> Complex64 {
    Complex64::new(z.re as f64, z.im as f64)
}

fn c32(z: Complex64) -> Complex32 {
    Complex32::new(z.re as f32, z.im as f32)
}

macro_rules! radial_activation {
    ($t:ty) => {
        impl $t {
            /// `f(z)` in f64.
            pub fn apply_f64(&self, z: Complex64) -> Complex64 {
                radial_apply(self, z)
            }
            /// (∂f/∂z, ∂f/∂z̄) in f64.
            pub fn wirtinger_f64(&self, z: Complex64) -> (Complex64, Complex64) {
                radial_wirtinger(self, z)
            }
            /// (∂f/∂Re z, ∂f/∂Im z) in f64.
            pub fn real_partials_f64(&self, z: Complex64) -> (Complex64, Complex64) {
                let (dz, dzb) = radial_wirtinger(self, z);
                (dz + dzb, Complex64::i() * (dz - dzb))
            }
        }
        impl Activation for $t {
            fn apply(&self, z: Complex32) -> Complex32 {
                c32(radial_apply(self, c64(z)))
            }
            fn wirtinger(&self, z: Complex32) -> (Complex32, Complex32) {
                let (a, b) = radial_wirtinger(self, c64(z));
                (c32(a), c32(b))
            }
        }
    };
}

/// The electro-optic activation of Williamson et al. (IEEE JSTQE 26, 7700412 (2020)): a
/// fraction `α` of the power is tapped to a photodetector whose signal drives a phase
/// modulator on the remaining light,
/// `f(z) = i·sqrt(1−α)·exp(−i(g|z|² + φ_b)/2)·cos((g|z|² + φ_b)/2)·z`,
/// power transmission `(1−α)cos²((g|z|² + φ_b)/2)`. `g` is the phase gain per unit input
/// power, `φ_b` the bias phase. `Default` is SPEC A9's reading (neurophox's MNIST notebook):
/// α = 0.1, g = 0.05π, φ_b = π.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectroOptic {
    /// Tapped power fraction α ∈ [0, 1).
    pub alpha: f32,
    /// Phase gain g (radians per unit |z|²).
    pub g: f32,
    /// Bias phase φ_b (radians).
    pub phi_b: f32,
}

impl Default for ElectroOptic {
    fn default() -> Self {
        ElectroOptic {
            alpha: 0.1,
            g: 0.05 * std::f32::consts::PI,
            phi_b: std::f32::consts::PI,
        }
    }
}

impl Radial for ElectroOptic {
    fn q(&self, s: f64) -> (Complex64, Complex64) {
        // exp(−iψ/2)cos(ψ/2) = (1 + e^{−iψ})/2, ψ = g s + φ_b
        let (alpha, g, phi_b) = (self.alpha as f64, self.g as f64, self.phi_b as f64);
        let c = Complex64::new(0.0, (1.0 - alpha).sqrt());
        let e = Complex64::from_polar(1.0, -(g * s + phi_b));
        let q = c * (Complex64::new(1.0, 0.0) + e) * 0.5;
        let dq = c * (-Complex64::i() * e) * 0.5 * g;
        (q, dq)
    }
}
radial_activation!(ElectroOptic);

/// Seed 002's optoelectronic nonlinearity `f(z) = z·e^{i|z|²}` (a detector-driven phase shift
/// proportional to intensity, no loss).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Optoelectronic;

impl Radial for Optoelectronic {
    fn q(&self, s: f64) -> (Complex64, Complex64) {
        let e = Complex64::from_polar(1.0, s);
        (e, Complex64::i() * e)
    }
}
radial_activation!(Optoelectronic);

/// Seed 002's photorefractive nonlinearity `f(z) = z·e^{iπ|z|²/(1+|z|²)}` (saturable
/// intensity-dependent phase, at most π).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Photorefractive;

impl Radial for Photorefractive {
    fn q(&self, s: f64) -> (Complex64, Complex64) {
        let p = PI * s / (1.0 + s);
        let dp = PI / ((1.0 + s) * (1.0 + s));
        let e = Complex64::from_polar(1.0, p);
        (e, Complex64::i() * e * dp)
    }
}
radial_activation!(Photorefractive);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn check_fd<F, W>(f: F, w: W, name: &str)
    where
        F: Fn(Complex64) -> Complex64,
        W: Fn(Complex64) -> (Complex64, Complex64),
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let h = 1e-6;
        for _ in 0..200 {
            let z = Complex64::new(rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
            let d_re = (f(z + h) - f(z - h)) / (2.0 * h);
            let d_im = (f(z + Complex64::i() * h) - f(z - Complex64::i() * h)) / (2.0 * h);
            let (dz, dzb) = w(z);
            // Wirtinger from real partials
            let want_dz = (d_re - Complex64::i() * d_im) * 0.5;
            let want_dzb = (d_re + Complex64::i() * d_im) * 0.5;
            let scale = 1.0 + d_re.norm() + d_im.norm();
            assert!(
                (dz - want_dz).norm() < 1e-7 * scale,
                "{name}: df/dz at {z}: {dz} vs {want_dz}"
            );
            assert!(
                (dzb - want_dzb).norm() < 1e-7 * scale,
                "{name}: df/dzbar at {z}: {dzb} vs {want_dzb}"
            );
        }
    }

    #[test]
    fn electro_optic_wirtinger_matches_finite_differences() {
        for act in [
            ElectroOptic::default(),
            ElectroOptic {
                alpha: 0.3,
                g: 1.7,
                phi_b: -0.4,
            },
        ] {
            check_fd(|z| act.apply_f64(z), |z| act.wirtinger_f64(z), "electro-optic");
        }
    }

    #[test]
    fn optoelectronic_wirtinger_matches_finite_differences() {
        let act = Optoelectronic;
        check_fd(|z| act.apply_f64(z), |z| act.wirtinger_f64(z), "optoelectronic");
    }

    #[test]
    fn photorefractive_wirtinger_matches_finite_differences() {
        let act = Photorefractive;
        check_fd(|z| act.apply_f64(z), |z| act.wirtinger_f64(z), "photorefractive");
    }

    #[test]
    fn electro_optic_matches_the_written_formula_and_transmission() {
        let act = ElectroOptic {
            alpha: 0.2,
            g: 0.7,
            phi_b: 0.9,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..100 {
            let z = Complex64::new(rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
            let psi = 0.7f32 as f64 * z.norm_sqr() + 0.9f32 as f64;
            let want = Complex64::i()
                * (1.0 - 0.2f32 as f64).sqrt()
                * Complex64::from_polar(1.0, -psi / 2.0)
                * (psi / 2.0).cos()
                * z;
            let got = act.apply_f64(z);
            assert!((got - want).norm() < 1e-12);
            let transmission = got.norm_sqr() / z.norm_sqr();
            assert!((transmission - (1.0 - 0.2f32 as f64) * (psi / 2.0).cos().powi(2)).abs() < 1e-12);
        }
    }

    #[test]
    fn f32_trait_methods_agree_with_f64_and_real_partials() {
        let acts: [&dyn Activation; 3] = [&ElectroOptic::default(), &Optoelectronic, &Photorefractive];
        let z = Complex32::new(0.7, -0.4);
        let h = 1e-3f32;
        for a in acts {
            let (d_re, d_im) = a.real_partials(z);
            let fd_re = (a.apply(z + h) - a.apply(z - h)) / (2.0 * h);
            let fd_im = (a.apply(z + Complex32::i() * h) - a.apply(z - Complex32::i() * h)) / (2.0 * h);
            assert!((d_re - fd_re).norm() < 1e-3, "{d_re} {fd_re}");
            assert!((d_im - fd_im).norm() < 1e-3, "{d_im} {fd_im}");
        }
        assert_eq!(Optoelectronic.apply(z), c32(Optoelectronic.apply_f64(c64(z))));
    }
}
