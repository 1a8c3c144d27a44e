//! `cargo xtask bench`: the throughput benchmarks of issue 8, printed as a table and written as
//! JSON (`--json PATH`).
//!
//! What is measured (formulas and method in `docs/performance.md`):
//! - **Training epochs.** MNIST (50,000 training samples, batch 256), MLP width 100 at depth 3
//!   and 10 (and width 10 at depth 3), one epoch of each of the four methods (FF: one epoch of
//!   every layer), through `insitu_ffzero::train` with `epochs: 1` and `test_limit: Some(1)`.
//!   The time is the result's `train_seconds` (training only: no data loading, no evaluation).
//!   GFLOP/s divide an analytic count of the matrix-product FLOPs ([`epoch_flops`]) by it. Each
//!   run happens inside a rayon pool of 1, 2, … threads (`--threads`).
//! - **Thread scaling.** FF+DD at 1 thread against each larger pool, the two alternating
//!   ([`ScalingRow`]): the epoch rows time all 1-thread runs before the 2-thread ones.
//! - **Products.** The matrix products of FFzero's MLPs (forward `W·X`, weight gradient
//!   `dZ·Xᵀ`, backward `Wᵀ·dZ`, batch 256) through `insitu_linalg::matmul` at 1 thread, each in
//!   GFLOP/s and as a fraction of one core's FMA peak measured right before them (issue 8's
//!   "product-bound parts ≥ 70 % of the measured single-core peak"); and the narrow ones again
//!   with the batch along the lanes (activations stored by rows, the `batch_lanes` kernel),
//!   the layout no trainer uses yet.
//! - **Optics.** A 784-mode Haar-random Clements mesh applied to a batch of 128 fields, and one
//!   400×400 band-limited angular-spectrum propagation with 2× padding (medians of a few runs);
//!   FFM training at that grid (2 layers, ideal and in situ), per training layer-run
//!   ([`bench_ffm`]).
//! - **Allocations per FF+DD step after warm-up.** The binary installs [`CountingAllocator`] as
//!   its global allocator; the allocation count of an FF+DD run of 2 epochs minus that of the
//!   same run with 1 epoch, divided by the steps of the extra epoch, is the number of
//!   allocations per step once every buffer exists (setup, caching and evaluation cancel out).
//!
//! It measures; it adds no method and changes no numbers of the library crates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use insitu_data::{default_datasets_dir, load_task, Task, TrainTest};
use insitu_ffm::{FfmSpec, FfmTask, TrainingMode};
use insitu_ffzero::{
    dense_forward, layer_widths, train, train_depth_sweep, DenseShape, LayerObjective, LayerScratch, LayerTarget,
    LocalLoss, Method, NoProgress, Optimizer, Progress, TrainSpec, SPARSE_INPUT_MAX_DENSITY,
};
use insitu_linalg::{matmul, padded_row_stride, rng, Accum, CMat, Mat, MatMut, MatRef, Par, SparseColumns};
use insitu_optics::{Complex32, FreeSpace, Grid, PropagationMethod, RectangularMesh};
use insitu_optim::PerturbedObjective;
use serde::Serialize;

mod epoch_products;
pub use epoch_products::{bench_products_in_epoch, MeteredProduct, ProductsInEpoch};

/// Samples of a full MNIST epoch in the papers' setting (the issue's reference).
pub const FULL_EPOCH_SAMPLES: usize = 50_000;
/// Samples per epoch with `--quick`; times are then scaled to [`FULL_EPOCH_SAMPLES`].
pub const QUICK_EPOCH_SAMPLES: usize = 12_800;

/// Command-line arguments of `cargo xtask bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Rayon pool sizes to run the training epochs under, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,

    /// Depth 3 only, 12,800 samples per epoch (times scaled to 50,000), one optics repeat.
    #[arg(long)]
    pub quick: bool,

    /// Training runs per configuration and epoch count; the fastest counts (default: 3, or 1
    /// with `--quick`).
    #[arg(long)]
    pub repeats: Option<usize>,

    /// The datasets directory (default as in `cargo xtask datasets`).
    #[arg(long, value_name = "DIR")]
    pub datasets_dir: Option<PathBuf>,
}

/// A global allocator that forwards to [`System`] and counts allocation calls (`alloc`,
/// `alloc_zeroed`, `realloc`). Install it with `#[global_allocator]` in a binary; the library
/// then reads [`allocation_count`].
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call forwards unchanged to `System`, which upholds the `GlobalAlloc` contract;
// the counter is a relaxed atomic increment with no effect on the memory returned.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocation calls counted so far by [`CountingAllocator`] (stays 0 where it is not the
/// global allocator, e.g. in unit tests).
pub fn allocation_count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Whether [`CountingAllocator`] is this process's global allocator.
pub fn counting_allocator_installed() -> bool {
    let before = allocation_count();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(64));
    drop(v);
    allocation_count() > before
}

/// One training-epoch measurement.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRow {
    /// The data set: `mnist` (whose first layer takes the sparse path, 19 % non-zero pixels) or
    /// `fashion-mnist` (dense: 50 % non-zero).
    pub task: String,
    /// `bp-ad`, `bp-dd`, `ff-ad`, `ff-dd`.
    pub method: String,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Rayon pool size the run was inside.
    pub threads: usize,
    /// Training samples per epoch actually used.
    pub samples: usize,
    /// Measured `train_seconds` of the 1-epoch run, best of `--repeats` (FF: one epoch of every
    /// layer).
    pub train_seconds: f64,
    /// `train_seconds` scaled to 50,000 samples (equal to it without `--quick`).
    pub epoch_seconds: f64,
    /// Analytic matrix-product FLOPs of the epoch ([`epoch_flops`]) for `samples`.
    pub flops: f64,
    /// `flops / train_seconds / 1e9`.
    pub gflops: f64,
    /// Steady-state seconds of one more epoch, scaled to 50,000 samples: the best `train_seconds`
    /// of a 2-epoch run minus the best of the 1-epoch run. For FF this leaves out the one-time caching of
    /// every layer's output (SPEC A3), which a 100-epoch run pays once, not per epoch.
    pub steady_epoch_seconds: f64,
    /// `flops` without the caching term, over the steady-state seconds.
    pub steady_gflops: f64,
}

/// One FF depth sweep (`insitu_ffzero::train_depth_sweep`, depths 1..=10, SGD, 1 thread):
/// the ten runs of one (method, width) of seed 000 Fig. 4 with every shared hidden layer
/// trained once.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    /// The data set, as in [`EpochRow::task`].
    pub task: String,
    /// `ff-dd` or `ff-ad`.
    pub method: String,
    /// Hidden width.
    pub width: usize,
    /// The depths swept.
    pub depths: Vec<usize>,
    /// Training samples per epoch actually used.
    pub samples: usize,
    /// The sweep's training seconds with 1 epoch per layer, best of `--repeats`, scaled to
    /// 50,000 samples.
    pub sweep_seconds: f64,
    /// Steady-state seconds of one more epoch per layer (2-epoch sweep minus 1-epoch sweep,
    /// alternated, best of each), scaled to 50,000 samples.
    pub steady_sweep_seconds: f64,
}

/// One thread-scaling measurement: the same 1-epoch run at 1 thread and inside a larger pool,
/// the two **alternating** (best of `--repeats` each, at least 3), so that a slow minute of this VM hits
/// both. The epoch rows time every 1-thread configuration before any 2-thread one, a minute
/// or two apart, and their ratio has read 1.32× where alternated runs read 1.70×
/// (docs/performance.md, round 17); issue 8's "2 threads ≥ 1.6× on the FF+DD epoch" is read
/// from these rows.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    /// The data set, as in [`EpochRow::task`].
    pub task: String,
    /// `bp-ad`, `bp-dd`, `ff-ad`, `ff-dd`.
    pub method: String,
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// The larger pool's size.
    pub threads: usize,
    /// Training samples per epoch actually used.
    pub samples: usize,
    /// Best 1-epoch `train_seconds` at 1 thread, scaled to 50,000 samples.
    pub one_thread_epoch_seconds: f64,
    /// Best 1-epoch `train_seconds` with `threads` threads, scaled to 50,000 samples.
    pub epoch_seconds: f64,
    /// `one_thread_epoch_seconds / epoch_seconds`.
    pub speedup: f64,
}

/// One optics-kernel measurement.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    /// What was timed.
    pub name: String,
    /// Median seconds per call.
    pub median_seconds: f64,
    /// Fastest seconds per call.
    pub min_seconds: f64,
    /// Calls timed.
    pub repeats: usize,
}

