//! A run's complete, serialisable description, with Supplementary Table 1's defaults and the
//! validation that refuses inconsistent options before any work starts.

use insitu_optim::{Difference, DirectionKind};
use serde::{Deserialize, Serialize};

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A unit enum's name as the JSON and the CLI spell it (`rademacher`, `forward`).
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One of the four wirings of seed 000's benchmark (Results, "Benchmarks"; SPEC A8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Backpropagation with exact gradients (reverse-mode AD), global loss.
    BpAd,
    /// One global directional-derivative estimate over every parameter, global loss.
    BpDd,
    /// Local (layer-wise) losses, exact gradients of each layer's own parameters.
    FfAd,
    /// Local losses with directional derivatives: FFzero.
    FfDd,
}

impl Method {
    /// All four, in the paper's order.
    pub const ALL: [Method; 4] = [Method::BpAd, Method::BpDd, Method::FfAd, Method::FfDd];
    /// The CLI / JSON name (`bp-ad`, …).
    pub fn name(self) -> &'static str {
        match self {
            Method::BpAd => "bp-ad",
            Method::BpDd => "bp-dd",
            Method::FfAd => "ff-ad",
            Method::FfDd => "ff-dd",
        }
    }
    /// Whether the layers train locally, one after another (FF) or jointly (BP).
    pub fn is_local(self) -> bool {
        matches!(self, Method::FfAd | Method::FfDd)
    }
    /// Whether gradients come from directional derivatives (forward passes only).
    pub fn is_directional(self) -> bool {
        matches!(self, Method::BpDd | Method::FfDd)
    }
    /// Parse a CLI / JSON name.
    pub fn from_name(s: &str) -> Result<Method, SpecError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| SpecError::Unknown {
                what: "method",
                value: s.into(),
                valid: "bp-ad, bp-dd, ff-ad, ff-dd",
            })
    }
}

/// The step rule (SPEC A5: plain SGD is the reading of the paper; Adam is an option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// `ω ← ω − λ ĝ`.
    Sgd,
    /// Adam, β₁ 0.9, β₂ 0.999, ε 10⁻⁸.
    Adam,
}

/// The local classification loss (SPEC A2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalLoss {
    /// Methods eq. 16: `Σ_{c≠y} ReLU(G(c) − G(y) + q)`.
    Margin,
    /// Eq. 5 as a loss: `−(α G(y) − Σ_{c≠y} G(c))`, `α = N − 1`.
    Eq5,
}

/// The model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// Fully connected, ReLU, biases (SPEC A7).
    Mlp,
    /// The emulated photonic network of SPEC A9: `depth` rectangular MZI meshes of `width`
    /// modes (the pooled image's pixel count) with the electro-optic activation between them
    /// ([`crate::photonic`]). Trained by the forward-only methods only.
    Photonic,
    /// The CNN of SPEC A7 (MNIST's): two convolution layers of `width` channels and a fully
    /// connected layer ([`crate::cnn`]). All four methods, classification and regression.
    Cnn,
}

impl Model {
    /// The CLI / JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Mlp => "mlp",
            Model::Photonic => "photonic",
            Model::Cnn => "cnn",
        }
    }
}

