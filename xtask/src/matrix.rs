//! The experiment matrix: for each paper figure the workspace can compute, the runs that
//! produce it, in three profiles (`smoke`, `quick`, `paper`) plus a tiny one for tests, and
//! an estimate of each run's cost.
//!
//! `paper` follows seed 000 Supplementary Table 1 (SPEC A7) and seed 002 Methods (SPEC B3,
//! through `FfmSpec::paper()`); `quick` keeps the shape of every figure (all methods, the same
//! axes, fewer grid points) with fewer samples and epochs; `smoke` is a handful of tiny runs per
//! figure so that every figure is drawn in CI.

use insitu_ffm::pic::{PicSpec, RUNS_PER_SAMPLE};
use insitu_ffm::{FfmSpec, FfmTask, TrainingMode};
use insitu_ffzero::{Method, Model, TrainSpec};

use crate::runspec::RunSpec;

/// How big a reproduction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Profile {
    /// Minutes on two cores, every figure drawn from a handful of tiny runs (CI).
    Smoke,
    /// Under an hour on two cores: the figures' shape with fewer epochs, samples, grid points.
    Quick,
    /// The papers' settings exactly (days of CPU time: use `--emit-slurm`).
    Paper,
    /// A few seconds of synthetic-regression runs (`seed000-fig6` only), for xtask's tests.
    #[value(hide = true)]
    Tiny,
}

impl Profile {
    /// The name used on the command line and as the store's directory.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Quick => "quick",
            Profile::Paper => "paper",
            Profile::Tiny => "tiny",
        }
    }

    /// What the profile changes with respect to the paper, for the report.
    pub fn description(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke: 1000 training / 500 test samples, 1 epoch, a handful of grid points per figure (a check that everything runs, not a measurement)",
            Profile::Quick => "quick: seed 000 runs on the first 10 000 training / 2 000 test samples, 10 epochs, batch 64 (paper: 50 000 / 10 000, 100 epochs, batch 256), depths 1, 2, 4, 6, 8, 10; the synthetic sets whole with 30 epochs; the photonic network (SPEC A9) at 49 and 196 modes, 10 epochs of the first 10 000 / 2 000 images, batch 128 (paper: 49, 196 and 784 modes, 100 epochs of 60 000 / 10 000); seed 002 on the 64×64 grid of `FfmSpec::default()` with 3 000 / 1 000 samples and 2 seeds (paper: 400×400, 30 000 / 5 000, 5 seeds); seed 002 Fig. 5 (the PIC network on Iris) and Extended Data Fig. 1 (the exceptional point) exactly as in the paper profile, since they take seconds",
            Profile::Paper => "paper: seed 000 Supplementary Table 1 (the photonic network as SPEC A9 states it, at 49, 196 and 784 modes) and seed 002 Methods exactly",
            Profile::Tiny => "tiny: synthetic f1 only, for tests",
        }
    }
}

/// A paper figure that the matrix reproduces.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// Name on the command line and of the output files, e.g. `seed000-fig4`.
    pub id: &'static str,
    /// What it shows.
    pub title: &'static str,
    /// The title drawn on the image.
    pub plot_title: &'static str,
    /// What the paper reports (SPEC A8 / B3), to set next to our numbers.
    pub claim: &'static str,
}

