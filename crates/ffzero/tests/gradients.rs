//! The directional-derivative estimates, averaged over many directions with a fixed seed,
//! point where the autodiff gradients point — for the local (FF) and the global (BP) losses
//! (issue 4: cosine > 0.99). This ties the forward-only objectives, the estimator's scaling
//! and the tape's gradients together: a mistake in any of them fails here.

use insitu_autodiff::Tape;
use insitu_ffzero::{
    forward_by_blocks, layer_gradient_autodiff, network_gradient_autodiff, DenseShape, GlobalTarget, LayerInput,
    LayerObjective, LayerScratch, LayerTarget, LocalLoss, Mlp, NetworkObjective,
};
use insitu_linalg::{rng, Mat, MatRef, Par, SparseColumns};
use insitu_optim::{DirectionalDerivative, PerturbedObjective};
use insitu_proto::{antipodal_pair, simplex_prototypes};
use rand::Rng;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn batch(features: usize, n: usize, classes: u32, seed: u64) -> (Mat, Vec<u32>, Vec<f32>) {
    let mut g = rng(seed);
    let x = Mat::from_fn(features, n, |_, _| g.random_range(0.0..1.0));
    let labels = (0..n).map(|_| g.random_range(0..classes)).collect();
    let targets = (0..n).map(|_| g.random_range(-1.0..1.0)).collect();
    (x, labels, targets)
}

/// `P` large enough that cos ≈ 1/sqrt(1 + n/P) > 0.995 for an exact directional derivative.
fn many_directions(n: usize) -> DirectionalDerivative {
    DirectionalDerivative {
        directions: 200 * n,
        eps: 1e-3,
        ..Default::default()
    }
}

/// The three local losses of SPEC A2: margin (eq. 16), eq. 5, squared cosine (eq. 8).
fn all_local_losses<'a>(
    protos: &'a Mat,
    labels: &'a [u32],
    upper: &'a [f32],
    targets: &'a [f32],
) -> [LayerTarget<'a>; 3] {
    [
        LayerTarget::Classes {
            prototypes: protos,
            labels,
            loss: LocalLoss::Margin,
            margin: 0.3,
        },
        LayerTarget::Classes {
            prototypes: protos,
            labels,
            loss: LocalLoss::Eq5,
            margin: 0.3,
        },
        LayerTarget::Regression {
            prototype: upper,
            targets,
        },
    ]
}

#[test]
fn local_margin_eq5_and_regression_losses() {
    let mlp = Mlp::new(&[12, 10], 3);
    let shape = mlp.shapes()[0];
    let params = mlp.layer_params(0);
    let (x, labels, targets) = batch(12, 32, 4, 4);
    let protos = simplex_prototypes(4, 10, &mut rng(5)).unwrap();
    let (upper, _) = antipodal_pair(10, &mut rng(6)).unwrap();
    let targets_for = all_local_losses(&protos, &labels, &upper, &targets);
    for target in targets_for {
        let mut ad = vec![0.0; shape.len()];
        let ad_loss = layer_gradient_autodiff(&mut Tape::new(), shape, params, &mut x.clone(), target, &mut ad);
        let mut scratch = LayerScratch::default();
        let mut objective = LayerObjective::new(shape, params, MatRef::from(&x), target, &mut scratch, Par::Seq);
        let mut at_zero = [0.0];
        objective.losses_along(&vec![0.0; shape.len()], &[0.0], &mut at_zero);
        assert!(
            (at_zero[0] - ad_loss).abs() < 1e-5,
            "forward objective and tape agree on the loss"
        );
        let mut dd = vec![0.0; shape.len()];
        many_directions(shape.len()).estimate(&mut objective, 11, &mut dd, &mut vec![0.0; shape.len()]);
        let c = cosine(&dd, &ad);
        assert!(c > 0.99, "{target:?}: cos(DD, AD) = {c}");
    }
}

