//! Around the corner (seed 002 Fig. 4; SPEC B4): the scene's path is symmetric and FFM equals
//! the reverse-mode gradient on it; the letters are imaged better than with the flat mask; the
//! hidden-object classifier learns and needs fewer photons than the electronic baseline; the
//! metrics (SSIM, turning points) and the softmax baseline's gradient against independent
//! references; refused specs.

use insitu_data::{Dataset, Mat, Targets};
use insitu_ffm::nlos::*;
use insitu_ffm::{
    adjoint_gradient, ffm_gradient, AdjointPropagation, FfmWorkspace, FieldLoss, PhysicalSystem, Propagation,
    ScreenPath,
};
use insitu_linalg::rng;
use insitu_optics::{Complex32, FreeSpace, Grid, PropagationMethod};
use rand::Rng;

fn random_field(n2: usize, seed: u64) -> Vec<Complex32> {
    let mut r = rng(seed);
    (0..n2)
        .map(|_| Complex32::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect()
}

fn letter_object(n: usize, cell: usize, pattern: &[u8; 9]) -> Vec<Complex32> {
    let cells = letter_cells(n, cell).unwrap();
    let mut out = vec![Complex32::new(0.0, 0.0); n * n];
    let mut one = vec![0.0f32; n * n];
    for (k, &on) in pattern.iter().enumerate() {
        if on != 0 {
            cells.target_image(k, &mut one).unwrap();
            for (o, v) in out.iter_mut().zip(&one) {
                o.re += v;
            }
        }
    }
    out
}

#[test]
fn the_scene_reads_the_same_from_both_ends_and_its_adjoint_is_the_conjugate_transpose() {
    let scene = NlosScene::at_grid(32);
    let mut path = scene.path().unwrap();
    assert!(path.is_mirror_symmetric());
    assert_eq!(path.screens().len(), 3);
    path.set_screen(1, &letter_object(32, 4, &LETTERS[0].1)).unwrap();
    assert!(path.is_mirror_symmetric(), "the object sits in the middle");
    let n2 = 32 * 32;
    let (x, y) = (random_field(n2, 1), random_field(n2, 2));
    let (mut px, mut py, mut phy) = (x.clone(), y.clone(), y.clone());
    path.propagate(&mut px);
    path.propagate(&mut py);
    path.propagate_adjoint(&mut phy);
    let bilinear =
        |u: &[Complex32], v: &[Complex32]| u.iter().zip(v).fold(Complex32::new(0.0, 0.0), |s, (p, q)| s + p * q);
    let inner = |u: &[Complex32], v: &[Complex32]| {
        u.iter()
            .zip(v)
            .fold(Complex32::new(0.0, 0.0), |s, (p, q)| s + p.conj() * q)
    };
    // Pᵀ = P
    let (l, r) = (bilinear(&y, &px), bilinear(&x, &py));
    assert!((l - r).norm() < 1e-4 * l.norm(), "{l} vs {r}");
    // ⟨y, P x⟩ = ⟨Pᴴ y, x⟩
    let (a, b) = (inner(&y, &px), inner(&phy, &x));
    assert!((a - b).norm() < 1e-4 * a.norm(), "{a} vs {b}");
    // a wall that differs on the way back breaks the symmetry
    let walls = path.screens().to_vec();
    let mut other = walls[2].clone();
    other[5] = Complex32::new(0.0, 1.0);
    let grid = Grid::new(32, 8e-6).unwrap();
    let t = |z: f64| FreeSpace::new(grid, 532e-9, z, PropagationMethod::BandLimitedAngularSpectrum, 2).unwrap();
    let broken = ScreenPath::new(
        vec![t(0.01), t(0.003), t(0.003), t(0.01)],
        vec![walls[0].clone(), walls[1].clone(), other],
    )
    .unwrap();
    assert!(!broken.is_mirror_symmetric());
    let unequal = ScreenPath::new(vec![t(0.01), t(0.02)], vec![walls[0].clone()]).unwrap();
    assert!(!unequal.is_mirror_symmetric());
}

#[test]
fn a_path_refuses_inconsistent_parts() {
    let grid = Grid::new(16, 8e-6).unwrap();
    let t = |g: Grid| FreeSpace::new(g, 532e-9, 0.01, PropagationMethod::BandLimitedAngularSpectrum, 2).unwrap();
    let screen = vec![Complex32::new(1.0, 0.0); 256];
    assert!(ScreenPath::new(vec![], vec![]).is_err());
    assert!(ScreenPath::new(vec![t(grid)], vec![screen.clone()]).is_err());
    assert!(ScreenPath::new(vec![t(grid), t(grid)], vec![screen[..10].to_vec()]).is_err());
    let other = Grid::new(16, 4e-6).unwrap();
    assert!(ScreenPath::new(vec![t(grid), t(other)], vec![screen.clone()]).is_err());
    let mut ok = ScreenPath::new(vec![t(grid), t(grid)], vec![screen.clone()]).unwrap();
    assert!(ok.set_screen(1, &screen).is_err());
    assert!(ok.set_screen(0, &screen[..3]).is_err());
    assert!(ok.set_screen(0, &screen).is_ok());
}

#[test]
fn ffm_on_the_scene_equals_the_reverse_mode_gradient_and_finite_differences() {
    let n = 32;
    let n2 = n * n;
    let scene = NlosScene::at_grid(n);
    let mut bench = NlosBench::new(&scene).unwrap();
    bench.place_object(&letter_object(n, 4, &LETTERS[1].1));
    let mut r = rng(4);
    let phases = vec![(0..n2)
        .map(|_| r.random_range(0.0..std::f32::consts::TAU))
        .collect::<Vec<f32>>()];
    let input = scene.input();
    let cells = letter_cells(n, 4).unwrap();
    let target = cells.mask(4).unwrap();
    let loss = FieldLoss::NormalizedIntensityMse(&target);
    let mut ws = FfmWorkspace::new(1, n2);
    let mut ffm = vec![vec![0.0f32; n2]];
    let mut adjoint = vec![vec![0.0f32; n2]];
    let value = ffm_gradient(&mut bench, &phases, &[], &input, &loss, &mut ws, &mut ffm, 0);
    adjoint_gradient(
        bench.digital_model(),
        &phases,
        &[],
        &input,
        &loss,
        &mut ws,
        &mut adjoint,
    );
    let norm: f64 = adjoint[0].iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let diff: f64 = ffm[0]
        .iter()
        .zip(&adjoint[0])
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(norm > 0.0 && diff < 1e-4 * norm, "FFM vs adjoint: {diff:e} of {norm:e}");
    // central differences at the largest-gradient pixels (f32 fields: step 1e-2, 5 %)
    let mut order: Vec<usize> = (0..n2).collect();
    order.sort_by(|&a, &b| ffm[0][b].abs().total_cmp(&ffm[0][a].abs()));
    let mut scratch = vec![Complex32::new(0.0, 0.0); n2];
    let mut at = |p: &[Vec<f32>]| {
        let mut field = input.clone();
        bench.run(Some((0, &p[0])), 0, &mut field, 0);
        loss.eval(&field, &mut scratch)
    };
    assert!((at(&phases) - value).abs() < 1e-6 * value.abs().max(1.0));
    for &j in &order[..4] {
        let h = 1e-2f32;
        let mut plus = phases.clone();
        plus[0][j] += h;
        let mut minus = phases.clone();
        minus[0][j] -= h;
        let fd = (at(&plus) - at(&minus)) / (2.0 * f64::from(h));
        let g = f64::from(ffm[0][j]);
        assert!((fd - g).abs() < 0.05 * g.abs(), "pixel {j}: FFM {g} vs FD {fd}");
    }
}

fn imaging(method: NlosMethod, iterations: usize, loss: ImagingLoss) -> NlosResult {
    let spec = NlosSpec {
        scene: NlosScene::at_grid(64),
        task: NlosTask::Imaging(ImagingTask {
            cell_px: 8,
            loss,
            method,
            iterations,
        }),
        seed: 0,
    };
    run_nlos(&spec, None).unwrap().result
}

fn letters(result: &NlosResult) -> &ImagingOutcome {
    match &result.outcome {
        NlosOutcome::Imaging(o) => o,
        other => panic!("not imaging: {other:?}"),
    }
}

#[test]
fn ffm_images_the_hidden_letters_where_the_flat_mask_does_not() {
    let flat = imaging(NlosMethod::Flat, 0, ImagingLoss::Image);
    assert_eq!(flat.forward_runs, 0);
    let ffm = imaging(NlosMethod::Ffm { lr: 0.1 }, 150, ImagingLoss::Image);
    // a data and an error run per scene and step
    assert_eq!(ffm.forward_runs, 2 * 9 * 150);
    let (f, o) = (letters(&flat), letters(&ffm));
    let first = o.loss_curve[0];
    let last = *o.loss_curve.last().unwrap();
    assert_eq!(first, f.loss_curve[0], "both start from the flat mask");
    assert!(last < 0.5 * first, "loss {first} → {last}");
    assert_eq!(o.letters.len(), 3);
    for (a, b) in o.letters.iter().zip(&f.letters) {
        assert!(a.contrast > 1.0, "FFM {} contrast {}", a.letter, a.contrast);
        assert!(b.contrast < 1.0, "flat {} contrast {}", b.letter, b.contrast);
        assert!(a.ssim > b.ssim, "{}: FFM SSIM {} vs flat {}", a.letter, a.ssim, b.ssim);
        assert_eq!(a.cells_correct, 9, "{a:?}");
    }
    // the detector-fraction loss keeps the other cells darker still
    let fraction = imaging(NlosMethod::Ffm { lr: 0.1 }, 150, ImagingLoss::CellFraction);
    for (a, b) in letters(&fraction).letters.iter().zip(&o.letters) {
        assert!(
            a.contrast > b.contrast,
            "{}: {} vs {}",
            a.letter,
            a.contrast,
            b.contrast
        );
    }
}

#[test]
fn pso_runs_one_scene_per_particle_and_iteration() {
    let pso = imaging(
        NlosMethod::Pso {
            particles: 4,
            segments: 8,
        },
        3,
        ImagingLoss::Image,
    );
    assert_eq!(pso.forward_runs, 9 * 4 * (3 + 1));
    let curve = &letters(&pso).loss_curve;
    assert!(
        curve.windows(2).take(3).all(|w| w[1] <= w[0]),
        "best so far never rises: {curve:?}"
    );
}

/// Two classes of 28 × 28 images an optical classifier can tell apart: a ring ("0") and a
/// vertical bar ("7"), with random strokes added.
fn toy_digits(count: usize, seed: u64) -> Dataset {
    let mut r = rng(seed);
    let mut inputs = Mat::zeros(784, count);
    let mut labels = Vec::with_capacity(count);
    for j in 0..count {
        let label = if j % 2 == 0 { 0u32 } else { 7 };
        for p in 0..784 {
            let (y, x) = ((p / 28) as f32 - 13.5, (p % 28) as f32 - 13.5);
            let radius = (x * x + y * y).sqrt();
            let on = if label == 0 {
                (radius - 8.0).abs() < 2.0
            } else {
                x.abs() < 2.0 && y.abs() < 10.0
            };
            let v = if on { 1.0 } else { 0.0 } + r.random_range(0.0..0.3f32);
            inputs[(p, j)] = v.min(1.0);
        }
        labels.push(label);
    }
    Dataset {
        inputs,
        targets: Targets::Classes {
            labels,
            num_classes: 10,
        },
    }
}

fn small_classification() -> NlosSpec {
    NlosSpec {
        scene: NlosScene::at_grid(64),
        task: NlosTask::Classification(ClassificationTask {
            train_samples: 120,
            test_samples: 60,
            object_px: 16,
            region_px: 6,
            epochs: 4,
            batch: 10,
            lr: 0.1,
            photons_per_pixel: vec![0.01, 0.1, 1.0, 10.0, 100.0],
            ann_bins: 8,
            ..ClassificationTask::default()
        }),
        seed: 1,
    }
}

#[test]
fn the_hidden_object_classifier_learns_and_its_noise_curves_behave() {
    let spec = small_classification();
    let (train, test) = (toy_digits(200, 1), toy_digits(80, 2));
    let trained = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| run_nlos(&spec, Some((&train, &test))).unwrap());
    let r = &trained.result;
    assert_eq!(r.forward_runs, 2 * 120 * 4, "two runs per sample and epoch");
    let NlosOutcome::Classification(o) = &r.outcome else {
        panic!("not classification")
    };
    assert!(o.loss_curve.last().unwrap() < &o.loss_curve[0], "{:?}", o.loss_curve);
    assert!(
        o.ffm_accuracy >= 0.9,
        "FFM {} {:?} flat {}",
        o.ffm_accuracy,
        o.loss_curve,
        o.flat_accuracy
    );
    assert!(o.ann_accuracy >= 0.9, "electronic {}", o.ann_accuracy);
    assert_eq!(o.curves.len(), 2);
    for c in &o.curves {
        assert_eq!(c.ffm.len(), 5);
        // plenty of light: the noise-free accuracy, within a test sample or two
        assert!((c.ffm[4] - o.ffm_accuracy).abs() <= 2.0 / 60.0 + 1e-12, "{c:?}");
        // too little light: near chance
        assert!(c.ann[0] < 0.75, "{c:?}");
    }
    assert_eq!(trained.images.len(), 2);
    // the same result on one thread (one copy of the scene) as on two: seeded noise and
    // batches, gradients summed in batch order
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| run_nlos(&spec, Some((&train, &test))).unwrap());
    assert_eq!(again.phase, trained.phase);
    let (NlosOutcome::Classification(a), NlosOutcome::Classification(b)) = (&again.result.outcome, &r.outcome) else {
        panic!()
    };
    assert_eq!(a.curves, b.curves);
}

