//! Step rules: how a gradient estimate becomes a parameter update (minimisation).

/// A rule `ω ← step(ω, ĝ)` for minimising a loss, fed by any gradient source.
pub trait StepRule {
    /// Update `params` in place from the gradient estimate `grad` (same length).
    fn step(&mut self, params: &mut [f32], grad: &[f32]);
}

/// Plain stochastic gradient descent `ω ← ω − λ ĝ` (seed 000 eq. 3, 11, 12; SPEC A5's reading
/// of the paper's optimiser, λ = 10⁻³), no momentum.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate λ.
    pub lr: f32,
}

impl StepRule for Sgd {
    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            params.len(),
            grad.len(),
            "Sgd::step: parameter and gradient lengths differ"
        );
        for (w, g) in params.iter_mut().zip(grad) {
            *w -= self.lr * g;
        }
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
}

impl StepRule for Adam {
    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
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
        for ((w, g), (m, v)) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *w -= step * *m / ((*v).sqrt() * inv_sqrt_bc2 + self.eps);
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
    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        match self {
            AnyStep::Sgd(s) => s.step(params, grad),
            AnyStep::Adam(a) => a.step(params, grad),
        }
    }
}
