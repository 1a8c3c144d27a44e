//! FFzero on the convolutional network of seed 000 (Supplementary 5.2; SPEC A7), trained by
//! the two forward-only methods.
//!
//! **The network** (MNIST, SPEC A7). Two convolution layers of `C` channels (`TrainSpec::width`),
//! kernel 6 × 6, padding 2, stride 1, ReLU, then 2 × 2 max-pooling with stride 2
//! (28 → 27 → 13 → 12 → 6), then a fully connected layer from `C·6·6` to 10 outputs.
//!
//! **FF+DD.** Each channel of a convolution layer is its own unit: its conv output (after the
//! ReLU, before pooling: `H_out·W_out` values; **reading**, SPEC says "conv output") is reduced
//! by its own fixed Gaussian matrix `A^(i) ∈ R^{10 × H_out W_out}` (variance `1/(H_out W_out)`),
//! scored by the cosine goodness against simplex prototypes in `R^10` and trained on the margin
//! loss (eq. 16) or eq. 5 from directional derivatives over that channel's kernel and bias only
//! (`n = C_in·36 + 1`). A channel's goodness depends on its own kernel only, so training the
//! channels one after the other — each for `epochs` epochs on the layer's batch order, with its
//! own directions — gives exactly what updating them all in each step would. The layers train
//! in sequence (SPEC A3), each from the cached pooled output of the frozen layer below (an exact
//! shortcut; the forward-pass count charges the physical re-runs). The fully connected layer
//! trains like an MLP layer (its 10 outputs against prototypes in `R^10`).
//! Prediction (SPEC A6): a convolution layer votes the argmax of its goodness summed over
//! channels, the FC layer the argmax of its own; the network takes the majority (ties to the
//! latest layer).
//!
//! **BP+DD.** One directional-derivative estimate over every parameter of the network, on the
//! softmax cross-entropy of the FC layer's 10 outputs; prediction by their argmax.
//!
//! **Not here:** the AD baselines (`TrainSpec::validate` refuses them), regression with the CNN,
//! and Fashion-MNIST's variant (dropout 0.1 after each convolution, an FC stack {100, 10}).
//!
//! Both methods reach the network only through [`PerturbedObjective`]: forward evaluations at
//! perturbed parameters.

use std::time::Instant;

use insitu_autodiff::loss as lossfn;
use insitu_data::{Dataset, TrainTest};
use insitu_linalg::{derive_seed, matmul, rng, set_shape, Accum, Mat, MatMut, MatRef, Par};
use insitu_optim::{PerturbedObjective, Progress};
use rand_distr::{Distribution, StandardNormal};

use crate::metrics::{accuracy, majority_vote};
use crate::objective::LayerTarget;
use crate::spec::{Model, TrainSpec};
use crate::train::{
    batch_order_seed, classifier_classes, direction_seed, gradient_source, layer_prototypes, limited, optimise,
    step_rule, EpochLoss, Evaluation, GradientSource, Kind, LayerPrototypes, TrainError, TrainResult, UnitOutcome,
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
/// (its kernel, `[c_in][ky][kx]`, then its bias); the FC layer's 10 × `C·36` weights (row-major)
/// then its 10 biases.
#[derive(Clone, Debug, PartialEq)]
pub struct Cnn {
    shapes: [ConvShape; 2],
    conv: [Vec<f32>; 2],
    fc: Vec<f32>,
}

impl Cnn {
    /// He-initialised (`N(0, 2/fan_in)`, zero biases) from `seed`.
    pub fn new(channels: usize, seed: u64) -> Self {
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
        let fc_in = channels * shapes[1].pooled_side().pow(2);
        let mut fc = init(fc_in, CLASSES, false);
        fc.extend(std::iter::repeat_n(0.0, CLASSES));
        Self { shapes, conv, fc }
    }

    /// The two convolution layers' shapes.
    pub fn shapes(&self) -> [ConvShape; 2] {
        self.shapes
    }
    /// Inputs of the FC layer (`C·6·6`).
    pub fn fc_inputs(&self) -> usize {
        self.shapes[1].channels * self.shapes[1].pooled_side().pow(2)
    }
    /// Every parameter, conv layers then FC (BP+DD's vector).
    pub fn params(&self) -> Vec<f32> {
        [self.conv[0].as_slice(), &self.conv[1], &self.fc].concat()
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.conv[0].len() + self.conv[1].len() + self.fc.len()
    }
    /// The FC layer's 10 outputs for `images` (`784 × B`, one 28 × 28 image per column, pixels
    /// row-major), `10 × B`.
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
            &mut Scratch::default(),
            &mut out,
            Par::Seq,
        );
        out
    }

    /// The parameters of channel `channel` of convolution layer `layer` (its kernel
    /// `[c_in][ky][kx]`, then its bias) and the FC layer's (`10 × C·36` row-major, then 10
    /// biases), for inspection or export.
    pub fn channel_params(&self, layer: usize, channel: usize) -> &[f32] {
        let len = self.shapes[layer].channel_params();
        &self.conv[layer][channel * len..(channel + 1) * len]
    }

    /// The FC layer's weights then biases.
    pub fn fc_params(&self) -> &[f32] {
        &self.fc
    }

    fn set_params(&mut self, p: &[f32]) {
        let (a, rest) = p.split_at(self.conv[0].len());
        let (b, c) = rest.split_at(self.conv[1].len());
        self.conv[0].copy_from_slice(a);
        self.conv[1].copy_from_slice(b);
        self.fc.copy_from_slice(c);
    }
}

