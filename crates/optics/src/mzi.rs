//! Mach–Zehnder interferometers and the rectangular (Clements) mesh, in neurophox's conventions
//! written for column vectors (SPEC A9; docs/optics.md).
//!
//! **One MZI** on modes (top, bottom), column convention `y = T x`:
//! `T(θ, φ) = i·[[e^{iφ} sin(θ/2), e^{iφ} cos(θ/2)], [cos(θ/2), −sin(θ/2)]]`
//! `= diag(e^{iφ}, 1) · B · diag(e^{iθ/2}, e^{−iθ/2}) · B`, `B = (1/√2)[[1, i], [i, 1]]`:
//! θ is the differential internal phase (θ = π bar, θ = 0 cross), φ an output phase on the top arm.
//!
//! **The mesh** of `N` modes and `L` layers: layer `l` even holds MZIs on modes `(2k, 2k+1)`,
//! `k < N/2`; layer `l` odd on `(2k+1, 2k+2)`, `k < (N−1)/2`; a mode without partner passes
//! unchanged. `γ` (length `N`) is an input phase screen:
//! `U = Layer_{L−1} ⋯ Layer_0 · diag(e^{iγ})`, `y = U x`.
//!
//! **neurophox** works with row vectors (`y_row = x_row @ M`); its `.matrix` is `Uᵀ` of this
//! convention and its `theta`, `phi` arrays of shape `(L, N//2)` are indexed the same way
//! `(layer, k)`. For odd `N` the flat layout below is neurophox's row-major `(L, N//2)` array;
//! for even `N` the odd layers here hold `N/2 − 1` MZIs (neurophox pads them with a masked slot).
//!
//! **Parameter layout** (`params()`, one flat `f32` slice): `[θ_0 … θ_{M−1}, φ_0 … φ_{M−1},
//! γ_0 … γ_{N−1}]`, `M` = number of MZIs, MZIs ordered by layer then by `k` (top mode
//! `2k + (l mod 2)`). Phases are unconstrained reals; the mesh is periodic in them (period 4π in
//! θ, 2π in φ, γ); [`RectangularMesh::wrap_phases`] rewrites them into θ ∈ [0, π],
//! φ, γ ∈ [0, 2π) without changing `U`.

use std::f64::consts::PI;

use insitu_linalg::{CMat, CMat64};
use num_complex::{Complex32, Complex64};
use rand::Rng;

use crate::error::OpticsError;

/// A 2×2 complex matrix `[[t00, t01], [t10, t11]]` in row-major order.
pub type Mat2 = [Complex64; 4];

/// The ideal MZI `T(θ, φ) = i[[e^{iφ} sin(θ/2), e^{iφ} cos(θ/2)], [cos(θ/2), −sin(θ/2)]]`.
pub fn mzi_transfer(theta: f64, phi: f64) -> Mat2 {
    let (s, c) = (theta / 2.0).sin_cos();
    let i = Complex64::i();
    let e = Complex64::from_polar(1.0, phi);
    [i * e * s, i * e * c, i * c, -i * s]
}

/// A 50:50 coupler with splitting error `ε`: `[[cos(π/4+ε), i sin(π/4+ε)], [i sin(π/4+ε), cos(π/4+ε)]]`
/// (neurophox's `Beamsplitter` convention).
pub fn beamsplitter(epsilon: f64) -> Mat2 {
    let (s, c) = (PI / 4.0 + epsilon).sin_cos();
    [
        Complex64::new(c, 0.0),
        Complex64::new(0.0, s),
        Complex64::new(0.0, s),
        Complex64::new(c, 0.0),
    ]
}

fn mul2(a: &Mat2, b: &Mat2) -> Mat2 {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    ]
}

/// The MZI with coupler errors `ε_in` (first coupler) and `ε_out` (second):
/// `diag(e^{iφ}, 1) · B(ε_out) · diag(e^{iθ/2}, e^{−iθ/2}) · B(ε_in)`; equals
/// [`mzi_transfer`] when both errors are zero.
pub fn mzi_transfer_with_error(theta: f64, phi: f64, eps_in: f64, eps_out: f64) -> Mat2 {
    let z = Complex64::new(0.0, 0.0);
    let inner = [
        Complex64::from_polar(1.0, theta / 2.0),
        z,
        z,
        Complex64::from_polar(1.0, -theta / 2.0),
    ];
    let outer = [Complex64::from_polar(1.0, phi), z, z, Complex64::new(1.0, 0.0)];
    mul2(
        &outer,
        &mul2(&beamsplitter(eps_out), &mul2(&inner, &beamsplitter(eps_in))),
    )
}

/// Number of MZIs in layer `l` of an `n`-mode mesh.
pub fn mzis_in_layer(n: usize, l: usize) -> usize {
    if l.is_multiple_of(2) {
        n / 2
    } else {
        n.saturating_sub(1) / 2
    }
}

/// A programmable rectangular MZI mesh (see the module docs for every convention).
#[derive(Debug, Clone, PartialEq)]
pub struct RectangularMesh {
    n: usize,
    layers: usize,
    /// `layer_start[l]` = flat index of the first MZI of layer `l`; length `layers + 1`.
    layer_start: Vec<usize>,
    params: Vec<f32>,
    /// Coupler errors `(ε_in, ε_out)` per MZI, flat `2M`, or `None` for ideal 50:50 couplers.
    bs_error: Option<Vec<f32>>,
    /// Phase quantisation: each phase is rounded to a multiple of `2π / 2^bits`.
    phase_bits: Option<u32>,
}

/// MZIs per block of a layer: their 2×2 matrices are computed once and applied to every field
/// of the batch.
const CHUNK: usize = 64;

/// `(x[m0 + 2j], x[m0 + 2j + 1]) ← T_j · (x[m0 + 2j], x[m0 + 2j + 1])` in every field (column
/// of `n` values) of `x`, for the 2×2 matrices `coefs` (`[t₀₀, t₀₁, t₁₀, t₁₁]`, at most
/// [`CHUNK`]): one block of one layer of the mesh. Each output is `t·a + t'·b` with
/// `num_complex`'s operations (a complex product `(t.re·a.re − t.im·a.im, t.re·a.im +
/// t.im·a.re)`, no fused multiply-adds), so the AVX-512 path and the scalar loop give the same
/// bits (tested).
fn apply_pairs(x: &mut [Complex32], n: usize, m0: usize, coefs: &[[Complex32; 4]]) {
    assert!(coefs.len() <= CHUNK && m0 + 2 * coefs.len() <= n && x.len().is_multiple_of(n));
    if coefs.is_empty() {
        // Nothing to apply (and the vector path's tail arithmetic assumes a group).
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F checked; the bounds above.
        unsafe { apply_pairs_avx512(x, n, m0, coefs) };
        return;
    }
    apply_pairs_scalar(x, n, m0, coefs);
}

