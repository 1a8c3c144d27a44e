//! Tests that pin insitu-optics' conventions against independent references (issue 5, "Done
//! when"; docs/optics.md §9 lists them with the errors measured):
//! - the rectangular mesh is unitary and its layer-by-layer application equals `U·x`, for every
//!   N = 1..64, Haar and uniform phases, in f64 (`matrix64`) and in f32 (`matrix`, `apply_batch`);
//! - a Gaussian beam's second-moment width follows `w(z) = w0·sqrt(1 + (z/zR)²)` to 1e-4, and its
//!   field is the analytic complex Gaussian beam (this pins the `exp(−iωt)` sign);
//! - a perfect thin lens focuses seed 002's 3.2 mm square aperture at 0.388 m (400×400, 8 µm,
//!   532 nm, band-limited angular spectrum, 2× padding) to the sinc² profile, FWHM 0.886·λz/D;
//! - photon shot noise has Poisson mean and variance (fixed seed).
//!
//! Run `cargo test -p insitu-optics --test conventions -- --nocapture` to see the measured errors.

use std::f64::consts::PI;

use insitu_linalg::{rng, CMat, CMat64};
use insitu_optics::{
    Complex32, Complex64, FreeSpace, Grid, PhotonDetector, PropagationMethod, RectangularAperture, RectangularMesh,
    ThinLens,
};
use rand::Rng;

// ---------------------------------------------------------------------------------------------
// 1. Rectangular mesh: unitarity and layers = U·x, N = 1..64
// ---------------------------------------------------------------------------------------------

/// `U` built straight from the documented formula, independently of the crate's kernels:
/// `U = Layer_{L−1} ⋯ Layer_0 · diag(e^{iγ})`, MZI on (top, top+1) with
/// `T(θ, φ) = i·[[e^{iφ} sin(θ/2), e^{iφ} cos(θ/2)], [cos(θ/2), −sin(θ/2)]]`, layer `l` holding
/// MZIs on `(2k + l mod 2, 2k + l mod 2 + 1)` in the flat parameter order `[θ, φ, γ]`.
fn reference_unitary(mesh: &RectangularMesh) -> CMat64 {
    let n = mesh.n();
    let (th, ph, ga) = (mesh.thetas(), mesh.phis(), mesh.gammas());
    let i = Complex64::i();
    let mut u = CMat64::from_diagonal(&nalgebra::DVector::from_fn(n, |j, _| {
        Complex64::from_polar(1.0, ga[j] as f64)
    }));
    let mut idx = 0;
    for l in 0..mesh.num_layers() {
        let mut layer = CMat64::identity(n, n);
        let mut top = l % 2;
        while top + 1 < n {
            let (s, c) = ((th[idx] as f64 / 2.0).sin(), (th[idx] as f64 / 2.0).cos());
            let e = Complex64::from_polar(1.0, ph[idx] as f64);
            layer[(top, top)] = i * e * s;
            layer[(top, top + 1)] = i * e * c;
            layer[(top + 1, top)] = i * c;
            layer[(top + 1, top + 1)] = -i * s;
            idx += 1;
            top += 2;
        }
        u = layer * u;
    }
    assert_eq!(idx, mesh.num_mzis(), "reference walked a different number of MZIs");
    u
}

/// `‖UᴴU − I‖_F`, in f64.
fn unitarity_error(u: &CMat64) -> f64 {
    let n = u.nrows();
    (u.adjoint() * u - CMat64::identity(n, n)).norm()
}

fn to64(u: &CMat) -> CMat64 {
    u.map(|z| Complex64::new(z.re as f64, z.im as f64))
}

