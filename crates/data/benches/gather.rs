//! Micro-benchmark of the mini-batch gather on the critical path of every training step
//! (issue 8 item 3): 256 random columns of a 784 × 50,000 matrix of pixel values.
//!
//! (Gathering from a byte copy of the pixels and converting on the way was tried and measured
//! 2.3× slower here: the conversion costs more than the memory it saves.)
//!
//! Run: `cargo bench -p insitu-data --bench gather`.

use divan::Bencher;
use insitu_data::gather_columns_par;
use insitu_linalg::{rng, Mat, Par};
use rand::Rng;

fn main() {
    divan::main();
}

const ROWS: usize = 784;
const COLS: usize = 50_000;

fn pixels() -> Mat {
    let mut g = rng(1);
    Mat::from_fn(ROWS, COLS, |_, _| g.random::<u8>() as f32 / 255.0)
}

fn batches() -> Vec<Vec<usize>> {
    let mut g = rng(2);
    (0..64)
        .map(|_| (0..256).map(|_| g.random_range(0..COLS)).collect())
        .collect()
}

#[divan::bench]
fn gather_f32_256_columns(bencher: Bencher) {
    let (m, batches) = (pixels(), batches());
    let mut dst = Mat::zeros(ROWS, 256);
    let mut k = 0;
    bencher.bench_local(|| {
        k = (k + 1) % batches.len();
        gather_columns_par(&m, &batches[k], &mut dst, Par::Seq);
    });
}