/// [`apply_pairs`] one complex operation at a time (the reference the vector path equals).
fn apply_pairs_scalar(x: &mut [Complex32], n: usize, m0: usize, coefs: &[[Complex32; 4]]) {
    for col in x.chunks_exact_mut(n) {
        let seg = &mut col[m0..m0 + 2 * coefs.len()];
        for (pair, t) in seg.chunks_exact_mut(2).zip(coefs) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = t[0] * a + t[1] * b;
            pair[1] = t[2] * a + t[3] * b;
        }
    }
}

/// [`apply_pairs`] with 4 MZIs per 512-bit register: a pair `(a, b)` fills one 128-bit lane as
/// `X = [a.re, a.im, b.re, b.im]`, and with its permutations `[a.im, a.re, b.im, b.re]`,
/// `[b.re, b.im, a.re, a.im]` and `[b.im, b.re, a.im, a.re]` times four coefficient vectors
/// built once per block (lane by lane: `t₀₀.re, −t₀₀.im, t₀₁.re, −t₀₁.im` for `a'.re`, …, the
/// sign of `−t.im·a.im` folded into the coefficient: `x + (−t)·y` is `x − t·y` exactly) each
/// output is the scalar loop's `(t·a) + (t'·b)` — for `b'` as `(t₁₁·b) + (t₁₀·a)`, the same sum.
/// 3 in-lane permutes, 4 multiplications and 3 additions per 4 MZIs and field.
///
/// # Safety
/// AVX-512F; `coefs.len() ≤ CHUNK`, `m0 + 2·coefs.len() ≤ n` and `x` holds whole fields of `n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply_pairs_avx512(x: &mut [Complex32], n: usize, m0: usize, coefs: &[[Complex32; 4]]) {
    use std::arch::x86_64::*;
    const PAIRS: usize = 4;
    let groups = coefs.len().div_ceil(PAIRS);
    // Per group of 4 MZIs, the coefficient of each of X's four permutations, lane by lane.
    let mut c = [[_mm512_setzero_ps(); 4]; CHUNK / PAIRS];
    for (g, block) in coefs.chunks(PAIRS).enumerate() {
        let mut lanes = [[0.0f32; 16]; 4];
        for (p, t) in block.iter().enumerate() {
            let [t00, t01, t10, t11] = *t;
            let at = 4 * p;
            // Lanes a'.re, a'.im, b'.re, b'.im of the pair.
            lanes[0][at..at + 4].copy_from_slice(&[t00.re, t00.re, t11.re, t11.re]);
            lanes[1][at..at + 4].copy_from_slice(&[-t00.im, t00.im, -t11.im, t11.im]);
            lanes[2][at..at + 4].copy_from_slice(&[t01.re, t01.re, t10.re, t10.re]);
            lanes[3][at..at + 4].copy_from_slice(&[-t01.im, t01.im, -t10.im, t10.im]);
        }
        for (slot, l) in c[g].iter_mut().zip(&lanes) {
            // SAFETY: 16 f32s.
            *slot = unsafe { _mm512_loadu_ps(l.as_ptr()) };
        }
    }
    let tail = coefs.len() - PAIRS * (groups - 1);
    let tail_mask: __mmask16 = if tail == PAIRS {
        0xFFFF
    } else {
        (1u16 << (4 * tail)) - 1
    };
    for col in x.chunks_exact_mut(n) {
        let base = col[m0..].as_mut_ptr().cast::<f32>();
        for (g, cg) in c[..groups].iter().enumerate() {
            let mask = if g + 1 == groups { tail_mask } else { 0xFFFF };
            // SAFETY: the group's 4·(pairs in it) floats lie in `col[m0..m0 + 2·coefs.len()]`;
            // masked lanes are neither read nor written.
            unsafe {
                let at = base.add(16 * g);
                let q0 = _mm512_maskz_loadu_ps(mask, at);
                let q1 = _mm512_permute_ps::<0b10_11_00_01>(q0);
                let q2 = _mm512_permute_ps::<0b01_00_11_10>(q0);
                let q3 = _mm512_permute_ps::<0b00_01_10_11>(q0);
                let first = _mm512_add_ps(_mm512_mul_ps(q0, cg[0]), _mm512_mul_ps(q1, cg[1]));
                let second = _mm512_add_ps(_mm512_mul_ps(q2, cg[2]), _mm512_mul_ps(q3, cg[3]));
                _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(first, second));
            }
        }
    }
    _mm256_zeroupper();
}

/// `batch` fields of `n` modes fill `len` values exactly.
fn check_batch(n: usize, len: usize, batch: usize) -> Result<(), OpticsError> {
    if len != n * batch {
        return Err(OpticsError::SizeMismatch {
            what: "mesh batch buffer (N*batch)",
            expected: n * batch,
            got: len,
        });
    }
    Ok(())
}

/// A mesh's transfer data, computed once by [`RectangularMesh::transfer`]: the input screen's
/// factors `e^{iγ}` and every MZI's 2×2 matrix (quantisation and coupler errors included).
/// [`MeshTransfer::apply_batch_slice`] gives the same bits as the mesh's own
/// [`RectangularMesh::apply_batch_slice`] (tested), without recomputing the matrices, so blocks
/// of fields can share them (e.g. one block per thread).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshTransfer {
    n: usize,
    layer_start: Vec<usize>,
    screen: Vec<Complex32>,
    coefs: Vec<[Complex32; 4]>,
}

impl MeshTransfer {
    /// Number of modes `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// [`RectangularMesh::apply_batch_slice`] with the matrices computed once.
    pub fn apply_batch_slice(&self, x: &mut [Complex32], batch: usize) -> Result<(), OpticsError> {
        let n = self.n;
        check_batch(n, x.len(), batch)?;
        if batch == 0 {
            return Ok(());
        }
        for col in x.chunks_exact_mut(n) {
            for (v, p) in col.iter_mut().zip(&self.screen) {
                *v *= *p;
            }
        }
        for (l, range) in self.layer_start.windows(2).enumerate() {
            let (base, end) = (range[0], range[1]);
            for cstart in (base..end).step_by(CHUNK) {
                let cend = (cstart + CHUNK).min(end);
                apply_pairs(x, n, 2 * (cstart - base) + l % 2, &self.coefs[cstart..cend]);
            }
        }
        Ok(())
    }
}

impl RectangularMesh {
    /// An `n`-mode mesh with `layers` layers, all phases zero (every MZI in the cross state).
    pub fn new(n: usize, layers: usize) -> Result<RectangularMesh, OpticsError> {
        if n == 0 {
            return Err(OpticsError::ZeroSize { what: "mesh modes n" });
        }
        let mut layer_start = Vec::with_capacity(layers + 1);
        let mut acc = 0;
        for l in 0..layers {
            layer_start.push(acc);
            acc += mzis_in_layer(n, l);
        }
        layer_start.push(acc);
        Ok(RectangularMesh {
            n,
            layers,
            layer_start,
            params: vec![0.0; 2 * acc + n],
            bs_error: None,
            phase_bits: None,
        })
    }