/// `cols` (`K × B·out²`, column-major) of the images in `input` (`B` images of `C_in·side²`
/// values each, channel-major, row-major planes).
fn im2col(shape: &ConvShape, input: &[f32], images: usize, cols: &mut Vec<f32>) {
    let (side, out, k) = (shape.in_side, shape.out_side(), shape.kernel_len());
    let plane = side * side;
    cols.clear();
    cols.resize(k * images * out * out, 0.0);
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
                        let iy = (y + ky) as isize - PADDING as isize;
                        if iy < 0 || iy >= side as isize {
                            continue;
                        }
                        let row = ci * plane + iy as usize * side;
                        let dst = (ci * KERNEL + ky) * KERNEL;
                        col[dst + kx0..dst + kx1].copy_from_slice(&image[row + ix0..row + ix0 + (kx1 - kx0)]);
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
    out.clear();
    out.resize(rows * columns, 0.0);
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
            *v = (*v + bias).max(0.0);
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
                    dst[y * p + x] = plane[i].max(plane[i + 1]).max(plane[i + o]).max(plane[i + o + 1]);
                }
            }
        }
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
    logits: Mat,
    goodness: Mat,
    labels: Vec<u32>,
}

/// FF+DD's view of one convolution channel: its reduced outputs' local loss at perturbed kernel
/// and bias, on a batch whose im2col is precomputed.
struct ChannelObjective<'a> {
    params: &'a [f32],
    perturbed: &'a mut Vec<f32>,
    k: usize,
    cols: &'a [f32],
    images: usize,
    reduction: &'a Mat,
    conv: &'a mut Vec<f32>,
    reduced: &'a mut Mat,
    goodness: &'a mut Mat,
    target: LayerTarget<'a>,
    par: Par,
}

impl PerturbedObjective for ChannelObjective<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }
    fn losses_along(&mut self, direction: &[f32], steps: &[f32], out: &mut [f64]) {
        let columns = self.cols.len() / self.k;
        for (o, &step) in out.iter_mut().zip(steps) {
            self.perturbed.clear();
            self.perturbed
                .extend(self.params.iter().zip(direction).map(|(p, d)| p + step * d));
            convolve(self.perturbed, self.k, self.cols, columns, self.conv, self.par);
            reduce(self.reduction, self.conv, self.images, self.reduced, self.par);
            *o = self.target.loss_with_goodness(self.reduced, self.goodness);
        }
    }
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

fn fc_forward(params: &[f32], features: usize, inputs: &[f32], images: usize, out: &mut Mat, par: Par) {
    set_shape(out, CLASSES, images);
    matmul(
        MatMut::from(&mut *out),
        Accum::Replace,
        MatRef::from_row_major(&params[..CLASSES * features], CLASSES, features),
        MatRef::from_col_major(inputs, features, images),
        1.0,
        par,
    );
    let bias = &params[CLASSES * features..];
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

/// BP+DD's view: the cross-entropy of the FC outputs at perturbed parameters of the whole
/// network.
struct NetworkObjective<'a> {
    params: &'a [f32],
    network: &'a mut Cnn,
    perturbed: &'a mut Vec<f32>,
    images: &'a [f32],
    count: usize,
    labels: &'a [u32],
    scratch: &'a mut Scratch,
    par: Par,
}

