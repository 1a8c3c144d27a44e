//! The MLP: dense layers with biases and ReLU, all parameters in one flat vector so every
//! gradient source and step rule can work on one layer (FF) or on the whole network (BP).

use insitu_linalg::{derive_seed, matmul, matmul_sparse, rng, set_shape, Accum, Mat, MatMut, MatRef, Par, SparseRef};
use rand::Rng;
use rayon::prelude::*;

/// Shape of one dense layer `z = W·x + b`, `W: out × in`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseShape {
    /// Input features.
    pub inputs: usize,
    /// Output units.
    pub outputs: usize,
}

impl DenseShape {
    /// Parameter count `out·in + out`.
    pub fn len(&self) -> usize {
        self.outputs * self.inputs + self.outputs
    }
    /// Never true for a constructed layer (both sizes ≥ 1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A multilayer perceptron `x → ReLU(W₁x + b₁) → … → W_L h + b_L` (no activation after the
/// last layer). Parameters of layer `l` are the contiguous slice
/// `[W_l column-major (out·in) | b_l (out)]` of one flat vector, layers in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    shapes: Vec<DenseShape>,
    offsets: Vec<usize>,
    params: Vec<f32>,
}

/// Layer `l`'s weight `W` (out × in) and bias `b` viewed inside a layer's parameter slice.
pub fn split_dense(shape: DenseShape, params: &[f32]) -> (MatRef<'_, f32>, &[f32]) {
    let nw = shape.outputs * shape.inputs;
    (
        MatRef::from_col_major(&params[..nw], shape.outputs, shape.inputs),
        &params[nw..nw + shape.outputs],
    )
}

/// A layer's input batch (in × B): dense columns, or the non-zero entries of sparse ones (the
/// first layer on image data, see [`insitu_linalg::matmul_sparse`]). Both give `W·x + b`; the
/// sparse form skips the exact zeros, so it computes the same values in another order.
#[derive(Clone, Copy, Debug)]
pub enum LayerInput<'a> {
    /// Dense columns.
    Dense(MatRef<'a, f32>),
    /// Sparse columns.
    Sparse(SparseRef<'a>),
}

impl<'a> LayerInput<'a> {
    /// Features per sample.
    pub fn nrows(&self) -> usize {
        match self {
            LayerInput::Dense(x) => x.nrows(),
            LayerInput::Sparse(x) => x.nrows(),
        }
    }

    /// Samples.
    pub fn ncols(&self) -> usize {
        match self {
            LayerInput::Dense(x) => x.ncols(),
            LayerInput::Sparse(x) => x.ncols(),
        }
    }

    /// Samples `start..start + len`.
    pub fn columns(&self, start: usize, len: usize) -> LayerInput<'a> {
        match *self {
            LayerInput::Dense(x) => LayerInput::Dense(x.submatrix(0, start, x.nrows(), len)),
            LayerInput::Sparse(x) => LayerInput::Sparse(x.subcolumns(start, len)),
        }
    }
}

impl<'a> From<MatRef<'a, f32>> for LayerInput<'a> {
    fn from(x: MatRef<'a, f32>) -> Self {
        LayerInput::Dense(x)
    }
}

/// `z ← W·x + b` for either form of input ([`LayerInput`]) into a column-major slice of
/// `out × B` values, without allocating: [`dense_forward_into`], or the bias followed by
/// [`insitu_linalg::matmul_sparse`].
///
/// # Panics
/// If `z.len()` is not `shape.outputs · x.ncols()`.
pub fn layer_forward_into(shape: DenseShape, params: &[f32], x: LayerInput<'_>, z: &mut [f32]) {
    match x {
        LayerInput::Dense(x) => dense_forward_into(shape, params, x, z),
        LayerInput::Sparse(x) => {
            let (w, b) = split_dense(shape, params);
            for col in z.chunks_exact_mut(shape.outputs) {
                col.copy_from_slice(b);
            }
            matmul_sparse(MatMut::from_col_major(z, shape.outputs, x.ncols()), Accum::Add, w, x);
        }
    }
}

