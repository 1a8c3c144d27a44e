//! Global-best particle-swarm optimisation of a one-layer phase mask: the model-free baseline of
//! seed 002 Figs. 3 and 4 (focusing through a scatterer, imaging around a corner; SPEC B4).
//!
//! The mask is optimised at the resolution of `segments × segments` macro-pixels (inertia
//! 0.7298, both accelerations 1.49618, positions in radians, velocities clipped to ±π); each
//! particle's mask is one evaluation of the objective per iteration, no gradient.

use insitu_linalg::{derive_seed, rng};
use rand::Rng;

/// What a swarm found.
pub(crate) struct SwarmOutcome {
    /// The best mask (`n × n`, radians).
    pub mask: Vec<f32>,
    /// The swarm's best objective before each iteration.
    pub curve: Vec<f64>,
    /// Evaluations of the objective.
    pub evaluations: u64,
}

/// Minimises `objective` (given a one-layer mask stack, `[n × n]`) over masks constant on
/// `segments × segments` blocks (`segments` divides `n`): `particles` particles, `iterations`
/// iterations, the swarm drawn from `seed`. One evaluation per particle to start, then one per
/// particle and iteration.
pub(crate) fn particle_swarm(
    n: usize,
    particles: usize,
    segments: usize,
    iterations: usize,
    seed: u64,
    mut objective: impl FnMut(&[Vec<f32>]) -> f64,
) -> SwarmOutcome {
    let (inertia, c1, c2) = (0.7298f32, 1.49618f32, 1.49618f32);
    let pi = std::f32::consts::PI;
    let dims = segments * segments;
    let block = n / segments;
    let mut r = rng(derive_seed(seed, &[0x0050_534F]));
    let mut mask = vec![vec![0.0f32; n * n]];
    let expand = |x: &[f32], mask: &mut [f32]| {
        for (k, m) in mask.iter_mut().enumerate() {
            *m = x[(k / n / block) * segments + (k % n) / block];
        }
    };
    let mut evaluate = |x: &[f32], mask: &mut [Vec<f32>]| -> f64 {
        expand(x, &mut mask[0]);
        objective(mask)
    };
    let mut x: Vec<Vec<f32>> = (0..particles)
        .map(|_| (0..dims).map(|_| r.random_range(0.0..2.0 * pi)).collect())
        .collect();
    let mut v: Vec<Vec<f32>> = (0..particles)
        .map(|_| (0..dims).map(|_| r.random_range(-pi..pi) * 0.1).collect())
        .collect();
    let mut best_x = x.clone();
    let mut best_l: Vec<f64> = x.iter().map(|xi| evaluate(xi, &mut mask)).collect();
    let mut evaluations = particles as u64;
    let best_of = |best_l: &[f64]| {
        best_l
            .iter()
            .enumerate()
            .fold(0, |b, (i, &l)| if l < best_l[b] { i } else { b })
    };
    let mut g = best_of(&best_l);
    let mut curve = Vec::with_capacity(iterations + 1);
    let mut global = Vec::with_capacity(dims);
    for _ in 0..iterations {
        curve.push(best_l[g]);
        global.clone_from(&best_x[g]);
        for p in 0..particles {
            for d in 0..dims {
                let (r1, r2): (f32, f32) = (r.random(), r.random());
                v[p][d] = (inertia * v[p][d] + c1 * r1 * (best_x[p][d] - x[p][d]) + c2 * r2 * (global[d] - x[p][d]))
                    .clamp(-pi, pi);
                x[p][d] += v[p][d];
            }
            let l = evaluate(&x[p], &mut mask);
            evaluations += 1;
            if l < best_l[p] {
                best_l[p] = l;
                best_x[p].clone_from(&x[p]);
            }
        }
        g = best_of(&best_l);
    }
    let mut out = mask.remove(0);
    expand(&best_x[g], &mut out);
    SwarmOutcome {
        mask: out,
        curve,
        evaluations,
    }
}