/// One matrix product `C (m×n) = A (m×k)·B (k×n)` through `insitu_linalg::matmul`, 1 thread.
#[derive(Clone, Debug, Serialize)]
pub struct ProductRow {
    /// Where FFzero uses it, e.g. `forward W·X, layer 784→100`.
    pub name: String,
    /// `(m, k, n)`.
    pub shape: (usize, usize, usize),
    /// Fastest seconds per product.
    pub min_seconds: f64,
    /// `2mkn / min_seconds / 10⁹`.
    pub gflops: f64,
    /// `gflops` over the FMA peak measured just before the products (`None` without one).
    pub fraction_of_peak: Option<f64>,
}

/// The products' measurement: the peak it is compared with, and one row per product.
#[derive(Clone, Debug, Serialize)]
pub struct Products {
    /// One core's f32 FMA peak, measured right before the products ([`fma_peak_gflops`]).
    pub fma_peak_gflops: Option<f64>,
    /// The products.
    pub rows: Vec<ProductRow>,
}

/// How a product reads its operands (FFzero keeps every matrix column-major).
#[derive(Clone, Copy, Debug)]
enum ProductKind {
    /// `W (o×i) · X (i×B)`: a layer's forward pass.
    Forward,
    /// `dZ (o×B) · Xᵀ`, `X` (i×B): a weight gradient (`B`'s rows contiguous).
    WeightGradient,
    /// `Wᵀ · dZ`, `W` (o×i): backpropagation to the layer's input (`A` transposed).
    Backward,
    /// `Ξᵀ · Z`, `Ξ` (d×c, the prototypes as columns): an FF layer's goodness projections
    /// (`A` transposed, its rows contiguous). `outputs` is `c`, `inputs` is `d`.
    Projection,
    /// [`Self::Forward`] with `X` and `Z` stored by rows, [`padded_row_stride`] apart (the
    /// batch along the lanes): the layout of `matmul`'s `batch_lanes` kernel, which no trainer
    /// uses yet (docs/performance.md, round 11).
    ForwardByRows,
    /// [`Self::Projection`] with `Z` and the projections stored by rows.
    ProjectionByRows,
}

/// The products of FFzero's MLPs at batch 256: widths 100, 50 and 10 on 784 inputs with 10
/// classes, each as the methods use them (SPEC A7 layer shapes).
pub fn bench_products(repeats: usize) -> Products {
    const BATCH: usize = 256;
    use ProductKind::{Backward, Forward, ForwardByRows, Projection, ProjectionByRows, WeightGradient};
    let cases: &[(&str, ProductKind, usize, usize)] = &[
        ("forward W·X, layer 784→100 (dense first layer)", Forward, 100, 784),
        ("forward W·X, layer 100→100", Forward, 100, 100),
        ("forward W·X, layer 100→10", Forward, 10, 100),
        ("weight gradient dZ·Xᵀ, layer 784→100", WeightGradient, 100, 784),
        ("weight gradient dZ·Xᵀ, layer 100→100", WeightGradient, 100, 100),
        ("backward Wᵀ·dZ, layer 100→100", Backward, 100, 100),
        ("forward W·X, layer 784→50", Forward, 50, 784),
        ("forward W·X, layer 50→50", Forward, 50, 50),
        ("forward W·X, layer 784→10", Forward, 10, 784),
        ("forward W·X, layer 10→10", Forward, 10, 10),
        ("goodness projections Ξᵀ·Z, width 100, 10 classes", Projection, 10, 100),
        ("by rows: forward W·X, layer 100→100", ForwardByRows, 100, 100),
        ("by rows: forward W·X, layer 100→10", ForwardByRows, 10, 100),
        ("by rows: forward W·X, layer 50→50", ForwardByRows, 50, 50),
        ("by rows: forward W·X, layer 10→10", ForwardByRows, 10, 10),
        (
            "by rows: goodness projections Ξᵀ·Z, width 100, 10 classes",
            ProjectionByRows,
            10,
            100,
        ),
    ];
    let peak = fma_peak_gflops();
    // Values in [-0.5, 0.5): the time does not depend on them (no zeros, no subnormals).
    let random = |r: usize, c: usize| Mat::from_fn(r, c, |i, j| ((i * 131 + j * 17 + 1) % 97) as f32 / 97.0 - 0.5);
    let rows = cases
        .iter()
        .map(|&(name, kind, outputs, inputs)| {
            let (m, k, n, a, b) = match kind {
                ProductKind::Forward => (outputs, inputs, BATCH, random(outputs, inputs), random(inputs, BATCH)),
                // X stored by rows: inputs rows of `padded_row_stride(BATCH)` values.
                ProductKind::ForwardByRows => (
                    outputs,
                    inputs,
                    BATCH,
                    random(outputs, inputs),
                    random(padded_row_stride(BATCH), inputs),
                ),
                ProductKind::ProjectionByRows => (
                    outputs,
                    inputs,
                    BATCH,
                    random(inputs, outputs),
                    random(padded_row_stride(BATCH), inputs),
                ),
                // B = Xᵀ: X is inputs × batch, read transposed.
                ProductKind::WeightGradient => (outputs, BATCH, inputs, random(outputs, BATCH), random(inputs, BATCH)),
                // A = Wᵀ: W is outputs × inputs, read transposed.
                ProductKind::Backward => (inputs, outputs, BATCH, random(outputs, inputs), random(outputs, BATCH)),
                // A = Ξᵀ: Ξ is d × c, read transposed.
                ProductKind::Projection => (outputs, inputs, BATCH, random(inputs, outputs), random(inputs, BATCH)),
            };
            // C's storage for either layout: m × n column-major, or m rows `ld` apart.
            let ld = padded_row_stride(n);
            let mut c = vec![0.0f32; m * ld];
            let (av, bv) = match kind {
                ProductKind::Forward => (MatRef::from(&a), MatRef::from(&b)),
                ProductKind::WeightGradient => (MatRef::from(&a), MatRef::from(&b).t()),
                ProductKind::Backward | ProductKind::Projection => (MatRef::from(&a).t(), MatRef::from(&b)),
                ProductKind::ForwardByRows => {
                    (MatRef::from(&a), MatRef::from_row_major_strided(b.as_slice(), k, n, ld))
                }
                ProductKind::ProjectionByRows => (
                    MatRef::from(&a).t(),
                    MatRef::from_row_major_strided(b.as_slice(), k, n, ld),
                ),
            };
            let by_rows = matches!(kind, ProductKind::ForwardByRows | ProductKind::ProjectionByRows);
            let row = time_repeats(name, repeats, || {
                let cv = if by_rows {
                    MatMut::from_row_major_strided(&mut c, m, n, ld)
                } else {
                    MatMut::from_col_major(&mut c[..m * n], m, n)
                };
                matmul(cv, Accum::Replace, av, bv, 1.0, Par::Seq);
                std::hint::black_box(&c);
            });
            let gflops = 2.0 * (m * k * n) as f64 / row.min_seconds / 1e9;
            ProductRow {
                name: name.into(),
                shape: (m, k, n),
                min_seconds: row.min_seconds,
                gflops,
                fraction_of_peak: peak.map(|p| gflops / p),
            }
        })
        .collect();
    Products {
        fma_peak_gflops: peak,
        rows,
    }
}

/// The allocation measurement.
#[derive(Clone, Debug, Serialize)]
pub struct AllocationRow {
    /// Network (`784-100-10`).
    pub network: String,
    /// Training samples per epoch.
    pub samples: usize,
    /// Epochs (per layer) of the counted run.
    pub epochs: usize,
    /// Steps counted: every step of the run except each layer's first (the warm-up, where
    /// scratch buffers are sized).
    pub steps: usize,
    /// Allocation calls inside the counted steps (from the end of one step, or of an epoch, to
    /// the end of the next step: the batch, the objective, the estimate and the update).
    pub allocations_in_steps: u64,
    /// `allocations_in_steps / steps`.
    pub per_step: f64,
    /// Allocation calls of one `dense_forward` (100×784)·(784×256), after a warm-up call.
    pub dense_forward_per_call: u64,
    /// Allocation calls of one `LayerObjective::losses_along` (one ± pair) on that layer.
    pub losses_along_per_call: u64,
    /// The same count for the other three methods (FF+AD and BP+AD with Adam, BP+DD with SGD,
    /// as the epoch timings run them), same network and samples.
    pub other_methods: Vec<MethodAllocations>,
}

