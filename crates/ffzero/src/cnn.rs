//! FFzero on the convolutional network of seed 000 (Supplementary 5.2; SPEC A7), trained by
//! the two forward-only methods and compared with their two exact-gradient baselines.
//!
//! **The network** (MNIST, SPEC A7). Two convolution layers of `C` channels (`TrainSpec::width`),
//! kernel 6 × 6, padding 2, stride 1, ReLU, then 2 × 2 max-pooling with stride 2
//! (28 → 27 → 13 → 12 → 6), then a fully connected layer from `C·6·6` to 10 outputs
//! (Fashion-MNIST's variant below adds a hidden FC layer and dropout).
//!
//! **FF+DD.** Each channel of a convolution layer is its own unit: its conv output (after the
//! ReLU, before pooling: `H_out·W_out` values; **reading**, SPEC says "conv output") is reduced
//! by its own fixed Gaussian matrix `A^(i) ∈ R^{10 × H_out W_out}` (variance `1/(H_out W_out)`),
//! scored by the cosine goodness against simplex prototypes in `R^10` and trained on the margin
//! loss (eq. 16) or eq. 5 from directional derivatives over that channel's kernel and bias only
//! (`n = C_in·36 + 1`). A channel's goodness depends on its own kernel only, so updating all
//! channels of a layer in each step — each with its own directions, on the layer's batch order —
//! gives what training them one after the other would; we do the former, because then one
//! im2col of the batch serves every channel and all their perturbed kernels run as one product
//! (`StackedChannel`; the same estimates up to the product's f32 rounding, tested). The layers
//! train in sequence (SPEC A3), each from the cached pooled output of the frozen layer below (an
//! exact shortcut; the forward-pass count charges the physical re-runs: every channel's
//! evaluations, as if each ran on its own). The fully connected layer
//! trains like an MLP layer (its 10 outputs against prototypes in `R^10`).
//! Prediction (SPEC A6): a convolution layer votes the argmax of its goodness summed over
//! channels, the FC layer the argmax of its own; the network takes the majority (ties to the
//! latest layer).
//!
//! **BP+DD.** One directional-derivative estimate over every parameter of the network, on the
//! softmax cross-entropy of the FC layer's 10 outputs; prediction by their argmax.
//!
//! **The AD baselines** (SPEC A8). FF+AD trains exactly like FF+DD, all channels of a layer
//! together and layer by layer on the same local losses, with each unit's exact gradient in place of the
//! directional derivative; BP+AD trains every parameter on the cross-entropy with the exact
//! gradient. The gradients are back-propagated by hand through the FC layer, the poolings
//! (to the first maximum of each 2 × 2 window), the ReLUs and the convolutions (`col2im`, the
//! adjoint of `im2col`), with the local losses' own gradients from the tape's loss nodes (those
//! of the MLP's FF+AD); tested against central differences.
//!
//! **Regression** (MNIST regression, SPEC A7 "MLP and CNN"; Supplementary 5.2). FF: every
//! unit is scored by the cosine of its output (a channel's reduction, the FC's 10 outputs) with
//! the upper prototype `ξ^u` of an antipodal pair, against the target in [-1, 1] (eq. 7–8, the
//! MLP's squared-cosine loss); the prediction is the last layer's goodness (SPEC A6), and each
//! layer's own R² is reported too (a convolution layer predicts by the mean of its channels'
//! scores, Supplementary 5.2). BP: the FC layer has one output, trained on the MSE. R² on the
//! test split.
//!
//! **Fashion-MNIST's variant** (SPEC A7: dropout 0.1 after each convolution layer, an FC
//! stack {100, 10} with dropout {0.1, 0}): `TrainSpec::fc_hidden = [100]` puts a hidden FC
//! layer (ReLU) before the output layer and `TrainSpec::dropout = 0.1` masks the pooled output
//! of each convolution layer and the hidden FC layer's ReLU output while training (inverted
//! dropout, one mask per site and step: the private `dropout_mask` says why). FF trains
//! the hidden FC layer like an MLP layer (its outputs `z` against 10 prototypes in `R^100`,
//! ReLU(z) to the next layer) and it votes like one; its frozen prefix runs without dropout
//! (**reading**: a frozen layer is deployed; SPEC does not say), so the cache stays exact.
//!
//! The two DD methods reach the network only through [`PerturbedObjective`]: forward
//! evaluations at perturbed parameters.

use std::time::Instant;

use insitu_autodiff::{loss as lossfn, Tape};
use insitu_data::{Dataset, Targets, TrainTest};
use insitu_linalg::{derive_seed, matmul, relu, rng, set_shape, Accum, Mat, MatMut, MatRef, Par};
use insitu_optim::{DirectionalDerivative, PerturbedObjective, Progress};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::metrics::{accuracy, cosine_score, majority_vote, r_squared};
use crate::mlp::relu_in_place;
use crate::objective::{GlobalTarget, LayerTarget};
use crate::spec::{Model, TrainSpec};
use crate::train::{
    batch_order_seed, direction_seed, gradient_source, layer_prototypes, limited, optimise, require_model, step_rule,
    EpochLoss, Evaluation, GradientSource, Kind, LayerPrototypes, TrainError, TrainResult, UnitOutcome,
};

/// Side of the input images.
pub const IMAGE_SIDE: usize = 28;
/// Kernel side.
pub const KERNEL: usize = 6;
/// Zero padding on each side.
pub const PADDING: usize = 2;
/// Dimension of each channel's reduced output (and of the prototypes it is scored against).
pub const REDUCED: usize = 10;
/// Number of classes (and FC outputs).
const CLASSES: usize = 10;
/// Images per block of the evaluation and caching passes.
const IMAGE_BLOCK: usize = 256;

/// One convolution layer's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub in_channels: usize,
    /// Input side.
    pub in_side: usize,
    /// Output channels.
    pub channels: usize,
}

impl ConvShape {
    /// Side of the convolution's output: `in + 2·2 − 6 + 1`.
    pub fn out_side(&self) -> usize {
        self.in_side + 2 * PADDING + 1 - KERNEL
    }
    /// Side after 2 × 2 max-pooling with stride 2.
    pub fn pooled_side(&self) -> usize {
        self.out_side() / 2
    }
    /// Weights per output channel (`C_in·36`).
    pub fn kernel_len(&self) -> usize {
        self.in_channels * KERNEL * KERNEL
    }
    /// Parameters per output channel: its kernel and its bias.
    pub fn channel_params(&self) -> usize {
        self.kernel_len() + 1
    }
}

/// The two convolution layers of SPEC A7 for `channels` channels.
pub fn conv_shapes(channels: usize) -> [ConvShape; 2] {
    let first = ConvShape {
        in_channels: 1,
        in_side: IMAGE_SIDE,
        channels,
    };
    [
        first,
        ConvShape {
            in_channels: channels,
            in_side: first.pooled_side(),
            channels,
        },
    ]
}

/// The CNN: per convolution layer, one chunk of `C_in·36 + 1` parameters per output channel
/// (its kernel, `[c_in][ky][kx]`, then its bias); then each fully connected layer's
/// `outputs × inputs` weights (row-major) and its `outputs` biases. MNIST's network has one FC
/// layer (`C·36 → 10`); Fashion-MNIST's a stack `C·36 → 100 → 10` (SPEC A7), the hidden ones
/// followed by a ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct Cnn {
    shapes: [ConvShape; 2],
    conv: [Vec<f32>; 2],
    fc: Vec<Vec<f32>>,
    /// The FC layers' widths: the first one's inputs (`C·6·6`), then each layer's outputs.
    fc_widths: Vec<usize>,
}

impl Cnn {
    /// He-initialised (`N(0, 2/fan_in)`, zero biases) from `seed`, with 10 FC outputs.
    pub fn new(channels: usize, seed: u64) -> Self {
        Self::with_outputs(channels, CLASSES, seed)
    }

    /// [`Cnn::new`] with `outputs` FC outputs (1: BP's regression head); the draws of the
    /// first `min(outputs, 10)` FC rows are those of a 10-output network.
    pub fn with_outputs(channels: usize, outputs: usize, seed: u64) -> Self {
        Self::with_fc_stack(channels, &[], outputs, seed)
    }

    /// [`Cnn::with_outputs`] with hidden fully connected layers of widths `hidden` (each
    /// followed by a ReLU) before the output layer: `&[100]` is Fashion-MNIST's stack
    /// {100, 10}. The layers are drawn in order, so with no hidden layer this is
    /// [`Cnn::with_outputs`].
    pub fn with_fc_stack(channels: usize, hidden: &[usize], outputs: usize, seed: u64) -> Self {
        let shapes = conv_shapes(channels);
        let mut g = rng(derive_seed(seed, &[0xC0_4E]));
        let mut init = |fan_in: usize, rows: usize, with_bias_last: bool| -> Vec<f32> {
            let s = (2.0 / fan_in as f64).sqrt();
            let mut v = Vec::new();
            for _ in 0..rows {
                for _ in 0..fan_in {
                    let z: f64 = StandardNormal.sample(&mut g);
                    v.push((s * z) as f32);
                }
                if with_bias_last {
                    v.push(0.0);
                }
            }
            v
        };
        let conv = [
            init(shapes[0].kernel_len(), channels, true),
            init(shapes[1].kernel_len(), channels, true),
        ];
        let mut fc_widths = vec![channels * shapes[1].pooled_side().pow(2)];
        fc_widths.extend_from_slice(hidden);
        fc_widths.push(outputs);
        let fc = fc_widths
            .windows(2)
            .map(|w| {
                let mut layer = init(w[0], w[1], false);
                layer.extend(std::iter::repeat_n(0.0, w[1]));
                layer
            })
            .collect();
        Self {
            shapes,
            conv,
            fc,
            fc_widths,
        }
    }

