//! Haar samplers: group membership to rounding, and first and second moments that only the
//! Haar measure has (a sampler that skips the sign correction fails `first_moments_vanish`).

use insitu_linalg::{haar_orthogonal, haar_special_orthogonal, haar_unitary, qr, rng};
use nalgebra::DMatrix;
use num_complex::Complex64;

#[test]
fn orthogonal_samples_are_orthogonal() {
    let mut g = rng(10);
    for d in 1..=12 {
        let q: DMatrix<f64> = haar_orthogonal(d, &mut g);
        let e = (q.transpose() * &q - DMatrix::identity(d, d)).amax();
        assert!(e < 1e-12, "d={d}: ‖QᵀQ − I‖max = {e}");
    }
}

#[test]
fn special_orthogonal_has_unit_determinant() {
    let mut g = rng(11);
    for d in 1..=10 {
        for _ in 0..20 {
            let q: DMatrix<f64> = haar_special_orthogonal(d, &mut g);
            assert!((q.clone().determinant() - 1.0).abs() < 1e-10, "d={d}");
            assert!((q.transpose() * &q - DMatrix::identity(d, d)).amax() < 1e-12);
        }
    }
}

#[test]
fn unitary_samples_are_unitary() {
    let mut g = rng(12);
    for n in 1..=12 {
        let u: DMatrix<Complex64> = haar_unitary(n, &mut g);
        let e = (u.adjoint() * &u - DMatrix::identity(n, n))
            .iter()
            .map(|z| z.norm())
            .fold(0.0, f64::max);
        assert!(e < 1e-12, "n={n}: {e}");
    }
}

/// For Haar O(d) and SO(d) (d ≥ 2): E[Q_ij] = 0, E[Q_ij²] = 1/d, E[tr Q] = 0 for O(d).
/// For Haar U(n): E[U_ij] = 0, E|U_ij|² = 1/n, E|tr U|² = 1.
#[test]
fn first_moments_vanish_and_second_moments_match() {
    let samples = 4000;
    let d = 4;
    let mut g = rng(13);
    let (mut m1, mut m2, mut tr) = (DMatrix::<f64>::zeros(d, d), DMatrix::<f64>::zeros(d, d), 0.0);
    for _ in 0..samples {
        let q: DMatrix<f64> = haar_orthogonal(d, &mut g);
        m1 += &q;
        m2 += q.map(|x| x * x);
        tr += q.trace();
    }
    let s = samples as f64;
    // std of one entry is 1/sqrt(d) = 0.5; 5 sigma of the mean over 4000 samples ≈ 0.04
    assert!((m1 / s).amax() < 0.04, "E[Q] should vanish");
    assert!(
        (m2 / s).map(|x| x - 1.0 / d as f64).amax() < 0.02,
        "E[Q²] should be 1/d"
    );
    assert!((tr / s).abs() < 0.08, "E[tr Q] should vanish for O(d)");

    let mut so_m1 = DMatrix::<f64>::zeros(3, 3);
    for _ in 0..samples {
        so_m1 += haar_special_orthogonal::<f64, _>(3, &mut g);
    }
    assert!((so_m1 / s).amax() < 0.05, "E[T] vanishes on SO(3)");

    let n = 3;
    let (mut u1, mut u2, mut trace_sq) = (DMatrix::<Complex64>::zeros(n, n), DMatrix::<f64>::zeros(n, n), 0.0);
    for _ in 0..samples {
        let u: DMatrix<Complex64> = haar_unitary(n, &mut g);
        u1 += &u;
        u2 += u.map(|z| z.norm_sqr());
        trace_sq += u.trace().norm_sqr();
    }
    assert!(
        (u1 / Complex64::new(s, 0.0)).iter().all(|z| z.norm() < 0.05),
        "E[U] vanishes"
    );
    assert!((u2 / s).map(|x| x - 1.0 / n as f64).amax() < 0.02, "E|U_ij|² = 1/n");
    assert!((trace_sq / s - 1.0).abs() < 0.1, "E|tr U|² = 1 for Haar U(n)");
}

#[test]
fn qr_reconstructs() {
    let mut g = rng(14);
    for (m, n) in [(1, 1), (3, 3), (5, 3), (3, 5), (8, 8)] {
        let a: DMatrix<f64> = haar_orthogonal::<f64, _>(m.max(n), &mut g)
            .view((0, 0), (m, n))
            .into_owned()
            * 3.0
            + DMatrix::from_fn(m, n, |i, j| (i * n + j) as f64 * 0.1);
        let f = qr(a.clone());
        assert!((&f.q * &f.r - &a).amax() < 1e-12);
        for i in 0..f.r.nrows() {
            for j in 0..i.min(f.r.ncols()) {
                assert_eq!(f.r[(i, j)], 0.0);
            }
        }
    }
}

#[test]
fn same_seed_same_matrix() {
    let a: DMatrix<f64> = haar_special_orthogonal(6, &mut rng(99));
    let b: DMatrix<f64> = haar_special_orthogonal(6, &mut rng(99));
    assert_eq!(a, b);
}