/// Allocation calls inside the steps of one method's run ([`bench_allocations`]).
#[derive(Clone, Debug, Serialize)]
pub struct MethodAllocations {
    /// `ff-ad`, `bp-dd`, `bp-ad`.
    pub method: String,
    /// Step rule.
    pub optimizer: String,
    /// Steps counted (each trained unit's first two steps excluded: the tape's batch buffer
    /// is sized on the second).
    pub steps: usize,
    /// Allocation calls inside them.
    pub allocations_in_steps: u64,
}

/// Counts allocation calls step by step ([`bench_allocations`]), skipping the first `warm_up`
/// steps of every trained unit (scratch is sized there).
struct StepAllocations {
    warm_up: usize,
    seen_in_phase: usize,
    last: u64,
    allocations: u64,
    steps: usize,
}

impl StepAllocations {
    fn skipping(warm_up: usize) -> Self {
        Self {
            warm_up,
            seen_in_phase: 0,
            last: 0,
            allocations: 0,
            steps: 0,
        }
    }
}

impl Progress for StepAllocations {
    fn phase(&mut self, _label: &str, _epochs: usize, _steps_per_epoch: usize) {
        self.seen_in_phase = 0;
    }
    fn step(&mut self) {
        let now = allocation_count();
        if self.seen_in_phase >= self.warm_up {
            self.allocations += now - self.last;
            self.steps += 1;
        }
        self.seen_in_phase += 1;
        self.last = allocation_count();
    }
    fn epoch_done(&mut self, _epoch: usize, _mean_loss: f64) {
        // the loss curve's entry is per epoch, not per step
        self.last = allocation_count();
    }
}

/// Everything `cargo xtask bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// `uname -n`-free machine description: logical CPUs and load average before and after.
    pub machine: Machine,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Training epochs.
    pub epochs: Vec<EpochRow>,
    /// FF+DD at 1 thread against each larger pool of `--threads`, alternated.
    pub scaling: Vec<ScalingRow>,
    /// FF depth sweeps (not with `--quick`).
    pub sweeps: Vec<SweepRow>,
    /// The seed 000 Fig. 4 estimate (not with `--quick`).
    pub fig4: Option<Fig4Estimate>,
    /// FFzero's matrix products at 1 thread, against the FMA peak.
    pub products: Products,
    /// The products inside metered 1-thread epochs (MNIST, and Fashion-MNIST unless `--quick`).
    pub products_in_epochs: Vec<ProductsInEpoch>,
    /// Optics kernels.
    pub kernels: Vec<KernelRow>,
    /// Allocations per FF+DD step (`None` if the counting allocator is not installed).
    pub allocations: Option<AllocationRow>,
}

/// The machine as far as the benchmark can see it.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU as `/proc/cpuinfo` names it (model name, family, model), if readable: the VM's
    /// host changed between sessions (docs/performance.md, "Machine and conditions").
    pub cpu: Option<String>,
    /// `std::thread::available_parallelism`.
    pub logical_cpus: usize,
    /// `/proc/loadavg` when the benchmark started (1, 5, 15 min), if readable.
    pub load_before: Option<String>,
    /// `/proc/loadavg` when it finished.
    pub load_after: Option<String>,
    /// One core's f32 FMA peak in GFLOP/s ([`fma_peak_gflops`]), best of 5; `None` without
    /// AVX-512.
    pub fma_peak_gflops: Option<f64>,
}

pub use insitu_linalg::fma_peak_gflops;

/// `"<model name> (family F, model M)"` from the first processor of `/proc/cpuinfo`.
fn cpu_model() -> Option<String> {
    cpu_model_from(&std::fs::read_to_string("/proc/cpuinfo").ok()?)
}

/// [`cpu_model`] from the text of `/proc/cpuinfo`.
fn cpu_model_from(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key).then(|| value.trim().to_string())
        })
    };
    let name = field("model name")?;
    Some(match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    })
}

fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn optimizer_name(optimizer: Optimizer) -> &'static str {
    match optimizer {
        Optimizer::Sgd => "sgd",
        Optimizer::Adam => "adam",
    }
}

/// The method's step rule in the issue's reference: Adam for the AD methods, SGD for the DD
/// methods (the paper's reading, SPEC A5).
fn optimizer_of(method: Method) -> Optimizer {
    if method.is_directional() {
        Optimizer::Sgd
    } else {
        Optimizer::Adam
    }
}

/// Analytic matrix-product FLOPs of one epoch of `method` over `samples` samples on a network
/// of layer widths `widths` (`widths[0]` inputs, last = classes), counting `2·m·n·k` per product
/// and nothing elementwise (bias, ReLU, perturbation, optimiser, softmax), with `P = 1` and the
/// central (±ε) difference. Per layer `l` (`o × i`), per sample, with `C` classes:
/// - FF+DD: `W·x` once and `V·x` once (shared by ±ε): `4·o·i`; the prototype projections
///   `Ξᵀ·(W·x)` and `Ξᵀ·(V·x)`, from which the goodness of both evaluations follows: `2·2·o·C`;
///   the layer's output for the next layer's cache (all but the last layer) `2·o·i`.
/// - FF+AD: forward `2·o·i`, weight gradient `2·o·i` (the frozen input needs none); goodness
///   forward and backward `3·2·o·C`; cache `2·o·i` (all but the last).
/// - BP+DD: two full forward passes (±ε): `2·2·o·i`.
/// - BP+AD: forward `2·o·i`, weight gradient `2·o·i`, input gradient `2·o·i` except for the
///   first layer.
///
/// `with_cache: false` leaves out the caching term (the steady-state epoch).
pub fn epoch_flops(method: Method, widths: &[usize], samples: usize, with_cache: bool) -> f64 {
    let classes = *widths.last().expect("at least one layer") as f64;
    let layers = widths.len() - 1;
    let mut per_sample = 0.0;
    for l in 0..layers {
        let (i, o) = (widths[l] as f64, widths[l + 1] as f64);
        let last = l + 1 == layers;
        let cache = if last || !with_cache { 0.0 } else { 2.0 * o * i };
        per_sample += match method {
            Method::FfDd => 4.0 * o * i + 4.0 * o * classes + cache,
            Method::FfAd => 4.0 * o * i + 6.0 * o * classes + cache,
            Method::BpDd => 4.0 * o * i,
            Method::BpAd => {
                if l == 0 {
                    4.0 * o * i
                } else {
                    6.0 * o * i
                }
            }
        };
    }
    per_sample * samples as f64
}

fn spec_for(method: Method, width: usize, depth: usize, epochs: usize, samples: usize) -> TrainSpec {
    spec_with("mnist", method, optimizer_of(method), width, depth, epochs, samples)
}

fn spec_with(
    task: &str,
    method: Method,
    optimizer: Optimizer,
    width: usize,
    depth: usize,
    epochs: usize,
    samples: usize,
) -> TrainSpec {
    TrainSpec {
        task: task.into(),
        width,
        depth,
        method,
        epochs,
        batch: 256,
        optimizer,
        seed: 0,
        train_limit: Some(samples),
        test_limit: Some(1),
        ..TrainSpec::default()
    }
}

/// A rayon pool of `threads` threads for the runs to be timed in.
fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())
}

/// The best training seconds of `repeats` 1-epoch and `repeats` 2-epoch runs of `time(epochs)`.
/// Best of several: the machine is a shared VM whose speed drifts between minutes. The 1- and
/// 2-epoch runs alternate, so that a slow minute hits both and the steady-state difference
/// stays fair.
fn best_of_one_and_two_epochs(
    repeats: usize,
    mut time: impl FnMut(usize) -> Result<f64, String>,
) -> Result<(f64, f64), String> {
    let (mut one, mut two) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..repeats {
        one = one.min(time(1)?);
        two = two.min(time(2)?);
    }
    Ok((one, two))
}

/// The `train_seconds` of one run of `spec` inside `pool`.
fn train_seconds_in(pool: &rayon::ThreadPool, spec: &TrainSpec, data: &TrainTest) -> Result<f64, String> {
    pool.install(|| train(spec, data, &mut NoProgress))
        .map(|r| r.train_seconds)
        .map_err(|e| e.to_string())
}