    /// A CNN from its parameters (an export read back): for each convolution layer its
    /// kernels, `C × C_in·36` values in PyTorch's `Conv2d.weight` order `[out][in][ky][kx]`, and
    /// its `C` biases; for each FC layer its `outputs × inputs` weights (row-major, PyTorch's
    /// `Linear.weight`) and its `outputs` biases, the first FC layer reading the `C·6·6` pooled
    /// values channel by channel (PyTorch's `flatten` of `C × 6 × 6`).
    ///
    /// # Errors
    /// Sizes that do not make SPEC A7's network: `C` from conv 1's biases, conv 1 with one input
    /// channel, conv 2 with `C`, each FC layer reading what the one before gives.
    pub fn from_parts(conv: [(&[f32], &[f32]); 2], fc: &[(&[f32], &[f32])]) -> Result<Self, TrainError> {
        let bad = |what: String| Err(TrainError::Data(what));
        let channels = conv[0].1.len();
        if channels == 0 {
            return bad("conv 1 has no channels".into());
        }
        let shapes = conv_shapes(channels);
        let mut layers = [Vec::new(), Vec::new()];
        for (l, ((weights, biases), shape)) in conv.iter().zip(&shapes).enumerate() {
            let k = shape.kernel_len();
            if biases.len() != channels || weights.len() != channels * k {
                return bad(format!(
                    "conv {}: {} kernel values and {} biases; a layer of {channels} channels on {} input channel(s) has {} and {channels}",
                    l + 1,
                    weights.len(),
                    biases.len(),
                    shape.in_channels,
                    channels * k
                ));
            }
            for (kernel, bias) in weights.chunks_exact(k).zip(*biases) {
                layers[l].extend_from_slice(kernel);
                layers[l].push(*bias);
            }
        }
        if fc.is_empty() {
            return bad("no fully connected layer".into());
        }
        let mut fc_widths = vec![channels * shapes[1].pooled_side().pow(2)];
        let mut fc_layers = Vec::new();
        for (i, (weights, biases)) in fc.iter().enumerate() {
            let inputs = fc_widths[i];
            let outputs = biases.len();
            if outputs == 0 || weights.len() != outputs * inputs {
                return bad(format!(
                    "fc {}: {} weights for {outputs} outputs; after {} it reads {inputs} values, so it needs {}",
                    i + 1,
                    weights.len(),
                    if i == 0 { "the convolutions" } else { "the layer before" },
                    outputs * inputs
                ));
            }
            fc_layers.push([*weights, *biases].concat());
            fc_widths.push(outputs);
        }
        Ok(Self {
            shapes,
            conv: layers,
            fc: fc_layers,
            fc_widths,
        })
    }

    /// The two convolution layers' shapes.
    pub fn shapes(&self) -> [ConvShape; 2] {
        self.shapes
    }
    /// Inputs of the first FC layer (`C·6·6`).
    pub fn fc_inputs(&self) -> usize {
        self.fc_widths[0]
    }
    /// The FC layers' widths: the first one's inputs (`C·6·6`), then each layer's outputs.
    pub fn fc_widths(&self) -> &[usize] {
        &self.fc_widths
    }
    /// The number of fully connected layers (1 for MNIST's network, 2 for Fashion-MNIST's).
    pub fn fc_layers(&self) -> usize {
        self.fc.len()
    }
    /// Every parameter, conv layers then the FC layers (BP+DD's vector).
    pub fn params(&self) -> Vec<f32> {
        let mut p = [self.conv[0].as_slice(), &self.conv[1]].concat();
        for layer in &self.fc {
            p.extend_from_slice(layer);
        }
        p
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.conv[0].len() + self.conv[1].len() + self.fc.iter().map(Vec::len).sum::<usize>()
    }
    /// The last FC layer's outputs (10, or 1 for BP's regression head) for `images` (`784 × B`,
    /// one 28 × 28 image per column, pixels row-major), `outputs × B`; no dropout (inference).
    ///
    /// # Panics
    /// If `images` does not have 784 rows.
    pub fn logits(&self, images: &Mat) -> Mat {
        assert_eq!(images.nrows(), IMAGE_SIDE * IMAGE_SIDE, "Cnn::logits: 28 × 28 images");
        let mut out = Mat::zeros(0, 0);
        network_logits(
            self,
            images.as_slice(),
            images.ncols(),
            None,
            &mut Scratch::default(),
            &mut out,
            Par::Seq,
        );
        out
    }

    /// The parameters of channel `channel` of convolution layer `layer` (its kernel
    /// `[c_in][ky][kx]`, then its bias), for inspection or export.
    pub fn channel_params(&self, layer: usize, channel: usize) -> &[f32] {
        let len = self.shapes[layer].channel_params();
        &self.conv[layer][channel * len..(channel + 1) * len]
    }

    /// FC layer `layer`'s weights (`outputs × inputs`, row-major) then biases.
    pub fn fc_params(&self, layer: usize) -> &[f32] {
        &self.fc[layer]
    }

    /// The last FC layer's outputs.
    pub fn outputs(&self) -> usize {
        self.fc_widths[self.fc_widths.len() - 1]
    }

    fn set_params(&mut self, p: &[f32]) {
        let (a, rest) = p.split_at(self.conv[0].len());
        let (b, mut rest) = rest.split_at(self.conv[1].len());
        self.conv[0].copy_from_slice(a);
        self.conv[1].copy_from_slice(b);
        for layer in &mut self.fc {
            let (here, later) = rest.split_at(layer.len());
            layer.copy_from_slice(here);
            rest = later;
        }
    }
}

/// Where the dropout masks of SPEC A7's Fashion-MNIST network act while it trains: site 0 on
/// the pooled output of convolution layer 1 (the input of layer 2), site 1 on that of layer 2
/// (the input of the FC stack), site `2 + i` on the ReLU output of hidden FC layer `i`.
/// Inverted dropout: a value is kept with probability `1 − rate` and scaled by
/// `1/(1 − rate)`, or zeroed, so inference (no mask) needs no rescaling.
///
/// A mask is drawn from `(seed, site, step)` alone, in the batch's layout: every evaluation of
/// one step — the DD methods' perturbed runs — sees the same mask (the physical procedure: the
/// ± runs of a step share their input), the channels of a layer, trained together, see the
/// masks they would trained one after the other, and the draws do not depend on the thread
/// count.
fn dropout_mask(seed: u64, site: usize, step: u64, rate: f32, len: usize, mask: &mut Vec<f32>) {
    let mut g = rng(derive_seed(seed, &[0x0D80_90A7, site as u64, step]));
    let keep = 1.0 / (1.0 - rate);
    mask.clear();
    mask.extend((0..len).map(|_| if g.random::<f32>() < rate { 0.0 } else { keep }));
}

