//! Micro-benchmarks of the direction draw (issue 8 item 3): one direction of the first layer of
//! the paper's MNIST MLP (784·100 + 100 = 78,500 parameters), unit Gaussian and Rademacher.
//!
//! Run: `cargo bench -p insitu-optim --bench direction`.

use divan::Bencher;
use insitu_linalg::Par;
use insitu_optim::DirectionKind;

const N: usize = 78_500;

fn main() {
    divan::main();
}

#[divan::bench(args = [DirectionKind::UnitGaussian, DirectionKind::Rademacher])]
fn draw_78500(bencher: Bencher, kind: DirectionKind) {
    let mut d = vec![0.0f32; N];
    let mut seed = 0u64;
    bencher.bench_local(|| {
        seed += 1;
        kind.draw(seed, &mut d, Par::Seq);
        divan::black_box(&d);
    });
}
