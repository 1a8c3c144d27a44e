//! Statistical tests of the directional-derivative estimator with fixed seeds: unbiasedness,
//! the variance the scaling rule predicts, convergence of the average to the true gradient,
//! and the cost in forward evaluations.

use insitu_linalg::Par;
use insitu_optim::{
    Adam, Difference, DirectionKind, DirectionalDerivative, PerturbedObjective, Sgd, StepRule, DIRECTION_BLOCK,
};

/// `L(ω) = ½ Σ a_i ω_i² + Σ b_i ω_i`, evaluated in f64: gradient `a ⊙ ω + b`.
struct Quadratic {
    w: Vec<f32>,
    a: Vec<f64>,
    b: Vec<f64>,
    evaluations: usize,
}

impl Quadratic {
    fn new(n: usize) -> Self {
        let w = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
        let a = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
        let b = (0..n).map(|i| ((i * 5 % 7) as f64 - 3.0) * 0.2).collect();
        Self {
            w,
            a,
            b,
            evaluations: 0,
        }
    }
    fn loss(&self, w: impl Iterator<Item = f64>) -> f64 {
        w.zip(self.a.iter().zip(&self.b))
            .map(|(x, (a, b))| 0.5 * a * x * x + b * x)
            .sum()
    }
    fn gradient(&self) -> Vec<f64> {
        self.w
            .iter()
            .zip(self.a.iter().zip(&self.b))
            .map(|(&x, (a, b))| a * x as f64 + b)
            .collect()
    }
}

impl PerturbedObjective for Quadratic {
    fn dim(&self) -> usize {
        self.w.len()
    }
    fn losses_along(&mut self, d: &[f32], steps: &[f32], out: &mut [f64]) {
        for (o, &t) in out.iter_mut().zip(steps) {
            self.evaluations += 1;
            *o = self.loss(self.w.iter().zip(d).map(|(&w, &d)| w as f64 + t as f64 * d as f64));
        }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b))
}

/// Mean and mean squared norm of `trials` single-direction estimates.
fn moments(kind: DirectionKind, difference: Difference, n: usize, trials: u64) -> (Vec<f64>, f64, Vec<f64>) {
    let mut q = Quadratic::new(n);
    let est = DirectionalDerivative {
        directions: 1,
        eps: 1e-2,
        kind,
        difference,
        par: insitu_linalg::Par::Seq,
    };
    let (mut g, mut d) = (vec![0.0; n], vec![0.0; n]);
    let mut mean = vec![0.0f64; n];
    let mut sq = 0.0;
    for t in 0..trials {
        est.estimate(&mut q, 1_000 + t, &mut g, &mut d);
        for (m, x) in mean.iter_mut().zip(&g) {
            *m += *x as f64 / trials as f64;
        }
        sq += g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / trials as f64;
    }
    (mean, sq, q.gradient())
}

#[test]
fn unit_gaussian_central_is_unbiased_with_variance_n() {
    let (n, trials) = (16, 40_000);
    let (mean, sq, g) = moments(DirectionKind::UnitGaussian, Difference::Central, n, trials);
    let gn = norm(&g);
    // E‖ĝ‖² = n‖g‖² exactly for a central difference of a quadratic (no truncation error).
    let ratio = sq / (n as f64 * gn * gn);
    assert!((ratio - 1.0).abs() < 0.05, "E‖ĝ‖²/(n‖g‖²) = {ratio}");
    // Standard error of the mean ≈ sqrt(n‖g‖²/trials); allow 5 of them.
    let err: Vec<f64> = mean.iter().zip(&g).map(|(m, g)| m - g).collect();
    let bound = 5.0 * (n as f64 * gn * gn / trials as f64).sqrt();
    assert!(norm(&err) < bound, "bias {} > {bound}", norm(&err));
}

#[test]
fn rademacher_is_unbiased_without_the_factor_n() {
    let (n, trials) = (16, 40_000);
    let (mean, sq, g) = moments(DirectionKind::Rademacher, Difference::Central, n, trials);
    let gn = norm(&g);
    // E‖(g·Δ)Δ‖² = n·E(g·Δ)² = n‖g‖².
    assert!((sq / (n as f64 * gn * gn) - 1.0).abs() < 0.05);
    let err: Vec<f64> = mean.iter().zip(&g).map(|(m, g)| m - g).collect();
    assert!(norm(&err) < 5.0 * (n as f64 * gn * gn / trials as f64).sqrt());
}

#[test]
fn forward_difference_is_unbiased_up_to_order_eps() {
    let (n, trials) = (8, 40_000);
    let (mean, _, g) = moments(DirectionKind::UnitGaussian, Difference::Forward, n, trials);
    assert!(cosine(&mean, &g) > 0.99);
}

