//! Fixtures shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use insitu_data::{Dataset, Targets};
use insitu_linalg::{rng, Mat};
use rand::Rng;

/// `f` run inside a rayon pool of `threads` threads (the thread-independence tests).
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// A small synthetic 3-class problem (Gaussian blobs in 6 features) for fast structural tests.
pub fn blobs(n: usize, seed: u64) -> Dataset {
    let mut g = rng(seed);
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let inputs = Mat::from_fn(6, n, |r, c| {
        let centre = if r as u32 == labels[c] { 2.0 } else { 0.0 };
        centre + g.random_range(-1.0f32..1.0)
    });
    Dataset {
        inputs,
        targets: Targets::Classes { labels, num_classes: 3 },
    }
}

/// A 3-class problem whose inputs are mostly exact zeros (about 20 % non-zero, like MNIST's
/// pixels): class `c` lights up features `10c..10c + 10` at random, plus sparse noise
/// everywhere. FF training reads such inputs as sparse columns.
pub fn sparse_blobs(n: usize, seed: u64) -> Dataset {
    let mut g = rng(seed);
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let inputs = Mat::from_fn(30, n, |r, c| {
        let on = if r / 10 == labels[c] as usize { 0.5 } else { 0.05 };
        if g.random::<f64>() < on {
            g.random_range(0.5f32..1.5)
        } else {
            0.0
        }
    });
    Dataset {
        inputs,
        targets: Targets::Classes { labels, num_classes: 3 },
    }
}

/// y = sin(x₀) + x₁x₂ / 2, scaled into [−1, 1].
pub fn regression(n: usize, seed: u64) -> Dataset {
    let mut g = rng(seed);
    let inputs = Mat::from_fn(4, n, |_, _| g.random_range(-1.0f32..1.0));
    let targets = Mat::from_fn(1, n, |_, c| {
        (inputs[(0, c)].sin() + inputs[(1, c)] * inputs[(2, c)] / 2.0) / 1.5
    });
    Dataset {
        inputs,
        targets: Targets::Values(targets),
    }
}
