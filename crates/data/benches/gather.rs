//! Micro-benchmark of the mini-batch gather on the critical path of every training step
//! (issue 8 item 3): 256 random columns of a 784 × 50,000 matrix of pixel values.
//!
//! (Gathering from a byte copy of the pixels and converting on the way was tried twice. With a
//! scalar conversion it was 2.3× slower. With a vectorised, division-free conversion that is
//! bitwise `p as f32 / 255.0` for every byte, it took 55–90 µs against 83–124 µs here, but in
//! training it saved only ≈ 2 ms per epoch (BP+DD width 10 depth 3, 30-epoch runs alternated
//! with the f32 gather: 1.726/1.734 s against 1.753/1.780 s), and checking that a data set's
//! inputs are exact bytes costs 33 ms per run. A third version learned the bytes while
//! gathering the first epoch instead (no separate pass); with the input matrix on huge pages
//! (`insitu_linalg::huge_page_vec`, which made the f32 gather ≈ 30 % faster in training), it
//! lost end to end: FF+DD width 100 depth 3 5-epoch runs 1.37–1.47 s against 1.37 s with the
//! f32 gather. Dropped each time, see docs/performance.md.)
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
