//! Measures ideal / in-silico-deployed / FFM-in-situ accuracy of a free-space classifier
//! (docs/ffm.md, docs/results/ffm.md). One JSON `FfmResult` per line on stdout.
//!
//! ```text
//! cargo run --release -p insitu-ffm --example ffm_classify -- [--option value]...
//!   --task fashion-mnist|mnist|mnist-even   (default fashion-mnist)
//!   --layers 2 --grid 64 --train 3000 --test 1000 --epochs 3 --lr 0.05 --batch 16
//!   --seeds 0-4            (inclusive range, or one seed)
//!   --modes in-silico,in-situ   (an in-silico run also reports the ideal accuracy of the same
//!                                masks: `model_test_accuracy`; `ideal` trains separately)
//!   --strength 0.5         (Imperfections::at_strength; or --imperfections '<json>')
//!   --activation none|optoelectronic|photorefractive --input-power 1
//!   --loss region-fraction-mse|max-normalized-mse --detector-fraction 0.1
//! ```
//! The distance is scaled with the grid (`0.388 m · n / 400`, docs/ffm.md §2).

use insitu_data::{default_datasets_dir, load_task};
use insitu_ffm::{run, ActivationKind, ClassifierLoss, FfmSpec, FfmTask, Imperfections, TrainingMode};

fn kebab<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(&format!("\"{s}\""))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.len().is_multiple_of(2) {
        return Err("options come in `--name value` pairs".into());
    }
    let mut spec = FfmSpec {
        imperfections: Imperfections::at_strength(0.5),
        ..FfmSpec::default()
    };
    let (mut seeds, mut modes) = ((0u64, 0u64), "in-silico,in-situ".to_string());
    for pair in args.chunks(2) {
        let v = pair[1].as_str();
        match pair[0].as_str() {
            "--task" => spec.task = kebab::<FfmTask>(v)?,
            "--layers" => spec.layers = v.parse()?,
            "--grid" => {
                spec.grid_n = v.parse()?;
                spec.distance = 0.388 * spec.grid_n as f64 / 400.0;
            }
            "--train" => spec.train_limit = Some(v.parse()?),
            "--test" => spec.test_limit = Some(v.parse()?),
            "--epochs" => spec.epochs = v.parse()?,
            "--lr" => spec.lr = v.parse()?,
            "--batch" => spec.batch = v.parse()?,
            "--seeds" => {
                seeds = match v.split_once('-') {
                    Some((a, b)) => (a.parse()?, b.parse()?),
                    None => (v.parse()?, v.parse()?),
                }
            }
            "--modes" => modes = v.to_string(),
            "--strength" => spec.imperfections = Imperfections::at_strength(v.parse()?),
            "--imperfections" => spec.imperfections = serde_json::from_str(v)?,
            "--activation" => spec.activation = kebab::<ActivationKind>(v)?,
            "--input-power" => spec.input_power = v.parse()?,
            "--loss" => spec.loss = kebab::<ClassifierLoss>(v)?,
            "--detector-fraction" => spec.detector_fraction = v.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let data = spec
        .task
        .select(load_task(spec.task.data_task(), &default_datasets_dir(), 0)?)?;
    for mode in modes.split(',') {
        let mode: TrainingMode = kebab(mode)?;
        for seed in seeds.0..=seeds.1 {
            let spec = FfmSpec {
                mode,
                seed,
                ..spec.clone()
            };
            let r = run(&spec, &data.train, &data.test)?;
            println!("{}", serde_json::to_string(&r)?);
        }
    }
    Ok(())
}
