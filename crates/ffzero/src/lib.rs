//! # insitu-ffzero — FFzero and its three baselines
//!
//! **What it is for.** Seed 000 end to end for MLPs: dense layers with ReLU and biases
//! ([`Mlp`]); layer goodness against fixed prototypes (eq. 4, 7; SPEC A2); the local,
//! sequential schedule with cached frozen-layer outputs (Methods "FFzero training strategy";
//! SPEC A3); directional-derivative updates (eq. 12–14; SPEC A4) through `insitu-optim`;
//! inference by majority vote over the layers (SPEC A6); regression (eq. 7–8; SPEC A7's FF
//! output-layer reading); metrics and a count of physical forward passes (SPEC A7). BP+AD,
//! BP+DD, FF+AD and FF+DD (SPEC A8) are four wirings of the same layers, losses, gradient
//! sources and step rules in one loop ([`train()`]), not four trainers; [`train_network`] also
//! hands back the trained network and its prototypes. The emulated photonic network of the
//! paper's "Photonic neural network" experiment (SPEC A9: MZI meshes with the electro-optic
//! activation between them, intensities as outputs), trained by FF+DD and BP+DD through the
//! same loop, is [`photonic`] (`model: photonic` in a [`TrainSpec`]). The convolutional network
//! of Supplementary 5.2 (SPEC A7: two convolution layers whose channels are scored one by one
//! through fixed random reductions, then a fully connected layer), trained by FF+DD and BP+DD,
//! is [`cnn`] (`model: cnn`).
//!
//! **What it must not do.** FF+DD and BP+DD reach the model only through
//! [`insitu_optim::PerturbedObjective`] (forward evaluations at perturbed parameters:
//! [`LayerObjective`], [`NetworkObjective`]); they never touch the autodiff tape. No printing
//! and no command-line parsing: progress goes to a [`Progress`] the caller supplies, results
//! come back as a serialisable [`TrainResult`].
//!
//! # Example
//!
//! FFzero (FF+DD) on seed 000's synthetic regression `f1(x) = sin x1 + cos x2`: two hidden
//! layers and the regression output layer, each trained in turn against its antipodal
//! prototypes from forward passes only. Every evaluation of layer `m` sends a sample through
//! `m + 1` layers, twice per step (`±ε`), and the result counts them.
//!
//! ```
//! use insitu_data::{load_task, Task};
//! use insitu_ffzero::{train, Method, NoProgress, Optimizer, Status, TrainSpec};
//!
//! let data = load_task(Task::SyntheticF1, std::path::Path::new("not read"), 0)?;
//! let spec = TrainSpec {
//!     task: "synthetic-f1".into(),
//!     method: Method::FfDd,
//!     width: 20,
//!     depth: 2,
//!     epochs: 10, // per layer
//!     optimizer: Optimizer::Adam,
//!     lr: 0.01,
//!     ..TrainSpec::default() // batch 256, ε = 10⁻³, P = 1, seed 0
//! };
//! let result = train(&spec, &data, &mut NoProgress)?;
//! assert_eq!(result.status, Status::Ok);
//! assert!(result.test_r2.unwrap() > 0.9, "R² {:?}", result.test_r2);
//! let samples = data.train.len() as u64;
//! assert_eq!(result.forward_passes, 2 * 10 * samples * (1 + 2 + 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cnn;
mod metrics;
mod mlp;
mod objective;
pub mod photonic;
mod spec;
mod train;

pub use cnn::{evaluate_cnn, train_cnn, Cnn, TrainedCnn};
pub use insitu_optim::{Difference, DirectionKind, NoProgress, Progress};
pub use metrics::{accuracy, majority_vote, r_squared};
pub use mlp::{
    dense_forward, dense_forward_into, layer_forward_into, relu_in_place, split_dense, DenseShape, LayerInput, Mlp,
};
pub use objective::{
    forward_by_blocks, layer_gradient_autodiff, network_gradient_autodiff, GlobalTarget, LayerObjective, LayerScratch,
    LayerTarget, NetworkObjective, COLUMN_BLOCK,
};
pub use photonic::{evaluate_photonic_network, train_photonic_network, PhotonicNetwork, TrainedPhotonic};
pub use spec::{LocalLoss, Method, Model, Optimizer, SpecError, TrainSpec};
pub use train::{
    evaluate_network, layer_widths, train, train_depth_sweep, train_network, DepthSweep, Divergence, EpochLoss,
    Evaluation, LayerPrototypes, Status, TrainError, TrainResult, TrainedNetwork, SPARSE_INPUT_MAX_DENSITY,
};