#[test]
fn bad_specs_and_data_are_refused_with_a_message() {
    let spec = small_classification();
    let (train, test) = (toy_digits(200, 1), toy_digits(80, 2));
    let with = |f: &dyn Fn(&mut ClassificationTask)| {
        let mut s = spec.clone();
        if let NlosTask::Classification(t) = &mut s.task {
            f(t);
        }
        run_nlos(&s, Some((&train, &test))).map(|_| ()).unwrap_err().to_string()
    };
    assert!(with(&|t| t.classes = vec![0]).contains("classes"));
    assert!(with(&|t| t.classes = vec![0, 0]).contains("classes"));
    assert!(with(&|t| t.photons_per_pixel = vec![1.0, 0.1]).contains("ascending"));
    assert!(with(&|t| t.ann_bins = 5).contains("ann_bins"));
    assert!(with(&|t| t.train_samples = 250).contains("training split has 200"));
    assert!(with(&|t| t.region_px = 30).contains("do not fit"));
    assert!(with(&|t| t.lr = f32::NAN).contains("lr"));
    assert!(with(&|t| t.classes = vec![0, 12]).contains("class 12 is not a class"));
    let absent = with(&|t| {
        t.classes = vec![0, 3];
        (t.train_samples, t.test_samples) = (50, 20);
    });
    assert!(absent.contains("no sample of class 3"), "{absent}");
    assert!(run_nlos(&spec, None)
        .unwrap_err()
        .to_string()
        .contains("needs a data set"));
    let imaging = |task: ImagingTask, n: usize| {
        run_nlos(
            &NlosSpec {
                scene: NlosScene::at_grid(n),
                task: NlosTask::Imaging(task),
                seed: 0,
            },
            None,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    assert!(imaging(ImagingTask::default(), 32).contains("does not fit"));
    let pso = ImagingTask {
        cell_px: 4,
        method: NlosMethod::Pso {
            particles: 4,
            segments: 5,
        },
        ..ImagingTask::default()
    };
    assert!(imaging(pso, 32).contains("segments"));
    assert!(imaging(ImagingTask::default(), 8).contains("grid_n"));
}

/// A direct transcription of Wang et al.'s SSIM for one window pair (the reference).
fn ssim_window(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let va = a.iter().map(|x| (x - ma).powi(2)).sum::<f64>() / (n - 1.0);
    let vb = b.iter().map(|x| (x - mb).powi(2)).sum::<f64>() / (n - 1.0);
    let cov = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (n - 1.0);
    let (c1, c2) = (1e-4, 9e-4);
    (2.0 * ma * mb + c1) * (2.0 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
}

#[test]
fn ssim_matches_a_windowwise_reference_and_its_defining_properties() {
    let mut r = rng(7);
    for (rows, cols) in [(7, 7), (9, 12), (16, 16), (3, 5)] {
        let a: Vec<f32> = (0..rows * cols).map(|_| r.random_range(0.0..1.0)).collect();
        let b: Vec<f32> = a
            .iter()
            .map(|v| (v * 0.7 + r.random_range(0.0..0.3f32)).min(1.0))
            .collect();
        let (wr, wc) = (rows.min(7), cols.min(7));
        let mut total = 0.0;
        let mut count = 0;
        for r0 in 0..=rows - wr {
            for c0 in 0..=cols - wc {
                let pick = |img: &[f32]| -> Vec<f64> {
                    (r0..r0 + wr)
                        .flat_map(|i| (c0..c0 + wc).map(move |j| (i, j)))
                        .map(|(i, j)| f64::from(img[i * cols + j]))
                        .collect()
                };
                total += ssim_window(&pick(&a), &pick(&b));
                count += 1;
            }
        }
        let reference = total / count as f64;
        let got = ssim(&a, &b, rows, cols);
        assert!((got - reference).abs() < 1e-9, "{rows}×{cols}: {got} vs {reference}");
        assert!((ssim(&a, &a, rows, cols) - 1.0).abs() < 1e-12);
        assert!((got - ssim(&b, &a, rows, cols)).abs() < 1e-12);
        assert!(got < 1.0);
    }
}

#[test]
fn turning_points_interpolate_between_the_levels_around_the_threshold() {
    let levels = [0.1, 1.0, 10.0, 100.0];
    // passes from 10 on: halfway in accuracy between 1 and 10 → √10 on the log scale
    let t = turning_photons(&levels, &[0.5, 0.8, 1.0, 1.0], 0.9).unwrap();
    assert!((t - 10f64.sqrt()).abs() < 1e-12, "{t}");
    // a dip after passing moves the turning point up
    let t = turning_photons(&levels, &[0.95, 0.95, 0.85, 0.95], 0.9).unwrap();
    assert!((t - 10f64.powf(1.5)).abs() < 1e-9, "{t}");
    assert_eq!(turning_photons(&levels, &[0.95; 4], 0.9), Some(0.1));
    assert_eq!(turning_photons(&levels, &[0.5, 0.6, 0.7, 0.8], 0.9), None);
}

#[test]
fn the_softmax_baseline_gradient_matches_finite_differences_and_it_separates_separable_data() {
    let mut r = rng(3);
    let (samples, features, classes) = (40, 5, 3);
    let labels: Vec<usize> = (0..samples).map(|i| i % classes).collect();
    let x: Vec<f64> = (0..samples * features)
        .map(|i| {
            let (s, f) = (i / features, i % features);
            r.random_range(-1.0..1.0) + if f == labels[s] { 3.0 } else { 0.0 }
        })
        .collect();
    let model = SoftmaxRegression::fit(&x, &labels, features, classes, 200, 0.05, 1e-3);
    assert_eq!(model.accuracy(&x, &labels), 1.0);
    // the gradient at the fitted weights, on standardised-looking rows
    let z: Vec<f64> = (0..samples * features).map(|_| r.random_range(-1.0..1.0)).collect();
    let l2 = 0.1;
    let mut grad = vec![0.0; classes * (features + 1)];
    model.loss_and_gradient(&z, &labels, l2, &mut grad);
    for i in 0..grad.len() {
        let h = 1e-3f32;
        // f32 weights: the steps are rounded; divide by the steps actually taken
        let at = |d: f32| {
            let mut m = model.clone();
            let w = m.weights_mut();
            let before = w[i];
            w[i] += d;
            let taken = f64::from(w[i]) - f64::from(before);
            let mut g = vec![0.0; grad.len()];
            (m.loss_and_gradient(&z, &labels, l2, &mut g), taken)
        };
        let ((up, hu), (down, hd)) = (at(h), at(-h));
        let fd = (up - down) / (hu - hd);
        assert!(
            (fd - grad[i]).abs() < 1e-4 * (1.0 + grad[i].abs()),
            "weight {i}: {} vs FD {fd}",
            grad[i]
        );
    }
}

/// Extended Data Fig. 4b on the toy digits: at 0° per iteration the online learners are
/// Fig. 4c's; with the wall turning, FFM keeps learning on the scene as it is.
fn drift(degrees_per_iteration: f64) -> NlosSpec {
    let NlosTask::Classification(c) = small_classification().task else {
        unreachable!()
    };
    NlosSpec {
        task: NlosTask::Drift(DriftTask {
            classification: c,
            degrees_per_iteration,
            iterations: 60,
            eval_every: 10,
            ann_lr: 0.05,
        }),
        ..small_classification()
    }
}

#[test]
fn the_turning_wall_experiment_tests_both_learners_on_the_scene_as_it_is() {
    let (train, test) = (toy_digits(200, 1), toy_digits(80, 2));
    let run = |spec: &NlosSpec, threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run_nlos(spec, Some((&train, &test))).unwrap())
    };
    let mut masks = Vec::new();
    for v in [0.0, 2.5] {
        let spec = drift(v);
        let trained = run(&spec, 2);
        let NlosOutcome::Drift(o) = &trained.result.outcome else {
            panic!("not the drift task")
        };
        eprintln!(
            "v = {v}°/iteration: FFM {:?}\n  electronic {:?}",
            o.ffm_accuracy, o.ann_accuracy
        );
        assert_eq!(o.iterations, [0, 10, 20, 30, 40, 50, 60]);
        assert_eq!(o.wall_degrees[6], 60.0 * v);
        assert_eq!(o.loss_curve.len(), 60);
        // learning runs only: FFM's data and error run and the electronic learner's image per
        // sample and iteration (the tests' exposures are not learning)
        assert_eq!(trained.result.forward_runs, 3 * 60 * 10);
        if v == 0.0 {
            // a still wall: Fig. 4c's learners, online (measured: both 100 % from iteration 30)
            assert!(o.ffm_accuracy[6] >= 0.9 && o.ann_accuracy[6] >= 0.9, "{o:?}");
        }
        let again = run(&spec, 1);
        assert_eq!(again.phase, trained.phase, "v = {v}: thread count changed the mask");
        assert_eq!(again.result.outcome, trained.result.outcome);
        masks.push(trained.phase);
    }
    assert_ne!(masks[0], masks[1], "the turning wall changed nothing");
}

#[test]
fn turning_the_wall_by_a_full_turn_gives_the_scene_back_and_a_quarter_turn_does_not() {
    let scene = NlosScene::at_grid(32);
    let n2 = 32 * 32;
    let object = random_field(n2, 4);
    let camera = |bench: &mut NlosBench| {
        bench.place_object(&object);
        let mut field = random_field(n2, 5);
        bench.run(None, 0, &mut field, 0);
        field
    };
    let mut bench = NlosBench::new(&scene).unwrap();
    let still = camera(&mut bench);
    bench.turn_wall_to(0.0).unwrap();
    assert_eq!(camera(&mut bench), still, "0° is the drawn wall, bit for bit");
    bench.turn_wall_to(360.0).unwrap();
    let full = camera(&mut bench);
    let diff = |a: &[Complex32], b: &[Complex32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum::<f32>() / b.iter().map(|y| y.norm_sqr()).sum::<f32>()
    };
    assert!(diff(&full, &still) < 1e-8, "360°: {}", diff(&full, &still));
    bench.turn_wall_to(90.0).unwrap();
    assert!(
        diff(&camera(&mut bench), &still) > 0.5,
        "a quarter turn is another wall"
    );
}

fn small_phase_imaging() -> NlosSpec {
    NlosSpec {
        scene: NlosScene::at_grid(64),
        task: NlosTask::PhaseImaging(PhaseImagingTask {
            digits: vec![0, 7],
            learned_per_digit: 1,
            unseen_per_digit: 3,
            object_px: 28,
            iterations: 150,
            lr: 0.1,
            snr_db: vec![-20.0, 0.0, 40.0],
            noise_draws: 3,
            ann_bins: 8,
            ann_ridge: 1e-3,
        }),
        seed: 0,
    }
}

#[test]
fn ffm_images_hidden_phase_digits_and_the_reads_degrade_with_noise() {
    let spec = small_phase_imaging();
    let (train, test) = (toy_digits(40, 1), toy_digits(40, 2));
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run_nlos(&spec, Some((&train, &test))).unwrap())
    };
    let trained = run(2);
    let NlosOutcome::PhaseImaging(o) = &trained.result.outcome else {
        panic!("not phase imaging")
    };
    eprintln!("{o:?}");
    // learning runs only: a data and an error run per learned digit and step
    assert_eq!(trained.result.forward_runs, 2 * 150 * 2);
    assert_eq!(o.loss_curve.len(), 151);
    assert!(o.loss_curve[150] < 0.5 * o.loss_curve[0], "{:?}", o.loss_curve);
    assert_eq!((o.learned.images, o.unseen.images), (2, 6));
    assert_eq!(trained.images.len(), 8);
    let c = &o.learned;
    assert_eq!((c.ffm.len(), c.ann.len(), c.ann_noise_trained.len()), (3, 3, 3));
    // the mask images the learned digits; the flat mask's speckle does not
    assert!(c.ffm_noise_free > 0.4 && c.flat_noise_free < 0.15, "{c:?}");
    // a ridge read-out of two learned images reproduces them without noise
    assert!(c.ann_noise_free > 0.95, "{c:?}");
    // 40 dB: the noise-free image within a little; −20 dB: much worse
    assert!((c.ffm[2] - c.ffm_noise_free).abs() < 0.02, "{c:?}");
    assert!(c.ffm[0] < c.ffm_noise_free - 0.1, "{c:?}");
    assert!(c.ann[0] < c.ann[2], "{c:?}");
    // the same mask and reads on one thread as on two
    let again = run(1);
    assert_eq!(again.phase, trained.phase);
    assert_eq!(again.result.outcome, trained.result.outcome);
}

