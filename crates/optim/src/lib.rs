//! # insitu-optim — zeroth-order gradient estimates and step rules
//!
//! **What it is for.** Turning *forward evaluations only* into gradient estimates, and gradient
//! estimates (from any source) into parameter updates:
//!
//! * [`DirectionalDerivative`]: seed 000 eq. 12–14 (SPEC A4). For a parameter vector `ω` with
//!   `n` entries, `ĝ = (n/P) Σ_p [(L(ω + ε v̂_p) − L(ω − ε v̂_p)) / (2ε)] v̂_p` with
//!   `v̂_p = v_p/‖v_p‖`, `v_p ~ N(0, I_n)`. Options: forward differences (`P + 1` evaluations),
//!   and Rademacher directions (SPSA, Spall 1992: `Δ ∈ {±1}ⁿ`, no factor n). The scaling that
//!   makes each variant unbiased lives in one place, [`DirectionKind::scale`].
//! * [`Sgd`] and [`Adam`]: step rules that consume any gradient estimate (AD, DD, FFM), behind
//!   one trait, [`StepRule`]. SPEC A5 reads the paper's optimiser as plain SGD, λ = 10⁻³.
//! * [`Progress`]: the events every trainer reports (phase, step, epoch), for a caller to show.
//!
//! Directions are regenerated from `(seed, step, direction index)` streams and never stored
//! as a set; only one direction of `n` floats exists at a time. Loss differences are formed
//! in f64 (research/learning.md §4: an f32 difference of two batch losses can drown in
//! round-off).
//!
//! **What it must not do.** The estimator sees the system it trains only through
//! [`PerturbedObjective`], which offers forward evaluations at perturbed parameters and
//! nothing else: no gradients, no adjoints, no internals. No I/O, no global state.
//!
//! # Example: minimise a loss you can only evaluate
//!
//! A system is wrapped in [`PerturbedObjective`] (here a quadratic `L(ω) = Σ (ω_i − t_i)²`
//! standing in for a physical measurement); the estimator draws a direction, asks for
//! `L(ω ± ε v̂)` and returns the estimate of eq. 14, which any [`StepRule`] turns into a step.
//! Every evaluation is counted, as a physical forward pass would be.
//!
//! ```
//! use insitu_optim::{DirectionalDerivative, PerturbedObjective, Sgd, StepRule};
//!
//! struct Quadratic {
//!     params: Vec<f32>,
//!     target: Vec<f32>,
//! }
//!
//! impl Quadratic {
//!     fn loss_at(&self, direction: &[f32], step: f32) -> f64 {
//!         let perturbed = self.params.iter().zip(direction).map(|(w, d)| w + step * d);
//!         perturbed.zip(&self.target).map(|(w, t)| ((w - t) as f64).powi(2)).sum()
//!     }
//! }
//!
//! impl PerturbedObjective for Quadratic {
//!     fn dim(&self) -> usize {
//!         self.params.len()
//!     }
//!     fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
//!         for (out, &step) in out.iter_mut().zip(steps) {
//!             *out = self.loss_at(direction, step);
//!         }
//!     }
//! }
//!
//! let n = 10;
//! let mut system = Quadratic { params: vec![0.0; n], target: (0..n).map(|i| i as f32 / 10.0).collect() };
//! let zero = vec![0.0; n];
//! let initial = system.loss_at(&zero, 0.0);
//!
//! // Seed 000 Supplementary Table 1: P = 1 direction, ε = 10⁻³, central differences.
//! let estimator = DirectionalDerivative::default();
//! let mut sgd = Sgd { lr: 0.05 };
//! let (mut grad, mut direction) = (vec![0.0; n], vec![0.0; n]);
//! let mut evaluations = 0;
//! for step in 0..300 {
//!     // The seed names the step's directions: the same seed draws the same ones again.
//!     let estimate = estimator.estimate(&mut system, step, &mut grad, &mut direction);
//!     evaluations += estimate.evaluations;
//!     sgd.step(&mut system.params, &grad);
//! }
//! let last = system.loss_at(&zero, 0.0);
//! assert_eq!(evaluations, 2 * 300); // L(ω + εv̂) and L(ω − εv̂) per step
//! assert!(last < 1e-6 * initial, "loss {initial} -> {last}");
//! ```

mod direction;
mod progress;
mod step;

pub use direction::{Difference, DirectionKind, DirectionalDerivative, Estimate, PerturbedObjective, DIRECTION_BLOCK};
pub use progress::{NoProgress, Progress};
pub use step::{Adam, AnyStep, Sgd, StepRule};
