//! `insitu ffm exceptional …`: seed 002's exceptional-point search (Extended Data Fig. 1).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use insitu_ffm::exceptional::{
    learn_exceptional_point, ContrastTarget, ExceptionalResult, ExceptionalSpec, GainLoss, SplitStepPair,
};

#[derive(Clone, Copy, ValueEnum)]
pub enum Target {
    /// Maximise the output contrast (light leaves through guide 1).
    Asymmetric,
    /// Cancel it (light leaves through both guides alike).
    Symmetric,
}

#[derive(Args)]
pub struct ExceptionalArgs {
    /// What the output should do.
    #[arg(long, value_enum, default_value = "asymmetric")]
    target: Target,
    /// The pair's coupling κ (1/m); the trainer does not know it.
    #[arg(long, default_value_t = SplitStepPair::default().kappa)]
    kappa: f64,
    /// Propagation constants β₁,β₂ (rad/m; unequal values detune the pair).
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.0])]
    beta: Vec<f64>,
    /// Length of the pair (m).
    #[arg(long, default_value_t = SplitStepPair::default().length)]
    length: f64,
    /// Sections of the discretised pair.
    #[arg(long, default_value_t = SplitStepPair::default().sections)]
    sections: usize,
    /// Measurement noise, relative to the RMS amplitude of each measured field.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// The trainer's unit of gain and loss (1/m).
    #[arg(long, default_value_t = ExceptionalSpec::default().unit)]
    unit: f64,
    /// Initial gain and loss (units).
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 0.5])]
    start: Vec<f64>,
    /// Largest gain and loss (units).
    #[arg(long, default_value_t = ExceptionalSpec::default().limit)]
    limit: f64,
    /// Adam steps.
    #[arg(long, default_value_t = ExceptionalSpec::default().steps)]
    steps: usize,
    /// Adam learning rate (units per step).
    #[arg(long, default_value_t = ExceptionalSpec::default().lr)]
    lr: f64,
    /// Seed of the measurement noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run exactly this `ExceptionalSpec` JSON instead of the options above.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Write the result (with the whole trajectory) here, atomically.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Builds the spec and runs the learning.
pub fn run(a: &ExceptionalArgs) -> Result<ExceptionalResult, String> {
    if let Some(path) = &a.spec {
        let spec: ExceptionalSpec = crate::interchange::read_json_as(path, "spec")?;
        return learn_exceptional_point(&spec).map_err(|e| e.to_string());
    }
    for (name, v) in [("--beta", &a.beta), ("--start", &a.start)] {
        if v.len() != 2 {
            return Err(format!("{name} takes two comma-separated numbers, got {}", v.len()));
        }
    }
    let spec = ExceptionalSpec {
        bench: SplitStepPair {
            kappa: a.kappa,
            beta1: a.beta[0],
            beta2: a.beta[1],
            length: a.length,
            sections: a.sections,
            measurement_noise: a.noise,
            seed: a.seed,
        },
        target: match a.target {
            Target::Asymmetric => ContrastTarget::Asymmetric,
            Target::Symmetric => ContrastTarget::Symmetric,
        },
        unit: a.unit,
        start: GainLoss {
            gain: a.start[0],
            loss: a.start[1],
        },
        limit: a.limit,
        steps: a.steps,
        lr: a.lr,
        seed: a.seed,
    };
    learn_exceptional_point(&spec).map_err(|e| e.to_string())
}

/// The start, each crossing of the exceptional point and the end.
pub fn summary(r: &ExceptionalResult) -> String {
    let phase = |broken: bool| if broken { "PT-broken" } else { "PT-symmetric" };
    let line = |what: &str, i: usize| {
        let s = &r.trajectory[i];
        format!(
            "{what} (step {i}): gain {:.3}, loss {:.3}, contrast {:+.3}, {} (eigenvalues {:.3}{:+.3}i, {:.3}{:+.3}i)",
            s.gain,
            s.loss,
            s.contrast,
            phase(s.broken),
            s.eigenvalues[0][0],
            s.eigenvalues[0][1],
            s.eigenvalues[1][0],
            s.eigenvalues[1][1]
        )
    };
    let mut lines = vec![line("start", 0)];
    lines.extend(r.transitions.iter().map(|&i| line("crossed the exceptional point", i)));
    lines.push(line("end", r.trajectory.len() - 1));
    lines.push(format!("{} forward runs of the pair", r.forward_runs));
    lines.join("\n")
}