    /// The Clements mesh: `L = N` layers, `N(N−1)/2` MZIs, universal for U(N).
    pub fn clements(n: usize) -> Result<RectangularMesh, OpticsError> {
        RectangularMesh::new(n, n)
    }

    /// A Clements mesh initialised Haar-randomly (see [`RectangularMesh::randomize_haar`]).
    pub fn haar_rect<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Result<RectangularMesh, OpticsError> {
        let mut m = RectangularMesh::clements(n)?;
        m.randomize_haar(rng);
        Ok(m)
    }

    /// Number of modes `N`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of layers `L`.
    pub fn num_layers(&self) -> usize {
        self.layers
    }

    /// Number of MZIs `M`.
    pub fn num_mzis(&self) -> usize {
        self.layer_start[self.layers]
    }

    /// Number of parameters `2M + N`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Flat MZI indices of layer `l`.
    pub fn layer_mzis(&self, l: usize) -> std::ops::Range<usize> {
        self.layer_start[l]..self.layer_start[l + 1]
    }

    /// The top mode of MZI `k` of layer `l`: `2k + (l mod 2)`.
    pub fn top_mode(l: usize, k: usize) -> usize {
        2 * k + l % 2
    }

    /// All parameters, layout `[θ (M), φ (M), γ (N)]` (module docs).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// All parameters, mutable (same layout); a gradient estimator perturbs these in place.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// θ of every MZI (flat MZI order).
    pub fn thetas(&self) -> &[f32] {
        &self.params[..self.num_mzis()]
    }

    /// φ of every MZI (flat MZI order).
    pub fn phis(&self) -> &[f32] {
        let m = self.num_mzis();
        &self.params[m..2 * m]
    }

    /// The input phase screen γ (one per mode).
    pub fn gammas(&self) -> &[f32] {
        &self.params[2 * self.num_mzis()..]
    }

    /// Sets every parameter from a slice in the flat layout.
    pub fn set_params(&mut self, p: &[f32]) -> Result<(), OpticsError> {
        if p.len() != self.params.len() {
            return Err(OpticsError::SizeMismatch {
                what: "mesh parameters",
                expected: self.params.len(),
                got: p.len(),
            });
        }
        self.params.copy_from_slice(p);
        Ok(())
    }

    /// Sets the coupler errors `(ε_in, ε_out)` per MZI (flat `2M`, radians of splitting angle
    /// away from π/4), or `None` for ideal couplers.
    pub fn set_beamsplitter_errors(&mut self, errors: Option<Vec<f32>>) -> Result<(), OpticsError> {
        if let Some(e) = &errors {
            if e.len() != 2 * self.num_mzis() {
                return Err(OpticsError::SizeMismatch {
                    what: "beamsplitter errors",
                    expected: 2 * self.num_mzis(),
                    got: e.len(),
                });
            }
        }
        self.bs_error = errors;
        Ok(())
    }

    /// The coupler errors, if any.
    pub fn beamsplitter_errors(&self) -> Option<&[f32]> {
        self.bs_error.as_deref()
    }

    /// Quantises every phase to `bits` bits (multiples of `2π/2^bits`) when the mesh is applied
    /// (the stored parameters stay continuous); `None` turns quantisation off.
    pub fn set_phase_bits(&mut self, bits: Option<u32>) -> Result<(), OpticsError> {
        if let Some(b) = bits {
            if b == 0 || b > 24 {
                return Err(OpticsError::OutOfRange {
                    what: "phase bits",
                    value: b as f64,
                    range: "1..=24",
                });
            }
        }
        self.phase_bits = bits;
        Ok(())
    }

    /// The phase quantisation, if any.
    pub fn phase_bits(&self) -> Option<u32> {
        self.phase_bits
    }

    fn effective(&self, p: f64) -> f64 {
        match self.phase_bits {
            None => p,
            Some(b) => {
                let q = 2.0 * PI / (1u64 << b) as f64;
                (p / q).round() * q
            }
        }
    }

    /// The 2×2 transfer matrix of flat MZI `idx` as applied (quantisation and coupler errors
    /// included), in f64.
    pub fn mzi_matrix(&self, idx: usize) -> Mat2 {
        let m = self.num_mzis();
        let theta = self.effective(self.params[idx] as f64);
        let phi = self.effective(self.params[m + idx] as f64);
        match &self.bs_error {
            None => mzi_transfer(theta, phi),
            Some(e) => mzi_transfer_with_error(theta, phi, e[2 * idx] as f64, e[2 * idx + 1] as f64),
        }
    }

    /// The input screen's factor `e^{iγ_i}` of mode `i` as applied (quantisation included), in
    /// f32.
    fn screen_factor(&self, i: usize) -> Complex32 {
        let g = self.effective(self.params[2 * self.num_mzis() + i] as f64) as f32;
        let (s, c) = g.sin_cos();
        Complex32::new(c, s)
    }

    fn mzi_matrix32(&self, idx: usize) -> [Complex32; 4] {
        if self.bs_error.is_none() && self.phase_bits.is_none() {
            let m = self.num_mzis();
            let (s, c) = (self.params[idx] * 0.5).sin_cos();
            let (ps, pc) = self.params[m + idx].sin_cos();
            // i·e^{iφ} = (−sin φ, cos φ)
            let ie = Complex32::new(-ps, pc);
            [ie * s, ie * c, Complex32::new(0.0, c), Complex32::new(0.0, -s)]
        } else {
            self.mzi_matrix(idx).map(|z| Complex32::new(z.re as f32, z.im as f32))
        }
    }

