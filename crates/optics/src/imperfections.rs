//! Imperfections that make a "physical" system differ from its digital model while keeping it
//! reciprocal (SPEC B3): every mask-type imperfection yields an elementwise (diagonal, hence
//! symmetric) operator, and a distance error only changes `z` of a symmetric propagator.
//! Each is a plain, seeded, parameterised struct.

use num_complex::Complex32;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

use crate::error::{finite, positive, OpticsError};
use crate::freespace::{FreeSpace, Grid};
use crate::mzi::RectangularMesh;

/// Misregistration of a modulator (SLM) relative to the optical axis: the mask the light sees
/// is the programmed mask shifted by `(dx, dy)` pixels (sub-pixel shifts by bilinear
/// interpolation of the mask values; samples shifted in from outside take `fill`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskShift {
    /// Shift along columns (x), pixels; positive moves the pattern to larger column index.
    pub dx: f64,
    /// Shift along rows (y), pixels; positive moves the pattern to larger row index.
    pub dy: f64,
    /// Value used where the shifted mask has no data (0 for a phase mask = flat).
    pub fill: f32,
}

impl MaskShift {
    /// `out(r, c) = mask(r − dy, c − dx)` on an `n × n` grid, bilinear between samples.
    pub fn apply(&self, n: usize, mask: &[f32], out: &mut [f32]) -> Result<(), OpticsError> {
        finite("mask shift dx", self.dx)?;
        finite("mask shift dy", self.dy)?;
        if mask.len() != n * n || out.len() != n * n {
            return Err(OpticsError::SizeMismatch {
                what: "shifted mask (n*n)",
                expected: n * n,
                got: mask.len().min(out.len()),
            });
        }
        let get = |r: i64, c: i64| -> f32 {
            if r < 0 || c < 0 || r >= n as i64 || c >= n as i64 {
                self.fill
            } else {
                mask[r as usize * n + c as usize]
            }
        };
        let (fy, fx) = (self.dy.floor(), self.dx.floor());
        let (ty, tx) = ((self.dy - fy) as f32, (self.dx - fx) as f32);
        for r in 0..n {
            for c in 0..n {
                let r0 = r as i64 - fy as i64;
                let c0 = c as i64 - fx as i64;
                // source position r − dy = r0 − ty: between r0 − 1 (weight ty) and r0 (1 − ty)
                let top = get(r0 - 1, c0 - 1) * tx + get(r0 - 1, c0) * (1.0 - tx);
                let bot = get(r0, c0 - 1) * tx + get(r0, c0) * (1.0 - tx);
                out[r * n + c] = top * ty + bot * (1.0 - ty);
            }
        }
        Ok(())
    }
}

/// An error in a propagation distance (mechanical spacing of the built system): the physical
/// propagator runs over `z + offset` instead of `z`. The result is still a symmetric propagator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceError {
    /// Distance error in metres.
    pub offset: f64,
}

impl DistanceError {
    /// The physical propagator for a model propagator `model`.
    pub fn apply(&self, model: &FreeSpace) -> Result<FreeSpace, OpticsError> {
        finite("distance error", self.offset)?;
        model.with_distance(model.distance() + self.offset)
    }
}

fn factorial(k: u32) -> f64 {
    (1..=k).map(|v| v as f64).product()
}

/// Low-order optical aberrations as a phase screen `Σ c_j Z_j(ρ, ϑ)` over the disc of radius
/// `radius` metres centred on the optical axis (Zernike polynomials, unnormalised:
/// `Z_n^m = R_n^m(ρ) cos(mϑ)` for `m ≥ 0`, `R_n^{|m|}(ρ) sin(|m|ϑ)` for `m < 0`; e.g. (2, 0)
/// defocus `2ρ² − 1`, (2, ±2) astigmatism, (3, ±1) coma, (4, 0) spherical). Coefficients are in
/// radians. The polynomial is evaluated outside the disc too (no clipping).
#[derive(Debug, Clone, PartialEq)]
pub struct ZernikeAberration {
    /// Normalisation radius in metres.
    pub radius: f64,
    /// `(n, m, coefficient in radians)`; requires `|m| ≤ n` and `n − |m|` even.
    pub terms: Vec<(u32, i32, f64)>,
}

impl ZernikeAberration {
    /// Radial polynomial `R_n^m(ρ)`.
    pub fn radial(n: u32, m: u32, rho: f64) -> f64 {
        (0..=(n - m) / 2)
            .map(|k| {
                let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                sign * factorial(n - k) / (factorial(k) * factorial((n + m) / 2 - k) * factorial((n - m) / 2 - k))
                    * rho.powi((n - 2 * k) as i32)
            })
            .sum()
    }

