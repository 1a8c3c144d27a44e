//! The directional-derivative estimator (seed 000 eq. 12–14, SPEC A4).

use insitu_linalg::{derive_seed, fast_stream, sum_of_squares, vectorized, FastRng, NormalStream, Par, VectorKernel};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A loss that can only be *evaluated forward* at perturbed parameters — the whole interface
/// a forward-only (physically plausible) trainer gets to the system it trains.
///
/// `losses_along(d, steps, out)` writes `out[i] = L(ω + steps[i]·d)` for the current
/// parameters `ω`; every entry is one physical forward evaluation (of the whole mini-batch).
/// Passing all steps of one direction at once lets an exact simulation share work between
/// them (e.g. a dense layer computes `W·x` once and `V·x` once for both `±ε`), which is
/// allowed because the numbers equal those of separate physical passes.
pub trait PerturbedObjective {
    /// `n`, the number of parameters.
    fn dim(&self) -> usize;
    /// Work at the unperturbed parameters that every evaluation shares (e.g. a dense layer's
    /// `W·x`). The estimator calls it once per estimate, before drawing the first direction;
    /// an implementation must also do it itself if `losses_along` comes first. Default:
    /// nothing.
    fn prepare(&mut self) {}
    /// `out[i] = L(ω + steps[i]·direction)`, in f64.
    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]);
}

/// How directions are drawn, and the scale that makes the estimate unbiased. Serialised as
/// `unit-gaussian` or `rademacher` (a training spec's `direction_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectionKind {
    /// `v̂ = v/‖v‖`, `v ~ N(0, I_n)`: uniform on the unit sphere; `E[v̂ v̂ᵀ] = I/n`, so the
    /// estimate carries the factor `n` (seed 000 eq. 12–13).
    #[default]
    UnitGaussian,
    /// `Δ ∈ {±1}ⁿ` (SPSA): `E[Δ Δᵀ] = I`, no factor.
    Rademacher,
}

impl DirectionKind {
    /// The factor multiplying `Σ_p (directional derivative)·direction / P`: `n` for unit
    /// directions, `1` for Rademacher ones. **The one place the scaling rule lives**
    /// (research/learning.md §2: a Gaussian direction with the factor n is biased by n).
    pub fn scale(self, n: usize) -> f64 {
        match self {
            DirectionKind::UnitGaussian => n as f64,
            DirectionKind::Rademacher => 1.0,
        }
    }

    /// Fill `out` with the direction of `seed`.
    ///
    /// The direction is cut into blocks of [`DIRECTION_BLOCK`] entries; block `i` is drawn from
    /// its own stream, seeded with `derive_seed(seed, &[i])`: a [`NormalStream`] for
    /// [`DirectionKind::UnitGaussian`], 64 signs per word of a [`fast_stream`] for
    /// [`DirectionKind::Rademacher`]. Blocks are independent, so they can be drawn in parallel
    /// (`par`), and the direction is the same for any thread count. A unit Gaussian direction is
    /// then normalised with `‖v‖²` summed in f64 in block order.
    ///
    /// The Gaussian sampler changed in the commit after d9ec5e1 (from rand_distr's ziggurat on
    /// one Xoshiro256++ stream per block, 2.4 ns per entry, to [`NormalStream`], 0.4 ns): same
    /// distribution, different numbers, so DD runs of earlier commits are not reproduced bit for
    /// bit.
    pub fn draw(self, seed: u64, out: &mut [f32], par: Par) {
        let fill = |(i, block): (usize, &mut [f32])| {
            let block_seed = derive_seed(seed, &[i as u64]);
            match self {
                DirectionKind::UnitGaussian => {
                    NormalStream::new(block_seed).fill(block);
                    // The block's ‖·‖² while it is in this thread's cache (a pass after the
                    // draw read the blocks other threads wrote: 20 % of FF+DD's draw time at
                    // 2 threads).
                    sum_of_squares(block)
                }
                DirectionKind::Rademacher => {
                    vectorized(RademacherBlock {
                        rng: fast_stream(block_seed),
                        block,
                    });
                    0.0
                }
            }
        };
        // Taken out of the thread-local for the parallel region: a job this thread runs while
        // it waits may draw too (it then finds an empty buffer, never a borrowed one).
        let mut norms = BLOCK_NORMS.take();
        out.par_chunks_mut(DIRECTION_BLOCK)
            .enumerate()
            .with_min_len(par.min_blocks_per_job())
            .map(fill)
            .collect_into_vec(&mut norms);
        // In block order, as `out.chunks(DIRECTION_BLOCK).map(sum_of_squares).sum()`.
        let norm2: f64 = norms.iter().sum();
        BLOCK_NORMS.set(norms);
        if self == DirectionKind::UnitGaussian {
            let inv = if norm2 > 0.0 { (1.0 / norm2.sqrt()) as f32 } else { 0.0 };
            out.par_chunks_mut(DIRECTION_BLOCK)
                .with_min_len(par.min_blocks_per_job())
                .for_each(|block| vectorized(Scale { block, factor: inv }));
        }
    }
}

thread_local! {
    /// Per-block `‖·‖²` of the direction being drawn, reused (grows once per thread).
    static BLOCK_NORMS: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// One block of a Rademacher direction: 64 signs per random word, bit `k` → entry `k`.
struct RademacherBlock<'a> {
    rng: FastRng,
    block: &'a mut [f32],
}

impl VectorKernel for RademacherBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run(mut self) {
        for chunk in self.block.chunks_mut(64) {
            let bits: u64 = self.rng.random();
            for (k, v) in chunk.iter_mut().enumerate() {
                *v = if (bits >> k) & 1 == 1 { 1.0 } else { -1.0 };
            }
        }
    }
}