/// `z ← W·x + b` for a batch `x` (in × B) into `z` (out × B), through the one product function.
pub fn dense_forward(shape: DenseShape, params: &[f32], x: MatRef<'_, f32>, z: &mut Mat) {
    assert_eq!(z.shape(), (shape.outputs, x.ncols()), "dense_forward: output shape");
    dense_forward_into(shape, params, x, z.as_mut_slice());
}

/// [`dense_forward`] into a column-major slice of `out × B` values (a block of a larger
/// matrix, for instance), without allocating.
///
/// # Panics
/// If `z.len()` is not `shape.outputs · x.ncols()`.
pub fn dense_forward_into(shape: DenseShape, params: &[f32], x: MatRef<'_, f32>, z: &mut [f32]) {
    let (w, b) = split_dense(shape, params);
    for col in z.chunks_exact_mut(shape.outputs) {
        col.copy_from_slice(b);
    }
    matmul(
        MatMut::from_col_major(z, shape.outputs, x.ncols()),
        Accum::Add,
        w,
        x,
        1.0,
        Par::Seq,
    );
}

/// In-place ReLU ([`insitu_linalg::relu`]: a NaN passes through to the loss).
pub fn relu_in_place(z: &mut [f32]) {
    z.iter_mut().for_each(|v| *v = insitu_linalg::relu(*v));
}

impl Mlp {
    /// Layers of the given widths `[in, h₁, …, out]`, initialised as PyTorch's `nn.Linear`
    /// does (the papers' code is PyTorch; SPEC leaves init unstated, this is the **Reading**):
    /// `W, b ~ U(−1/√in, 1/√in)`, each layer from its own seeded stream.
    pub fn new(widths: &[usize], seed: u64) -> Self {
        assert!(
            widths.len() >= 2 && widths.iter().all(|&w| w > 0),
            "Mlp::new: widths {widths:?}"
        );
        let shapes: Vec<DenseShape> = widths
            .windows(2)
            .map(|w| DenseShape {
                inputs: w[0],
                outputs: w[1],
            })
            .collect();
        let mut offsets = vec![0];
        for s in &shapes {
            offsets.push(offsets.last().unwrap() + s.len());
        }
        let mut params = vec![0.0f32; *offsets.last().unwrap()];
        for (l, s) in shapes.iter().enumerate() {
            let bound = 1.0 / (s.inputs as f32).sqrt();
            let mut g = rng(derive_seed(seed, &[0x1417, l as u64]));
            for p in &mut params[offsets[l]..offsets[l + 1]] {
                *p = g.random_range(-bound..bound);
            }
        }
        Self {
            shapes,
            offsets,
            params,
        }
    }

    /// The MLP with the given layers, in order: `(W_l, b_l)` with `W_l` of shape
    /// `outputs × inputs` and `b_l` of length `outputs` (layer `l` computes `W_l·a + b_l`);
    /// the network [`crate::TrainedNetwork::mlp`] held, e.g. read back from the `.npy` files
    /// `insitu train --weights` writes. Errors (naming the layer) when a layer is empty, a bias
    /// does not match its weight or a layer does not take the previous one's outputs.
    pub fn from_layers(layers: &[(Mat, Vec<f32>)]) -> Result<Mlp, String> {
        if layers.is_empty() {
            return Err("an MLP needs at least one layer".into());
        }
        let mut widths = vec![layers[0].0.ncols()];
        for (l, (w, b)) in layers.iter().enumerate() {
            let (outputs, inputs) = w.shape();
            if outputs == 0 || inputs == 0 {
                return Err(format!("layer {}: an empty {outputs} × {inputs} weight", l + 1));
            }
            if inputs != *widths.last().expect("starts with the input width") {
                return Err(format!(
                    "layer {}: takes {inputs} inputs but layer {} has {} outputs",
                    l + 1,
                    l,
                    widths.last().expect("non-empty")
                ));
            }
            if b.len() != outputs {
                return Err(format!(
                    "layer {}: a bias of {} values for {outputs} outputs",
                    l + 1,
                    b.len()
                ));
            }
            widths.push(outputs);
        }
        let mut mlp = Mlp::new(&widths, 0);
        for (l, (w, b)) in layers.iter().enumerate() {
            let nw = w.len();
            let p = mlp.layer_params_mut(l);
            p[..nw].copy_from_slice(w.as_slice());
            p[nw..].copy_from_slice(b);
        }
        Ok(mlp)
    }