    /// The phase screen on `grid`.
    pub fn phase(&self, grid: Grid) -> Result<Vec<f32>, OpticsError> {
        grid.validate()?;
        positive("Zernike radius", self.radius)?;
        for &(n, m, c) in &self.terms {
            if m.unsigned_abs() > n || (n - m.unsigned_abs()) % 2 != 0 {
                return Err(OpticsError::OutOfRange {
                    what: "Zernike index m",
                    value: m as f64,
                    range: "|m| ≤ n, n − |m| even",
                });
            }
            finite("Zernike coefficient", c)?;
        }
        let n = grid.n;
        Ok((0..n * n)
            .map(|i| {
                let (y, x) = (grid.coord(i / n), grid.coord(i % n));
                let rho = (x * x + y * y).sqrt() / self.radius;
                let th = y.atan2(x);
                let v: f64 = self
                    .terms
                    .iter()
                    .map(|&(nn, m, c)| {
                        let r = Self::radial(nn, m.unsigned_abs(), rho);
                        let ang = if m >= 0 {
                            (m as f64 * th).cos()
                        } else {
                            (m.unsigned_abs() as f64 * th).sin()
                        };
                        c * r * ang
                    })
                    .sum();
                v as f32
            })
            .collect())
    }
}

/// Gaussian-correlated random field on an `n × n` periodic grid: white normal noise smoothed by
/// a Gaussian of standard deviation `correlation_length` pixels (separable, circular), then
/// normalised to zero mean and unit rms. `correlation_length = 0` gives white noise.
pub fn correlated_noise<R: Rng + ?Sized>(
    n: usize,
    correlation_length: f64,
    rng: &mut R,
) -> Result<Vec<f64>, OpticsError> {
    if n == 0 {
        return Err(OpticsError::ZeroSize { what: "noise grid n" });
    }
    if !(correlation_length.is_finite() && correlation_length >= 0.0) {
        return Err(OpticsError::OutOfRange {
            what: "correlation length",
            value: correlation_length,
            range: "finite, ≥ 0",
        });
    }
    let mut a: Vec<f64> = (0..n * n).map(|_| StandardNormal.sample(rng)).collect();
    if correlation_length > 0.0 {
        let half = ((3.0 * correlation_length).ceil() as usize).min(n / 2);
        let kernel: Vec<f64> = (0..=2 * half)
            .map(|k| (-((k as f64 - half as f64).powi(2)) / (2.0 * correlation_length.powi(2))).exp())
            .collect();
        let mut b = vec![0.0; n * n];
        for pass in 0..2 {
            for r in 0..n {
                for c in 0..n {
                    let mut s = 0.0;
                    for (k, w) in kernel.iter().enumerate() {
                        let o = (k + n - half % n) % n;
                        s += w * if pass == 0 {
                            a[r * n + (c + o) % n]
                        } else {
                            a[((r + o) % n) * n + c]
                        };
                    }
                    b[r * n + c] = s;
                }
            }
            std::mem::swap(&mut a, &mut b);
        }
    }
    let mean = a.iter().sum::<f64>() / a.len() as f64;
    let rms = (a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
    let scale = if rms > 0.0 { 1.0 / rms } else { 0.0 };
    Ok(a.into_iter().map(|v| (v - mean) * scale).collect())
}

/// A smooth random aberration (e.g. imperfect optics, air turbulence): a Gaussian-correlated
/// phase screen of rms `rms` radians and correlation length `correlation_length` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothRandomPhase {
    /// Phase rms in radians.
    pub rms: f64,
    /// Correlation length in pixels.
    pub correlation_length: f64,
}

impl SmoothRandomPhase {
    /// Draws the screen (`n·n`, row-major) from `rng`.
    pub fn phase<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Vec<f32>, OpticsError> {
        finite("phase rms", self.rms)?;
        Ok(correlated_noise(n, self.correlation_length, rng)?
            .into_iter()
            .map(|v| (v * self.rms) as f32)
            .collect())
    }
}

/// A thin random phase scatterer (ground glass, diffuser; seed 002 B4 "random phase scatterer of
/// adjustable grain"): phase `2π·depth·g` with `g` unit-rms Gaussian-correlated noise of
/// correlation length `grain` pixels (the speckle grain). Transmission is phase-only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomPhaseScatterer {
    /// Grain (correlation length) in pixels; 0 = fully uncorrelated pixels.
    pub grain: f64,
    /// Phase rms in units of 2π (≥ 1 scatters strongly).
    pub depth: f64,
}