#[test]
fn phase_imaging_refuses_bad_specs_with_a_message() {
    let spec = small_phase_imaging();
    let (train, test) = (toy_digits(40, 1), toy_digits(40, 2));
    let with = |f: &dyn Fn(&mut PhaseImagingTask)| {
        let mut s = spec.clone();
        if let NlosTask::PhaseImaging(t) = &mut s.task {
            f(t);
        }
        run_nlos(&s, Some((&train, &test))).map(|_| ()).unwrap_err().to_string()
    };
    assert!(with(&|t| t.object_px = 30).contains("multiple of the images' side"));
    assert!(with(&|t| t.object_px = 70).contains("object_px"));
    assert!(with(&|t| t.digits = vec![0, 0]).contains("distinct digit"));
    assert!(with(&|t| t.digits = vec![0, 3]).contains("0 images of digit 3"));
    assert!(with(&|t| t.learned_per_digit = 30).contains("training split has 20 images of digit 0"));
    assert!(with(&|t| t.ann_bins = 5).contains("ann_bins"));
    assert!(with(&|t| t.noise_draws = 0).contains("noise_draws"));
    assert!(with(&|t| t.unseen_per_digit = 0).contains("unseen_per_digit"));
    assert!(with(&|t| t.snr_db = vec![f64::NAN]).contains("snr_db"));
    assert!(with(&|t| t.ann_ridge = 0.0).contains("ridge"));
    assert!(run_nlos(&spec, None)
        .unwrap_err()
        .to_string()
        .contains("needs a data set"));
}

