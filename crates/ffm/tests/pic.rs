//! The PIC network on Iris (seed 002 Fig. 5; SPEC B4): FFM gradients against central differences
//! and against an independent reverse-mode reference through the chip's realised matrices, what
//! broken symmetry costs, the run count, the network's connectivity, learning on the real data,
//! and refused inputs.

use insitu_data::{default_datasets_dir, load_task, Dataset, Targets, Task, TrainTest};
use insitu_ffm::pic::{
    cores_from_parameters, data_pass, encode_features, ffm_sample_gradient, num_parameters, run_pic, CountedPic,
    FabricatedPic, FeatureScaling, IdealPic, PicChip, PicImperfections, PicSpec, PicWorkspace, PIC_INPUTS, PIC_NETWORK,
    PIC_OUTPUTS, RUNS_PER_SAMPLE,
};
use insitu_ffm::TrainingMode;
use insitu_linalg::{rng, Mat};
use rand::Rng;

fn random_parameters(seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..num_parameters()).map(|_| r.random_range(0.1f32..0.9)).collect()
}

fn random_input(seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    (0..PIC_INPUTS).map(|_| r.random_range(0.05..1.0)).collect()
}

/// Softmax cross-entropy of `gain·y`, written out independently of the library.
fn reference_loss(y: &[f64], gain: f64, label: usize) -> f64 {
    let z: Vec<f64> = y.iter().map(|v| gain * v).collect();
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - z[label]
}

fn loss_on<C: PicChip>(chip: &mut C, params: &[f32], ratio: f32, gain: f64, x: &[f64], label: usize) -> f64 {
    let cores = cores_from_parameters(params, ratio);
    let y = data_pass(chip, &cores, x, &mut PicWorkspace::default(), 0);
    reference_loss(&y, gain, label)
}

#[test]
fn the_ffm_gradient_equals_central_differences_on_the_digital_model() {
    for (case, &(ratio, gain)) in [(1.0f32, 8.0), (0.75, 3.0), (0.5, 20.0)].iter().enumerate() {
        let params = random_parameters(case as u64);
        let x = random_input(100 + case as u64);
        let label = case % 3;
        let mut grad = vec![0.0; num_parameters()];
        let cores = cores_from_parameters(&params, ratio);
        ffm_sample_gradient(
            &mut IdealPic,
            &cores,
            ratio,
            gain,
            &x,
            label,
            &mut PicWorkspace::default(),
            &mut grad,
            0,
        );
        let h = 1.0 / 1024.0f32;
        let mut p = params.clone();
        let mut worst = 0.0f64;
        for i in 0..p.len() {
            let w = p[i];
            p[i] = w + h;
            let up = loss_on(&mut IdealPic, &p, ratio, gain, &x, label);
            p[i] = w - h;
            let down = loss_on(&mut IdealPic, &p, ratio, gain, &x, label);
            p[i] = w;
            let fd = (up - down) / (2.0 * f64::from(h));
            worst = worst.max((grad[i] - fd).abs() / (1e-3 + fd.abs()));
        }
        assert!(worst < 1e-4, "ratio {ratio}: worst relative error {worst:e}");
        assert!(
            grad.iter().any(|g| g.abs() > 1e-3),
            "a vanishing gradient proves nothing"
        );
    }
}

