//! Free-space propagation between parallel planes of a square grid (SPEC B1).
//!
//! Conventions (docs/optics.md): a field is a row-major `n × n` slice, index `row * n + col`,
//! sample `(row, col)` sits at `(y, x) = (dx·(row − n/2), dx·(col − n/2))` (integer division).
//! Time dependence `exp(−iωt)`: a plane wave travelling toward `+z` is `exp(+i k_z z)`, so
//! propagation over `z` multiplies the angular spectrum by `exp(+i k_z z)`.

use num_complex::{Complex32, Complex64};
use std::f64::consts::PI;

use crate::elements::multiply_elementwise;
use crate::error::{positive, OpticsError};
use crate::fft::Fft2;

/// A square sampling grid: `n × n` samples at pitch `dx` metres. Sample `j` along either axis is
/// at `dx·(j − n/2)` (integer division), so the centre sample `(n/2, n/2)` is the optical axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Samples per side.
    pub n: usize,
    /// Pitch in metres.
    pub dx: f64,
}

impl Grid {
    /// A validated grid (`n ≥ 1`, `dx > 0`).
    pub fn new(n: usize, dx: f64) -> Result<Grid, OpticsError> {
        let g = Grid { n, dx };
        g.validate()?;
        Ok(g)
    }

    /// Checks `n ≥ 1` and `dx > 0` finite.
    pub fn validate(&self) -> Result<(), OpticsError> {
        if self.n == 0 {
            return Err(OpticsError::ZeroSize { what: "grid n" });
        }
        positive("grid pitch dx", self.dx)?;
        Ok(())
    }

    /// Number of samples, `n²`.
    pub fn len(&self) -> usize {
        self.n * self.n
    }

    /// `true` when the grid has no samples (never for a validated grid).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Coordinate in metres of sample index `j` along either axis: `dx·(j − n/2)`.
    pub fn coord(&self, j: usize) -> f64 {
        self.dx * (j as f64 - (self.n / 2) as f64)
    }

    /// Side length `n·dx` in metres.
    pub fn side(&self) -> f64 {
        self.n as f64 * self.dx
    }
}

/// How the propagator's transfer function is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationMethod {
    /// Exact angular spectrum `H = exp(i 2π z sqrt(1/λ² − f_x² − f_y²))`; evanescent components
    /// (`f_x² + f_y² > 1/λ²`) decay as `exp(−2π |z| sqrt(f_x² + f_y² − 1/λ²))`.
    AngularSpectrum,
    /// Fresnel (paraxial) transfer function `H = exp(i2πz/λ)·exp(−iπλz(f_x² + f_y²))`.
    Fresnel,
    /// Band-limited angular spectrum (Matsushima & Shimobaba, Opt. Express 17, 19662 (2009)):
    /// the exact `H`, set to zero where `|f_x| ≥ u_lim` or `|f_y| ≥ u_lim` with
    /// `u_lim = 1/(λ sqrt((2Δu z)² + 1))`, `Δu = 1/(padding·n·dx)`. The limit is a rectangle, so
    /// `H` stays even in `f_x` and in `f_y` separately and the propagator stays symmetric.
    BandLimitedAngularSpectrum,
}

/// Spatial frequency (cycles per metre) of FFT bin `u` on a grid of `m` samples at pitch `dx`:
/// `u/(m dx)` for `u < m/2` (rounded up), `(u − m)/(m dx)` otherwise. Bins `u` and `m − u` get
/// exactly opposite frequencies.
pub fn fft_frequency(u: usize, m: usize, dx: f64) -> f64 {
    let s = if 2 * u < m { u as f64 } else { u as f64 - m as f64 };
    s / (m as f64 * dx)
}

