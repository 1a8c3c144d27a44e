//! Losses on the output field `y` and their Wirtinger gradients `δ_y = ∂L/∂ȳ` (SPEC B2, B3).
//!
//! Convention: for a real `L(y, ȳ)`, `dL = 2·Re Σ conj(δ_y)·dy` with `δ_y = ∂L/∂ȳ`. The FFM
//! error propagation is then fed `conj(δ_y)` (see `docs/ffm.md`). All losses are **sums** over
//! the output entries, not means.

use num_complex::Complex;

use crate::scalar::Real;

/// A loss on the output field together with its target.
#[derive(Clone, Copy, Debug)]
pub enum FieldLoss<'a, F: Real> {
    /// `L = Σ |y − t|²`, `∂L/∂ȳ = y − t`.
    FieldMse(&'a [Complex<F>]),
    /// `L = Σ (|y|² − I)²`, `∂L/∂ȳ = 2(|y|² − I)·y`.
    IntensityMse(&'a [F]),
    /// SPEC B3 (classification): `p = |y|²/max|y|²`, `L = Σ (p − t)²` against a binary target
    /// image `t`. The gradient treats the arg-max pixel `k` as fixed (the loss is differentiable
    /// wherever the maximum is unique; elsewhere this is a subgradient):
    /// `∂L/∂I_j = 2(p_j − t_j)/m − [j = k]·Σ_i 2(p_i − t_i)·I_i/m²`, `∂L/∂ȳ_j = ∂L/∂I_j · y_j`.
    /// An all-zero output gives loss `Σ t²` and a zero gradient.
    NormalizedIntensityMse(&'a [F]),
    /// Detector-fraction MSE on an `n × n` output: `E_k = Σ_{j ∈ R_k} |y_j|²` over the square
    /// regions `(row, col, side)`, `e_k = E_k / Σ_m E_m`, `L = Σ_k (e_k − [k = label])²`.
    /// `∂L/∂E_k = 2(e_k − o_k)/S − Σ_m 2(e_m − o_m) e_m / S` (`S = Σ E`), `∂L/∂ȳ_j = ∂L/∂E_{k(j)} y_j`
    /// inside region `k(j)`, 0 outside. No light on any detector gives `L = 1`, zero gradient.
    RegionFractionMse {
        /// Grid side.
        n: usize,
        /// The detector squares `(row, col, side)`, disjoint.
        squares: &'a [(usize, usize, usize)],
        /// The true class (index into `squares`).
        label: usize,
    },
}

impl<F: Real> FieldLoss<'_, F> {
    /// Number of output entries the target describes.
    pub fn target_len(&self) -> usize {
        match self {
            FieldLoss::FieldMse(t) => t.len(),
            FieldLoss::IntensityMse(t) | FieldLoss::NormalizedIntensityMse(t) => t.len(),
            FieldLoss::RegionFractionMse { n, .. } => n * n,
        }
    }

    /// Evaluates the loss at `y` and writes `δ_y = ∂L/∂ȳ` into `grad`.
    ///
    /// # Panics
    /// If `y`, `grad` and the target differ in length (a programming error).
    pub fn eval(&self, y: &[Complex<F>], grad: &mut [Complex<F>]) -> f64 {
        assert_eq!(
            y.len(),
            self.target_len(),
            "FieldLoss: output and target lengths differ"
        );
        assert_eq!(y.len(), grad.len(), "FieldLoss: output and gradient lengths differ");
        match *self {
            FieldLoss::FieldMse(t) => {
                let mut l = 0.0;
                for ((g, &yi), &ti) in grad.iter_mut().zip(y).zip(t) {
                    let d = yi - ti;
                    l += d.norm_sqr().to_f64();
                    *g = d;
                }
                l
            }
            FieldLoss::IntensityMse(t) => {
                let mut l = 0.0;
                let two = F::of(2.0);
                for ((g, &yi), &ti) in grad.iter_mut().zip(y).zip(t) {
                    let d = yi.norm_sqr() - ti;
                    l += d.to_f64() * d.to_f64();
                    *g = yi * (two * d);
                }
                l
            }
            FieldLoss::NormalizedIntensityMse(t) => normalized_intensity_mse(y, t, grad),
            FieldLoss::RegionFractionMse { n, squares, label } => region_fraction_mse(y, n, squares, label, grad),
        }
    }
}

fn normalized_intensity_mse<F: Real>(y: &[Complex<F>], t: &[F], grad: &mut [Complex<F>]) -> f64 {
    // arg-max (first one on ties: a fixed, order-independent rule)
    let mut k = 0;
    let mut m = F::zero();
    for (i, yi) in y.iter().enumerate() {
        let ii = yi.norm_sqr();
        if ii > m {
            m = ii;
            k = i;
        }
    }
    if m <= F::zero() {
        grad.fill(Complex::new(F::zero(), F::zero()));
        return t.iter().map(|&ti| ti.to_f64() * ti.to_f64()).sum();
    }
    let inv_m = F::one() / m;
    let two = F::of(2.0);
    let mut l = 0.0;
    // s = Σ_i 2(p_i − t_i)·p_i, so that the max term is −[j = k]·s/m
    let mut s = 0.0f64;
    for ((g, &yi), &ti) in grad.iter_mut().zip(y).zip(t) {
        let p = yi.norm_sqr() * inv_m;
        let d = p - ti;
        l += d.to_f64() * d.to_f64();
        s += 2.0 * d.to_f64() * p.to_f64();
        *g = yi * (two * d * inv_m);
    }
    grad[k] -= y[k] * (F::of(s) * inv_m);
    l
}

fn region_fraction_mse<F: Real>(
    y: &[Complex<F>],
    n: usize,
    squares: &[(usize, usize, usize)],
    label: usize,
    grad: &mut [Complex<F>],
) -> f64 {
    grad.fill(Complex::new(F::zero(), F::zero()));
    let energy = |&(r0, c0, s): &(usize, usize, usize)| -> f64 {
        (r0..r0 + s)
            .map(|r| {
                y[r * n + c0..r * n + c0 + s]
                    .iter()
                    .map(|z| z.norm_sqr().to_f64())
                    .sum::<f64>()
            })
            .sum()
    };
    let total: f64 = squares.iter().map(energy).sum();
    if total <= 0.0 {
        return 1.0;
    }
    let frac = |k: usize, e: f64| (e / total, if k == label { 1.0 } else { 0.0 });
    let mut l = 0.0;
    let mut s = 0.0;
    for (k, sq) in squares.iter().enumerate() {
        let (e, o) = frac(k, energy(sq));
        l += (e - o) * (e - o);
        s += 2.0 * (e - o) * e;
    }
    for (k, sq) in squares.iter().enumerate() {
        let (e, o) = frac(k, energy(sq));
        let d = F::of((2.0 * (e - o) - s) / total);
        let &(r0, c0, side) = sq;
        for r in r0..r0 + side {
            for j in r * n + c0..r * n + c0 + side {
                grad[j] = y[j] * d;
            }
        }
    }
    l
}