/// Every figure, in the report's order.
pub const FIGURES: [Figure; 11] = [
    Figure {
        id: "seed000-fig4",
        plot_title: "Seed 000 Fig. 4: MLP classification, accuracy vs depth",
        title: "Seed 000 Fig. 4: MLP classification accuracy versus depth (MNIST, Fashion-MNIST; widths 10/50/100; BP+AD, BP+DD, FF+AD, FF+DD)",
        claim: "BP+DD accuracy falls toward chance (10 %) as depth grows while FF+DD barely degrades; BP+AD ≥ FF+AD ≥ FF+DD, and FF+DD ≫ BP+DD for deep or wide networks (SPEC A8 items 1–2).",
    },
    Figure {
        id: "seed000-fig6",
        plot_title: "Seed 000 Fig. 6: regression, R² vs width",
        title: "Seed 000 Fig. 6: regression R² versus width (synthetic f1, f2 with 2 hidden layers; MNIST regression)",
        claim: "FF+DD beats BP+DD as the number of parameters grows (SPEC A8 item 4).",
    },
    Figure {
        id: "seed000-suppfig1",
        plot_title: "Seed 000 Suppl. Fig. 1: accuracy vs directions P",
        title: "Seed 000 Supplementary Fig. 1: accuracy versus the number of directions P (MNIST, depth 5)",
        claim: "FF+DD improves with P, saturating around P = 3–4 (SPEC A8 item 5).",
    },
    Figure {
        id: "seed000-photonic",
        plot_title: "Seed 000 photonic MZI network: accuracy vs modes",
        title: "Seed 000 photonic emulation: two MZI meshes with the electro-optic activation on average-pooled MNIST, accuracy versus modes N (FF+DD, BP+DD; SPEC A9)",
        claim: "FF+DD ≫ BP+DD on the emulated photonic network (SPEC A8 item 6; the paper's network has N = 784 modes, 100 epochs, batch 128, 60 000 / 10 000 images).",
    },
    Figure {
        id: "seed000-cnn",
        plot_title: "Seed 000 CNN: accuracy and R² vs channels",
        title: "Seed 000 Supplementary 5.2: the CNN on MNIST and Fashion-MNIST, classification accuracy and MNIST regression R² versus channels per convolution layer (BP+AD, BP+DD, FF+AD, FF+DD; SPEC A7)",
        claim: "BP+DD stays near chance while FF+DD is stable as the number of channels grows (SPEC A8 item 3); in regression FF+DD beats BP+DD as the parameter count grows (item 4). Fashion-MNIST's network adds dropout 0.1 after each convolution layer and an FC stack {100, 10} (SPEC A7). In the R² table a dash is a run that diverged (its stored result says where).",
    },
    Figure {
        id: "seed002-fig2d",
        plot_title: "Seed 002 Fig. 2d: free-space ONN, accuracy vs layers",
        title: "Seed 002 Fig. 2d: deep free-space ONN on Fashion-MNIST, accuracy versus number of layers (ideal, in silico deployed on the bench, FFM in situ)",
        claim: "Paper, 2/4/6/8 layers: ideal 92.2/93.8/96.0/96.0 %, in silico deployed 44.0/52.4/58.4/58.8 %, FFM in situ 86.5/91.0/92.3/92.5 % (mean of 5 runs; SPEC B3).",
    },
    Figure {
        id: "seed002-fig5",
        plot_title: "Seed 002 Fig. 5: integrated photonic network on Iris",
        title: "Seed 002 Fig. 5: integrated photonic network of symmetric cores on Iris, accuracy versus symmetry ratio (ideal, in silico deployed on the fabricated chip, FFM on the chip; SPEC B4)",
        claim: "Paper, symmetry ratios 1.0/0.75/0.5: simulation 94.7/89.2/89.0 %, FFM 94.2/89.2/88.7 %, in silico deployed on the chip 71.7/65.8/55.0 % (SPEC B4). Our chip is the simulated `PicImperfections::realistic()` (docs/ffm.md), not the paper's hardware.",
    },
    Figure {
        id: "seed002-fig3",
        plot_title: "Seed 002 Fig. 3: focusing through a scattering medium",
        title: "Seed 002 Fig. 3: focusing through a random phase scatterer (Y = T S T M X), FFM against particle-swarm optimisation, three scatterers (SPEC B4)",
        claim: "Paper: FFM converges in ~25 iterations where PSO needs ≥ 400; FWHM 81.2 µm (best 65.6) against PSO's 120 µm, the diffraction limit 0.5 λ/NA being 64.5 µm; PSNR 8.46 against 2.29 dB. Ours adds FFM with unequal distances (the path no longer symmetric).",
    },
    Figure {
        id: "seed002-fig4",
        plot_title: "Seed 002 Fig. 4: imaging and classification around a corner",
        title: "Seed 002 Fig. 4: non-line-of-sight imaging of hidden letters (FFM, FFM with a cell-fraction loss, PSO, flat mask) and all-optical classification of hidden phase digits under photon-limited detection (FFM against an electronic classifier of the flat-mask camera; SPEC B4)",
        claim: "Paper: the FFM-designed wavefront recovers the hidden letters T, H, U (SSIM 1.0) where PSO does not (0.36); FFM classifies hidden phase digits 0/7 at 95.5 % (sCMOS) and reaches 94.5 % with 0.99 (sCMOS) / 2.10 (CMOS) photons per pixel, against 37.6 / 33.1 for the ANN and 1.27 / 4.46 for the ANN trained on noisy data. Our SSIM is of the 3 × 3 cell read-out (docs/ffm.md §8); our turning points are read one point below the lower noise-free accuracy.",
    },
    Figure {
        id: "seed002-ext4",
        plot_title: "Seed 002 Ext. Data Fig. 4: hidden phase digits imaged, and classified while the wall turns",
        title: "Seed 002 Extended Data Fig. 4: (a) hidden phase digits 0/2/7/9 imaged onto the camera by an FFM-learned mask, against an electronic reconstruction of the flat-mask camera, SSIM against the camera's SNR; (b) hidden digits 0/7 classified while the wall turns about its centre between iterations, FFM learning the mask in situ against an electronic classifier learning from the flat-mask camera, both online (SPEC B4)",
        claim: "Paper: (a) at 15 dB SNR FFM images the four learned phase digits with SSIM 0.81, the ANN reconstruction 0.40; (b) at v₁ = 1.0° per iteration the in-silico ANN eventually reaches FFM's accuracy, more slowly; at v₂ = 2.5° the ANN degrades with the changing medium while FFM keeps improving (no numbers given). Ours: (a) SSIM at 28 × 28 against the binarised digit, white Gaussian camera noise at the frame's SNR, the electronic reconstruction is ridge regression on the binned flat-mask camera, and unseen digits are imaged too; (b) a smoother wall (grain n/16 pixels, 0.25 λ rms) than Fig. 4's, whose fully diffuse wall runs once at v₁ for contrast; our electronic learner is softmax regression updated every iteration on the current scene (docs/ffm.md §8).",
    },
    Figure {
        id: "seed002-ext1",
        plot_title: "Seed 002 Ext. Data Fig. 1: exceptional-point search",
        title: "Seed 002 Extended Data Fig. 1: FFM learns the gain and loss of two coupled waveguides from forward runs, across the exceptional point (SPEC B4)",
        claim: "Learning to make the output of a symmetric launch asymmetric drives the pair from the PT-symmetric to the PT-broken phase across the exceptional point, without a model of the pair; the opposite target brings it back (seed 002 \"Self-designing non-Hermitian system\"). The paper gives no numbers.",
    },
];

/// The figure called `id`.
pub fn figure(id: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.id == id)
}

/// Sample counts, epochs and batch of a seed 000 profile.
#[derive(Clone, Copy)]
struct Scale {
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    epochs: usize,
    batch: usize,
}

fn scale(profile: Profile) -> Scale {
    match profile {
        Profile::Paper => Scale {
            train_limit: None,
            test_limit: None,
            epochs: 100,
            batch: 256,
        },
        Profile::Quick => Scale {
            train_limit: Some(10_000),
            test_limit: Some(2_000),
            epochs: 10,
            batch: 64,
        },
        Profile::Smoke => Scale {
            train_limit: Some(1000),
            test_limit: Some(500),
            epochs: 1,
            batch: 64,
        },
        Profile::Tiny => Scale {
            train_limit: Some(2000),
            test_limit: Some(500),
            epochs: 30,
            batch: 64,
        },
    }
}

