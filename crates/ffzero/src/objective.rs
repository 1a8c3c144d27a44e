//! The losses a layer or a network is trained on, and the two forward-only objectives the
//! directional-derivative methods see (SPEC A2, A4).

use insitu_autodiff::{loss, Tape, Var};
use insitu_linalg::{add_scaled, dot, matmul, set_shape, Accum, Mat, MatMut, MatRef, Par};
use insitu_optim::PerturbedObjective;
use rayon::prelude::*;

use crate::mlp::{layer_forward_into, DenseShape, LayerInput, Mlp};
use crate::spec::{LocalLoss, TrainSpec};

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

impl<'a> LayerTarget<'a> {
    /// Classification against `prototypes` with `spec`'s local loss and margin.
    pub fn classes_of(spec: &TrainSpec, prototypes: &'a Mat, labels: &'a [u32]) -> Self {
        LayerTarget::Classes {
            prototypes,
            labels,
            loss: spec.loss,
            margin: spec.margin,
        }
    }

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

    /// [`Self::loss`] with the classification goodness (`classes × B`) computed into
    /// `goodness`, a buffer reused from call to call (no allocation once it has the shape);
    /// the same value as [`Self::loss`]. Regression allocates as [`Self::loss`] does.
    pub fn loss_with_goodness(&self, z: &Mat, goodness: &mut Mat) -> f64 {
        match *self {
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: local_loss,
                margin,
            } => {
                set_shape(goodness, prototypes.ncols(), z.ncols());
                loss::cosine_goodness(z, prototypes, goodness);
                match local_loss {
                    LocalLoss::Margin => loss::margin_loss_of_goodness(goodness, labels, margin),
                    LocalLoss::Eq5 => loss::eq5_loss_of_goodness(goodness, labels),
                }
            }
            LayerTarget::Regression { .. } => self.loss(z),
        }
    }

    /// The prototypes the goodness is measured against, as a width × k view (k = classes,
    /// or 1 for regression's `ξ^u`).
    pub fn prototypes(&self) -> MatRef<'_, f32> {
        match *self {
            LayerTarget::Classes { prototypes, .. } => MatRef::from(prototypes),
            LayerTarget::Regression { prototype, .. } => MatRef::from_col_major(prototype, prototype.len(), 1),
        }
    }

    /// The loss of sample `j` from its goodness values `g(c)` against [`Self::prototypes`]
    /// (not divided by the batch size).
    #[inline]
    pub fn sample_loss(&self, j: usize, g: impl Fn(usize) -> f64) -> f64 {
        match *self {
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Margin,
                margin,
            } => loss::margin_sample_loss(prototypes.ncols(), labels[j] as usize, margin as f64, g),
            LayerTarget::Classes {
                prototypes,
                labels,
                loss: LocalLoss::Eq5,
                ..
            } => loss::eq5_sample_loss(prototypes.ncols(), labels[j] as usize, g),
            LayerTarget::Regression { targets, .. } => loss::squared_cosine_sample_loss(g(0), targets[j] as f64),
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

/// Columns per block of [`LayerObjective`]'s work. Fixed (never derived from the thread
/// count), so the per-block partial sums, and hence every loss, are the same for any `Par`.
pub const COLUMN_BLOCK: usize = 128;

/// Scratch for [`LayerObjective`], reused across steps: buffers only grow, so an epoch's
/// shorter last batch and the next full one allocate nothing (no allocation once sized).
#[derive(Debug, Default)]
pub struct LayerScratch {
    /// `W·x + b` at the current parameters (out × B, column-major; the first `out·B` values).
    base: Vec<f32>,
    /// `V·x + v_b` for the current direction (out × B).
    along: Vec<f32>,
    /// `Ξᵀ·base` (k × B): every column's projections on the `k` prototypes.
    base_projections: Vec<f32>,
    /// `Ξᵀ·along` (k × B).
    along_projections: Vec<f32>,
    /// Per column: `‖base‖²`, `base·along`, `‖along‖²`, in f64.
    base_norm2: Vec<f64>,
    cross: Vec<f64>,
    along_norm2: Vec<f64>,
    /// Per block and step: the partial sum of the per-sample losses.
    block_losses: Vec<f64>,
}

/// FF+DD's view of the layer it trains: the layer (with its frozen, cached input batch) as a
/// black box evaluated forward at perturbed parameters — nothing else is reachable.
///
/// Exact shortcuts (allowed by ARCHITECTURE.md; in exact arithmetic the numbers are those of
/// separate physical passes at `ω ± εv`):
/// * `(W + tV)x + (b + t v_b) = (Wx + b) + t(Vx + v_b)`: `Wx + b` is computed once per step and
///   `Vx + v_b` once per direction, shared by `±ε`.
/// * Every local loss depends on a column `z` only through its goodness `ξ_c·z/‖z‖` (seed 000
///   eq. 4, 7). With `z = base + t·along`, `Ξᵀz = Ξᵀbase + t·Ξᵀalong` and
///   `‖z‖² = ‖base‖² + 2t·base·along + t²‖along‖²`, so both evaluations of a direction come
///   from one pass over `base` and `along`; the combination is done in f64, which makes the
///   loss difference of eq. 12 *more* accurate than rounding `base ± ε·along` to f32 first.
///
/// Work is split into blocks of [`COLUMN_BLOCK`] batch columns; with `Par::Rayon` the blocks
/// run in parallel, and per-block sums are added in block order, so the result does not depend
/// on the thread count.
pub struct LayerObjective<'a> {
    shape: DenseShape,
    params: &'a [f32],
    prepared: bool,
    input: LayerInput<'a>,
    target: LayerTarget<'a>,
    scratch: &'a mut LayerScratch,
    par: Par,
}