    /// Applies the mesh in place to `batch` fields stored as an `N × batch` column-major buffer
    /// (field `b` = `x[b*N .. (b+1)*N]`), layer by layer without forming `U`, allocation-free:
    /// per block of up to 64 MZIs of a layer, their 2×2 matrices once, then every field
    /// (four MZIs per AVX-512 register where the CPU has it; the same bits as the scalar loop,
    /// `docs/optics.md` §11).
    pub fn apply_batch_slice(&self, x: &mut [Complex32], batch: usize) -> Result<(), OpticsError> {
        let n = self.n;
        check_batch(n, x.len(), batch)?;
        if batch == 0 {
            return Ok(());
        }
        // input phase screen
        let mut ph = [Complex32::new(0.0, 0.0); CHUNK];
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            for i in start..end {
                ph[i - start] = self.screen_factor(i);
            }
            for col in x.chunks_exact_mut(n) {
                for (v, p) in col[start..end].iter_mut().zip(&ph) {
                    *v *= *p;
                }
            }
        }
        let mut coef = [[Complex32::new(0.0, 0.0); 4]; CHUNK];
        for l in 0..self.layers {
            let range = self.layer_mzis(l);
            let base = range.start;
            let off = l % 2;
            for cstart in range.clone().step_by(CHUNK) {
                let cend = (cstart + CHUNK).min(range.end);
                let cnt = cend - cstart;
                for j in 0..cnt {
                    coef[j] = self.mzi_matrix32(cstart + j);
                }
                let m0 = 2 * (cstart - base) + off;
                apply_pairs(x, n, m0, &coef[..cnt]);
            }
        }
        Ok(())
    }

    /// The mesh's transfer data computed once ([`MeshTransfer`]): the input screen's phase
    /// factors and every MZI's 2×2 matrix as [`RectangularMesh::apply_batch_slice`] computes
    /// them. Worth it when the same phases meet many blocks of fields (per call the matrices
    /// cost two `sin_cos` per MZI, 4.7 ms for the 784-mode mesh, whatever the batch size).
    pub fn transfer(&self) -> MeshTransfer {
        let mut t = MeshTransfer::default();
        self.transfer_into(&mut t);
        t
    }

    /// [`RectangularMesh::transfer`] into `t`, reusing its buffers (no allocation once they
    /// have this mesh's size).
    pub fn transfer_into(&self, t: &mut MeshTransfer) {
        let mzis = self.num_mzis();
        t.n = self.n;
        t.layer_start.clear();
        t.layer_start.extend_from_slice(&self.layer_start);
        t.screen.clear();
        t.screen.extend((0..self.n).map(|i| self.screen_factor(i)));
        t.coefs.clear();
        t.coefs.extend((0..mzis).map(|idx| self.mzi_matrix32(idx)));
    }

    /// Applies the mesh in place to the columns of an `N × B` matrix (one field per column).
    pub fn apply_batch(&self, x: &mut CMat) -> Result<(), OpticsError> {
        if x.nrows() != self.n {
            return Err(OpticsError::SizeMismatch {
                what: "mesh batch rows",
                expected: self.n,
                got: x.nrows(),
            });
        }
        let b = x.ncols();
        self.apply_batch_slice(x.as_mut_slice(), b)
    }

    /// Applies the mesh in place to one field of length `N`.
    pub fn apply(&self, x: &mut [Complex32]) -> Result<(), OpticsError> {
        self.apply_batch_slice(x, 1)
    }

    /// The mesh's unitary `U` (f32), formed by applying the mesh to the identity.
    pub fn matrix(&self) -> CMat {
        let mut u = CMat::identity(self.n, self.n);
        self.apply_batch(&mut u).expect("shape is right by construction");
        u
    }

    /// The mesh's unitary `U` in f64, layer by layer (quantisation and coupler errors included).
    pub fn matrix64(&self) -> CMat64 {
        let n = self.n;
        let mzis = self.num_mzis();
        let mut u = CMat64::zeros(n, n);
        for i in 0..n {
            u[(i, i)] = Complex64::from_polar(1.0, self.effective(self.params[2 * mzis + i] as f64));
        }
        for l in 0..self.layers {
            for (k, idx) in self.layer_mzis(l).enumerate() {
                let t = self.mzi_matrix(idx);
                let m = Self::top_mode(l, k);
                for c in 0..n {
                    let (a, b) = (u[(m, c)], u[(m + 1, c)]);
                    u[(m, c)] = t[0] * a + t[1] * b;
                    u[(m + 1, c)] = t[2] * a + t[3] * b;
                }
            }
        }
        u
    }

    /// Haar-random initialisation (Pai et al., Phys. Rev. Applied 11, 064044 (2019); neurophox
    /// `haar_rect`): φ, γ ~ U[0, 2π); each MZI's θ is drawn as `θ = π − 2 arcsin(u^{1/(2α)})`,
    /// `u ~ U[0, 1)`, with α its "sensitivity index" from neurophox's alpha checkerboard, so that
    /// the mesh's unitary is Haar-distributed when `L = N` (cross power `cos²(θ/2)` has density
    /// `α x^{α−1}`).
    pub fn randomize_haar<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let n = self.n;
        let m = self.num_mzis();
        let alpha = alpha_checkerboard_general(n, self.layers);
        for l in 0..self.layers {
            for (k, idx) in self.layer_mzis(l).enumerate() {
                let a = alpha[Self::top_mode(l, k)][l].max(1.0);
                let u: f64 = rng.random();
                let th = 2.0 * u.powf(1.0 / (2.0 * a)).asin();
                self.params[idx] = (PI - th) as f32;
            }
        }
        for j in m..2 * m + n {
            self.params[j] = (rng.random::<f64>() * 2.0 * PI) as f32;
        }
    }

    /// Uniform random phases: θ ~ U[0, π], φ, γ ~ U[0, 2π) (neurophox `random_theta`, `random_phi`).
    pub fn randomize_uniform<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let m = self.num_mzis();
        for j in 0..self.params.len() {
            let range = if j < m { PI } else { 2.0 * PI };
            self.params[j] = (rng.random::<f64>() * range) as f32;
        }
    }

    /// Rewrites the phases into θ ∈ [0, π], φ, γ ∈ [0, 2π) without changing `U` (ideal
    /// couplers; with coupler errors only the exact 4π-periodicity of θ is used, θ ∈ [0, 2π)).
    ///
    /// Uses `T(θ + 2π, φ) = T(θ, φ)·(−I)`, `T(θ, φ) = T(2π − θ, φ + π)·diag(−1, 1)` and
    /// `diag(p₁, p₂)·T(θ, φ) = T(θ, φ + arg p₁ − arg p₂)·p₂ I`, pushing the phases that fall out
    /// toward the input screen γ, layer by layer from the output.
    pub fn wrap_phases(&mut self) {
        let n = self.n;
        let m = self.num_mzis();
        let ideal = self.bs_error.is_none();
        let mut d = vec![0.0f64; n]; // phase (radians) waiting at the output of the current layer
        for l in (0..self.layers).rev() {
            for (k, idx) in self.layer_mzis(l).enumerate() {
                let top = Self::top_mode(l, k);
                let mut theta = self.params[idx] as f64;
                let mut phi = self.params[m + idx] as f64 + d[top] - d[top + 1];
                let common = d[top + 1];
                let (mut in_top, mut in_bot) = (common, common);
                theta = theta.rem_euclid(4.0 * PI);
                if theta >= 2.0 * PI {
                    theta -= 2.0 * PI;
                    in_top += PI;
                    in_bot += PI;
                }
                if ideal && theta > PI {
                    theta = 2.0 * PI - theta;
                    phi += PI;
                    in_top += PI;
                }
                self.params[idx] = theta as f32;
                self.params[m + idx] = phi.rem_euclid(2.0 * PI) as f32;
                d[top] = in_top;
                d[top + 1] = in_bot;
            }
        }
        for i in 0..n {
            let g = (self.params[2 * m + i] as f64 + d[i]).rem_euclid(2.0 * PI);
            self.params[2 * m + i] = if g >= 2.0 * PI { 0.0 } else { g as f32 };
        }
        for j in m..2 * m {
            if self.params[j] >= 2.0 * PI as f32 {
                self.params[j] = 0.0;
            }
        }
    }
}