fn ffzero(profile: Profile, task: &str, width: usize, depth: usize, method: Method, directions: usize) -> RunSpec {
    let s = scale(profile);
    RunSpec::Ffzero(TrainSpec {
        task: task.into(),
        width,
        depth,
        method,
        directions,
        epochs: s.epochs,
        batch: s.batch,
        train_limit: s.train_limit,
        test_limit: s.test_limit,
        ..TrainSpec::default()
    })
}

/// The runs of figure `id` in `profile` (empty when the profile does not draw it), or why the
/// figure cannot be computed by this workspace.
pub fn figure_specs(id: &str, profile: Profile) -> Result<Vec<RunSpec>, String> {
    use Profile::*;
    let mut out = Vec::new();
    match id {
        "seed000-fig4" => {
            let (tasks, widths, depths): (&[&str], &[usize], Vec<usize>) = match profile {
                Paper => (&["mnist", "fashion-mnist"], &[10, 50, 100], (1..=10).collect()),
                Quick => (&["mnist", "fashion-mnist"], &[10, 50, 100], vec![1, 2, 4, 6, 8, 10]),
                Smoke => (&["mnist", "fashion-mnist"], &[50], vec![1, 3]),
                Tiny => return Ok(out),
            };
            for &task in tasks {
                for &w in widths {
                    for &d in &depths {
                        for m in Method::ALL {
                            out.push(ffzero(profile, task, w, d, m, 1));
                        }
                    }
                }
            }
        }
        "seed000-fig6" => {
            let (f1, f2, mnist): (Vec<usize>, Vec<usize>, &[usize]) = match profile {
                Paper | Quick => (
                    (1..=10).map(|k| 10 * k).collect(),
                    (1..=10).map(|k| 20 * k).collect(),
                    &[10, 50, 100],
                ),
                Smoke => (vec![10, 50], vec![20, 100], &[50]),
                Tiny => (vec![10, 20, 30], Vec::new(), &[]),
            };
            let methods: &[Method] = if profile == Tiny {
                &[Method::BpAd, Method::FfDd]
            } else {
                &Method::ALL
            };
            for (task, widths) in [
                ("synthetic-f1", &f1[..]),
                ("synthetic-f2", &f2[..]),
                ("mnist-regression", mnist),
            ] {
                for &w in widths {
                    for &m in methods {
                        let mut spec = ffzero(profile, task, w, 2, m, 1);
                        if let RunSpec::Ffzero(s) = &mut spec {
                            if task.starts_with("synthetic") && profile != Paper {
                                // the synthetic sets are small (10 000 / 2 000): keep them whole
                                s.train_limit = None;
                                s.test_limit = None;
                                s.epochs = if profile == Quick { 30 } else { s.epochs };
                            }
                        }
                        out.push(spec);
                    }
                }
            }
        }
        "seed000-suppfig1" => {
            let (widths, ps): (&[usize], &[usize]) = match profile {
                Paper | Quick => (&[10, 50, 100], &[1, 2, 4, 8]),
                Smoke => (&[10, 50], &[1, 4]),
                Tiny => return Ok(out),
            };
            for &w in widths {
                for &p in ps {
                    for m in [Method::FfDd, Method::BpDd] {
                        out.push(ffzero(profile, "mnist", w, 5, m, p));
                    }
                }
            }
        }
        "seed000-photonic" => {
            // SPEC A9: two meshes, batch 128, all 60,000 training images, 100 epochs;
            // N = (28/pool)² modes
            let (pools, epochs, train_limit, test_limit): (&[usize], usize, Option<usize>, Option<usize>) =
                match profile {
                    Paper => (&[4, 2, 1], 100, None, None),
                    Quick => (&[4, 2], 10, Some(10_000), Some(2_000)),
                    Smoke => (&[4], 1, Some(1000), Some(500)),
                    Tiny => return Ok(out),
                };
            for &pool in pools {
                for method in [Method::FfDd, Method::BpDd] {
                    out.push(RunSpec::Ffzero(TrainSpec {
                        task: "mnist".into(),
                        model: Model::Photonic,
                        pool,
                        width: (28 / pool).pow(2),
                        depth: 2,
                        method,
                        epochs,
                        batch: 128,
                        train_limit,
                        test_limit,
                        ..TrainSpec::default()
                    }));
                }
            }
        }
        "seed000-cnn" => {
            // SPEC A7: MNIST C ∈ {4, …, 32} step 4; batch 256, 100 epochs, 50 000 / 10 000
            let s = scale(profile);
            let channels: Vec<usize> = match profile {
                Paper => (4..=32).step_by(4).collect(),
                Quick => vec![4, 8, 16],
                Smoke => vec![2],
                Tiny => return Ok(out),
            };
            // SPEC A7: Fashion-MNIST C ∈ {8, …, 64} step 8, dropout 0.1 after each convolution
            // layer, an FC stack {100, 10} with dropout {0.1, 0}; batch 256 (SPEC's reading)
            let fashion_channels: Vec<usize> = match profile {
                Paper => (8..=64).step_by(8).collect(),
                Quick => vec![8, 16],
                _ => vec![2],
            };
            let run = |task: &str, width: usize, method: Method| {
                let fashion = task == "fashion-mnist";
                RunSpec::Ffzero(TrainSpec {
                    task: task.into(),
                    model: Model::Cnn,
                    width,
                    depth: 2,
                    method,
                    epochs: s.epochs,
                    batch: s.batch,
                    train_limit: s.train_limit,
                    test_limit: s.test_limit,
                    fc_hidden: if fashion { vec![FASHION_FC_HIDDEN] } else { Vec::new() },
                    dropout: if fashion { FASHION_DROPOUT } else { 0.0 },
                    ..TrainSpec::default()
                })
            };
            // SPEC A7: MNIST classification, MNIST regression ("MLP and CNN"), Fashion-MNIST
            let tasks = [
                ("mnist", &channels),
                ("mnist-regression", &channels),
                ("fashion-mnist", &fashion_channels),
            ];
            for (task, widths) in tasks {
                for &c in widths {
                    for method in [Method::BpAd, Method::BpDd, Method::FfAd, Method::FfDd] {
                        out.push(run(task, c, method));
                    }
                }
            }
        }
        "seed002-fig2d" => {
            let (base, layers, seeds): (FfmSpec, &[usize], u64) = match profile {
                Paper => (FfmSpec::paper(), &[2, 4, 6, 8], 5),
                Quick => (FfmSpec::default(), &[2, 4, 6, 8], 2),
                Smoke => (
                    FfmSpec {
                        grid_n: 32,
                        distance: 0.388 * 32.0 / 400.0,
                        epochs: 1,
                        train_limit: Some(300),
                        test_limit: Some(200),
                        ..FfmSpec::default()
                    },
                    &[2, 4],
                    1,
                ),
                Tiny => return Ok(out),
            };
            for &l in layers {
                for mode in [TrainingMode::Ideal, TrainingMode::InSilico, TrainingMode::InSitu] {
                    for seed in 0..seeds {
                        out.push(RunSpec::Ffm(FfmSpec {
                            task: FfmTask::FashionMnist,
                            layers: l,
                            mode,
                            seed,
                            ..base.clone()
                        }));
                    }
                }
            }
        }
        "seed002-fig5" => {
            let (epochs, seeds) = match profile {
                Paper | Quick => (100, 5),
                Smoke => (5, 1),
                Tiny => return Ok(out),
            };
            for ratio in [1.0, 0.75, 0.5] {
                for mode in [TrainingMode::Ideal, TrainingMode::InSilico, TrainingMode::InSitu] {
                    for seed in 0..seeds {
                        out.push(RunSpec::Pic(PicSpec {
                            ratio,
                            mode,
                            seed,
                            epochs,
                            ..PicSpec::default()
                        }));
                    }
                }
            }
        }
        "seed002-fig3" => {
            use insitu_ffm::focusing::{FocusMethod, FocusSpec};
            let (n, ffm_steps, generations, scatterers) = match profile {
                Paper => (400, 300, 400, 3),
                Quick => (128, 200, 400, 3),
                Smoke => (64, 20, 10, 1),
                Tiny => return Ok(out),
            };
            let base = FocusSpec {
                grid_n: n,
                distance: 0.194 * n as f64 / 400.0,
                ..FocusSpec::default()
            };
            for scatterer_seed in 0..scatterers {
                out.push(RunSpec::Focus(FocusSpec {
                    scatterer_seed,
                    iterations: ffm_steps,
                    ..base.clone()
                }));
                out.push(RunSpec::Focus(FocusSpec {
                    scatterer_seed,
                    iterations: generations,
                    method: FocusMethod::Pso {
                        particles: 20,
                        segments: 16,
                    },
                    ..base.clone()
                }));
                out.push(RunSpec::Focus(FocusSpec {
                    scatterer_seed,
                    iterations: ffm_steps,
                    back_distance: Some(base.distance * 1.5),
                    ..base.clone()
                }));
            }
        }
        "seed002-fig4" => {
            use insitu_ffm::nlos::{
                ClassificationTask, ImagingLoss, ImagingTask, NlosMethod, NlosScene, NlosSpec, NlosTask,
            };
            let (n, steps, generations, walls, classify) = match profile {
                Paper => (400, 300, 100, 3, Some((2000, 200, 5))),
                Quick => (128, 300, 60, 3, Some((2000, 200, 5))),
                Smoke => (64, 20, 2, 1, Some((100, 40, 1))),
                Tiny => return Ok(out),
            };
            for wall_seed in 0..walls {
                let scene = NlosScene {
                    wall_seed,
                    ..NlosScene::at_grid(n)
                };
                let base = ImagingTask {
                    iterations: steps,
                    ..ImagingTask::at_grid(n)
                };
                let tasks = [
                    base.clone(),
                    ImagingTask {
                        loss: ImagingLoss::CellFraction,
                        ..base.clone()
                    },
                    ImagingTask {
                        method: NlosMethod::Pso {
                            particles: 20,
                            segments: 16,
                        },
                        iterations: generations,
                        ..base.clone()
                    },
                    ImagingTask {
                        method: NlosMethod::Flat,
                        iterations: 0,
                        ..base
                    },
                ];
                for task in tasks {
                    out.push(RunSpec::Nlos(NlosSpec {
                        scene: scene.clone(),
                        task: NlosTask::Imaging(task),
                        seed: 0,
                    }));
                }
            }
            if let Some((train_samples, test_samples, epochs)) = classify {
                out.push(RunSpec::Nlos(NlosSpec {
                    scene: NlosScene::at_grid(n),
                    task: NlosTask::Classification(ClassificationTask {
                        train_samples,
                        test_samples,
                        epochs,
                        ..ClassificationTask::at_grid(n)
                    }),
                    seed: 0,
                }));
            }
        }
        "seed002-ext4" => {
            use insitu_ffm::nlos::{DriftTask, NlosScene, NlosSpec, NlosTask, PhaseImagingTask};
            let (n, iterations, eval_every, train_samples, test_samples) = match profile {
                Paper => (400, 300, 10, 2000, 200),
                Quick => (128, 300, 10, 2000, 200),
                Smoke => (32, 10, 5, 100, 40),
                Tiny => return Ok(out),
            };
            // Reading: the paper's rotating diffuser is not described; the fully diffuse wall of
            // Fig. 4 (grain 1 pixel, 1 λ rms) decorrelates within an iteration at these speeds
            // (measured: both learners at chance), so the turning wall is a smoother one — grain
            // n/16 pixels, 0.25 λ rms — and the fully diffuse wall runs once at v₁ for contrast
            let smooth = NlosScene {
                wall_grain_px: n as f64 / 16.0,
                wall_roughness: 0.25,
                ..NlosScene::at_grid(n)
            };
            let base = DriftTask::at_grid(n);
            let task = |degrees_per_iteration: f64| {
                let mut t = DriftTask {
                    degrees_per_iteration,
                    iterations,
                    eval_every,
                    ..base.clone()
                };
                t.classification.train_samples = train_samples;
                t.classification.test_samples = test_samples;
                NlosTask::Drift(t)
            };
            for (scene, v) in [
                (&smooth, 0.0),
                (&smooth, 1.0),
                (&smooth, 2.5),
                (&NlosScene::at_grid(n), 1.0),
            ] {
                out.push(RunSpec::Nlos(NlosSpec {
                    scene: scene.clone(),
                    task: task(v),
                    seed: 0,
                }));
            }
            // two more smooth walls at each speed: one wall is one draw of the speckle
            if profile != Smoke {
                for wall_seed in 1..3 {
                    for v in [0.0, 1.0, 2.5] {
                        out.push(RunSpec::Nlos(NlosSpec {
                            scene: NlosScene {
                                wall_seed,
                                ..smooth.clone()
                            },
                            task: task(v),
                            seed: 0,
                        }));
                    }
                }
            }
            // Extended Data Fig. 4a on Fig. 4's wall: the paper's four learned digits, and 25
            // of each (does a mask learned on more digits image unseen ones?)
            let imaging = PhaseImagingTask::at_grid(n);
            let learned: &[usize] = if profile == Smoke { &[1] } else { &[1, 25] };
            for &learned_per_digit in learned {
                let task = if profile == Smoke {
                    PhaseImagingTask {
                        learned_per_digit,
                        unseen_per_digit: 1,
                        iterations: 10,
                        snr_db: vec![0.0, 15.0],
                        noise_draws: 2,
                        ..imaging.clone()
                    }
                } else {
                    PhaseImagingTask {
                        learned_per_digit,
                        ..imaging.clone()
                    }
                };
                out.push(RunSpec::Nlos(NlosSpec {
                    scene: NlosScene::at_grid(n),
                    task: NlosTask::PhaseImaging(task),
                    seed: 0,
                }));
            }
        }
        "seed002-ext1" => {
            use insitu_ffm::exceptional::{ContrastTarget, ExceptionalSpec, GainLoss, SplitStepPair};
            let steps = match profile {
                Paper | Quick => 200,
                Smoke => 20,
                Tiny => return Ok(out),
            };
            let pair = |kappa: f64, noise: f64| SplitStepPair {
                kappa,
                measurement_noise: noise,
                ..SplitStepPair::default()
            };
            for (target, kappa, start, noise) in [
                (ContrastTarget::Asymmetric, 1e3, 0.5, 0.0),
                (ContrastTarget::Asymmetric, 1e3, 0.5, 0.02),
                (ContrastTarget::Asymmetric, 1.3e3, 0.7, 0.0),
                (ContrastTarget::Asymmetric, 1e3, 0.2, 0.0),
                (ContrastTarget::Symmetric, 1e3, 2.5, 0.0),
            ] {
                out.push(RunSpec::Exceptional(ExceptionalSpec {
                    bench: pair(kappa, noise),
                    target,
                    start: GainLoss {
                        gain: start,
                        loss: start,
                    },
                    steps,
                    ..ExceptionalSpec::default()
                }));
            }
        }
        other => {
            return Err(format!(
                "unknown figure '{other}' (known: {})",
                FIGURES.iter().map(|f| f.id).collect::<Vec<_>>().join(", ")
            ))
        }
    }
    Ok(out)
}

