//! Measures ideal / in-silico-deployed / FFM-in-situ accuracy of a free-space classifier on
//! Fashion-MNIST (docs/ffm.md). One JSON result per line on stdout.
//!
//! `cargo run --release -p insitu-ffm --example ffm_classify -- [layers] [grid_n] [train] [test] [epochs] [seeds] [modes] [lr] [batch] [imperfections-json] [detector_fraction] [loss] [activation]`
//! e.g. `... -- 2 64 3000 1000 2 1 ideal,in-silico,in-situ`

use insitu_data::{default_datasets_dir, load_task, Task};
use insitu_ffm::{run, ActivationKind, ClassifierLoss, FfmSpec, Imperfections, TrainingMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let layers: usize = arg(0, "2").parse()?;
    let n: usize = arg(1, "64").parse()?;
    let train: usize = arg(2, "3000").parse()?;
    let test: usize = arg(3, "1000").parse()?;
    let epochs: usize = arg(4, "2").parse()?;
    let seeds: u64 = arg(5, "1").parse()?;
    let modes = arg(6, "ideal,in-silico,in-situ");
    let lr: f32 = arg(7, "0.05").parse()?;
    let batch: usize = arg(8, "32").parse()?;
    let imperfections: Imperfections = match a.get(9) {
        Some(j) => serde_json::from_str(j)?,
        None => Imperfections::realistic(),
    };
    let detector_fraction: f64 = arg(10, "0.1").parse()?;
    let activation: ActivationKind = serde_json::from_str(&format!("\"{}\"", arg(12, "none")))?;
    let loss: ClassifierLoss = serde_json::from_str(&format!("\"{}\"", arg(11, "region-fraction-mse")))?;
    let tt = load_task(Task::FashionMnist, &default_datasets_dir(), 0)?;
    for mode in modes.split(',') {
        let mode: TrainingMode = serde_json::from_str(&format!("\"{mode}\""))?;
        for seed in 0..seeds {
            let spec = FfmSpec {
                layers,
                grid_n: n,
                distance: 0.388 * n as f64 / 400.0,
                epochs,
                batch,
                lr,
                seed,
                train_limit: Some(train),
                test_limit: Some(test),
                mode,
                imperfections: imperfections.clone(),
                detector_fraction,
                loss,
                activation,
                ..FfmSpec::default()
            };
            let r = run(&spec, &tt.train, &tt.test)?;
            println!("{}", serde_json::to_string(&r)?);
        }
    }
    Ok(())
}