/// First-order rounding bound for a mesh formed or applied layer by layer in a precision with
/// machine epsilon `eps` (f64::EPSILON or f32::EPSILON, i.e. twice the unit roundoff).
///
/// Each of the `L + 1` stages (input screen, then L layers) replaces two entries of every column
/// by `t0·a + t1·b`: the MZI coefficients carry ≲ 2ε relative error (sin/cos and the product
/// with `i·e^{iφ}`), the complex multiply-add ≲ 4ε, so a stage perturbs a column of norm 1 by
/// at most `c·ε` with `c = 6`. To first order these add up: every column of the computed `Ũ`
/// is within `(L + 1)·c·ε` of the exact one, so `‖Ũ − U‖_F ≤ (L + 1)·c·ε·√N` and
/// `‖ŨᴴŨ − I‖_F ≤ 2‖Ũ − U‖_F ≤ 2(L + 1)·c·ε·√N`. The same per-column bound `(L + 1)·c·ε·‖x‖`
/// holds for one applied field. This is a worst case (errors add coherently); the measured
/// errors are one to two orders of magnitude below it, while any convention error (a wrong sign,
/// a transposed MZI, a misplaced layer) is O(1).
const C_STAGE: f64 = 6.0;

fn unitarity_bound(n: usize, layers: usize, eps: f64) -> f64 {
    2.0 * (layers + 1) as f64 * C_STAGE * eps * (n as f64).sqrt()
}

fn column_bound(layers: usize, eps: f64) -> f64 {
    (layers + 1) as f64 * C_STAGE * eps
}

#[derive(Clone, Copy, Debug)]
enum Init {
    Haar,
    Uniform,
}

fn mesh_for(n: usize, init: Init, r: &mut insitu_linalg::Rng64) -> RectangularMesh {
    match init {
        Init::Haar => RectangularMesh::haar_rect(n, r).unwrap(),
        Init::Uniform => {
            let mut m = RectangularMesh::clements(n).unwrap();
            m.randomize_uniform(r);
            m
        }
    }
}

#[test]
fn mesh_is_unitary_for_every_n_up_to_64() {
    let mut r = rng(501);
    for init in [Init::Haar, Init::Uniform] {
        // worst error relative to its bound, and the worst absolute error, over all N
        let (mut worst64, mut worst32) = ((0.0f64, 0usize, 0.0f64), (0.0f64, 0usize, 0.0f64));
        for n in 1..=64 {
            let mesh = mesh_for(n, init, &mut r);
            let layers = mesh.num_layers();
            assert_eq!(layers, n);
            let reference = reference_unitary(&mesh);

            let u64m = mesh.matrix64();
            let e64 = unitarity_error(&u64m);
            let b64 = unitarity_bound(n, layers, f64::EPSILON);
            assert!(e64 < b64, "{init:?} N={n}: f64 ‖UᴴU − I‖_F = {e64:e} ≥ bound {b64:e}");
            // the f64 matrix is the documented one (both are f64 products of the same factors)
            let d64 = (&u64m - &reference).norm();
            assert!(
                d64 < b64,
                "{init:?} N={n}: matrix64 differs from the formula by {d64:e}"
            );

            let u32m = to64(&mesh.matrix());
            let e32 = unitarity_error(&u32m);
            let b32 = unitarity_bound(n, layers, f32::EPSILON as f64);
            assert!(e32 < b32, "{init:?} N={n}: f32 ‖UᴴU − I‖_F = {e32:e} ≥ bound {b32:e}");

            if e64 / b64 > worst64.0 {
                worst64 = (e64 / b64, n, e64);
            }
            if e32 / b32 > worst32.0 {
                worst32 = (e32 / b32, n, e32);
            }
            if n == 64 {
                eprintln!(
                    "{init:?} N=64: ‖UᴴU − I‖_F f64 {e64:.2e} (bound {b64:.1e}), f32 {e32:.2e} (bound {b32:.1e})"
                );
            }
        }
        eprintln!(
            "{init:?}: worst f64 ‖UᴴU − I‖_F/bound = {:.3} at N={} ({:.2e}); worst f32 = {:.3} at N={} ({:.2e})",
            worst64.0, worst64.1, worst64.2, worst32.0, worst32.1, worst32.2
        );
    }
}