/// The seed 000 cost model, per sample and epoch: a mini-batch gather per trained unit (the
/// network for BP, each layer for FF), bookkeeping per layer, and products per parameter
/// (`1 + 2P` evaluations for DD, 3 products' worth for AD). Fitted (least squares on relative
/// error) to the 240 paper-profile runs of seed 000 Fig. 4 made at commit 54f1f2a (session 19,
/// `cargo xtask reproduce --profile paper --only seed000-fig4 --results /tmp/r19`): their
/// `train_seconds` add up to the model's total (2,109 s measured, 2,130 estimated), each run
/// within 0.68–1.78× (the kernels of sessions 10–18 sped the methods up unevenly, which three
/// constants cannot follow). The fit at af73ade (8.8·10⁻⁸, 9.9·10⁻⁸, 1.43·10⁻¹¹) had become
/// 2.1× too long; session 1's constant (2·10⁻¹⁰ per parameter) was 18×.
const FFZERO_SECONDS_PER_GATHER: f64 = 4.67e-8;
/// See [`FFZERO_SECONDS_PER_GATHER`].
const FFZERO_SECONDS_PER_LAYER: f64 = 4.49e-8;
/// See [`FFZERO_SECONDS_PER_GATHER`].
const FFZERO_SECONDS_PER_PARAMETER: f64 = 6.76e-12;
/// Seconds per cost unit (an FFT point × log2 of the padded plane's point count) of one
/// propagation through seed 002's digital model: `insitu ffm train --mode ideal --layers 2
/// --grid 400 --epochs 1 --train-limit 400 --test-limit 16` took 1.47–1.50 ms per training
/// propagation in session 20, once the propagator skipped the frequencies the band limit
/// removes (0.120·10⁻⁹ per unit; 2.85 ms after f9f0c1f, 3.89 ms at 2c84dd9, before the
/// per-thread workers, the cached modulator patterns and the faster propagator). Session 1's
/// single constant (0.8·10⁻⁹, from 64×64 in-situ runs) made paper-grid runs of the model 3.5×
/// too long.
const FFM_MODEL_SECONDS_PER_UNIT: f64 = 0.120e-9;
/// The same for a run on the imperfect bench (`ImperfectBench`: the aberration sits between two
/// half propagations, whose wider band skips fewer frequencies, and every run adds seeded
/// detector noise): 4.74–4.83 ms per propagation at `--grid 400` (`--mode in-situ`, same
/// command; 6.13 ms after f9f0c1f, 8.37 ms at 2c84dd9), 0.387·10⁻⁹ per unit.
const FFM_BENCH_SECONDS_PER_UNIT: f64 = 0.387e-9;
/// Seconds per MZI and field of a photonic run (seed 000, SPEC A9): FF+DD with 2 meshes of 784
/// modes (306,936 MZIs each), 100 epochs of 60,000 images, took 4,556 s (session 21, the paper
/// profile's spec with `insitu train --spec --threads 1`), 7.37·10¹² MZI-field products:
/// 0.62 ns each (49 modes: 0.73 ns, 196 modes: 0.72 ns, when every block of 32 fields still
/// recomputed the mesh's matrices).
const PHOTONIC_SECONDS_PER_MZI_FIELD: f64 = 0.62e-9;
/// Seconds per mode of the electro-optic activation (f64 formula per value): 14.9–15.1 ns
/// measured on 784 × 128 values (session 21).
const PHOTONIC_SECONDS_PER_ACTIVATION: f64 = 15e-9;
/// SPEC A7: the Fashion-MNIST CNN's hidden FC layer (the stack {100, 10}) and its dropout.
const FASHION_FC_HIDDEN: usize = 100;
const FASHION_DROPOUT: f32 = 0.1;

