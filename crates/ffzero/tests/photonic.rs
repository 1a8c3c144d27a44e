//! Seed 000's photonic network (SPEC A9) through the public API: FF+DD learns MNIST on 7 × 7
//! pooled images, both forward-only methods count their passes, the numbers do not depend on
//! the thread count, a NaN stops the run where it appears, and options that cannot work are
//! refused before any work.

mod common;
use common::on_threads;

use insitu_data::{default_datasets_dir, load_task_first, Task, TrainTest};
use insitu_ffzero::{
    train, train_depth_sweep, train_network, train_photonic_network, Method, Model, NoProgress, Optimizer, Status,
    TrainError, TrainResult, TrainSpec,
};

fn mnist(train_limit: usize) -> TrainTest {
    load_task_first(Task::Mnist, &default_datasets_dir(), 0, Some(train_limit), Some(2000))
        .expect("the repository's datasets/ must load")
}

/// Two meshes of 49 modes on 7 × 7 average-pooled images, batch 128 (SPEC A9).
fn photonic(method: Method, epochs: usize) -> TrainSpec {
    TrainSpec {
        model: Model::Photonic,
        method,
        pool: 4,
        width: 49,
        depth: 2,
        epochs,
        batch: 128,
        ..TrainSpec::default()
    }
}

fn with_threads(spec: &TrainSpec, data: &TrainTest, threads: usize) -> TrainResult {
    on_threads(threads, || train(spec, data, &mut NoProgress).unwrap())
}

/// The result without its wall time (the one field that is measured, not computed).
fn comparable(r: &TrainResult) -> String {
    let mut r = r.clone();
    r.train_seconds = 0.0;
    format!("{r:?}")
}

#[test]
fn ff_dd_learns_pooled_mnist_and_counts_its_forward_passes() {
    // Measured (release, this machine): 39.7 % after 3 epochs per mesh on 50,000 images with
    // plain SGD at λ = ε = 10⁻³; 65.8 % after 10 epochs on 60,000 (docs/ffzero.md §photonic).
    let data = mnist(50_000);
    let spec = photonic(Method::FfDd, 3);
    let r = train(&spec, &data, &mut NoProgress).unwrap();
    assert_eq!(r.status, Status::Ok);
    let acc = r.test_accuracy.unwrap();
    assert!(acc > 0.25, "FF+DD on the photonic network: {acc}");
    let per_layer = r.per_layer_test_accuracy.as_ref().unwrap();
    assert_eq!(per_layer.len(), 2);
    // central differences: 2 evaluations per step; mesh m's evaluation passes m + 1 meshes
    assert_eq!(r.forward_passes, 2 * 3 * 50_000 * (1 + 2));
    assert_eq!(
        r.parameters,
        2 * 49 * 49,
        "N(N−1) MZI phases and N input phases per mesh"
    );
    assert_eq!(r.loss_curve.len(), 2 * 3);
    // the loss of each mesh falls over its epochs
    for m in 0..2 {
        let curve: Vec<f64> = r
            .loss_curve
            .iter()
            .filter(|e| e.layer == Some(m))
            .map(|e| e.loss)
            .collect();
        assert!(curve[2] < curve[0], "mesh {m}: {curve:?}");
    }

    let trained = train_photonic_network(&spec, &data, &mut NoProgress).unwrap();
    assert_eq!(comparable(&trained.result), comparable(&r));
    assert_eq!(trained.prototypes.len(), 2);
    assert_eq!(trained.prototypes[0].shape(), (49, 10));
    assert_eq!(trained.network.meshes().len(), 2);
    assert_eq!(trained.network.modes(), 49);
}