/// Neurophox's `get_haar_diagonal_sequence`.
fn haar_diagonal_sequence(d: usize, parity_odd: bool) -> Vec<f64> {
    let odd: Vec<usize> = (1..=d).step_by(2).collect();
    let mut nums: Vec<f64> = odd.iter().rev().map(|&v| (d + 1 - v) as f64).collect();
    let m = d - odd.len();
    nums.extend((1..=m).map(|j| (d + 1 - 2 * j) as f64));
    if parity_odd {
        nums.reverse();
    }
    nums
}

/// Neurophox's `get_alpha_checkerboard(units, num_layers, flipud)`: `[mode][layer]`,
/// `(units − 1) × layers`, requires `units ≥ layers`.
fn alpha_checkerboard(units: usize, layers: usize, flipud: bool) -> Vec<Vec<f64>> {
    let rows = units.saturating_sub(1);
    let mut a = vec![vec![0.0f64; layers]; rows];
    let seqs: Vec<Vec<f64>> = (1..=layers)
        .map(|d| haar_diagonal_sequence(d, layers % 2 == 1))
        .collect();
    let (u, lz) = (units as i64, layers as i64);
    let eq = i64::from(units == layers);
    for i in 0..rows {
        for j in 0..layers {
            if (i + j) % 2 != 0 {
                continue;
            }
            let (ii, jj) = (i as i64, j as i64);
            let dl = if ii < lz && jj > ii {
                lz - (ii - jj).abs()
            } else if ii > u - lz && jj < ii - u + lz {
                lz - (ii - jj - u + lz).abs() - eq
            } else {
                lz - eq
            };
            a[i][j] = if dl <= 1 {
                1.0
            } else {
                let seq = &seqs[dl as usize - 1];
                seq[i.min(j).min(seq.len() - 1)]
            };
        }
    }
    if units != layers {
        let b = a.clone();
        for i in 0..rows {
            for j in 0..layers {
                a[i][j] = (b[i][j] + b[rows - 1 - i][j]) / 2.0;
            }
        }
    }
    if flipud {
        a.reverse();
    }
    a
}

/// Neurophox's `get_alpha_checkerboard_general`: boards of `units` layers stacked, then a partial one.
fn alpha_checkerboard_general(units: usize, layers: usize) -> Vec<Vec<f64>> {
    let rows = units.saturating_sub(1);
    let mut out = vec![Vec::with_capacity(layers); rows];
    let full = layers / units;
    let mut push = |b: Vec<Vec<f64>>| {
        for (o, r) in out.iter_mut().zip(b) {
            o.extend(r);
        }
    };
    for blk in 0..full {
        push(alpha_checkerboard(units, units, blk % 2 == 1 && units % 2 == 1));
    }
    let extra = layers - full * units;
    push(alpha_checkerboard(
        units,
        extra,
        full.is_multiple_of(2) && units % 2 == 1,
    ));
    out
}

/// Phases of a Clements mesh in f64 (same flat layout as [`RectangularMesh::params`]), the
/// result of [`clements_decomposition`].
#[derive(Debug, Clone, PartialEq)]
pub struct MeshPhases64 {
    /// Number of modes `N` (the mesh has `L = N` layers).
    pub n: usize,
    /// θ per MZI, flat MZI order.
    pub theta: Vec<f64>,
    /// φ per MZI, flat MZI order.
    pub phi: Vec<f64>,
    /// Input phase screen γ.
    pub gamma: Vec<f64>,
}

impl MeshPhases64 {
    /// The unitary these phases give, in f64 (ideal couplers).
    pub fn matrix(&self) -> CMat64 {
        let n = self.n;
        let mut u = CMat64::zeros(n, n);
        for i in 0..n {
            u[(i, i)] = Complex64::from_polar(1.0, self.gamma[i]);
        }
        let mut idx = 0;
        for l in 0..n {
            for k in 0..mzis_in_layer(n, l) {
                let t = mzi_transfer(self.theta[idx], self.phi[idx]);
                let m = RectangularMesh::top_mode(l, k);
                for c in 0..n {
                    let (a, b) = (u[(m, c)], u[(m + 1, c)]);
                    u[(m, c)] = t[0] * a + t[1] * b;
                    u[(m + 1, c)] = t[2] * a + t[3] * b;
                }
                idx += 1;
            }
        }
        u
    }

    /// An f32 Clements mesh with these phases.
    pub fn to_mesh(&self) -> RectangularMesh {
        let mut mesh = RectangularMesh::clements(self.n).expect("n >= 1");
        let p: Vec<f32> = self
            .theta
            .iter()
            .chain(&self.phi)
            .chain(&self.gamma)
            .map(|&v| v as f32)
            .collect();
        mesh.set_params(&p).expect("layout matches");
        mesh
    }
}

/// Largest entry of `|UᴴU − I|`.
pub fn unitarity_deviation(u: &CMat64) -> f64 {
    let n = u.nrows();
    let mut worst = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            let mut acc = Complex64::new(0.0, 0.0);
            for k in 0..n {
                acc += u[(k, i)].conj() * u[(k, j)];
            }
            if i == j {
                acc -= 1.0;
            }
            worst = worst.max(acc.norm());
        }
    }
    worst
}