#[test]
fn global_cross_entropy_and_mse() {
    let (x, labels, targets) = batch(8, 24, 3, 7);
    for regression in [false, true] {
        let mlp = Mlp::new(&[8, 6, 6, if regression { 1 } else { 3 }], 9);
        let n = mlp.params().len();
        let t = Mat::from_row_slice(1, targets.len(), &targets);
        let target = if regression {
            GlobalTarget::Regression(&t)
        } else {
            GlobalTarget::Classes(&labels)
        };
        let mut ad = vec![0.0; n];
        network_gradient_autodiff(
            &mut Tape::new(),
            mlp.shapes(),
            mlp.params(),
            &mut x.clone(),
            target,
            &mut ad,
        );
        let mut scratch_model = mlp.clone();
        let mut buffers = Vec::new();
        let mut objective =
            NetworkObjective::new(mlp.params(), &mut scratch_model, MatRef::from(&x), target, &mut buffers);
        let mut dd = vec![0.0; n];
        many_directions(n).estimate(&mut objective, 12, &mut dd, &mut vec![0.0; n]);
        let c = cosine(&dd, &ad);
        assert!(c > 0.99, "regression={regression}: cos(DD, AD) = {c}");
    }
}

/// The exact shortcut of `LayerObjective` (losses of `base + t·along` from per-column
/// projections and norms, by column blocks, possibly in parallel) gives the losses of separate
/// forward passes at `W + tV`, `b + t·v_b` — what a physical layer would measure.
#[test]
fn layer_objective_equals_separate_forward_passes() {
    use insitu_ffzero::dense_forward;
    // Batch 300: three column blocks, the last one ragged.
    let mlp = Mlp::new(&[20, 16], 8);
    let shape = mlp.shapes()[0];
    let params = mlp.layer_params(0);
    let (x, labels, targets) = batch(20, 300, 5, 9);
    let protos = simplex_prototypes(5, 16, &mut rng(10)).unwrap();
    let (upper, _) = antipodal_pair(16, &mut rng(11)).unwrap();
    let direction: Vec<f32> = {
        let mut g = rng(12);
        (0..shape.len()).map(|_| g.random_range(-0.3..0.3)).collect()
    };
    let steps = [1e-3f32, -1e-3, 0.0, 0.25, -0.7];
    let targets_for = all_local_losses(&protos, &labels, &upper, &targets);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (name, target) in ["margin", "eq5", "regression"].into_iter().zip(targets_for) {
        let mut z = Mat::zeros(0, 0);
        let mut perturbed = vec![0.0f32; shape.len()];
        let separate: Vec<f64> = steps
            .iter()
            .map(|&t| {
                for ((p, w), d) in perturbed.iter_mut().zip(params).zip(&direction) {
                    *p = w + t * d;
                }
                z = Mat::zeros(shape.outputs, x.ncols());
                dense_forward(shape, &perturbed, MatRef::from(&x), &mut z);
                target.loss(&z)
            })
            .collect();
        for par in [Par::Seq, Par::Rayon(2)] {
            let mut scratch = LayerScratch::default();
            let mut out = vec![0.0f64; steps.len()];
            pool.install(|| {
                let mut objective = LayerObjective::new(shape, params, MatRef::from(&x), target, &mut scratch, par);
                objective.losses_along(&direction, &steps, &mut out);
            });
            for (i, (a, b)) in out.iter().zip(&separate).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-6 * (1.0 + b.abs()),
                    "{name} loss, {par:?}, step {}: shortcut {a} vs separate passes {b}",
                    steps[i]
                );
            }
        }
    }
}