/// An independent reverse-mode pass through explicit 2×2 matrices (`realised`: per layer, per
/// core, `[t11, t12, t21, t22]`), with explicit transposes: the input error of every layer.
fn reference_input_errors(realised: &[Vec<[f64; 4]>], x0: &[f64], gain: f64, label: usize) -> Vec<Vec<f64>> {
    let mut launched = vec![x0.to_vec()];
    let mut y = Vec::new();
    for (l, layer) in PIC_NETWORK.iter().enumerate() {
        let x = &launched[l];
        let mut z = vec![0.0; layer.channels];
        for (k, t) in realised[l].iter().enumerate() {
            z[2 * k] = t[0] * x[2 * k] + t[1] * x[2 * k + 1];
            z[2 * k + 1] = t[2] * x[2 * k] + t[3] * x[2 * k + 1];
        }
        let detected: Vec<f64> = if layer.pair_sum {
            z.chunks(2).map(|p| p[0] + p[1]).collect()
        } else {
            z
        };
        match layer.shuffle {
            Some(t) => launched.push(t.iter().map(|&i| detected[i]).collect()),
            None => y = detected,
        }
    }
    let z: Vec<f64> = y.iter().map(|v| gain * v).collect();
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
    let mut g: Vec<f64> = (0..PIC_OUTPUTS)
        .map(|i| gain * ((z[i] - m).exp() / s - if i == label { 1.0 } else { 0.0 }))
        .collect();
    let mut errors = vec![Vec::new(); PIC_NETWORK.len()];
    for l in (0..PIC_NETWORK.len()).rev() {
        let layer = PIC_NETWORK[l];
        let gz: Vec<f64> = if layer.pair_sum {
            g.iter().flat_map(|&v| [v, v]).collect()
        } else {
            g.clone()
        };
        let mut gx = vec![0.0; layer.channels];
        for (k, t) in realised[l].iter().enumerate() {
            // transpose: [[t11, t21], [t12, t22]]
            gx[2 * k] = t[0] * gz[2 * k] + t[2] * gz[2 * k + 1];
            gx[2 * k + 1] = t[1] * gz[2 * k] + t[3] * gz[2 * k + 1];
        }
        errors[l] = gx.clone();
        if l > 0 {
            let table = PIC_NETWORK[l - 1].shuffle.unwrap();
            let mut prev = vec![0.0; PIC_NETWORK[l - 1].outputs()];
            for (j, &t) in table.iter().enumerate() {
                prev[t] = gx[j];
            }
            g = prev;
        }
    }
    errors
}

fn realised_of(chip: &FabricatedPic, params: &[f32], ratio: f32) -> Vec<Vec<[f64; 4]>> {
    cores_from_parameters(params, ratio)
        .iter()
        .enumerate()
        .map(|(l, cores)| cores.iter().enumerate().map(|(k, c)| chip.realised(l, k, c)).collect())
        .collect()
}

/// Largest relative difference, over layers 1..L−1, between the input errors FFM measured and
/// the reference's.
fn error_pass_deviation(imperfections: &PicImperfections) -> f64 {
    let mut chip = FabricatedPic::new(imperfections).unwrap();
    let (ratio, gain, label) = (0.75f32, 8.0, 1);
    let params = random_parameters(7);
    let x = random_input(8);
    let mut ws = PicWorkspace::default();
    let mut grad = vec![0.0; num_parameters()];
    let cores = cores_from_parameters(&params, ratio);
    ffm_sample_gradient(&mut chip, &cores, ratio, gain, &x, label, &mut ws, &mut grad, 0);
    let reference = reference_input_errors(&realised_of(&chip, &params, ratio), &x, gain, label);
    let mut worst = 0.0f64;
    for (l, expected) in reference.iter().enumerate().skip(1) {
        let norm = expected.iter().map(|v| v * v).sum::<f64>().sqrt();
        let diff = ws
            .input_error(l)
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        worst = worst.max(diff / norm);
    }
    worst
}

#[test]
fn on_a_symmetric_chip_the_forward_error_pass_measures_the_true_error_to_rounding() {
    let chip = PicImperfections {
        detector_noise: 0.0,
        ..PicImperfections::realistic()
    };
    let deviation = error_pass_deviation(&chip);
    assert!(deviation < 1e-12, "symmetric chip: {deviation:e}");
    // the chip really differs from the model: the model's errors are not the chip's
    let params = random_parameters(7);
    let x = random_input(8);
    let ideal = reference_input_errors(
        &realised_of(
            &FabricatedPic::new(&PicImperfections::default()).unwrap(),
            &params,
            0.75,
        ),
        &x,
        8.0,
        1,
    );
    let real = reference_input_errors(
        &realised_of(&FabricatedPic::new(&chip).unwrap(), &params, 0.75),
        &x,
        8.0,
        1,
    );
    let d: f64 = ideal[1].iter().zip(&real[1]).map(|(a, b)| (a - b).abs()).sum();
    assert!(d > 1e-2, "the realistic chip should differ from the model ({d})");
}