/// The Clements decomposition (Clements et al., Optica 3, 1460 (2016)) of a unitary `u` into
/// the phases of an `N`-mode, `N`-layer rectangular mesh in this crate's convention, so that
/// `MeshPhases64::matrix()` reproduces `u` to rounding. θ ∈ [0, π], φ, γ ∈ [0, 2π).
///
/// Method: Clements' nulling order with input-phase MZIs `S(θ)·diag(e^{iφ}, 1)` (Clements' own
/// form, with `S(θ) = T(θ, 0)`) multiplied onto `U` from both sides, leaving a diagonal; every
/// factor is then rewritten in this crate's output-phase form and all diagonal phases are pushed
/// to the input, where they become γ. Errors if `u` is not square or deviates from
/// unitarity by more than `tol` (max entry of `|UᴴU − I|`).
pub fn clements_decomposition(u: &CMat64, tol: f64) -> Result<MeshPhases64, OpticsError> {
    let n = u.nrows();
    if n == 0 {
        return Err(OpticsError::ZeroSize { what: "unitary size" });
    }
    if u.ncols() != n {
        return Err(OpticsError::SizeMismatch {
            what: "unitary columns",
            expected: n,
            got: u.ncols(),
        });
    }
    let dev = unitarity_deviation(u);
    if dev.is_nan() || dev > tol {
        return Err(OpticsError::NotUnitary {
            deviation: dev,
            tolerance: tol,
        });
    }
    let mut v = u.clone();
    let i_ = Complex64::i();
    // (top mode, θ, φ) of the right and left nulling operations, in the order performed
    let mut right: Vec<(usize, f64, f64)> = Vec::new();
    let mut left: Vec<(usize, f64, f64)> = Vec::new();
    for i in 0..n.saturating_sub(1) {
        if i % 2 == 0 {
            for j in 0..=i {
                let (r, m) = (n - 1 - j, i - j);
                let (a, b) = (v[(r, m)], v[(r, m + 1)]);
                let theta = 2.0 * b.norm().atan2(a.norm());
                let phi = a.arg() - b.arg() + PI;
                let (s, c) = (theta / 2.0).sin_cos();
                let e = Complex64::from_polar(1.0, -phi);
                for rr in 0..n {
                    let x = e * v[(rr, m)];
                    let y = v[(rr, m + 1)];
                    v[(rr, m)] = -i_ * (x * s + y * c);
                    v[(rr, m + 1)] = -i_ * (x * c - y * s);
                }
                right.push((m, theta, phi));
            }
        } else {
            for j in 1..=i + 1 {
                let (m, col) = (n + j - i - 3, j - 1);
                let (a, b) = (v[(m, col)], v[(m + 1, col)]);
                let theta = 2.0 * a.norm().atan2(b.norm());
                let phi = b.arg() - a.arg();
                let (s, c) = (theta / 2.0).sin_cos();
                let e = Complex64::from_polar(1.0, phi);
                for cc in 0..n {
                    let x = e * v[(m, cc)];
                    let y = v[(m + 1, cc)];
                    v[(m, cc)] = i_ * (x * s + y * c);
                    v[(m + 1, cc)] = i_ * (x * c - y * s);
                }
                left.push((m, theta, phi));
            }
        }
    }
    // U = L_1^{-1} ⋯ L_k^{-1} · D · R_k ⋯ R_1 with L, R = T_in(θ, φ) = S(θ)·diag(e^{iφ}, 1).
    // In output-phase form: L^{-1} = T(θ, −φ)·(−I) and R = T(θ, 0)·diag(e^{iφ}, 1). Walk from
    // the output to the input pushing every diagonal toward the input with
    // diag(p₁, p₂)·T(θ, φ) = T(θ, φ + arg p₁ − arg p₂)·p₂ I; what arrives at the input is γ.
    let mut delta = vec![0.0f64; n];
    let mut out_to_in: Vec<(usize, f64, f64)> = Vec::with_capacity(left.len() + right.len());
    let push = |delta: &mut [f64], m: usize, theta: f64, phi0: f64, extra: (f64, f64)| {
        let phi = phi0 + delta[m] - delta[m + 1];
        let common = delta[m + 1];
        delta[m] = common + extra.0;
        delta[m + 1] = common + extra.1;
        (m, theta, phi)
    };
    for &(m, theta, phi) in &left {
        out_to_in.push(push(&mut delta, m, theta, -phi, (PI, PI)));
    }
    for (i, dv) in delta.iter_mut().enumerate() {
        *dv += v[(i, i)].arg();
    }
    for &(m, theta, phi) in right.iter().rev() {
        out_to_in.push(push(&mut delta, m, theta, 0.0, (phi, 0.0)));
    }
    let order = out_to_in.iter().rev();
    let total = n * (n - 1) / 2;
    let mut theta = vec![0.0; total];
    let mut phi = vec![0.0; total];
    let mut filled = vec![false; total];
    let mut depth = vec![0usize; n];
    let mut starts = Vec::with_capacity(n + 1);
    let mut acc = 0;
    for l in 0..n {
        starts.push(acc);
        acc += mzis_in_layer(n, l);
    }
    for &(m, th, ph) in order {
        let mut l = depth[m].max(depth[m + 1]);
        if l % 2 != m % 2 {
            l += 1;
        }
        let k = (m - l % 2) / 2;
        assert!(l < n && k < mzis_in_layer(n, l), "Clements placement overflow (bug)");
        let idx = starts[l] + k;
        assert!(!filled[idx], "Clements placement collision (bug)");
        filled[idx] = true;
        theta[idx] = th;
        phi[idx] = ph.rem_euclid(2.0 * PI);
        depth[m] = l + 1;
        depth[m + 1] = l + 1;
    }
    assert!(filled.iter().all(|&f| f), "Clements placement left a slot empty (bug)");
    let gamma = delta.iter().map(|z| z.rem_euclid(2.0 * PI)).collect();
    Ok(MeshPhases64 { n, theta, phi, gamma })
}

