//! `gradients_of_dense_system` (the data behind `insitu ffm gradient`): FFM equals the adjoint
//! on symmetric transfers, differs on asymmetric ones, and the adjoint is the true gradient
//! (central finite differences of the returned loss).

use insitu_ffm::{gradients_of_dense_system, transpose_asymmetry, DenseLayer, DenseLoss, FfmError};
use insitu_linalg::{rng, Rng64};
use num_complex::Complex64 as C;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

fn gauss(r: &mut Rng64) -> f64 {
    StandardNormal.sample(r)
}

/// Row-major random `n × n` transfer; symmetric when asked (`(A + Aᵀ)/√2`).
fn transfer(n: usize, symmetric: bool, r: &mut Rng64) -> Vec<C> {
    let s = 1.0 / (2.0 * n as f64).sqrt();
    let a: Vec<C> = (0..n * n).map(|_| C::new(gauss(r) * s, gauss(r) * s)).collect();
    if !symmetric {
        return a;
    }
    let mut t = vec![C::new(0.0, 0.0); n * n];
    for i in 0..n {
        for j in 0..n {
            t[i * n + j] = (a[i * n + j] + a[j * n + i]) * 0.5f64.sqrt();
        }
    }
    t
}

fn system(n: usize, layers: usize, symmetric: bool, seed: u64) -> (Vec<C>, Vec<DenseLayer>) {
    let mut r = rng(seed);
    let x = (0..n).map(|_| C::new(gauss(&mut r), gauss(&mut r))).collect();
    let layers = (0..layers)
        .map(|_| DenseLayer {
            phase: (0..n).map(|_| r.random_range(0.0..std::f64::consts::TAU)).collect(),
            transfer: transfer(n, symmetric, &mut r),
        })
        .collect();
    (x, layers)
}

fn losses(n: usize, seed: u64) -> [DenseLoss; 2] {
    let mut r = rng(seed ^ 0x7A);
    [
        DenseLoss::FieldMse((0..n).map(|_| C::new(gauss(&mut r), gauss(&mut r))).collect()),
        DenseLoss::IntensityMse((0..n).map(|_| gauss(&mut r).abs()).collect()),
    ]
}

fn rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        num += (x - y) * (x - y);
        den += y * y;
    }
    (num / den).sqrt()
}

#[test]
fn symmetric_system_ffm_equals_adjoint_and_asymmetry_is_zero() {
    for layers in [1, 3] {
        let (x, sys) = system(12, layers, true, 11 + layers as u64);
        for loss in losses(12, 3) {
            let g = gradients_of_dense_system(&x, &sys, &loss).unwrap();
            assert_eq!(g.ffm.len(), layers);
            assert_eq!(g.asymmetry.len(), layers);
            assert!(g.asymmetry.iter().all(|&a| a < 1e-15), "{:?}", g.asymmetry);
            let d = rel_diff(&g.ffm, &g.adjoint);
            assert!(d < 1e-10, "layers {layers}, {loss:?}: FFM vs adjoint {d}");
        }
    }
}

#[test]
fn asymmetric_system_reports_asymmetry_and_ffm_differs() {
    let (x, sys) = system(12, 2, false, 5);
    for loss in losses(12, 4) {
        let g = gradients_of_dense_system(&x, &sys, &loss).unwrap();
        // an i.i.d. complex Gaussian matrix has E‖T − Tᵀ‖²/‖T‖² = 2(n−1)/n
        for &a in &g.asymmetry {
            assert!(a > 1.0 && a < 1.6, "asymmetry {a}");
        }
        let d = rel_diff(&g.ffm, &g.adjoint);
        assert!(
            d > 0.3,
            "FFM should differ from the adjoint on a non-reciprocal system: {d}"
        );
    }
}

#[test]
fn adjoint_gradient_matches_finite_differences_of_the_loss() {
    let (x, mut sys) = system(8, 2, false, 9);
    for loss in losses(8, 1) {
        let g = gradients_of_dense_system(&x, &sys, &loss).unwrap();
        let h = 1e-6;
        for (l, j) in [(0, 0), (0, 5), (1, 3), (1, 7)] {
            let p0 = sys[l].phase[j];
            sys[l].phase[j] = p0 + h;
            let up = gradients_of_dense_system(&x, &sys, &loss).unwrap().loss;
            sys[l].phase[j] = p0 - h;
            let down = gradients_of_dense_system(&x, &sys, &loss).unwrap().loss;
            sys[l].phase[j] = p0;
            let fd = (up - down) / (2.0 * h);
            let scale = g.adjoint[l].iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(
                (fd - g.adjoint[l][j]).abs() < 1e-6 * scale.max(1.0),
                "layer {l} pixel {j}: fd {fd} vs adjoint {}",
                g.adjoint[l][j]
            );
        }
    }
}

#[test]
fn asymmetry_is_the_relative_frobenius_norm_of_the_antisymmetric_part() {
    // T = [[1, 2], [0, 1]]: ‖T − Tᵀ‖_F = √8, ‖T‖_F = √6
    let t = [1.0, 2.0, 0.0, 1.0].map(|v| C::new(v, 0.0));
    assert!((transpose_asymmetry(&t, 2) - (8.0f64 / 6.0).sqrt()).abs() < 1e-15);
    assert_eq!(transpose_asymmetry(&[C::new(0.0, 0.0); 4], 2), 0.0);
}

#[test]
fn malformed_systems_are_errors() {
    let (x, sys) = system(4, 1, true, 2);
    let loss = DenseLoss::IntensityMse(vec![1.0; 4]);
    let invalid = |r: Result<_, FfmError>| matches!(r, Err(FfmError::InvalidSpec(_)));
    assert!(invalid(gradients_of_dense_system(&x, &[], &loss)));
    assert!(invalid(gradients_of_dense_system(&[], &sys, &loss)));
    assert!(invalid(gradients_of_dense_system(&x[..3], &sys, &loss)));
    assert!(invalid(gradients_of_dense_system(
        &x,
        &sys,
        &DenseLoss::IntensityMse(vec![1.0; 3])
    )));
    let mut short = sys.clone();
    short[0].transfer.pop();
    assert!(invalid(gradients_of_dense_system(&x, &short, &loss)));
    let mut nan = sys.clone();
    nan[0].phase[1] = f64::NAN;
    assert!(invalid(gradients_of_dense_system(&x, &nan, &loss)));
    assert!(gradients_of_dense_system(&x, &sys, &loss).is_ok());
}
