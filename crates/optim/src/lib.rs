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

mod direction;
mod progress;
mod step;

pub use direction::{Difference, DirectionKind, DirectionalDerivative, Estimate, PerturbedObjective, DIRECTION_BLOCK};
pub use progress::{NoProgress, Progress};
pub use step::{Adam, AnyStep, Sgd, StepRule};