impl RectangularMesh {
    /// A Clements mesh (f32 phases) programmed to the unitary `u` by [`clements_decomposition`].
    pub fn from_unitary(u: &CMat64, tol: f64) -> Result<RectangularMesh, OpticsError> {
        Ok(clements_decomposition(u, tol)?.to_mesh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_linalg::{haar_unitary, rng};

    /// Dense reference built straight from the documented formula.
    fn reference_unitary(n: usize, layers: usize, p: &[f32]) -> CMat64 {
        let mut u = CMat64::zeros(n, n);
        let mzis: usize = (0..layers).map(|l| mzis_in_layer(n, l)).sum();
        for i in 0..n {
            u[(i, i)] = Complex64::from_polar(1.0, p[2 * mzis + i] as f64);
        }
        let mut idx = 0;
        for l in 0..layers {
            let mut layer = CMat64::identity(n, n);
            let mut k = 0;
            while 2 * k + l % 2 + 1 < n {
                let m = 2 * k + l % 2;
                let (th, ph) = (p[idx] as f64, p[mzis + idx] as f64);
                let i = Complex64::i();
                layer[(m, m)] = i * Complex64::from_polar(1.0, ph) * (th / 2.0).sin();
                layer[(m, m + 1)] = i * Complex64::from_polar(1.0, ph) * (th / 2.0).cos();
                layer[(m + 1, m)] = i * (th / 2.0).cos();
                layer[(m + 1, m + 1)] = -i * (th / 2.0).sin();
                idx += 1;
                k += 1;
            }
            u = layer * u;
        }
        assert_eq!(idx, mzis);
        u
    }

    fn max_diff64(a: &CMat64, b: &CMat64) -> f64 {
        a.iter().zip(b.iter()).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max)
    }

    #[test]
    fn mzi_is_the_beamsplitter_product_and_unitary() {
        let mut r = rng(1);
        for _ in 0..20 {
            let (th, ph): (f64, f64) = (r.random::<f64>() * 7.0, r.random::<f64>() * 7.0);
            let a = mzi_transfer(th, ph);
            let b = mzi_transfer_with_error(th, ph, 0.0, 0.0);
            for k in 0..4 {
                assert!((a[k] - b[k]).norm() < 1e-14);
            }
            let e = mzi_transfer_with_error(th, ph, 0.05, -0.03);
            // unitarity of the erroneous one: columns orthonormal
            let n0 = e[0].norm_sqr() + e[2].norm_sqr();
            let dot = e[0].conj() * e[1] + e[2].conj() * e[3];
            assert!((n0 - 1.0).abs() < 1e-14 && dot.norm() < 1e-14);
            assert!((e[0] - a[0]).norm() > 1e-4);
        }
        // bar (θ = π) and cross (θ = 0) states
        let bar = mzi_transfer(PI, 0.0);
        assert!((bar[0].norm() - 1.0).abs() < 1e-15 && bar[1].norm() < 1e-15);
        let cross = mzi_transfer(0.0, 0.0);
        assert!(cross[0].norm() < 1e-15 && (cross[1].norm() - 1.0).abs() < 1e-15);
    }

    /// The AVX-512 block kernel equals the scalar loop bit for bit (rustfft-style: every block
    /// length 1..=CHUNK, both layer parities, several field lengths and batch sizes, a fixed
    /// seed), including non-finite values and signed zeros in the fields.
    /// A transfer computed once gives the mesh's own bits: odd and even `N`, any layer count,
    /// ideal, quantised and with coupler errors, batches of 1 to 9 fields; a buffer of the
    /// wrong size is an error.
    #[test]
    fn transfer_applies_with_the_mesh_bits() {
        let mut r = rng(31);
        let mut t = MeshTransfer::default();
        for (n, layers) in [(2, 2), (7, 7), (8, 5), (16, 16), (33, 12)] {
            for variant in 0..3 {
                let mut mesh = RectangularMesh::new(n, layers).unwrap();
                mesh.randomize_uniform(&mut r);
                match variant {
                    1 => mesh.set_phase_bits(Some(5)).unwrap(),
                    2 => {
                        let e = (0..2 * mesh.num_mzis()).map(|_| r.random_range(-0.05..0.05)).collect();
                        mesh.set_beamsplitter_errors(Some(e)).unwrap()
                    }
                    _ => {}
                }
                mesh.transfer_into(&mut t);
                assert_eq!(t.n(), n);
                for batch in [1, 4, 9] {
                    let x: Vec<Complex32> = (0..n * batch)
                        .map(|_| Complex32::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
                        .collect();
                    let (mut a, mut b) = (x.clone(), x);
                    mesh.apply_batch_slice(&mut a, batch).unwrap();
                    t.apply_batch_slice(&mut b, batch).unwrap();
                    let bits = |v: &[Complex32]| v.iter().map(|z| (z.re.to_bits(), z.im.to_bits())).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&a),
                        bits(&b),
                        "n {n}, layers {layers}, variant {variant}, batch {batch}"
                    );
                }
                assert!(t
                    .apply_batch_slice(&mut vec![Complex32::new(0.0, 0.0); n + 1], 1)
                    .is_err());
            }
        }
    }

