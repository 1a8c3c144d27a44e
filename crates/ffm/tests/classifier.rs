//! The free-space classifier pipeline: bench properties, FFM through FFT propagation, detector
//! layout, image embedding, run-level determinism and bookkeeping.

mod common;

use common::toy_dataset;
use insitu_data::{Dataset, Targets};
use insitu_ffm::classifier::embed_image;
use insitu_ffm::{
    evaluate_phases, ffm_gradient, run, run_resumable, ActivationKind, DigitalChain, FfmError, FfmSpec, FfmTask,
    FfmWorkspace, FieldLoss, ImperfectBench, Imperfections, NoCheckpoints, PhysicalSystem, TestSystem, TrainingMode,
};
use insitu_linalg::{rng, Mat};
use insitu_optics::{FreeSpace, Grid, PropagationMethod};
use num_complex::Complex32 as C;
use rand::Rng;

fn freespace(n: usize) -> FreeSpace {
    FreeSpace::new(
        Grid::new(n, 8e-6).unwrap(),
        532e-9,
        0.388 * n as f64 / 400.0,
        PropagationMethod::BandLimitedAngularSpectrum,
        2,
    )
    .unwrap()
}

fn random_field(n: usize, seed: u64) -> Vec<C> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| C::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect()
}

fn bilinear(a: &[C], b: &[C]) -> num_complex::Complex64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            num_complex::Complex64::new(x.re as f64, x.im as f64)
                * num_complex::Complex64::new(y.re as f64, y.im as f64)
        })
        .sum()
}

#[test]
fn perfect_bench_equals_digital_model() {
    let n = 16;
    let model = vec![freespace(n); 2];
    let imp = Imperfections::default();
    let mut bench = ImperfectBench::new(&model, &imp).unwrap();
    let mut digital = DigitalChain::new(model).unwrap();
    let phase: Vec<f32> = random_field(n * n, 3).iter().map(|z| z.re * 3.0).collect();
    let mut a = random_field(n * n, 4);
    let mut b = a.clone();
    bench.run(Some((1, &phase)), 0, &mut a, 0);
    digital.run(Some((1, &phase)), 0, &mut b, 0);
    let err = a.iter().zip(&b).map(|(x, y)| (x - y).norm()).fold(0.0f32, f32::max);
    assert!(err < 1e-5, "perfect bench differs from the model by {err}");
}

#[test]
fn imperfect_bench_propagation_stays_reciprocal_and_differs_from_model() {
    // Tᵀ = T for the bench's propagation: b·(T a) = a·(T b) (bilinear, no conjugation)
    let n = 16;
    let model = vec![freespace(n); 2];
    let imp = Imperfections {
        detector_noise: 0.0,
        ..Imperfections::realistic()
    };
    let mut bench = ImperfectBench::new(&model, &imp).unwrap();
    let (a, b) = (random_field(n * n, 5), random_field(n * n, 6));
    for l in 0..2 {
        let (mut ta, mut tb) = (a.clone(), b.clone());
        bench.run(None, l, &mut ta, 0);
        bench.run(None, l, &mut tb, 0);
        let (x, y) = (bilinear(&b, &ta), bilinear(&a, &tb));
        assert!(
            (x - y).norm() < 1e-4 * x.norm().max(1e-3),
            "layer {l}: b·Ta = {x}, a·Tb = {y}"
        );
    }
    // ...and the bench is not the model
    let phase = vec![0.5f32; n * n];
    let mut digital = DigitalChain::new(model).unwrap();
    let (mut p, mut q) = (a.clone(), a.clone());
    bench.run(Some((0, &phase)), 0, &mut p, 0);
    digital.run(Some((0, &phase)), 0, &mut q, 0);
    let diff: f32 = p.iter().zip(&q).map(|(x, y)| (x - y).norm_sqr()).sum::<f32>().sqrt();
    let norm: f32 = q.iter().map(|x| x.norm_sqr()).sum::<f32>().sqrt();
    assert!(diff > 0.05 * norm, "imperfections too weak to matter: {diff} vs {norm}");
}