/// Block `i`'s columns: `(start, len)`.
fn block_columns(i: usize, batch: usize) -> (usize, usize) {
    let start = i * COLUMN_BLOCK;
    (start, COLUMN_BLOCK.min(batch - start))
}

/// `z ← W·x + b`, `projections ← Ξᵀ·z` for one block of columns.
fn forward_block(
    shape: DenseShape,
    params: &[f32],
    x: LayerInput<'_>,
    prototypes: MatRef<'_, f32>,
    z: &mut [f32],
    projections: &mut [f32],
) {
    let len = x.ncols();
    layer_forward_into(shape, params, x, z);
    matmul(
        MatMut::from_col_major(projections, prototypes.ncols(), len),
        Accum::Replace,
        prototypes.t(),
        MatRef::from_col_major(z, shape.outputs, len),
        1.0,
        Par::Seq,
    );
}

impl<'a> LayerObjective<'a> {
    /// The objective of one layer at parameters `params` on the batch `input` (in × B; dense, or
    /// sparse for the first layer on image data).
    /// `par` chooses whether column blocks run on rayon's pool (results are identical). Cheap:
    /// the shared work happens in [`PerturbedObjective::prepare`].
    pub fn new(
        shape: DenseShape,
        params: &'a [f32],
        input: impl Into<LayerInput<'a>>,
        target: LayerTarget<'a>,
        scratch: &'a mut LayerScratch,
        par: Par,
    ) -> Self {
        Self {
            shape,
            params,
            prepared: false,
            input: input.into(),
            target,
            scratch,
            par,
        }
    }
}

