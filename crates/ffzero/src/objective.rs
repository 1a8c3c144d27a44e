//! The losses a layer or a network is trained on, and the two forward-only objectives the
//! directional-derivative methods see (SPEC A2, A4).

use insitu_autodiff::{loss, Tape, Var};
use insitu_linalg::{Mat, MatRef};
use insitu_optim::PerturbedObjective;

use crate::mlp::{dense_forward, DenseShape, Mlp};
use crate::spec::LocalLoss;

/// What one layer's pre-activation `z` (width × B) is scored against (SPEC A2).
#[derive(Clone, Copy, Debug)]
pub enum LayerTarget<'a> {
    /// Classification against the layer's prototypes (width × classes).
    Classes {
        /// The layer's fixed prototypes.
        prototypes: &'a Mat,
        /// The batch's labels.
        labels: &'a [u32],
        /// Margin loss (eq. 16) or eq. 5.
        loss: LocalLoss,
        /// The margin q of eq. 16.
        margin: f32,
    },
    /// Regression: squared cosine error against the upper prototype `ξ^u` (eq. 7–8).
    Regression {
        /// `ξ^u` (length = width).
        prototype: &'a [f32],
        /// The batch's targets in [-1, 1].
        targets: &'a [f32],
    },
}

impl LayerTarget<'_> {
    /// The layer's local loss of `z`, mean over the batch, in f64.
    pub fn loss(&self, z: &Mat) -> f64 {
        match *self {
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Margin,
                margin,
            } => loss::margin_loss(z, prototypes, labels, margin),
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Eq5,
                ..
            } => loss::eq5_loss(z, prototypes, labels),
            LayerTarget::Regression { prototype, targets } => loss::squared_cosine_loss(z, prototype, targets),
        }
    }

    /// The same loss as a node on an autodiff tape.
    pub fn on_tape(&self, tape: &mut Tape, z: Var) -> Var {
        match *self {
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Margin,
                margin,
            } => tape.margin_loss(z, prototypes, labels, margin),
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Eq5,
                ..
            } => tape.eq5_loss(z, prototypes, labels),
            LayerTarget::Regression { prototype, targets } => tape.squared_cosine_loss(z, prototype, targets),
        }
    }
}

/// What the whole network's output is scored against in the BP methods: softmax
/// cross-entropy of the logits, or MSE of a 1-output regression head.
#[derive(Clone, Copy, Debug)]
pub enum GlobalTarget<'a> {
    /// Cross-entropy against class labels.
    Classes(&'a [u32]),
    /// MSE against targets (outputs × B).
    Regression(&'a Mat),
}

impl GlobalTarget<'_> {
    /// The global loss of the network output, mean over the batch, in f64.
    pub fn loss(&self, out: &Mat) -> f64 {
        match *self {
            GlobalTarget::Classes(labels) => loss::softmax_cross_entropy(out, labels),
            GlobalTarget::Regression(t) => loss::mse(out, t),
        }
    }
    /// The same loss on a tape.
    pub fn on_tape(&self, tape: &mut Tape, out: Var) -> Var {
        match *self {
            GlobalTarget::Classes(labels) => tape.softmax_cross_entropy(out, labels),
            GlobalTarget::Regression(t) => tape.mse(out, t),
        }
    }
}

/// Scratch for [`LayerObjective`], reused across steps.
#[derive(Debug, Default)]
pub struct LayerScratch {
    /// `W·x + b` at the current parameters.
    pub base: Mat,
    /// `V·x + v_b` for the current direction.
    pub along: Mat,
    /// `base + t·along`.
    pub perturbed: Mat,
}

/// FF+DD's view of the layer it trains: the layer (with its frozen, cached input batch) as a
/// black box evaluated forward at perturbed parameters — nothing else is reachable.
///
/// Exact shortcut (allowed by ARCHITECTURE.md): `(W + tV)x + (b + t v_b) = (Wx + b) + t(Vx + v_b)`,
/// so `Wx + b` is computed once per step and `Vx + v_b` once per direction, shared by `±ε`.
pub struct LayerObjective<'a> {
    shape: DenseShape,
    input: MatRef<'a, f32>,
    target: LayerTarget<'a>,
    scratch: &'a mut LayerScratch,
}

impl<'a> LayerObjective<'a> {
    /// The objective of one layer at parameters `params` on the batch `input` (in × B).
    pub fn new(
        shape: DenseShape,
        params: &[f32],
        input: MatRef<'a, f32>,
        target: LayerTarget<'a>,
        scratch: &'a mut LayerScratch,
    ) -> Self {
        let b = input.ncols();
        for m in [&mut scratch.base, &mut scratch.along, &mut scratch.perturbed] {
            if m.shape() != (shape.outputs, b) {
                *m = Mat::zeros(shape.outputs, b);
            }
        }
        dense_forward(shape, params, input, &mut scratch.base);
        Self {
            shape,
            input,
            target,
            scratch,
        }
    }
}

