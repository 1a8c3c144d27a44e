//! The reverse-mode tape: a Wengert list of `f32` matrix nodes with hand-written
//! vector-Jacobian products.

use insitu_linalg::{matmul, set_shape, Accum, Mat, MatMut, MatRef, Par};

use crate::loss::{self, CosineScratch, GoodnessGrad};

/// A handle to one node of a [`Tape`] (valid until the tape's next [`Tape::reset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(usize);

/// What produced a node, with the indices of its inputs (always smaller than its own index).
#[derive(Clone, Copy, Debug)]
enum Op {
    Constant,
    Param,
    MatMul { w: usize, x: usize },
    AddBias { z: usize, b: usize },
    Relu { z: usize },
    CosineGoodness { z: usize },
    MarginLoss { z: usize, margin: f32 },
    Eq5Loss { z: usize },
    SquaredCosineLoss { z: usize },
    SoftmaxCrossEntropy { logits: usize },
    Mse { pred: usize },
}

/// Data a node keeps for its backward pass, copied in at record time (buffers reused across
/// [`Tape::reset`]).
#[derive(Debug, Default)]
struct Aux {
    /// Prototypes (`width × classes`, or `width × 1` for the regression prototype) or MSE targets.
    mat: Mat,
    labels: Vec<u32>,
    targets: Vec<f32>,
    /// A cosine loss node's goodness matrix `Ξᵀz/‖z‖` (`classes × batch`), kept from the
    /// forward pass for the backward one.
    goodness: Mat,
}

/// Reverse-mode automatic differentiation over `f32` matrices (the BP+AD and FF+AD baselines).
///
/// Record a computation with [`Tape::constant`] / [`Tape::param`] and the op methods, each
/// returning a [`Var`]; call [`Tape::backward`] on a `1 × 1` loss node; read gradients with
/// [`Tape::grad`]. Activations are `width × batch` with one sample per column.
///
/// **Reuse.** [`Tape::reset`] forgets the nodes but keeps every buffer (values, gradients,
/// copied prototypes / labels / targets), and a node reuses the buffers of the node that had the
/// same index before the reset. A training loop that records the same computation every step
/// therefore does not allocate after its first step; a step with a different batch size reuses
/// the buffers too as long as they are large enough (the larger batch first).
///
/// **Cost.** Backward skips every node no parameter depends on: the input-side product
/// `Wᵀ·dZ` of a first layer whose input is a constant is never formed. All products go through
/// [`insitu_linalg::matmul`] with transposed views, no transposed copies.
///
/// **Panics.** Shape mismatches between recorded operands, a [`Var`] that does not belong to
/// the tape's current recording, and `backward` on a non-scalar node are programming errors and
/// panic with a message naming the shapes.
#[derive(Debug, Default)]
pub struct Tape {
    ops: Vec<Op>,
    needs_grad: Vec<bool>,
    grad_ready: Vec<bool>,
    loss_values: Vec<f64>,
    /// The parameter leaves since the last reset, in the order they were made.
    params: Vec<Var>,
    values: Vec<Mat>,
    grads: Vec<Mat>,
    aux: Vec<Aux>,
    cosine: CosineScratch,
    par: Par,
}

/// `(nodes before i, node i)` of a pool, for reading inputs while writing the output.
fn split(pool: &mut [Mat], i: usize) -> (&[Mat], &mut Mat) {
    let (lo, hi) = pool.split_at_mut(i);
    (lo, &mut hi[0])
}

/// `(node i read-only, &mut node k)` for `k < i`.
fn upstream_and(pool: &mut [Mat], i: usize, k: usize) -> (&Mat, &mut Mat) {
    debug_assert!(k < i);
    let (lo, hi) = pool.split_at_mut(i);
    (&hi[0], &mut lo[k])
}

impl Tape {
    /// An empty tape; products are sequential ([`Par::Seq`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the parallelism passed to every matrix product (default [`Par::Seq`]).
    pub fn set_par(&mut self, par: Par) {
        self.par = par;
    }

