//! FFM gradient against the reverse-mode adjoint and against central finite differences
//! (SPEC B2), in f64, on dense random symmetric (reciprocal) and non-symmetric systems.

use insitu_ffm::{
    adjoint_gradient, data_pass, ffm_gradient, DenseTransfer, DigitalChain, ElementwiseActivation, FfmWorkspace,
    FieldLoss,
};
use insitu_linalg::{rng, CMat64, Rng64};
use num_complex::Complex64 as C;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

fn gauss(r: &mut Rng64) -> f64 {
    StandardNormal.sample(r)
}

fn random_matrix(n: usize, symmetric: bool, r: &mut Rng64) -> CMat64 {
    let s = 1.0 / (2.0 * n as f64).sqrt();
    let mut m = CMat64::from_fn(n, n, |_, _| C::new(gauss(r) * s, gauss(r) * s));
    if symmetric {
        m = (&m + m.transpose()).map(|z| z * 0.5f64.sqrt());
    }
    m
}

fn random_field(n: usize, r: &mut Rng64) -> Vec<C> {
    (0..n).map(|_| C::new(gauss(r), gauss(r))).collect()
}

fn chain(n: usize, layers: usize, symmetric: bool, seed: u64) -> DigitalChain<DenseTransfer<f64>, f64> {
    let mut r = rng(seed);
    DigitalChain::new(
        (0..layers)
            .map(|_| DenseTransfer::new(random_matrix(n, symmetric, &mut r)).unwrap())
            .collect(),
    )
    .unwrap()
}

fn random_phases(layers: usize, n: usize, r: &mut Rng64) -> Vec<Vec<f64>> {
    (0..layers)
        .map(|_| (0..n).map(|_| r.random_range(0.0..std::f64::consts::TAU)).collect())
        .collect()
}

fn loss_value(
    model: &mut DigitalChain<DenseTransfer<f64>, f64>,
    phases: &[Vec<f64>],
    acts: &insitu_ffm::Activations<'_, f64>,
    x: &[C],
    loss: &FieldLoss<'_, f64>,
) -> f64 {
    let mut ws = FfmWorkspace::new(phases.len(), x.len());
    data_pass(model, phases, acts, x, &mut ws, 0);
    let mut g = vec![C::new(0.0, 0.0); x.len()];
    loss.eval(ws.output(), &mut g)
}

fn rel_err(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        num += (x - y) * (x - y);
        den += y * y;
    }
    (num / den).sqrt()
}

