//! Seed 002's exceptional-point search (Extended Data Fig. 1; SPEC B4): the discretised pair
//! against the closed-form exponential, reciprocity of the chain, the FFM gradient against
//! central differences, and the learning on benches the trainer does not know.

use insitu_ffm::exceptional::*;
use num_complex::Complex64;

fn detuned() -> SplitStepPair {
    SplitStepPair {
        kappa: 1.2e3,
        beta1: 3.0e3,
        beta2: 2.6e3,
        ..SplitStepPair::default()
    }
}

/// The transfer matrix of the discretised pair, column by column.
fn transfer(pair: &SplitStepPair, setting: GainLoss) -> [Complex64; 4] {
    let (one, zero) = (Complex64::new(1.0, 0.0), Complex64::new(0.0, 0.0));
    let c1 = pair.transmit(setting, [one, zero]);
    let c2 = pair.transmit(setting, [zero, one]);
    [c1[0], c2[0], c1[1], c2[1]]
}

fn max_diff(a: &[Complex64; 4], b: &[Complex64; 4]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max)
}

#[test]
fn the_split_step_pair_converges_to_the_exact_exponential_at_second_order_and_is_reciprocal() {
    let setting = GainLoss {
        gain: 700.0,
        loss: 1100.0,
    };
    let errors: Vec<f64> = [50, 100, 200]
        .iter()
        .map(|&sections| {
            let pair = SplitStepPair { sections, ..detuned() };
            let exact = pair.continuum(setting).transfer().unwrap();
            let t = transfer(&pair, setting);
            // the chain reads the same from either end: T = Tᵀ
            assert!(
                (t[1] - t[2]).norm() < 1e-12 * t[0].norm().max(1.0),
                "K = {sections}: {t:?}"
            );
            max_diff(&t, &exact)
        })
        .collect();
    assert!(errors[2] < 1e-4, "{errors:?}");
    for w in errors.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!((order - 2.0).abs() < 0.1, "convergence order {order}: {errors:?}");
    }
}

#[test]
fn the_probes_hold_the_fields_at_the_gain_loss_elements_and_the_run_ends_at_the_output() {
    let mut pair = detuned();
    let setting = GainLoss {
        gain: 400.0,
        loss: 900.0,
    };
    let k = pair.sections;
    let zero = [Complex64::new(0.0, 0.0); 2];
    let (mut before, mut after) = (vec![zero; k], vec![zero; k]);
    let input = [Complex64::new(0.3, 0.1), Complex64::new(-0.2, 0.7)];
    let y = pair.run(setting, input, &mut before, &mut after, 0);
    assert_eq!(y, pair.transmit(setting, input));
    let dz = pair.length / k as f64;
    let g = [
        Complex64::new(setting.gain * dz, pair.beta1 * dz).exp(),
        Complex64::new(-setting.loss * dz, pair.beta2 * dz).exp(),
    ];
    for (b, a) in before.iter().zip(&after) {
        for j in 0..2 {
            assert!((a[j] - g[j] * b[j]).norm() < 1e-14 * (1.0 + a[j].norm()));
        }
    }
}

fn loss_of(pair: &SplitStepPair, target: ContrastTarget, gain: f64, loss: f64) -> f64 {
    target.loss(pair.transmit(GainLoss { gain, loss }, symmetric_input())).0
}

#[test]
fn the_ffm_gradient_from_two_forward_runs_equals_central_differences() {
    for pair in [SplitStepPair::default(), detuned()] {
        for target in [ContrastTarget::Asymmetric, ContrastTarget::Symmetric] {
            for (gain, loss) in [(300.0, 700.0), (1500.0, 900.0), (0.0, 2500.0)] {
                let mut bench = pair.clone();
                let mut ws = PairWorkspace::new(bench.sections);
                let (l, _, grad) = ffm_gain_loss_gradient(&mut bench, GainLoss { gain, loss }, target, &mut ws, 0);
                assert_eq!(l, loss_of(&pair, target, gain, loss));
                let h = 1e-2;
                let fd = [
                    (loss_of(&pair, target, gain + h, loss) - loss_of(&pair, target, gain - h, loss)) / (2.0 * h),
                    (loss_of(&pair, target, gain, loss + h) - loss_of(&pair, target, gain, loss - h)) / (2.0 * h),
                ];
                for i in 0..2 {
                    let rel = (grad[i] - fd[i]).abs() / (1e-9 + fd[i].abs());
                    assert!(
                        rel < 1e-6,
                        "{target:?} ({gain}, {loss}) #{i}: ffm {} fd {}",
                        grad[i],
                        fd[i]
                    );
                }
            }
        }
    }
}

