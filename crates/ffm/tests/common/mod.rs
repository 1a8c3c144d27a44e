//! Helpers shared by the integration tests of insitu-ffm.

use insitu_data::{Dataset, Targets};
use insitu_linalg::{rng, Mat};
use rand::Rng;

/// `count` 28 × 28 images of ten classes: class `k` is a bright blob at a class-dependent
/// place, plus a fixed pattern of noise; labels drawn from `seed`.
pub fn toy_dataset(count: usize, seed: u64) -> Dataset {
    let mut r = rng(seed);
    let labels: Vec<u32> = (0..count).map(|_| r.random_range(0..10)).collect();
    // class k: a bright blob at a class-dependent place, plus noise
    let inputs = Mat::from_fn(784, count, |i, j| {
        let (y, x) = ((i / 28) as f32, (i % 28) as f32);
        let k = labels[j] as f32;
        let (cy, cx) = (6.0 + 1.6 * k, 22.0 - 1.6 * k);
        let blob = (-((y - cy).powi(2) + (x - cx).powi(2)) / 8.0).exp();
        (blob + 0.1 * ((i * 7 + j * 13) % 10) as f32 / 10.0).min(1.0)
    });
    Dataset {
        inputs,
        targets: Targets::Classes {
            labels,
            num_classes: 10,
        },
    }
}