/// `block ← factor · block`.
struct Scale<'a> {
    block: &'a mut [f32],
    factor: f32,
}

impl VectorKernel for Scale<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        self.block.iter_mut().for_each(|v| *v *= self.factor);
    }
}

/// Entries per independently seeded block of a direction (see [`DirectionKind::draw`]).
pub const DIRECTION_BLOCK: usize = 8192;

/// Finite-difference scheme for one directional derivative. Serialised as `central` or
/// `forward` (a training spec's `difference`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Difference {
    /// `(L(ω + εd) − L(ω − εd)) / 2ε`: two evaluations per direction (seed 000 eq. 12).
    #[default]
    Central,
    /// `(L(ω + εd) − L(ω)) / ε`: one evaluation per direction plus one shared `L(ω)`.
    Forward,
}

/// The directional-derivative gradient estimator (seed 000 eq. 12–14).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectionalDerivative {
    /// `P`, the number of directions averaged per step (≥ 1).
    pub directions: usize,
    /// `ε`, the perturbation size along a direction (> 0).
    pub eps: f32,
    /// How directions are drawn.
    pub kind: DirectionKind,
    /// Central or forward differences.
    pub difference: Difference,
    /// Threads for drawing a direction and forming the estimate (results do not depend on it).
    pub par: Par,
}

impl Default for DirectionalDerivative {
    /// Seed 000 Supplementary Table 1: `P = 1`, `ε = 10⁻³`, central differences, unit directions.
    fn default() -> Self {
        Self {
            directions: 1,
            eps: 1e-3,
            kind: DirectionKind::UnitGaussian,
            difference: Difference::Central,
            par: Par::Seq,
        }
    }
}

/// What one estimate cost and saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Forward evaluations of the objective (each a full mini-batch pass): `2P` (central) or
    /// `P + 1` (forward).
    pub evaluations: usize,
    /// Mean over directions of the losses at the perturbed points (a cheap, slightly biased
    /// view of the current loss; not finite if any evaluation was not).
    pub mean_loss: f64,
}

impl DirectionalDerivative {
    /// Estimate `∇L(ω)` into `grad` (overwritten; length `objective.dim()`).
    ///
    /// Direction `p` is [`DirectionKind::draw`] of `derive_seed(seed, &[p])` for `p = 0..P`, so
    /// the same `seed` (e.g. a hash of run seed, layer and step) regenerates exactly the same
    /// directions, for any `par`. `direction`
    /// is scratch of length `n` (no allocation here).
    ///
    /// # Panics
    /// If `grad` or `direction` do not have length `objective.dim()` (a programming error).
    pub fn estimate<O: PerturbedObjective + Send + ?Sized>(
        &self,
        objective: &mut O,
        seed: u64,
        grad: &mut [f32],
        direction: &mut [f32],
    ) -> Estimate {
        let n = objective.dim();
        assert_eq!(grad.len(), n, "gradient buffer length");
        assert_eq!(direction.len(), n, "direction scratch length");
        let p_count = self.directions.max(1);
        let eps = self.eps;
        let mut out = [0.0f64; 2];
        let mut evaluations = 0;
        let mut loss_sum = 0.0;
        let mut base_loss = None;
        for p in 0..p_count {
            // One after the other, each spread over the threads: running the draw beside
            // `prepare` (a `rayon::join`, until session 3) left `prepare`'s second column
            // block waiting for the thread busy drawing; at 2 threads the two phases took
            // 0.186 s together that way and 0.147 s one after the other (FF+DD, w100 d1,
            // 3 epochs, docs/performance.md).
            if p == 0 {
                objective.prepare();
            }
            self.kind.draw(derive_seed(seed, &[p as u64]), direction, self.par);
            let derivative = match self.difference {
                Difference::Central => {
                    objective.losses_along(direction, &[eps, -eps], &mut out);
                    evaluations += 2;
                    loss_sum += 0.5 * (out[0] + out[1]);
                    (out[0] - out[1]) / (2.0 * eps as f64)
                }
                Difference::Forward => {
                    let (l0, l_eps) = match base_loss {
                        Some(l0) => {
                            objective.losses_along(direction, &[eps], &mut out[..1]);
                            evaluations += 1;
                            (l0, out[0])
                        }
                        None => {
                            // `L(ω)` and the first direction's `L(ω + εv̂)` in one call, so that
                            // a simulation shares their work (a dense layer's `V·x`) as it does
                            // for `±ε`: two separate calls made FF+DD with P = 4 take 4.5 s
                            // instead of central's 4.0 for 37.5 % fewer forward passes.
                            objective.losses_along(direction, &[0.0, eps], &mut out);
                            evaluations += 2;
                            base_loss = Some(out[0]);
                            (out[0], out[1])
                        }
                    };
                    loss_sum += l_eps;
                    (l_eps - l0) / eps as f64
                }
            };
            let coefficient = (self.kind.scale(n) * derivative / p_count as f64) as f32;
            // The first direction writes the gradient, the others add to it (no zeroing pass).
            let first = p == 0;
            grad.par_chunks_mut(DIRECTION_BLOCK)
                .zip(direction.par_chunks(DIRECTION_BLOCK))
                .with_min_len(self.par.min_blocks_per_job())
                .for_each(|(g, d)| {
                    if first {
                        g.iter_mut().zip(d).for_each(|(g, d)| *g = coefficient * d);
                    } else {
                        g.iter_mut().zip(d).for_each(|(g, d)| *g += coefficient * d);
                    }
                });
        }
        Estimate {
            evaluations,
            mean_loss: loss_sum / p_count as f64,
        }
    }
}
