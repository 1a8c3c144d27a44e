//! Integrated-photonics building blocks of seed 002 B4: the symmetric 2×2 core of the PIC
//! network and the coupled-mode waveguide pair with gain/loss (exceptional point). Both are
//! symmetric matrices, so FFM's error pass through them is a forward pass.

use num_complex::Complex64;

use crate::error::{finite, OpticsError};

/// A symmetric 2×2 core `[[w1, w2], [w2, w4]]` acting on a pair of adjacent channels
/// (SPEC B4: non-negative attenuations on intensities, incoherent, `w_n2 = w_n3`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymmetricCore {
    /// Top-left weight.
    pub w1: f32,
    /// Off-diagonal weight (both off-diagonal entries).
    pub w2: f32,
    /// Bottom-right weight.
    pub w4: f32,
}

impl SymmetricCore {
    /// The matrix `[[w1, w2], [w2, w4]]`, row-major.
    pub fn matrix(&self) -> [f32; 4] {
        [self.w1, self.w2, self.w2, self.w4]
    }

    /// `y = W x` for one pair of channel intensities.
    pub fn apply(&self, x: [f32; 2]) -> [f32; 2] {
        [self.w1 * x[0] + self.w2 * x[1], self.w2 * x[0] + self.w4 * x[1]]
    }
}

/// Two coupled waveguides in coupled-mode theory: `da/dz = i H a`,
/// `H = [[β₁ + iγ₁, κ], [κ, β₂ + iγ₂]]` (γ > 0 is loss, γ < 0 gain, in the `exp(−iωt)`
/// convention `e^{i(β+iγ)z} = e^{iβz}e^{−γz}`), over length `length`: `T = exp(i H L)`.
/// `H = Hᵀ`, so `T = Tᵀ` (reciprocal) even with gain and loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoupledWaveguides {
    /// Propagation constant of guide 1 (rad/m).
    pub beta1: f64,
    /// Propagation constant of guide 2 (rad/m).
    pub beta2: f64,
    /// Field loss rate of guide 1 (1/m; negative = gain).
    pub gamma1: f64,
    /// Field loss rate of guide 2 (1/m; negative = gain).
    pub gamma2: f64,
    /// Coupling coefficient κ (1/m).
    pub kappa: f64,
    /// Length in metres.
    pub length: f64,
}

impl CoupledWaveguides {
    fn check(&self) -> Result<(), OpticsError> {
        for (w, v) in [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("gamma1", self.gamma1),
            ("gamma2", self.gamma2),
            ("kappa", self.kappa),
            ("length", self.length),
        ] {
            finite(w, v)?;
        }
        Ok(())
    }

    /// The coupling matrix `H`, row-major.
    pub fn hamiltonian(&self) -> [Complex64; 4] {
        let k = Complex64::new(self.kappa, 0.0);
        [
            Complex64::new(self.beta1, self.gamma1),
            k,
            k,
            Complex64::new(self.beta2, self.gamma2),
        ]
    }

    /// Eigenvalues `λ± = (h₁ + h₂)/2 ± sqrt(((h₁ − h₂)/2)² + κ²)` of `H` (`h_j = β_j + iγ_j`);
    /// they coalesce at an exceptional point.
    pub fn eigenvalues(&self) -> (Complex64, Complex64) {
        let h = self.hamiltonian();
        let mean = (h[0] + h[3]) * 0.5;
        let root = (((h[0] - h[3]) * 0.5).powi(2) + self.kappa * self.kappa).sqrt();
        (mean + root, mean - root)
    }