#[test]
fn broken_symmetry_makes_the_error_pass_wrong_and_more_so_the_more_it_is_broken() {
    let at = |asymmetry: f64| {
        error_pass_deviation(&PicImperfections {
            asymmetry,
            detector_noise: 0.0,
            ..PicImperfections::realistic()
        })
    };
    let (small, large) = (at(0.02), at(0.2));
    assert!(small > 1e-4, "asymmetry 0.02 left no trace: {small:e}");
    assert!(large > 3.0 * small, "asymmetry 0.2: {large:e} vs 0.02: {small:e}");
}

/// Which of the four features each output depends on, found by launching one feature at a time
/// through the ideal network with all weights 1/2.
fn dependencies(layout: impl Fn(usize) -> usize) -> Vec<[bool; 4]> {
    let params = vec![0.5f32; num_parameters()];
    let cores = cores_from_parameters(&params, 1.0);
    let mut deps = vec![[false; 4]; PIC_OUTPUTS];
    for f in 0..4 {
        let x: Vec<f64> = (0..PIC_INPUTS)
            .map(|i| if layout(i) == f { 1.0 } else { 0.0 })
            .collect();
        let y = data_pass(&mut IdealPic, &cores, &x, &mut PicWorkspace::default(), 0);
        for (d, v) in deps.iter_mut().zip(y) {
            d[f] = v > 0.0;
        }
    }
    deps
}

#[test]
fn the_tiled_input_layout_reaches_every_output_from_every_feature_and_the_repeated_one_does_not() {
    // what encode_features writes: channel i carries feature i mod 4
    let x: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0];
    let mut out = [0.0; PIC_INPUTS];
    encode_features(&x, &[0.0; 4], &[4.0; 4], FeatureScaling::Max, &mut out);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, f64::from(x[i % 4]) / 4.0, "channel {i}");
    }
    assert!(dependencies(|i| i % 4).iter().all(|d| d.iter().all(|&b| b)));
    let repeated = dependencies(|i| i / 4);
    assert!(
        repeated.iter().any(|d| !d.iter().all(|&b| b)),
        "with [f1, f1, f1, f1, f2, …] some output should miss a feature: {repeated:?}"
    );
}

fn iris(seed: u64) -> TrainTest {
    load_task(Task::Iris, &default_datasets_dir(), seed).expect("the repository's datasets/ must load")
}

#[test]
fn in_situ_training_counts_its_runs_and_is_reproducible() {
    let data = iris(0);
    let spec = PicSpec {
        epochs: 3,
        mode: TrainingMode::InSitu,
        ..PicSpec::default()
    };
    let a = run_pic(&spec, &data).unwrap();
    let b = run_pic(&spec, &data).unwrap();
    assert_eq!(a.parameters, b.parameters);
    assert_eq!(a.result.test_accuracy, b.result.test_accuracy);
    assert_eq!(a.result.forward_runs, 3 * 120 * RUNS_PER_SAMPLE);
    assert_eq!(a.result.physical_forward_runs, a.result.forward_runs);
    assert_eq!(a.result.loss_curve.len(), 3);
    assert!(a.parameters.iter().all(|w| (0.0..=1.0).contains(w)));
    // the counting wrapper counts what it is asked to run
    let mut counted = CountedPic::new(IdealPic);
    let cores = cores_from_parameters(&a.parameters, 1.0);
    data_pass(
        &mut counted,
        &cores,
        &[0.5; PIC_INPUTS],
        &mut PicWorkspace::default(),
        0,
    );
    assert_eq!(counted.runs(), PIC_NETWORK.len() as u64);
    let in_silico = run_pic(
        &PicSpec {
            mode: TrainingMode::InSilico,
            ..spec.clone()
        },
        &data,
    )
    .unwrap();
    assert_eq!(in_silico.result.physical_forward_runs, 0);
    assert!(in_silico.result.model_test_accuracy.is_some());
}