/// The transfer function `H(f_x, f_y)` of `method` for wavelength `λ` and distance `z`;
/// `band_limit` is the Matsushima–Shimobaba `u_lim` (used only by the band-limited method).
pub fn transfer_function(
    method: PropagationMethod,
    wavelength: f64,
    z: f64,
    fx: f64,
    fy: f64,
    band_limit: f64,
) -> Complex64 {
    let f2 = fx * fx + fy * fy;
    let inv_l2 = 1.0 / (wavelength * wavelength);
    let exact = || {
        let arg = inv_l2 - f2;
        if arg >= 0.0 {
            let phase = (2.0 * PI * z * arg.sqrt()).rem_euclid(2.0 * PI);
            Complex64::from_polar(1.0, phase)
        } else {
            Complex64::new((-2.0 * PI * z.abs() * (-arg).sqrt()).exp(), 0.0)
        }
    };
    match method {
        PropagationMethod::AngularSpectrum => exact(),
        PropagationMethod::BandLimitedAngularSpectrum => {
            if fx.abs() < band_limit && fy.abs() < band_limit {
                exact()
            } else {
                Complex64::new(0.0, 0.0)
            }
        }
        PropagationMethod::Fresnel => {
            let carrier = (2.0 * PI * z / wavelength).rem_euclid(2.0 * PI);
            let quad = (-PI * wavelength * z * f2).rem_euclid(2.0 * PI);
            Complex64::from_polar(1.0, carrier + quad)
        }
    }
}

/// A planned propagator over a fixed distance on a fixed grid.
///
/// `propagate` zero-pads the field to `m = padding·n` (field centred at offset `(m − n)/2`),
/// transforms, multiplies by the transfer function sampled on the padded grid, transforms back
/// and crops the centre. As a linear map on the `n²` samples it is symmetric (`T = Tᵀ`, no
/// conjugation): the transfer function is even in `f_x` and `f_y` and the crop is the transpose
/// of the embedding. Plans, the transfer function and all scratch are made in [`FreeSpace::new`];
/// `propagate` allocates nothing. Clone it to give each parallel worker its own scratch.
#[derive(Debug, Clone)]
pub struct FreeSpace {
    grid: Grid,
    wavelength: f64,
    distance: f64,
    method: PropagationMethod,
    padding: usize,
    m: usize,
    offset: usize,
    /// Transfer function on the padded grid, FFT order, `1/m²` folded in; symmetric in (u, v).
    h: Vec<Complex32>,
    /// The rows of `h` (maximal runs, in order) that hold a non-zero value: the frequencies
    /// the band limit keeps (every row for the other methods). The others are never computed.
    live: Vec<std::ops::Range<usize>>,
    fft: Fft2,
    buf: Vec<Complex32>,
}

/// The largest padded side a [`FreeSpace`] plans for: 16,384 (a 16,384² complex f32 field is
/// 2 GiB; the propagator keeps two). Larger grids are refused with an error instead of an
/// allocation failure.
pub const MAX_PADDED_SIDE: usize = 16_384;

impl FreeSpace {
    /// Plans propagation over `distance` metres (any finite sign; negative propagates backward)
    /// at `wavelength` metres, with zero padding factor `padding` (1 = none, 2 = the usual
    /// choice that keeps the circular convolution's wrap-around out of the aperture).
    pub fn new(
        grid: Grid,
        wavelength: f64,
        distance: f64,
        method: PropagationMethod,
        padding: usize,
    ) -> Result<FreeSpace, OpticsError> {
        grid.validate()?;
        positive("wavelength", wavelength)?;
        crate::error::finite("distance", distance)?;
        if padding == 0 {
            return Err(OpticsError::ZeroSize { what: "padding" });
        }
        let n = grid.n;
        let m = n.saturating_mul(padding);
        if m > MAX_PADDED_SIDE {
            return Err(OpticsError::DoesNotFit(format!(
                "a {n} × {n} grid padded {padding}× is {m} × {m}; the propagator holds two {MAX_PADDED_SIDE}² \
                 complex fields at most (4 GiB)"
            )));
        }
        let offset = (m - n) / 2;
        let du = 1.0 / (m as f64 * grid.dx);
        let band_limit = 1.0 / (wavelength * ((2.0 * du * distance).powi(2) + 1.0).sqrt());
        let norm = 1.0 / (m as f64 * m as f64);
        let freqs: Vec<f64> = (0..m).map(|u| fft_frequency(u, m, grid.dx)).collect();
        let mut h = vec![Complex32::new(0.0, 0.0); m * m];
        for a in 0..m {
            for b in 0..m {
                let v = transfer_function(method, wavelength, distance, freqs[a], freqs[b], band_limit) * norm;
                h[a * m + b] = Complex32::new(v.re as f32, v.im as f32);
            }
        }
        let zero = Complex32::new(0.0, 0.0);
        let mut live: Vec<std::ops::Range<usize>> = Vec::new();
        for a in 0..m {
            if h[a * m..(a + 1) * m].iter().any(|&v| v != zero) {
                match live.last_mut() {
                    Some(run) if run.end == a => run.end = a + 1,
                    _ => live.push(a..a + 1),
                }
            }
        }
        Ok(FreeSpace {
            grid,
            wavelength,
            distance,
            method,
            padding,
            m,
            offset,
            h,
            live,
            fft: Fft2::new(m),
            buf: vec![Complex32::new(0.0, 0.0); m * m],
        })
    }