impl PerturbedObjective for LayerObjective<'_> {
    fn dim(&self) -> usize {
        self.shape.len()
    }

    /// `base = W·x + b`, `Ξᵀ·base` and `‖base‖²` per column, by blocks.
    fn prepare(&mut self) {
        if self.prepared {
            return;
        }
        self.prepared = true;
        let (shape, params, input, par) = (self.shape, self.params, self.input, self.par);
        let prototypes = self.target.prototypes();
        let scratch = &mut *self.scratch;
        let batch = input.ncols();
        let k = prototypes.ncols();
        for (v, len) in [
            (&mut scratch.base, shape.outputs * batch),
            (&mut scratch.along, shape.outputs * batch),
            (&mut scratch.base_projections, k * batch),
            (&mut scratch.along_projections, k * batch),
        ] {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        }
        for v in [&mut scratch.base_norm2, &mut scratch.cross, &mut scratch.along_norm2] {
            v.resize(batch, 0.0);
        }
        scratch.base[..shape.outputs * batch]
            .par_chunks_mut(COLUMN_BLOCK * shape.outputs)
            .zip(scratch.base_projections[..k * batch].par_chunks_mut(COLUMN_BLOCK * k))
            .zip(scratch.base_norm2.par_chunks_mut(COLUMN_BLOCK))
            .enumerate()
            .with_min_len(par.min_blocks_per_job())
            .for_each(|(i, ((z, proj), norm2))| {
                let (start, len) = block_columns(i, batch);
                forward_block(shape, params, input.columns(start, len), prototypes, z, proj);
                for (n, col) in norm2.iter_mut().zip(z.chunks_exact(shape.outputs)) {
                    *n = dot(col, col) as f64;
                }
            });
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        self.prepare();
        let (shape, input, target) = (self.shape, self.input, self.target);
        let s = &mut *self.scratch;
        let batch = input.ncols();
        let prototypes = target.prototypes();
        let k = prototypes.ncols();
        let nsteps = steps.len();
        s.block_losses.resize(batch.div_ceil(COLUMN_BLOCK) * nsteps, 0.0);
        let (base, base_projections, base_norm2) = (&s.base, &s.base_projections, &s.base_norm2);
        s.along[..shape.outputs * batch]
            .par_chunks_mut(COLUMN_BLOCK * shape.outputs)
            .zip(s.along_projections[..k * batch].par_chunks_mut(COLUMN_BLOCK * k))
            .zip(s.cross.par_chunks_mut(COLUMN_BLOCK))
            .zip(s.along_norm2.par_chunks_mut(COLUMN_BLOCK))
            .zip(s.block_losses.par_chunks_mut(nsteps))
            .enumerate()
            .with_min_len(self.par.min_blocks_per_job())
            .for_each(|(i, ((((a, pa), cross), a2), partial))| {
                let (start, len) = block_columns(i, batch);
                forward_block(shape, direction, input.columns(start, len), prototypes, a, pa);
                let b = &base.as_slice()[start * shape.outputs..(start + len) * shape.outputs];
                for (j, (bc, ac)) in b
                    .chunks_exact(shape.outputs)
                    .zip(a.chunks_exact(shape.outputs))
                    .enumerate()
                {
                    cross[j] = dot(bc, ac) as f64;
                    a2[j] = dot(ac, ac) as f64;
                }
                for (o, &t) in partial.iter_mut().zip(steps) {
                    let t = t as f64;
                    let mut sum = 0.0;
                    for j in 0..len {
                        let col = start + j;
                        let norm2 = base_norm2[col] + 2.0 * t * cross[j] + t * t * a2[j];
                        let inv = if norm2 > 0.0 { 1.0 / norm2.sqrt() } else { 0.0 };
                        let pb = &base_projections.as_slice()[col * k..(col + 1) * k];
                        let pa = &pa[j * k..(j + 1) * k];
                        sum += target.sample_loss(col, |c| (pb[c] as f64 + t * pa[c] as f64) * inv);
                    }
                    *o = sum;
                }
            });
        for (i, o) in out.iter_mut().enumerate() {
            let total: f64 = s.block_losses.chunks(nsteps).map(|p| p[i]).sum();
            *o = if batch == 0 { 0.0 } else { total / batch as f64 };
        }
    }
}