#[test]
fn detector_noise_depends_on_the_shot_only() {
    let n = 16;
    let model = vec![freespace(n); 1];
    let imp = Imperfections {
        detector_noise: 0.05,
        ..Imperfections::default()
    };
    let bench = ImperfectBench::new(&model, &imp).unwrap();
    let a = random_field(n * n, 7);
    let run = |shot| {
        let mut b = bench.clone();
        let mut f = a.clone();
        b.run(None, 0, &mut f, shot);
        f
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn ffm_through_free_space_matches_finite_differences() {
    // f32 FFT propagation: compare the directional derivative along a random direction.
    let n = 16;
    let layers = 3;
    let mut model = DigitalChain::new(vec![freespace(n); layers]).unwrap();
    let mut r = rng(9);
    let phases: Vec<Vec<f32>> = (0..layers)
        .map(|_| (0..n * n).map(|_| r.random_range(0.0..std::f32::consts::TAU)).collect())
        .collect();
    let x = random_field(n * n, 10);
    // target: the output intensity of another random design (a loss of order one per pixel)
    let mut ws = FfmWorkspace::new(layers, n * n);
    let other: Vec<Vec<f32>> = (0..layers)
        .map(|_| (0..n * n).map(|_| r.random_range(0.0..std::f32::consts::TAU)).collect())
        .collect();
    insitu_ffm::data_pass(&mut model, &other, &[], &x, &mut ws, 0);
    let t: Vec<f32> = ws.output().iter().map(|z| z.norm_sqr()).collect();
    let loss = FieldLoss::IntensityMse(&t);
    let mut g = vec![vec![0.0f32; n * n]; layers];
    ffm_gradient(&mut model, &phases, &[], &x, &loss, &mut ws, &mut g, 0);
    // along the (normalised) FFM gradient itself, so the derivative stands far above f32 noise;
    // a wrong gradient gives a smaller (or negative) finite difference than its norm
    let norm = g.iter().flatten().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let dir: Vec<Vec<f32>> = g
        .iter()
        .map(|l| l.iter().map(|v| (*v as f64 / norm) as f32).collect())
        .collect();
    let analytic: f64 = g
        .iter()
        .flatten()
        .zip(dir.iter().flatten())
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();
    let mut eval = |s: f32| {
        let p: Vec<Vec<f32>> = phases
            .iter()
            .zip(&dir)
            .map(|(p, d)| p.iter().zip(d).map(|(a, b)| a + s * b).collect())
            .collect();
        let mut gg = vec![vec![0.0f32; n * n]; layers];
        ffm_gradient(&mut model, &p, &[], &x, &loss, &mut ws, &mut gg, 0)
    };
    let h = 3e-2;
    let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
    eprintln!("FFM {analytic} vs finite difference {fd}");
    assert!(
        (fd - analytic).abs() < 1e-2 * analytic.abs(),
        "FFM {analytic} vs finite difference {fd}"
    );
}

#[test]
fn embedding_keeps_a_same_size_image_and_pads_with_zeros() {
    let side = 8;
    let img: Vec<f32> = (0..side * side).map(|i| i as f32 / 64.0).collect();
    let n = 12;
    let mut f = vec![C::new(9.0, 9.0); n * n];
    embed_image(&img, side, n, side, &mut f);
    for r in 0..n {
        for c in 0..n {
            let inside = (2..10).contains(&r) && (2..10).contains(&c);
            let want = if inside { img[(r - 2) * side + c - 2] } else { 0.0 };
            assert!((f[r * n + c] - C::new(want, 0.0)).norm() < 1e-6);
        }
    }
    // a constant image stays constant when upsampled, and an odd margin (here 0 before, 1
    // after) is zeroed whatever the field held
    f.fill(C::new(9.0, 9.0));
    embed_image(&vec![0.7; side * side], side, n, 11, &mut f);
    for r in 0..n {
        for c in 0..n {
            let want = if r < 11 && c < 11 { 0.7 } else { 0.0 };
            assert!((f[r * n + c] - C::new(want, 0.0)).norm() < 1e-6, "({r}, {c})");
        }
    }
}

fn tiny_spec(mode: TrainingMode) -> FfmSpec {
    FfmSpec {
        layers: 2,
        grid_n: 24,
        distance: 0.388 * 24.0 / 400.0,
        epochs: 2,
        batch: 8,
        lr: 0.1,
        train_limit: Some(40),
        test_limit: Some(20),
        mode,
        ..FfmSpec::default()
    }
}

#[test]
fn run_results_do_not_depend_on_the_thread_count() {
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    let spec = tiny_spec(TrainingMode::InSitu);
    let go = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(&spec, &train, &test).unwrap())
    };
    let (a, b) = (go(1), go(3));
    assert_eq!(a.loss_curve, b.loss_curve);
    assert_eq!(a.test_accuracy_curve, b.test_accuracy_curve);
}