/// Times one epoch of `method` with `optimizer` inside a rayon pool of `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn bench_epoch(
    task: &str,
    data: &TrainTest,
    method: Method,
    optimizer: Optimizer,
    width: usize,
    depth: usize,
    threads: usize,
    samples: usize,
    repeats: usize,
) -> Result<EpochRow, String> {
    let pool = thread_pool(threads)?;
    let (one, two) = best_of_one_and_two_epochs(repeats, |epochs| {
        train_seconds_in(
            &pool,
            &spec_with(task, method, optimizer, width, depth, epochs, samples),
            data,
        )
    })?;
    let spec = spec_with(task, method, optimizer, width, depth, 1, samples);
    let samples = samples.min(data.train.len());
    let widths = layer_widths(&spec, data.train.features(), data.train.num_classes());
    let flops = epoch_flops(method, &widths, samples, true);
    let steady = two - one;
    Ok(EpochRow {
        task: task.into(),
        method: method.name().into(),
        width,
        depth,
        optimizer: optimizer_name(optimizer).into(),
        threads,
        samples,
        train_seconds: one,
        epoch_seconds: one * FULL_EPOCH_SAMPLES as f64 / samples as f64,
        flops,
        gflops: flops / one / 1e9,
        steady_epoch_seconds: steady * FULL_EPOCH_SAMPLES as f64 / samples as f64,
        steady_gflops: epoch_flops(method, &widths, samples, false) / steady / 1e9,
    })
}

/// Times one epoch of `method` at 1 thread and with `threads` threads, the runs alternating
/// ([`ScalingRow`]).
#[allow(clippy::too_many_arguments)]
pub fn bench_scaling(
    task: &str,
    data: &TrainTest,
    method: Method,
    optimizer: Optimizer,
    width: usize,
    depth: usize,
    threads: usize,
    samples: usize,
    repeats: usize,
) -> Result<ScalingRow, String> {
    let pools = [thread_pool(1)?, thread_pool(threads)?];
    let spec = spec_with(task, method, optimizer, width, depth, 1, samples);
    let mut best = [f64::INFINITY; 2];
    for _ in 0..repeats {
        for (pool, best) in pools.iter().zip(&mut best) {
            *best = best.min(train_seconds_in(pool, &spec, data)?);
        }
    }
    let samples = samples.min(data.train.len());
    let scale = FULL_EPOCH_SAMPLES as f64 / samples as f64;
    Ok(ScalingRow {
        task: task.into(),
        method: method.name().into(),
        optimizer: optimizer_name(optimizer).into(),
        width,
        depth,
        threads,
        samples,
        one_thread_epoch_seconds: best[0] * scale,
        epoch_seconds: best[1] * scale,
        speedup: best[0] / best[1],
    })
}

/// Times an FF depth sweep over depths 1..=10 (SGD, the paper's setting) on one thread.
pub fn bench_sweep(
    task: &str,
    data: &TrainTest,
    method: Method,
    width: usize,
    samples: usize,
    repeats: usize,
) -> Result<SweepRow, String> {
    let pool = thread_pool(1)?;
    let depths: Vec<usize> = (1..=10).collect();
    let (one, two) = best_of_one_and_two_epochs(repeats, |epochs| {
        pool.install(|| {
            train_depth_sweep(
                &spec_with(task, method, Optimizer::Sgd, width, 1, epochs, samples),
                &depths,
                data,
                &mut NoProgress,
            )
        })
        .map(|s| s.train_seconds)
        .map_err(|e| e.to_string())
    })?;
    let samples = samples.min(data.train.len());
    let scale = FULL_EPOCH_SAMPLES as f64 / samples as f64;
    Ok(SweepRow {
        task: task.into(),
        method: method.name().into(),
        width,
        depths,
        samples,
        sweep_seconds: one * scale,
        steady_sweep_seconds: (two - one) * scale,
    })
}

fn time_repeats(name: &str, repeats: usize, mut f: impl FnMut()) -> KernelRow {
    f(); // warm-up
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    KernelRow {
        name: name.into(),
        median_seconds: t[t.len() / 2],
        min_seconds: t[0],
        repeats,
    }
}

/// Times the 784-mode mesh on 128 fields and the 400×400 band-limited propagation (2× padding).
pub fn bench_optics(repeats: usize) -> Result<Vec<KernelRow>, String> {
    let mut r = rng(1);
    let mesh = RectangularMesh::haar_rect(784, &mut r).map_err(|e| e.to_string())?;
    let x = CMat::from_fn(784, 128, |i, j| {
        Complex32::new(((i * 131 + j * 17) % 97) as f32 / 97.0, 0.0)
    });
    let mut y = x.clone();
    let mut mesh_err = None;
    let mesh_row = time_repeats(
        &format!("mesh 784 modes ({} MZIs) × 128 fields", mesh.num_mzis()),
        repeats,
        || {
            y.copy_from(&x);
            if let Err(e) = mesh.apply_batch(&mut y) {
                mesh_err = Some(e.to_string());
            }
            std::hint::black_box(&y);
        },
    );
    if let Some(e) = mesh_err {
        return Err(e);
    }
    let grid = Grid { n: 400, dx: 8e-6 };
    let mut fs = FreeSpace::new(grid, 532e-9, 0.388, PropagationMethod::BandLimitedAngularSpectrum, 2)
        .map_err(|e| e.to_string())?;
    let field: Vec<Complex32> = (0..400 * 400)
        .map(|k| Complex32::new(((k * 7919) % 101) as f32 / 101.0, 0.0))
        .collect();
    let mut f = field.clone();
    let fs_row = time_repeats(
        "free space 400×400 band-limited, 2× padding",
        repeats.max(3) * 4,
        || {
            f.copy_from_slice(&field);
            fs.propagate(&mut f);
            std::hint::black_box(&f);
        },
    );
    Ok(vec![mesh_row, fs_row])
}

/// FFM training at the paper's grid (seed 002: 400×400, 2× padding, 2 layers), ideal and in
/// situ, on the first `samples` MNIST images for one epoch at 1 thread: the seconds per training
/// layer-run (`train_seconds / forward_propagations`), median and fastest of `repeats` runs.
/// What the 60 paper-profile runs of seed 002 Fig. 2d cost is priced from these two numbers
/// (`matrix.rs`).
pub fn bench_ffm(data: &TrainTest, samples: usize, repeats: usize) -> Result<Vec<KernelRow>, String> {
    let mut rows = Vec::new();
    for (mode, what) in [(TrainingMode::Ideal, "ideal"), (TrainingMode::InSitu, "in situ")] {
        let spec = FfmSpec {
            task: FfmTask::Mnist,
            layers: 2,
            epochs: 1,
            train_limit: Some(samples),
            test_limit: Some(1),
            mode,
            ..FfmSpec::paper()
        };
        // One thread, as the per-core cost model wants it (outside a pool the run would spread
        // its samples over the global pool).
        let pool = thread_pool(1)?;
        let mut per_run: Vec<f64> = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let r = pool
                .install(|| insitu_ffm::run(&spec, &data.train, &data.test))
                .map_err(|e| e.to_string())?;
            per_run.push(r.train_seconds / r.forward_propagations.max(1) as f64);
        }
        per_run.sort_by(f64::total_cmp);
        rows.push(KernelRow {
            name: format!("FFM training 400×400, 2 layers, {what}: per layer-run ({samples} samples)"),
            median_seconds: per_run[per_run.len() / 2],
            min_seconds: per_run[0],
            repeats: per_run.len(),
        });
    }
    Ok(rows)
}

/// Allocations per FF+DD step after warm-up on a 784-100-10 network (depth 1): count of a
/// 2-epoch run minus count of a 1-epoch run, over the steps of the extra epoch. `None` if the
/// counting allocator is not the global allocator.
pub fn bench_allocations(data: &TrainTest, samples: usize) -> Result<Option<AllocationRow>, String> {
    if !counting_allocator_installed() {
        return Ok(None);
    }
    let epochs = 2;
    // One 784-100-10 run of `method`, its allocations counted after `warm_up` steps of each unit.
    let count = |method: Method, warm_up: usize| -> Result<StepAllocations, String> {
        let mut counter = StepAllocations::skipping(warm_up);
        train(&spec_for(method, 100, 1, epochs, samples), data, &mut counter).map_err(|e| e.to_string())?;
        Ok(counter)
    };
    let counter = count(Method::FfDd, 1)?;
    let (dense_forward_per_call, losses_along_per_call) = kernel_allocations(data);
    let mut other_methods = Vec::new();
    for method in [Method::FfAd, Method::BpDd, Method::BpAd] {
        // Two warm-up steps: the tape swaps the gathered batch into its input leaf
        // (`Tape::constant_swap`), so the batch buffer gets its steady size on the second step.
        let counted = count(method, 2)?;
        other_methods.push(MethodAllocations {
            method: method.name().into(),
            optimizer: optimizer_name(optimizer_of(method)).into(),
            steps: counted.steps,
            allocations_in_steps: counted.allocations,
        });
    }
    Ok(Some(AllocationRow {
        dense_forward_per_call,
        losses_along_per_call,
        other_methods,
        network: "784-100-10".into(),
        samples: samples.min(data.train.len()),
        epochs,
        steps: counter.steps,
        allocations_in_steps: counter.allocations,
        per_step: counter.allocations as f64 / counter.steps.max(1) as f64,
    }))
}