#[test]
fn learning_crosses_the_exceptional_point_of_a_pair_whose_coupling_it_does_not_know() {
    // the trainer's unit says 1 mm⁻¹; the hardware couples at 1.3 mm⁻¹ (from g = l = 0.5 this
    // pair descends to zero gain and loss, as in the finding below; from 0.7 it climbs)
    let spec = ExceptionalSpec {
        bench: SplitStepPair {
            kappa: 1.3e3,
            ..SplitStepPair::default()
        },
        start: GainLoss { gain: 0.7, loss: 0.7 },
        ..ExceptionalSpec::default()
    };
    let r = learn_exceptional_point(&spec).unwrap();
    assert_eq!(r.forward_runs, 2 * spec.steps as u64 + 1);
    assert_eq!(r.transitions.len(), 1, "{:?}", r.transitions);
    let i = r.transitions[0];
    let half_sum = |s: &ExceptionalStep| (s.gain + s.loss) / 2.0;
    // the crossing is where the hardware's own EP is: (g + l)/2 = 1.3 in the trainer's unit
    assert!(half_sum(&r.trajectory[i - 1]) < 1.3 && half_sum(&r.trajectory[i]) > 1.3);
    let last = r.trajectory.last().unwrap();
    assert!(last.broken && last.contrast > 0.85, "{last:?}");
    assert!(r.trajectory[0].contrast < 0.0);
}

#[test]
fn the_symmetric_target_brings_a_broken_pair_back_across_the_exceptional_point() {
    let spec = ExceptionalSpec {
        target: ContrastTarget::Symmetric,
        start: GainLoss { gain: 2.5, loss: 2.5 },
        ..ExceptionalSpec::default()
    };
    let r = learn_exceptional_point(&spec).unwrap();
    assert!(r.trajectory[0].broken);
    let last = r.trajectory.last().unwrap();
    assert!(!last.broken && last.contrast.abs() < 0.01, "{last:?}");
    assert_eq!(r.transitions.len(), 1);
}

#[test]
fn measurement_noise_is_reproducible_and_does_not_stop_the_crossing() {
    let spec = ExceptionalSpec {
        bench: SplitStepPair {
            measurement_noise: 0.02,
            seed: 5,
            ..SplitStepPair::default()
        },
        ..ExceptionalSpec::default()
    };
    let a = learn_exceptional_point(&spec).unwrap();
    let mut b = learn_exceptional_point(&spec).unwrap();
    b.train_seconds = a.train_seconds;
    assert_eq!(a, b);
    let quiet = learn_exceptional_point(&ExceptionalSpec::default()).unwrap();
    assert_ne!(a.trajectory, quiet.trajectory, "the noise should show");
    let last = a.trajectory.last().unwrap();
    assert!(last.broken && last.contrast > 0.85, "{last:?}");
}

/// A finding, kept true by this test: below the exceptional point the contrast oscillates with
/// `g + l`, and a start on the falling side of its first dip descends to `g = l = 0` (contrast
/// 0, a stationary point) instead of crossing.
#[test]
fn a_start_before_the_first_dip_of_the_contrast_descends_to_no_gain_and_loss() {
    let spec = ExceptionalSpec {
        start: GainLoss { gain: 0.2, loss: 0.2 },
        ..ExceptionalSpec::default()
    };
    let r = learn_exceptional_point(&spec).unwrap();
    let last = r.trajectory.last().unwrap();
    assert!(r.transitions.is_empty());
    assert!(last.gain < 1e-3 && last.loss < 1e-3, "{last:?}");
}

#[test]
fn bad_specs_are_refused_with_a_message() {
    let refused = |spec: ExceptionalSpec, what: &str| {
        let e = learn_exceptional_point(&spec).unwrap_err().to_string();
        assert!(e.contains(what), "{e:?} should mention {what:?}");
    };
    let d = ExceptionalSpec::default;
    refused(ExceptionalSpec { lr: 0.0, ..d() }, "lr");
    refused(ExceptionalSpec { unit: f64::NAN, ..d() }, "unit");
    refused(
        ExceptionalSpec {
            start: GainLoss { gain: 4.0, loss: 0.0 },
            ..d()
        },
        "start.gain",
    );
    refused(
        ExceptionalSpec {
            bench: SplitStepPair {
                sections: 0,
                ..SplitStepPair::default()
            },
            ..d()
        },
        "sections",
    );
    refused(
        ExceptionalSpec {
            bench: SplitStepPair {
                length: -1.0,
                ..SplitStepPair::default()
            },
            ..d()
        },
        "length",
    );
    refused(
        ExceptionalSpec {
            bench: SplitStepPair {
                kappa: f64::INFINITY,
                ..SplitStepPair::default()
            },
            ..d()
        },
        "kappa",
    );
}
