//! # insitu-data — the benchmark data sets, verified, split and batched
//!
//! **What it is for.** Every data set the two papers train on, as [`Dataset`]s whose inputs are
//! `features × n` matrices (one sample per column, so a sample is contiguous):
//!
//! - **MNIST and Fashion-MNIST** from their official gzip IDX files ([`idx`]). The papers'
//!   split (seed 000 Supplementary Table 1, SPEC A7): the **first 50,000** official training
//!   images as train and the official 10,000 test images as test; pixels `u8 / 255 ∈ [0, 1]`.
//!   [`load_image_set`] also gives the full 60,000 (seed 000's photonic runs, SPEC A9) and
//!   [`Dataset::take_first`] / [`Dataset::filter_classes`] give seed 002's subsets
//!   (Fashion-MNIST 30,000 / 5,000; MNIST classes {0, 2, 4, 6, 8}).
//! - **MNIST regression** (seed 000 Supplementary 5.3, SPEC A7): the digit as the scalar target
//!   `digit / 4.5 − 1 ∈ [-1, 1]`.
//! - **The synthetic regression sets** of seed 000 eq. (15), generated exactly as
//!   Supplementary 5.3 prescribes ([`synthetic`]).
//! - **Fisher's Iris** (seed 002, Methods "PIC network": 4 features, 3 classes, 120 / 30), from
//!   UCI's `iris.data` (with the two documented UCI errata corrected) or scikit-learn's
//!   `iris.csv`; both give the same 4 × 150 matrix ([`iris`]).
//!
//! It also owns **checksum verification** ([`verify`]): the `SHA256SUMS` manifest of the
//! datasets directory and [`verify_file`], shared with `cargo xtask datasets`. Every loader
//! checks the SHA-256 of the bytes it reads against the manifest when one is present (about
//! 10 ms for MNIST's 11.6 MB of gzip files, measured; the file is read once, so the check is
//! always on), so a damaged file gives
//! `checksum mismatch for mnist/train-images-idx3-ubyte.gz: expected …, found …`.
//!
//! And the **seeded mini-batch order** ([`epoch_permutation`], [`gather_columns`]) and seeded
//! splits ([`iris_split`]). All randomness comes from [`insitu_linalg::substream`] through
//! domain-separated keys and version-stable draws ([`random`]), so data sets and batch orders
//! depend on the seed only.
//!
//! And the project's **file writing** ([`files`]): [`write_atomically`] (results, reports,
//! stored runs: a reader never sees half a file) and [`CheckpointFile`], the checksummed,
//! atomically replaced state of a long run that resumes after being killed; and NumPy's `.npy`
//! format for `f32` arrays ([`npy`]), in which trained parameters leave the project.
//!
//! **What it must not do.** No printing and no network: fetching is `cargo xtask datasets`.
//! Its only I/O is reading files under a datasets directory and writing the files its callers
//! name ([`files`]). Malformed input is a typed
//! [`DataError`] that names the file and the byte offset (binary) or line (text), never a
//! panic; the parsers take byte slices so this is property-tested on corrupted input.
//!
//! # Example
//!
//! MNIST at the papers' split, from the repository's `datasets/` (or `$INSITU_DATASETS`):
//!
//! ```no_run
//! use insitu_data::{default_datasets_dir, load_task, Task};
//!
//! let mnist = load_task(Task::Mnist, &default_datasets_dir(), 0)?;
//! assert_eq!(mnist.train.inputs.shape(), (784, 50_000));
//! assert_eq!(mnist.test.num_classes(), Some(10));
//! # Ok::<(), insitu_data::DataError>(())
//! ```
//!
//! A generated set, an epoch's seeded mini-batches, and what a missing file gives:
//!
//! ```
//! use insitu_data::{epoch_permutation, gather_columns, load_task, DataError, Mat, Task};
//! use std::path::Path;
//!
//! // Seed 000 eq. 15, f1(x) = sin x1 + cos x2: 10,000 / 2,000 samples, targets scaled to [-1, 1].
//! let data = load_task(Task::SyntheticF1, Path::new("not read"), 0)?;
//! assert_eq!((data.train.features(), data.train.len(), data.test.len()), (2, 10_000, 2_000));
//!
//! let (seed, epoch, batch) = (0, 3, 256);
//! let mut order = Vec::new();
//! epoch_permutation(data.train.len(), seed, epoch, &mut order);
//! let mut x = Mat::zeros(0, 0);
//! for (k, samples) in order.chunks(batch).enumerate() {
//!     gather_columns(&data.train.inputs, samples, &mut x); // reshapes once, then reuses
//!     if k == 0 {
//!         assert_eq!(x.column(0), data.train.inputs.column(order[0]));
//!     }
//! }
//! assert_eq!(x.ncols(), 10_000 % 256); // the last batch is the remainder
//!
//! match load_task(Task::Mnist, Path::new("/no/such/dir"), 0) {
//!     Err(DataError::Missing { file, .. }) => assert_eq!(file, "mnist/train-images-idx3-ubyte.gz"),
//!     other => panic!("expected a missing-file error, got {other:?}"),
//! }
//! # Ok::<(), DataError>(())
//! ```

pub mod dataset;
pub mod error;
pub mod files;
pub mod idx;
pub mod iris;
pub mod load;
pub mod npy;
pub mod random;
pub mod synthetic;
pub mod verify;

pub use insitu_linalg::Mat;

pub use dataset::{
    epoch_permutation, gather_columns, gather_columns_par, gather_labels, iris_split, Dataset, Targets, TrainTest,
};
pub use error::DataError;
pub use files::{temporary_writer_pid, write_atomically, CheckpointFile};
pub use load::{
    default_datasets_dir, digits_to_regression, images_to_matrix, load_image_set, load_image_set_first, load_iris,
    load_task, load_task_first, read_verified, ImageSet, IrisFile, Task, IMAGE_CLASSES, IRIS_TRAIN, PAPER_TRAIN_IMAGES,
};
pub use npy::{decode_npy_f32, encode_npy_f32};
pub use synthetic::{generate_synthetic, SyntheticData, SyntheticFunction, SyntheticSpec};
pub use verify::{
    check_entry, verify_bytes, verify_file, FileStatus, Manifest, ManifestEntry, Sha256Digest, MANIFEST_FILE,
};