impl RandomPhaseScatterer {
    /// Draws the scatterer's phase screen (`n·n`) from `rng`.
    pub fn phase<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Vec<f32>, OpticsError> {
        SmoothRandomPhase {
            rms: 2.0 * PI * self.depth,
            correlation_length: self.grain,
        }
        .phase(n, rng)
    }
}

/// A diffuse reflector seen at normal incidence (seed 002 B4, non-line-of-sight): amplitude
/// reflectivity `reflectivity` and a rough surface of height rms `height_rms` metres and
/// correlation length `correlation_length` pixels; reflection multiplies the field by
/// `r·exp(i·4π h/λ)` (double pass over the height). Diagonal, so reciprocal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffuseReflector {
    /// Amplitude reflectivity ∈ [0, 1].
    pub reflectivity: f32,
    /// Surface height rms, metres.
    pub height_rms: f64,
    /// Surface correlation length, pixels.
    pub correlation_length: f64,
}

impl DiffuseReflector {
    /// Draws the complex reflection coefficient (`n·n`) for `wavelength`:
    /// [`DiffuseReflector::reflection_of`] the surface [`correlated_noise`] draws.
    pub fn reflection<R: Rng + ?Sized>(
        &self,
        n: usize,
        wavelength: f64,
        rng: &mut R,
    ) -> Result<Vec<Complex32>, OpticsError> {
        positive("wavelength", wavelength)?;
        let h = correlated_noise(n, self.correlation_length, rng)?;
        self.reflection_of(&h, wavelength)
    }

    /// The reflection coefficient `r·exp(i·4π·h·height_rms/λ)` of a surface whose heights, in
    /// units of `height_rms`, are `unit_heights` (e.g. [`correlated_noise`]'s field, or that
    /// field turned by [`rotate_periodic`]).
    pub fn reflection_of(&self, unit_heights: &[f64], wavelength: f64) -> Result<Vec<Complex32>, OpticsError> {
        positive("wavelength", wavelength)?;
        if !(0.0..=1.0).contains(&self.reflectivity) {
            return Err(OpticsError::OutOfRange {
                what: "reflectivity",
                value: self.reflectivity as f64,
                range: "[0, 1]",
            });
        }
        Ok(unit_heights
            .iter()
            .map(|&v| {
                let ph = (4.0 * PI * v * self.height_rms / wavelength).rem_euclid(2.0 * PI);
                Complex32::new(
                    (ph.cos() as f32) * self.reflectivity,
                    (ph.sin() as f32) * self.reflectivity,
                )
            })
            .collect())
    }
}