#[test]
fn bp_dd_runs_and_counts_its_forward_passes() {
    let data = mnist(3000);
    let r = train(&photonic(Method::BpDd, 2), &data, &mut NoProgress).unwrap();
    assert_eq!(r.status, Status::Ok);
    assert!(r.test_accuracy.is_some());
    assert!(r.per_layer_test_accuracy.is_none());
    // every evaluation passes both meshes
    assert_eq!(r.forward_passes, 2 * 2 * 3000 * 2);
    assert!(r.loss_curve.iter().all(|e| e.loss.is_finite() && e.layer.is_none()));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let data = mnist(1000);
    for method in [Method::FfDd, Method::BpDd] {
        let spec = TrainSpec {
            optimizer: Optimizer::Adam,
            lr: 0.01,
            ..photonic(method, 2)
        };
        let one = with_threads(&spec, &data, 1);
        let two = with_threads(&spec, &data, 2);
        assert_eq!(comparable(&one), comparable(&two), "{method:?}");
    }
}

#[test]
fn a_nan_pixel_stops_the_run_where_it_enters() {
    let mut data = mnist(1000);
    data.train.inputs[(300, 500)] = f32::NAN;
    for method in [Method::FfDd, Method::BpDd] {
        let r = train(&photonic(method, 2), &data, &mut NoProgress).unwrap();
        assert_eq!(r.status, Status::Diverged, "{method:?}");
        let d = r.divergence.unwrap();
        assert_eq!(d.epoch, 0, "{method:?}");
        assert_eq!(d.layer, method.is_local().then_some(0), "{method:?}");
        serde_json::to_string(&r).unwrap();
    }
}

#[test]
fn options_that_cannot_work_are_refused_before_work() {
    let data = mnist(200);
    let refused = |spec: TrainSpec, needle: &str| {
        let e = train(&spec, &data, &mut NoProgress).unwrap_err().to_string();
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
    };
    for method in [Method::FfAd, Method::BpAd] {
        refused(photonic(method, 1), "forward-only methods");
    }
    refused(
        TrainSpec {
            width: 50,
            ..photonic(Method::FfDd, 1)
        },
        "--width must be 49",
    );
    refused(
        TrainSpec {
            pool: 3,
            width: 81,
            ..photonic(Method::FfDd, 1)
        },
        "must divide the image side",
    );
    refused(
        TrainSpec {
            pool: 0,
            ..photonic(Method::FfDd, 1)
        },
        "--pool",
    );
    refused(
        TrainSpec {
            pool: 14,
            width: 4,
            ..photonic(Method::FfDd, 1)
        },
        "at least as wide as the number of classes",
    );
    refused(
        TrainSpec {
            pool: 14,
            width: 4,
            ..photonic(Method::BpDd, 1)
        },
        "fewer than the 10 classes",
    );
    refused(
        TrainSpec {
            model: Model::Mlp,
            ..photonic(Method::FfDd, 1)
        },
        "only the photonic model pools",
    );
    let spec = photonic(Method::FfDd, 1);
    assert!(matches!(
        train_network(&spec, &data, &mut NoProgress),
        Err(TrainError::Spec(_))
    ));
    assert!(matches!(
        train_depth_sweep(&spec, &[1, 2], &data, &mut NoProgress),
        Err(TrainError::Spec(_))
    ));
    let regression = load_task_first(Task::MnistRegression, &default_datasets_dir(), 0, Some(200), Some(10)).unwrap();
    let e = train(&spec, &regression, &mut NoProgress).unwrap_err().to_string();
    assert!(e.contains("classif"), "{e}");
}

#[test]
fn a_photonic_spec_round_trips_and_an_mlp_spec_keeps_its_json() {
    let spec = photonic(Method::FfDd, 1);
    let json = serde_json::to_string(&spec).unwrap();
    assert!(
        json.contains("\"model\":\"photonic\"") && json.contains("\"pool\":4"),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<TrainSpec>(&json).unwrap(), spec);
    // pool 1 is left out, so MLP specs (and the hashes of stored results) are unchanged
    let mlp = serde_json::to_string(&TrainSpec::default()).unwrap();
    assert!(!mlp.contains("pool"), "{mlp}");
}
