//! Detection: intensity, region-integrating detectors (seed 002's ten-class read-out) and
//! photon-limited camera noise (research/optics.md §5).

use num_complex::Complex32;
use rand::Rng;
use rand_distr::{Distribution, Normal, Poisson};

use crate::error::OpticsError;

/// `out[i] = |field[i]|²`.
pub fn intensity(field: &[Complex32], out: &mut [f32]) {
    assert_eq!(field.len(), out.len(), "intensity: lengths differ");
    for (o, f) in out.iter_mut().zip(field) {
        *o = f.norm_sqr();
    }
}

/// Square detector regions on an `n × n` plane; `integrate` sums the intensity in each.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRegions {
    n: usize,
    size: usize,
    /// Top-left `(row, col)` of each region, in class order.
    origins: Vec<(usize, usize)>,
}

impl DetectorRegions {
    /// Regions of side `size` with the given top-left corners `(row, col)`; all must fit.
    pub fn new(n: usize, size: usize, origins: Vec<(usize, usize)>) -> Result<DetectorRegions, OpticsError> {
        if n == 0 {
            return Err(OpticsError::ZeroSize {
                what: "detector plane n",
            });
        }
        if size == 0 {
            return Err(OpticsError::ZeroSize {
                what: "detector region size",
            });
        }
        for &(r, c) in &origins {
            if r + size > n || c + size > n {
                return Err(OpticsError::DoesNotFit(format!(
                    "region at ({r}, {c}) of size {size} exceeds {n}×{n}"
                )));
            }
        }
        Ok(DetectorRegions { n, size, origins })
    }

    /// Seed 002's reading (SPEC B3): ten square regions of side `size` in a 3-4-3 arrangement
    /// centred on the plane, centre-to-centre pitch `pitch` pixels horizontally and vertically
    /// (rows at −pitch, 0, +pitch from the centre; the 3-rows at −pitch, 0, +pitch, the 4-row at
    /// ±pitch/2, ±3·pitch/2). Classes 0–2 top row, 3–6 middle, 7–9 bottom, left to right.
    pub fn layout_343(n: usize, size: usize, pitch: usize) -> Result<DetectorRegions, OpticsError> {
        if pitch < size {
            return Err(OpticsError::DoesNotFit(format!(
                "pitch {pitch} < region size {size}: regions overlap"
            )));
        }
        let c = n as f64 / 2.0;
        let p = pitch as f64;
        let half = size as f64 / 2.0;
        let mut origins = Vec::with_capacity(10);
        let rows: [(f64, &[f64]); 3] = [
            (-p, &[-p, 0.0, p]),
            (0.0, &[-1.5 * p, -0.5 * p, 0.5 * p, 1.5 * p]),
            (p, &[-p, 0.0, p]),
        ];
        for (dy, xs) in rows {
            for &dx in xs {
                let (r, col) = ((c + dy - half).round(), (c + dx - half).round());
                if r < 0.0 || col < 0.0 {
                    return Err(OpticsError::DoesNotFit(format!(
                        "3-4-3 layout (size {size}, pitch {pitch}) exceeds {n}×{n}"
                    )));
                }
                origins.push((r as usize, col as usize));
            }
        }
        DetectorRegions::new(n, size, origins)
    }

    /// [`DetectorRegions::layout_343`] with pitch `2·size` (gaps equal to the region size).
    pub fn ten_class_343(n: usize, size: usize) -> Result<DetectorRegions, OpticsError> {
        DetectorRegions::layout_343(n, size, 2 * size)
    }

    /// Number of regions (classes).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// `true` when there are no regions.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Region side in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Top-left `(row, col)` of each region.
    pub fn origins(&self) -> &[(usize, usize)] {
        &self.origins
    }

