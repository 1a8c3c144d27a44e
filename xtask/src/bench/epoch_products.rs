//! The products *inside* training epochs: one epoch per configuration under
//! [`insitu_linalg::meter_products`], which times every product the trainer makes. Where the
//! products table of [`super::bench_products`] times each shape alone in a hot loop, this says
//! how much of a real epoch the products take and at what rate they run there, with the
//! caches, the scratch buffers and the elementwise work between them — issue 8's "product-bound
//! parts", measured where they are bound.
//!
//! Counting: dense products at `2·m·k·n` FLOPs; MNIST's sparse first layer at `2·m` per stored
//! input entry (what it executes), kept apart because its rate is not comparable with the FMA
//! peak (it is bound by its scattered reads, docs/performance.md "Noticed").

use insitu_data::TrainTest;
use insitu_ffzero::{train, Method, NoProgress, Optimizer};
use insitu_linalg::{meter_products, Layout, ProductTally};
use serde::Serialize;

use super::{optimizer_name, spec_with, thread_pool, FULL_EPOCH_SAMPLES};

/// One product kind of a metered epoch.
#[derive(Clone, Debug, Serialize)]
pub struct MeteredProduct {
    /// `(m, k, n)` of `C (m×n) = A (m×k)·B (k×n)`.
    pub shape: (usize, usize, usize),
    /// Layouts of `C`, `A`, `B`: `c` columns contiguous, `r` rows contiguous, `o` other
    /// (a vector), `s` sparse.
    pub layouts: String,
    /// Products of this kind in the epoch.
    pub calls: u64,
    /// Their time, summed.
    pub seconds: f64,
    /// FLOPs executed (sparse: `2·m` per stored entry).
    pub flops: f64,
    /// `flops / seconds`, in GFLOP/s.
    pub gflops: f64,
    /// `gflops` over the FMA peak (`None` without one).
    pub fraction_of_peak: Option<f64>,
}

/// One metered epoch.
#[derive(Clone, Debug, Serialize)]
pub struct ProductsInEpoch {
    /// `mnist` or `fashion-mnist`.
    pub task: String,
    /// Method name.
    pub method: String,
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Hidden width.
    pub width: usize,
    /// Number of layers.
    pub depth: usize,
    /// Training samples in the epoch.
    pub samples: usize,
    /// The metered epoch's training seconds (the meter's own cost included), for `samples`.
    pub train_seconds: f64,
    /// Seconds in all products.
    pub product_seconds: f64,
    /// Seconds in the dense products.
    pub dense_seconds: f64,
    /// FLOPs of the dense products.
    pub dense_flops: f64,
    /// The dense products' rate over the FMA peak (`None` without a peak).
    pub dense_fraction_of_peak: Option<f64>,
    /// Seconds in the sparse products (MNIST's first layer).
    pub sparse_seconds: f64,
    /// FLOPs the sparse products executed.
    pub sparse_flops: f64,
    /// Every product kind, slowest in total first.
    pub products: Vec<MeteredProduct>,
}

impl ProductsInEpoch {
    /// The products' share of the epoch's training time.
    pub fn product_share(&self) -> f64 {
        self.product_seconds / self.train_seconds
    }

    /// The dense products' rate in GFLOP/s.
    pub fn dense_gflops(&self) -> f64 {
        self.dense_flops / self.dense_seconds / 1e9
    }

    /// Training seconds scaled to an epoch of 50,000 samples.
    pub fn epoch_seconds(&self) -> f64 {
        self.train_seconds * FULL_EPOCH_SAMPLES as f64 / self.samples as f64
    }
}

