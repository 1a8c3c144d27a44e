//! Step rules: how a gradient estimate becomes a parameter update (minimisation).

use insitu_linalg::{vectorized, Par, VectorKernel};
use rayon::prelude::*;

/// Parameters per block when a step runs on several threads. Every rule is elementwise, so
/// the blocks only decide who does the work, never the result.
const STEP_BLOCK: usize = 8192;

/// A rule `ω ← step(ω, ĝ)` for minimising a loss, fed by any gradient source.
pub trait StepRule {
    /// Update `params` in place from the gradient estimate `grad` (same length).
    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        self.step_par(params, grad, Par::Seq);
    }
    /// [`StepRule::step`], in fixed blocks of parameters on rayon's pool when `par` allows;
    /// the result is the same for any `par`.
    fn step_par(&mut self, params: &mut [f32], grad: &[f32], par: Par);
}

/// Plain stochastic gradient descent `ω ← ω − λ ĝ` (seed 000 eq. 3, 11, 12; SPEC A5's reading
/// of the paper's optimiser, λ = 10⁻³), no momentum.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate λ.
    pub lr: f32,
}

impl StepRule for Sgd {
    fn step_par(&mut self, params: &mut [f32], grad: &[f32], par: Par) {
        assert_eq!(
            params.len(),
            grad.len(),
            "Sgd::step: parameter and gradient lengths differ"
        );
        let lr = self.lr;
        // Split like every rule (one block runs on the caller). Until the commit after cd9b01b
        // SGD stayed on one thread below 4 M parameters, measured before the pool's idle threads
        // polled for work (a region then cost ≈ 10 µs, now 1–3 µs); FF+DD w100 d3 MNIST, 3
        // epochs, 2 threads: that took 30 ms, the split step 21 (both cores read `W` in the
        // step's products, so every line written invalidates the other core's copy), 7 at 1
        // thread.
        params
            .par_chunks_mut(STEP_BLOCK)
            .zip(grad.par_chunks(STEP_BLOCK))
            .with_min_len(par.min_blocks_per_job())
            .for_each(|(params, grad)| vectorized(SgdBlock { params, grad, lr }));
    }
}

/// Adam (Kingma & Ba 2015) with bias correction; defaults β₁ = 0.9, β₂ = 0.999, ε = 10⁻⁸
/// (seed 002 Methods, and SPEC A5's option). Moment buffers are allocated once, at
/// construction, for a fixed parameter count.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// Adam for `n` parameters with the default β₁, β₂, ε.
    pub fn new(n: usize, lr: f32) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// The moments `m`, `v` and the step count `t`: with the parameters, what a checkpoint
    /// keeps so that a resumed run takes exactly the steps it would have taken.
    pub fn moments(&self) -> (&[f32], &[f32], i32) {
        (&self.m, &self.v, self.t)
    }

    /// Restores [`Adam::moments`] saved from an `Adam` of the same parameter count. A length
    /// that differs, a negative step count or a non-finite or negative `v` is an error that
    /// says which.
    pub fn restore_moments(&mut self, m: &[f32], v: &[f32], t: i32) -> Result<(), String> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return Err(format!(
                "Adam moments of {} and {} values for {} parameters",
                m.len(),
                v.len(),
                self.m.len()
            ));
        }
        if t < 0 {
            return Err(format!("Adam step count {t} < 0"));
        }
        if let Some(i) = m.iter().position(|x| !x.is_finite()) {
            return Err(format!("Adam first moment {i} is {}", m[i]));
        }
        if let Some(i) = v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(format!("Adam second moment {i} is {}", v[i]));
        }
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.t = t;
        Ok(())
    }
}

impl StepRule for Adam {
    fn step_par(&mut self, params: &mut [f32], grad: &[f32], par: Par) {
        assert_eq!(
            params.len(),
            grad.len(),
            "Adam::step: parameter and gradient lengths differ"
        );
        assert_eq!(
            params.len(),
            self.m.len(),
            "Adam::step: built for {} parameters, got {}",
            self.m.len(),
            params.len()
        );
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        let step = self.lr / bc1;
        let inv_sqrt_bc2 = 1.0 / bc2.sqrt();
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        params
            .par_chunks_mut(STEP_BLOCK)
            .zip(grad.par_chunks(STEP_BLOCK))
            .zip(self.m.par_chunks_mut(STEP_BLOCK).zip(self.v.par_chunks_mut(STEP_BLOCK)))
            .with_min_len(par.min_blocks_per_job())
            .for_each(|((params, grad), (m, v))| {
                vectorized(AdamBlock {
                    params,
                    grad,
                    m,
                    v,
                    beta1,
                    beta2,
                    eps,
                    step,
                    inv_sqrt_bc2,
                })
            });
    }
}

/// One block of [`Sgd`]'s update, as a [`VectorKernel`] (16-lane on AVX-512, same bits).
struct SgdBlock<'a> {
    params: &'a mut [f32],
    grad: &'a [f32],
    lr: f32,
}

impl VectorKernel for SgdBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let lr = self.lr;
        self.params.iter_mut().zip(self.grad).for_each(|(w, g)| *w -= lr * g);
    }
}

/// One block of [`Adam`]'s update, as a [`VectorKernel`]; `step = λ/(1 − β₁ᵗ)`,
/// `inv_sqrt_bc2 = 1/√(1 − β₂ᵗ)`.
struct AdamBlock<'a> {
    params: &'a mut [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    beta1: f32,
    beta2: f32,
    eps: f32,
    step: f32,
    inv_sqrt_bc2: f32,
}

impl VectorKernel for AdamBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Self {
            params,
            grad,
            m,
            v,
            beta1,
            beta2,
            eps,
            step,
            inv_sqrt_bc2,
        } = self;
        for ((w, g), (m, v)) in params.iter_mut().zip(grad).zip(m.iter_mut().zip(v.iter_mut())) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *w -= step * *m / ((*v).sqrt() * inv_sqrt_bc2 + eps);
        }
    }
}

/// Either step rule, chosen at run time (what a spec's `optimizer` field selects).
#[derive(Clone, Debug, PartialEq)]
pub enum AnyStep {
    /// Plain SGD.
    Sgd(Sgd),
    /// Adam.
    Adam(Adam),
}

impl StepRule for AnyStep {
    fn step_par(&mut self, params: &mut [f32], grad: &[f32], par: Par) {
        match self {
            AnyStep::Sgd(s) => s.step_par(params, grad, par),
            AnyStep::Adam(a) => a.step_par(params, grad, par),
        }
    }
}