/// The `n × n` periodic field `values` (row-major) turned by `degrees` about the grid's centre
/// `c = ((n − 1)/2, (n − 1)/2)`, from +x (columns) towards +y (rows; clockwise as displayed
/// with rows downward): `out(p) = values(R₋θ (p − c) + c)`, read by
/// bilinear interpolation with the grid wrapped around (a surface turning under a fixed
/// window; seed 002 Extended Data Fig. 4b's rotating diffuser). A multiple of 90° moves grid
/// points onto grid points, so it permutes the values exactly.
pub fn rotate_periodic(values: &[f64], n: usize, degrees: f64) -> Vec<f64> {
    assert_eq!(values.len(), n * n, "rotate_periodic: an n × n field");
    let (sin, cos) = degrees.to_radians().sin_cos();
    let c = (n as f64 - 1.0) / 2.0;
    let at = |r: isize, col: isize| values[r.rem_euclid(n as isize) as usize * n + col.rem_euclid(n as isize) as usize];
    let mut out = Vec::with_capacity(n * n);
    for r in 0..n {
        for col in 0..n {
            let (x, y) = (col as f64 - c, r as f64 - c);
            // the source point: the output point turned back by θ
            let (sx, sy) = (cos * x + sin * y + c, -sin * x + cos * y + c);
            // snap what rounding left a hair off a grid point (multiples of 90°)
            let snap = |v: f64| if (v - v.round()).abs() < 1e-9 { v.round() } else { v };
            let (sx, sy) = (snap(sx), snap(sy));
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
            let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// A modulator's phase-response error: the phase actually imparted for a programmed phase φ is
/// `a·φ̃ + b·φ̃²` with `φ̃ = φ mod 2π` (nonlinear, miscalibrated lookup table), then quantised to
/// `bits` bits over [0, 2π) when `bits` is set (the SLM's finite grey levels). Elementwise, so a
/// mask passed through it stays diagonal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModulatorResponse {
    /// Linear gain `a` (1 = ideal).
    pub linear: f64,
    /// Quadratic coefficient `b` (rad⁻¹; 0 = ideal).
    pub quadratic: f64,
    /// Quantisation bits, `None` = continuous.
    pub bits: Option<u32>,
}

impl Default for ModulatorResponse {
    fn default() -> Self {
        ModulatorResponse {
            linear: 1.0,
            quadratic: 0.0,
            bits: None,
        }
    }
}

impl ModulatorResponse {
    /// The imparted phase for programmed phase `phi`.
    pub fn respond(&self, phi: f32) -> f32 {
        let p = (phi as f64).rem_euclid(2.0 * PI);
        let v = self.linear * p + self.quadratic * p * p;
        let v = match self.bits {
            Some(b) => {
                let q = 2.0 * PI / (1u64 << b.min(24)) as f64;
                (v / q).round() * q
            }
            None => v,
        };
        v as f32
    }

    /// `out[i] = respond(phase[i])`.
    pub fn apply(&self, phase: &[f32], out: &mut [f32]) -> Result<(), OpticsError> {
        if let Some(b) = self.bits {
            if b == 0 || b > 24 {
                return Err(OpticsError::OutOfRange {
                    what: "modulator bits",
                    value: b as f64,
                    range: "1..=24",
                });
            }
        }
        finite("modulator gain", self.linear)?;
        finite("modulator quadratic coefficient", self.quadratic)?;
        if phase.len() != out.len() {
            return Err(OpticsError::SizeMismatch {
                what: "modulator output",
                expected: phase.len(),
                got: out.len(),
            });
        }
        for (o, &p) in out.iter_mut().zip(phase) {
            *o = self.respond(p);
        }
        Ok(())
    }
}

/// Fabrication error of an MZI mesh's 50:50 couplers: each coupler's splitting angle is
/// `π/4 + ε`, `ε ~ N(0, sigma²)` independently (two couplers per MZI).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamsplitterError {
    /// Standard deviation of the splitting-angle error, radians.
    pub sigma: f64,
}

impl BeamsplitterError {
    /// Draws errors for `mesh` and installs them (`set_beamsplitter_errors`).
    pub fn apply<R: Rng + ?Sized>(&self, mesh: &mut RectangularMesh, rng: &mut R) -> Result<(), OpticsError> {
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(OpticsError::OutOfRange {
                what: "beamsplitter error sigma",
                value: self.sigma,
                range: "finite, ≥ 0",
            });
        }
        let e: Vec<f32> = (0..2 * mesh.num_mzis())
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                (z * self.sigma) as f32
            })
            .collect();
        mesh.set_beamsplitter_errors(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::apply_phase_mask;
    use crate::freespace::PropagationMethod;
    use insitu_linalg::rng;
    use num_complex::Complex64;

    #[test]
    fn mask_shift_integer_half_and_zero() {
        let n = 6;
        let mask: Vec<f32> = (0..n * n).map(|i| i as f32).collect();
        let mut out = vec![0.0; n * n];
        MaskShift {
            dx: 0.0,
            dy: 0.0,
            fill: -1.0,
        }
        .apply(n, &mask, &mut out)
        .unwrap();
        assert_eq!(out, mask);
        MaskShift {
            dx: 2.0,
            dy: -1.0,
            fill: -1.0,
        }
        .apply(n, &mask, &mut out)
        .unwrap();
        for r in 0..n {
            for c in 0..n {
                let (sr, sc) = (r as i64 + 1, c as i64 - 2);
                let want = if sr < n as i64 && sc >= 0 {
                    mask[sr as usize * n + sc as usize]
                } else {
                    -1.0
                };
                assert_eq!(out[r * n + c], want);
            }
        }
        MaskShift {
            dx: 0.5,
            dy: 0.0,
            fill: 0.0,
        }
        .apply(n, &mask, &mut out)
        .unwrap();
        assert_eq!(out[2 * n + 3], 0.5 * (mask[2 * n + 2] + mask[2 * n + 3]));
        assert!(MaskShift {
            dx: f64::NAN,
            dy: 0.0,
            fill: 0.0
        }
        .apply(n, &mask, &mut out)
        .is_err());
    }

    #[test]
    fn a_quarter_turn_permutes_the_field_and_small_turns_keep_the_centre() {
        let n = 9;
        let field: Vec<f64> = (0..n * n).map(|i| i as f64 * 0.37).collect();
        assert_eq!(rotate_periodic(&field, n, 0.0), field);
        let quarter = rotate_periodic(&field, n, 90.0);
        // from +x towards +y (clockwise as displayed, rows down): out(r, c) = in(n − 1 − c, r)
        for r in 0..n {
            for c in 0..n {
                assert_eq!(quarter[r * n + c], field[(n - 1 - c) * n + r], "({r}, {c})");
            }
        }
        let full: Vec<f64> = (0..4).fold(field.clone(), |f, _| rotate_periodic(&f, n, 90.0));
        assert_eq!(full, field);
        // the centre pixel does not move; a small turn moves the rim more than the middle
        let turned = rotate_periodic(&field, n, 3.0);
        let centre = (n / 2) * n + n / 2;
        assert!((turned[centre] - field[centre]).abs() < 1e-12);
        // bilinear: a linear ramp turns into the turned ramp, away from the wrap
        let ramp: Vec<f64> = (0..n * n).map(|i| (i % n) as f64).collect();
        let t = rotate_periodic(&ramp, n, 10.0);
        let (s, co) = 10f64.to_radians().sin_cos();
        let c0 = (n as f64 - 1.0) / 2.0;
        for (r, col) in [(4, 4), (3, 5), (5, 3)] {
            let (x, y) = (col as f64 - c0, r as f64 - c0);
            let expected = co * x + s * y + c0;
            assert!((t[r * n + col] - expected).abs() < 1e-9, "({r}, {col})");
        }
    }

    #[test]
    fn correlated_noise_is_normalised_and_grain_controls_correlation() {
        let neighbour_corr = |g: f64| {
            let a = correlated_noise(64, g, &mut rng(3)).unwrap();
            let mean = a.iter().sum::<f64>() / a.len() as f64;
            let rms = (a.iter().map(|v| v * v).sum::<f64>() / a.len() as f64).sqrt();
            assert!(mean.abs() < 1e-12 && (rms - 1.0).abs() < 1e-12);
            (0..64 * 64)
                .map(|i| a[i] * a[(i / 64) * 64 + (i % 64 + 1) % 64])
                .sum::<f64>()
                / (64.0 * 64.0)
        };
        let (c0, c2, c6) = (neighbour_corr(0.0), neighbour_corr(2.0), neighbour_corr(6.0));
        assert!(c0.abs() < 0.05, "{c0}");
        // Gaussian smoothing with σ: neighbour correlation exp(−1/(4σ²))
        assert!((c2 - (-1.0f64 / 16.0).exp()).abs() < 0.05, "{c2}");
        assert!(c6 > c2);
        assert_eq!(
            correlated_noise(16, 1.5, &mut rng(9)).unwrap(),
            correlated_noise(16, 1.5, &mut rng(9)).unwrap()
        );
    }

    #[test]
    fn zernike_defocus_and_bad_indices() {
        let grid = Grid::new(9, 1.0).unwrap();
        let z = ZernikeAberration {
            radius: 4.0,
            terms: vec![(2, 0, 1.5)],
        }
        .phase(grid)
        .unwrap();
        assert!((z[4 * 9 + 4] - (-1.5)).abs() < 1e-6); // centre: 2·0 − 1
        assert!((z[4 * 9 + 8] - 1.5).abs() < 1e-6); // ρ = 1
        assert!((ZernikeAberration::radial(4, 0, 0.5) - (6.0 * 0.0625 - 6.0 * 0.25 + 1.0)).abs() < 1e-12);
        assert!(ZernikeAberration {
            radius: 4.0,
            terms: vec![(2, 1, 1.0)]
        }
        .phase(grid)
        .is_err());
    }

    #[test]
    fn modulator_response_and_quantisation() {
        let ideal = ModulatorResponse::default();
        assert!((ideal.respond(1.0) - 1.0).abs() < 1e-7);
        assert!((ideal.respond(1.0 + 2.0 * std::f32::consts::PI) - 1.0).abs() < 1e-5);
        let m = ModulatorResponse {
            linear: 0.9,
            quadratic: 0.02,
            bits: Some(3),
        };
        let v = m.respond(2.0);
        let q = std::f32::consts::PI / 4.0;
        assert!(((v / q) - (v / q).round()).abs() < 1e-5);
        assert!((v - ((0.9 * 2.0 + 0.02 * 4.0) / q).round() * q).abs() < 1e-5);
        let mut out = [0.0; 2];
        assert!(ModulatorResponse { bits: Some(0), ..m }
            .apply(&[0.0, 1.0], &mut out)
            .is_err());
    }

    #[test]
    fn physical_system_with_imperfections_stays_symmetric() {
        // S = T' M' T' with T' a propagator with distance error and M' a shifted, aberrated,
        // miscalibrated phase mask: S must equal Sᵀ (⟨a, S b⟩ = ⟨S a, b⟩, no conjugation).
        let n = 32;
        let grid = Grid::new(n, 8e-6).unwrap();
        let model = FreeSpace::new(grid, 532e-9, 0.01, PropagationMethod::BandLimitedAngularSpectrum, 2).unwrap();
        let mut t = DistanceError { offset: 1.3e-3 }.apply(&model).unwrap();
        let mut r = rng(8);
        let programmed: Vec<f32> = (0..n * n).map(|_| r.random::<f32>() * 6.0).collect();
        let mut shifted = vec![0.0; n * n];
        MaskShift {
            dx: 0.4,
            dy: -1.0,
            fill: 0.0,
        }
        .apply(n, &programmed, &mut shifted)
        .unwrap();
        let mut phase = vec![0.0; n * n];
        ModulatorResponse {
            linear: 0.95,
            quadratic: 0.01,
            bits: Some(8),
        }
        .apply(&shifted, &mut phase)
        .unwrap();
        let aber = ZernikeAberration {
            radius: 100e-6,
            terms: vec![(2, 0, 0.3), (3, -1, 0.2)],
        }
        .phase(grid)
        .unwrap();
        for (p, a) in phase.iter_mut().zip(&aber) {
            *p += a;
        }
        let mut run = |x: &mut Vec<Complex32>| {
            t.propagate(x);
            apply_phase_mask(x, &phase).unwrap();
            t.propagate(x);
        };
        let a: Vec<Complex32> = (0..n * n)
            .map(|_| Complex32::new(r.random::<f32>() - 0.5, r.random::<f32>() - 0.5))
            .collect();
        let b: Vec<Complex32> = (0..n * n)
            .map(|_| Complex32::new(r.random::<f32>() - 0.5, r.random::<f32>() - 0.5))
            .collect();
        let (mut sa, mut sb) = (a.clone(), b.clone());
        run(&mut sa);
        run(&mut sb);
        let bil = |x: &[Complex32], y: &[Complex32]| -> Complex64 {
            x.iter()
                .zip(y)
                .map(|(p, q)| Complex64::new(p.re as f64, p.im as f64) * Complex64::new(q.re as f64, q.im as f64))
                .sum()
        };
        let (lhs, rhs) = (bil(&a, &sb), bil(&sa, &b));
        assert!((lhs - rhs).norm() < 1e-4 * lhs.norm().max(1.0), "{lhs} vs {rhs}");
        // breaking reciprocity on purpose (different propagators before and after) is detected
        let mut t2 = model.clone();
        let mut run2 = |x: &mut Vec<Complex32>| {
            t.propagate(x);
            apply_phase_mask(x, &phase).unwrap();
            t2.propagate(x);
        };
        let (mut sa, mut sb) = (a.clone(), b.clone());
        run2(&mut sa);
        run2(&mut sb);
        assert!((bil(&a, &sb) - bil(&sa, &b)).norm() > 1e-2 * lhs.norm());
    }

    #[test]
    fn reflector_and_scatterer_and_beamsplitter_error() {
        let r = DiffuseReflector {
            reflectivity: 0.8,
            height_rms: 100e-9,
            correlation_length: 2.0,
        }
        .reflection(16, 532e-9, &mut rng(1))
        .unwrap();
        assert!(r.iter().all(|z| (z.norm() - 0.8).abs() < 1e-5));
        let s = RandomPhaseScatterer { grain: 1.0, depth: 1.0 }
            .phase(16, &mut rng(2))
            .unwrap();
        let rms = (s.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / 256.0).sqrt();
        assert!((rms - 2.0 * PI).abs() < 1e-4);
        let mut mesh = RectangularMesh::clements(6).unwrap();
        BeamsplitterError { sigma: 0.02 }.apply(&mut mesh, &mut rng(3)).unwrap();
        assert_eq!(mesh.beamsplitter_errors().unwrap().len(), 2 * 15);
    }
}