/// Fixed cost of a run (data set clone, evaluation), seconds.
const PER_RUN_SECONDS: f64 = 0.3;
/// Seconds per layer run of the PIC network (seed 002 Fig. 5; measured: the 45 paper-profile
/// runs take ≈ 2 s of one core in all).
const PIC_SECONDS_PER_LAYER_RUN: f64 = 1.5e-7;

fn task_shape(task: &str) -> (usize, usize, Option<usize>) {
    // (inputs, training samples, classes)
    match task {
        "mnist" | "fashion-mnist" => (784, 50_000, Some(10)),
        "mnist-regression" => (784, 50_000, None),
        "synthetic-f1" => (2, 10_000, None),
        "synthetic-f2" => (5, 10_000, None),
        _ => (784, 50_000, Some(10)),
    }
}

/// Estimated wall time of `spec` on one core of this machine, seconds.
pub fn estimated_seconds(spec: &RunSpec) -> f64 {
    match spec {
        RunSpec::Ffzero(s) if s.model == Model::Cnn => {
            // im2col and product work per sample and evaluation: conv 1 C·36·27², conv 2
            // C²·36·12²; FF evaluates all channels of a layer in one product (measured 0.085,
            // 0.12 and 0.18 ns per unit of work at 16, 8 and 4 channels, one core, quick
            // profile: fixed costs weigh more on small networks), BP+DD the whole network
            // (0.13–0.36 ns); the AD methods' forward and backward pass cost about what the DD
            // methods' two evaluations do
            let n_train = s.train_limit.map_or(50_000, |l| l.min(50_000)) as f64;
            let c = s.width as f64;
            // (a hidden FC layer adds C·36·h + 10·h multiply-adds: under 1 % of the convolutions)
            let hidden: usize = s.fc_hidden.iter().sum();
            let work = 36.0 * 729.0 * c + 36.0 * 144.0 * c * c + (36.0 * c + 10.0) * hidden as f64;
            let per = if s.method.is_local() { 0.1e-9 } else { 0.25e-9 };
            PER_RUN_SECONDS + per * work * n_train * s.epochs as f64 * s.directions as f64
        }
        RunSpec::Ffzero(s) if s.model == Model::Photonic => {
            // Every evaluation sends a sample through one mesh (FF+DD: the mesh being trained,
            // the ones below cached) or through all of them (BP+DD), twice per direction:
            // N(N−1)/2 MZIs per mesh.
            let n_train = s.train_limit.map_or(60_000, |l| l.min(60_000)) as f64;
            let mzis = (s.width * s.width.saturating_sub(1) / 2) as f64;
            let evaluations = 2.0 * s.directions as f64;
            let meshes_per_sample = s.depth as f64;
            // BP+DD also sends every evaluation through the activations between the meshes
            let activations = if s.method.is_local() {
                0.0
            } else {
                (s.width * s.depth.saturating_sub(1)) as f64
            };
            let per_sample_evaluation = PHOTONIC_SECONDS_PER_MZI_FIELD * mzis * meshes_per_sample
                + PHOTONIC_SECONDS_PER_ACTIVATION * activations;
            PER_RUN_SECONDS + per_sample_evaluation * evaluations * n_train * s.epochs as f64
        }
        RunSpec::Ffzero(s) => {
            let (inputs, n, classes) = task_shape(&s.task);
            let n_train = s.train_limit.map_or(n, |l| l.min(n)) as f64;
            let widths = insitu_ffzero::layer_widths(s, inputs, classes);
            let params: usize = widths.windows(2).map(|w| (w[0] + 1) * w[1]).sum();
            let mult = if s.method.is_directional() {
                1.0 + 2.0 * s.directions as f64
            } else {
                3.0
            };
            let layers = (widths.len() - 1) as f64;
            let gathers = if s.method.is_local() { layers } else { 1.0 };
            let per_sample = FFZERO_SECONDS_PER_GATHER * gathers
                + FFZERO_SECONDS_PER_LAYER * layers
                + FFZERO_SECONDS_PER_PARAMETER * params as f64 * mult;
            PER_RUN_SECONDS + per_sample * n_train * s.epochs as f64
        }
        RunSpec::Pic(p) => {
            // training (13 runs per sample for FFM, 5 for the model's data pass plus 8 for its
            // error pass), a test pass per epoch, the final train/test passes and the gradient
            // error's central differences (2 losses per parameter over the training set)
            let (train, test, layers) = (120.0, 30.0, insitu_ffm::pic::PIC_NETWORK.len() as f64);
            let parameters = insitu_ffm::pic::num_parameters() as f64;
            let runs = p.epochs as f64 * (train * RUNS_PER_SAMPLE as f64 + test * layers)
                + (train + test) * layers
                + train * RUNS_PER_SAMPLE as f64
                + 2.0 * parameters * train * layers;
            PER_RUN_SECONDS + PIC_SECONDS_PER_LAYER_RUN * runs
        }
        RunSpec::Focus(f) => {
            // one (FFM: two) runs of the path per iteration and particle; a run is two padded
            // FFT propagations
            let m = (f.grid_n * f.padding) as f64;
            let per_run = 2.0 * FFM_MODEL_SECONDS_PER_UNIT * m * m * (m * m).log2();
            let runs = match f.method {
                insitu_ffm::focusing::FocusMethod::Ffm { .. } => 2.0 * f.iterations as f64,
                insitu_ffm::focusing::FocusMethod::Pso { particles, .. } => (particles * (f.iterations + 1)) as f64,
            };
            PER_RUN_SECONDS + per_run * (runs + 2.0)
        }
        RunSpec::Nlos(s) => {
            // a run is four padded FFT propagations, three screens and the loss: ≈ 7.2 units of
            // one propagation's FFT work (measured 0.83 ms at n = 128 and 11 ms at n = 400);
            // imaging: 9 scenes per step (FFM: 2 runs each), PSO 9 per particle and generation,
            // 12 to evaluate; classification: 2 per training sample and epoch, then the test set
            // and the flat-mask camera of both sets, plus the electronic baselines (≈ 2·10⁻⁹ s
            // per sample, feature, class and step)
            use insitu_ffm::nlos::{NlosMethod, NlosTask};
            let m = (s.scene.grid_n * s.scene.padding) as f64;
            let per_run = 7.2 * FFM_MODEL_SECONDS_PER_UNIT * m * m * (m * m).log2();
            let (runs, digital) = match &s.task {
                NlosTask::Imaging(t) => (
                    12.0 + match t.method {
                        NlosMethod::Ffm { .. } => 18.0 * t.iterations as f64,
                        NlosMethod::Pso { particles, .. } => 9.0 * (particles * (t.iterations + 1)) as f64,
                        NlosMethod::Flat => 0.0,
                    },
                    0.0,
                ),
                NlosTask::Classification(t) => {
                    let (train, test) = (t.train_samples as f64, t.test_samples as f64);
                    let fits = 1.0 + 2.0 * t.photons_per_pixel.len() as f64;
                    let features = (t.ann_bins * t.ann_bins) as f64;
                    (
                        2.0 * train * t.epochs as f64 + 2.0 * test + train,
                        fits * 300.0 * train * features * t.classes.len() as f64 * 2e-9,
                    )
                }
                // Extended Data Fig. 4b: per iteration FFM's two runs and the electronic
                // learner's one per sample; per test both cameras on the test set
                NlosTask::Drift(t) => {
                    let c = &t.classification;
                    let tests = (t.iterations / t.eval_every.max(1) + 2) as f64;
                    (
                        3.0 * (t.iterations * c.batch) as f64 + 2.0 * tests * c.test_samples as f64,
                        0.0,
                    )
                }
                // Extended Data Fig. 4a: FFM's two runs per learned digit and step; both masks
                // on every image; the reads (≈ 2 ns per camera pixel, draw and SNR, for the
                // noise and the bins)
                NlosTask::PhaseImaging(t) => {
                    let images = (t.digits.len() * (t.learned_per_digit + t.unseen_per_digit)) as f64;
                    let pixels = (s.scene.grid_n * s.scene.grid_n) as f64;
                    (
                        2.0 * (t.iterations * t.digits.len() * t.learned_per_digit) as f64 + 2.0 * images,
                        3.0 * images * (t.noise_draws * t.snr_db.len()) as f64 * pixels * 2e-9,
                    )
                }
            };
            PER_RUN_SECONDS + per_run * runs + digital
        }
        RunSpec::Exceptional(e) => {
            // two runs of the pair per step, 3 matrix steps of 2 fields per section (≈ 20 ns)
            PER_RUN_SECONDS + 2.0 * e.steps as f64 * e.bench.sections as f64 * 2e-8
        }
        RunSpec::Ffm(s) => {
            let m = (s.grid_n * s.padding) as f64;
            let fft = m * m * (m * m).log2();
            let n_train = s.train_limit.unwrap_or(50_000) as f64;
            let n_test = s.test_limit.unwrap_or(10_000) as f64;
            let layers = s.layers as f64;
            // Training: a data and an error propagation per sample and layer; evaluation after
            // every epoch: a data propagation per test sample and layer, on the bench for
            // in-silico and in-situ runs, plus one on the model at the end of an in-silico run.
            let train_passes = s.epochs as f64 * 2.0 * n_train * layers;
            let eval_passes = s.epochs as f64 * n_test * layers;
            let (train_cost, eval_cost, final_model_eval) = match s.mode {
                TrainingMode::Ideal => (FFM_MODEL_SECONDS_PER_UNIT, FFM_MODEL_SECONDS_PER_UNIT, 0.0),
                TrainingMode::InSilico => (
                    FFM_MODEL_SECONDS_PER_UNIT,
                    FFM_BENCH_SECONDS_PER_UNIT,
                    n_test * layers * FFM_MODEL_SECONDS_PER_UNIT,
                ),
                TrainingMode::InSitu => (FFM_BENCH_SECONDS_PER_UNIT, FFM_BENCH_SECONDS_PER_UNIT, 0.0),
            };
            PER_RUN_SECONDS + fft * (train_passes * train_cost + eval_passes * eval_cost + final_model_eval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_has_runs_in_every_public_profile_and_no_duplicates() {
        for p in [Profile::Smoke, Profile::Quick, Profile::Paper] {
            for f in FIGURES {
                let specs = figure_specs(f.id, p).unwrap();
                assert!(!specs.is_empty(), "{} {}", f.id, p.name());
                let mut hashes: Vec<String> = specs.iter().map(|s| s.hash()).collect();
                hashes.sort();
                hashes.dedup();
                assert_eq!(hashes.len(), specs.len(), "{} {}", f.id, p.name());
            }
        }
        assert!(figure_specs("fig99", Profile::Smoke)
            .unwrap_err()
            .contains("seed000-fig4"));
    }

    #[test]
    fn paper_profile_has_the_papers_grid() {
        let n = |id| figure_specs(id, Profile::Paper).unwrap().len();
        assert_eq!(n("seed000-fig4"), 2 * 3 * 10 * 4);
        assert_eq!(n("seed000-fig6"), (10 + 10 + 3) * 4);
        assert_eq!(n("seed000-suppfig1"), 3 * 4 * 2);
        assert_eq!(n("seed002-fig2d"), 4 * 3 * 5);
        assert_eq!(n("seed000-photonic"), 3 * 2);
        assert_eq!(n("seed002-fig5"), 3 * 3 * 5);
        assert_eq!(n("seed002-ext1"), 5);
        // 4b: the smooth wall at 3 speeds × 3 walls and the diffuse wall at v₁; 4a: phase
        // imaging with 1 and 25 learned digits each
        assert_eq!(n("seed002-ext4"), 3 * 3 + 1 + 2);
        assert_eq!(n("seed002-fig3"), 3 * 3);
        // 8 channel counts × 4 methods × classification and regression
        assert_eq!(n("seed000-cnn"), 8 * 4 * 2 + 8 * 4);
        // imaging: 4 methods × 3 walls; classification: 1
        assert_eq!(n("seed002-fig4"), 4 * 3 + 1);
        for s in figure_specs("seed002-fig4", Profile::Paper).unwrap() {
            let RunSpec::Nlos(n) = s else { panic!() };
            assert_eq!(n.scene.grid_n, 400);
            if let insitu_ffm::nlos::NlosTask::Classification(t) = &n.task {
                assert_eq!(
                    (t.classes.as_slice(), t.train_samples, t.test_samples),
                    (&[0, 7][..], 2000, 200)
                );
            }
        }
        for s in figure_specs("seed002-fig5", Profile::Paper).unwrap() {
            let RunSpec::Pic(p) = s else { panic!() };
            assert!([1.0, 0.75, 0.5].contains(&p.ratio) && p.epochs == 100 && p.seed < 5);
        }
        for s in figure_specs("seed000-photonic", Profile::Paper).unwrap() {
            let RunSpec::Ffzero(t) = s else { panic!() };
            assert_eq!(
                (t.model, t.depth, t.epochs, t.batch, t.train_limit, t.width),
                (Model::Photonic, 2, 100, 128, None, (28 / t.pool).pow(2))
            );
        }
        for s in figure_specs("seed000-fig4", Profile::Paper).unwrap() {
            let RunSpec::Ffzero(t) = s else { panic!() };
            assert_eq!(
                (t.epochs, t.batch, t.train_limit, t.lr, t.eps),
                (100, 256, None, 1e-3, 1e-3)
            );
        }
    }

    #[test]
    fn cost_grows_with_work() {
        let a = ffzero(Profile::Paper, "mnist", 10, 1, Method::BpAd, 1);
        let b = ffzero(Profile::Paper, "mnist", 100, 1, Method::BpAd, 1);
        let c = ffzero(Profile::Paper, "mnist", 100, 5, Method::BpAd, 1);
        assert!(estimated_seconds(&a) < estimated_seconds(&b));
        assert!(estimated_seconds(&b) < estimated_seconds(&c));
    }

    #[test]
    fn ffm_runs_on_the_bench_cost_more_than_on_the_model() {
        let run = |mode| {
            estimated_seconds(&RunSpec::Ffm(FfmSpec {
                mode,
                ..FfmSpec::paper()
            }))
        };
        let (ideal, in_silico, in_situ) = (
            run(TrainingMode::Ideal),
            run(TrainingMode::InSilico),
            run(TrainingMode::InSitu),
        );
        assert!(
            ideal < in_silico && in_silico < in_situ,
            "{ideal} {in_silico} {in_situ}"
        );
        // 2 layers, 3 epochs of 30 000 samples and 5 000 test samples on an 800² plane, on the
        // model: 1.47–1.50 ms per propagation measured (session 20), 390 000 propagations.
        let expected = 0.3 + 1.48e-3 * (3.0 * 2.0 * 30_000.0 * 2.0 + 3.0 * 5_000.0 * 2.0);
        assert!((ideal / expected - 1.0).abs() < 0.05, "{ideal} vs {expected}");
    }
}
