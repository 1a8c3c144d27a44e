//! Micro-benchmarks of the step rules (issue 8 item 3): one SGD and one Adam update of the
//! paper's MNIST MLP of width 100 and depth 3 (99,710 parameters), one thread; and the
//! perturbed parameters `ω + t·d` that BP+DD forms twice per step (`add_scaled`).
//!
//! Run: `cargo bench -p insitu-optim --bench step`.

use divan::Bencher;
use insitu_linalg::{add_scaled, Par};
use insitu_optim::{Adam, Sgd, StepRule};

/// 784·100 + 100 + 2·(100·100 + 100) + 100·10 + 10.
const N: usize = 99_710;

fn main() {
    divan::main();
}

fn operands() -> (Vec<f32>, Vec<f32>) {
    let params = (0..N).map(|i| (i as f32 * 0.37).sin()).collect();
    let grad = (0..N).map(|i| (i as f32 * 0.11).cos() * 1e-2).collect();
    (params, grad)
}

#[divan::bench]
fn sgd(bencher: Bencher) {
    let (mut params, grad) = operands();
    let mut rule = Sgd { lr: 1e-3 };
    bencher
        .counter(divan::counter::ItemsCount::new(N))
        .bench_local(|| rule.step_par(&mut params, &grad, Par::Seq));
}

#[divan::bench]
fn adam(bencher: Bencher) {
    let (mut params, grad) = operands();
    let mut rule = Adam::new(N, 1e-3);
    bencher
        .counter(divan::counter::ItemsCount::new(N))
        .bench_local(|| rule.step_par(&mut params, &grad, Par::Seq));
}

#[divan::bench]
fn perturbed_parameters(bencher: Bencher) {
    let (base, direction) = operands();
    let mut out = vec![0.0f32; N];
    bencher
        .counter(divan::counter::ItemsCount::new(N))
        .bench_local(|| add_scaled(&mut out, &base, 1e-3, &direction));
}