/// Seed 002 Fig. 5's claim at the default chip: FFM on the chip learns nearly as well as the
/// ideal model, and weights designed on the model lose much of it when deployed.
#[test]
fn ffm_on_the_chip_learns_iris_and_in_silico_designs_do_not_survive_deployment() {
    let mean = |mode: TrainingMode| {
        (0..3)
            .map(|seed| {
                let spec = PicSpec {
                    mode,
                    seed,
                    ..PicSpec::default()
                };
                run_pic(&spec, &iris(seed)).unwrap().result.test_accuracy
            })
            .sum::<f64>()
            / 3.0
    };
    let (ideal, in_silico, in_situ) = (
        mean(TrainingMode::Ideal),
        mean(TrainingMode::InSilico),
        mean(TrainingMode::InSitu),
    );
    assert!(ideal >= 0.85, "ideal {ideal}");
    assert!(in_situ >= 0.85, "in situ {in_situ}");
    assert!(in_situ >= in_silico + 0.2, "in situ {in_situ} vs in silico {in_silico}");
}

#[test]
fn bad_specs_and_data_are_refused_with_a_message() {
    let data = iris(0);
    let refused = |spec: PicSpec, data: &TrainTest, what: &str| {
        let e = run_pic(&spec, data).unwrap_err().to_string();
        assert!(e.contains(what), "{e:?} should mention {what:?}");
    };
    refused(
        PicSpec {
            ratio: 1.5,
            ..PicSpec::default()
        },
        &data,
        "ratio",
    );
    refused(
        PicSpec {
            lr: f32::NAN,
            ..PicSpec::default()
        },
        &data,
        "lr",
    );
    refused(
        PicSpec {
            batch: 0,
            ..PicSpec::default()
        },
        &data,
        "batch",
    );
    refused(
        PicSpec {
            imperfections: PicImperfections {
                floor: 1.0,
                ..PicImperfections::realistic()
            },
            ..PicSpec::default()
        },
        &data,
        "floor",
    );
    refused(
        PicSpec {
            imperfections: PicImperfections {
                gain_error: -0.1,
                ..PicImperfections::realistic()
            },
            ..PicSpec::default()
        },
        &data,
        "gain_error",
    );
    let three_features = TrainTest {
        train: Dataset {
            inputs: Mat::from_element(3, 4, 1.0),
            targets: Targets::Classes {
                labels: vec![0, 1, 2, 0],
                num_classes: 3,
            },
        },
        test: data.test.clone(),
    };
    refused(PicSpec::default(), &three_features, "features");
    let mut bad_label = data.clone();
    if let Targets::Classes { labels, num_classes } = &mut bad_label.train.targets {
        labels[0] = 7;
        *num_classes = 8;
    }
    refused(PicSpec::default(), &bad_label, "label 7");
    let mut nan = data.clone();
    nan.test.inputs[(2, 5)] = f32::NAN;
    refused(PicSpec::default(), &nan, "non-finite");
}

#[test]
fn an_overflowing_loss_ends_the_run_as_diverged_and_says_where() {
    let spec = PicSpec {
        epochs: 2,
        output_gain: 1e308,
        mode: TrainingMode::Ideal,
        ..PicSpec::default()
    };
    let r = run_pic(&spec, &iris(0)).unwrap().result;
    assert_eq!(r.status, "diverged");
    let where_ = r.divergence.unwrap();
    assert!(where_.contains("epoch 1, mini-batch 1"), "{where_}");
    assert!(r.loss_curve.is_empty());
}