    /// Forgets all nodes (every [`Var`] becomes invalid) but keeps all buffers for reuse.
    pub fn reset(&mut self) {
        self.ops.clear();
        self.needs_grad.clear();
        self.grad_ready.clear();
        self.loss_values.clear();
        self.params.clear();
    }

    /// The parameters ([`Tape::param`], [`Tape::param_slice`]) made since the last reset, in the
    /// order they were made: a network's gradients can be read back without the caller keeping
    /// a list of its own (which would allocate every step).
    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Number of nodes recorded since the last reset.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no node has been recorded since the last reset.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends a node, making sure its buffers exist; returns its index.
    fn push(&mut self, op: Op, needs_grad: bool) -> usize {
        let i = self.ops.len();
        self.ops.push(op);
        self.needs_grad.push(needs_grad);
        self.grad_ready.push(false);
        self.loss_values.push(f64::NAN);
        if self.values.len() <= i {
            self.values.push(Mat::zeros(0, 0));
            self.grads.push(Mat::zeros(0, 0));
            self.aux.push(Aux::default());
        }
        i
    }

    fn idx(&self, v: Var) -> usize {
        assert!(
            v.0 < self.ops.len(),
            "Var({}) does not belong to this tape's current recording of {} nodes (reset since?)",
            v.0,
            self.ops.len()
        );
        v.0
    }

    fn leaf(&mut self, data: MatRef<'_, f32>, op: Op, needs_grad: bool) -> Var {
        let i = self.push(op, needs_grad);
        let dst = &mut self.values[i];
        set_shape(dst, data.nrows(), data.ncols());
        for (j, mut col) in dst.column_iter_mut().enumerate() {
            for (r, d) in col.iter_mut().enumerate() {
                *d = data.get(r, j);
            }
        }
        Var(i)
    }

    fn leaf_slice(&mut self, data: &[f32], rows: usize, cols: usize, op: Op, needs_grad: bool) -> Var {
        assert_eq!(
            data.len(),
            rows * cols,
            "leaf of {rows}×{cols} from a slice of {} elements",
            data.len()
        );
        let i = self.push(op, needs_grad);
        let dst = &mut self.values[i];
        set_shape(dst, rows, cols);
        dst.as_mut_slice().copy_from_slice(data);
        if matches!(op, Op::Param) {
            self.params.push(Var(i));
        }
        Var(i)
    }

    /// A leaf holding a copy of `m` whose gradient is not wanted (inputs, fixed matrices).
    pub fn constant(&mut self, m: &Mat) -> Var {
        self.leaf_slice(m.as_slice(), m.nrows(), m.ncols(), Op::Constant, false)
    }

    /// A constant that takes over `m`'s storage instead of copying it (a mini-batch gathered
    /// for this step): `m` receives the leaf's previous buffer in exchange, whose shape and
    /// contents are unspecified (scratch for the next gather). No copy; after the first two
    /// steps no allocation either, since the two buffers alternate.
    pub fn constant_swap(&mut self, m: &mut Mat) -> Var {
        let i = self.push(Op::Constant, false);
        std::mem::swap(&mut self.values[i], m);
        Var(i)
    }