/// BP+DD's view of the whole network: every parameter perturbed at once, the global loss
/// evaluated forward (SPEC A8: "one global DD estimate over all parameters"). With
/// [`NetworkObjective::with_par`] each forward pass runs layer by layer in blocks of
/// [`COLUMN_BLOCK`] batch columns on the pool's threads ([`forward_by_blocks`]: the same bits
/// for any thread count); the loss is then summed over the whole batch as before.
pub struct NetworkObjective<'a> {
    base: &'a [f32],
    perturbed: &'a mut Mlp,
    input: LayerInput<'a>,
    target: GlobalTarget<'a>,
    buffers: &'a mut Vec<Mat>,
    par: Par,
}

impl<'a> NetworkObjective<'a> {
    /// `perturbed` is a scratch copy of the model whose parameters are overwritten with
    /// `base + t·d` for each evaluation.
    pub fn new(
        base: &'a [f32],
        perturbed: &'a mut Mlp,
        input: impl Into<LayerInput<'a>>,
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
            input: input.into(),
            target,
            buffers,
            par: Par::Seq,
        }
    }

    /// Runs the forward passes' column blocks on `par`'s threads (default [`Par::Seq`]); the
    /// losses do not change.
    pub fn with_par(mut self, par: Par) -> Self {
        self.par = par;
        self
    }
}

/// BP+DD's forward pass: [`Mlp::forward_in_blocks`] without taps, in blocks of
/// [`COLUMN_BLOCK`] batch columns on `par`'s threads, or the whole batch as one block when
/// sequential (128-column blocks cost a 1-thread BP+DD epoch 2–3 %). The same bits either way.
pub fn forward_by_blocks(mlp: &Mlp, x: LayerInput<'_>, buffers: &mut Vec<Mat>, par: Par) {
    let block_len = if par.is_parallel() { COLUMN_BLOCK } else { usize::MAX };
    mlp.forward_in_blocks(x, buffers, block_len, par, |_, _| {});
}

impl PerturbedObjective for NetworkObjective<'_> {
    fn dim(&self) -> usize {
        self.base.len()
    }

    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        for (o, &t) in out.iter_mut().zip(steps) {
            add_scaled(self.perturbed.params_mut(), self.base, t, direction);
            forward_by_blocks(self.perturbed, self.input, self.buffers, self.par);
            *o = self.target.loss(self.buffers.last().expect("at least one layer"));
        }
    }
}

/// FF+AD's gradient source: the exact gradient of one layer's own loss with respect to its
/// own parameters (`[W | b]` layout), by reverse mode on `tape`. Returns the loss.
///
/// The batch `x` is moved into the tape, not copied ([`Tape::constant_swap`]): afterwards `x`
/// holds a scratch buffer of unspecified shape and contents.
pub fn layer_gradient_autodiff(
    tape: &mut Tape,
    shape: DenseShape,
    params: &[f32],
    x: &mut Mat,
    target: LayerTarget<'_>,
    grad: &mut [f32],
) -> f64 {
    let nw = shape.outputs * shape.inputs;
    tape.reset();
    let xv = tape.constant_swap(x);
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
/// back-propagation on `tape`. Returns the loss. `x` is moved into the tape as in
/// [`layer_gradient_autodiff`] (unspecified afterwards).
pub fn network_gradient_autodiff(
    tape: &mut Tape,
    shapes: &[DenseShape],
    params: &[f32],
    x: &mut Mat,
    target: GlobalTarget<'_>,
    grad: &mut [f32],
) -> f64 {
    tape.reset();
    let mut h = tape.constant_swap(x);
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
    }
    let loss = target.on_tape(tape, h);
    let value = tape.scalar(loss);
    tape.backward(loss);
    let mut offset = 0;
    // The tape's parameters are each layer's (W, b), in layer order.
    for (s, wb) in shapes.iter().zip(tape.params().chunks_exact(2)) {
        let (w, bias) = (wb[0], wb[1]);
        let nw = s.outputs * s.inputs;
        let g = &mut grad[offset..offset + s.len()];
        offset += s.len();
        g[..nw].copy_from_slice(tape.grad(w).expect("parameter gradient").as_slice());
        g[nw..].copy_from_slice(tape.grad(bias).expect("parameter gradient").as_slice());
    }
    value
}