/// Meters `repeats` 1-epoch runs of `method` at 1 thread and keeps the one whose products
/// took least time (the VM's speed drifts between minutes, as for the epoch rows).
#[allow(clippy::too_many_arguments)]
pub fn bench_products_in_epoch(
    task: &str,
    data: &TrainTest,
    method: Method,
    optimizer: Optimizer,
    width: usize,
    depth: usize,
    samples: usize,
    repeats: usize,
    peak: Option<f64>,
) -> Result<ProductsInEpoch, String> {
    let pool = thread_pool(1)?;
    let spec = spec_with(task, method, optimizer, width, depth, 1, samples);
    let mut best: Option<ProductsInEpoch> = None;
    for _ in 0..repeats.max(1) {
        let (result, tallies) =
            meter_products(|| pool.install(|| train(&spec, data, &mut NoProgress))).map_err(|e| e.to_string())?;
        let result = result.map_err(|e| e.to_string())?;
        let row = summarise(
            &spec.task,
            method,
            optimizer,
            width,
            depth,
            samples.min(data.train.len()),
            result.train_seconds,
            &tallies,
            peak,
        );
        if best.as_ref().is_none_or(|b| row.product_seconds < b.product_seconds) {
            best = Some(row);
        }
    }
    Ok(best.expect("at least one repeat"))
}

/// The epoch's row from the meter's tallies.
#[allow(clippy::too_many_arguments)]
fn summarise(
    task: &str,
    method: Method,
    optimizer: Optimizer,
    width: usize,
    depth: usize,
    samples: usize,
    train_seconds: f64,
    tallies: &[ProductTally],
    peak: Option<f64>,
) -> ProductsInEpoch {
    // Folded from +0.0: an empty `sum()` of floats is -0.0, which would print as "-0.000".
    let total = |of_sparse: bool, value: fn(&ProductTally) -> f64| {
        tallies
            .iter()
            .filter(|t| (t.layouts[2] == Layout::Sparse) == of_sparse)
            .fold(0.0, |s, t| s + value(t))
    };
    let (dense_seconds, dense_flops) = (total(false, |t| t.seconds), total(false, |t| t.flops));
    let (sparse_seconds, sparse_flops) = (total(true, |t| t.seconds), total(true, |t| t.flops));
    let mut products: Vec<MeteredProduct> = tallies
        .iter()
        .map(|t| MeteredProduct {
            shape: t.shape,
            layouts: format!(
                "{}={}·{}",
                t.layouts[0].letter(),
                t.layouts[1].letter(),
                t.layouts[2].letter()
            ),
            calls: t.calls,
            seconds: t.seconds,
            flops: t.flops,
            gflops: t.gflops(),
            fraction_of_peak: peak.map(|p| t.gflops() / p),
        })
        .collect();
    products.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    ProductsInEpoch {
        task: task.into(),
        method: method.name().into(),
        optimizer: optimizer_name(optimizer).into(),
        width,
        depth,
        samples,
        train_seconds,
        product_seconds: dense_seconds + sparse_seconds,
        dense_seconds,
        dense_flops,
        dense_fraction_of_peak: peak.map(|p| dense_flops / dense_seconds / 1e9 / p),
        sparse_seconds,
        sparse_flops,
        products,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_sparse_products_apart_and_sorts_by_time() {
        let tally = |shape, layouts, seconds, flops| ProductTally {
            element: "f32",
            shape,
            layouts,
            calls: 2,
            seconds,
            flops,
            dense_flops: flops,
        };
        let c = Layout::Columns;
        let tallies = [
            tally((10, 100, 256), [c, c, c], 1e-6, 1e3),
            tally((100, 784, 256), [c, c, Layout::Sparse], 4e-6, 2e3),
            tally((100, 100, 256), [c, c, c], 3e-6, 5e3),
        ];
        let row = summarise(
            "mnist",
            Method::FfDd,
            Optimizer::Sgd,
            100,
            3,
            1000,
            1e-5,
            &tallies,
            Some(100.0),
        );
        assert_eq!(row.dense_seconds, 4e-6);
        assert_eq!(row.dense_flops, 6e3);
        assert_eq!(row.sparse_seconds, 4e-6);
        assert_eq!(row.product_seconds, 8e-6);
        assert!((row.product_share() - 0.8).abs() < 1e-12);
        // 6e3 FLOPs in 4 µs = 1.5 GFLOP/s, 1.5 % of a 100 GFLOP/s peak.
        assert!((row.dense_fraction_of_peak.unwrap() - 0.015).abs() < 1e-12);
        assert_eq!(row.products[0].layouts, "c=c·s");
        assert_eq!(row.products[1].shape, (100, 100, 256));
        assert!((row.epoch_seconds() - 1e-5 * 50.0).abs() < 1e-15);
    }
}