    /// The grid the propagator acts on.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Wavelength in metres.
    pub fn wavelength(&self) -> f64 {
        self.wavelength
    }

    /// Propagation distance in metres.
    pub fn distance(&self) -> f64 {
        self.distance
    }

    /// The transfer-function method.
    pub fn method(&self) -> PropagationMethod {
        self.method
    }

    /// The zero-padding factor.
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// Side of the padded computational grid, `padding·n`.
    pub fn padded_size(&self) -> usize {
        self.m
    }

    /// The band limit `u_lim = 1/(λ sqrt((2Δu z)² + 1))` of the band-limited method (cycles/m).
    pub fn band_limit(&self) -> f64 {
        let du = 1.0 / (self.m as f64 * self.grid.dx);
        1.0 / (self.wavelength * ((2.0 * du * self.distance).powi(2) + 1.0).sqrt())
    }

    /// A propagator identical to this one but over `distance` (e.g. a distance error).
    pub fn with_distance(&self, distance: f64) -> Result<FreeSpace, OpticsError> {
        FreeSpace::new(self.grid, self.wavelength, distance, self.method, self.padding)
    }

    /// Propagates `field` (`n·n` values, row-major) in place.
    ///
    /// Only the `n` non-zero rows of the padded plane are transformed in the first pass and only
    /// the `n` kept rows in the last; the spectrum is held transposed in between (the transfer
    /// function is symmetric under `f_x ↔ f_y`), so two transposes suffice. In between, only the
    /// frequencies the transfer function keeps are transformed (the band limit's rectangle: a
    /// quarter of the rows at the paper's geometry): a row that `H` zeroes contributes exact
    /// zeros, so skipping it changes no value (at most the sign of a zero).
    pub fn propagate(&mut self, field: &mut [Complex32]) {
        let n = self.grid.n;
        let m = self.m;
        let o = self.offset;
        assert_eq!(field.len(), n * n, "field must hold n*n samples");
        let zero = Complex32::new(0.0, 0.0);
        let mut tmp = self.fft.take_tmp();
        let buf = &mut self.buf;
        for r in 0..n {
            let row = &mut buf[(o + r) * m..(o + r + 1) * m];
            row[..o].fill(zero);
            row[o..o + n].copy_from_slice(&field[r * n..(r + 1) * n]);
            row[o + n..].fill(zero);
        }
        self.fft.rows(buf, o..o + n, true);
        for live in &self.live {
            // tmp[j][i] = buf[i][j] for i in o..o+n and the kept frequencies j, zero elsewhere
            transpose_rows_to_cols(buf, &mut tmp, m, o..o + n, live.clone());
            self.fft.rows(&mut tmp, live.clone(), true);
            let rows = live.start * m..live.end * m;
            multiply_elementwise(&mut tmp[rows.clone()], &self.h[rows]);
            self.fft.rows(&mut tmp, live.clone(), false);
            // buf[i][j] = tmp[j][i] for i in o..o+n
            transpose_block(&tmp, buf, m, live.clone(), o..o + n);
        }
        // the frequencies H removes are zero
        for i in o..o + n {
            let row = &mut buf[i * m..(i + 1) * m];
            let mut from = 0;
            for live in &self.live {
                row[from..live.start].fill(zero);
                from = live.end;
            }
            row[from..].fill(zero);
        }
        self.fft.rows(buf, o..o + n, false);
        for r in 0..n {
            field[r * n..(r + 1) * n].copy_from_slice(&buf[(o + r) * m + o..(o + r) * m + o + n]);
        }
        self.fft.put_tmp(tmp);
    }
}