    #[test]
    fn block_kernel_paths_agree_bitwise() {
        let mut r = rng(9);
        let c = |r: &mut insitu_linalg::Rng64| Complex32::new(r.random_range(-2.0..2.0), r.random_range(-2.0..2.0));
        for cnt in 1..=CHUNK {
            for off in [0usize, 1] {
                let n = 2 * cnt + off + (cnt % 3);
                for batch in [1usize, 3] {
                    let coefs: Vec<[Complex32; 4]> =
                        (0..cnt).map(|_| [c(&mut r), c(&mut r), c(&mut r), c(&mut r)]).collect();
                    let mut x: Vec<Complex32> = (0..n * batch).map(|_| c(&mut r)).collect();
                    if cnt == 5 {
                        x[off] = Complex32::new(f32::INFINITY, -0.0);
                        x[off + 3] = Complex32::new(f32::NAN, 0.0);
                    }
                    let mut scalar = x.clone();
                    apply_pairs_scalar(&mut scalar, n, off, &coefs);
                    apply_pairs(&mut x, n, off, &coefs);
                    let bits = |v: &[Complex32]| {
                        v.iter()
                            .flat_map(|z| [z.re.to_bits(), z.im.to_bits()])
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&x), bits(&scalar), "cnt {cnt} off {off} batch {batch}");
                }
            }
        }
    }

    #[test]
    fn apply_batch_matches_the_dense_layer_product() {
        let mut r = rng(2);
        for n in [1, 2, 3, 4, 5, 8, 9, 70, 131] {
            for layers in [n, 3, n + 2] {
                let mut mesh = RectangularMesh::new(n, layers).unwrap();
                mesh.randomize_uniform(&mut r);
                let want = reference_unitary(n, layers, mesh.params());
                assert!(max_diff64(&mesh.matrix64(), &want) < 1e-12, "n={n} L={layers}");
                let u32m = mesh.matrix();
                let got = u32m.map(|z| Complex64::new(z.re as f64, z.im as f64));
                assert!(
                    max_diff64(&got, &want) < 1e-5 * (layers as f64).sqrt().max(1.0),
                    "n={n} L={layers}"
                );
                // a batch of random fields
                let b = 7;
                let x = CMat::from_fn(n, b, |_, _| {
                    Complex32::new(r.random::<f32>() - 0.5, r.random::<f32>() - 0.5)
                });
                let mut y = x.clone();
                mesh.apply_batch(&mut y).unwrap();
                let x64 = x.map(|z| Complex64::new(z.re as f64, z.im as f64));
                let y_ref = &want * &x64;
                let y64 = y.map(|z| Complex64::new(z.re as f64, z.im as f64));
                assert!(max_diff64(&y64, &y_ref) < 1e-5 * (layers as f64).sqrt().max(1.0));
            }
        }
        let mesh = RectangularMesh::new(4, 4).unwrap();
        assert!(mesh.apply_batch(&mut CMat::zeros(5, 2)).is_err());
        assert!(mesh.apply_batch_slice(&mut [Complex32::new(0.0, 0.0); 7], 2).is_err());
    }

    #[test]
    fn clements_mesh_has_n_choose_2_mzis_and_layout_offsets() {
        for n in 1..12 {
            let m = RectangularMesh::clements(n).unwrap();
            assert_eq!(m.num_mzis(), n * (n - 1) / 2);
            assert_eq!(m.num_params(), n * (n - 1) + n);
        }
        let m = RectangularMesh::clements(6).unwrap();
        assert_eq!(m.layer_mzis(0), 0..3);
        assert_eq!(m.layer_mzis(1), 3..5);
        assert_eq!(m.layer_mzis(2), 5..8);
        assert_eq!(RectangularMesh::top_mode(1, 1), 3);
        assert!(RectangularMesh::new(0, 3).is_err());
    }

    #[test]
    fn clements_decomposition_round_trips_haar_unitaries() {
        let mut r = rng(3);
        for n in 1..=12 {
            for _ in 0..3 {
                let u: CMat64 = haar_unitary::<f64, _>(n, &mut r);
                let ph = clements_decomposition(&u, 1e-9).unwrap();
                let back = ph.matrix();
                let err = max_diff64(&back, &u);
                assert!(err < 1e-10, "n = {n}: round trip error {err}");
                assert!(ph.theta.iter().all(|&t| (0.0..=PI).contains(&t)));
                assert!(ph.phi.iter().chain(&ph.gamma).all(|&p| (0.0..2.0 * PI).contains(&p)));
                // the f32 mesh built from it reproduces u to f32 accuracy
                let mesh = RectangularMesh::from_unitary(&u, 1e-9).unwrap();
                assert!(max_diff64(&mesh.matrix64(), &u) < 1e-5);
            }
        }
        // and a mesh's own unitary decomposes back to the same matrix
        let mut mesh = RectangularMesh::clements(7).unwrap();
        mesh.randomize_uniform(&mut r);
        let u = mesh.matrix64();
        assert!(max_diff64(&clements_decomposition(&u, 1e-6).unwrap().matrix(), &u) < 1e-10);
    }

    #[test]
    fn decomposition_rejects_bad_input() {
        let mut u = CMat64::identity(3, 3);
        u[(0, 0)] = Complex64::new(1.1, 0.0);
        assert!(matches!(
            clements_decomposition(&u, 1e-6),
            Err(OpticsError::NotUnitary { .. })
        ));
        assert!(matches!(
            clements_decomposition(&CMat64::zeros(2, 3), 1e-6),
            Err(OpticsError::SizeMismatch { .. })
        ));
        assert!(clements_decomposition(&CMat64::zeros(0, 0), 1e-6).is_err());
    }

    #[test]
    fn haar_rect_gives_haar_moments() {
        // For Haar U(N): E|U_ij|² = 1/N and E|U_ij|⁴ = 2/(N(N+1)) for every entry.
        let mut r = rng(4);
        for n in [4usize, 5] {
            let samples = 4000;
            let mut m2 = vec![0.0f64; n * n];
            let mut m4 = vec![0.0f64; n * n];
            for _ in 0..samples {
                let mesh = RectangularMesh::haar_rect(n, &mut r).unwrap();
                let u = mesh.matrix64();
                for (k, z) in u.iter().enumerate() {
                    let p = z.norm_sqr();
                    m2[k] += p / samples as f64;
                    m4[k] += p * p / samples as f64;
                }
            }
            let want4 = 2.0 / (n * (n + 1)) as f64;
            for k in 0..n * n {
                assert!(
                    (m2[k] - 1.0 / n as f64).abs() < 0.02,
                    "n={n} entry {k}: E|U|² = {}",
                    m2[k]
                );
                assert!(
                    (m4[k] - want4).abs() < 0.2 * want4,
                    "n={n} entry {k}: E|U|⁴ = {} vs {want4}",
                    m4[k]
                );
            }
        }
    }

    #[test]
    fn uniform_theta_is_not_haar() {
        // the moment test above can fail: uniform θ gives visibly non-Haar |U_ij|⁴ somewhere
        let mut r = rng(5);
        let n = 5;
        let samples = 4000;
        let mut m4 = vec![0.0f64; n * n];
        for _ in 0..samples {
            let mut mesh = RectangularMesh::clements(n).unwrap();
            mesh.randomize_uniform(&mut r);
            for (k, z) in mesh.matrix64().iter().enumerate() {
                m4[k] += z.norm_sqr().powi(2) / samples as f64;
            }
        }
        let want4 = 2.0 / (n * (n + 1)) as f64;
        assert!(m4.iter().any(|&v| (v - want4).abs() > 0.2 * want4));
    }

    #[test]
    fn wrap_phases_keeps_the_unitary() {
        let mut r = rng(6);
        for n in [2, 5, 6] {
            let mut mesh = RectangularMesh::clements(n).unwrap();
            for p in mesh.params_mut() {
                *p = r.random::<f32>() * 40.0 - 20.0;
            }
            let before = mesh.matrix64();
            mesh.wrap_phases();
            let after = mesh.matrix64();
            assert!(max_diff64(&before, &after) < 1e-5, "n={n}");
            assert!(mesh.thetas().iter().all(|&t| (0.0..=std::f32::consts::PI).contains(&t)));
            assert!(mesh
                .phis()
                .iter()
                .chain(mesh.gammas())
                .all(|&p| (0.0..2.0 * std::f32::consts::PI).contains(&p)));
        }
    }

    #[test]
    fn quantisation_and_coupler_errors_act_as_documented() {
        let mut r = rng(7);
        let mut mesh = RectangularMesh::clements(6).unwrap();
        mesh.randomize_uniform(&mut r);
        let ideal = mesh.matrix64();
        // quantised mesh equals the mesh whose parameters were rounded by hand
        mesh.set_phase_bits(Some(3)).unwrap();
        let q = 2.0 * PI / 8.0;
        let mut rounded = mesh.clone();
        rounded.set_phase_bits(None).unwrap();
        for p in rounded.params_mut() {
            *p = ((*p as f64 / q).round() * q) as f32;
        }
        assert!(max_diff64(&mesh.matrix64(), &rounded.matrix64()) < 1e-6);
        assert!(max_diff64(&mesh.matrix64(), &ideal) > 1e-3);
        let m32 = mesh.matrix().map(|z| Complex64::new(z.re as f64, z.im as f64));
        assert!(max_diff64(&m32, &mesh.matrix64()) < 1e-5);
        mesh.set_phase_bits(None).unwrap();
        assert!(mesh.set_phase_bits(Some(0)).is_err());
        // coupler errors: still unitary, different from ideal, f32 path agrees with f64
        let errs: Vec<f32> = (0..2 * mesh.num_mzis())
            .map(|_| 0.05 * (r.random::<f32>() - 0.5))
            .collect();
        mesh.set_beamsplitter_errors(Some(errs)).unwrap();
        let u = mesh.matrix64();
        assert!(unitarity_deviation(&u) < 1e-6);
        assert!(max_diff64(&u, &ideal) > 1e-3);
        let m32 = mesh.matrix().map(|z| Complex64::new(z.re as f64, z.im as f64));
        assert!(max_diff64(&m32, &u) < 1e-5);
        assert!(mesh.set_beamsplitter_errors(Some(vec![0.0; 3])).is_err());
    }
}