/// The objective FF+DD evaluates is the same function of the parameters whether the batch comes
/// in dense or as sparse columns (the sparse product skips exact zeros: the same sums in
/// another order), over several column blocks and with both local losses.
#[test]
fn layer_objective_is_the_same_for_sparse_inputs() {
    let shape = DenseShape {
        inputs: 60,
        outputs: 12,
    };
    let n = 300; // three column blocks
    let mut g = rng(21);
    let x = Mat::from_fn(shape.inputs, n, |_, _| {
        if g.random::<f64>() < 0.2 {
            g.random_range(0.0f32..1.0)
        } else {
            0.0
        }
    });
    let sparse = SparseColumns::from_dense(MatRef::from(&x));
    let idx: Vec<usize> = (0..n).rev().collect();
    let xb = Mat::from_fn(shape.inputs, n, |i, j| x[(i, idx[j])]);
    let labels: Vec<u32> = (0..n).map(|_| g.random_range(0..4)).collect();
    let params: Vec<f32> = (0..shape.len()).map(|_| g.random_range(-0.3..0.3)).collect();
    let direction: Vec<f32> = (0..shape.len()).map(|_| g.random_range(-0.1..0.1)).collect();
    let prototypes = simplex_prototypes(4, shape.outputs, &mut rng(5)).unwrap();
    for loss in [LocalLoss::Margin, LocalLoss::Eq5] {
        let target = LayerTarget::Classes {
            prototypes: &prototypes,
            labels: &labels,
            loss,
            margin: 0.3,
        };
        let steps = [1e-3f32, -1e-3, 0.5];
        let mut losses = [[0.0f64; 3]; 2];
        for (k, input) in [
            LayerInput::Dense(MatRef::from(&xb)),
            LayerInput::Sparse(sparse.select(&idx)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut scratch = LayerScratch::default();
            let mut objective = LayerObjective::new(shape, &params, input, target, &mut scratch, Par::Seq);
            objective.losses_along(&direction, &steps, &mut losses[k]);
        }
        for (d, s) in losses[0].iter().zip(&losses[1]) {
            assert!(
                (d - s).abs() <= 1e-5 * d.abs().max(1.0),
                "{loss:?}: dense {d} vs sparse {s}"
            );
        }
        // and the difference that the DD estimate uses, to the same precision relative to ε
        let (dd, sd) = (losses[0][0] - losses[0][1], losses[1][0] - losses[1][1]);
        assert!((dd - sd).abs() <= 1e-3 * dd.abs().max(1e-6), "{loss:?}: {dd} vs {sd}");
    }
    // BP+DD's whole-network objective, whose first layer takes the same sparse path
    let mlp = Mlp::new(&[shape.inputs, 16, 4], 9);
    let n = mlp.params().len();
    let direction: Vec<f32> = (0..n).map(|_| g.random_range(-0.1..0.1)).collect();
    let target = GlobalTarget::Classes(&labels);
    let mut losses = [[0.0f64; 2]; 2];
    for (k, input) in [
        LayerInput::Dense(MatRef::from(&xb)),
        LayerInput::Sparse(sparse.select(&idx)),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut scratch_model, mut buffers) = (mlp.clone(), Vec::new());
        let mut objective = NetworkObjective::new(mlp.params(), &mut scratch_model, input, target, &mut buffers);
        objective.losses_along(&direction, &[1e-3, -1e-3], &mut losses[k]);
    }
    for (d, s) in losses[0].iter().zip(&losses[1]) {
        assert!(
            (d - s).abs() <= 1e-5 * d.abs().max(1.0),
            "network: dense {d} vs sparse {s}"
        );
    }
}

/// BP+DD's forward passes run layer by layer in blocks of 128 batch columns (on the pool's
/// threads when asked): every layer's output must equal the whole-batch forward pass bit for
/// bit, for dense and sparse inputs, widths 10 and 100, a short last block and a single
/// column, on 1 and 2 threads.
#[test]
fn forward_by_blocks_equals_the_whole_batch_bitwise() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let bits = |m: &Mat| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (width, n) in [(10usize, 256usize), (100, 256), (100, 200), (100, 1)] {
        let mlp = Mlp::new(&[784, width, width, width, 10], 21);
        let mut g = rng(22);
        // Image-like inputs: about a fifth of the pixels non-zero.
        let x = Mat::from_fn(784, n, |_, _| {
            if g.random_range(0.0..1.0) < 0.2 {
                g.random_range(0.0..1.0)
            } else {
                0.0
            }
        });
        let sparse = SparseColumns::from_dense(MatRef::from(&x));
        for input in [
            LayerInput::Dense(MatRef::from(&x)),
            LayerInput::Sparse(sparse.columns(0, n)),
        ] {
            let mut whole = Vec::new();
            mlp.forward_taps(input, &mut whole, |_, _| {});
            let mut blocks = Vec::new();
            forward_by_blocks(&mlp, input, &mut blocks, Par::Seq);
            let mut threads = Vec::new();
            pool.install(|| forward_by_blocks(&mlp, input, &mut threads, Par::Rayon(2)));
            for (l, w) in whole.iter().enumerate() {
                assert_eq!(
                    bits(w),
                    bits(&blocks[l]),
                    "width {width}, {n} columns, layer {l}, 1 thread"
                );
                assert_eq!(
                    bits(w),
                    bits(&threads[l]),
                    "width {width}, {n} columns, layer {l}, 2 threads"
                );
            }
        }
    }
}