impl PerturbedObjective for LayerObjective<'_> {
    fn dim(&self) -> usize {
        self.shape.len()
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        dense_forward(self.shape, direction, self.input, &mut self.scratch.along);
        for (o, &t) in out.iter_mut().zip(steps) {
            let s = &mut *self.scratch;
            for ((p, b), a) in s.perturbed.iter_mut().zip(s.base.iter()).zip(s.along.iter()) {
                *p = b + t * a;
            }
            *o = self.target.loss(&s.perturbed);
        }
    }
}

/// BP+DD's view of the whole network: every parameter perturbed at once, the global loss
/// evaluated forward (SPEC A8: "one global DD estimate over all parameters").
pub struct NetworkObjective<'a> {
    base: &'a [f32],
    perturbed: &'a mut Mlp,
    input: MatRef<'a, f32>,
    target: GlobalTarget<'a>,
    buffers: &'a mut Vec<Mat>,
}

impl<'a> NetworkObjective<'a> {
    /// `perturbed` is a scratch copy of the model whose parameters are overwritten with
    /// `base + t·d` for each evaluation.
    pub fn new(
        base: &'a [f32],
        perturbed: &'a mut Mlp,
        input: MatRef<'a, f32>,
        target: GlobalTarget<'a>,
        buffers: &'a mut Vec<Mat>,
    ) -> Self {
        assert_eq!(
            base.len(),
            perturbed.params().len(),
            "NetworkObjective: parameter count"
        );
        Self {
            base,
            perturbed,
            input,
            target,
            buffers,
        }
    }
}

impl PerturbedObjective for NetworkObjective<'_> {
    fn dim(&self) -> usize {
        self.base.len()
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        for (o, &t) in out.iter_mut().zip(steps) {
            for ((p, b), d) in self.perturbed.params_mut().iter_mut().zip(self.base).zip(direction) {
                *p = b + t * d;
            }
            self.perturbed.forward_taps(self.input, self.buffers, |_, _| {});
            *o = self.target.loss(self.buffers.last().expect("at least one layer"));
        }
    }
}

/// FF+AD's gradient source: the exact gradient of one layer's own loss with respect to its
/// own parameters (`[W | b]` layout), by reverse mode on `tape`. Returns the loss.
pub fn layer_gradient_autodiff(
    tape: &mut Tape,
    shape: DenseShape,
    params: &[f32],
    x: &Mat,
    target: LayerTarget<'_>,
    grad: &mut [f32],
) -> f64 {
    let nw = shape.outputs * shape.inputs;
    tape.reset();
    let xv = tape.constant(x);
    let w = tape.param_slice(&params[..nw], shape.outputs, shape.inputs);
    let b = tape.param_slice(&params[nw..], shape.outputs, 1);
    let z = tape.matmul(w, xv);
    let z = tape.add_bias(z, b);
    let loss = target.on_tape(tape, z);
    let value = tape.scalar(loss);
    tape.backward(loss);
    grad[..nw].copy_from_slice(tape.grad(w).expect("gradient of a parameter").as_slice());
    grad[nw..].copy_from_slice(tape.grad(b).expect("gradient of a parameter").as_slice());
    value
}

/// BP+AD's gradient source: the exact gradient of the global loss with respect to every
/// parameter of an MLP with layer `shapes` and flat `params` (layout of [`Mlp`]), by
/// back-propagation on `tape`. Returns the loss.
pub fn network_gradient_autodiff(
    tape: &mut Tape,
    shapes: &[DenseShape],
    params: &[f32],
    x: &Mat,
    target: GlobalTarget<'_>,
    grad: &mut [f32],
) -> f64 {
    tape.reset();
    let mut h = tape.constant(x);
    let mut vars = Vec::with_capacity(shapes.len());
    let mut offset = 0;
    for (l, s) in shapes.iter().enumerate() {
        let p = &params[offset..offset + s.len()];
        offset += s.len();
        let nw = s.outputs * s.inputs;
        let w = tape.param_slice(&p[..nw], s.outputs, s.inputs);
        let bias = tape.param_slice(&p[nw..], s.outputs, 1);
        let z = tape.matmul(w, h);
        let z = tape.add_bias(z, bias);
        h = if l + 1 < shapes.len() { tape.relu(z) } else { z };
        vars.push((w, bias));
    }
    let loss = target.on_tape(tape, h);
    let value = tape.scalar(loss);
    tape.backward(loss);
    let mut offset = 0;
    for (s, (w, bias)) in shapes.iter().zip(vars) {
        let nw = s.outputs * s.inputs;
        let g = &mut grad[offset..offset + s.len()];
        offset += s.len();
        g[..nw].copy_from_slice(tape.grad(w).expect("parameter gradient").as_slice());
        g[nw..].copy_from_slice(tape.grad(bias).expect("parameter gradient").as_slice());
    }
    value
}