/// Allocation calls of one warmed-up `dense_forward` and one `losses_along` (± pair) on the
/// first layer (784 → 100) of a batch of 256 MNIST images.
fn kernel_allocations(data: &TrainTest) -> (u64, u64) {
    let shape = DenseShape {
        inputs: 784,
        outputs: 100,
    };
    let batch = 256.min(data.train.len());
    let x = data.train.inputs.columns(0, batch).into_owned();
    let params: Vec<f32> = (0..shape.len()).map(|k| ((k % 13) as f32 - 6.0) * 1e-3).collect();
    let direction: Vec<f32> = (0..shape.len()).map(|k| ((k % 7) as f32 - 3.0) * 1e-3).collect();
    let mut z = Mat::zeros(shape.outputs, batch);
    dense_forward(shape, &params, MatRef::from(&x), &mut z);
    let before = allocation_count();
    dense_forward(shape, &params, MatRef::from(&x), &mut z);
    let dense = allocation_count() - before;
    let prototypes = Mat::from_fn(shape.outputs, 10, |i, c| if i % 10 == c { 1.0 } else { 0.0 });
    let labels: Vec<u32> = (0..batch as u32).map(|j| j % 10).collect();
    let target = LayerTarget::Classes {
        prototypes: &prototypes,
        labels: &labels,
        loss: LocalLoss::Margin,
        margin: 0.3,
    };
    let mut scratch = LayerScratch::default();
    let mut objective = LayerObjective::new(shape, &params, MatRef::from(&x), target, &mut scratch, Par::Seq);
    let mut out = [0.0f64; 2];
    objective.losses_along(&direction, &[1e-3, -1e-3], &mut out);
    let before = allocation_count();
    objective.losses_along(&direction, &[1e-3, -1e-3], &mut out);
    (dense, allocation_count() - before)
}

/// Runs every benchmark of `args`, printing progress to stderr.
pub fn run_bench(args: &BenchArgs) -> Result<BenchReport, String> {
    let load_before = load_average();
    let dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
    let data = load_task(Task::Mnist, &dir, 0).map_err(|e| format!("loading MNIST from {}: {e}", dir.display()))?;
    // Fashion-MNIST has MNIST's sizes but takes the dense first-layer path (50 % non-zero
    // pixels), so the Fig. 4 estimate needs its own rows (1 thread, SGD).
    let fashion = if args.quick {
        None
    } else {
        Some(
            load_task(Task::FashionMnist, &dir, 0)
                .map_err(|e| format!("loading Fashion-MNIST from {}: {e}", dir.display()))?,
        )
    };
    let samples = if args.quick {
        QUICK_EPOCH_SAMPLES
    } else {
        FULL_EPOCH_SAMPLES
    };
    let configs: &[(usize, usize)] = if args.quick {
        &[(100, 3)]
    } else {
        &[(100, 3), (100, 10), (50, 3), (50, 10), (10, 3), (10, 10)]
    };
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut epochs = Vec::new();
    for &threads in &args.threads {
        if threads == 0 {
            return Err("--threads: a pool needs at least 1 thread".into());
        }
        for &(width, depth) in configs {
            // The issue's reference settings (Adam for the AD methods), and at 1 thread also
            // the paper's (SGD for all four, SPEC A5), which the Fig. 4 estimate uses.
            let mut runs: Vec<(Method, Optimizer)> = ALL_METHODS.iter().map(|&m| (m, optimizer_of(m))).collect();
            if threads == 1 {
                runs.extend([(Method::FfAd, Optimizer::Sgd), (Method::BpAd, Optimizer::Sgd)]);
            }
            for (method, optimizer) in runs {
                let row = bench_epoch(
                    "mnist", &data, method, optimizer, width, depth, threads, samples, repeats,
                )?;
                eprintln!(
                    "mnist {:>5} {:<4} w{width:<3} d{depth:<2} {threads}t: {:.3} s/epoch",
                    row.method, row.optimizer, row.epoch_seconds
                );
                epochs.push(row);
            }
            if let (Some(fashion), 1) = (&fashion, threads) {
                for method in ALL_METHODS {
                    let row = bench_epoch(
                        "fashion-mnist",
                        fashion,
                        method,
                        Optimizer::Sgd,
                        width,
                        depth,
                        1,
                        samples,
                        repeats,
                    )?;
                    eprintln!(
                        "fashion-mnist {:>5} sgd  w{width:<3} d{depth:<2} 1t: {:.3} s/epoch",
                        row.method, row.epoch_seconds
                    );
                    epochs.push(row);
                }
            }
        }
    }
    let mut scaling = Vec::new();
    for &threads in args.threads.iter().filter(|&&t| t > 1) {
        for &(width, depth) in detailed_configs(args.quick) {
            let row = bench_scaling(
                "mnist",
                &data,
                Method::FfDd,
                Optimizer::Sgd,
                width,
                depth,
                threads,
                samples,
                // At least 3 even with `--quick`: one 2-thread run alone read 0.64× once, where
                // the same build's epoch rows read 1.8× (this VM's second core has slow minutes).
                repeats.max(3),
            )?;
            eprintln!(
                "mnist ff-dd sgd  w{width:<3} d{depth:<2} 1t against {threads}t, alternated: {:.3} / {:.3} s/epoch = {:.2}×",
                row.one_thread_epoch_seconds, row.epoch_seconds, row.speedup
            );
            scaling.push(row);
        }
    }
    let mut sweeps = Vec::new();
    if !args.quick {
        let sets = [("mnist", &data)]
            .into_iter()
            .chain(fashion.iter().map(|f| ("fashion-mnist", f)));
        for (task, set) in sets {
            for width in [100, 50, 10] {
                for method in [Method::FfDd, Method::FfAd] {
                    let row = bench_sweep(task, set, method, width, samples, repeats)?;
                    eprintln!(
                        "{task} {:>5} sgd  w{width:<3} depths 1-10 sweep 1t: {:.3} s (steady {:.3} s per epoch)",
                        row.method, row.sweep_seconds, row.steady_sweep_seconds
                    );
                    sweeps.push(row);
                }
            }
        }
    }
    let fig4 = if args.quick {
        None
    } else {
        fig4_estimate(&epochs, &sweeps)
    };
    eprintln!("products…");
    let products = bench_products(if args.quick { 200 } else { 1000 });
    eprintln!("products inside epochs…");
    let products_in_epochs = bench_all_products_in_epochs(&data, fashion.as_ref(), samples, repeats, args.quick)?;
    eprintln!("optics kernels…");
    let mut kernels = bench_optics(if args.quick { 3 } else { 7 })?;
    // Data preparation that `train` does before its clock starts (like loading): the training
    // inputs as sparse columns for the first layer.
    let inputs = data.train.inputs.columns(0, samples.min(data.train.len())).into_owned();
    kernels.push(time_repeats(
        &format!("MNIST inputs ({} samples) to sparse columns, 1 thread", inputs.ncols()),
        3,
        || {
            let s = SparseColumns::from_dense_if_sparse(MatRef::from(&inputs), SPARSE_INPUT_MAX_DENSITY, Par::Seq);
            std::hint::black_box(&s);
        },
    ));
    eprintln!("FFM training at the paper's grid…");
    kernels.extend(bench_ffm(&data, if args.quick { 32 } else { 96 }, 3)?);
    eprintln!("allocations…");
    let allocations = bench_allocations(&data, if args.quick { 12_800 } else { FULL_EPOCH_SAMPLES })?;
    Ok(BenchReport {
        machine: Machine {
            cpu: cpu_model(),
            logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before,
            load_after: load_average(),
            fma_peak_gflops: fma_peak_gflops(),
        },
        quick: args.quick,
        epochs,
        scaling,
        sweeps,
        fig4,
        products,
        products_in_epochs,
        kernels,
        allocations,
    })
}

