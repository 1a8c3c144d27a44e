//! `insitu ffm pic …`: seed 002's integrated photonic network on Iris (Fig. 5).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use insitu_data::{default_datasets_dir, load_task, Task};
use insitu_ffm::pic::{run_pic, FeatureScaling, PicImperfections, PicResult, PicSpec};
use serde::Serialize;

use crate::ffm::{mode_name, mode_of, Mode};
use crate::interchange::read_json_as as read_json;

#[derive(Clone, Copy, ValueEnum)]
pub enum Scaling {
    /// v / max.
    Max,
    /// (v − min) / (max − min).
    MinMax,
}

#[derive(Args)]
pub struct PicArgs {
    /// Symmetry ratios w2/w1 held fixed during training (comma-separated; paper: 1,0.75,0.5).
    #[arg(long, value_delimiter = ',', default_value = "1,0.75,0.5")]
    ratio: Vec<f32>,
    /// Modes to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ideal,in-silico,in-situ")]
    mode: Vec<Mode>,
    /// Seeds (comma-separated): each seed draws its own 120 / 30 split, initial weights and
    /// batch order; the summary gives the mean over them.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    seeds: Vec<u64>,
    /// Epochs.
    #[arg(long, default_value_t = PicSpec::default().epochs)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = PicSpec::default().batch)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = PicSpec::default().lr)]
    lr: f32,
    /// Logits are this gain times the four detected outputs.
    #[arg(long, default_value_t = PicSpec::default().output_gain)]
    output_gain: f64,
    /// Feature scaling: v/max (default) or (v − min)/(max − min), with the training set's range.
    #[arg(long, value_enum, default_value = "max")]
    scaling: Scaling,
    /// A `PicImperfections` JSON for the fabricated chip (default: `PicImperfections::realistic()`,
    /// docs/ffm.md).
    #[arg(long)]
    imperfections_file: Option<PathBuf>,
    /// Run exactly this `PicSpec` JSON instead of the options above.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Where the datasets live.
    #[arg(long)]
    datasets: Option<PathBuf>,
    /// Write each run's trained weights to DIR/pic-r{RATIO}-{MODE}-seed{SEED}.npy: a NumPy
    /// float32 array of shape (32, 2), `[w1, w4]` of each core, layer after layer (the
    /// off-diagonal weight is RATIO·w1).
    #[arg(long, value_name = "DIR")]
    weights: Option<PathBuf>,
    /// Write the results JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What `insitu ffm pic --json` writes: one result per (ratio, mode, seed), in the order run.
#[derive(Serialize)]
pub struct PicReport {
    /// Every run's result (each holds its full spec).
    pub runs: Vec<PicResult>,
}

/// Builds the specs, loads Iris (one split per seed), runs them in order.
pub fn run(a: &PicArgs) -> Result<PicReport, String> {
    let specs: Vec<PicSpec> = match &a.spec {
        Some(path) => vec![read_json(path, "spec")?],
        None => {
            if a.ratio.is_empty() || a.mode.is_empty() || a.seeds.is_empty() {
                return Err("--ratio, --mode and --seeds each need at least one value".into());
            }
            let imperfections = match &a.imperfections_file {
                Some(p) => read_json(p, "imperfections")?,
                None => PicImperfections::realistic(),
            };
            let mut specs = Vec::new();
            for &ratio in &a.ratio {
                for &mode in &a.mode {
                    for &seed in &a.seeds {
                        specs.push(PicSpec {
                            ratio,
                            mode: mode_of(mode),
                            seed,
                            epochs: a.epochs,
                            batch: a.batch,
                            lr: a.lr,
                            output_gain: a.output_gain,
                            scaling: match a.scaling {
                                Scaling::Max => FeatureScaling::Max,
                                Scaling::MinMax => FeatureScaling::MinMax,
                            },
                            imperfections: imperfections.clone(),
                        });
                    }
                }
            }
            specs
        }
    };
    let dir = a.datasets.clone().unwrap_or_else(default_datasets_dir);
    let mut runs = Vec::with_capacity(specs.len());
    for spec in specs {
        let data = load_task(Task::Iris, &dir, spec.seed).map_err(|e| e.to_string())?;
        let trained = run_pic(&spec, &data).map_err(|e| e.to_string())?;
        if let Some(dir) = &a.weights {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let file = dir.join(format!(
                "pic-r{}-{}-seed{}.npy",
                spec.ratio,
                mode_name(spec.mode),
                spec.seed
            ));
            let p = &trained.parameters;
            insitu_data::write_atomically(&file, &insitu_data::encode_npy_f32(&[p.len() / 2, 2], p))
                .map_err(|e| e.to_string())?;
        }
        runs.push(trained.result);
    }
    Ok(PicReport { runs })
}

/// One line per (ratio, mode): mean test accuracy over the seeds, and each seed's.
pub fn summary(r: &PicReport) -> String {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < r.runs.len() {
        let first = &r.runs[i].spec;
        let group: Vec<&PicResult> = r.runs[i..]
            .iter()
            .take_while(|x| x.spec.ratio == first.ratio && x.spec.mode == first.mode)
            .collect();
        i += group.len();
        let mean = |f: &dyn Fn(&PicResult) -> f64| group.iter().map(|x| f(x)).sum::<f64>() / group.len() as f64;
        let per_seed: Vec<String> = group
            .iter()
            .map(|x| format!("{:.1}", 100.0 * x.test_accuracy))
            .collect();
        let diverged = group.iter().filter(|x| x.status != "ok").count();
        lines.push(format!(
            "iris pic ratio {} {}: test accuracy {:.1} % (seeds: {}); gradient error {:.2} %; {} runs on the chip per training{}",
            first.ratio,
            mode_name(first.mode),
            100.0 * mean(&|x| x.test_accuracy),
            per_seed.join(", "),
            100.0 * mean(&|x| x.gradient_error),
            group[0].physical_forward_runs,
            if diverged > 0 { format!(" — {diverged} DIVERGED") } else { String::new() }
        ));
    }
    lines.join("\n")
}