#[test]
fn many_directions_converge_to_the_gradient_and_cost_is_counted() {
    let n = 50;
    let mut q = Quadratic::new(n);
    let est = DirectionalDerivative {
        directions: 20_000,
        ..Default::default()
    };
    let (mut g, mut d) = (vec![0.0; n], vec![0.0; n]);
    let e = est.estimate(&mut q, 7, &mut g, &mut d);
    assert_eq!(e.evaluations, 40_000);
    assert_eq!(q.evaluations, 40_000);
    let g64: Vec<f64> = g.iter().map(|&x| x as f64).collect();
    // cos ≈ 1/sqrt(1 + n/P) ≈ 0.9988 for an exact directional derivative
    assert!(
        cosine(&g64, &q.gradient()) > 0.99,
        "cos = {}",
        cosine(&g64, &q.gradient())
    );

    let fwd = DirectionalDerivative {
        directions: 3,
        difference: Difference::Forward,
        ..Default::default()
    };
    q.evaluations = 0;
    assert_eq!(fwd.estimate(&mut q, 7, &mut g, &mut d).evaluations, 4);
    assert_eq!(q.evaluations, 4);
}

#[test]
fn same_seed_same_estimate() {
    let mut q = Quadratic::new(30);
    let est = DirectionalDerivative {
        directions: 4,
        ..Default::default()
    };
    let (mut g1, mut g2, mut d) = (vec![0.0; 30], vec![0.0; 30], vec![0.0; 30]);
    est.estimate(&mut q, 99, &mut g1, &mut d);
    est.estimate(&mut q, 99, &mut g2, &mut d);
    assert_eq!(g1, g2);
    est.estimate(&mut q, 100, &mut g2, &mut d);
    assert_ne!(g1, g2);
}

#[test]
fn unit_directions_have_unit_norm_and_rademacher_are_signs() {
    let mut d = vec![0.0f32; 1000];
    DirectionKind::UnitGaussian.draw(1, &mut d, Par::Seq);
    let n2: f64 = d.iter().map(|&x| (x as f64).powi(2)).sum();
    assert!((n2 - 1.0).abs() < 1e-5);
    DirectionKind::Rademacher.draw(1, &mut d, Par::Seq);
    assert!(d.iter().all(|&x| x == 1.0 || x == -1.0));
    let plus = d.iter().filter(|&&x| x > 0.0).count();
    assert!((400..600).contains(&plus), "balanced signs, got {plus}");
}

#[test]
fn step_rules_descend_a_quadratic() {
    let n = 10;
    for rule in ["sgd", "adam"] {
        let mut q = Quadratic::new(n);
        let start = q.loss(q.w.iter().map(|&x| x as f64));
        let mut step: Box<dyn StepRule> = if rule == "sgd" {
            Box::new(Sgd { lr: 0.1 })
        } else {
            Box::new(Adam::new(n, 0.05))
        };
        for _ in 0..300 {
            let g: Vec<f32> = q.gradient().iter().map(|&x| x as f32).collect();
            step.step(&mut q.w, &g);
        }
        let end = q.loss(q.w.iter().map(|&x| x as f64));
        // minimum of ½aω² + bω is −b²/2a per coordinate
        let min: f64 = q.a.iter().zip(&q.b).map(|(a, b)| -b * b / (2.0 * a)).sum();
        assert!(
            end - min < 1e-3 * (start - min).abs(),
            "{rule}: {start} → {end}, min {min}"
        );
    }
    // Adam's first step moves each coordinate by lr·sign(g) (bias-corrected).
    let mut adam = Adam::new(3, 0.01);
    let mut w = vec![0.0f32; 3];
    adam.step(&mut w, &[2.0, -0.5, 1e-3]);
    for (x, s) in w.iter().zip([-1.0f32, 1.0, -1.0]) {
        assert!((x - 0.01 * s).abs() < 1e-5, "{x}");
    }
}