#[test]
fn ridge_reconstruction_equals_the_primal_ridge_solution_and_interpolates_at_small_penalty() {
    // the dual (kernel) form against the primal normal equations (X_cᵀX_c + λI) W = X_cᵀY_c,
    // solved by LU: the same minimiser by another route
    let mut r = rng(7);
    let (m, d, p) = (6, 4, 3);
    let x: Vec<Vec<f64>> = (0..m)
        .map(|_| (0..d).map(|_| r.random_range(-1.0..1.0)).collect())
        .collect();
    let y: Vec<Vec<f64>> = (0..m)
        .map(|_| (0..p).map(|_| r.random_range(-1.0..1.0)).collect())
        .collect();
    let ridge = 0.3;
    let model = RidgeReconstruction::fit(&x, &y, ridge).unwrap();
    let mean = |rows: &[Vec<f64>], k: usize| rows.iter().map(|row| row[k]).sum::<f64>() / m as f64;
    let xc = nalgebra::DMatrix::from_fn(m, d, |i, k| x[i][k] - mean(&x, k));
    let yc = nalgebra::DMatrix::from_fn(m, p, |i, k| y[i][k] - mean(&y, k));
    let lambda = ridge * (&xc * xc.transpose()).trace() / m as f64;
    let a = xc.transpose() * &xc + nalgebra::DMatrix::identity(d, d) * lambda;
    let w = a.lu().solve(&(xc.transpose() * &yc)).unwrap();
    let probe: Vec<f64> = (0..d).map(|_| r.random_range(-1.0..1.0)).collect();
    let got = model.predict(&probe);
    for k in 0..p {
        let want = mean(&y, k) + (0..d).map(|j| (probe[j] - mean(&x, j)) * w[(j, k)]).sum::<f64>();
        assert!((got[k] - want).abs() < 1e-10, "output {k}: {} against {want}", got[k]);
    }
    // more features than pairs and a tiny penalty: the training images come back
    let wide: Vec<Vec<f64>> = (0..4)
        .map(|_| (0..50).map(|_| r.random_range(0.0..1.0)).collect())
        .collect();
    let images: Vec<Vec<f64>> = (0..4)
        .map(|i| (0..9).map(|k| f64::from((i + k) % 2 == 0)).collect())
        .collect();
    let fit = RidgeReconstruction::fit(&wide, &images, 1e-9).unwrap();
    for (xi, yi) in wide.iter().zip(&images) {
        for (a, b) in fit.predict(xi).iter().zip(yi) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    assert!(RidgeReconstruction::fit(&x, &y[..3], 0.1).is_err());
    assert!(RidgeReconstruction::fit(&x, &y, -1.0).is_err());
    assert!(RidgeReconstruction::fit(&[vec![1.0], vec![1.0, 2.0]], &y[..2], 0.1).is_err());
}

#[test]
fn camera_noise_has_the_asked_signal_to_noise_ratio_and_its_seed() {
    let mut r = rng(3);
    let frame: Vec<f32> = (0..200_000).map(|_| r.random_range(0.0..2.0f32)).collect();
    let power = frame.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / frame.len() as f64;
    for snr in [-10.0, 0.0, 15.0] {
        let noisy = with_camera_noise(&frame, snr, 11);
        let noise = noisy
            .iter()
            .zip(&frame)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / frame.len() as f64;
        let measured = 10.0 * (power / noise).log10();
        assert!((measured - snr).abs() < 0.05, "asked {snr} dB, measured {measured}");
        assert_eq!(noisy, with_camera_noise(&frame, snr, 11));
        assert_ne!(noisy, with_camera_noise(&frame, snr, 12));
    }
}