/// Everything that determines a training run. Serialised (resolved) into every result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Task name as `insitu_data::Task::name` gives it (`mnist`, `fashion-mnist`, …).
    pub task: String,
    /// Model family.
    pub model: Model,
    /// Hidden width `w`.
    pub width: usize,
    /// Number of hidden layers `d`.
    pub depth: usize,
    /// Which of the four methods.
    pub method: Method,
    /// Epochs (per layer for FF methods: SPEC A3).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Learning rate λ.
    pub lr: f32,
    /// Perturbation size ε of the directional derivatives.
    pub eps: f32,
    /// Number of directions P per step.
    pub directions: usize,
    /// How the DD methods draw directions: unit Gaussian (seed 000 eq. 13, the default) or
    /// Rademacher signs (SPSA). Left out of the JSON when it is the default, so specs and
    /// result hashes from before the option existed are unchanged.
    #[serde(default, skip_serializing_if = "is_default")]
    pub direction_kind: DirectionKind,
    /// The DD methods' finite difference: central, `2P` evaluations per step (seed 000 eq. 12,
    /// the default), or forward, `P + 1` (one shared `L(ω)`). Left out of the JSON when it is
    /// the default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub difference: Difference,
    /// Step rule.
    pub optimizer: Optimizer,
    /// Local classification loss (FF methods).
    pub loss: LocalLoss,
    /// Margin q of eq. 16.
    pub margin: f32,
    /// Seed of every random draw in the run (initialisation, prototypes, batches, directions).
    pub seed: u64,
    /// Use only the first N training samples (`None`: all).
    pub train_limit: Option<usize>,
    /// Use only the first N test samples (`None`: all).
    pub test_limit: Option<usize>,
    /// Photonic model: the images are average-pooled over `pool × pool` blocks before they
    /// enter the network (1: the paper's 784 modes; 2: 14 × 14 = 196; 4: 7 × 7 = 49; SPEC A9).
    /// Left out of the JSON when 1, so MLP specs and their hashes are unchanged.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub pool: usize,
    /// CNN: the widths of the hidden fully connected layers between the convolutions and the
    /// output layer (SPEC A7: Fashion-MNIST's FC stack {100, 10} is `[100]`; MNIST's network
    /// has none). Left out of the JSON when empty, so earlier specs and hashes are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fc_hidden: Vec<usize>,
    /// CNN: the dropout probability after each convolution layer and each hidden FC layer
    /// while training (SPEC A7: 0.1 for Fashion-MNIST; [`crate::cnn`] says where the masks
    /// act). Left out of the JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for TrainSpec {
    /// Seed 000 Supplementary Table 1 (MLP): MNIST, width 100, depth 3, FF+DD, 100 epochs,
    /// batch 256, λ = ε = 10⁻³, P = 1, plain SGD (SPEC A5), margin loss with q = 0.3.
    fn default() -> Self {
        Self {
            task: "mnist".into(),
            model: Model::Mlp,
            width: 100,
            depth: 3,
            method: Method::FfDd,
            epochs: 100,
            batch: 256,
            lr: 1e-3,
            eps: 1e-3,
            directions: 1,
            direction_kind: DirectionKind::UnitGaussian,
            difference: Difference::Central,
            optimizer: Optimizer::Sgd,
            loss: LocalLoss::Margin,
            margin: 0.3,
            seed: 0,
            train_limit: None,
            test_limit: None,
            pool: 1,
            fc_hidden: Vec::new(),
            dropout: 0.0,
        }
    }
}

/// An option that cannot work, refused before any work starts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A value outside its allowed range.
    #[error("invalid {option} = {value}: {reason}")]
    OutOfRange {
        /// the option's name as the CLI spells it
        option: &'static str,
        /// the value given
        value: String,
        /// what is allowed
        reason: String,
    },
    /// An unknown name.
    #[error("unknown {what} '{value}' (valid: {valid})")]
    Unknown {
        /// what kind of name
        what: &'static str,
        /// the name given
        value: String,
        /// the valid names
        valid: &'static str,
    },
}

