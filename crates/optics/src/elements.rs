//! Thin optical elements: lenses, apertures, phase / amplitude / complex masks. Every element is
//! a diagonal operator on the grid (elementwise multiplication), hence symmetric.

use insitu_linalg::{vectorized, VectorKernel};
use num_complex::Complex32;
use std::f64::consts::PI;

use crate::error::{positive, OpticsError};
use crate::freespace::Grid;

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), OpticsError> {
    if expected == got {
        Ok(())
    } else {
        Err(OpticsError::SizeMismatch { what, expected, got })
    }
}

/// Multiplies `field` by `exp(i·phase)` elementwise (a phase-only modulator such as an SLM).
pub fn apply_phase_mask(field: &mut [Complex32], phase: &[f32]) -> Result<(), OpticsError> {
    check_len("phase mask", field.len(), phase.len())?;
    for (f, &p) in field.iter_mut().zip(phase) {
        let (s, c) = p.sin_cos();
        *f *= Complex32::new(c, s);
    }
    Ok(())
}

/// Multiplies `field` by the real transmission `amplitude` elementwise (an amplitude modulator).
pub fn apply_amplitude_mask(field: &mut [Complex32], amplitude: &[f32]) -> Result<(), OpticsError> {
    check_len("amplitude mask", field.len(), amplitude.len())?;
    for (f, &a) in field.iter_mut().zip(amplitude) {
        *f *= a;
    }
    Ok(())
}

/// Multiplies `field` by the complex transmission `mask` elementwise.
pub fn apply_complex_mask(field: &mut [Complex32], mask: &[Complex32]) -> Result<(), OpticsError> {
    check_len("complex mask", field.len(), mask.len())?;
    multiply_elementwise(field, mask);
    Ok(())
}

/// `field ← field ⊙ mask` over the common length, as `Complex32`'s `*=` computes each product
/// (`re = a·c − b·d`, `im = b·c + a·d`, no fused multiply-add), through
/// [`insitu_linalg::vectorized`]: 16 lanes wide where the baseline build used 4, the same bits.
/// The one complex elementwise product of the simulator (masks, the propagator's transfer
/// function: 2.21 → 1.96 ms of a 400 × 400 propagation, docs/optics.md §11).
pub(crate) fn multiply_elementwise(field: &mut [Complex32], mask: &[Complex32]) {
    vectorized(MultiplyElementwise { field, mask });
}

struct MultiplyElementwise<'a> {
    field: &'a mut [Complex32],
    mask: &'a [Complex32],
}

impl VectorKernel for MultiplyElementwise<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (f, m) in self.field.iter_mut().zip(self.mask) {
            let (a, b) = (f.re, f.im);
            f.re = a * m.re - b * m.im;
            f.im = b * m.re + a * m.im;
        }
    }
}

/// A thin lens of focal length `f` (metres; positive = converging): transmission
/// `exp(−iπ(x² + y²)/(λ f))` (the `exp(−iωt)` convention's converging phase, as LightPipes' `Lens`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThinLens {
    /// Focal length in metres (non-zero, finite).
    pub focal_length: f64,
}

impl ThinLens {
    /// The lens's transmission sampled on `grid` at `wavelength`.
    pub fn transmission(&self, grid: Grid, wavelength: f64) -> Result<Vec<Complex32>, OpticsError> {
        grid.validate()?;
        positive("wavelength", wavelength)?;
        if !(self.focal_length.is_finite() && self.focal_length != 0.0) {
            return Err(OpticsError::OutOfRange {
                what: "focal length",
                value: self.focal_length,
                range: "finite, non-zero",
            });
        }
        let n = grid.n;
        Ok((0..n * n)
            .map(|i| {
                let (y, x) = (grid.coord(i / n), grid.coord(i % n));
                let ph = (-PI * (x * x + y * y) / (wavelength * self.focal_length)).rem_euclid(2.0 * PI);
                Complex32::new(ph.cos() as f32, ph.sin() as f32)
            })
            .collect())
    }

    /// Applies the lens to `field` (allocates the transmission; cache it for hot loops).
    pub fn apply(&self, grid: Grid, wavelength: f64, field: &mut [Complex32]) -> Result<(), OpticsError> {
        let t = self.transmission(grid, wavelength)?;
        apply_complex_mask(field, &t)
    }
}

/// A circular aperture: transmission 1 where `(x − cx)² + (y − cy)² ≤ r²`, else 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircularAperture {
    /// Radius in metres.
    pub radius: f64,
    /// Centre `(x, y)` in metres.
    pub center: (f64, f64),
}