    /// The transfer matrix `T = exp(i H L)`, row-major, in closed form:
    /// with `A = iHL = a₀I + M`, `M² = δ²I`: `exp(A) = e^{a₀}(cosh δ·I + (sinh δ/δ)·M)`.
    pub fn transfer(&self) -> Result<[Complex64; 4], OpticsError> {
        self.check()?;
        let h = self.hamiltonian();
        let il = Complex64::new(0.0, self.length);
        let a: Vec<Complex64> = h.iter().map(|v| v * il).collect();
        let a0 = (a[0] + a[3]) * 0.5;
        let m = [a[0] - a0, a[1], a[2], a[3] - a0];
        let delta = (m[0] * m[0] + m[1] * m[2]).sqrt();
        let shc = if delta.norm() < 1e-8 {
            Complex64::new(1.0, 0.0) + delta * delta / 6.0
        } else {
            delta.sinh() / delta
        };
        let e = a0.exp();
        let ch = delta.cosh();
        Ok([
            e * (ch + shc * m[0]),
            e * shc * m[1],
            e * shc * m[2],
            e * (ch + shc * m[3]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mul(a: &[Complex64; 4], b: &[Complex64; 4]) -> [Complex64; 4] {
        [
            a[0] * b[0] + a[1] * b[2],
            a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3],
        ]
    }

    /// exp(A) by scaling and squaring of a Taylor series: an independent reference.
    fn expm_reference(a: [Complex64; 4]) -> [Complex64; 4] {
        let s = 20;
        let scaled: Vec<Complex64> = a.iter().map(|v| v / (1u64 << s) as f64).collect();
        let sc = [scaled[0], scaled[1], scaled[2], scaled[3]];
        let one = Complex64::new(1.0, 0.0);
        let zero = Complex64::new(0.0, 0.0);
        let mut term = [one, zero, zero, one];
        let mut sum = term;
        for k in 1..12 {
            term = mul(&term, &sc).map(|v| v / k as f64);
            for i in 0..4 {
                sum[i] += term[i];
            }
        }
        for _ in 0..s {
            sum = mul(&sum, &sum);
        }
        sum
    }

    #[test]
    fn coupled_waveguides_transfer_is_the_matrix_exponential_and_symmetric() {
        for wg in [
            CoupledWaveguides {
                beta1: 1.0,
                beta2: 1.3,
                gamma1: 0.2,
                gamma2: -0.1,
                kappa: 0.7,
                length: 2.0,
            },
            CoupledWaveguides {
                beta1: 0.5,
                beta2: 0.5,
                gamma1: 0.4,
                gamma2: -0.4,
                kappa: 0.4,
                length: 1.5,
            }, // EP
            CoupledWaveguides {
                beta1: 0.0,
                beta2: 0.3,
                gamma1: 0.0,
                gamma2: 0.0,
                kappa: 1.1,
                length: 3.0,
            },
        ] {
            let t = wg.transfer().unwrap();
            let h = wg.hamiltonian();
            let want = expm_reference(h.map(|v| v * Complex64::new(0.0, wg.length)));
            for i in 0..4 {
                assert!((t[i] - want[i]).norm() < 1e-9, "{wg:?}: {} vs {}", t[i], want[i]);
            }
            assert!((t[1] - t[2]).norm() < 1e-14, "T must be symmetric");
        }
        // lossless coupler is unitary
        let t = CoupledWaveguides {
            beta1: 0.0,
            beta2: 0.3,
            gamma1: 0.0,
            gamma2: 0.0,
            kappa: 1.1,
            length: 3.0,
        }
        .transfer()
        .unwrap();
        assert!((t[0].norm_sqr() + t[2].norm_sqr() - 1.0).abs() < 1e-12);
        // exceptional point: eigenvalues coalesce when β₁ = β₂ and κ = |γ₁ − γ₂|/2
        let ep = CoupledWaveguides {
            beta1: 0.5,
            beta2: 0.5,
            gamma1: 0.4,
            gamma2: -0.4,
            kappa: 0.4,
            length: 1.0,
        };
        let (a, b) = ep.eigenvalues();
        assert!((a - b).norm() < 1e-6);
        assert!(CoupledWaveguides { length: f64::NAN, ..ep }.transfer().is_err());
    }

    #[test]
    fn symmetric_core_applies_its_matrix() {
        let c = SymmetricCore {
            w1: 0.9,
            w2: 0.3,
            w4: 0.5,
        };
        assert_eq!(c.apply([1.0, 2.0]), [0.9 + 0.6, 0.3 + 1.0]);
        let m = c.matrix();
        assert_eq!(m[1], m[2]);
    }
}