const TILE: usize = 32;

/// `dst[j*m + i] = src[i*m + j]` for `i ∈ rows`, `j ∈ cols`; the rest of `dst`'s rows `cols`
/// is zeroed (other rows untouched).
fn transpose_rows_to_cols(
    src: &[Complex32],
    dst: &mut [Complex32],
    m: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    let zero = Complex32::new(0.0, 0.0);
    for j in cols.clone() {
        dst[j * m..j * m + rows.start].fill(zero);
        dst[j * m + rows.end..(j + 1) * m].fill(zero);
    }
    transpose_block(src, dst, m, rows, cols);
}

/// `dst[c*m + r] = src[r*m + c]` for `r ∈ rows`, `c ∈ cols` (both planes `m × m`, row-major),
/// in tiles of [`TILE`] × [`TILE`], without bounds checks on the strided writes (asserted once:
/// they took half of the propagator's own time). An AVX-512 8 × 8 register transpose was tried
/// in session 19 and gained 2 % of a 400 × 400 propagation (the planes exceed L2; the moves are
/// memory-bound), so it was not kept.
fn transpose_block(
    src: &[Complex32],
    dst: &mut [Complex32],
    m: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    assert!(
        rows.start <= rows.end && rows.end <= m && cols.start <= cols.end && cols.end <= m,
        "transpose ranges inside the plane"
    );
    assert!(src.len() >= m * m && dst.len() >= m * m, "transpose planes of m × m");
    for rb in rows.clone().step_by(TILE) {
        let re = (rb + TILE).min(rows.end);
        for cb in cols.clone().step_by(TILE) {
            let ce = (cb + TILE).min(cols.end);
            for r in rb..re {
                for (c, &v) in (cb..ce).zip(&src[r * m + cb..r * m + ce]) {
                    // SAFETY: c < m and r < m, so c·m + r < m², within `dst` (asserted above).
                    unsafe { *dst.get_unchecked_mut(c * m + r) = v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const ALL: [PropagationMethod; 3] = [
        PropagationMethod::AngularSpectrum,
        PropagationMethod::Fresnel,
        PropagationMethod::BandLimitedAngularSpectrum,
    ];

    fn random_field(n: usize, seed: u64) -> Vec<Complex32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * n)
            .map(|_| Complex32::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect()
    }

    fn naive_dft2(x: &[Complex64], m: usize, sign: f64) -> Vec<Complex64> {
        let mut out = vec![Complex64::new(0.0, 0.0); m * m];
        for k1 in 0..m {
            for k2 in 0..m {
                let mut acc = Complex64::new(0.0, 0.0);
                for n1 in 0..m {
                    for n2 in 0..m {
                        let ang = sign * 2.0 * PI * ((k1 * n1 + k2 * n2) % m) as f64 / m as f64;
                        acc += x[n1 * m + n2] * Complex64::from_polar(1.0, ang);
                    }
                }
                out[k1 * m + k2] = acc;
            }
        }
        out
    }

    /// Embed, naive DFT, multiply by H (frequencies computed here independently), inverse, crop.
    fn naive_propagate(
        field: &[Complex32],
        grid: Grid,
        lambda: f64,
        z: f64,
        method: PropagationMethod,
        pad: usize,
    ) -> Vec<Complex64> {
        let n = grid.n;
        let m = n * pad;
        let o = (m - n) / 2;
        let mut big = vec![Complex64::new(0.0, 0.0); m * m];
        for r in 0..n {
            for c in 0..n {
                let v = field[r * n + c];
                big[(o + r) * m + o + c] = Complex64::new(v.re as f64, v.im as f64);
            }
        }
        let mut spec = naive_dft2(&big, m, -1.0);
        let freq = |u: usize| {
            let s = if u <= (m - 1) / 2 {
                u as f64
            } else {
                u as f64 - m as f64
            };
            s / (m as f64 * grid.dx)
        };
        let du = 1.0 / (m as f64 * grid.dx);
        let ulim = 1.0 / (lambda * ((2.0 * du * z).powi(2) + 1.0).sqrt());
        for a in 0..m {
            for b in 0..m {
                spec[a * m + b] *= transfer_function(method, lambda, z, freq(b), freq(a), ulim);
            }
        }
        let back = naive_dft2(&spec, m, 1.0);
        let mut out = vec![Complex64::new(0.0, 0.0); n * n];
        for r in 0..n {
            for c in 0..n {
                out[r * n + c] = back[(o + r) * m + o + c] / (m * m) as f64;
            }
        }
        out
    }

    #[test]
    fn skipping_the_removed_frequencies_changes_no_value() {
        // The transform of every row of the transposed spectrum, as before the band limit's
        // rows were skipped (session 20): the same values, bit for bit (`==` also equates the
        // signs of zeros, the one thing skipping may change).
        fn unpruned(fs: &mut FreeSpace, field: &mut [Complex32]) {
            let (n, m, o) = (fs.grid.n, fs.m, fs.offset);
            let mut tmp = fs.fft.take_tmp();
            let buf = &mut fs.buf;
            buf.fill(Complex32::new(0.0, 0.0));
            for r in 0..n {
                buf[(o + r) * m + o..(o + r) * m + o + n].copy_from_slice(&field[r * n..(r + 1) * n]);
            }
            fs.fft.rows(buf, 0..m, true);
            transpose_block(buf, &mut tmp, m, 0..m, 0..m);
            fs.fft.rows(&mut tmp, 0..m, true);
            multiply_elementwise(&mut tmp, &fs.h);
            fs.fft.rows(&mut tmp, 0..m, false);
            transpose_block(&tmp, buf, m, 0..m, 0..m);
            fs.fft.rows(buf, 0..m, false);
            for r in 0..n {
                field[r * n..(r + 1) * n].copy_from_slice(&buf[(o + r) * m + o..(o + r) * m + o + n]);
            }
            fs.fft.put_tmp(tmp);
        }
        let mut skipped = 0;
        for (n, dx, lambda, z) in [
            (16, 8e-6, 532e-9, 0.388 * 16.0 / 400.0),
            (64, 8e-6, 532e-9, 0.388 * 64.0 / 400.0),
            (37, 8e-6, 532e-9, 0.05),
            (24, 0.2e-6, 0.5e-6, 3e-6),
        ] {
            for pad in [1, 2, 3] {
                for method in ALL {
                    let mut fs = FreeSpace::new(Grid::new(n, dx).unwrap(), lambda, z, method, pad).unwrap();
                    let kept: usize = fs.live.iter().map(|l| l.len()).sum();
                    skipped += fs.m - kept;
                    let field = random_field(n, (n * 10 + pad) as u64);
                    let (mut pruned, mut full) = (field.clone(), field.clone());
                    fs.propagate(&mut pruned);
                    unpruned(&mut fs, &mut full);
                    assert!(pruned == full, "n={n} pad={pad} {method:?}");
                    if method == PropagationMethod::BandLimitedAngularSpectrum && dx == 8e-6 && pad == 2 {
                        // the paper's geometry keeps about a quarter of the frequencies
                        assert!((kept as f64) < 0.3 * fs.m as f64, "n={n}: {kept} of {} rows kept", fs.m);
                    }
                }
            }
        }
        assert!(skipped > 0);
    }

    #[test]
    fn propagate_matches_naive_dft_reference() {
        // dx < λ/√2 so that evanescent bins exist and the band limit bites.
        for n in [1, 2, 3, 5, 6, 7, 8] {
            for pad in [1, 2, 3] {
                for method in ALL {
                    let grid = Grid::new(n, 0.2e-6).unwrap();
                    let (lambda, z) = (0.5e-6, 3e-6);
                    let mut fs = FreeSpace::new(grid, lambda, z, method, pad).unwrap();
                    let field = random_field(n, (n * 10 + pad) as u64);
                    let want = naive_propagate(&field, grid, lambda, z, method, pad);
                    let mut got = field.clone();
                    fs.propagate(&mut got);
                    // second call must give the same (scratch reuse)
                    let mut again = field.clone();
                    fs.propagate(&mut again);
                    assert_eq!(got, again);
                    let err: f64 = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (Complex64::new(a.re as f64, a.im as f64) - b).norm_sqr())
                        .sum::<f64>()
                        .sqrt();
                    let norm: f64 = field.iter().map(|a| a.norm_sqr() as f64).sum::<f64>().sqrt();
                    assert!(err < 1e-5 * norm.max(1.0), "n={n} pad={pad} {method:?}: err {err}");
                }
            }
        }
    }

    #[test]
    fn block_transposes_equal_the_definition() {
        for m in [8, 16, 17, 40, 64, 100] {
            let src: Vec<Complex32> = (0..m * m)
                .map(|k| Complex32::new(k as f32, -(k as f32) - 0.5))
                .collect();
            let ranges = [
                (0, m),
                (0, m / 2),
                (m / 4, 3 * m / 4),
                (3, m.min(45)),
                (m - 1, m),
                (m / 3, m / 3),
            ];
            for &(a, b) in &ranges {
                for &(c, d) in &ranges {
                    let marker = Complex32::new(f32::NAN, 7.0);
                    let mut dst = vec![marker; m * m];
                    transpose_block(&src, &mut dst, m, a..b, c..d);
                    for r in 0..m {
                        for col in 0..m {
                            let got = dst[col * m + r];
                            if (a..b).contains(&r) && (c..d).contains(&col) {
                                assert_eq!(got, src[r * m + col], "m {m} rows {a}..{b} cols {c}..{d}");
                            } else {
                                assert!(got.re.is_nan() && got.im == 7.0, "m {m}: ({r}, {col}) written");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn propagator_is_symmetric_on_the_grid() {
        for n in [16, 17] {
            for pad in [1, 2, 3] {
                for method in ALL {
                    let grid = Grid::new(n, 8e-6).unwrap();
                    let mut fs = FreeSpace::new(grid, 532e-9, 0.02, method, pad).unwrap();
                    let a = random_field(n, 1);
                    let b = random_field(n, 2);
                    let (mut ta, mut tb) = (a.clone(), b.clone());
                    fs.propagate(&mut ta);
                    fs.propagate(&mut tb);
                    let bil = |x: &[Complex32], y: &[Complex32]| -> Complex64 {
                        x.iter()
                            .zip(y)
                            .map(|(p, q)| {
                                Complex64::new(p.re as f64, p.im as f64) * Complex64::new(q.re as f64, q.im as f64)
                            })
                            .sum()
                    };
                    let lhs = bil(&a, &tb);
                    let rhs = bil(&ta, &b);
                    let scale = (n * n) as f64;
                    assert!(
                        (lhs - rhs).norm() < 1e-5 * scale,
                        "n={n} pad={pad} {method:?}: {lhs} vs {rhs}"
                    );
                    // and the map is not trivially symmetric because it is the identity
                    let moved: f64 = ta.iter().zip(&a).map(|(p, q)| (p - q).norm_sqr() as f64).sum();
                    assert!(moved > 1e-3);
                }
            }
        }
    }

    #[test]
    fn energy_is_conserved_for_propagating_waves() {
        // dx = 8 µm ≫ λ: every bin propagates, |H| = 1; without padding the map is unitary.
        let grid = Grid::new(64, 8e-6).unwrap();
        for method in [PropagationMethod::AngularSpectrum, PropagationMethod::Fresnel] {
            let mut fs = FreeSpace::new(grid, 532e-9, 0.3, method, 1).unwrap();
            let mut f = random_field(64, 3);
            let e0: f64 = f.iter().map(|v| v.norm_sqr() as f64).sum();
            fs.propagate(&mut f);
            let e1: f64 = f.iter().map(|v| v.norm_sqr() as f64).sum();
            assert!((e1 / e0 - 1.0).abs() < 1e-5, "{method:?}: {e0} -> {e1}");
        }
        // A compact beam with padding: nothing reaches the edge, so energy stays.
        let mut fs = FreeSpace::new(grid, 532e-9, 0.01, PropagationMethod::BandLimitedAngularSpectrum, 2).unwrap();
        let mut g = gaussian(grid, 60e-6);
        let e0: f64 = g.iter().map(|v| v.norm_sqr() as f64).sum();
        fs.propagate(&mut g);
        let e1: f64 = g.iter().map(|v| v.norm_sqr() as f64).sum();
        assert!((e1 / e0 - 1.0).abs() < 1e-4, "{e0} -> {e1}");
    }

    #[test]
    fn evanescent_waves_decay() {
        // dx = λ/4: the highest bins are evanescent and must lose energy, propagating ones not.
        let grid = Grid::new(32, 0.125e-6).unwrap();
        let mut fs = FreeSpace::new(grid, 0.5e-6, 2e-6, PropagationMethod::AngularSpectrum, 1).unwrap();
        // a Nyquist checkerboard: f = 1/(2dx) = 4e6 > 1/λ = 2e6 in each axis
        let mut f: Vec<Complex32> = (0..32 * 32)
            .map(|i| Complex32::new(if (i / 32 + i % 32) % 2 == 0 { 1.0 } else { -1.0 }, 0.0))
            .collect();
        fs.propagate(&mut f);
        let e: f32 = f.iter().map(|v| v.norm_sqr()).sum();
        let kappa = 2.0 * PI * (2.0 * 4e6f64.powi(2) - 4e12).sqrt();
        let want = (32.0 * 32.0) * (-2.0 * kappa * 2e-6).exp();
        assert!(((e as f64) - want).abs() < 1e-3 * (32.0 * 32.0), "{e} vs {want}");
    }

    fn gaussian(grid: Grid, w0: f64) -> Vec<Complex32> {
        let n = grid.n;
        (0..n * n)
            .map(|i| {
                let (y, x) = (grid.coord(i / n), grid.coord(i % n));
                Complex32::new((-(x * x + y * y) / (w0 * w0)).exp() as f32, 0.0)
            })
            .collect()
    }

    #[test]
    fn fresnel_agrees_with_angular_spectrum_in_the_paraxial_regime() {
        let grid = Grid::new(128, 8e-6).unwrap();
        let g = gaussian(grid, 100e-6);
        let mut a = g.clone();
        let mut b = g.clone();
        FreeSpace::new(grid, 532e-9, 0.05, PropagationMethod::AngularSpectrum, 2)
            .unwrap()
            .propagate(&mut a);
        FreeSpace::new(grid, 532e-9, 0.05, PropagationMethod::Fresnel, 2)
            .unwrap()
            .propagate(&mut b);
        let err: f32 = a.iter().zip(&b).map(|(p, q)| (p - q).norm_sqr()).sum::<f32>().sqrt();
        let norm: f32 = a.iter().map(|p| p.norm_sqr()).sum::<f32>().sqrt();
        assert!(err < 1e-3 * norm, "relative difference {}", err / norm);
        // and far from paraxial (dx ~ λ, large angles) they must differ
        let grid = Grid::new(64, 0.6e-6).unwrap();
        let g = random_field(64, 4);
        let (mut a, mut b) = (g.clone(), g);
        FreeSpace::new(grid, 0.5e-6, 20e-6, PropagationMethod::AngularSpectrum, 1)
            .unwrap()
            .propagate(&mut a);
        FreeSpace::new(grid, 0.5e-6, 20e-6, PropagationMethod::Fresnel, 1)
            .unwrap()
            .propagate(&mut b);
        let err: f32 = a.iter().zip(&b).map(|(p, q)| (p - q).norm_sqr()).sum::<f32>().sqrt();
        let norm: f32 = a.iter().map(|p| p.norm_sqr()).sum::<f32>().sqrt();
        assert!(err > 0.1 * norm);
    }

    #[test]
    fn gaussian_beam_width_follows_the_analytic_law() {
        let grid = Grid::new(128, 8e-6).unwrap();
        let (w0, lambda) = (60e-6, 532e-9);
        let zr = PI * w0 * w0 / lambda;
        for z in [0.0, 0.02, 0.04] {
            for method in ALL {
                let mut f = gaussian(grid, w0);
                FreeSpace::new(grid, lambda, z, method, 2).unwrap().propagate(&mut f);
                let (mut m2, mut tot) = (0.0, 0.0);
                for (i, v) in f.iter().enumerate() {
                    let x = grid.coord(i % grid.n);
                    let int = v.norm_sqr() as f64;
                    m2 += x * x * int;
                    tot += int;
                }
                // |E|² ∝ exp(−2x²/w²) ⇒ ⟨x²⟩ = w²/4
                let w = 2.0 * (m2 / tot).sqrt();
                let want = w0 * (1.0 + (z / zr).powi(2)).sqrt();
                assert!((w / want - 1.0).abs() < 0.01, "z={z} {method:?}: {w} vs {want}");
            }
        }
    }

    #[test]
    fn forward_then_backward_is_identity_without_evanescent_loss() {
        let grid = Grid::new(32, 8e-6).unwrap();
        let f = random_field(32, 6);
        let mut g = f.clone();
        FreeSpace::new(grid, 532e-9, 0.1, PropagationMethod::AngularSpectrum, 1)
            .unwrap()
            .propagate(&mut g);
        FreeSpace::new(grid, 532e-9, -0.1, PropagationMethod::AngularSpectrum, 1)
            .unwrap()
            .propagate(&mut g);
        let err: f32 = f.iter().zip(&g).map(|(p, q)| (p - q).norm()).fold(0.0, f32::max);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn bad_parameters_are_errors() {
        let g = Grid { n: 8, dx: 1e-6 };
        let m = PropagationMethod::AngularSpectrum;
        assert!(matches!(
            FreeSpace::new(Grid { n: 0, dx: 1e-6 }, 1e-6, 1.0, m, 1),
            Err(OpticsError::ZeroSize { .. })
        ));
        assert!(matches!(
            FreeSpace::new(Grid { n: 8, dx: 0.0 }, 1e-6, 1.0, m, 1),
            Err(OpticsError::NonPositive { .. })
        ));
        assert!(matches!(
            FreeSpace::new(g, 0.0, 1.0, m, 1),
            Err(OpticsError::NonPositive { .. })
        ));
        assert!(matches!(
            FreeSpace::new(g, -1e-6, 1.0, m, 1),
            Err(OpticsError::NonPositive { .. })
        ));
        assert!(matches!(
            FreeSpace::new(g, 1e-6, f64::NAN, m, 1),
            Err(OpticsError::NotFinite { .. })
        ));
        assert!(matches!(
            FreeSpace::new(g, 1e-6, 1.0, m, 0),
            Err(OpticsError::ZeroSize { .. })
        ));
        // too large to hold: an error naming the sizes, not an allocation failure
        let huge = Grid { n: 100_000, dx: 1e-6 };
        match FreeSpace::new(huge, 1e-6, 1.0, m, 2) {
            Err(OpticsError::DoesNotFit(msg)) => assert!(msg.contains("200000 × 200000"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(FreeSpace::new(Grid { n: 8, dx: 1e-6 }, 1e-6, 1.0, m, usize::MAX).is_err());
    }
}