/// `[a, b, c]` as the CLI takes it: `a,b,c`.
fn list(values: &[usize]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

fn out_of_range(option: &'static str, value: impl ToString, reason: impl Into<String>) -> SpecError {
    SpecError::OutOfRange {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl TrainSpec {
    /// Check every option on its own and against the others, given the task's class count
    /// (`None` for regression). Runs before any data is touched by training.
    pub fn validate(&self, num_classes: Option<usize>) -> Result<(), SpecError> {
        if self.width == 0 {
            return Err(out_of_range(
                "--width",
                self.width,
                "a hidden layer needs at least one unit",
            ));
        }
        if self.depth == 0 {
            return Err(out_of_range(
                "--depth",
                self.depth,
                "at least one hidden layer is required",
            ));
        }
        if self.epochs == 0 {
            return Err(out_of_range("--epochs", self.epochs, "must be at least 1"));
        }
        if self.batch == 0 {
            return Err(out_of_range("--batch", self.batch, "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(out_of_range("--lr", self.lr, "must be a finite number > 0"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(out_of_range("--eps", self.eps, "must be a finite number > 0"));
        }
        if self.directions == 0 {
            return Err(out_of_range("--directions", self.directions, "P must be at least 1"));
        }
        if !self.method.is_directional() {
            if self.direction_kind != DirectionKind::default() {
                return Err(out_of_range(
                    "--direction-kind",
                    serde_name(&self.direction_kind),
                    format!("{} takes exact gradients and draws no directions", self.method.name()),
                ));
            }
            if self.difference != Difference::default() {
                return Err(out_of_range(
                    "--difference",
                    serde_name(&self.difference),
                    format!("{} takes exact gradients and forms no differences", self.method.name()),
                ));
            }
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(out_of_range("--margin", self.margin, "must be a finite number ≥ 0"));
        }
        if self.train_limit == Some(0) {
            return Err(out_of_range("--train-limit", 0, "must be at least 1"));
        }
        if self.test_limit == Some(0) {
            return Err(out_of_range("--test-limit", 0, "must be at least 1"));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(out_of_range("--dropout", self.dropout, "must be in [0, 1)"));
        }
        if self.model != Model::Cnn {
            if !self.fc_hidden.is_empty() {
                return Err(out_of_range(
                    "--fc-hidden",
                    list(&self.fc_hidden),
                    "only the CNN has hidden fully connected layers (the MLP's are --width and --depth)",
                ));
            }
            if self.dropout != 0.0 {
                return Err(out_of_range("--dropout", self.dropout, "only the CNN applies dropout"));
            }
        }
        match self.model {
            Model::Cnn => {
                if self.fc_hidden.contains(&0) {
                    return Err(out_of_range(
                        "--fc-hidden",
                        list(&self.fc_hidden),
                        "a hidden layer needs at least one unit",
                    ));
                }
                if self.method.is_local() {
                    // a hidden FC layer is scored against prototypes in R^width, like an MLP layer
                    let least = num_classes.unwrap_or(2);
                    if let Some(&w) = self.fc_hidden.iter().find(|&&w| w < least) {
                        return Err(out_of_range(
                            "--fc-hidden",
                            list(&self.fc_hidden),
                            format!(
                                "an FF layer of width {w} cannot hold the task's {least} maximally separated prototypes"
                            ),
                        ));
                    }
                }
                if self.pool != 1 {
                    return Err(out_of_range(
                        "--pool",
                        self.pool,
                        "only the photonic model pools its input images",
                    ));
                }
                if self.depth != 2 {
                    return Err(out_of_range(
                        "--depth",
                        self.depth,
                        "the CNN has two convolution layers (SPEC A7)",
                    ));
                }
                // channels may be fewer than the classes: each channel is scored in R^10
                return Ok(());
            }
            Model::Mlp if self.pool != 1 => {
                return Err(out_of_range(
                    "--pool",
                    self.pool,
                    "only the photonic model pools its input images",
                ))
            }
            Model::Photonic => {
                if !self.method.is_directional() {
                    return Err(out_of_range(
                        "--method",
                        self.method.name(),
                        "the photonic network trains with the forward-only methods ff-dd and bp-dd (its AD baselines would need reverse mode through the meshes, which insitu does not implement)",
                    ));
                }
                if num_classes.is_none() {
                    return Err(out_of_range(
                        "--model",
                        "photonic",
                        "the photonic network classifies (SPEC A9); regression tasks take the MLP",
                    ));
                }
                if self.pool == 0 {
                    return Err(out_of_range("--pool", 0, "must be at least 1"));
                }
            }
            Model::Mlp => {}
        }
        if let Some(c) = num_classes {
            if self.method.is_local() && self.width < c {
                return Err(out_of_range(
                    "--width",
                    self.width,
                    format!(
                        "an FF classification layer must be at least as wide as the number of classes ({c}): its prototypes are {c} maximally separated vectors in R^width"
                    ),
                ));
            }
        } else if self.method.is_local() && self.width < 2 {
            return Err(out_of_range(
                "--width",
                self.width,
                "FF regression needs width ≥ 2 for an antipodal prototype pair",
            ));
        }
        Ok(())
    }
}