#[test]
fn adam_restored_from_its_moments_continues_bit_for_bit() {
    let grad = |k: usize| -> Vec<f32> { (0..5).map(|i| ((i * 7 + k * 3) % 11) as f32 - 5.0).collect() };
    let (mut whole, mut w_whole) = (Adam::new(5, 0.01), vec![0.5f32; 5]);
    for k in 0..6 {
        whole.step(&mut w_whole, &grad(k));
    }
    // three steps, save, restore into a fresh Adam, three more
    let (mut first, mut w) = (Adam::new(5, 0.01), vec![0.5f32; 5]);
    for k in 0..3 {
        first.step(&mut w, &grad(k));
    }
    let (m, v, t) = first.moments();
    let (m, v) = (m.to_vec(), v.to_vec());
    assert_eq!(t, 3);
    let mut resumed = Adam::new(5, 0.01);
    resumed.restore_moments(&m, &v, t).unwrap();
    for k in 3..6 {
        resumed.step(&mut w, &grad(k));
    }
    assert_eq!(w, w_whole);
    assert_eq!(resumed, whole);
    // without the step count the bias correction differs: the test can fail
    let mut no_t = Adam::new(5, 0.01);
    no_t.restore_moments(&m, &v, 0).unwrap();
    let mut w2 = w.clone();
    no_t.step(&mut w2, &grad(6));
    whole.step(&mut w, &grad(6));
    assert_ne!(w2, w);
    // what cannot be restored
    assert!(resumed
        .restore_moments(&m[..4], &v, 3)
        .unwrap_err()
        .contains("for 5 parameters"));
    assert!(resumed.restore_moments(&m, &v, -1).is_err());
    let mut bad = v.clone();
    bad[2] = -1.0;
    assert!(resumed
        .restore_moments(&m, &bad, 3)
        .unwrap_err()
        .contains("second moment 2"));
}

#[test]
fn directions_are_the_same_for_any_thread_count_and_blocks_are_independent() {
    // Several blocks of DIRECTION_BLOCK entries, and a ragged last block.
    let n = 3 * DIRECTION_BLOCK + 123;
    for kind in [DirectionKind::UnitGaussian, DirectionKind::Rademacher] {
        let mut seq = vec![0.0f32; n];
        kind.draw(42, &mut seq, Par::Seq);
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut par = vec![0.0f32; n];
            pool.install(|| kind.draw(42, &mut par, Par::Rayon(threads)));
            assert_eq!(seq, par, "{kind:?}, {threads} threads");
        }
        // Different blocks are different streams, not copies.
        assert_ne!(seq[..64], seq[DIRECTION_BLOCK..DIRECTION_BLOCK + 64]);
    }
    // The Gaussian entries are standard normal before normalisation: mean 0, E[v²] = 1/n after.
    let mut d = vec![0.0f32; n];
    DirectionKind::UnitGaussian.draw(7, &mut d, Par::Seq);
    let mean: f64 = d.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let m2: f64 = d.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n as f64;
    let m4: f64 = d.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n as f64;
    // For a Gaussian, E[x⁴]/E[x²]² = 3 (kurtosis); a uniform or sign draw would give 1.8 or 1.
    let kurtosis = m4 / (m2 * m2);
    assert!(mean.abs() < 4.0 / (n as f64), "mean {mean}");
    assert!((kurtosis - 3.0).abs() < 0.15, "kurtosis {kurtosis}");
}

#[test]
fn step_rules_give_the_same_update_for_any_thread_count() {
    let n = 3 * 8192 + 17;
    let grad: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let start: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 * 1e-3).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let rules: [Box<dyn Fn() -> Box<dyn StepRule + Send>>; 2] = [
        Box::new(|| Box::new(Sgd { lr: 0.1 })),
        Box::new(move || Box::new(Adam::new(n, 0.01))),
    ];
    for make in rules {
        let (mut seq_rule, mut par_rule) = (make(), make());
        let (mut seq, mut par) = (start.clone(), start.clone());
        for _ in 0..3 {
            seq_rule.step(&mut seq, &grad);
            pool.install(|| par_rule.step_par(&mut par, &grad, Par::Rayon(2)));
        }
        assert_eq!(seq, par);
        assert_ne!(seq, start);
    }
    // The vectorised kernels (`insitu_linalg::vectorized`) give the bits of the textbook loops.
    let (mut sgd, mut adam) = (start.clone(), start.clone());
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    for t in 1..=3 {
        for (w, g) in sgd.iter_mut().zip(&grad) {
            *w -= 0.1 * g;
        }
        let (b1, b2) = (0.9f32, 0.999f32);
        let step = 0.01 / (1.0 - b1.powi(t));
        let inv_sqrt_bc2 = 1.0 / (1.0 - b2.powi(t)).sqrt();
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            adam[i] -= step * m[i] / (v[i].sqrt() * inv_sqrt_bc2 + 1e-8);
        }
    }
    let (mut sgd_rule, mut adam_rule) = (Sgd { lr: 0.1 }, Adam::new(n, 0.01));
    let (mut sgd_got, mut adam_got) = (start.clone(), start.clone());
    for _ in 0..3 {
        sgd_rule.step(&mut sgd_got, &grad);
        adam_rule.step(&mut adam_got, &grad);
    }
    assert_eq!(sgd, sgd_got, "SGD");
    assert_eq!(adam, adam_got, "Adam");
}