/// [`bench_products_in_epoch`] for the four methods (the issue's optimisers) at width 100,
/// depths 3 and 10, and width 10, depth 3 (width 100, depth 3 only with `quick`), on MNIST
/// and, if given, Fashion-MNIST (its dense first layer), against one FMA peak measured just
/// before.
fn bench_all_products_in_epochs(
    mnist: &TrainTest,
    fashion: Option<&TrainTest>,
    samples: usize,
    repeats: usize,
    quick: bool,
) -> Result<Vec<ProductsInEpoch>, String> {
    let peak = fma_peak_gflops();
    let configs = detailed_configs(quick);
    let sets = [("mnist", mnist)]
        .into_iter()
        .chain(fashion.map(|f| ("fashion-mnist", f)));
    let mut rows = Vec::new();
    for (task, set) in sets {
        for &(width, depth) in configs {
            for method in ALL_METHODS {
                let row = bench_products_in_epoch(
                    task,
                    set,
                    method,
                    optimizer_of(method),
                    width,
                    depth,
                    samples,
                    repeats,
                    peak,
                )?;
                eprintln!(
                    "{task} {:>5} w{width:<3} d{depth:<2} 1t: products {:.0} % of the epoch, dense ones at {:.0} GFLOP/s",
                    row.method,
                    100.0 * row.product_share(),
                    row.dense_gflops()
                );
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

const ALL_METHODS: [Method; 4] = [Method::FfDd, Method::FfAd, Method::BpDd, Method::BpAd];

/// The `(width, depth)` pairs measured in detail (products inside the epochs, thread scaling):
/// width 100 at depths 3 and 10 and width 10 at depth 3; width 100, depth 3 with `--quick`.
fn detailed_configs(quick: bool) -> &'static [(usize, usize)] {
    if quick {
        &[(100, 3)]
    } else {
        &[(100, 3), (100, 10), (10, 3)]
    }
}

/// Seed 000 Fig. 4's MLP matrix at the paper's settings, estimated from measured epochs.
#[derive(Clone, Debug, Serialize)]
pub struct Fig4Estimate {
    /// Runs in the matrix: 2 data sets × 3 widths × 10 depths × 4 methods.
    pub runs: usize,
    /// Epochs per run (per layer for FF).
    pub epochs: usize,
    /// Per (data set, method, width): estimated seconds of the 10 runs of depths 1..=10, one
    /// thread each.
    pub per_method_width: Vec<(String, String, usize, f64)>,
    /// All runs, one thread each, summed.
    pub core_seconds: f64,
    /// `core_seconds / 2 / 60`: two runs at a time on the two cores.
    pub minutes_on_two_cores: f64,
    /// The same matrix as `cargo xtask reproduce` runs it: each FF (method, width) as one depth
    /// sweep over depths 1..=10 (measured, [`SweepRow`]; every result equal to its own run's),
    /// BP runs as above. Per (data set, method, width), seconds.
    pub per_method_width_with_sweeps: Vec<(String, String, usize, f64)>,
    /// All of it, one thread per run or sweep, summed.
    pub core_seconds_with_sweeps: f64,
    /// `core_seconds_with_sweeps / 2 / 60`.
    pub minutes_on_two_cores_with_sweeps: f64,
}

/// The Fig. 4 estimate from 1-thread, SGD rows (the paper's settings, SPEC A5) at depths 3 and
/// 10 of every width, for each of the two data sets (MNIST and Fashion-MNIST have the same
/// sizes but not the same cost: MNIST's first layer takes the sparse path): per (data set,
/// method, width), the steady-state epoch time `s(d)` and the one-time part `o(d)` (1-epoch time
/// minus steady: FF's caching of each layer's output) are lines through their values at d = 3
/// and d = 10 (both grow with the number of layers); a run of depth d costs `100·s(d) + o(d)`;
/// summed over d = 1..=10, the 4 methods, the 3 widths and the 2 data sets. `None` if a row is
/// missing.
///
/// With FF depth sweeps, an FF (data set, method, width) costs `100·s + o` of its measured
/// sweep ([`SweepRow`]: `s` its steady-state seconds per epoch, `o` the 1-epoch sweep minus
/// `s`); `None` if a sweep is missing.
pub fn fig4_estimate(rows: &[EpochRow], sweeps: &[SweepRow]) -> Option<Fig4Estimate> {
    const EPOCHS: usize = 100;
    const TASKS: [&str; 2] = ["mnist", "fashion-mnist"];
    let find = |task: &str, method: Method, width: usize, depth: usize| {
        rows.iter().find(|r| {
            r.task == task
                && r.method == method.name()
                && r.width == width
                && r.depth == depth
                && r.threads == 1
                && r.optimizer == "sgd"
        })
    };
    let mut per_method_width = Vec::new();
    let mut core_seconds = 0.0;
    let mut per_method_width_with_sweeps = Vec::new();
    let mut core_seconds_with_sweeps = 0.0;
    for task in TASKS {
        for width in [10, 50, 100] {
            for method in ALL_METHODS {
                let (r3, r10) = (find(task, method, width, 3)?, find(task, method, width, 10)?);
                let line = |y3: f64, y10: f64, d: f64| y3 + (y10 - y3) * (d - 3.0) / 7.0;
                let once = |r: &EpochRow| (r.epoch_seconds - r.steady_epoch_seconds).max(0.0);
                let seconds: f64 = (1..=10)
                    .map(|d| {
                        let d = d as f64;
                        EPOCHS as f64 * line(r3.steady_epoch_seconds, r10.steady_epoch_seconds, d)
                            + line(once(r3), once(r10), d)
                    })
                    .sum();
                per_method_width.push((task.to_string(), method.name().to_string(), width, seconds));
                core_seconds += seconds;
                let with_sweep = if method.is_local() {
                    let sweep = sweeps
                        .iter()
                        .find(|s| s.task == task && s.method == method.name() && s.width == width)?;
                    EPOCHS as f64 * sweep.steady_sweep_seconds
                        + (sweep.sweep_seconds - sweep.steady_sweep_seconds).max(0.0)
                } else {
                    seconds
                };
                per_method_width_with_sweeps.push((task.to_string(), method.name().to_string(), width, with_sweep));
                core_seconds_with_sweeps += with_sweep;
            }
        }
    }
    Some(Fig4Estimate {
        runs: TASKS.len() * 3 * 10 * 4,
        epochs: EPOCHS,
        per_method_width,
        core_seconds,
        minutes_on_two_cores: core_seconds / 2.0 / 60.0,
        per_method_width_with_sweeps,
        core_seconds_with_sweeps,
        minutes_on_two_cores_with_sweeps: core_seconds_with_sweeps / 2.0 / 60.0,
    })
}

/// The report as markdown tables (what `cargo xtask bench` prints).
pub fn render(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "machine: {}, {} logical CPUs, one core's f32 FMA peak {} GFLOP/s, load average {} (start) / {} (end){}\n",
        report.machine.cpu.as_deref().unwrap_or("CPU not named"),
        report.machine.logical_cpus,
        report
            .machine
            .fma_peak_gflops
            .map_or_else(|| "?".to_string(), |g| format!("{g:.0}")),
        report.machine.load_before.as_deref().unwrap_or("?"),
        report.machine.load_after.as_deref().unwrap_or("?"),
        if report.quick {
            "; --quick: 12,800 samples, times scaled to 50,000"
        } else {
            ""
        }
    );
    s.push_str(
        "| data | method | optimizer | width | depth | threads | s / epoch (50k) | GFLOP/s | steady s / epoch | steady GFLOP/s |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &report.epochs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.1} | {:.3} | {:.1} |",
            r.task,
            r.method,
            r.optimizer,
            r.width,
            r.depth,
            r.threads,
            r.epoch_seconds,
            r.gflops,
            r.steady_epoch_seconds,
            r.steady_gflops
        );
    }
    if !report.scaling.is_empty() {
        s.push_str(
            "\nThread scaling, 1 thread and the larger pool alternated (best of each):\n\n\
             | data | method | optimizer | width | depth | threads | s / epoch at 1 thread | s / epoch | speedup |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &report.scaling {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.2}× |",
                r.task,
                r.method,
                r.optimizer,
                r.width,
                r.depth,
                r.threads,
                r.one_thread_epoch_seconds,
                r.epoch_seconds,
                r.speedup
            );
        }
    }
    if let Some(f) = &report.fig4 {
        let _ = writeln!(
            s,
            "\nseed 000 Fig. 4 MLP matrix ({} runs × {} epochs, SGD, 1 thread per run): {:.0} core-seconds = {:.1} min on 2 cores",
            f.runs, f.epochs, f.core_seconds, f.minutes_on_two_cores
        );
        for (task, method, width, seconds) in &f.per_method_width {
            let _ = writeln!(
                s,
                "  {task:>13} {method:>5} width {width:>3}, depths 1–10: {seconds:.0} s"
            );
        }
        let _ = writeln!(
            s,
            "the same with each FF (method, width) as one depth sweep (as `cargo xtask reproduce` runs it): {:.0} core-seconds = {:.1} min on 2 cores",
            f.core_seconds_with_sweeps, f.minutes_on_two_cores_with_sweeps
        );
        for (task, method, width, seconds) in f
            .per_method_width_with_sweeps
            .iter()
            .filter(|(_, m, _, _)| m.starts_with("ff"))
        {
            let _ = writeln!(
                s,
                "  {task:>13} {method:>5} width {width:>3}, depths 1–10 as one sweep: {seconds:.0} s"
            );
        }
    }
    if !report.sweeps.is_empty() {
        s.push_str("\n| data | FF depth sweep (1 thread, SGD) | width | depths | s (1 epoch per layer, 50k) | steady s / epoch |\n|---|---|---|---|---|---|\n");
        for r in &report.sweeps {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}–{} | {:.3} | {:.3} |",
                r.task,
                r.method,
                r.width,
                r.depths.first().copied().unwrap_or(0),
                r.depths.last().copied().unwrap_or(0),
                r.sweep_seconds,
                r.steady_sweep_seconds
            );
        }
    }
    let _ = writeln!(
        s,
        "\nproducts through `insitu_linalg::matmul`, 1 thread, fastest of repeated calls; FMA peak measured just before: {} GFLOP/s\n\n| product | (m, k, n) | µs | GFLOP/s | of peak |\n|---|---|---|---|---|",
        report
            .products
            .fma_peak_gflops
            .map_or_else(|| "?".to_string(), |g| format!("{g:.0}"))
    );
    for p in &report.products.rows {
        let _ = writeln!(
            s,
            "| {} | ({}, {}, {}) | {:.1} | {:.1} | {} |",
            p.name,
            p.shape.0,
            p.shape.1,
            p.shape.2,
            p.min_seconds * 1e6,
            p.gflops,
            p.fraction_of_peak
                .map_or_else(|| "?".to_string(), |f| format!("{:.0} %", f * 100.0))
        );
    }
    render_products_in_epochs(&mut s, &report.products_in_epochs, report.machine.fma_peak_gflops);
    s.push_str("\n| kernel | median | fastest | repeats |\n|---|---|---|---|\n");
    for k in &report.kernels {
        let _ = writeln!(
            s,
            "| {} | {:.2} ms | {:.2} ms | {} |",
            k.name,
            k.median_seconds * 1e3,
            k.min_seconds * 1e3,
            k.repeats
        );
    }
    match &report.allocations {
        Some(a) => {
            let _ = writeln!(
                s,
                "\nallocations per FF+DD step after warm-up ({}, {} samples, {} epochs per layer): {} in {} steps = {:.2}",
                a.network, a.samples, a.epochs, a.allocations_in_steps, a.steps, a.per_step
            );
            let _ = writeln!(
                s,
                "allocations per call: dense_forward (100×784)·(784×256) {}, losses_along (± pair) {}",
                a.dense_forward_per_call, a.losses_along_per_call
            );
            for m in &a.other_methods {
                let _ = writeln!(
                    s,
                    "allocations per {} ({}) step after warm-up: {} in {} steps = {:.2}",
                    m.method,
                    m.optimizer,
                    m.allocations_in_steps,
                    m.steps,
                    m.allocations_in_steps as f64 / m.steps.max(1) as f64
                );
            }
        }
        None => s.push_str("\nallocations: not measured (the counting allocator is not installed)\n"),
    }
    s
}