#[test]
fn run_counts_forward_propagations_and_round_trips_through_json() {
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    for mode in [TrainingMode::Ideal, TrainingMode::InSilico, TrainingMode::InSitu] {
        let spec = tiny_spec(mode);
        let r = run(&spec, &train, &test).unwrap();
        assert_eq!(r.status, "ok");
        // 2 epochs × 40 samples × (L data + L error) runs
        assert_eq!(r.forward_propagations, 2 * 40 * 2 * 2, "{mode:?}");
        let physical = if mode == TrainingMode::InSitu {
            r.forward_propagations
        } else {
            0
        };
        assert_eq!(r.physical_forward_propagations, physical);
        // an in-silico run also evaluates the final masks on the digital model once
        let model_eval = if mode == TrainingMode::InSilico { 20 * 2 } else { 0 };
        assert_eq!(r.eval_propagations, 2 * 20 * 2 + model_eval);
        assert_eq!(r.model_test_accuracy.is_some(), mode == TrainingMode::InSilico);
        assert!(
            r.loss_curve[1] < r.loss_curve[0],
            "{mode:?}: loss did not fall: {:?}",
            r.loss_curve
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: insitu_ffm::FfmResult = serde_json::from_str(&json).unwrap();
        assert!((back.spec.distance - spec.distance).abs() < 1e-15);
        assert_eq!(
            FfmSpec {
                distance: spec.distance,
                ..back.spec
            },
            spec
        );
        assert_eq!(back.loss_curve.len(), r.loss_curve.len());
    }
}

#[test]
fn bad_specs_and_data_are_errors() {
    let (train, test) = (toy_dataset(10, 1), toy_dataset(10, 2));
    for spec in [
        FfmSpec {
            layers: 0,
            ..tiny_spec(TrainingMode::Ideal)
        },
        FfmSpec {
            batch: 0,
            ..tiny_spec(TrainingMode::Ideal)
        },
        FfmSpec {
            lr: f32::NAN,
            ..tiny_spec(TrainingMode::Ideal)
        },
        FfmSpec {
            wavelength: -1.0,
            ..tiny_spec(TrainingMode::Ideal)
        },
        FfmSpec {
            imperfections: Imperfections {
                distance_error: -0.1,
                ..Imperfections::default()
            },
            ..tiny_spec(TrainingMode::InSitu)
        },
    ] {
        assert!(run(&spec, &train, &test).is_err(), "{spec:?} accepted");
    }
    let odd = Dataset {
        inputs: Mat::zeros(10, 4),
        targets: Targets::Classes {
            labels: vec![0; 4],
            num_classes: 10,
        },
    };
    assert!(run(&tiny_spec(TrainingMode::Ideal), &odd, &test).is_err());
}

#[test]
fn in_silico_reports_the_ideal_accuracy_of_the_same_masks() {
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    let ideal = run(&tiny_spec(TrainingMode::Ideal), &train, &test).unwrap();
    let silico = run(&tiny_spec(TrainingMode::InSilico), &train, &test).unwrap();
    // identical training on the digital model ...
    assert_eq!(ideal.loss_curve, silico.loss_curve);
    // ... so the model accuracy of the in-silico masks is the ideal run's accuracy
    assert_eq!(silico.model_test_accuracy, Some(ideal.test_accuracy));
    assert_eq!(ideal.model_test_accuracy, None);
}

#[test]
fn spec_json_from_before_task_and_input_power_parses_with_defaults() {
    let mut v = serde_json::to_value(tiny_spec(TrainingMode::InSitu)).unwrap();
    let obj = v.as_object_mut().unwrap();
    assert!(obj.remove("task").is_some() && obj.remove("input_power").is_some());
    let back: FfmSpec = serde_json::from_value(v).unwrap();
    assert_eq!(back.task, FfmTask::FashionMnist);
    assert_eq!(back.input_power, 1.0);
    let task: FfmTask = serde_json::from_str("\"mnist-even\"").unwrap();
    assert_eq!(task, FfmTask::MnistEven);
}

#[test]
fn strength_scales_the_realistic_bench() {
    assert_eq!(Imperfections::at_strength(1.0), Imperfections::realistic());
    let half = Imperfections::at_strength(0.5);
    assert_eq!(half.misalignment_px, 0.5);
    assert_eq!(half.aberration_rms, 0.5);
    assert!((half.distance_error - 0.01).abs() < 1e-15 && (half.phase_gain_error - 0.05).abs() < 1e-15);
    assert_eq!((half.phase_bits, half.detector_noise), (8, 0.01));
    let zero = Imperfections::at_strength(0.0);
    assert_eq!(
        zero.misalignment_px + zero.distance_error + zero.aberration_rms + zero.phase_gain_error,
        0.0
    );
    let model = vec![freespace(16); 2];
    assert!(ImperfectBench::new(&model, &Imperfections::at_strength(-1.0)).is_err());
    assert!(ImperfectBench::new(&model, &Imperfections::at_strength(f64::NAN)).is_err());
}

#[test]
fn even_digit_task_keeps_five_classes_and_trains_on_five_detectors() {
    let data = insitu_data::TrainTest {
        train: toy_dataset(80, 1),
        test: toy_dataset(40, 2),
    };
    let kept = |d: &Dataset| d.labels().unwrap().iter().filter(|&&l| l % 2 == 0).count();
    let (n_train, n_test) = (kept(&data.train), kept(&data.test));
    let even = FfmTask::MnistEven.select(data.clone()).unwrap();
    assert_eq!((even.train.len(), even.test.len()), (n_train, n_test));
    assert_eq!(even.test.num_classes(), Some(5));
    assert!(even.train.labels().unwrap().iter().all(|&l| l < 5));
    assert_eq!(FfmTask::Mnist.select(data).unwrap().train.len(), 80);
    let r = run(&tiny_spec(TrainingMode::Ideal), &even.train, &even.test).unwrap();
    assert_eq!(r.status, "ok");
    // a label outside the data set's classes is refused
    let mut bad = even.test.clone();
    if let Targets::Classes { labels, .. } = &mut bad.targets {
        labels[0] = 7;
    }
    assert!(matches!(
        run(&tiny_spec(TrainingMode::Ideal), &even.train, &bad),
        Err(FfmError::InvalidSpec(_))
    ));
}

#[test]
fn input_power_matters_only_through_the_activation() {
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    let curve = |activation, input_power| {
        let spec = FfmSpec {
            activation,
            input_power,
            ..tiny_spec(TrainingMode::Ideal)
        };
        run(&spec, &train, &test).unwrap().loss_curve
    };
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4 * y.abs());
    // the detector-fraction loss is scale-invariant: a linear network ignores the power
    assert!(close(
        &curve(ActivationKind::None, 1.0),
        &curve(ActivationKind::None, 9.0)
    ));
    // x e^{i|x|²}: nine times the power, a different network
    let (lo, hi) = (
        curve(ActivationKind::Optoelectronic, 1.0),
        curve(ActivationKind::Optoelectronic, 9.0),
    );
    assert!(!close(&lo, &hi), "{lo:?} vs {hi:?}");
}