/// The FC outputs of `network` for `count` images (784 values each) into `logits`.
fn network_logits(network: &Cnn, images: &[f32], count: usize, scratch: &mut Scratch, logits: &mut Mat, par: Par) {
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
        std::mem::swap(&mut scratch.input, &mut scratch.pooled);
    }
    fc_forward(&network.fc, network.fc_inputs(), &scratch.input, count, logits, par);
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
                self.scratch,
                &mut logits,
                self.par,
            );
            *o = lossfn::softmax_cross_entropy(&logits, self.labels);
        }
        self.scratch.logits = logits;
    }
}

/// A trained CNN and what it was trained against.
#[derive(Clone, Debug)]
pub struct TrainedCnn {
    /// What [`train`](crate::train()) returns for the spec.
    pub result: TrainResult,
    /// The trained network.
    pub network: Cnn,
    /// FF+DD: the prototypes of conv layer 1, conv layer 2 and the FC layer (`10 × 10` each);
    /// empty for BP+DD.
    pub prototypes: Vec<Mat>,
    /// FF+DD: each convolution channel's reduction matrix, per layer; empty for BP+DD.
    pub reductions: Vec<Vec<Mat>>,
}

/// Trains the CNN of SPEC A7 per `spec` (`model: cnn`, `width` = channels `C`, method `ff-dd`
/// or `bp-dd`) on `data` (28 × 28 images, 10 classes) and evaluates it on the test split;
/// [`train`](crate::train()) calls this for CNN specs. The numbers do not depend on the thread
/// count.
pub fn train_cnn(spec: &TrainSpec, data: &TrainTest, progress: &mut dyn Progress) -> Result<TrainedCnn, TrainError> {
    let classes = classifier_classes(spec, data, Model::Cnn, "train_cnn", "the CNN")?;
    spec.validate(Some(classes))?;
    if classes != CLASSES {
        return Err(TrainError::Data(format!(
            "the CNN has {CLASSES} outputs; this task has {classes} classes"
        )));
    }
    if data.train.features() != IMAGE_SIDE * IMAGE_SIDE {
        return Err(TrainError::Data(format!(
            "the CNN reads {IMAGE_SIDE} × {IMAGE_SIDE} images; this task has {} features",
            data.train.features()
        )));
    }
    let train_set = limited(&data.train, spec.train_limit);
    let test_set = limited(&data.test, spec.test_limit);
    let mut network = Cnn::new(spec.width, spec.seed);
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

fn class_prototypes(seed: u64, unit: usize) -> Mat {
    match layer_prototypes(seed, unit, REDUCED, Kind::Classes(CLASSES)) {
        LayerPrototypes::Classes(p) => p,
        LayerPrototypes::Regression(_) => unreachable!("classification"),
    }
}

/// `count` columns of `source` (`per` values each) picked by `idx`, into `out`.
fn gather(source: &[f32], per: usize, idx: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for &i in idx {
        out.extend_from_slice(&source[i * per..(i + 1) * per]);
    }
}

type LocalOutcome = (Vec<Mat>, Vec<Vec<Mat>>, UnitOutcome, Vec<EpochLoss>);

/// FF+DD: conv layer 1 channel by channel, conv layer 2 channel by channel, then the FC layer.
fn train_local(
    spec: &TrainSpec,
    network: &mut Cnn,
    train: &Dataset,
    par: Par,
    progress: &mut dyn Progress,
) -> LocalOutcome {
    let samples = train.len();
    let labels = train.labels().expect("classification, checked");
    let GradientSource::Directional(dd) = gradient_source(spec, par) else {
        unreachable!("validated: ff-dd")
    };
    // the frozen-layer cache: every sample's input to the layer being trained
    let mut cache: Vec<f32> = train.inputs.as_slice().to_vec();
    let mut scratch = Scratch::default();
    let mut perturbed = Vec::new();
    let mut direction = Vec::new();
    let mut prototypes = Vec::new();
    let mut all_reductions = Vec::new();
    let mut curve = Vec::new();
    let mut passes = 0u64;
    let channels = spec.width;
    for l in 0..2 {
        let shape = network.shapes[l];
        let protos = class_prototypes(spec.seed, l);
        let reductions = reductions(spec.seed, l, &shape);
        let per_image = shape.in_channels * shape.in_side * shape.in_side;
        let k = shape.kernel_len();
        let order_seed = batch_order_seed(spec.seed, Some(l));
        for c in 0..channels {
            let unit = l * channels + c;
            let chunk = c * (k + 1)..(c + 1) * (k + 1);
            let mut params = network.conv[l][chunk.clone()].to_vec();
            let mut rule = step_rule(spec, params.len());
            direction.resize(params.len(), 0.0);
            progress.phase(
                &format!("conv {} channel {}/{channels}", l + 1, c + 1),
                spec.epochs,
                samples.div_ceil(spec.batch),
            );
            let outcome = optimise(
                &mut params,
                &mut rule,
                samples,
                spec,
                order_seed,
                Some(l),
                par,
                progress,
                &mut curve,
                |step_index, idx, params, grad| {
                    let Scratch {
                        input,
                        cols,
                        conv,
                        reduced,
                        goodness,
                        labels: batch_labels,
                        ..
                    } = &mut scratch;
                    gather(&cache, per_image, idx, input);
                    im2col(&shape, input, idx.len(), cols);
                    batch_labels.clear();
                    batch_labels.extend(idx.iter().map(|&i| labels[i]));
                    let mut objective = ChannelObjective {
                        params,
                        perturbed: &mut perturbed,
                        k,
                        cols,
                        images: idx.len(),
                        reduction: &reductions[c],
                        conv,
                        reduced,
                        goodness,
                        target: LayerTarget::classes_of(spec, &protos, batch_labels),
                        par,
                    };
                    let e = dd.estimate(
                        &mut objective,
                        direction_seed(spec.seed, Some(unit), step_index),
                        grad,
                        &mut direction,
                    );
                    (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * (l as u64 + 1))
                },
            );
            network.conv[l][chunk].copy_from_slice(&params);
            passes += outcome.forward_passes;
            if outcome.divergence.is_some() {
                prototypes.push(protos);
                all_reductions.push(reductions);
                return (
                    prototypes,
                    all_reductions,
                    UnitOutcome {
                        divergence: outcome.divergence,
                        forward_passes: passes,
                    },
                    curve,
                );
            }
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
    // the FC layer
    let features = network.fc_inputs();
    let protos = class_prototypes(spec.seed, 2);
    let mut params = network.fc.clone();
    let mut rule = step_rule(spec, params.len());
    direction.resize(params.len(), 0.0);
    progress.phase("fc", spec.epochs, samples.div_ceil(spec.batch));
    let outcome = optimise(
        &mut params,
        &mut rule,
        samples,
        spec,
        batch_order_seed(spec.seed, Some(2)),
        Some(2),
        par,
        progress,
        &mut curve,
        |step_index, idx, params, grad| {
            let Scratch {
                input,
                logits,
                goodness,
                labels: batch_labels,
                ..
            } = &mut scratch;
            gather(&cache, features, idx, input);
            batch_labels.clear();
            batch_labels.extend(idx.iter().map(|&i| labels[i]));
            let mut objective = FcObjective {
                params,
                perturbed: &mut perturbed,
                inputs: input,
                features,
                images: idx.len(),
                logits,
                goodness,
                target: LayerTarget::classes_of(spec, &protos, batch_labels),
                par,
            };
            let e = dd.estimate(
                &mut objective,
                direction_seed(spec.seed, Some(2 * channels), step_index),
                grad,
                &mut direction,
            );
            (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * 3)
        },
    );
    network.fc.copy_from_slice(&params);
    passes += outcome.forward_passes;
    prototypes.push(protos);
    (
        prototypes,
        all_reductions,
        UnitOutcome {
            divergence: outcome.divergence,
            forward_passes: passes,
        },
        curve,
    )
}

/// BP+DD: every parameter at once on the FC outputs' cross-entropy.
fn train_global(
    spec: &TrainSpec,
    network: &mut Cnn,
    train: &Dataset,
    par: Par,
    progress: &mut dyn Progress,
) -> (UnitOutcome, Vec<EpochLoss>) {
    let samples = train.len();
    let labels = train.labels().expect("classification, checked");
    let GradientSource::Directional(dd) = gradient_source(spec, par) else {
        unreachable!("validated: bp-dd")
    };
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let inputs = train.inputs.as_slice();
    let mut params = network.params();
    let mut rule = step_rule(spec, params.len());
    let mut direction = vec![0.0f32; params.len()];
    let mut perturbed_network = network.clone();
    let mut perturbed = Vec::new();
    let mut scratch = Scratch::default();
    let (mut batch, mut batch_labels) = (Vec::new(), Vec::new());
    let mut curve = Vec::new();
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
            batch_labels.clear();
            batch_labels.extend(idx.iter().map(|&i| labels[i]));
            let mut objective = NetworkObjective {
                params,
                network: &mut perturbed_network,
                perturbed: &mut perturbed,
                images: &batch,
                count: idx.len(),
                labels: &batch_labels,
                scratch: &mut scratch,
                par,
            };
            let e = dd.estimate(
                &mut objective,
                direction_seed(spec.seed, None, step_index),
                grad,
                &mut direction,
            );
            (e.mean_loss, e.evaluations as u64 * idx.len() as u64 * 3)
        },
    );
    network.set_params(&params);
    (outcome, curve)
}

/// Test metrics (SPEC A6): FF+DD by majority vote over conv 1 (goodness summed over channels),
/// conv 2 and the FC layer, with per-layer accuracies; BP+DD by the argmax of the FC outputs.
pub fn evaluate_cnn(network: &Cnn, prototypes: &[Mat], reductions: &[Vec<Mat>], test: &Dataset) -> Evaluation {
    let local = !prototypes.is_empty();
    let labels = test.labels().expect("classification");
    let samples = test.len();
    let par = Par::of_current_pool();
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let mut votes: Vec<Vec<u32>> = vec![Vec::with_capacity(samples); if local { 3 } else { 1 }];
    let mut scratch = Scratch::default();
    let mut logits = Mat::zeros(0, 0);
    let argmax = |m: &Mat, j: usize| (0..m.nrows()).fold(0, |b, i| if m[(i, j)] > m[(b, j)] { i } else { b }) as u32;
    for start in (0..samples).step_by(IMAGE_BLOCK) {
        let count = IMAGE_BLOCK.min(samples - start);
        let images = &test.inputs.as_slice()[start * pixels..(start + count) * pixels];
        if !local {
            network_logits(network, images, count, &mut scratch, &mut logits, par);
            votes[0].extend((0..count).map(|j| argmax(&logits, j)));
            continue;
        }
        scratch.input.clear();
        scratch.input.extend_from_slice(images);
        for (l, shape) in network.shapes.iter().enumerate() {
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
            let mut total = Mat::zeros(CLASSES, count);
            for (c, a) in reductions[l].iter().enumerate() {
                reduce(
                    a,
                    &scratch.conv[c * count * plane..(c + 1) * count * plane],
                    count,
                    &mut scratch.reduced,
                    par,
                );
                set_shape(&mut scratch.goodness, CLASSES, count);
                lossfn::cosine_goodness(&scratch.reduced, &prototypes[l], &mut scratch.goodness);
                total += &scratch.goodness;
            }
            votes[l].extend((0..count).map(|j| argmax(&total, j)));
            pool(shape, &scratch.conv, count, &mut scratch.pooled);
            std::mem::swap(&mut scratch.input, &mut scratch.pooled);
        }
        fc_forward(
            &network.fc,
            network.fc_inputs(),
            &scratch.input,
            count,
            &mut logits,
            par,
        );
        set_shape(&mut scratch.goodness, CLASSES, count);
        lossfn::cosine_goodness(&logits, &prototypes[2], &mut scratch.goodness);
        votes[2].extend((0..count).map(|j| argmax(&scratch.goodness, j)));
    }
    if local {
        let refs: Vec<&Vec<u32>> = votes.iter().collect();
        let vote = majority_vote(&refs, samples);
        Evaluation {
            test_accuracy: Some(accuracy(&vote, labels)),
            per_layer_test_accuracy: Some(votes.iter().map(|v| accuracy(v, labels)).collect()),
            test_r2: None,
        }
    } else {
        Evaluation {
            test_accuracy: Some(accuracy(&votes[0], labels)),
            per_layer_test_accuracy: None,
            test_r2: None,
        }
    }
}