/// The metered epochs: one summary row each, then the product kinds of the width-100 depth-3
/// epochs.
fn render_products_in_epochs(s: &mut String, rows: &[ProductsInEpoch], peak: Option<f64>) {
    if rows.is_empty() {
        return;
    }
    let percent = |f: Option<f64>| f.map_or_else(|| "?".to_string(), |f| format!("{:.0} %", f * 100.0));
    let _ = writeln!(
        s,
        "\nproducts inside 1-thread epochs (every product timed, `insitu_linalg::meter_products`; FMA peak {} GFLOP/s):\n",
        peak.map_or_else(|| "?".to_string(), |g| format!("{g:.0}"))
    );
    s.push_str(
        "| data | method | optimizer | width | depth | s / epoch (50k) | products: share of the epoch | dense products GFLOP/s | of peak | sparse products s / epoch |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let scale = FULL_EPOCH_SAMPLES as f64 / r.samples as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.3} | {:.0} % | {:.1} | {} | {:.3} |",
            r.task,
            r.method,
            r.optimizer,
            r.width,
            r.depth,
            r.epoch_seconds(),
            100.0 * r.product_share(),
            r.dense_gflops(),
            percent(r.dense_fraction_of_peak),
            r.sparse_seconds * scale
        );
    }
    s.push_str(
        "\n| data | method | width | depth | product (m, k, n) | layouts C=A·B | calls | share of product time | µs / call | GFLOP/s | of peak |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.depth == 3) {
        for p in &r.products {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | ({}, {}, {}) | {} | {} | {:.0} % | {:.2} | {:.1} | {} |",
                r.task,
                r.method,
                r.width,
                r.depth,
                p.shape.0,
                p.shape.1,
                p.shape.2,
                p.layouts,
                p.calls,
                100.0 * p.seconds / r.product_seconds,
                p.seconds / p.calls as f64 * 1e6,
                p.gflops,
                percent(p.fraction_of_peak)
            );
        }
    }
}