    /// `out[c]` = sum of `intensity` over region `c` (`intensity` is `n·n`, row-major).
    pub fn integrate(&self, intensity: &[f32], out: &mut [f32]) {
        assert_eq!(intensity.len(), self.n * self.n, "intensity must be n*n");
        assert_eq!(out.len(), self.origins.len(), "one output per region");
        for (o, &(r0, c0)) in out.iter_mut().zip(&self.origins) {
            let mut s = 0.0f64;
            for r in r0..r0 + self.size {
                s += intensity[r * self.n + c0..r * self.n + c0 + self.size]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            *o = s as f32;
        }
    }

    /// The region with the largest summed intensity (the prediction).
    pub fn classify(&self, intensity: &[f32]) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (c, &(r0, c0)) in self.origins.iter().enumerate() {
            let mut s = 0.0f64;
            for r in r0..r0 + self.size {
                s += intensity[r * self.n + c0..r * self.n + c0 + self.size]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            if s > best.1 {
                best = (c, s);
            }
        }
        best.0
    }

    /// Writes the target image of class `class`: 1.0 inside its region, 0 elsewhere.
    pub fn target_image(&self, class: usize, out: &mut [f32]) -> Result<(), OpticsError> {
        if class >= self.origins.len() {
            return Err(OpticsError::OutOfRange {
                what: "class",
                value: class as f64,
                range: "0..number of regions",
            });
        }
        if out.len() != self.n * self.n {
            return Err(OpticsError::SizeMismatch {
                what: "target image",
                expected: self.n * self.n,
                got: out.len(),
            });
        }
        out.fill(0.0);
        let (r0, c0) = self.origins[class];
        for r in r0..r0 + self.size {
            out[r * self.n + c0..r * self.n + c0 + self.size].fill(1.0);
        }
        Ok(())
    }

    /// The target image of class `class` (allocating form of [`DetectorRegions::target_image`]).
    pub fn mask(&self, class: usize) -> Result<Vec<f32>, OpticsError> {
        let mut v = vec![0.0; self.n * self.n];
        self.target_image(class, &mut v)?;
        Ok(v)
    }
}

/// A photon-limited camera (research/optics.md §5). Per pixel and exposure, with `I` the
/// simulated intensity: photons `n̄ = photons_per_unit·I`; photo-electrons
/// `N_e ~ Poisson(QE·n̄ + dark_electrons)`; read noise `N(0, read_noise²)` e⁻; digital number
/// `DN = clip(round((N_e + read)/electrons_per_dn + offset_dn), 0, 2^bit_depth − 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotonDetector {
    /// Mean photons per pixel per exposure for unit simulated intensity.
    pub photons_per_unit: f64,
    /// Quantum efficiency ∈ (0, 1].
    pub quantum_efficiency: f64,
    /// Mean dark electrons per pixel per exposure (dark current × exposure time).
    pub dark_electrons: f64,
    /// Read noise, electrons rms.
    pub read_noise_electrons: f64,
    /// Conversion gain, electrons per digital number.
    pub electrons_per_dn: f64,
    /// Black-level offset in digital numbers.
    pub offset_dn: f64,
    /// ADC bit depth (1..=24).
    pub bit_depth: u32,
}

impl PhotonDetector {
    /// FFM's CMOS (FLIR BFS-U3-89S6M, seed 002 Methods): QE 0.6399, 2.47 e⁻ read/dark noise,
    /// 1 e⁻/DN, no offset, 12 bits; `photons_per_unit` sets the light level.
    pub fn ffm_cmos(photons_per_unit: f64) -> PhotonDetector {
        PhotonDetector {
            photons_per_unit,
            quantum_efficiency: 0.6399,
            dark_electrons: 0.0,
            read_noise_electrons: 2.47,
            electrons_per_dn: 1.0,
            offset_dn: 0.0,
            bit_depth: 12,
        }
    }

    /// The sCMOS of seed 002's photon-limited NLOS processing (Andor Zyla 4.2, Methods): QE
    /// 0.82, 0.9 e⁻ read noise, 1 e⁻/DN, no offset, 16 bits; `photons_per_unit` sets the light
    /// level.
    pub fn zyla_scmos(photons_per_unit: f64) -> PhotonDetector {
        PhotonDetector {
            photons_per_unit,
            quantum_efficiency: 0.82,
            dark_electrons: 0.0,
            read_noise_electrons: 0.9,
            electrons_per_dn: 1.0,
            offset_dn: 0.0,
            bit_depth: 16,
        }
    }

    /// The same sensor read out in bins of `pixels` pixels: the sum of the bin's reads is one
    /// read of the bin's summed intensity with read noise `√pixels·σ` (exact for the Poisson
    /// and Gaussian parts: sums of independent Poisson and Gaussian variables), 24 bits and an
    /// offset of 2²⁰ DN so that a sum is neither clipped at zero nor saturated below
    /// ≈ 1.5·10⁷ e⁻. Per-pixel rounding and clipping are not modelled.
    pub fn binned(&self, pixels: usize) -> PhotonDetector {
        PhotonDetector {
            dark_electrons: self.dark_electrons * pixels as f64,
            read_noise_electrons: self.read_noise_electrons * (pixels as f64).sqrt(),
            offset_dn: (1u64 << 20) as f64,
            bit_depth: 24,
            ..*self
        }
    }