    /// Number of dense layers.
    pub fn num_layers(&self) -> usize {
        self.shapes.len()
    }
    /// Shapes of the layers.
    pub fn shapes(&self) -> &[DenseShape] {
        &self.shapes
    }
    /// All parameters (flat).
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// All parameters (flat), mutable.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    /// Layer `l`'s parameters.
    pub fn layer_params(&self, l: usize) -> &[f32] {
        &self.params[self.offsets[l]..self.offsets[l + 1]]
    }
    /// Layer `l`'s parameters, mutable.
    pub fn layer_params_mut(&mut self, l: usize) -> &mut [f32] {
        &mut self.params[self.offsets[l]..self.offsets[l + 1]]
    }
    /// Offset of layer `l` in the flat vector.
    pub fn offset(&self, l: usize) -> usize {
        self.offsets[l]
    }

    /// Forward a batch `x` (in × B, dense or sparse), calling `tap(l, z_l)` with every layer's
    /// pre-activation.
    /// `buffers` holds one matrix per layer (resized on first use, reused after).
    pub fn forward_taps<'x>(&self, x: impl Into<LayerInput<'x>>, buffers: &mut Vec<Mat>, tap: impl FnMut(usize, &Mat)) {
        self.forward_in_blocks(x, buffers, usize::MAX, Par::Seq, tap);
    }

    /// [`Mlp::forward_taps`] with each layer's product computed in blocks of `block_len` batch
    /// columns, on `par`'s threads (`tap` and the ReLU follow a layer's blocks): **the same bits**
    /// for any `block_len` and thread count, since a column of a layer's output depends only on
    /// the same column of its input — every product keeps each column's order of sums whatever
    /// the column count (`insitu_linalg::matmul`, `matmul_sparse`) and ReLU is elementwise
    /// (`tests/gradients.rs` compares blocks with the whole batch, dense and sparse, on 1 and 2
    /// threads).
    pub fn forward_in_blocks<'x>(
        &self,
        x: impl Into<LayerInput<'x>>,
        buffers: &mut Vec<Mat>,
        block_len: usize,
        par: Par,
        mut tap: impl FnMut(usize, &Mat),
    ) {
        let x = x.into();
        let b = x.ncols();
        let block_len = block_len.clamp(1, b.max(1));
        buffers.resize_with(self.num_layers(), || Mat::zeros(0, 0));
        for l in 0..self.num_layers() {
            let s = self.shapes[l];
            let params = self.layer_params(l);
            let (before, rest) = buffers.split_at_mut(l);
            let z = &mut rest[0];
            // Overwritten below; an epoch's short last batch keeps the allocation.
            set_shape(z, s.outputs, b);
            let previous = before.last().map(MatRef::from);
            z.as_mut_slice()
                .par_chunks_mut(block_len * s.outputs)
                .enumerate()
                .with_min_len(par.min_blocks_per_job())
                .for_each(|(i, block)| {
                    let (start, len) = (i * block_len, block.len() / s.outputs);
                    let input = match previous {
                        None => x.columns(start, len),
                        Some(p) => LayerInput::Dense(p.submatrix(0, start, p.nrows(), len)),
                    };
                    layer_forward_into(s, params, input, block);
                });
            tap(l, z);
            if l + 1 < self.num_layers() {
                z.as_mut_slice()
                    .par_chunks_mut(block_len * s.outputs)
                    .with_min_len(par.min_blocks_per_job())
                    .for_each(relu_in_place);
            }
        }
    }
}