fn write_json(path: &Path, report: &BenchReport) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `cargo xtask bench`: run, print the tables, write JSON if asked.
pub fn main(args: BenchArgs) -> ExitCode {
    let report = match run_bench(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        if let Err(e) = write_json(path, &report) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Fig. 4 estimate against a hand count: steady time `0.1·(d + 1)` s (linear in the
    /// layer count, so the two-point line is exact) and a one-time 0.5 s for FF runs.
    #[test]
    fn fig4_estimate_matches_a_hand_count() {
        let mut rows = Vec::new();
        for (task, scale) in [("mnist", 1.0), ("fashion-mnist", 2.0)] {
            for width in [10, 50, 100] {
                for method in ALL_METHODS {
                    for depth in [3, 10] {
                        let steady = scale * 0.1 * (depth as f64 + 1.0);
                        let once = if method.is_local() { scale * 0.5 } else { 0.0 };
                        rows.push(EpochRow {
                            task: task.into(),
                            method: method.name().into(),
                            width,
                            depth,
                            optimizer: "sgd".into(),
                            threads: 1,
                            samples: 50_000,
                            train_seconds: steady + once,
                            epoch_seconds: steady + once,
                            flops: 1.0,
                            gflops: 1.0,
                            steady_epoch_seconds: steady,
                            steady_gflops: 1.0,
                        });
                    }
                }
            }
        }
        // Sweeps: 2 s per epoch per layer steady, 0.7 s once (Fashion-MNIST: twice that).
        let mut sweeps: Vec<SweepRow> = [("mnist", 1.0), ("fashion-mnist", 2.0)]
            .into_iter()
            .flat_map(|(task, scale)| {
                [10, 50, 100].into_iter().flat_map(move |width| {
                    ["ff-dd", "ff-ad"].map(|m| SweepRow {
                        task: task.into(),
                        method: m.into(),
                        width,
                        depths: (1..=10).collect(),
                        samples: 50_000,
                        sweep_seconds: scale * 2.7,
                        steady_sweep_seconds: scale * 2.0,
                    })
                })
            })
            .collect();
        let f = fig4_estimate(&rows, &sweeps).expect("all rows present");
        // Σ_{d=1..10} 100·0.1·(d+1) = 10·65 = 650 s per (method, width); FF adds 10·0.5 s.
        // Fashion-MNIST's rows cost twice MNIST's: 3 × MNIST in all.
        let per_data_set = 3.0 * (4.0 * 650.0 + 2.0 * 5.0);
        assert!((f.core_seconds - 3.0 * per_data_set).abs() < 1e-9, "{}", f.core_seconds);
        assert!((f.minutes_on_two_cores - f.core_seconds / 120.0).abs() < 1e-12);
        // With sweeps, each FF (method, width) is 100·2 + 0.7 s; BP as before.
        let with_sweeps = 3.0 * (2.0 * 650.0 + 2.0 * 200.7);
        assert!(
            (f.core_seconds_with_sweeps - 3.0 * with_sweeps).abs() < 1e-9,
            "{}",
            f.core_seconds_with_sweeps
        );
        assert!((f.minutes_on_two_cores_with_sweeps - f.core_seconds_with_sweeps / 120.0).abs() < 1e-12);
        // Adam rows do not count, and a missing row or sweep gives no estimate.
        sweeps.pop();
        assert!(fig4_estimate(&rows, &sweeps).is_none());
        rows.retain(|r| !(r.method == "bp-ad" && r.width == 50 && r.depth == 10));
        assert!(fig4_estimate(&rows, &sweeps).is_none());
        // Fashion-MNIST's rows are required, not copied from MNIST's.
        let mnist_only: Vec<EpochRow> = rows.iter().filter(|r| r.task == "mnist").cloned().collect();
        assert!(fig4_estimate(&mnist_only, &sweeps).is_none());
    }

    /// The FLOP formulas against a direct count of the products for a 2-layer network.
    #[test]
    fn epoch_flops_match_a_hand_count() {
        let w = [784usize, 100, 10];
        let n = 1000usize;
        let (p1, p2) = (100.0 * 784.0, 10.0 * 100.0);
        let n_f = n as f64;
        // FF+DD: layer 1: 2 products (W·x, V·x) + 2 projections + cache; layer 2: 2 products + 2 projections.
        let ffdd =
            n_f * (2.0 * 2.0 * p1 + 2.0 * 2.0 * 100.0 * 10.0 + 2.0 * p1 + 2.0 * 2.0 * p2 + 2.0 * 2.0 * 10.0 * 10.0);
        assert_eq!(epoch_flops(Method::FfDd, &w, n, true), ffdd);
        assert_eq!(epoch_flops(Method::FfDd, &w, n, false), ffdd - n_f * 2.0 * p1);
        // BP+AD: layer 1 forward + dW, layer 2 forward + dW + dX.
        assert_eq!(
            epoch_flops(Method::BpAd, &w, n, true),
            n_f * (2.0 * 2.0 * p1 + 3.0 * 2.0 * p2)
        );
        // BP+DD: two forward passes.
        assert_eq!(epoch_flops(Method::BpDd, &w, n, true), n_f * 2.0 * 2.0 * (p1 + p2));
    }

    #[test]
    fn cpu_model_names_the_first_processor() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model_from(cpuinfo).as_deref(),
            Some("AMD EPYC (family 26, model 2)")
        );
        assert_eq!(cpu_model_from("model name : X\n").as_deref(), Some("X"));
        assert_eq!(cpu_model_from("processor : 0\n"), None);
    }

    /// The scaling row alternates real runs: both times positive, scaled to 50,000 samples
    /// from the samples used, and the speedup their ratio.
    #[test]
    fn scaling_times_both_pools_and_divides() {
        let data = insitu_data::load_task(Task::SyntheticF1, Path::new("unused"), 0).unwrap();
        let row = bench_scaling("synthetic-f1", &data, Method::FfDd, Optimizer::Sgd, 10, 2, 2, 512, 2).unwrap();
        assert_eq!((row.method.as_str(), row.optimizer.as_str()), ("ff-dd", "sgd"));
        assert_eq!((row.width, row.depth, row.threads, row.samples), (10, 2, 2, 512));
        assert!(row.one_thread_epoch_seconds > 0.0 && row.epoch_seconds > 0.0, "{row:?}");
        assert!(
            (row.speedup - row.one_thread_epoch_seconds / row.epoch_seconds).abs() < 1e-12,
            "{row:?}"
        );
    }

    #[test]
    fn render_mentions_every_row() {
        let report = BenchReport {
            machine: Machine {
                cpu: Some("AMD EPYC (family 26, model 2)".into()),
                logical_cpus: 2,
                load_before: Some("1.0 1.0 1.0".into()),
                load_after: None,
                fma_peak_gflops: Some(240.0),
            },
            quick: false,
            epochs: vec![EpochRow {
                task: "mnist".into(),
                method: "ff-dd".into(),
                width: 100,
                depth: 3,
                optimizer: "sgd".into(),
                threads: 1,
                samples: 50_000,
                train_seconds: 0.5,
                epoch_seconds: 0.5,
                flops: 1e9,
                gflops: 2.0,
                steady_epoch_seconds: 0.4,
                steady_gflops: 2.2,
            }],
            scaling: vec![ScalingRow {
                task: "mnist".into(),
                method: "ff-dd".into(),
                optimizer: "sgd".into(),
                width: 100,
                depth: 10,
                threads: 2,
                samples: 50_000,
                one_thread_epoch_seconds: 0.28,
                epoch_seconds: 0.165,
                speedup: 0.28 / 0.165,
            }],
            sweeps: vec![SweepRow {
                task: "mnist".into(),
                method: "ff-dd".into(),
                width: 100,
                depths: (1..=10).collect(),
                samples: 50_000,
                sweep_seconds: 0.9,
                steady_sweep_seconds: 0.6,
            }],
            fig4: Some(Fig4Estimate {
                runs: 240,
                epochs: 100,
                per_method_width: vec![("mnist".into(), "ff-dd".into(), 100, 350.0)],
                core_seconds: 3600.0,
                minutes_on_two_cores: 30.0,
                per_method_width_with_sweeps: vec![
                    ("mnist".into(), "ff-dd".into(), 100, 60.0),
                    ("mnist".into(), "bp-dd".into(), 100, 300.0),
                ],
                core_seconds_with_sweeps: 1800.0,
                minutes_on_two_cores_with_sweeps: 15.0,
            }),
            products: Products {
                fma_peak_gflops: Some(200.0),
                rows: vec![ProductRow {
                    name: "forward W·X, layer 100→100".into(),
                    shape: (100, 100, 256),
                    min_seconds: 32e-6,
                    gflops: 160.0,
                    fraction_of_peak: Some(0.8),
                }],
            },
            products_in_epochs: vec![ProductsInEpoch {
                task: "mnist".into(),
                method: "bp-ad".into(),
                optimizer: "adam".into(),
                width: 100,
                depth: 3,
                samples: 12_800,
                train_seconds: 0.05,
                product_seconds: 0.04,
                dense_seconds: 0.04,
                dense_flops: 6.4e9,
                dense_fraction_of_peak: Some(0.8),
                sparse_seconds: 0.0,
                sparse_flops: 0.0,
                products: vec![MeteredProduct {
                    shape: (100, 256, 784),
                    layouts: "c=c·r".into(),
                    calls: 50,
                    seconds: 0.01,
                    flops: 1.6e9,
                    gflops: 160.0,
                    fraction_of_peak: Some(0.8),
                }],
            }],
            kernels: vec![KernelRow {
                name: "mesh".into(),
                median_seconds: 0.1,
                min_seconds: 0.09,
                repeats: 3,
            }],
            allocations: None,
        };
        let s = render(&report);
        assert!(
            s.contains("| forward W·X, layer 100→100 | (100, 100, 256) | 32.0 | 160.0 | 80 % |"),
            "{s}"
        );
        assert!(s.contains("| mnist | ff-dd | sgd | 100 | 3 | 1 | 0.500 | 2.0 |"), "{s}");
        assert!(
            s.contains("| mnist | ff-dd | sgd | 100 | 10 | 2 | 0.280 | 0.165 | 1.70× |"),
            "{s}"
        );
        assert!(s.contains("3600 core-seconds = 30.0 min on 2 cores"), "{s}");
        assert!(s.contains("mnist ff-dd width 100, depths 1–10: 350 s"), "{s}");
        assert!(s.contains("1800 core-seconds = 15.0 min on 2 cores"), "{s}");
        assert!(
            s.contains("mnist ff-dd width 100, depths 1–10 as one sweep: 60 s"),
            "{s}"
        );
        assert!(!s.contains("bp-dd width 100, depths 1–10 as one sweep"), "{s}");
        assert!(s.contains("| mnist | ff-dd | 100 | 1–10 | 0.900 | 0.600 |"), "{s}");
        assert!(s.contains("| mesh | 100.00 ms | 90.00 ms | 3 |"), "{s}");
        // 0.05 s for 12,800 samples is 0.195 s for 50,000; products 80 % of it, at 160 GFLOP/s.
        assert!(
            s.contains("| mnist | bp-ad | adam | 100 | 3 | 0.195 | 80 % | 160.0 | 80 % | 0.000 |"),
            "{s}"
        );
        assert!(
            s.contains("| mnist | bp-ad | 100 | 3 | (100, 256, 784) | c=c·r | 50 | 25 % | 200.00 | 160.0 | 80 % |"),
            "{s}"
        );
        assert!(s.contains("not measured"), "{s}");
    }
}