/// `INSITU_SLOW_TESTS=1`: on Fashion-MNIST (if present under the datasets directory), FFM in
/// situ stays near ideal while the in-silico design deployed on the bench falls far below.
#[test]
fn slow_in_situ_beats_in_silico_on_fashion_mnist() {
    if std::env::var("INSITU_SLOW_TESTS").ok().as_deref() != Some("1") {
        return;
    }
    let tt = insitu_data::load_task(insitu_data::Task::FashionMnist, &insitu_data::default_datasets_dir(), 0)
        .expect("Fashion-MNIST under the datasets directory (cargo xtask datasets)");
    let acc = |mode| {
        let spec = FfmSpec {
            epochs: 2,
            train_limit: Some(2000),
            test_limit: Some(500),
            mode,
            ..FfmSpec::default()
        };
        run(&spec, &tt.train, &tt.test).unwrap().test_accuracy
    };
    let (ideal, silico, situ) = (
        acc(TrainingMode::Ideal),
        acc(TrainingMode::InSilico),
        acc(TrainingMode::InSitu),
    );
    eprintln!("ideal {ideal:.3}, in silico deployed {silico:.3}, FFM in situ {situ:.3}");
    assert!(ideal > 0.6, "ideal accuracy {ideal}");
    assert!(situ > ideal - 0.1, "FFM in situ {situ} vs ideal {ideal}");
    assert!(silico < situ - 0.2, "in silico {silico} vs in situ {situ}");
}