#[test]
fn mesh_applied_as_layers_equals_u_times_x_for_every_n_up_to_64() {
    // All N = 1..64 (each costs well under a millisecond), so every N ≤ 16 and 31, 32, 33, 63, 64
    // are included without a stride; odd N have an unpaired mode in every layer, even N in every
    // odd layer.
    let mut r = rng(502);
    let batch = 5;
    for init in [Init::Haar, Init::Uniform] {
        let mut worst = (0.0f64, 0usize);
        for n in 1..=64 {
            let mesh = mesh_for(n, init, &mut r);
            let u = reference_unitary(&mesh);
            let x = CMat::from_fn(n, batch, |_, _| {
                Complex32::new(r.random::<f32>() * 2.0 - 1.0, r.random::<f32>() * 2.0 - 1.0)
            });
            let mut y = x.clone();
            mesh.apply_batch(&mut y).unwrap();
            let want = &u * to64(&x);
            // slice form, one field at a time, must agree bit for bit with the batch form
            for b in 0..batch {
                let mut single: Vec<Complex32> = x.column(b).iter().copied().collect();
                mesh.apply(&mut single).unwrap();
                assert_eq!(single.as_slice(), y.column(b).as_slice(), "{init:?} N={n} b={b}");
            }
            let tol = column_bound(mesh.num_layers(), f32::EPSILON as f64);
            for b in 0..batch {
                let err = (to64(&y).column(b) - want.column(b)).norm();
                let xn = to64(&x).column(b).norm();
                assert!(
                    err <= tol * xn,
                    "{init:?} N={n} b={b}: ‖y − Ux‖ = {err:e} > {tol:e}·‖x‖"
                );
                if err / xn > worst.0 {
                    worst = (err / xn, n);
                }
                // and the mesh conserves power (unitary) in the applied form too
                let yn = to64(&y).column(b).norm();
                assert!((yn / xn - 1.0).abs() <= tol, "{init:?} N={n}: power {yn} vs {xn}");
            }
        }
        eprintln!(
            "{init:?}: worst ‖layers(x) − U·x‖/‖x‖ = {:.2e} at N={} (f32 apply vs f64 formula)",
            worst.0, worst.1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Gaussian beam: width against w(z) = w0·sqrt(1 + (z/zR)²) to 1e-4
// ---------------------------------------------------------------------------------------------

/// Grid and beam for the Gaussian test, chosen so that every discretisation error is far below
/// 1e-4 and only the propagator itself is measured:
/// - w0 = 60 µm on dx = 8 µm (w0 = 7.5 px). The field `exp(−r²/w0²)` has spectrum
///   `∝ exp(−π² w0² f²)`, which at Nyquist `1/(2dx)` is `exp(−π²·14) ≈ e^−139`: no aliasing, and
///   the sampled second moment equals the continuous one (Poisson summation; the `|E|²` spectrum
///   at `1/dx` is `e^−277`).
/// - zR = π w0²/λ = 21.3 mm; the widest beam (z = 2 zR) has w = √5·w0 = 134 µm. The kept window is
///   ±512 µm (n = 128), where `|E|² = exp(−2·(512/134)²) ≈ e^−29`: no truncation of the moment.
/// - 2× padding (period 2.05 mm): the wrap-around of the circular convolution sits at
///   ±1024 µm, `e^−116` in intensity.
/// - The band limit at 2 zR is 45 000 /m, 17 standard deviations of the intensity spectrum
///   (σ_f = 1/(2π w0) = 2650 /m): nothing is cut. Fresnel's z ≤ m dx²/λ = 30.8 mm rule is for inputs that
///   fill the band; this beam's spectrum occupies 1/6 of it, so the sampled chirp is exact on it.
/// - Non-paraxiality: for the exact angular spectrum `⟨x²⟩_z = ⟨x²⟩_0 + z²⟨λ²f_x²/(1 − λ²f²)⟩`,
///   which exceeds the paraxial law by the factor `1 + θ0²·(z/zR)²/(1 + (z/zR)²)` on the
///   z²-term, θ0 = λ/(π w0) = 2.8e-3: a width change ≤ θ0²/2 = 4e-6.
const GAUSS_N: usize = 128;
const GAUSS_DX: f64 = 8e-6;
const GAUSS_W0: f64 = 60e-6;
const LAMBDA: f64 = 532e-9;

fn gaussian_field(grid: Grid, w0: f64) -> Vec<Complex32> {
    let n = grid.n;
    (0..n * n)
        .map(|i| {
            let (y, x) = (grid.coord(i / n), grid.coord(i % n));
            Complex32::new((-(x * x + y * y) / (w0 * w0)).exp() as f32, 0.0)
        })
        .collect()
}

/// 1/e² widths along x and y from the second moments of the intensity, in f64:
/// `|E|² ∝ exp(−2x²/w²)` has `⟨x²⟩ = w²/4`, so `w = 2·sqrt(⟨x²⟩)` (the beam is centred on the axis,
/// and the first moments are checked to vanish).
fn second_moment_widths(grid: Grid, f: &[Complex32]) -> (f64, f64) {
    let n = grid.n;
    let (mut tot, mut mx, mut my, mut mxx, mut myy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, v) in f.iter().enumerate() {
        let (y, x) = (grid.coord(i / n), grid.coord(i % n));
        let p = (v.re as f64).powi(2) + (v.im as f64).powi(2);
        tot += p;
        mx += x * p;
        my += y * p;
        mxx += x * x * p;
        myy += y * y * p;
    }
    assert!(
        (mx / tot).abs() < 1e-3 * grid.dx && (my / tot).abs() < 1e-3 * grid.dx,
        "beam off axis"
    );
    (2.0 * (mxx / tot).sqrt(), 2.0 * (myy / tot).sqrt())
}

/// The paraxial Gaussian beam `exp(−r²/w0²)` after `z` (exp(−iωt), spectrum × exp(+ik_z z)):
/// `E = e^{ikz}/(1 + iz/zR) · exp(−r²/(w0²(1 + iz/zR)))` (its curvature phase is `+kr²/(2R)`, a
/// diverging beam). Derived from the Fresnel transfer function: the spectrum
/// `π w0² exp(−π² w0² f²)` times `exp(−iπλz f²)` is `π a² exp(−π² a² f²)` with `a² = w0² + iλz/π`.
fn analytic_gaussian(x: f64, y: f64, z: f64, w0: f64, lambda: f64) -> Complex64 {
    let zr = PI * w0 * w0 / lambda;
    let q = Complex64::new(1.0, z / zr);
    let carrier = Complex64::from_polar(1.0, (2.0 * PI * z / lambda).rem_euclid(2.0 * PI));
    carrier / q * (-(x * x + y * y) / (w0 * w0 * q)).exp()
}

#[test]
fn gaussian_beam_width_matches_the_analytic_law_to_1e4() {
    let grid = Grid::new(GAUSS_N, GAUSS_DX).unwrap();
    let zr = PI * GAUSS_W0 * GAUSS_W0 / LAMBDA;
    let methods = [
        PropagationMethod::AngularSpectrum,
        PropagationMethod::Fresnel,
        PropagationMethod::BandLimitedAngularSpectrum,
    ];
    // at z = 0 the sampled moment itself must give w0 (checks the moment estimator)
    let (wx0, wy0) = second_moment_widths(grid, &gaussian_field(grid, GAUSS_W0));
    assert!((wx0 / GAUSS_W0 - 1.0).abs() < 1e-6 && (wy0 / GAUSS_W0 - 1.0).abs() < 1e-6);
    for method in methods {
        for zf in [0.5, 1.0, 2.0] {
            let z = zf * zr;
            let mut f = gaussian_field(grid, GAUSS_W0);
            FreeSpace::new(grid, LAMBDA, z, method, 2).unwrap().propagate(&mut f);
            let (wx, wy) = second_moment_widths(grid, &f);
            let want = GAUSS_W0 * (1.0 + zf * zf).sqrt();
            let (ex, ey) = (wx / want - 1.0, wy / want - 1.0);
            eprintln!(
                "{method:?} z = {zf} zR: w = {:.4} µm vs {:.4} µm, relative error x {ex:+.2e}, y {ey:+.2e}",
                wx * 1e6,
                want * 1e6
            );
            assert!(
                ex.abs() < 1e-4 && ey.abs() < 1e-4,
                "{method:?} z={zf} zR: {ex:e}, {ey:e}"
            );
            // Tighter: what is left is the predicted non-paraxial growth of the angular spectrum
            // methods (w² = w0²(1 + ζ²(1 + θ0²)) to O(θ0⁴) = 6e-11; Fresnel is exactly paraxial),
            // so the f32 propagator's own width error is measured here, not the physics.
            let theta0_sq = if method == PropagationMethod::Fresnel {
                0.0
            } else {
                (LAMBDA / (PI * GAUSS_W0)).powi(2)
            };
            let predicted = GAUSS_W0 * (1.0 + zf * zf * (1.0 + theta0_sq)).sqrt();
            let (rx, ry) = (wx / predicted - 1.0, wy / predicted - 1.0);
            eprintln!("    against the non-paraxial prediction: x {rx:+.2e}, y {ry:+.2e}");
            assert!(
                rx.abs() < 1e-6 && ry.abs() < 1e-6,
                "{method:?} z={zf} zR: {rx:e}, {ry:e}"
            );
            // the field itself, phase included, is the analytic beam: this pins the sign of the
            // propagation phase (a wrong sign gives a converging beam, an O(1) field error)
            let peak = analytic_gaussian(0.0, 0.0, z, GAUSS_W0, LAMBDA).norm();
            let n = grid.n;
            let err = f
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let want = analytic_gaussian(grid.coord(i % n), grid.coord(i / n), z, GAUSS_W0, LAMBDA);
                    (Complex64::new(v.re as f64, v.im as f64) - want).norm()
                })
                .fold(0.0, f64::max)
                / peak;
            eprintln!("    max |E − E_analytic| / |E(0)| = {err:.2e}");
            assert!(err < 1e-4, "{method:?} z={zf} zR: field error {err:e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Thin lens focusing seed 002's square aperture: sinc² with FWHM 0.886·λz/D
// ---------------------------------------------------------------------------------------------

/// `sinc²(u) = (sin πu / πu)²`.
fn sinc2(u: f64) -> f64 {
    if u == 0.0 {
        1.0
    } else {
        ((PI * u).sin() / (PI * u)).powi(2)
    }
}

/// Full width at half maximum of a sampled profile peaked at `centre`, with linear interpolation
/// between the samples that straddle half the peak on each side (in samples).
fn fwhm_samples(p: &[f64], centre: usize) -> f64 {
    let half = p[centre] / 2.0;
    let mut right = centre;
    while p[right + 1] > half {
        right += 1;
    }
    let xr = right as f64 + (p[right] - half) / (p[right] - p[right + 1]);
    let mut left = centre;
    while p[left - 1] > half {
        left -= 1;
    }
    let xl = left as f64 - (p[left] - half) / (p[left] - p[left - 1]);
    xr - xl
}

#[test]
fn thin_lens_focuses_a_square_aperture_to_the_sinc2_width() {
    // Seed 002's free-space grid (SPEC B1): 400×400, 8 µm, 532 nm, band-limited angular spectrum
    // with 2× padding (an 800² FFT pair). A 3.2 mm square aperture, a perfect lens f = 0.388 m,
    // propagation over z = f: the focal field is the aperture's Fourier transform, intensity
    // ∝ sinc²(D x/(λz))·sinc²(D y/(λz)), first zeros at ±λz/D, FWHM = 0.8859·λz/D.
    let (n, dx, f) = (400usize, 8e-6, 0.388);
    let grid = Grid::new(n, dx).unwrap();
    let c = n / 2;
    let aperture = RectangularAperture {
        width: 3.2e-3,
        height: 3.2e-3,
        center: (0.0, 0.0),
    };
    let mask = aperture.mask(grid).unwrap();
    // the aperture's effective width is (samples inside)·dx: the sampled aperture is a comb of
    // `count` samples, whose Fourier transform is ≈ sinc of width (count·dx) near the axis
    let count = (0..n).filter(|&j| mask[c * n + j] == 1.0).count();
    assert!(
        count == 400 || count == 399,
        "{count} samples inside the 3.2 mm aperture"
    );
    let d = count as f64 * dx;
    let mut field: Vec<Complex32> = mask.iter().map(|&a| Complex32::new(a, 0.0)).collect();
    ThinLens { focal_length: f }.apply(grid, LAMBDA, &mut field).unwrap();
    FreeSpace::new(grid, LAMBDA, f, PropagationMethod::BandLimitedAngularSpectrum, 2)
        .unwrap()
        .propagate(&mut field);
    let int: Vec<f64> = field
        .iter()
        .map(|v| (v.re as f64).powi(2) + (v.im as f64).powi(2))
        .collect();

    // the peak is at the grid centre (the optical axis, sample (n/2, n/2))
    let argmax = (0..n * n).max_by(|&a, &b| int[a].total_cmp(&int[b])).unwrap();
    assert_eq!((argmax / n, argmax % n), (c, c), "focal peak off the grid centre");

    let row: Vec<f64> = (0..n).map(|j| int[c * n + j] / int[c * n + c]).collect();
    let col: Vec<f64> = (0..n).map(|j| int[j * n + c] / int[c * n + c]).collect();
    let scale = LAMBDA * f / d; // λz/D in metres (64.5 µm, 8.06 px)
    let analytic_fwhm = 0.885_893 * scale;
    // reference: the same linear-interpolation estimator on the exact sinc² sampled at the pixels
    let exact_samples: Vec<f64> = (0..n).map(|j| sinc2(grid.coord(j) / scale)).collect();
    let estimator_fwhm = fwhm_samples(&exact_samples, c) * dx;
    for (axis, prof) in [("x", &row), ("y", &col)] {
        let fwhm = fwhm_samples(prof, c) * dx;
        eprintln!(
            "lens focus along {axis}: FWHM {:.3} µm vs 0.886·λz/D = {:.3} µm (D = {count}·dx = {:.4} mm; \
             estimator on exact sinc² {:.3} µm), difference {:+.3} µm = {:+.3} px",
            fwhm * 1e6,
            analytic_fwhm * 1e6,
            d * 1e3,
            estimator_fwhm * 1e6,
            (fwhm - analytic_fwhm) * 1e6,
            (fwhm - analytic_fwhm) / dx
        );
        assert!(
            (fwhm - analytic_fwhm).abs() < dx,
            "{axis}: FWHM {fwhm:e} vs {analytic_fwhm:e}"
        );
        // the whole central lobe and the first side lobes follow sinc² (first zeros at ±8.06 px)
        let mut shape_err = 0.0f64;
        for j in c - 24..=c + 24 {
            shape_err = shape_err.max((prof[j] - sinc2(grid.coord(j) / scale)).abs());
        }
        // Measured 5.8e-4 (9e-5 with 3× padding): the residual is the band limit and the
        // wrap-around of the 2× padded grid. The plain angular spectrum on the same grid gives
        // 7.3e-3 and Fresnel 8.4e-3 (z = 0.388 m is 4× the alias-free distance m·dx²/λ = 96 mm),
        // so this tolerance also pins the band limit.
        eprintln!("    max |I/I0 − sinc²| over ±24 px = {shape_err:.2e}");
        assert!(shape_err < 2e-3, "{axis}: profile deviates from sinc² by {shape_err:e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Shot noise: Poisson mean and variance with a fixed seed
// ---------------------------------------------------------------------------------------------

#[test]
fn shot_noise_has_poisson_mean_and_variance() {
    // detector::tests::photon_detector_statistics checks one light level with read noise, dark
    // counts and an offset mixed in (mean 62, variance 61.08 within ±3). This isolates the shot
    // noise: no read noise, no dark counts, no offset, 1 e⁻/DN, 24 bits (no clipping), so
    // DN = N_e ~ Poisson(QE·photons_per_unit·I) exactly, at four light levels spanning the
    // small-mean (Knuth) and large-mean (rejection) regimes of the sampler. Tolerances are five
    // standard errors of the estimators: sd(mean) = sqrt(μ/S), sd(sample variance) ≈
    // sqrt((μ + 2μ²)/S) for Poisson (fourth central moment μ + 3μ²).
    let det = PhotonDetector {
        photons_per_unit: 1000.0,
        quantum_efficiency: 0.64,
        dark_electrons: 0.0,
        read_noise_electrons: 0.0,
        electrons_per_dn: 1.0,
        offset_dn: 0.0,
        bit_depth: 24,
    };
    let samples = 40_000usize;
    let mut r = rng(504);
    for intensity in [0.5e-3, 5e-3, 0.05, 0.5] {
        let mu = det.quantum_efficiency * det.photons_per_unit * intensity;
        let input = vec![intensity as f32; samples];
        let mut out = vec![0.0f32; samples];
        det.detect(&input, &mut out, &mut r).unwrap();
        assert!(
            out.iter().all(|&v| v >= 0.0 && v.fract() == 0.0),
            "counts must be integers"
        );
        let s = samples as f64;
        let mean = out.iter().map(|&v| v as f64).sum::<f64>() / s;
        let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (s - 1.0);
        let (sd_mean, sd_var) = ((mu / s).sqrt(), ((mu + 2.0 * mu * mu) / s).sqrt());
        eprintln!(
            "shot noise μ = {mu}: mean {mean:.4} ({:+.2} sd), variance {var:.4} ({:+.2} sd), Fano {:.4}",
            (mean - mu) / sd_mean,
            (var - mu) / sd_var,
            var / mean
        );
        assert!((mean - mu).abs() < 5.0 * sd_mean, "μ={mu}: mean {mean}");
        assert!((var - mu).abs() < 5.0 * sd_var, "μ={mu}: variance {var}");
        // the unbiased intensity estimate inverts the mean response
        assert!((det.to_intensity(mean as f32) as f64 / intensity - 1.0).abs() < 5.0 * sd_mean / mu);
    }
    // gain: with K e⁻/DN the counts are rounded N_e/K, variance μ/K² + 1/12 (uniform rounding,
    // valid when the Poisson spread covers many DN: here sd = 20 e⁻ = 5 DN)
    let k = 4.0;
    let gain = PhotonDetector {
        electrons_per_dn: k,
        ..det
    };
    let mu = 400.0;
    let input = vec![(mu / (0.64 * 1000.0)) as f32; samples];
    let mut out = vec![0.0f32; samples];
    gain.detect(&input, &mut out, &mut r).unwrap();
    let s = samples as f64;
    let mean = out.iter().map(|&v| v as f64).sum::<f64>() / s;
    let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (s - 1.0);
    let (want_mean, want_var) = (mu / k, mu / (k * k) + 1.0 / 12.0);
    eprintln!("shot noise with {k} e⁻/DN: mean {mean:.4} vs {want_mean}, variance {var:.4} vs {want_var:.4}");
    assert!((mean - want_mean).abs() < 5.0 * (want_var / s).sqrt());
    assert!((var - want_var).abs() < 5.0 * want_var * (2.0 / s).sqrt() * 1.2);
    // the same seed gives the same exposure; another seed another one
    let input = vec![0.05f32; 1000];
    let (mut a, mut b, mut c) = (vec![0.0f32; 1000], vec![0.0f32; 1000], vec![0.0f32; 1000]);
    det.detect(&input, &mut a, &mut rng(7)).unwrap();
    det.detect(&input, &mut b, &mut rng(7)).unwrap();
    det.detect(&input, &mut c, &mut rng(8)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}
