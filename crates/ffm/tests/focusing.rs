//! Focusing through a scattering medium (seed 002 Fig. 3; SPEC B4): the path's adjoint, FFM
//! against the reverse-mode gradient (and what unequal distances cost), the focus metrics on a
//! known spot, learning against PSO, and refused specs.

use insitu_ffm::focusing::*;
use insitu_ffm::{
    adjoint_gradient, ffm_gradient, AdjointPropagation, DigitalChain, FfmError, FfmWorkspace, FieldLoss, Propagation,
};
use insitu_linalg::rng;
use insitu_optics::Complex32;
use rand::Rng;

fn small(n: usize) -> FocusSpec {
    FocusSpec {
        grid_n: n,
        distance: 0.194 * n as f64 / 400.0,
        spot_diameter_px: 4.0,
        ..FocusSpec::default()
    }
}

fn random_field(n2: usize, seed: u64) -> Vec<Complex32> {
    let mut r = rng(seed);
    (0..n2)
        .map(|_| Complex32::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect()
}

fn dot(a: &[Complex32], b: &[Complex32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(re, im), (x, y)| {
        let p = x.conj() * y;
        (re + f64::from(p.re), im + f64::from(p.im))
    })
}

#[test]
fn the_adjoint_path_is_the_conjugate_transpose_and_the_path_is_symmetric() {
    let spec = small(32);
    let mut path = scattering_path(&spec).unwrap();
    let n2 = 32 * 32;
    let (x, y) = (random_field(n2, 1), random_field(n2, 2));
    // ⟨y, P x⟩ = ⟨Pᴴ y, x⟩
    let mut px = x.clone();
    path.propagate(&mut px);
    let mut phy = y.clone();
    path.propagate_adjoint(&mut phy);
    let (a, b) = (dot(&y, &px), dot(&phy, &x));
    let scale = a.0.abs().max(a.1.abs());
    assert!(
        (a.0 - b.0).abs() < 1e-4 * scale && (a.1 - b.1).abs() < 1e-4 * scale,
        "{a:?} vs {b:?}"
    );
    // Pᵀ = P: yᵀ P x = xᵀ P y (bilinear, no conjugation)
    let bilinear =
        |u: &[Complex32], v: &[Complex32]| u.iter().zip(v).fold(Complex32::new(0.0, 0.0), |s, (p, q)| s + p * q);
    let mut py = y.clone();
    path.propagate(&mut py);
    let (l, r) = (bilinear(&y, &px), bilinear(&x, &py));
    assert!((l - r).norm() < 1e-4 * l.norm(), "{l} vs {r}");
}

/// Relative difference between the FFM gradient (two forward runs) and the reverse-mode one.
fn ffm_vs_adjoint(spec: &FocusSpec) -> f64 {
    let n2 = spec.grid_n * spec.grid_n;
    let mut chain = DigitalChain::<_, f32>::new(vec![scattering_path(spec).unwrap()]).unwrap();
    let mut r = rng(9);
    let phases = vec![(0..n2)
        .map(|_| r.random_range(0.0..std::f32::consts::TAU))
        .collect::<Vec<_>>()];
    let input = spec.input();
    let target = spec.target();
    let loss = FieldLoss::NormalizedIntensityMse(&target);
    let mut ws = FfmWorkspace::new(1, n2);
    let mut ffm = vec![vec![0.0f32; n2]];
    let mut adjoint = vec![vec![0.0f32; n2]];
    ffm_gradient(&mut chain, &phases, &[], &input, &loss, &mut ws, &mut ffm, 0);
    adjoint_gradient(&mut chain, &phases, &[], &input, &loss, &mut ws, &mut adjoint);
    let diff: f64 = ffm[0]
        .iter()
        .zip(&adjoint[0])
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = adjoint[0].iter().map(|a| f64::from(*a).powi(2)).sum();
    (diff / norm).sqrt()
}

#[test]
fn ffm_equals_the_reverse_mode_gradient_when_both_distances_are_equal_and_not_otherwise() {
    let equal = ffm_vs_adjoint(&small(32));
    assert!(equal < 1e-4, "equal distances: {equal:e}");
    let spec = small(32);
    let unequal = ffm_vs_adjoint(&FocusSpec {
        back_distance: Some(spec.distance * 1.5),
        ..spec
    });
    assert!(unequal > 0.3, "unequal distances: {unequal}");
}

#[test]
fn focus_quality_measures_a_known_spot() {
    let spec = small(64);
    let n = 64;
    // a Gaussian of FWHM 6 px at the target's centre
    let sigma = 6.0 / (2.0 * (2.0f64.ln() * 2.0).sqrt());
    let intensity: Vec<f32> = (0..n * n)
        .map(|k| {
            let (dr, dc) = ((k / n) as f64 - 32.0, (k % n) as f64 - 32.0);
            (-(dr * dr + dc * dc) / (2.0 * sigma * sigma)).exp() as f32
        })
        .collect();
    let q = focus_quality(&spec, &intensity);
    for w in q.fwhm {
        assert!((w / spec.dx - 6.0).abs() < 0.15, "{} px", w / spec.dx);
    }
    assert_eq!(q.peak_offset_px, 0.0);
    assert!(q.spot_to_background > 100.0);
    // the target itself: no error at all
    let t = spec.target();
    assert!(focus_quality(&spec, &t).psnr_db > 100.0);
}

#[test]
fn ffm_focuses_at_the_diffraction_limit_within_tens_of_runs_where_pso_with_more_runs_does_not() {
    let base = FocusSpec {
        grid_n: 64,
        distance: 0.194 * 64.0 / 400.0,
        iterations: 60,
        ..FocusSpec::default()
    };
    let ffm = focus(&base).unwrap().result;
    assert_eq!(ffm.forward_runs, 120);
    let limit = ffm.diffraction_limit;
    assert!((limit - 64.5e-6).abs() < 0.5e-6, "{limit}");
    let q = &ffm.quality;
    // the brightest pixel lies inside the 10-pixel target disc
    assert!(q.peak_offset_px <= base.spot_diameter_px / 2.0, "{q:?}");
    let mean = (q.fwhm[0] + q.fwhm[1]) / 2.0;
    assert!(mean > 0.7 * limit && mean < 1.6 * limit, "FWHM {mean} vs limit {limit}");
    assert!(
        q.spot_to_background > 10.0 * ffm.unshaped.spot_to_background,
        "{q:?} vs {:?}",
        ffm.unshaped
    );
    let pso = focus(&FocusSpec {
        iterations: 20,
        method: FocusMethod::Pso {
            particles: 10,
            segments: 16,
        },
        ..base
    })
    .unwrap()
    .result;
    assert_eq!(pso.forward_runs, 10 * 21);
    assert!(pso.forward_runs > ffm.forward_runs);
    assert!(
        pso.quality.spot_to_background < 0.5 * q.spot_to_background,
        "PSO {:?} vs FFM {q:?}",
        pso.quality
    );
}

#[test]
fn bad_specs_are_refused_with_a_message() {
    let refused = |spec: FocusSpec, what: &str| {
        let e = focus(&spec).unwrap_err().to_string();
        assert!(e.contains(what), "{e:?} should mention {what:?}");
    };
    let d = || small(32);
    refused(
        FocusSpec {
            method: FocusMethod::Pso {
                particles: 10,
                segments: 5,
            },
            ..d()
        },
        "divide",
    );
    refused(
        FocusSpec {
            method: FocusMethod::Pso {
                particles: 1,
                segments: 4,
            },
            ..d()
        },
        "particles",
    );
    refused(
        FocusSpec {
            method: FocusMethod::Ffm { lr: -1.0 },
            ..d()
        },
        "lr",
    );
    refused(FocusSpec { focus: (14, 0), ..d() }, "does not fit");
    refused(
        FocusSpec {
            aperture_fraction: 0.0,
            ..d()
        },
        "aperture_fraction",
    );
    refused(
        FocusSpec {
            back_distance: Some(f64::NAN),
            ..d()
        },
        "back_distance",
    );
    refused(FocusSpec { grid_n: 4, ..d() }, "grid_n");
}

#[test]
fn a_grid_of_learned_foci_images_a_bar_target_behind_the_scatterer() {
    let (n, points, pitch) = (64, 6, 4);
    let spec = FocusSpec {
        grid_n: n,
        distance: 0.194 * n as f64 / 400.0,
        iterations: 60,
        ..FocusSpec::default()
    };
    let object = bar_target(n, points * pitch as usize, 6);
    let r = scan_object(&spec, points, pitch, &object).unwrap();
    assert_eq!(r.positions.len(), points * points);
    assert_eq!(r.positions[0], (-10, -10));
    assert_eq!(r.forward_runs, (points * points) as u64 * 120);
    // measured 0.93 on an 8 × 8 grid; the unshaped mask sees the same speckle everywhere
    assert!(r.correlation > 0.8, "correlation {}", r.correlation);
    let refused = |e: FfmError, what: &str| assert!(e.to_string().contains(what), "{e}");
    refused(scan_object(&spec, points, pitch, &object[1..]).unwrap_err(), "values");
    refused(scan_object(&spec, 0, pitch, &object).unwrap_err(), "point");
    refused(scan_object(&spec, 20, 4, &object).unwrap_err(), "does not fit");
}