    /// A constant from a column-major slice of `rows × cols` elements (e.g. a contiguous run of
    /// sample columns of a larger matrix).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn constant_slice(&mut self, data: &[f32], rows: usize, cols: usize) -> Var {
        self.leaf_slice(data, rows, cols, Op::Constant, false)
    }

    /// A constant copied from a strided view (e.g. a transposed or sub-matrix view).
    pub fn constant_view(&mut self, m: MatRef<'_, f32>) -> Var {
        self.leaf(m, Op::Constant, false)
    }

    /// A leaf holding a copy of `m` whose gradient is wanted (a parameter).
    pub fn param(&mut self, m: &Mat) -> Var {
        self.leaf_slice(m.as_slice(), m.nrows(), m.ncols(), Op::Param, true)
    }

    /// A parameter from a column-major slice of `rows × cols` elements (a layer's flat
    /// parameter vector, for instance).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn param_slice(&mut self, data: &[f32], rows: usize, cols: usize) -> Var {
        self.leaf_slice(data, rows, cols, Op::Param, true)
    }

    /// `W·x` (`out × in` times `in × batch`). Backward: `dW = dZ·xᵀ`, `dx = Wᵀ·dZ`, both through
    /// [`matmul`] with transposed views.
    ///
    /// # Panics
    /// If the inner dimensions differ.
    pub fn matmul(&mut self, w: Var, x: Var) -> Var {
        let (w, x) = (self.idx(w), self.idx(x));
        let (m, k) = self.values[w].shape();
        let (k2, n) = self.values[x].shape();
        assert_eq!(k, k2, "Tape::matmul: W is {m}×{k} but x is {k2}×{n}");
        let ng = self.needs_grad[w] || self.needs_grad[x];
        let i = self.push(Op::MatMul { w, x }, ng);
        let par = self.par;
        let (lo, out) = split(&mut self.values, i);
        set_shape(out, m, n);
        matmul(
            MatMut::from(out),
            Accum::Replace,
            MatRef::from(&lo[w]),
            MatRef::from(&lo[x]),
            1.0,
            par,
        );
        Var(i)
    }

    /// `z + b·1ᵀ`: the `out × 1` bias `b` added to every column of `z` (`out × batch`).
    ///
    /// # Panics
    /// If `b` is not `out × 1`.
    pub fn add_bias(&mut self, z: Var, b: Var) -> Var {
        let (z, b) = (self.idx(z), self.idx(b));
        let (r, c) = self.values[z].shape();
        assert_eq!(
            self.values[b].shape(),
            (r, 1),
            "Tape::add_bias: z is {r}×{c} but b is {:?}",
            self.values[b].shape()
        );
        let ng = self.needs_grad[z] || self.needs_grad[b];
        let i = self.push(Op::AddBias { z, b }, ng);
        let (lo, out) = split(&mut self.values, i);
        set_shape(out, r, c);
        let bias = lo[b].as_slice();
        let zs = lo[z].as_slice();
        for (oc, zc) in out
            .as_mut_slice()
            .chunks_exact_mut(r.max(1))
            .zip(zs.chunks_exact(r.max(1)))
        {
            for ((o, &zv), &bv) in oc.iter_mut().zip(zc).zip(bias) {
                *o = zv + bv;
            }
        }
        Var(i)
    }

    /// Element-wise `max(z, 0)`; its derivative at 0 is taken as 0.
    pub fn relu(&mut self, z: Var) -> Var {
        let z = self.idx(z);
        let ng = self.needs_grad[z];
        let i = self.push(Op::Relu { z }, ng);
        let (lo, out) = split(&mut self.values, i);
        set_shape(out, lo[z].nrows(), lo[z].ncols());
        for (o, &v) in out.as_mut_slice().iter_mut().zip(lo[z].as_slice()) {
            *o = insitu_linalg::relu(v);
        }
        Var(i)
    }

    /// Copies the prototypes (or a `width × 1` prototype) into node `i`'s aux buffer.
    fn store_prototypes(&mut self, i: usize, data: &[f32], rows: usize, cols: usize) {
        let aux = &mut self.aux[i];
        set_shape(&mut aux.mat, rows, cols);
        aux.mat.as_mut_slice().copy_from_slice(data);
    }

    fn store_labels(&mut self, i: usize, labels: &[u32]) {
        let l = &mut self.aux[i].labels;
        l.clear();
        l.extend_from_slice(labels);
    }

    /// Writes a scalar loss into node `i` (value `1 × 1` in `f32`, exact `f64` kept aside).
    fn set_loss(&mut self, i: usize, loss: f64) {
        self.loss_values[i] = loss;
        let v = &mut self.values[i];
        set_shape(v, 1, 1);
        v[(0, 0)] = loss as f32;
    }

    /// Cosine goodness `G(c) = ξ_c·z/‖z‖` (`classes × batch`), [`loss::cosine_goodness`]
    /// (seed 000 eq. 4). Backward: `dz = (I − ẑẑᵀ)Ξ·dG/‖z‖` per column (0 for a zero column).
    pub fn cosine_goodness(&mut self, z: Var, prototypes: &Mat) -> Var {
        let z = self.idx(z);
        let ng = self.needs_grad[z];
        let i = self.push(Op::CosineGoodness { z }, ng);
        self.store_prototypes(i, prototypes.as_slice(), prototypes.nrows(), prototypes.ncols());
        let (lo, out) = split(&mut self.values, i);
        set_shape(out, prototypes.ncols(), lo[z].ncols());
        loss::cosine_goodness(&lo[z], &self.aux[i].mat, out);
        Var(i)
    }

    /// Margin loss of seed 000 eq. 16 as a `1 × 1` node; forward value = [`loss::margin_loss`].
    pub fn margin_loss(&mut self, z: Var, prototypes: &Mat, labels: &[u32], margin: f32) -> Var {
        let z = self.idx(z);
        let ng = self.needs_grad[z];
        let i = self.push(Op::MarginLoss { z, margin }, ng);
        self.store_prototypes(i, prototypes.as_slice(), prototypes.nrows(), prototypes.ncols());
        self.store_labels(i, labels);
        let aux = &mut self.aux[i];
        set_shape(&mut aux.goodness, aux.mat.ncols(), self.values[z].ncols());
        loss::cosine_goodness(&self.values[z], &aux.mat, &mut aux.goodness);
        let l = loss::margin_loss_of_goodness(&aux.goodness, &aux.labels, margin);
        self.set_loss(i, l);
        Var(i)
    }

    /// Eq. 5 loss (to minimise) as a `1 × 1` node; forward value = [`loss::eq5_loss`].
    pub fn eq5_loss(&mut self, z: Var, prototypes: &Mat, labels: &[u32]) -> Var {
        let z = self.idx(z);
        let ng = self.needs_grad[z];
        let i = self.push(Op::Eq5Loss { z }, ng);
        self.store_prototypes(i, prototypes.as_slice(), prototypes.nrows(), prototypes.ncols());
        self.store_labels(i, labels);
        let aux = &mut self.aux[i];
        set_shape(&mut aux.goodness, aux.mat.ncols(), self.values[z].ncols());
        loss::cosine_goodness(&self.values[z], &aux.mat, &mut aux.goodness);
        let l = loss::eq5_loss_of_goodness(&aux.goodness, &aux.labels);
        self.set_loss(i, l);
        Var(i)
    }

    /// Regression loss of seed 000 eq. 7–8 as a `1 × 1` node; forward value =
    /// [`loss::squared_cosine_loss`].
    pub fn squared_cosine_loss(&mut self, z: Var, prototype: &[f32], targets: &[f32]) -> Var {
        let z = self.idx(z);
        let ng = self.needs_grad[z];
        let i = self.push(Op::SquaredCosineLoss { z }, ng);
        self.store_prototypes(i, prototype, prototype.len(), 1);
        let t = &mut self.aux[i].targets;
        t.clear();
        t.extend_from_slice(targets);
        let aux = &mut self.aux[i];
        set_shape(&mut aux.goodness, 1, self.values[z].ncols());
        loss::cosine_goodness(&self.values[z], &aux.mat, &mut aux.goodness);
        let l = loss::squared_cosine_loss_of_goodness(&aux.goodness, &aux.targets);
        self.set_loss(i, l);
        Var(i)
    }

    /// Softmax cross-entropy of `logits` (`classes × batch`) as a `1 × 1` node; forward value =
    /// [`loss::softmax_cross_entropy`]. Backward: `(softmax − onehot)/B`.
    pub fn softmax_cross_entropy(&mut self, logits: Var, labels: &[u32]) -> Var {
        let logits = self.idx(logits);
        let ng = self.needs_grad[logits];
        let i = self.push(Op::SoftmaxCrossEntropy { logits }, ng);
        self.store_labels(i, labels);
        let l = loss::softmax_cross_entropy(&self.values[logits], &self.aux[i].labels);
        self.set_loss(i, l);
        Var(i)
    }

    /// Batch-mean of the summed squared error as a `1 × 1` node; forward value = [`loss::mse`].
    pub fn mse(&mut self, pred: Var, targets: &Mat) -> Var {
        let pred = self.idx(pred);
        let ng = self.needs_grad[pred];
        let i = self.push(Op::Mse { pred }, ng);
        self.store_prototypes(i, targets.as_slice(), targets.nrows(), targets.ncols());
        let l = loss::mse(&self.values[pred], &self.aux[i].mat);
        self.set_loss(i, l);
        Var(i)
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> &Mat {
        &self.values[self.idx(v)]
    }

    /// The value of a `1 × 1` node in `f64`: for a loss node, exactly the `f64` the loss
    /// function returned (the node's `f32` value is its rounding).
    ///
    /// # Panics
    /// If the node is not `1 × 1`.
    pub fn scalar(&self, v: Var) -> f64 {
        let i = self.idx(v);
        assert_eq!(self.values[i].shape(), (1, 1), "Tape::scalar: node is not 1×1");
        if self.loss_values[i].is_nan() {
            self.values[i][(0, 0)] as f64
        } else {
            self.loss_values[i]
        }
    }

    /// Marks node `k`'s gradient buffer as in use with the shape of its value; returns whether
    /// this is the first contribution (which then overwrites instead of adding).
    fn touch(grads: &mut [Mat], ready: &mut [bool], values: &[Mat], k: usize) -> bool {
        if ready[k] {
            return false;
        }
        ready[k] = true;
        set_shape(&mut grads[k], values[k].nrows(), values[k].ncols());
        true
    }

    /// Back-propagates from the scalar node `loss`: afterwards [`Tape::grad`] gives `∂loss/∂v`
    /// for every parameter (zero for parameters the loss does not depend on) and every
    /// intermediate node on a path from a parameter to the loss.
    ///
    /// # Panics
    /// If `loss` is not `1 × 1` (a programming error).
    pub fn backward(&mut self, loss: Var) {
        let l = self.idx(loss);
        assert_eq!(
            self.values[l].shape(),
            (1, 1),
            "Tape::backward: the loss must be a 1×1 node, this one is {:?}",
            self.values[l].shape()
        );
        let Tape {
            ops,
            needs_grad,
            grad_ready,
            values,
            grads,
            aux,
            cosine,
            par,
            ..
        } = self;
        let n = ops.len();
        grad_ready.iter_mut().for_each(|r| *r = false);
        if needs_grad[l] {
            grad_ready[l] = true;
            set_shape(&mut grads[l], 1, 1);
            grads[l][(0, 0)] = 1.0;
        }
        for i in (0..=l).rev() {
            if !needs_grad[i] || !grad_ready[i] {
                continue;
            }
            match ops[i] {
                Op::Constant | Op::Param => {}
                Op::MatMul { w, x } => {
                    if needs_grad[w] {
                        let first = Self::touch(grads, grad_ready, values, w);
                        let (dz, dw) = upstream_and(grads, i, w);
                        let acc = if first { Accum::Replace } else { Accum::Add };
                        let xt = MatRef::from(&values[x]).t();
                        matmul(MatMut::from(dw), acc, MatRef::from(dz), xt, 1.0, *par);
                    }
                    if needs_grad[x] {
                        let first = Self::touch(grads, grad_ready, values, x);
                        let (dz, dx) = upstream_and(grads, i, x);
                        let acc = if first { Accum::Replace } else { Accum::Add };
                        let wt = MatRef::from(&values[w]).t();
                        matmul(MatMut::from(dx), acc, wt, MatRef::from(dz), 1.0, *par);
                    }
                }
                Op::AddBias { z, b } => {
                    if needs_grad[z] {
                        let first = Self::touch(grads, grad_ready, values, z);
                        let (up, dz) = upstream_and(grads, i, z);
                        let dz = dz.as_mut_slice();
                        if first {
                            dz.copy_from_slice(up.as_slice());
                        } else {
                            dz.iter_mut().zip(up.as_slice()).for_each(|(d, u)| *d += u);
                        }
                    }
                    if needs_grad[b] {
                        let first = Self::touch(grads, grad_ready, values, b);
                        let (up, db) = upstream_and(grads, i, b);
                        let db = db.as_mut_slice();
                        if first {
                            db.iter_mut().for_each(|d| *d = 0.0);
                        }
                        for col in up.as_slice().chunks_exact(db.len().max(1)) {
                            for (d, &u) in db.iter_mut().zip(col) {
                                *d += u;
                            }
                        }
                    }
                }
                Op::Relu { z } => {
                    if needs_grad[z] {
                        let first = Self::touch(grads, grad_ready, values, z);
                        let (up, dz) = upstream_and(grads, i, z);
                        let out = &values[i];
                        let dz = dz.as_mut_slice();
                        for ((d, &u), &o) in dz.iter_mut().zip(up.as_slice()).zip(out.as_slice()) {
                            let g = if o > 0.0 { u } else { 0.0 };
                            if first {
                                *d = g;
                            } else {
                                *d += g;
                            }
                        }
                    }
                }
                Op::CosineGoodness { z } => {
                    if needs_grad[z] {
                        let first = Self::touch(grads, grad_ready, values, z);
                        let (up, dz) = upstream_and(grads, i, z);
                        let kind = GoodnessGrad::Upstream { dg: up };
                        let goodness = &values[i];
                        loss::cosine_backward(&values[z], &aux[i].mat, goodness, kind, 1.0, dz, first, cosine);
                    }
                }
                Op::MarginLoss { z, .. } | Op::Eq5Loss { z } | Op::SquaredCosineLoss { z } => {
                    let kind = match ops[i] {
                        Op::MarginLoss { margin, .. } => GoodnessGrad::Margin {
                            labels: &aux[i].labels,
                            margin,
                        },
                        Op::Eq5Loss { .. } => GoodnessGrad::Eq5 { labels: &aux[i].labels },
                        _ => GoodnessGrad::SquaredCosine {
                            targets: &aux[i].targets,
                        },
                    };
                    let first = Self::touch(grads, grad_ready, values, z);
                    let (up, dz) = upstream_and(grads, i, z);
                    let (prototypes, goodness) = (&aux[i].mat, &aux[i].goodness);
                    loss::cosine_backward(&values[z], prototypes, goodness, kind, up[(0, 0)], dz, first, cosine);
                }
                Op::SoftmaxCrossEntropy { logits } => {
                    let first = Self::touch(grads, grad_ready, values, logits);
                    let (up, dl) = upstream_and(grads, i, logits);
                    loss::softmax_cross_entropy_backward(&values[logits], &aux[i].labels, up[(0, 0)], dl, first);
                }
                Op::Mse { pred } => {
                    let first = Self::touch(grads, grad_ready, values, pred);
                    let (up, dp) = upstream_and(grads, i, pred);
                    loss::mse_backward(&values[pred], &aux[i].mat, up[(0, 0)], dp, first);
                }
            }
        }
        // Parameters the loss does not depend on have gradient zero.
        for k in 0..n {
            if matches!(ops[k], Op::Param) && !grad_ready[k] {
                Self::touch(grads, grad_ready, values, k);
                grads[k].fill(0.0);
            }
        }
    }

    /// The gradient of the last [`Tape::backward`]'s loss with respect to `v`: `Some` for every
    /// parameter and for intermediate nodes that lie between a parameter and the loss, `None`
    /// for constants and nodes no parameter influences (or before any backward).
    pub fn grad(&self, v: Var) -> Option<&Mat> {
        let i = self.idx(v);
        if self.grad_ready[i] {
            Some(&self.grads[i])
        } else {
            None
        }
    }
}
