//! `train_depth_sweep` gives, for every depth, exactly what `train` gives for that depth alone:
//! classification and regression, FF+DD and FF+AD, SGD and Adam, any order of depths, one or
//! two threads, and runs that diverge.

mod common;
use common::{blobs, on_threads, regression, sparse_blobs};
use insitu_data::TrainTest;
use insitu_ffzero::{
    train, train_depth_sweep, LocalLoss, Method, NoProgress, Optimizer, TrainError, TrainResult, TrainSpec,
};

/// The result without its wall time (the one field that is measured, not computed).
fn comparable(r: &TrainResult) -> String {
    let mut r = r.clone();
    r.train_seconds = 0.0;
    // Debug, not PartialEq: NaN losses of a diverged run must compare equal to themselves.
    format!("{r:?}")
}

/// Returns how many of the sweep's results diverged.
fn check(spec: &TrainSpec, depths: &[usize], data: &TrainTest, threads: usize) -> usize {
    on_threads(threads, || {
        let sweep = train_depth_sweep(spec, depths, data, &mut NoProgress).unwrap();
        assert_eq!(sweep.results.len(), depths.len());
        for (&d, got) in depths.iter().zip(&sweep.results) {
            let alone = train(
                &TrainSpec {
                    depth: d,
                    ..spec.clone()
                },
                data,
                &mut NoProgress,
            )
            .unwrap();
            assert_eq!(got.spec.depth, d);
            assert_eq!(
                comparable(got),
                comparable(&alone),
                "{:?} {:?} depth {d}, {threads} thread(s)",
                spec.method,
                spec.optimizer
            );
            assert!(got.train_seconds > 0.0 && got.train_seconds <= sweep.train_seconds * 1.01 + 1e-3);
        }
        sweep.results.iter().filter(|r| r.divergence.is_some()).count()
    })
}

#[test]
fn every_depth_equals_its_own_run_classification() {
    let data = TrainTest {
        train: blobs(500, 1),
        test: blobs(200, 2),
    };
    for (method, optimizer, loss) in [
        (Method::FfDd, Optimizer::Sgd, LocalLoss::Margin),
        (Method::FfAd, Optimizer::Adam, LocalLoss::Eq5),
        (Method::FfDd, Optimizer::Adam, LocalLoss::Eq5),
    ] {
        let spec = TrainSpec {
            method,
            optimizer,
            loss,
            width: 8,
            epochs: 2,
            batch: 32,
            lr: 0.01,
            ..Default::default()
        };
        assert_eq!(check(&spec, &[3, 1, 4, 2], &data, 1), 0);
    }
}

#[test]
fn every_depth_equals_its_own_run_with_two_threads_and_repeated_depths() {
    let data = TrainTest {
        train: blobs(700, 3),
        test: blobs(100, 4),
    };
    let spec = TrainSpec {
        method: Method::FfDd,
        width: 12,
        epochs: 1,
        batch: 64,
        lr: 0.01,
        ..Default::default()
    };
    assert_eq!(check(&spec, &[2, 2, 1], &data, 2), 0);
}

#[test]
fn every_depth_equals_its_own_run_regression() {
    let data = TrainTest {
        train: regression(400, 5),
        test: regression(100, 6),
    };
    for method in [Method::FfDd, Method::FfAd] {
        let spec = TrainSpec {
            method,
            width: 6,
            epochs: 2,
            batch: 40,
            lr: 0.01,
            ..Default::default()
        };
        assert_eq!(check(&spec, &[1, 2, 3], &data, 1), 0);
    }
}

#[test]
fn diverging_layers_diverge_at_the_same_place() {
    // FF's cosine losses are scale-invariant, so no step size or input scale makes them
    // overflow; a NaN in one training sample stops the first layer, which every depth shares,
    // at the step whose batch holds it.
    let mut train = blobs(300, 1);
    train.inputs[(2, 77)] = f32::NAN;
    let data = TrainTest {
        train,
        test: blobs(60, 2),
    };
    for method in [Method::FfDd, Method::FfAd] {
        let spec = TrainSpec {
            method,
            loss: LocalLoss::Eq5,
            width: 8,
            epochs: 3,
            batch: 30,
            ..Default::default()
        };
        assert_eq!(
            check(&spec, &[1, 2, 3], &data, 1),
            3,
            "{method:?}: every depth diverges"
        );
    }
}

#[test]
fn bp_methods_and_bad_depths_are_refused() {
    let data = TrainTest {
        train: blobs(60, 1),
        test: blobs(30, 2),
    };
    let ff = TrainSpec {
        method: Method::FfDd,
        width: 8,
        epochs: 1,
        ..Default::default()
    };
    for method in [Method::BpAd, Method::BpDd] {
        let spec = TrainSpec { method, ..ff.clone() };
        assert!(matches!(
            train_depth_sweep(&spec, &[1, 2], &data, &mut NoProgress),
            Err(TrainError::Data(_))
        ));
    }
    assert!(matches!(
        train_depth_sweep(&ff, &[], &data, &mut NoProgress),
        Err(TrainError::Data(_))
    ));
    assert!(matches!(
        train_depth_sweep(&ff, &[2, 0], &data, &mut NoProgress),
        Err(TrainError::Spec(_))
    ));
    let narrow = TrainSpec { width: 2, ..ff };
    assert!(matches!(
        train_depth_sweep(&narrow, &[1], &data, &mut NoProgress),
        Err(TrainError::Spec(_))
    ));
}

/// On inputs that take the sparse path into the first layer, a sweep still equals its runs.
#[test]
fn every_depth_equals_its_own_run_on_sparse_inputs() {
    let data = TrainTest {
        train: sparse_blobs(600, 7),
        test: sparse_blobs(150, 8),
    };
    for method in [Method::FfDd, Method::FfAd] {
        let spec = TrainSpec {
            method,
            width: 10,
            epochs: 1,
            batch: 48,
            lr: 0.01,
            ..Default::default()
        };
        for threads in [1, 2] {
            assert_eq!(check(&spec, &[1, 3, 2], &data, threads), 0);
        }
    }
}
