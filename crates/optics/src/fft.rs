//! Square 2-D FFTs on row-major buffers through rustfft: row FFTs over the whole buffer (one
//! `process_with_scratch` call runs every row), a tiled transpose, row FFTs again
//! (`../shared/research/gemm-bench.md`, FFT section). Plans and scratch are made once.

use std::sync::Arc;

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Out-of-place transpose of a square `m × m` row-major buffer, in 32 × 32 tiles.
pub fn transpose_square(src: &[Complex32], dst: &mut [Complex32], m: usize) {
    assert_eq!(src.len(), m * m);
    assert_eq!(dst.len(), m * m);
    const TILE: usize = 32;
    for ib in (0..m).step_by(TILE) {
        let ie = (ib + TILE).min(m);
        for jb in (0..m).step_by(TILE) {
            let je = (jb + TILE).min(m);
            for i in ib..ie {
                let row = &src[i * m..i * m + m];
                for j in jb..je {
                    dst[j * m + i] = row[j];
                }
            }
        }
    }
}

/// A planned square 2-D FFT of side `m` (unnormalised forward `Σ x e^{−2πi k·n/m}` and
/// unnormalised inverse `Σ X e^{+2πi k·n/m}`), with its own scratch: no allocation per call.
#[derive(Clone)]
pub struct Fft2 {
    m: usize,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    tmp: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl std::fmt::Debug for Fft2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fft2").field("m", &self.m).finish()
    }
}

impl Fft2 {
    /// Plans forward and inverse FFTs of side `m` (`m ≥ 1`).
    pub fn new(m: usize) -> Self {
        assert!(m > 0, "FFT size must be positive");
        let mut planner = FftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(m);
        let inverse = planner.plan_fft_inverse(m);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        Fft2 {
            m,
            forward,
            inverse,
            tmp: vec![Complex32::new(0.0, 0.0); m * m],
            scratch: vec![Complex32::new(0.0, 0.0); scratch_len],
        }
    }

    /// The side length.
    pub fn size(&self) -> usize {
        self.m
    }

    /// Row FFTs (forward if `forward`) of the rows `rows` of the `m × m` buffer `buf`.
    pub(crate) fn rows(&mut self, buf: &mut [Complex32], rows: std::ops::Range<usize>, forward: bool) {
        let m = self.m;
        if rows.is_empty() {
            return;
        }
        let part = &mut buf[rows.start * m..rows.end * m];
        let plan = if forward { &self.forward } else { &self.inverse };
        plan.process_with_scratch(part, &mut self.scratch);
    }

    /// Internal scratch plane of `m × m` (used by the propagator for the transposed spectrum).
    pub(crate) fn take_tmp(&mut self) -> Vec<Complex32> {
        std::mem::take(&mut self.tmp)
    }

    /// Returns the plane taken by [`Fft2::take_tmp`].
    pub(crate) fn put_tmp(&mut self, tmp: Vec<Complex32>) {
        self.tmp = tmp;
    }

    /// In-place unnormalised 2-D transform of the `m × m` row-major buffer (forward if
    /// `forward`, else inverse without the `1/m²`). Output is in natural (not transposed) order.
    pub fn process(&mut self, buf: &mut [Complex32], forward: bool) {
        let m = self.m;
        assert_eq!(buf.len(), m * m, "buffer must hold m*m values");
        let mut tmp = self.take_tmp();
        self.rows(buf, 0..m, forward);
        transpose_square(buf, &mut tmp, m);
        self.rows(&mut tmp, 0..m, forward);
        transpose_square(&tmp, buf, m);
        self.put_tmp(tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex64;
    use rand::{Rng, SeedableRng};

    fn naive_dft2(x: &[Complex64], m: usize, sign: f64) -> Vec<Complex64> {
        let mut out = vec![Complex64::new(0.0, 0.0); m * m];
        for k1 in 0..m {
            for k2 in 0..m {
                let mut acc = Complex64::new(0.0, 0.0);
                for n1 in 0..m {
                    for n2 in 0..m {
                        let ang = sign * 2.0 * std::f64::consts::PI * ((k1 * n1 + k2 * n2) % m) as f64 / m as f64;
                        acc += x[n1 * m + n2] * Complex64::from_polar(1.0, ang);
                    }
                }
                out[k1 * m + k2] = acc;
            }
        }
        out
    }

    #[test]
    fn fft2_matches_naive_dft_over_many_sizes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for m in (1..=20).chain([24, 25, 27, 30, 32, 33]) {
            let x64: Vec<Complex64> = (0..m * m)
                .map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
                .collect();
            let mut fft = Fft2::new(m);
            for forward in [true, false] {
                let mut buf: Vec<Complex32> = x64.iter().map(|z| Complex32::new(z.re as f32, z.im as f32)).collect();
                fft.process(&mut buf, forward);
                let want = naive_dft2(&x64, m, if forward { -1.0 } else { 1.0 });
                let mae: f64 = buf
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (Complex64::new(a.re as f64, a.im as f64) - b).norm())
                    .sum::<f64>()
                    / (m * m) as f64;
                // values are O(m); f32 rounding gives errors O(m · 1e-7 · log m)
                assert!(mae < 1e-5 * m as f64, "m = {m}, forward = {forward}: mae {mae}");
            }
        }
    }

    #[test]
    fn transpose_is_a_transpose() {
        for m in [1, 5, 31, 32, 33, 70] {
            let src: Vec<Complex32> = (0..m * m).map(|i| Complex32::new(i as f32, -(i as f32))).collect();
            let mut dst = vec![Complex32::new(0.0, 0.0); m * m];
            transpose_square(&src, &mut dst, m);
            for i in 0..m {
                for j in 0..m {
                    assert_eq!(dst[j * m + i], src[i * m + j]);
                }
            }
        }
    }
}
