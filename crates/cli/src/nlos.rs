//! `insitu ffm nlos …`: imaging and classifying objects hidden around a corner (seed 002
//! Fig. 4).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use insitu_data::{default_datasets_dir, load_task, Task};
use insitu_ffm::nlos::{
    run_nlos, ClassificationTask, DriftTask, ImagingLoss, ImagingTask, NlosMethod, NlosOutcome, NlosResult, NlosScene,
    NlosSpec, NlosTask, PhaseImagingTask,
};

#[derive(Clone, Copy, ValueEnum)]
pub enum TaskKind {
    /// Fig. 4b: one mask images every cell of a 3 × 3 grid; tested on the letters T, H, U.
    Imaging,
    /// Fig. 4c: hidden phase digits told apart all-optically under photon-limited detection.
    Classification,
    /// Extended Data Fig. 4b: the same classification learned online while the wall turns by
    /// --degrees-per-iteration, FFM against the electronic classifier.
    Drift,
    /// Extended Data Fig. 4a: hidden phase digits (0, 2, 7, 9) imaged as intensity images on the
    /// camera, FFM against an electronic reconstruction, at each camera SNR.
    PhaseImaging,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    /// FFM: Adam on the gradient from a data and an error run per scene.
    Ffm,
    /// Particle-swarm optimisation of macro-pixels (imaging only).
    Pso,
    /// No learning: the flat mask (the paper's "Raw"; imaging only).
    Flat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Loss {
    /// The paper's: max-normalised intensity MSE against the cell's binary image.
    Image,
    /// Detector-fraction MSE over the nine cells.
    CellFraction,
}

#[derive(Args)]
pub struct NlosArgs {
    /// Which experiment.
    #[arg(long, value_enum, default_value = "imaging")]
    task: TaskKind,
    /// Grid side n; the distances scale as n/400 (modulator → wall 0.154 m, wall → object
    /// 0.04 m at n = 400).
    #[arg(long, default_value_t = NlosScene::default().grid_n)]
    grid: usize,
    /// Which wall (seed of its rough surface).
    #[arg(long, default_value_t = 0)]
    wall_seed: u64,
    /// The wall's surface correlation length (pixels).
    #[arg(long, default_value_t = NlosScene::default().wall_grain_px)]
    wall_grain: f64,
    /// The wall's surface height rms, in wavelengths (1: fully diffuse).
    #[arg(long, default_value_t = NlosScene::default().wall_roughness)]
    wall_roughness: f64,
    /// Imaging: how the mask is found.
    #[arg(long, value_enum, default_value = "ffm")]
    method: Method,
    /// Imaging: the training loss.
    #[arg(long, value_enum, default_value = "image")]
    loss: Loss,
    /// Imaging: side of a grid cell (pixels; default: the grid's eighth).
    #[arg(long)]
    cell: Option<usize>,
    /// Imaging and phase imaging: FFM steps (or PSO generations); drift: mini-batch iterations.
    #[arg(long, default_value_t = ImagingTask::default().iterations)]
    iterations: usize,
    /// Adam learning rate (radians; default 0.1 for imaging and phase imaging, 0.05 for
    /// classification, 0.5 for drift).
    #[arg(long)]
    lr: Option<f32>,
    /// Imaging, PSO: swarm size.
    #[arg(long, default_value_t = 20)]
    particles: usize,
    /// Imaging, PSO: macro-pixels per side (must divide the grid side).
    #[arg(long, default_value_t = 16)]
    segments: usize,
    /// Classification: the MNIST classes told apart (comma-separated; the paper: 0,7).
    #[arg(long, value_delimiter = ',', default_value = "0,7")]
    classes: Vec<u32>,
    /// Classification: training samples (the first of those classes).
    #[arg(long, default_value_t = ClassificationTask::default().train_samples)]
    train: usize,
    /// Classification: test samples.
    #[arg(long, default_value_t = ClassificationTask::default().test_samples)]
    test: usize,
    /// Classification: epochs.
    #[arg(long, default_value_t = ClassificationTask::default().epochs)]
    epochs: usize,
    /// Classification: mini-batch size.
    #[arg(long, default_value_t = ClassificationTask::default().batch)]
    batch: usize,
    /// Classification: mean photons per camera pixel to test at (comma-separated, ascending).
    #[arg(long, value_delimiter = ',')]
    photons: Option<Vec<f64>>,
    /// Drift: how far the wall turns between iterations (degrees; the paper's 1.0 and 2.5).
    #[arg(long, default_value_t = DriftTask::default().degrees_per_iteration)]
    degrees_per_iteration: f64,
    /// Drift: test both learners every this many iterations.
    #[arg(long, default_value_t = DriftTask::default().eval_every)]
    eval_every: usize,
    /// Phase imaging: the digits (comma-separated; the paper: 0,2,7,9).
    #[arg(long, value_delimiter = ',', default_value = "0,2,7,9")]
    digits: Vec<u32>,
    /// Phase imaging: learned images of each digit (the first ones of the training split).
    #[arg(long, default_value_t = PhaseImagingTask::default().learned_per_digit)]
    learned: usize,
    /// Phase imaging: unseen images of each digit (the first ones of the test split).
    #[arg(long, default_value_t = PhaseImagingTask::default().unseen_per_digit)]
    unseen: usize,
    /// Phase imaging: camera signal-to-noise ratios to read at (dB, comma-separated).
    #[arg(long, value_delimiter = ',')]
    snr: Option<Vec<f64>>,
    /// Seed of the swarm, the batch order and the detection noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run exactly this `NlosSpec` JSON instead of the options above.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Where the datasets live (the hidden digits).
    #[arg(long)]
    datasets: Option<PathBuf>,
    /// Write the learned mask to DIR/mask.npy (float32, n × n) and the camera's images to
    /// DIR/images.npy (float32, k × n × n: the letters T, H, U; one test sample per class; or
    /// the learned then the unseen digits).
    #[arg(long, value_name = "DIR")]
    arrays: Option<PathBuf>,
    /// Write the result JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Builds the spec, runs it, writes the arrays if asked.
pub fn run(a: &NlosArgs) -> Result<NlosResult, String> {
    let spec = spec_of(a)?;
    let trained = if spec.task.needs_data() {
        let dir = a.datasets.clone().unwrap_or_else(default_datasets_dir);
        let data = load_task(Task::Mnist, &dir, spec.seed).map_err(|e| e.to_string())?;
        run_nlos(&spec, Some((&data.train, &data.test)))
    } else {
        run_nlos(&spec, None)
    }
    .map_err(|e| e.to_string())?;
    if let Some(dir) = &a.arrays {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let n = spec.scene.grid_n;
        let write = |name: &str, shape: &[usize], values: &[f32]| {
            insitu_data::write_atomically(&dir.join(name), &insitu_data::encode_npy_f32(shape, values))
                .map_err(|e| e.to_string())
        };
        write("mask.npy", &[n, n], &trained.phase)?;
        write("images.npy", &[trained.images.len(), n, n], &trained.images.concat())?;
    }
    Ok(trained.result)
}

fn spec_of(a: &NlosArgs) -> Result<NlosSpec, String> {
    if let Some(path) = &a.spec {
        return crate::interchange::read_json_as(path, "spec");
    }
    let scene = NlosScene {
        wall_seed: a.wall_seed,
        wall_grain_px: a.wall_grain,
        wall_roughness: a.wall_roughness,
        ..NlosScene::at_grid(a.grid)
    };
    let task = match a.task {
        TaskKind::Imaging => NlosTask::Imaging(ImagingTask {
            cell_px: a.cell.unwrap_or(ImagingTask::at_grid(a.grid).cell_px),
            loss: match a.loss {
                Loss::Image => ImagingLoss::Image,
                Loss::CellFraction => ImagingLoss::CellFraction,
            },
            method: match a.method {
                Method::Ffm => NlosMethod::Ffm {
                    lr: a.lr.unwrap_or(0.1),
                },
                Method::Pso => NlosMethod::Pso {
                    particles: a.particles,
                    segments: a.segments,
                },
                Method::Flat => NlosMethod::Flat,
            },
            iterations: a.iterations,
        }),
        TaskKind::PhaseImaging => {
            if !matches!(a.method, Method::Ffm) {
                return Err(
                    "--method pso/flat is for --task imaging; phase imaging trains by FFM (and reports the flat mask)"
                        .into(),
                );
            }
            let base = PhaseImagingTask::at_grid(a.grid);
            NlosTask::PhaseImaging(PhaseImagingTask {
                digits: a.digits.clone(),
                learned_per_digit: a.learned,
                unseen_per_digit: a.unseen,
                iterations: a.iterations,
                lr: a.lr.unwrap_or(base.lr),
                snr_db: a.snr.clone().unwrap_or(base.snr_db.clone()),
                ..base
            })
        }
        TaskKind::Classification | TaskKind::Drift => {
            if !matches!(a.method, Method::Ffm) {
                return Err("--method pso/flat is for --task imaging; classification trains by FFM".into());
            }
            let base = match a.task {
                TaskKind::Drift => DriftTask::at_grid(a.grid).classification,
                _ => ClassificationTask::at_grid(a.grid),
            };
            let classification = ClassificationTask {
                classes: a.classes.clone(),
                train_samples: a.train,
                test_samples: a.test,
                epochs: a.epochs,
                batch: a.batch,
                lr: a.lr.unwrap_or(base.lr),
                photons_per_pixel: a.photons.clone().unwrap_or(base.photons_per_pixel.clone()),
                ..base
            };
            if matches!(a.task, TaskKind::Classification) {
                NlosTask::Classification(classification)
            } else {
                NlosTask::Drift(DriftTask {
                    classification,
                    degrees_per_iteration: a.degrees_per_iteration,
                    iterations: a.iterations,
                    eval_every: a.eval_every,
                    ..DriftTask::at_grid(a.grid)
                })
            }
        }
    };
    Ok(NlosSpec {
        scene,
        task,
        seed: a.seed,
    })
}

fn percent(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// The letters' read-out, or the accuracies and turning points.
pub fn summary(r: &NlosResult) -> String {
    let head = format!("{} forward runs, {:.1} s", r.forward_runs, r.train_seconds);
    match &r.outcome {
        NlosOutcome::Imaging(o) => {
            let mut lines = vec![format!(
                "imaging around the corner ({head}): loss {:.2} → {:.2}, mean SSIM {:.3}",
                o.loss_curve[0],
                o.loss_curve[o.loss_curve.len() - 1],
                o.mean_ssim
            )];
            for l in &o.letters {
                let picture: Vec<String> = l
                    .cell_levels
                    .chunks(3)
                    .map(|row| row.iter().map(|&v| if v >= 0.5 { '#' } else { '.' }).collect())
                    .collect();
                lines.push(format!(
                    "  {}: {}  SSIM {:.3} (pixels {:.3}), contrast {:.2}, {}/9 cells",
                    l.letter,
                    picture.join("/"),
                    l.ssim,
                    l.pixel_ssim,
                    l.contrast,
                    l.cells_correct
                ));
            }
            lines.join("\n")
        }
        NlosOutcome::Classification(o) => {
            let mut lines = vec![format!(
                "hidden-object classification ({head}): FFM {}, flat mask {}, electronic (softmax on the flat-mask camera) {}; \
                 turning points at {}:",
                percent(o.ffm_accuracy),
                percent(o.flat_accuracy),
                percent(o.ann_accuracy),
                percent(o.turning_accuracy)
            )];
            let photons = |p: Option<f64>| p.map_or("never".to_string(), |v| format!("{v:.3}"));
            for c in &o.curves {
                lines.push(format!(
                    "  {}: photons per pixel FFM {}, ANN {}, ANN-t {}",
                    c.sensor,
                    photons(c.ffm_turning_photons),
                    photons(c.ann_turning_photons),
                    photons(c.ann_noise_trained_turning_photons)
                ));
            }
            lines.join("\n")
        }
        NlosOutcome::Drift(o) => {
            let mut lines = vec![format!(
                "classification while the wall turns ({head}): test accuracy FFM / electronic at iteration (wall angle)"
            )];
            for i in 0..o.iterations.len() {
                lines.push(format!(
                    "  {:>5} ({:>6.1}°): FFM {:>7}, electronic {:>7}",
                    o.iterations[i],
                    o.wall_degrees[i],
                    percent(o.ffm_accuracy[i]),
                    percent(o.ann_accuracy[i])
                ));
            }
            lines.join("\n")
        }
        NlosOutcome::PhaseImaging(o) => {
            let mut lines = vec![format!(
                "imaging hidden phase digits ({head}): loss {:.3} → {:.3}; SSIM against the binarised digit",
                o.loss_curve[0],
                o.loss_curve[o.loss_curve.len() - 1]
            )];
            for (name, c) in [("learned", &o.learned), ("unseen", &o.unseen)] {
                lines.push(format!(
                    "  {name} ({} images), noise-free: FFM {:.3}, electronic {:.3}, flat mask {:.3}",
                    c.images, c.ffm_noise_free, c.ann_noise_free, c.flat_noise_free
                ));
                for (i, snr) in o.snr_db.iter().enumerate() {
                    lines.push(format!(
                        "    {snr:>5.1} dB: FFM {:.3}, ANN {:.3}, ANN-t {:.3}",
                        c.ffm[i], c.ann[i], c.ann_noise_trained[i]
                    ));
                }
            }
            lines.join("\n")
        }
    }
}