impl CircularAperture {
    /// The 0/1 transmission on `grid`.
    pub fn mask(&self, grid: Grid) -> Result<Vec<f32>, OpticsError> {
        grid.validate()?;
        positive("aperture radius", self.radius)?;
        let n = grid.n;
        let r2 = self.radius * self.radius;
        Ok((0..n * n)
            .map(|i| {
                let (y, x) = (grid.coord(i / n) - self.center.1, grid.coord(i % n) - self.center.0);
                if x * x + y * y <= r2 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect())
    }

    /// Applies the aperture to `field`.
    pub fn apply(&self, grid: Grid, field: &mut [Complex32]) -> Result<(), OpticsError> {
        apply_amplitude_mask(field, &self.mask(grid)?)
    }
}

/// A rectangular aperture: transmission 1 where `|x − cx| ≤ width/2` and `|y − cy| ≤ height/2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RectangularAperture {
    /// Full width along x, metres.
    pub width: f64,
    /// Full height along y, metres.
    pub height: f64,
    /// Centre `(x, y)` in metres.
    pub center: (f64, f64),
}

impl RectangularAperture {
    /// The 0/1 transmission on `grid`.
    pub fn mask(&self, grid: Grid) -> Result<Vec<f32>, OpticsError> {
        grid.validate()?;
        positive("aperture width", self.width)?;
        positive("aperture height", self.height)?;
        let n = grid.n;
        Ok((0..n * n)
            .map(|i| {
                let (y, x) = (grid.coord(i / n) - self.center.1, grid.coord(i % n) - self.center.0);
                if x.abs() <= self.width / 2.0 && y.abs() <= self.height / 2.0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect())
    }

    /// Applies the aperture to `field`.
    pub fn apply(&self, grid: Grid, field: &mut [Complex32]) -> Result<(), OpticsError> {
        apply_amplitude_mask(field, &self.mask(grid)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freespace::{FreeSpace, PropagationMethod};

    #[test]
    fn lens_focuses_a_plane_wave_at_its_focal_length() {
        let grid = Grid::new(128, 8e-6).unwrap();
        let (lambda, f) = (532e-9, 0.05);
        let mut field = vec![Complex32::new(1.0, 0.0); 128 * 128];
        CircularAperture {
            radius: 0.4e-3,
            center: (0.0, 0.0),
        }
        .apply(grid, &mut field)
        .unwrap();
        ThinLens { focal_length: f }.apply(grid, lambda, &mut field).unwrap();
        let peak_at = |z: f64| {
            let mut g = field.clone();
            FreeSpace::new(grid, lambda, z, PropagationMethod::BandLimitedAngularSpectrum, 2)
                .unwrap()
                .propagate(&mut g);
            g[64 * 128 + 64].norm_sqr()
        };
        let at_focus = peak_at(f);
        assert!(at_focus > 1.5 * peak_at(0.7 * f), "focus {at_focus}");
        assert!(at_focus > 1.5 * peak_at(1.4 * f));
        // a diverging lens does not focus
        let mut g = vec![Complex32::new(1.0, 0.0); 128 * 128];
        ThinLens { focal_length: -f }.apply(grid, lambda, &mut g).unwrap();
        assert!(ThinLens { focal_length: 0.0 }.transmission(grid, lambda).is_err());
    }

    #[test]
    fn apertures_and_masks() {
        let grid = Grid::new(10, 1.0).unwrap();
        let c = CircularAperture {
            radius: 2.0,
            center: (0.0, 0.0),
        }
        .mask(grid)
        .unwrap();
        // x, y ∈ {−5..4}: points with x² + y² ≤ 4: 13 lattice points
        assert_eq!(c.iter().filter(|&&v| v == 1.0).count(), 13);
        assert_eq!(c[5 * 10 + 5], 1.0);
        let r = RectangularAperture {
            width: 4.0,
            height: 2.0,
            center: (1.0, 0.0),
        }
        .mask(grid)
        .unwrap();
        assert_eq!(r.iter().filter(|&&v| v == 1.0).count(), 5 * 3);
        let mut f = vec![Complex32::new(2.0, 0.0); 4];
        apply_phase_mask(&mut f, &[0.0, std::f32::consts::FRAC_PI_2, 0.0, 0.0]).unwrap();
        assert!((f[1] - Complex32::new(0.0, 2.0)).norm() < 1e-6);
        apply_amplitude_mask(&mut f, &[0.5; 4]).unwrap();
        assert!((f[0] - Complex32::new(1.0, 0.0)).norm() < 1e-6);
        assert!(apply_phase_mask(&mut f, &[0.0; 3]).is_err());
    }
}