/// `values ← values ⊙ mask` (a dropout mask, or its own backward pass on a gradient).
fn apply_mask(values: &mut [f32], mask: &[f32]) {
    debug_assert_eq!(values.len(), mask.len());
    for (v, m) in values.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// One training step's dropout masks at every site of the network ([`dropout_mask`]); empty
/// when the rate is 0 (MNIST's network: no draws at all).
#[derive(Default)]
struct DropoutMasks {
    sites: Vec<Vec<f32>>,
}

impl DropoutMasks {
    /// The masks of step `step` for a batch of `count` images through `network`.
    fn draw(&mut self, spec: &TrainSpec, network: &Cnn, step: u64, count: usize) {
        if spec.dropout == 0.0 {
            self.sites.clear();
            return;
        }
        // per image: each convolution layer's pooled values, then each hidden FC layer's width
        let per_image = network
            .shapes
            .iter()
            .map(|s| s.channels * s.pooled_side().pow(2))
            .chain(network.fc_widths[1..network.fc_widths.len() - 1].iter().copied());
        self.sites.resize_with(2 + network.fc.len() - 1, Vec::new);
        for (site, (mask, per)) in self.sites.iter_mut().zip(per_image).enumerate() {
            dropout_mask(spec.seed, site, step, spec.dropout, count * per, mask);
        }
    }

    /// Site `site`'s mask, if dropout is on.
    fn at(&self, site: usize) -> Option<&[f32]> {
        self.sites.get(site).map(Vec::as_slice)
    }
}

/// `cols` (`K × B·out²`, column-major) of the images in `input` (`B` images of `C_in·side²`
/// values each, channel-major, row-major planes).
fn im2col(shape: &ConvShape, input: &[f32], images: usize, cols: &mut Vec<f32>) {
    let (side, out, k) = (shape.in_side, shape.out_side(), shape.kernel_len());
    let plane = side * side;
    // every entry is written below (the padding's zeros too), so a buffer of the right length
    // is not cleared first: the zero-fill took 6 % of an FF+DD run
    let len = k * images * out * out;
    if cols.len() != len {
        cols.clear();
        cols.resize(len, 0.0);
    }
    for b in 0..images {
        let image = &input[b * shape.in_channels * plane..(b + 1) * shape.in_channels * plane];
        for y in 0..out {
            for x in 0..out {
                let col = &mut cols[((b * out + y) * out + x) * k..][..k];
                // the kernel's columns that land inside the image: kx in kx0..kx1
                let kx0 = PADDING.saturating_sub(x);
                let kx1 = KERNEL.min(side + PADDING - x);
                let ix0 = x + kx0 - PADDING;
                for ci in 0..shape.in_channels {
                    for ky in 0..KERNEL {
                        let dst = (ci * KERNEL + ky) * KERNEL;
                        // fixed-length windows: slices of a run-time length were copied and
                        // cleared by calls to memmove and memset, 18 % of an FF+DD step
                        let window: &mut [f32; KERNEL] =
                            (&mut col[dst..dst + KERNEL]).try_into().expect("a kernel row");
                        let iy = (y + ky) as isize - PADDING as isize;
                        if iy < 0 || iy >= side as isize {
                            *window = [0.0; KERNEL];
                            continue;
                        }
                        let row = ci * plane + iy as usize * side;
                        if kx0 == 0 && kx1 == KERNEL {
                            *window = image[row + ix0..row + ix0 + KERNEL].try_into().expect("a kernel row");
                        } else {
                            for (kx, w) in window.iter_mut().enumerate() {
                                *w = if (kx0..kx1).contains(&kx) {
                                    image[row + ix0 + kx - kx0]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ReLU of `weights (rows × K) · cols + bias` into `out` (`rows × B·out²`, row-major: one
/// channel's outputs contiguous, image after image). `kernels` holds the rows' chunks of `K + 1`.
fn convolve(kernels: &[f32], k: usize, cols: &[f32], columns: usize, out: &mut Vec<f32>, par: Par) {
    let rows = kernels.len() / (k + 1);
    // the product replaces every entry: no zero-fill of a buffer of the right length
    if out.len() != rows * columns {
        out.clear();
        out.resize(rows * columns, 0.0);
    }
    matmul(
        MatMut::from_row_major(out, rows, columns),
        Accum::Replace,
        MatRef::from_row_major_strided(kernels, rows, k, k + 1),
        MatRef::from_col_major(cols, k, columns),
        1.0,
        par,
    );
    for (r, row) in out.chunks_exact_mut(columns).enumerate() {
        let bias = kernels[r * (k + 1) + k];
        for v in row.iter_mut() {
            // insitu_linalg::relu lets a NaN through to the loss (f32::max would hide it)
            *v = relu(*v + bias);
        }
    }
}

/// 2 × 2 max-pooling of `conv` (`C × B·out²` row-major) into the next layer's input layout
/// (`B` images of `C·pooled²`, channel-major).
fn pool(shape: &ConvShape, conv: &[f32], images: usize, out: &mut Vec<f32>) {
    let (o, p, c) = (shape.out_side(), shape.pooled_side(), shape.channels);
    out.clear();
    out.resize(images * c * p * p, 0.0);
    for ch in 0..c {
        for b in 0..images {
            let plane = &conv[(ch * images + b) * o * o..][..o * o];
            let dst = &mut out[(b * c + ch) * p * p..][..p * p];
            for y in 0..p {
                for x in 0..p {
                    let i = 2 * y * o + 2 * x;
                    dst[y * p + x] = max_of_four(plane[i], plane[i + 1], plane[i + o], plane[i + o + 1]);
                }
            }
        }
    }
}

/// The largest of a pooling window's four values, or NaN if one is NaN (as PyTorch's
/// `max_pool2d`: `f32::max` would drop a NaN and hide a diverged value from the loss).
fn max_of_four(a: f32, b: f32, c: f32, d: f32) -> f32 {
    let max = a.max(b).max(c).max(d);
    if a.is_nan() || b.is_nan() || c.is_nan() || d.is_nan() {
        f32::NAN
    } else {
        max
    }
}

/// A channel's reduction `r = A h` for every image: `A` (10 × out², column-major) times the
/// channel's outputs (`out² × B`, column-major = `B` contiguous planes).
fn reduce(a: &Mat, plane_outputs: &[f32], images: usize, out: &mut Mat, par: Par) {
    set_shape(out, REDUCED, images);
    let plane = a.ncols();
    matmul(
        MatMut::from(&mut *out),
        Accum::Replace,
        MatRef::from(a),
        MatRef::from_col_major(plane_outputs, plane, images),
        1.0,
        par,
    );
}

/// The fixed reductions of one convolution layer: one `10 × out²` Gaussian matrix per channel
/// (variance `1/out²`), drawn from `(seed, layer, channel)`.
pub fn reductions(seed: u64, layer: usize, shape: &ConvShape) -> Vec<Mat> {
    let plane = shape.out_side().pow(2);
    let s = 1.0 / (plane as f64).sqrt();
    (0..shape.channels)
        .map(|c| {
            let mut g = rng(derive_seed(seed, &[0x0004_ED0C, layer as u64, c as u64]));
            Mat::from_fn(REDUCED, plane, |_, _| {
                let z: f64 = StandardNormal.sample(&mut g);
                (s * z) as f32
            })
        })
        .collect()
}

/// Buffers of one training or evaluation pass.
#[derive(Default)]
struct Scratch {
    input: Vec<f32>,
    cols: Vec<f32>,
    conv: Vec<f32>,
    pooled: Vec<f32>,
    reduced: Mat,
    hidden: Mat,
    logits: Mat,
    goodness: Mat,
    labels: Vec<u32>,
    targets: Vec<f32>,
    targets_mat: Mat,
}

/// One convolution channel's side of an FF+DD step in which all channels of a layer are
/// evaluated in one product (an exact shortcut: a channel's loss depends on its own kernel
/// only). The estimator runs twice per channel on the same seed, so it draws the same
/// directions both times: first `Record` notes every perturbed kernel it asks for as a row of
/// the layer's stack (answering 0, which the estimator's order of requests does not depend
/// on); once the stack has been run forward, `Replay` answers the same requests with their
/// losses, in order, and the estimate is the one the channel's own evaluations give.
enum StackedChannel<'a> {
    Record { params: &'a [f32], stack: &'a mut Vec<f32> },
    Replay { dim: usize, losses: &'a [f64], next: usize },
}

impl PerturbedObjective for StackedChannel<'_> {
    fn dim(&self) -> usize {
        match self {
            StackedChannel::Record { params, .. } => params.len(),
            StackedChannel::Replay { dim, .. } => *dim,
        }
    }
    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        match self {
            StackedChannel::Record { params, stack } => {
                for &step in steps {
                    stack.extend(params.iter().zip(direction).map(|(p, d)| p + step * d));
                }
                out.fill(0.0);
            }
            StackedChannel::Replay { losses, next, .. } => {
                out.copy_from_slice(&losses[*next..*next + out.len()]);
                *next += out.len();
            }
        }
    }
}

/// Channels whose perturbed kernels share one product ([`StackedChannel`]): 8 channels are 16
/// rows at P = 1, enough to make the product compute-bound, while the output of conv 1 at
/// batch 256 (16 × 186,624 values) stays at 12 MB.
const STACKED_CHANNELS: usize = 8;

/// FF+DD: one step of every channel of a convolution layer (`params`: the layer's chunks of
/// `K + 1`; `grad` likewise) on a batch whose im2col is `cols`, each channel with its own
/// directions (`unit_seed(c)`). Returns the mean over channels of their estimates' losses and
/// the evaluations made.
#[allow(clippy::too_many_arguments)]
fn layer_directional_step(
    dd: &DirectionalDerivative,
    params: &[f32],
    k: usize,
    cols: &[f32],
    images: usize,
    reductions: &[Mat],
    target: LayerTarget<'_>,
    unit_seed: impl Fn(usize) -> u64,
    s: &mut StackScratch,
    grad: &mut [f32],
    par: Par,
) -> (f64, usize) {
    let chunk = k + 1;
    let channels = params.len() / chunk;
    let columns = cols.len() / k;
    s.direction.resize(chunk, 0.0);
    let (mut loss_sum, mut evaluations) = (0.0, 0);
    for group in (0..channels).step_by(STACKED_CHANNELS) {
        let group = group..channels.min(group + STACKED_CHANNELS);
        s.stack.clear();
        s.rows.clear();
        for c in group.clone() {
            let before = s.stack.len();
            let mut record = StackedChannel::Record {
                params: &params[c * chunk..(c + 1) * chunk],
                stack: &mut s.stack,
            };
            dd.estimate(
                &mut record,
                unit_seed(c),
                &mut grad[c * chunk..(c + 1) * chunk],
                &mut s.direction,
            );
            s.rows.push((s.stack.len() - before) / chunk);
        }
        convolve(&s.stack, k, cols, columns, &mut s.conv, par);
        s.losses.clear();
        let mut outputs = s.conv.chunks_exact(columns);
        for (c, &rows) in group.clone().zip(&s.rows) {
            for row in outputs.by_ref().take(rows) {
                reduce(&reductions[c], row, images, &mut s.reduced, par);
                s.losses.push(target.loss_with_goodness(&s.reduced, &mut s.goodness));
            }
        }
        let mut next = 0;
        for (c, &rows) in group.clone().zip(&s.rows) {
            let mut replay = StackedChannel::Replay {
                dim: chunk,
                losses: &s.losses[next..next + rows],
                next: 0,
            };
            let e = dd.estimate(
                &mut replay,
                unit_seed(c),
                &mut grad[c * chunk..(c + 1) * chunk],
                &mut s.direction,
            );
            next += rows;
            loss_sum += e.mean_loss;
            evaluations += e.evaluations;
        }
    }
    (loss_sum / channels as f64, evaluations)
}

/// Buffers of [`layer_directional_step`].
#[derive(Default)]
struct StackScratch {
    direction: Vec<f32>,
    stack: Vec<f32>,
    rows: Vec<usize>,
    conv: Vec<f32>,
    losses: Vec<f64>,
    reduced: Mat,
    goodness: Mat,
}

/// FF+DD's view of the FC layer (outputs against prototypes in `R^10`).
struct FcObjective<'a> {
    params: &'a [f32],
    perturbed: &'a mut Vec<f32>,
    inputs: &'a [f32],
    features: usize,
    images: usize,
    logits: &'a mut Mat,
    goodness: &'a mut Mat,
    target: LayerTarget<'a>,
    par: Par,
}

/// The FC layer (`outputs × features` weights row-major, then `outputs` biases; `outputs`
/// follows from `params.len()`) on `images` columns of `inputs`, into `out` (`outputs × B`).
fn fc_forward(params: &[f32], features: usize, inputs: &[f32], images: usize, out: &mut Mat, par: Par) {
    let outputs = params.len() / (features + 1);
    set_shape(out, outputs, images);
    matmul(
        MatMut::from(&mut *out),
        Accum::Replace,
        MatRef::from_row_major(&params[..outputs * features], outputs, features),
        MatRef::from_col_major(inputs, features, images),
        1.0,
        par,
    );
    let bias = &params[outputs * features..];
    for mut col in out.column_iter_mut() {
        for (v, b) in col.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

impl PerturbedObjective for FcObjective<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }
    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        for (o, &step) in out.iter_mut().zip(steps) {
            self.perturbed.clear();
            self.perturbed
                .extend(self.params.iter().zip(direction).map(|(p, d)| p + step * d));
            fc_forward(
                self.perturbed,
                self.features,
                self.inputs,
                self.images,
                self.logits,
                self.par,
            );
            *o = self.target.loss_with_goodness(self.logits, self.goodness);
        }
    }
}

/// BP+DD's view: the global loss of the FC outputs (cross-entropy, or MSE of the regression
/// head) at perturbed parameters of the whole network.
struct NetworkObjective<'a> {
    params: &'a [f32],
    network: &'a mut Cnn,
    perturbed: &'a mut Vec<f32>,
    images: &'a [f32],
    count: usize,
    target: GlobalTarget<'a>,
    masks: &'a DropoutMasks,
    scratch: &'a mut Scratch,
    par: Par,
}

/// The last FC layer's outputs of `network` for `count` images (784 values each) into
/// `logits`, with a training step's dropout `masks` (none: inference).
fn network_logits(
    network: &Cnn,
    images: &[f32],
    count: usize,
    masks: Option<&DropoutMasks>,
    scratch: &mut Scratch,
    logits: &mut Mat,
    par: Par,
) {
    scratch.input.clear();
    scratch.input.extend_from_slice(images);
    for (l, shape) in network.shapes.iter().enumerate() {
        im2col(shape, &scratch.input, count, &mut scratch.cols);
        let columns = count * shape.out_side().pow(2);
        convolve(
            &network.conv[l],
            shape.kernel_len(),
            &scratch.cols,
            columns,
            &mut scratch.conv,
            par,
        );
        pool(shape, &scratch.conv, count, &mut scratch.pooled);
        if let Some(mask) = masks.and_then(|m| m.at(l)) {
            apply_mask(&mut scratch.pooled, mask);
        }
        std::mem::swap(&mut scratch.input, &mut scratch.pooled);
    }
    let last = network.fc.len() - 1;
    for (i, params) in network.fc.iter().enumerate() {
        let features = network.fc_widths[i];
        if i == last {
            fc_forward(params, features, &scratch.input, count, logits, par);
            break;
        }
        fc_forward(params, features, &scratch.input, count, &mut scratch.hidden, par);
        relu_in_place(scratch.hidden.as_mut_slice());
        if let Some(mask) = masks.and_then(|m| m.at(2 + i)) {
            apply_mask(scratch.hidden.as_mut_slice(), mask);
        }
        scratch.input.clear();
        scratch.input.extend_from_slice(scratch.hidden.as_slice());
    }
}

impl PerturbedObjective for NetworkObjective<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }
    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        let mut logits = std::mem::take(&mut self.scratch.logits);
        for (o, &step) in out.iter_mut().zip(steps) {
            self.perturbed.clear();
            self.perturbed
                .extend(self.params.iter().zip(direction).map(|(p, d)| p + step * d));
            self.network.set_params(self.perturbed);
            network_logits(
                self.network,
                self.images,
                self.count,
                Some(self.masks),
                self.scratch,
                &mut logits,
                self.par,
            );
            *o = self.target.loss(&logits);
        }
        self.scratch.logits = logits;
    }
}

/// The adjoint of [`im2col`]: every column entry added back to the input pixel it was copied
/// from (`d_input`: `B` images of `C_in·side²` values). The window geometry is `im2col`'s,
/// written out again on purpose: one visitor for both cost FF+DD's hot `im2col` 7 % of an
/// 8-channel quick run (31.2 s against 29.3 s); `col2im_is_the_adjoint_of_im2col` keeps the
/// two in step.
fn col2im(shape: &ConvShape, d_cols: &[f32], images: usize, d_input: &mut Vec<f32>) {
    let (side, out, k) = (shape.in_side, shape.out_side(), shape.kernel_len());
    let plane = side * side;
    d_input.clear();
    d_input.resize(images * shape.in_channels * plane, 0.0);
    for b in 0..images {
        let image = &mut d_input[b * shape.in_channels * plane..(b + 1) * shape.in_channels * plane];
        for y in 0..out {
            for x in 0..out {
                let col = &d_cols[((b * out + y) * out + x) * k..][..k];
                let kx0 = PADDING.saturating_sub(x);
                let kx1 = KERNEL.min(side + PADDING - x);
                let ix0 = x + kx0 - PADDING;
                for ci in 0..shape.in_channels {
                    for ky in 0..KERNEL {
                        let iy = (y + ky) as isize - PADDING as isize;
                        if iy < 0 || iy >= side as isize {
                            continue;
                        }
                        let row = ci * plane + iy as usize * side;
                        let src = (ci * KERNEL + ky) * KERNEL;
                        if kx0 == 0 && kx1 == KERNEL {
                            // a fixed length, as in im2col
                            let d: &mut [f32; KERNEL] = (&mut image[row + ix0..row + ix0 + KERNEL])
                                .try_into()
                                .expect("a kernel row");
                            let g: &[f32; KERNEL] = col[src..src + KERNEL].try_into().expect("a kernel row");
                            for (d, &g) in d.iter_mut().zip(g) {
                                *d += g;
                            }
                            continue;
                        }
                        for (d, &g) in image[row + ix0..row + ix0 + (kx1 - kx0)]
                            .iter_mut()
                            .zip(&col[src + kx0..src + kx1])
                        {
                            *d += g;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`pool`]: each pooled gradient (`d_pooled`, the next layer's input layout)
/// goes to the first of its four inputs that holds the maximum; `d_conv` gets the layout of
/// `conv` (`C × B·out²` row-major).
fn pool_backward(shape: &ConvShape, conv: &[f32], d_pooled: &[f32], images: usize, d_conv: &mut Vec<f32>) {
    let (o, p, c) = (shape.out_side(), shape.pooled_side(), shape.channels);
    d_conv.clear();
    d_conv.resize(c * images * o * o, 0.0);
    for ch in 0..c {
        for b in 0..images {
            let plane = &conv[(ch * images + b) * o * o..][..o * o];
            let d_plane = &mut d_conv[(ch * images + b) * o * o..][..o * o];
            let src = &d_pooled[(b * c + ch) * p * p..][..p * p];
            for y in 0..p {
                for x in 0..p {
                    let i = 2 * y * o + 2 * x;
                    let (a, b, c, d) = (plane[i], plane[i + 1], plane[i + o], plane[i + o + 1]);
                    // the first of the four that holds the maximum (NaNs skipped; none: the first)
                    let max = f32::NEG_INFINITY.max(a).max(b).max(c).max(d);
                    let at = if a == max {
                        i
                    } else if b == max {
                        i + 1
                    } else if c == max {
                        i + o
                    } else if d == max {
                        i + o + 1
                    } else {
                        i
                    };
                    d_plane[at] += src[y * p + x];
                }
            }
        }
    }
}

/// The backward pass of [`convolve`] for `rows` channels: `d_out` (`rows × N`, the gradient
/// with respect to the ReLU's output) is masked by the ReLU in place, then `grad` (chunks of
/// `K + 1`: kernel, bias) receives `dZ·colsᵀ` and the row sums, and `d_cols` (when given,
/// `K × N` column-major) `Wᵀ·dZ`.
fn convolve_backward(
    kernels: &[f32],
    k: usize,
    cols: &[f32],
    out: &[f32],
    d_out: &mut [f32],
    grad: &mut [f32],
    d_cols: Option<&mut Vec<f32>>,
    par: Par,
) {
    let rows = kernels.len() / (k + 1);
    let columns = cols.len() / k;
    for (d, &h) in d_out.iter_mut().zip(out) {
        if h <= 0.0 {
            *d = 0.0;
        }
    }
    matmul(
        MatMut::from_row_major_strided(grad, rows, k, k + 1),
        Accum::Replace,
        MatRef::from_row_major(d_out, rows, columns),
        MatRef::from_col_major(cols, k, columns).t(),
        1.0,
        par,
    );
    row_sums(d_out, rows, columns, |r, sum| grad[r * (k + 1) + k] = sum as f32);
    if let Some(d_cols) = d_cols {
        d_cols.clear();
        d_cols.resize(k * columns, 0.0);
        matmul(
            MatMut::from_col_major(d_cols, k, columns),
            Accum::Replace,
            MatRef::from_row_major_strided(kernels, rows, k, k + 1).t(),
            MatRef::from_row_major(d_out, rows, columns),
            1.0,
            par,
        );
    }
}

/// `sum(r, Σ_j values[r·columns + j])` for each of `rows` rows (row-major), each row summed
/// in f64 from its first column to its last. Eight rows advance together: eight independent
/// chains of additions instead of one (a row's sum was bound by the latency of its additions),
/// each row's sum in the same order, so the same bits.
fn row_sums(values: &[f32], rows: usize, columns: usize, mut sum: impl FnMut(usize, f64)) {
    const BLOCK: usize = 8;
    // the start of `Iterator::sum` for f64 (−0.0 on recent toolchains): an all-zero row keeps
    // its sign of zero as before
    let start: f64 = std::iter::empty::<f64>().sum();
    let mut r = 0;
    while r + BLOCK <= rows {
        let block = &values[r * columns..(r + BLOCK) * columns];
        let mut acc = [start; BLOCK];
        for j in 0..columns {
            for (i, a) in acc.iter_mut().enumerate() {
                *a += f64::from(block[i * columns + j]);
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            sum(r + i, a);
        }
        r += BLOCK;
    }
    for (i, row) in values[r * columns..rows * columns]
        .chunks_exact(columns.max(1))
        .enumerate()
    {
        sum(r + i, row.iter().map(|&v| f64::from(v)).sum::<f64>());
    }
}

/// The backward pass of [`fc_forward`]: `grad` (weights row-major, then biases) from the
/// outputs' gradient `d_out` (`outputs × B`); `d_inputs` (when given, `features × B` column-major)
/// `Wᵀ·d_out`.
fn fc_backward(
    params: &[f32],
    features: usize,
    inputs: &[f32],
    d_out: &Mat,
    grad: &mut [f32],
    d_inputs: Option<&mut Vec<f32>>,
    par: Par,
) {
    let (outputs, images) = d_out.shape();
    let (weights, biases) = grad.split_at_mut(outputs * features);
    matmul(
        MatMut::from_row_major(weights, outputs, features),
        Accum::Replace,
        MatRef::from(d_out),
        MatRef::from_col_major(inputs, features, images).t(),
        1.0,
        par,
    );
    for (c, b) in biases.iter_mut().enumerate() {
        *b = d_out.row(c).iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
    }
    if let Some(d_inputs) = d_inputs {
        d_inputs.clear();
        d_inputs.resize(features * images, 0.0);
        matmul(
            MatMut::from_col_major(d_inputs, features, images),
            Accum::Replace,
            MatRef::from_row_major(&params[..outputs * features], outputs, features).t(),
            MatRef::from(d_out),
            1.0,
            par,
        );
    }
}

/// `∂L/∂z` of a layer's local loss (FF+AD) at its outputs `z`, by the tape's loss node
/// (the one the MLP's FF+AD uses). Returns the loss.
fn local_loss_gradient(tape: &mut Tape, target: LayerTarget<'_>, z: &Mat, dz: &mut Mat) -> f64 {
    tape.reset();
    let v = tape.param(z);
    let loss = target.on_tape(tape, v);
    let value = tape.scalar(loss);
    tape.backward(loss);
    dz.clone_from(tape.grad(v).expect("gradient of a parameter"));
    value
}

/// FF+AD: the exact gradient of each channel's local loss with respect to its own kernel and
/// bias, for every channel of a layer at once (`params`, `grad`: the layer's chunks of
/// `K + 1`), on a batch whose im2col is `cols`: one forward product for all channels, each
/// channel's loss through its reduction, one backward product. Returns the mean of the
/// channels' losses.
#[allow(clippy::too_many_arguments)]
fn layer_local_gradient(
    params: &[f32],
    k: usize,
    cols: &[f32],
    images: usize,
    reductions: &[Mat],
    target: LayerTarget<'_>,
    tape: &mut Tape,
    scratch: &mut AdScratch,
    grad: &mut [f32],
    par: Par,
) -> f64 {
    let columns = cols.len() / k;
    let channels = params.len() / (k + 1);
    convolve(params, k, cols, columns, &mut scratch.conv, par);
    scratch.d_conv.clear();
    scratch.d_conv.resize(channels * columns, 0.0);
    let mut loss = 0.0;
    for (c, reduction) in reductions.iter().enumerate().take(channels) {
        let outputs = &scratch.conv[c * columns..(c + 1) * columns];
        reduce(reduction, outputs, images, &mut scratch.reduced, par);
        loss += local_loss_gradient(tape, target, &scratch.reduced, &mut scratch.d_reduced);
        // dH (out² × B, column-major: the channel's row of outputs) = Aᵀ·dz
        let plane = reduction.ncols();
        matmul(
            MatMut::from_col_major(&mut scratch.d_conv[c * columns..(c + 1) * columns], plane, images),
            Accum::Replace,
            MatRef::from(reduction).t(),
            MatRef::from(&scratch.d_reduced),
            1.0,
            par,
        );
    }
    convolve_backward(params, k, cols, &scratch.conv, &mut scratch.d_conv, grad, None, par);
    loss / channels as f64
}

/// FF+AD: the exact gradient of the FC layer's local loss with respect to its weights and
/// biases. Returns the loss.
#[allow(clippy::too_many_arguments)]
fn fc_local_gradient(
    params: &[f32],
    features: usize,
    inputs: &[f32],
    images: usize,
    target: LayerTarget<'_>,
    tape: &mut Tape,
    scratch: &mut AdScratch,
    grad: &mut [f32],
    par: Par,
) -> f64 {
    fc_forward(params, features, inputs, images, &mut scratch.reduced, par);
    let loss = local_loss_gradient(tape, target, &scratch.reduced, &mut scratch.d_reduced);
    fc_backward(params, features, inputs, &scratch.d_reduced, grad, None, par);
    loss
}

/// Buffers of the exact-gradient passes.
#[derive(Default)]
struct AdScratch {
    cols: [Vec<f32>; 2],
    conv: Vec<f32>,
    convs: [Vec<f32>; 2],
    pooled: [Vec<f32>; 2],
    /// BP+AD: the hidden FC layers' pre-activations and the inputs of the FC layers after the
    /// first (ReLU, then dropout).
    fc_pre: Vec<Mat>,
    fc_in: Vec<Vec<f32>>,
    reduced: Mat,
    d_reduced: Mat,
    d_conv: Vec<f32>,
    d_cols: Vec<f32>,
    d_pooled: Vec<f32>,
}

/// BP+AD: the exact gradient of the last FC layer's global loss (softmax cross-entropy, or
/// MSE of the regression head) with respect to every parameter of `network` (`grad`, the
/// layout of [`Cnn::params`]), by back-propagation through the FC layers, the dropout `masks`
/// of the step (a mask is its own adjoint), the poolings, ReLUs and convolutions. Returns the
/// loss.
#[allow(clippy::too_many_arguments)]
fn network_gradient(
    network: &Cnn,
    images: &[f32],
    count: usize,
    masks: Option<&DropoutMasks>,
    target: GlobalTarget<'_>,
    tape: &mut Tape,
    s: &mut AdScratch,
    grad: &mut [f32],
    par: Par,
) -> f64 {
    let mask = |site: usize| masks.and_then(|m| m.at(site));
    for (l, shape) in network.shapes.iter().enumerate() {
        let source = if l == 0 { images } else { &s.pooled[0] };
        im2col(shape, source, count, &mut s.cols[l]);
        let columns = count * shape.out_side().pow(2);
        convolve(
            &network.conv[l],
            shape.kernel_len(),
            &s.cols[l],
            columns,
            &mut s.convs[l],
            par,
        );
        pool(shape, &s.convs[l], count, &mut s.pooled[l]);
        if let Some(m) = mask(l) {
            apply_mask(&mut s.pooled[l], m);
        }
    }
    let layers = network.fc.len();
    s.fc_pre.resize_with(layers - 1, Mat::default);
    s.fc_in.resize_with(layers, Vec::new);
    for i in 0..layers {
        let input = if i == 0 { &s.pooled[1] } else { &s.fc_in[i] };
        let features = network.fc_widths[i];
        if i + 1 == layers {
            fc_forward(&network.fc[i], features, input, count, &mut s.reduced, par);
            break;
        }
        fc_forward(&network.fc[i], features, input, count, &mut s.fc_pre[i], par);
        let next = &mut s.fc_in[i + 1];
        next.clear();
        next.extend_from_slice(s.fc_pre[i].as_slice());
        relu_in_place(next);
        if let Some(m) = mask(2 + i) {
            apply_mask(next, m);
        }
    }
    tape.reset();
    let v = tape.param(&s.reduced);
    let loss = target.on_tape(tape, v);
    let value = tape.scalar(loss);
    tape.backward(loss);
    s.d_reduced.clone_from(tape.grad(v).expect("gradient of a parameter"));
    let (conv_grads, mut fc_grads) = grad.split_at_mut(network.conv[0].len() + network.conv[1].len());
    let (grad0, grad1) = conv_grads.split_at_mut(network.conv[0].len());
    let mut fc_grad: Vec<&mut [f32]> = Vec::with_capacity(layers);
    for layer in &network.fc {
        let (here, later) = std::mem::take(&mut fc_grads).split_at_mut(layer.len());
        fc_grad.push(here);
        fc_grads = later;
    }
    // d_reduced: the gradient at the outputs of FC layer i, walking down
    let mut d_out = std::mem::take(&mut s.d_reduced);
    for i in (0..layers).rev() {
        let input = if i == 0 { &s.pooled[1] } else { &s.fc_in[i] };
        fc_backward(
            &network.fc[i],
            network.fc_widths[i],
            input,
            &d_out,
            fc_grad[i],
            Some(&mut s.d_pooled),
            par,
        );
        if let Some(m) = mask(1 + i) {
            apply_mask(&mut s.d_pooled, m);
        }
        if i > 0 {
            // through hidden layer i − 1's ReLU
            for (d, &z) in s.d_pooled.iter_mut().zip(s.fc_pre[i - 1].as_slice()) {
                if z <= 0.0 {
                    *d = 0.0;
                }
            }
            set_shape(&mut d_out, network.fc_widths[i], count);
            d_out.as_mut_slice().copy_from_slice(&s.d_pooled);
        }
    }
    s.d_reduced = d_out;
    for (l, g) in [(1, grad1), (0, grad0)] {
        let shape = &network.shapes[l];
        pool_backward(shape, &s.convs[l], &s.d_pooled, count, &mut s.d_conv);
        let d_cols = (l == 1).then_some(&mut s.d_cols);
        convolve_backward(
            &network.conv[l],
            shape.kernel_len(),
            &s.cols[l],
            &s.convs[l],
            &mut s.d_conv,
            g,
            d_cols,
            par,
        );
        if l == 1 {
            col2im(shape, &s.d_cols, count, &mut s.d_pooled);
            if let Some(m) = mask(0) {
                apply_mask(&mut s.d_pooled, m);
            }
        }
    }
    value
}

/// A trained CNN and what it was trained against.
#[derive(Clone, Debug)]
pub struct TrainedCnn {
    /// What [`train`](crate::train()) returns for the spec.
    pub result: TrainResult,
    /// The trained network.
    pub network: Cnn,
    /// FF: the prototypes of conv layer 1, conv layer 2 and each FC layer (`width × 10`: in
    /// `R^10` for the convolutions and the output layer, in `R^100` for Fashion-MNIST's hidden
    /// FC layer; in regression the upper prototype `ξ^u` as a `width × 1` column); empty for BP.
    pub prototypes: Vec<Mat>,
    /// FF: each convolution channel's reduction matrix, per layer; empty for BP.
    pub reductions: Vec<Vec<Mat>>,
}

/// Trains the CNN of SPEC A7 per `spec` (`model: cnn`, `width` = channels `C`, any method) on
/// `data` (28 × 28 images; 10 classes, or one target in [-1, 1]) and evaluates it on the test
/// split;
/// [`train`](crate::train()) calls this for CNN specs. The numbers do not depend on the thread
/// count.
pub fn train_cnn(spec: &TrainSpec, data: &TrainTest, progress: &mut dyn Progress) -> Result<TrainedCnn, TrainError> {
    require_model(spec, Model::Cnn, "train_cnn")?;
    let outputs = match &data.train.targets {
        Targets::Classes { num_classes, .. } => {
            spec.validate(Some(*num_classes))?;
            if *num_classes != CLASSES {
                return Err(TrainError::Data(format!(
                    "the CNN has {CLASSES} outputs; this task has {num_classes} classes"
                )));
            }
            CLASSES
        }
        Targets::Values(v) => {
            spec.validate(None)?;
            if v.nrows() != 1 {
                return Err(TrainError::Data(format!(
                    "the CNN regresses one value; this task has {} targets per sample",
                    v.nrows()
                )));
            }
            // BP's regression head has one output; FF scores the FC's 10 against ξ^u
            if spec.method.is_local() {
                REDUCED
            } else {
                1
            }
        }
    };
    if data.train.features() != IMAGE_SIDE * IMAGE_SIDE {
        return Err(TrainError::Data(format!(
            "the CNN reads {IMAGE_SIDE} × {IMAGE_SIDE} images; this task has {} features",
            data.train.features()
        )));
    }
    let train_set = limited(&data.train, spec.train_limit);
    let test_set = limited(&data.test, spec.test_limit);
    let mut network = Cnn::with_fc_stack(spec.width, &spec.fc_hidden, outputs, spec.seed);
    let par = Par::of_current_pool();
    let started = Instant::now();
    let (prototypes, reductions_used, outcome, curve) = par.with_polling_workers(|| {
        if spec.method.is_local() {
            train_local(spec, &mut network, &train_set, par, progress)
        } else {
            let (o, c) = train_global(spec, &mut network, &train_set, par, progress);
            (Vec::new(), Vec::new(), o, c)
        }
    });
    let train_seconds = started.elapsed().as_secs_f64();
    let mut result = TrainResult::before_evaluation(spec.clone(), train_seconds, outcome, curve, network.num_params());
    result.set_evaluation(evaluate_cnn(&network, &prototypes, &reductions_used, &test_set));
    Ok(TrainedCnn {
        result,
        network,
        prototypes,
        reductions: reductions_used,
    })
}

/// `count` columns of `source` (`per` values each) picked by `idx`, into `out`.
fn gather(source: &[f32], per: usize, idx: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for &i in idx {
        out.extend_from_slice(&source[i * per..(i + 1) * per]);
    }
}

/// A split's supervision: class labels, or scalar targets in [-1, 1] (regression).
#[derive(Clone, Copy)]
enum Supervision<'a> {
    Classes(&'a [u32]),
    Values(&'a [f32]),
}

impl<'a> Supervision<'a> {
    fn of(ds: &'a Dataset) -> Self {
        match &ds.targets {
            Targets::Classes { labels, .. } => Supervision::Classes(labels),
            Targets::Values(v) => Supervision::Values(v.as_slice()),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Supervision::Classes(_) => Kind::Classes(CLASSES),
            Supervision::Values(_) => Kind::Regression,
        }
    }

    /// The batch `idx`'s labels or targets (the other buffer left empty), and the targets as a
    /// `1 × B` matrix for the global loss.
    fn gather(&self, idx: &[usize], labels: &mut Vec<u32>, targets: &mut Vec<f32>, targets_mat: &mut Mat) {
        labels.clear();
        targets.clear();
        match self {
            Supervision::Classes(l) => labels.extend(idx.iter().map(|&i| l[i])),
            Supervision::Values(t) => {
                targets.extend(idx.iter().map(|&i| t[i]));
                set_shape(targets_mat, 1, idx.len());
                targets_mat.as_mut_slice().copy_from_slice(targets);
            }
        }
    }
}

/// A unit's prototypes in `R^dim` (10 for a channel's reduction and the output layer, the
/// width of a hidden FC layer): the `dim × 10` class prototypes, or regression's upper
/// prototype `ξ^u` as a `dim × 1` column (drawn from the seed and the unit like the MLP's).
fn unit_prototypes(seed: u64, unit: usize, dim: usize, kind: Kind) -> Mat {
    match layer_prototypes(seed, unit, dim, kind) {
        LayerPrototypes::Classes(p) => p,
        LayerPrototypes::Regression(u) => Mat::from_column_slice(dim, 1, &u),
    }
}

/// Dropout on a training batch's input to the layer behind `site` ([`dropout_mask`]); nothing
/// when the spec's rate is 0.
fn drop_batch_input(spec: &TrainSpec, site: usize, step: u64, input: &mut [f32], mask: &mut Vec<f32>) {
    if spec.dropout > 0.0 {
        dropout_mask(spec.seed, site, step, spec.dropout, input.len(), mask);
        apply_mask(input, mask);
    }
}

/// The local target of a unit scored against `prototypes` ([`unit_prototypes`]'s layout).
fn local_target<'a>(spec: &TrainSpec, prototypes: &'a Mat, labels: &'a [u32], targets: &'a [f32]) -> LayerTarget<'a> {
    if prototypes.ncols() == 1 {
        LayerTarget::Regression {
            prototype: prototypes.as_slice(),
            targets,
        }
    } else {
        LayerTarget::classes_of(spec, prototypes, labels)
    }
}

type LocalOutcome = (Vec<Mat>, Vec<Vec<Mat>>, UnitOutcome, Vec<EpochLoss>);

/// FF+DD and FF+AD: conv layer 1 (all its channels, each on its own loss), conv layer 2, then
/// the FC layers in order, each from the cached output of the frozen layers below it. With
/// dropout, a layer's batch input gets the step's mask of the site in front of it; the frozen
/// layers run as at inference (**reading**: a frozen layer is a deployed one; this keeps the
/// cache exact).
fn train_local(
    spec: &TrainSpec,
    network: &mut Cnn,
    train: &Dataset,
    par: Par,
    progress: &mut dyn Progress,
) -> LocalOutcome {
    let samples = train.len();
    let supervision = Supervision::of(train);
    let source = gradient_source(spec, par);
    let mut tape = Tape::new();
    tape.set_par(par);
    let mut ad = AdScratch::default();
    // the frozen-layer cache: every sample's input to the layer being trained
    let mut cache: Vec<f32> = train.inputs.as_slice().to_vec();
    let mut scratch = Scratch::default();
    let mut stacked = StackScratch::default();
    let mut mask = Vec::new();
    let mut perturbed = Vec::new();
    let mut direction = Vec::new();
    let mut prototypes = Vec::new();
    let mut all_reductions = Vec::new();
    let mut curve = Vec::new();
    let mut passes = 0u64;
    let channels = spec.width;
    let finish = |prototypes, all_reductions, divergence, passes, curve| {
        (
            prototypes,
            all_reductions,
            UnitOutcome {
                divergence,
                forward_passes: passes,
            },
            curve,
        )
    };
    for l in 0..2 {
        let shape = network.shapes[l];
        let protos = unit_prototypes(spec.seed, l, REDUCED, supervision.kind());
        let reductions = reductions(spec.seed, l, &shape);
        let per_image = shape.in_channels * shape.in_side * shape.in_side;
        let k = shape.kernel_len();
        // every channel of the layer steps on each batch (see the module documentation)
        let mut params = network.conv[l].clone();
        let mut rule = step_rule(spec, params.len());
        progress.phase(
            &format!("conv {} ({channels} channels)", l + 1),
            spec.epochs,
            samples.div_ceil(spec.batch),
        );
        let outcome = optimise(
            &mut params,
            &mut rule,
            samples,
            spec,
            batch_order_seed(spec.seed, Some(l)),
            Some(l),
            par,
            progress,
            &mut curve,
            |step_index, idx, params, grad| {
                let Scratch {
                    input,
                    cols,
                    labels: batch_labels,
                    targets,
                    targets_mat,
                    ..
                } = &mut scratch;
                gather(&cache, per_image, idx, input);
                if l > 0 {
                    drop_batch_input(spec, l - 1, step_index, input, &mut mask);
                }
                im2col(&shape, input, idx.len(), cols);
                supervision.gather(idx, batch_labels, targets, targets_mat);
                let target = local_target(spec, &protos, batch_labels, targets);
                // an evaluation of one channel sends the batch through l + 1 layers
                let passes_per_evaluation = idx.len() as u64 * (l as u64 + 1);
                let GradientSource::Directional(dd) = &source else {
                    let loss = layer_local_gradient(
                        params,
                        k,
                        cols,
                        idx.len(),
                        &reductions,
                        target,
                        &mut tape,
                        &mut ad,
                        grad,
                        par,
                    );
                    return (loss, channels as u64 * passes_per_evaluation);
                };
                let (loss, evaluations) = layer_directional_step(
                    dd,
                    params,
                    k,
                    cols,
                    idx.len(),
                    &reductions,
                    target,
                    |c| direction_seed(spec.seed, Some(l * channels + c), step_index),
                    &mut stacked,
                    grad,
                    par,
                );
                (loss, evaluations as u64 * passes_per_evaluation)
            },
        );
        network.conv[l].copy_from_slice(&params);
        passes += outcome.forward_passes;
        if outcome.divergence.is_some() {
            prototypes.push(protos);
            all_reductions.push(reductions);
            return finish(prototypes, all_reductions, outcome.divergence, passes, curve);
        }
        prototypes.push(protos);
        all_reductions.push(reductions);
        // freeze layer l: the next layer's input is its pooled output
        let mut next = Vec::with_capacity(samples * shape.channels * shape.pooled_side().pow(2));
        for start in (0..samples).step_by(IMAGE_BLOCK) {
            let count = IMAGE_BLOCK.min(samples - start);
            im2col(
                &shape,
                &cache[start * per_image..(start + count) * per_image],
                count,
                &mut scratch.cols,
            );
            convolve(
                &network.conv[l],
                k,
                &scratch.cols,
                count * shape.out_side().pow(2),
                &mut scratch.conv,
                par,
            );
            pool(&shape, &scratch.conv, count, &mut scratch.pooled);
            next.extend_from_slice(&scratch.pooled);
        }
        cache = next;
    }
    // the FC layers: layer i is unit 2 + i, after the i + 2 layers below it
    let layers = network.fc.len();
    let mut divergence = None;
    for i in 0..layers {
        let (features, width) = (network.fc_widths[i], network.fc_widths[i + 1]);
        let protos = unit_prototypes(spec.seed, 2 + i, width, supervision.kind());
        let mut params = network.fc[i].clone();
        let mut rule = step_rule(spec, params.len());
        direction.resize(params.len(), 0.0);
        let name = if layers == 1 {
            "fc".to_string()
        } else {
            format!("fc {}/{layers}", i + 1)
        };
        progress.phase(&name, spec.epochs, samples.div_ceil(spec.batch));
        let traversed = 3 + i as u64;
        let outcome = optimise(
            &mut params,
            &mut rule,
            samples,
            spec,
            batch_order_seed(spec.seed, Some(2 + i)),
            Some(2 + i),
            par,
            progress,
            &mut curve,
            |step_index, idx, params, grad| {
                let Scratch {
                    input,
                    logits,
                    goodness,
                    labels: batch_labels,
                    targets,
                    targets_mat,
                    ..
                } = &mut scratch;
                gather(&cache, features, idx, input);
                drop_batch_input(spec, 1 + i, step_index, input, &mut mask);
                supervision.gather(idx, batch_labels, targets, targets_mat);
                let target = local_target(spec, &protos, batch_labels, targets);
                let GradientSource::Directional(dd) = &source else {
                    let loss = fc_local_gradient(
                        params,
                        features,
                        input,
                        idx.len(),
                        target,
                        &mut tape,
                        &mut ad,
                        grad,
                        par,
                    );
                    return (loss, idx.len() as u64 * traversed);
                };
                let mut objective = FcObjective {
                    params,
                    perturbed: &mut perturbed,
                    inputs: input,
                    features,
                    images: idx.len(),
                    logits,
                    goodness,
                    target,
                    par,
                };
                let e = dd.estimate(
                    &mut objective,
                    direction_seed(spec.seed, Some(2 * channels + i), step_index),
                    grad,
                    &mut direction,
                );
                (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * traversed)
            },
        );
        network.fc[i].copy_from_slice(&params);
        passes += outcome.forward_passes;
        prototypes.push(protos);
        if outcome.divergence.is_some() || i + 1 == layers {
            divergence = outcome.divergence;
            break;
        }
        // freeze hidden layer i: the next layer's input is ReLU(W·x + b)
        let mut next = Vec::with_capacity(samples * width);
        for start in (0..samples).step_by(IMAGE_BLOCK) {
            let count = IMAGE_BLOCK.min(samples - start);
            fc_forward(
                &network.fc[i],
                features,
                &cache[start * features..(start + count) * features],
                count,
                &mut scratch.hidden,
                par,
            );
            relu_in_place(scratch.hidden.as_mut_slice());
            next.extend_from_slice(scratch.hidden.as_slice());
        }
        cache = next;
    }
    finish(prototypes, all_reductions, divergence, passes, curve)
}

/// BP+DD and BP+AD: every parameter at once on the last FC layer's cross-entropy (or MSE),
/// with one set of dropout masks per step.
fn train_global(
    spec: &TrainSpec,
    network: &mut Cnn,
    train: &Dataset,
    par: Par,
    progress: &mut dyn Progress,
) -> (UnitOutcome, Vec<EpochLoss>) {
    let samples = train.len();
    let supervision = Supervision::of(train);
    let source = gradient_source(spec, par);
    let mut tape = Tape::new();
    tape.set_par(par);
    let mut ad = AdScratch::default();
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let inputs = train.inputs.as_slice();
    let mut params = network.params();
    let mut rule = step_rule(spec, params.len());
    let mut direction = vec![0.0f32; params.len()];
    let mut perturbed_network = network.clone();
    let mut perturbed = Vec::new();
    let mut scratch = Scratch::default();
    let (mut batch, mut batch_labels, mut batch_targets) = (Vec::new(), Vec::new(), Vec::new());
    let mut targets_mat = Mat::zeros(0, 0);
    let mut masks = DropoutMasks::default();
    let mut curve = Vec::new();
    // one forward pass through every layer per sample and evaluation
    let traversed = 2 + network.fc.len() as u64;
    progress.phase("network", spec.epochs, samples.div_ceil(spec.batch));
    let outcome = optimise(
        &mut params,
        &mut rule,
        samples,
        spec,
        batch_order_seed(spec.seed, None),
        None,
        par,
        progress,
        &mut curve,
        |step_index, idx, params, grad| {
            gather(inputs, pixels, idx, &mut batch);
            supervision.gather(idx, &mut batch_labels, &mut batch_targets, &mut targets_mat);
            let target = match supervision {
                Supervision::Classes(_) => GlobalTarget::Classes(&batch_labels),
                Supervision::Values(_) => GlobalTarget::Regression(&targets_mat),
            };
            masks.draw(spec, &perturbed_network, step_index, idx.len());
            let GradientSource::Directional(dd) = &source else {
                perturbed_network.set_params(params);
                let loss = network_gradient(
                    &perturbed_network,
                    &batch,
                    idx.len(),
                    Some(&masks),
                    target,
                    &mut tape,
                    &mut ad,
                    grad,
                    par,
                );
                return (loss, idx.len() as u64 * traversed);
            };
            let mut objective = NetworkObjective {
                params,
                network: &mut perturbed_network,
                perturbed: &mut perturbed,
                images: &batch,
                count: idx.len(),
                target,
                masks: &masks,
                scratch: &mut scratch,
                par,
            };
            let e = dd.estimate(
                &mut objective,
                direction_seed(spec.seed, None, step_index),
                grad,
                &mut direction,
            );
            (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * traversed)
        },
    );
    network.set_params(&params);
    (outcome, curve)
}

/// Test metrics (SPEC A6), without dropout. Classification: FF by majority vote over conv 1
/// (goodness summed over channels), conv 2 and each FC layer, with per-layer accuracies; BP by
/// the argmax of the last FC layer's outputs. Regression: R² of the last layer's prediction —
/// FF the last FC layer's cosine with `ξ^u` (its goodness), BP the regression head's output.
///
/// # Panics
/// If `prototypes` and `reductions` are not those [`TrainedCnn`] holds for `network` (FF), or
/// not both empty (BP).
pub fn evaluate_cnn(network: &Cnn, prototypes: &[Mat], reductions: &[Vec<Mat>], test: &Dataset) -> Evaluation {
    let local = !prototypes.is_empty();
    let samples = test.len();
    let par = Par::of_current_pool();
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let regression = matches!(test.targets, Targets::Values(_));
    // FF: the units that trained (all of them, unless the run diverged) vote or predict
    let voters = if local { prototypes.len() } else { 1 };
    let mut votes: Vec<Vec<u32>> = vec![Vec::with_capacity(samples); voters];
    let mut scores: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); voters];
    let mut predictions: Vec<f64> = Vec::new();
    let mut scratch = Scratch::default();
    let mut logits = Mat::zeros(0, 0);
    let argmax = |m: &Mat, j: usize| (0..m.nrows()).fold(0, |b, i| if m[(i, j)] > m[(b, j)] { i } else { b }) as u32;
    for start in (0..samples).step_by(IMAGE_BLOCK) {
        let count = IMAGE_BLOCK.min(samples - start);
        let images = &test.inputs.as_slice()[start * pixels..(start + count) * pixels];
        if !local {
            network_logits(network, images, count, None, &mut scratch, &mut logits, par);
            if regression {
                predictions.extend(logits.row(0).iter().map(|&v| f64::from(v)));
            } else {
                votes[0].extend((0..count).map(|j| argmax(&logits, j)));
            }
            continue;
        }
        scratch.input.clear();
        scratch.input.extend_from_slice(images);
        for (l, shape) in network.shapes.iter().enumerate().take(voters) {
            im2col(shape, &scratch.input, count, &mut scratch.cols);
            let plane = shape.out_side().pow(2);
            convolve(
                &network.conv[l],
                shape.kernel_len(),
                &scratch.cols,
                count * plane,
                &mut scratch.conv,
                par,
            );
            // classification: the goodness summed over channels; regression: the mean of the
            // channels' scores (Supplementary 5.2)
            let mut total = Mat::zeros(CLASSES, count);
            let mut score = vec![0.0f64; count];
            for (c, a) in reductions[l].iter().enumerate() {
                reduce(
                    a,
                    &scratch.conv[c * count * plane..(c + 1) * count * plane],
                    count,
                    &mut scratch.reduced,
                    par,
                );
                if regression {
                    for (j, s) in score.iter_mut().enumerate() {
                        *s += cosine_score(&scratch.reduced, j, prototypes[l].as_slice());
                    }
                } else {
                    set_shape(&mut scratch.goodness, CLASSES, count);
                    lossfn::cosine_goodness(&scratch.reduced, &prototypes[l], &mut scratch.goodness);
                    total += &scratch.goodness;
                }
            }
            if regression {
                let channels = reductions[l].len() as f64;
                scores[l].extend(score.iter().map(|s| s / channels));
            } else {
                votes[l].extend((0..count).map(|j| argmax(&total, j)));
            }
            pool(shape, &scratch.conv, count, &mut scratch.pooled);
            std::mem::swap(&mut scratch.input, &mut scratch.pooled);
        }
        // each FC layer votes by the goodness of its outputs `z` (an MLP layer's, SPEC A6);
        // a hidden layer's ReLU(z) feeds the next
        for (i, params) in network.fc.iter().enumerate().take(voters.saturating_sub(2)) {
            fc_forward(params, network.fc_widths[i], &scratch.input, count, &mut logits, par);
            let unit = 2 + i;
            if regression {
                scores[unit].extend((0..count).map(|j| cosine_score(&logits, j, prototypes[unit].as_slice())));
            } else {
                set_shape(&mut scratch.goodness, CLASSES, count);
                lossfn::cosine_goodness(&logits, &prototypes[unit], &mut scratch.goodness);
                votes[unit].extend((0..count).map(|j| argmax(&scratch.goodness, j)));
            }
            scratch.input.clear();
            scratch.input.extend(logits.as_slice().iter().map(|&z| relu(z)));
        }
    }
    match &test.targets {
        Targets::Values(v) => {
            let y: Vec<f64> = v.row(0).iter().map(|&t| f64::from(t)).collect();
            if !local {
                return Evaluation {
                    test_r2: Some(r_squared(&predictions, &y)),
                    ..Evaluation::default()
                };
            }
            // the prediction is the last layer's goodness (SPEC A6): none if it never trained
            let last_trained = voters == 2 + network.fc.len();
            Evaluation {
                test_r2: last_trained.then(|| r_squared(&scores[voters - 1], &y)),
                per_layer_test_r2: Some(scores.iter().map(|s| r_squared(s, &y)).collect()),
                ..Evaluation::default()
            }
        }
        Targets::Classes { labels, .. } if local => {
            let refs: Vec<&Vec<u32>> = votes.iter().collect();
            let vote = majority_vote(&refs, samples);
            Evaluation {
                test_accuracy: Some(accuracy(&vote, labels)),
                per_layer_test_accuracy: Some(votes.iter().map(|v| accuracy(v, labels)).collect()),
                ..Evaluation::default()
            }
        }
        Targets::Classes { labels, .. } => Evaluation {
            test_accuracy: Some(accuracy(&votes[0], labels)),
            ..Evaluation::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_optim::Difference;
    use rand::Rng;

    fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut r = rng(seed);
        (0..len).map(|_| r.random_range(-scale..scale)).collect()
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for (shape, images) in conv_shapes(3).into_iter().zip([2, 3]) {
            let x = random(images * shape.in_channels * shape.in_side.pow(2), 1, 1.0);
            let mut cols = Vec::new();
            im2col(&shape, &x, images, &mut cols);
            let c = random(cols.len(), 2, 1.0);
            let mut back = Vec::new();
            col2im(&shape, &c, images, &mut back);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
            let (l, r) = (dot(&cols, &c), dot(&x, &back));
            assert!((l - r).abs() < 1e-5 * l.abs().max(1.0), "{l} vs {r}");
        }
    }

    #[test]
    fn im2col_equals_the_definition_of_a_padded_window() {
        for (shape, images) in conv_shapes(3).into_iter().zip([2, 3]) {
            let (side, out, k) = (shape.in_side, shape.out_side(), shape.kernel_len());
            let x = random(images * shape.in_channels * side * side, 3, 1.0);
            let mut cols = vec![f32::NAN; 7];
            im2col(&shape, &x, images, &mut cols);
            assert_eq!(cols.len(), k * images * out * out);
            for b in 0..images {
                for (y, xo) in (0..out).flat_map(|y| (0..out).map(move |xo| (y, xo))) {
                    for (ci, ky, kx) in (0..shape.in_channels)
                        .flat_map(|ci| (0..KERNEL).flat_map(move |ky| (0..KERNEL).map(move |kx| (ci, ky, kx))))
                    {
                        let (iy, ix) = (
                            (y + ky) as isize - PADDING as isize,
                            (xo + kx) as isize - PADDING as isize,
                        );
                        let inside = (0..side as isize).contains(&iy) && (0..side as isize).contains(&ix);
                        let want = if inside {
                            x[((b * shape.in_channels + ci) * side + iy as usize) * side + ix as usize]
                        } else {
                            0.0
                        };
                        let got = cols[((b * out + y) * out + xo) * k + (ci * KERNEL + ky) * KERNEL + kx];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "image {b} at ({y}, {xo}), ({ci}, {ky}, {kx})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn row_sums_are_each_rows_sum_in_order_bit_for_bit() {
        for rows in [0, 1, 7, 8, 9, 17] {
            for columns in [1, 33] {
                let mut values = random(rows * columns, 4, 1e3);
                // one all-negative-zero row: its sum keeps the sign `Iterator::sum` gives it
                if rows > 2 {
                    values[2 * columns..3 * columns].fill(-0.0);
                }
                let mut got = vec![f64::NAN; rows];
                row_sums(&values, rows, columns, |r, v| got[r] = v);
                for (r, row) in values.chunks_exact(columns).enumerate() {
                    let want: f64 = row.iter().map(|&v| f64::from(v)).sum();
                    assert_eq!(got[r].to_bits(), want.to_bits(), "{rows} × {columns}, row {r}");
                }
            }
        }
    }

    /// Central differences of `loss` at the `count` largest entries of `grad` in `range`.
    fn check(
        params: &[f32],
        grad: &[f32],
        range: std::ops::Range<usize>,
        count: usize,
        mut loss: impl FnMut(&[f32]) -> f64,
    ) {
        let mut order: Vec<usize> = range.collect();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        for &i in order.iter().take(count) {
            let h = 1e-3f32;
            let mut p = params.to_vec();
            p[i] = params[i] + h;
            let up = loss(&p);
            p[i] = params[i] - h;
            let down = loss(&p);
            let fd = (up - down) / f64::from(2.0 * h);
            let g = f64::from(grad[i]);
            assert!(
                (fd - g).abs() < 0.03 * g.abs() + 2e-4,
                "parameter {i}: exact {g} vs FD {fd}"
            );
        }
    }

    #[test]
    fn the_back_propagated_gradient_matches_central_differences() {
        let (channels, images) = (2, 3);
        let x = random(images * 784, 6, 1.0).iter().map(|v| v.abs()).collect::<Vec<_>>();
        let labels = [3u32, 7, 1];
        let targets = Mat::from_row_slice(1, images, &[0.3, -0.8, 0.5]);
        // classification (10 outputs, cross-entropy) and regression (1 output, MSE); MNIST's
        // network and a Fashion-MNIST-like one (a hidden FC layer of 7, dropout 0.3 at every site)
        let with_dropout = TrainSpec {
            dropout: 0.3,
            seed: 1,
            ..TrainSpec::default()
        };
        for (hidden, outputs, target) in [
            (&[][..], CLASSES, GlobalTarget::Classes(&labels)),
            (&[][..], 1, GlobalTarget::Regression(&targets)),
            (&[7][..], CLASSES, GlobalTarget::Classes(&labels)),
            (&[7][..], 1, GlobalTarget::Regression(&targets)),
        ] {
            let network = Cnn::with_fc_stack(channels, hidden, outputs, 5);
            let mut masks = DropoutMasks::default();
            if !hidden.is_empty() {
                masks.draw(&with_dropout, &network, 4, images);
                assert_eq!(masks.sites.len(), 3);
                let dropped = masks.sites.iter().flatten().filter(|&&m| m == 0.0).count();
                let all = masks.sites.iter().map(Vec::len).sum::<usize>();
                assert!(
                    (0.2..0.4).contains(&(dropped as f64 / all as f64)),
                    "{dropped} of {all} dropped"
                );
            }
            let mut tape = Tape::new();
            let mut grad = vec![0.0f32; network.num_params()];
            let mut ad = AdScratch::default();
            let value = network_gradient(
                &network,
                &x,
                images,
                Some(&masks),
                target,
                &mut tape,
                &mut ad,
                &mut grad,
                Par::Seq,
            );
            let params = network.params();
            let mut probe = network.clone();
            let mut scratch = Scratch::default();
            let mut logits = Mat::zeros(0, 0);
            let mut loss = |p: &[f32]| {
                probe.set_params(p);
                network_logits(&probe, &x, images, Some(&masks), &mut scratch, &mut logits, Par::Seq);
                target.loss(&logits)
            };
            assert!((loss(&params) - value).abs() < 1e-9);
            let mut start = 0;
            let blocks = network.conv.iter().map(Vec::len).chain(network.fc.iter().map(Vec::len));
            for len in blocks {
                check(&params, &grad, start..start + len, 8.min(len), &mut loss);
                start += len;
            }
            assert_eq!(start, params.len());
        }
    }

    /// One channel's local loss at perturbed kernels, each evaluated on its own (the
    /// procedure [`layer_directional_step`] stacks).
    struct OneChannel<'a> {
        params: &'a [f32],
        k: usize,
        cols: &'a [f32],
        images: usize,
        reduction: &'a Mat,
        target: LayerTarget<'a>,
    }

    impl PerturbedObjective for OneChannel<'_> {
        fn dim(&self) -> usize {
            self.params.len()
        }
        fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
            let (mut conv, mut reduced) = (Vec::new(), Mat::zeros(0, 0));
            for (o, &step) in out.iter_mut().zip(steps) {
                let p: Vec<f32> = self.params.iter().zip(direction).map(|(p, d)| p + step * d).collect();
                convolve(&p, self.k, self.cols, self.cols.len() / self.k, &mut conv, Par::Seq);
                reduce(self.reduction, &conv, self.images, &mut reduced, Par::Seq);
                *o = self.target.loss(&reduced);
            }
        }
    }

    #[test]
    fn the_stacked_directional_step_is_each_channels_own_estimate() {
        let images = 3;
        let shape = conv_shapes(2)[1];
        let k = shape.kernel_len();
        let x = random(images * shape.in_channels * shape.in_side.pow(2), 12, 1.0);
        let mut cols = Vec::new();
        im2col(&shape, &x, images, &mut cols);
        // 11 channels: a full stack of 8 and one of 3
        let channels = STACKED_CHANNELS + 3;
        let params = random(channels * (k + 1), 13, 0.3);
        let layer_reductions = reductions(14, 1, &ConvShape { channels, ..shape });
        let labels = [1u32, 5, 8];
        let spec = TrainSpec::default();
        let protos = unit_prototypes(9, 1, REDUCED, Kind::Classes(CLASSES));
        let target = local_target(&spec, &protos, &labels, &[]);
        let seed = |c: usize| derive_seed(15, &[c as u64]);
        for (directions, difference) in [(1, Difference::Central), (2, Difference::Forward)] {
            let dd = DirectionalDerivative {
                directions,
                eps: 1e-2,
                difference,
                ..DirectionalDerivative::default()
            };
            let mut grad = vec![0.0f32; params.len()];
            let (loss, evaluations) = layer_directional_step(
                &dd,
                &params,
                k,
                &cols,
                images,
                &layer_reductions,
                target,
                seed,
                &mut StackScratch::default(),
                &mut grad,
                Par::Seq,
            );
            let mut expected = vec![0.0f32; params.len()];
            let (mut loss_sum, mut expected_evaluations) = (0.0, 0);
            let mut direction = vec![0.0f32; k + 1];
            for c in 0..channels {
                let chunk = c * (k + 1)..(c + 1) * (k + 1);
                let mut own = OneChannel {
                    params: &params[chunk.clone()],
                    k,
                    cols: &cols,
                    images,
                    reduction: &layer_reductions[c],
                    target,
                };
                let e = dd.estimate(&mut own, seed(c), &mut expected[chunk], &mut direction);
                loss_sum += e.mean_loss;
                expected_evaluations += e.evaluations;
            }
            assert_eq!(evaluations, expected_evaluations);
            assert!((loss - loss_sum / channels as f64).abs() < 1e-6 * loss.abs());
            let scale = expected.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            for (i, (g, e)) in grad.iter().zip(&expected).enumerate() {
                assert!((g - e).abs() <= 1e-3 * scale, "{difference:?} entry {i}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn the_local_gradients_of_a_channel_and_the_fc_layer_match_central_differences() {
        let images = 4;
        let shape = conv_shapes(3)[1];
        let k = shape.kernel_len();
        let x = random(images * shape.in_channels * shape.in_side.pow(2), 7, 1.0);
        let mut cols = Vec::new();
        im2col(&shape, &x, images, &mut cols);
        // the layer's three channels at once: each channel's gradient is that of its own loss
        let channels = 3;
        let params = random(channels * (k + 1), 8, 0.3);
        let layer_reductions = reductions(9, 1, &shape);
        let labels = [0u32, 4, 9, 2];
        let values = [0.5f32, -0.2, 0.9, -0.7];
        let spec = TrainSpec::default();
        for kind in [Kind::Classes(CLASSES), Kind::Regression] {
            let protos = unit_prototypes(9, 1, REDUCED, kind);
            let target = local_target(&spec, &protos, &labels, &values);
            let mut tape = Tape::new();
            let mut ad = AdScratch::default();
            let mut grad = vec![0.0f32; params.len()];
            let value = layer_local_gradient(
                &params,
                k,
                &cols,
                images,
                &layer_reductions,
                target,
                &mut tape,
                &mut ad,
                &mut grad,
                Par::Seq,
            );
            let (mut conv, mut reduced) = (Vec::new(), Mat::zeros(0, 0));
            let mut channel_loss = |c: usize, p: &[f32]| {
                convolve(p, k, &cols, cols.len() / k, &mut conv, Par::Seq);
                reduce(&layer_reductions[c], &conv, images, &mut reduced, Par::Seq);
                target.loss(&reduced)
            };
            let chunk = |c: usize| c * (k + 1)..(c + 1) * (k + 1);
            let mean = (0..channels).map(|c| channel_loss(c, &params[chunk(c)])).sum::<f64>() / channels as f64;
            // one product for the three channels rounds differently from three of one row
            assert!((mean - value).abs() < 1e-6 * mean.abs(), "{mean} vs {value}");
            for c in 0..channels {
                check(&params[chunk(c)], &grad[chunk(c)], 0..k + 1, 12, &mut |p: &[f32]| {
                    channel_loss(c, p)
                });
            }
            // the FC layer on random features
            let features = 3 * 36;
            let inputs = random(features * images, 10, 1.0);
            let fc = random(CLASSES * features + CLASSES, 11, 0.2);
            let mut grad = vec![0.0f32; fc.len()];
            let value = fc_local_gradient(
                &fc,
                features,
                &inputs,
                images,
                target,
                &mut tape,
                &mut ad,
                &mut grad,
                Par::Seq,
            );
            let mut out = Mat::zeros(0, 0);
            let mut loss = |p: &[f32]| {
                fc_forward(p, features, &inputs, images, &mut out, Par::Seq);
                target.loss(&out)
            };
            assert!((loss(&fc) - value).abs() < 1e-9);
            check(&fc, &grad, 0..fc.len(), 12, &mut loss);
        }
    }
}