fn cosine(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

struct Case {
    ffm: Vec<Vec<f64>>,
    adjoint: Vec<Vec<f64>>,
    fd: Vec<Vec<f64>>,
    loss_ffm: f64,
    loss_adj: f64,
}

fn run_case(
    n: usize,
    layers: usize,
    symmetric: bool,
    acts: &insitu_ffm::Activations<'_, f64>,
    which_loss: usize,
    seed: u64,
    with_fd: bool,
) -> Case {
    let mut model = chain(n, layers, symmetric, seed);
    let mut r = rng(seed + 1000);
    let phases = random_phases(layers, n, &mut r);
    let x = random_field(n, &mut r);
    let t_field = random_field(n, &mut r);
    let t_int: Vec<f64> = (0..n).map(|_| r.random_range(0.0..1.0)).collect();
    let loss = match which_loss {
        0 => FieldLoss::FieldMse(&t_field),
        1 => FieldLoss::IntensityMse(&t_int),
        _ => FieldLoss::NormalizedIntensityMse(&t_int),
    };
    let mut ws = FfmWorkspace::new(layers, n);
    let mut ffm = vec![vec![0.0; n]; layers];
    let loss_ffm = ffm_gradient(&mut model, &phases, acts, &x, &loss, &mut ws, &mut ffm, 0);
    let mut adjoint = vec![vec![0.0; n]; layers];
    let loss_adj = adjoint_gradient(&mut model, &phases, acts, &x, &loss, &mut ws, &mut adjoint);
    let mut fd = vec![vec![0.0; n]; layers];
    if with_fd {
        let h = 1e-6;
        for l in 0..layers {
            for j in 0..n {
                let mut p = phases.clone();
                p[l][j] += h;
                let lp = loss_value(&mut model, &p, acts, &x, &loss);
                p[l][j] -= 2.0 * h;
                let lm = loss_value(&mut model, &p, acts, &x, &loss);
                fd[l][j] = (lp - lm) / (2.0 * h);
            }
        }
    }
    Case {
        ffm,
        adjoint,
        fd,
        loss_ffm,
        loss_adj,
    }
}

#[test]
fn ffm_equals_adjoint_on_symmetric_systems_to_rounding() {
    for which_loss in 0..3 {
        for layers in [1, 2, 4] {
            let c = run_case(24, layers, true, &[], which_loss, 10 + layers as u64, false);
            assert_eq!(c.loss_ffm, c.loss_adj);
            let e = rel_err(&c.ffm, &c.adjoint);
            assert!(
                e < 1e-10,
                "loss {which_loss}, {layers} layers: FFM vs adjoint relative error {e:e}"
            );
        }
    }
}

#[test]
fn ffm_and_adjoint_match_central_finite_differences() {
    for which_loss in 0..3 {
        let c = run_case(12, 3, true, &[], which_loss, 77, true);
        let e = rel_err(&c.ffm, &c.fd);
        assert!(
            e < 1e-6,
            "loss {which_loss}: FFM vs finite differences relative error {e:e}"
        );
        let e = rel_err(&c.adjoint, &c.fd);
        assert!(
            e < 1e-6,
            "loss {which_loss}: adjoint vs finite differences relative error {e:e}"
        );
    }
}

#[test]
fn adjoint_matches_finite_differences_on_non_symmetric_systems() {
    // the baseline is exact whatever T is; FFM is not (next test)
    let c = run_case(12, 3, false, &[], 1, 5, true);
    let e = rel_err(&c.adjoint, &c.fd);
    assert!(e < 1e-6, "adjoint vs finite differences relative error {e:e}");
}

#[test]
fn broken_symmetry_degrades_ffm_measurably() {
    // Fully non-symmetric random T: FFM's forward error pass computes a different quantity.
    let mut cosines = Vec::new();
    for seed in 0..5 {
        let c = run_case(24, 2, false, &[], 1, 200 + seed, false);
        cosines.push(cosine(&c.ffm, &c.adjoint));
    }
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    eprintln!("non-symmetric T: cosine(FFM, true gradient) per seed {cosines:?}, mean {mean:.3}");
    assert!(
        mean.abs() < 0.5,
        "FFM should not track the true gradient when T ≠ Tᵀ (mean cosine {mean})"
    );
}

#[test]
fn partial_asymmetry_error_grows_with_the_asymmetric_part() {
    // T = S + η A with S symmetric and A antisymmetric: the FFM error grows with η.
    let n = 24;
    let mut last = 1.0;
    for (k, eta) in [0.0, 0.05, 0.2, 0.5].into_iter().enumerate() {
        let mut r = rng(900);
        let mut layers = Vec::new();
        for _ in 0..2 {
            let s = random_matrix(n, true, &mut r);
            let g = random_matrix(n, false, &mut r);
            let a = (&g - g.transpose()).map(|z| z * 0.5f64.sqrt());
            layers.push(DenseTransfer::new(&s + a * C::new(eta, 0.0)).unwrap());
        }
        let mut model = DigitalChain::new(layers).unwrap();
        let phases = random_phases(2, n, &mut r);
        let x = random_field(n, &mut r);
        let t: Vec<f64> = (0..n).map(|_| r.random_range(0.0..1.0)).collect();
        let loss = FieldLoss::IntensityMse(&t);
        let mut ws = FfmWorkspace::new(2, n);
        let mut f = vec![vec![0.0; n]; 2];
        let mut a = vec![vec![0.0; n]; 2];
        ffm_gradient(&mut model, &phases, &[], &x, &loss, &mut ws, &mut f, 0);
        adjoint_gradient(&mut model, &phases, &[], &x, &loss, &mut ws, &mut a);
        let cos = cosine(&f, &a);
        eprintln!(
            "asymmetry η = {eta}: cosine(FFM, true) = {cos:.4}, relative error {:.3e}",
            rel_err(&f, &a)
        );
        if k == 0 {
            assert!(rel_err(&f, &a) < 1e-10);
        } else {
            assert!(cos < last + 1e-12, "cosine should fall as η grows");
        }
        last = cos;
    }
}

#[test]
fn nonlinear_ffm_matches_finite_differences_and_adjoint() {
    let opto = insitu_optics::Optoelectronic;
    let photo = insitu_optics::Photorefractive;
    let acts_o: [Option<&dyn ElementwiseActivation<f64>>; 3] = [Some(&opto), Some(&opto), None];
    let acts_p: [Option<&dyn ElementwiseActivation<f64>>; 3] = [Some(&photo), Some(&photo), None];
    for (name, acts) in [("optoelectronic", &acts_o), ("photorefractive", &acts_p)] {
        for which_loss in 0..3 {
            let c = run_case(10, 3, true, acts, which_loss, 31, true);
            eprintln!(
                "{name} {which_loss}: ffm-fd {:e} adj-fd {:e} ffm-adj {:e}",
                rel_err(&c.ffm, &c.fd),
                rel_err(&c.adjoint, &c.fd),
                rel_err(&c.ffm, &c.adjoint)
            );
            let e = rel_err(&c.ffm, &c.fd);
            assert!(
                e < 1e-6,
                "{name}, loss {which_loss}: nonlinear FFM vs finite differences {e:e}"
            );
            let e = rel_err(&c.ffm, &c.adjoint);
            assert!(e < 1e-10, "{name}, loss {which_loss}: nonlinear FFM vs adjoint {e:e}");
        }
    }
}

#[test]
fn holomorphic_rule_would_be_wrong_for_these_activations() {
    // Guard that the test above can fail: dropping the conj(f_ū)·conj(ε) term changes the gradient.
    struct HolomorphicOnly;
    impl ElementwiseActivation<f64> for HolomorphicOnly {
        fn apply(&self, u: C) -> C {
            ElementwiseActivation::<f64>::apply(&insitu_optics::Optoelectronic, u)
        }
        fn wirtinger(&self, u: C) -> (C, C) {
            (
                ElementwiseActivation::<f64>::wirtinger(&insitu_optics::Optoelectronic, u).0,
                C::new(0.0, 0.0),
            )
        }
    }
    let h = HolomorphicOnly;
    let acts: [Option<&dyn ElementwiseActivation<f64>>; 2] = [Some(&h), None];
    let c = run_case(10, 2, true, &acts, 1, 8, true);
    assert!(rel_err(&c.ffm, &c.fd) > 1e-3);
}

#[test]
fn every_loss_gradient_is_the_wirtinger_derivative() {
    // ∂L/∂ȳ = (∂L/∂Re y + i ∂L/∂Im y)/2, by central differences in f64, for all four losses
    let n = 5;
    let mut r = rng(42);
    let y = random_field(n * n, &mut r);
    let t_field = random_field(n * n, &mut r);
    let t_int: Vec<f64> = (0..n * n).map(|_| r.random_range(0.0..1.0)).collect();
    let squares = [(0, 0, 2), (0, 3, 2), (3, 0, 2), (3, 3, 1)];
    let losses = [
        FieldLoss::FieldMse(&t_field),
        FieldLoss::IntensityMse(&t_int),
        FieldLoss::NormalizedIntensityMse(&t_int),
        FieldLoss::RegionFractionMse {
            n,
            squares: &squares,
            label: 2,
        },
    ];
    for (k, loss) in losses.iter().enumerate() {
        let mut g = vec![C::new(0.0, 0.0); n * n];
        loss.eval(&y, &mut g);
        let mut scratch = vec![C::new(0.0, 0.0); n * n];
        let h = 1e-6;
        let mut worst = 0.0f64;
        let scale = g.iter().map(|z| z.norm()).fold(0.0, f64::max);
        for j in 0..n * n {
            let mut partial = |d: C| {
                let mut yp = y.clone();
                yp[j] += d;
                let lp = loss.eval(&yp, &mut scratch);
                yp[j] -= d * 2.0;
                let lm = loss.eval(&yp, &mut scratch);
                (lp - lm) / (2.0 * h)
            };
            let fd = C::new(partial(C::new(h, 0.0)), partial(C::new(0.0, h))) * 0.5;
            worst = worst.max((fd - g[j]).norm() / scale);
        }
        assert!(
            worst < 1e-7,
            "loss {k}: ∂L/∂ȳ off by {worst:e} (relative to its largest entry)"
        );
    }
}