    fn validate(&self) -> Result<(), OpticsError> {
        let nonneg = |what: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(OpticsError::OutOfRange {
                    what,
                    value: v,
                    range: "finite, ≥ 0",
                })
            }
        };
        nonneg("photons per unit intensity", self.photons_per_unit)?;
        nonneg("dark electrons", self.dark_electrons)?;
        nonneg("read noise", self.read_noise_electrons)?;
        nonneg("offset", self.offset_dn)?;
        if !(self.quantum_efficiency > 0.0 && self.quantum_efficiency <= 1.0) {
            return Err(OpticsError::OutOfRange {
                what: "quantum efficiency",
                value: self.quantum_efficiency,
                range: "(0, 1]",
            });
        }
        crate::error::positive("electrons per DN", self.electrons_per_dn)?;
        if self.bit_depth == 0 || self.bit_depth > 24 {
            return Err(OpticsError::OutOfRange {
                what: "bit depth",
                value: self.bit_depth as f64,
                range: "1..=24",
            });
        }
        Ok(())
    }

    /// Simulates one exposure: `out[i]` = digital number of pixel `i` for intensity `intensity[i]`.
    pub fn detect<R: Rng + ?Sized>(&self, intensity: &[f32], out: &mut [f32], rng: &mut R) -> Result<(), OpticsError> {
        self.validate()?;
        if intensity.len() != out.len() {
            return Err(OpticsError::SizeMismatch {
                what: "detector output",
                expected: intensity.len(),
                got: out.len(),
            });
        }
        let max_dn = ((1u64 << self.bit_depth) - 1) as f64;
        let read = Normal::new(0.0, self.read_noise_electrons.max(0.0)).expect("finite sigma");
        for (o, &i) in out.iter_mut().zip(intensity) {
            let mean = self.quantum_efficiency * self.photons_per_unit * (i.max(0.0) as f64) + self.dark_electrons;
            let electrons = if mean > 0.0 {
                Poisson::new(mean).expect("positive mean").sample(rng)
            } else {
                0.0
            };
            let noisy = electrons
                + if self.read_noise_electrons > 0.0 {
                    read.sample(rng)
                } else {
                    0.0
                };
            *o = (noisy / self.electrons_per_dn + self.offset_dn)
                .round()
                .clamp(0.0, max_dn) as f32;
        }
        Ok(())
    }

    /// The unbiased intensity estimate of a digital number (inverse of the mean response):
    /// `((DN − offset)·electrons_per_dn − dark)/(QE·photons_per_unit)`.
    pub fn to_intensity(&self, dn: f32) -> f32 {
        (((dn as f64 - self.offset_dn) * self.electrons_per_dn - self.dark_electrons)
            / (self.quantum_efficiency * self.photons_per_unit)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_linalg::rng;

    #[test]
    fn layout_343_is_centred_disjoint_and_integrates_its_targets() {
        let d = DetectorRegions::ten_class_343(400, 40).unwrap();
        assert_eq!(d.len(), 10);
        let mut cover = vec![0u8; 400 * 400];
        for c in 0..10 {
            let t = d.mask(c).unwrap();
            let mut out = [0.0f32; 10];
            d.integrate(&t, &mut out);
            for (k, &v) in out.iter().enumerate() {
                assert_eq!(v, if k == c { 1600.0 } else { 0.0 });
            }
            assert_eq!(d.classify(&t), c);
            for (cv, tv) in cover.iter_mut().zip(&t) {
                *cv += *tv as u8;
            }
        }
        assert!(cover.iter().all(|&v| v <= 1), "regions overlap");
        // centred: mirror-symmetric coverage
        for r in 0..400 {
            for c in 0..400 {
                assert_eq!(cover[r * 400 + c], cover[(399 - r) * 400 + (399 - c)]);
            }
        }
        assert!(DetectorRegions::ten_class_343(100, 40).is_err());
        assert!(DetectorRegions::layout_343(400, 40, 30).is_err());
        assert!(d.mask(10).is_err());
    }

    #[test]
    fn photon_detector_statistics() {
        let det = PhotonDetector {
            photons_per_unit: 100.0,
            quantum_efficiency: 0.5,
            dark_electrons: 2.0,
            read_noise_electrons: 3.0,
            electrons_per_dn: 1.0,
            offset_dn: 10.0,
            bit_depth: 12,
        };
        let intensity = vec![1.0f32; 20000];
        let mut out = vec![0.0f32; 20000];
        det.detect(&intensity, &mut out, &mut rng(1)).unwrap();
        let mean = out.iter().map(|&v| v as f64).sum::<f64>() / 20000.0;
        let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 19999.0;
        // mean = 50 + 2 + 10; variance = 52 (Poisson) + 9 (read) + 1/12 (rounding)
        assert!((mean - 62.0).abs() < 0.3, "mean {mean}");
        assert!((var - 61.08).abs() < 3.0, "var {var}");
        assert!((det.to_intensity(62.0) - 1.0).abs() < 1e-6);
        let mut again = vec![0.0f32; 20000];
        det.detect(&intensity, &mut again, &mut rng(1)).unwrap();
        assert_eq!(out, again);
        // saturation and bad parameters
        let sat = PhotonDetector { bit_depth: 4, ..det };
        sat.detect(&[10.0], &mut out[..1], &mut rng(2)).unwrap();
        assert_eq!(out[0], 15.0);
        assert!(PhotonDetector {
            quantum_efficiency: 0.0,
            ..det
        }
        .detect(&[1.0], &mut out[..1], &mut rng(2))
        .is_err());
    }
}