/// `run_with_progress` reports the mode as one phase of `epochs × ⌈n / batch⌉` steps, every step,
/// and every epoch's mean loss (the loss curve's values), and gives `run`'s result.
#[test]
fn run_reports_progress_and_gives_the_same_result() {
    #[derive(Default)]
    struct Record {
        phases: Vec<(String, usize, usize)>,
        steps: usize,
        epochs: Vec<(usize, f64)>,
    }
    impl insitu_optim::Progress for Record {
        fn phase(&mut self, label: &str, epochs: usize, steps_per_epoch: usize) {
            self.phases.push((label.to_string(), epochs, steps_per_epoch));
        }
        fn step(&mut self) {
            self.steps += 1;
        }
        fn epoch_done(&mut self, epoch: usize, mean_loss: f64) {
            self.epochs.push((epoch, mean_loss));
        }
    }
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    let spec = tiny_spec(TrainingMode::InSitu);
    let mut record = Record::default();
    let reported = insitu_ffm::run_with_progress(&spec, &train, &test, &mut record).unwrap();
    let plain = run(&spec, &train, &test).unwrap();
    assert_eq!(reported.loss_curve, plain.loss_curve);
    assert_eq!(record.phases, vec![("in situ".to_string(), 2, 5)]); // 40 samples, batch 8
    assert_eq!(record.steps, 2 * 5);
    let curve: Vec<(usize, f64)> = plain.loss_curve.iter().copied().enumerate().collect();
    assert_eq!(record.epochs, curve);
}

#[test]
fn trained_masks_tested_again_give_the_run_accuracy() {
    let (train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    for mode in [TrainingMode::Ideal, TrainingMode::InSilico, TrainingMode::InSitu] {
        let spec = tiny_spec(mode);
        let trained = run_resumable(
            &spec,
            &train,
            &test,
            &mut insitu_optim::NoProgress,
            None,
            &mut NoCheckpoints,
        )
        .unwrap();
        assert_eq!(trained.result, {
            let mut r = run(&spec, &train, &test).unwrap();
            r.train_seconds = trained.result.train_seconds;
            r
        });
        let on = if mode == TrainingMode::Ideal {
            TestSystem::Model
        } else {
            TestSystem::Bench
        };
        let again = evaluate_phases(&spec, &trained.phases, &test, on).unwrap();
        assert_eq!(again, trained.result.test_accuracy, "{mode:?}");
        if mode == TrainingMode::InSilico {
            let on_model = evaluate_phases(&spec, &trained.phases, &test, TestSystem::Model).unwrap();
            assert_eq!(Some(on_model), trained.result.model_test_accuracy);
        }
        assert!(
            trained.phases.iter().flatten().any(|&p| p != 0.0),
            "{mode:?}: the masks were trained"
        );
    }
    // what cannot be tested
    let spec = tiny_spec(TrainingMode::InSitu);
    let nn = 24 * 24;
    let bad = |phases: Vec<Vec<f32>>| {
        evaluate_phases(&spec, &phases, &test, TestSystem::Bench)
            .unwrap_err()
            .to_string()
    };
    assert!(bad(vec![vec![0.0; nn]]).contains("1 phase masks for a network of 2 layers"));
    assert!(bad(vec![vec![0.0; nn], vec![0.0; nn - 1]]).contains("phase mask 2 has 575 pixels"));
    let mut nan = vec![vec![0.0; nn]; 2];
    nan[1][24 * 3 + 5] = f32::NAN;
    assert!(bad(nan).contains("phase mask 2, pixel 77 (row 3, column 5) is NaN"));
}

#[test]
fn a_non_finite_input_stops_training_and_says_where() {
    let (mut train, test) = (toy_dataset(40, 1), toy_dataset(20, 2));
    train.inputs[(300, 13)] = f32::NAN;
    for mode in [TrainingMode::Ideal, TrainingMode::InSitu] {
        let spec = tiny_spec(mode);
        let r = run(&spec, &train, &test).unwrap();
        assert_eq!(r.status, "diverged", "{mode:?}");
        let d = r.divergence.clone().unwrap();
        // sample 13 sits in the first epoch's permutation at some mini-batch of 8
        let mut order = Vec::new();
        insitu_data::epoch_permutation(40, spec.seed, 0, &mut order);
        let at = order.iter().position(|&j| j == 13).unwrap();
        assert_eq!((d.epoch, d.mini_batch), (1, at / 8 + 1), "{mode:?}");
        assert_eq!(d.cause, "non-finite loss of training sample 13");
        assert!(r.loss_curve.is_empty() && r.test_accuracy.is_nan());
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"mini_batch\":"), "{json}");
    }
    // a run that did not diverge writes no divergence field
    let ok = run(&tiny_spec(TrainingMode::Ideal), &toy_dataset(40, 1), &test).unwrap();
    assert!(ok.divergence.is_none() && !serde_json::to_string(&ok).unwrap().contains("divergence"));
}
