//! Reading the data sets from a datasets directory (layout and checksums: `datasets/README.md`),
//! verifying each file against `SHA256SUMS`, and the task table.

use std::path::{Path, PathBuf};

use crate::idx::{parse_idx_images_gz, parse_idx_labels_gz, IdxImages};
use crate::iris::{parse_iris_csv, parse_iris_data, UciErrata, IRIS_SAMPLES};
use crate::synthetic::{generate_synthetic, SyntheticFunction, SyntheticSpec};
use crate::verify::{Manifest, Sha256Digest, MANIFEST_FILE};
use crate::{iris_split, DataError, Dataset, Mat, Targets, TrainTest};
use insitu_linalg::huge_page_vec;

/// Number of training images the papers use (seed 000, Supplementary Table 1; SPEC A7): the
/// first 50,000 of the official 60,000.
pub const PAPER_TRAIN_IMAGES: usize = 50_000;
/// Number of Iris training samples in seed 002's PIC experiment (the other 30 are the test set).
pub const IRIS_TRAIN: usize = 120;
/// Number of classes of MNIST and Fashion-MNIST.
pub const IMAGE_CLASSES: usize = 10;

/// The benchmark tasks of the two papers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// MNIST digits, 10 classes.
    Mnist,
    /// Fashion-MNIST, 10 classes.
    FashionMnist,
    /// MNIST with the digit as a scalar target `digit / 4.5 − 1 ∈ [-1, 1]`.
    MnistRegression,
    /// `sin x1 + cos x2` (seed 000 eq. 15).
    SyntheticF1,
    /// `e^{x1} sin x2 + x3 cos x4 − x5 x1` (seed 000 eq. 15).
    SyntheticF2,
    /// Fisher's Iris, 3 classes.
    Iris,
}

const ALL_TASKS: [Task; 6] = [
    Task::Mnist,
    Task::FashionMnist,
    Task::MnistRegression,
    Task::SyntheticF1,
    Task::SyntheticF2,
    Task::Iris,
];

impl Task {
    /// The task's name on command lines and in result files.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Mnist => "mnist",
            Task::FashionMnist => "fashion-mnist",
            Task::MnistRegression => "mnist-regression",
            Task::SyntheticF1 => "synthetic-f1",
            Task::SyntheticF2 => "synthetic-f2",
            Task::Iris => "iris",
        }
    }

    /// The task called `s` (ASCII case-insensitive, `_` accepted for `-`). The error lists
    /// the valid names.
    pub fn from_name(s: &str) -> Result<Task, DataError> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        ALL_TASKS
            .iter()
            .copied()
            .find(|t| t.name() == norm)
            .ok_or_else(|| DataError::UnknownTask {
                name: s.to_string(),
                valid: ALL_TASKS.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
            })
    }

    /// Whether the targets are class labels (otherwise real values).
    pub fn is_classification(&self) -> bool {
        matches!(self, Task::Mnist | Task::FashionMnist | Task::Iris)
    }

    /// The image collection a classification task reads (`None` for the other tasks).
    pub fn image_set(&self) -> Option<ImageSet> {
        match self {
            Task::Mnist => Some(ImageSet::Mnist),
            Task::FashionMnist => Some(ImageSet::FashionMnist),
            _ => None,
        }
    }

    /// Every task.
    pub fn all() -> &'static [Task] {
        &ALL_TASKS
    }

    /// The files (relative to the datasets directory) this task reads; empty for synthetic sets.
    pub fn files(&self) -> &'static [&'static str] {
        match self {
            Task::Mnist | Task::MnistRegression => &MNIST_FILES,
            Task::FashionMnist => &FASHION_FILES,
            Task::Iris => &["iris/iris.data"],
            Task::SyntheticF1 | Task::SyntheticF2 => &[],
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Task, DataError> {
        Task::from_name(s)
    }
}

/// The two IDX image collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageSet {
    /// `mnist/`.
    Mnist,
    /// `fashion-mnist/`.
    FashionMnist,
}

const MNIST_FILES: [&str; 4] = [
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
];
const FASHION_FILES: [&str; 4] = [
    "fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist/train-labels-idx1-ubyte.gz",
    "fashion-mnist/t10k-images-idx3-ubyte.gz",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz",
];

impl ImageSet {
    /// Train images, train labels, test images, test labels (relative paths).
    pub const fn files(self) -> [&'static str; 4] {
        match self {
            ImageSet::Mnist => MNIST_FILES,
            ImageSet::FashionMnist => FASHION_FILES,
        }
    }
}

/// Where the datasets live: `$INSITU_DATASETS` if set (and non-empty); else the nearest
/// ancestor of the current directory that contains `datasets/SHA256SUMS` (its `datasets/`);
/// else `<workspace>/datasets`, located from this crate's `CARGO_MANIFEST_DIR` at compile time.
pub fn default_datasets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("INSITU_DATASETS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join("datasets");
            if candidate.join(MANIFEST_FILE).is_file() {
                return candidate;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("datasets")
}

/// Reads `<dir>/<rel>` and, when `manifest` is given, checks its SHA-256 against the manifest's
/// entry for `rel` (the hash is computed on the bytes just read, so the file is read once).
///
/// Errors: [`DataError::Missing`] if the file does not exist, [`DataError::NotInManifest`] if a
/// manifest is given but does not list it, [`DataError::ChecksumMismatch`] (naming `rel` and both
/// digests) if it differs.
pub fn read_verified(dir: &Path, rel: &str, manifest: Option<&Manifest>) -> Result<Vec<u8>, DataError> {
    let path = dir.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::Missing {
                file: rel.to_string(),
                dir: dir.to_path_buf(),
            })
        }
        Err(source) => return Err(DataError::Io { path, source }),
    };
    if let Some(m) = manifest {
        let expected = m.get(rel).ok_or_else(|| DataError::NotInManifest {
            file: rel.to_string(),
            manifest: dir.join(MANIFEST_FILE),
        })?;
        let found = Sha256Digest::of_bytes(&bytes);
        if &found != expected {
            return Err(DataError::ChecksumMismatch {
                file: rel.to_string(),
                expected: expected.to_hex(),
                found: found.to_hex(),
            });
        }
    }
    Ok(bytes)
}

/// Pixel value `p / 255` for every byte value, so the conversion is a table look-up.
fn pixel_table() -> [f32; 256] {
    std::array::from_fn(|p| p as f32 / 255.0)
}

/// Converts the first `n` images to a `pixels × n` matrix of values in `[0, 1]` (`u8 / 255`).
/// Each column is one image in row-major pixel order (`index = row · cols + col`).
pub fn images_to_matrix(images: &IdxImages, n: usize) -> Mat {
    let n = n.min(images.count);
    let p = images.pixels_per_image();
    let table = pixel_table();
    // Huge pages: training gathers random columns of this matrix (see insitu_linalg::huge_page_vec).
    let mut values = huge_page_vec(n * p);
    values.extend(images.pixels[..n * p].iter().map(|&b| table[b as usize]));
    Mat::from_vec(p, n, values)
}

/// Reads, verifies and parses one images/labels pair; returns up to `max` samples.
fn load_idx_pair(
    dir: &Path,
    images_rel: &str,
    labels_rel: &str,
    manifest: Option<&Manifest>,
    max: usize,
) -> Result<(Mat, Vec<u32>), DataError> {
    let (images, labels) = std::thread::scope(|s| {
        // The large images file decodes on its own thread while the labels decode here.
        let images = s.spawn(|| {
            let bytes = read_verified(dir, images_rel, manifest)?;
            parse_idx_images_gz(&bytes, images_rel)
        });
        let labels =
            read_verified(dir, labels_rel, manifest).and_then(|b| parse_idx_labels_gz(&b, labels_rel, IMAGE_CLASSES));
        (images.join().expect("IDX decoding thread panicked"), labels)
    });
    let (images, mut labels) = (images?, labels?);
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images: images_rel.to_string(),
            n_images: images.count,
            labels: labels_rel.to_string(),
            n_labels: labels.len(),
        });
    }
    let x = images_to_matrix(&images, max);
    labels.truncate(x.ncols());
    Ok((x, labels))
}

/// Loads an image collection: the first `n_train` official training images (all 60,000 if
/// `None`) and the official 10,000 test images, pixels in `[0, 1]`, 784 × n, 10 classes.
/// Each file's SHA-256 is checked against `<dir>/SHA256SUMS` when that manifest exists.
pub fn load_image_set(set: ImageSet, dir: &Path, n_train: Option<usize>) -> Result<TrainTest, DataError> {
    load_image_set_first(set, dir, n_train, None)
}

/// [`load_image_set`] keeping only the first `n_test` test images as well (all if `None`),
/// decoding only the images kept. Seed 000's photonic runs train on all 60,000 images
/// (SPEC A9): `load_image_set_first(set, dir, None, None)`.
pub fn load_image_set_first(
    set: ImageSet,
    dir: &Path,
    n_train: Option<usize>,
    n_test: Option<usize>,
) -> Result<TrainTest, DataError> {
    let manifest = Manifest::load_from_dir(dir)?;
    let [tr_x, tr_y, te_x, te_y] = set.files();
    let (train_x, train_y) = load_idx_pair(dir, tr_x, tr_y, manifest.as_ref(), n_train.unwrap_or(usize::MAX))?;
    let (test_x, test_y) = load_idx_pair(dir, te_x, te_y, manifest.as_ref(), n_test.unwrap_or(usize::MAX))?;
    let classes = |labels| Targets::Classes {
        labels,
        num_classes: IMAGE_CLASSES,
    };
    Ok(TrainTest {
        train: Dataset {
            inputs: train_x,
            targets: classes(train_y),
        },
        test: Dataset {
            inputs: test_x,
            targets: classes(test_y),
        },
    })
}

/// Replaces digit labels by the regression target `digit / 4.5 − 1` (0 → −1, 9 → +1), `1 × n`.
pub fn digits_to_regression(ds: Dataset) -> Dataset {
    let targets = match ds.targets {
        Targets::Classes { labels, .. } => Targets::Values(Mat::from_iterator(
            1,
            labels.len(),
            labels.iter().map(|&d| d as f32 / 4.5 - 1.0),
        )),
        values => values,
    };
    Dataset {
        inputs: ds.inputs,
        targets,
    }
}

/// Which Iris file to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrisFile {
    /// UCI's `iris/iris.data`, with [`crate::iris::UCI_ERRATA`] corrected.
    UciData,
    /// scikit-learn's `iris/iris.csv`.
    SklearnCsv,
}

/// Loads all 150 Iris samples (4 × 150, labels 0 setosa, 1 versicolor, 2 virginica, Fisher's
/// values either way), verifying the file against the manifest when there is one.
pub fn load_iris(dir: &Path, file: IrisFile) -> Result<Dataset, DataError> {
    let manifest = Manifest::load_from_dir(dir)?;
    let rel = match file {
        IrisFile::UciData => "iris/iris.data",
        IrisFile::SklearnCsv => "iris/iris.csv",
    };
    let bytes = read_verified(dir, rel, manifest.as_ref())?;
    let ds = match file {
        IrisFile::UciData => parse_iris_data(&bytes, rel, UciErrata::Correct)?,
        IrisFile::SklearnCsv => parse_iris_csv(&bytes, rel)?,
    };
    if ds.len() != IRIS_SAMPLES {
        return Err(DataError::SampleCount {
            file: rel.to_string(),
            expected: IRIS_SAMPLES,
            found: ds.len(),
        });
    }
    Ok(ds)
}

/// Loads a task's train/test split from `datasets_dir`.
///
/// - Image tasks (SPEC A7): the first 50,000 official training images as train, the official
///   10,000 test images as test; pixels `u8 / 255`. `seed` is not used.
/// - `mnist-regression`: the same images with target `digit / 4.5 − 1`.
/// - Synthetic tasks: generated from `seed` ([`generate_synthetic`] with
///   [`SyntheticSpec::PAPER`]); nothing is read from disk.
/// - `iris`: UCI's file (errata corrected), split 120 / 30, stratified, by `seed`
///   ([`iris_split`]).
///
/// So `seed` matters for the synthetic sets and the Iris split only.
pub fn load_task(task: Task, datasets_dir: &Path, seed: u64) -> Result<TrainTest, DataError> {
    load_task_first(task, datasets_dir, seed, None, None)
}

/// [`load_task`], then only the first `train_limit` training and `test_limit` test samples
/// (all if `None`): the same data as taking them from [`load_task`]'s result, but the image
/// tasks decode the files and convert only the images kept. Converting all 60,000 MNIST images
/// costs ≈ 0.45 s of page zeroing per process on this VM (docs/performance.md), most of a short
/// `insitu train --train-limit 1000` run. The synthetic sets and the Iris split are built whole
/// first (their samples depend on the full set's seeded draws), then cut.
pub fn load_task_first(
    task: Task,
    datasets_dir: &Path,
    seed: u64,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<TrainTest, DataError> {
    let images = |set| {
        let n_train = train_limit.map_or(PAPER_TRAIN_IMAGES, |n| n.min(PAPER_TRAIN_IMAGES));
        load_image_set_first(set, datasets_dir, Some(n_train), test_limit)
    };
    let cut = |tt: TrainTest| TrainTest {
        train: tt.train.take_first(train_limit.unwrap_or(usize::MAX)),
        test: tt.test.take_first(test_limit.unwrap_or(usize::MAX)),
    };
    match task {
        Task::Mnist => images(ImageSet::Mnist),
        Task::FashionMnist => images(ImageSet::FashionMnist),
        Task::MnistRegression => {
            let tt = images(ImageSet::Mnist)?;
            Ok(TrainTest {
                train: digits_to_regression(tt.train),
                test: digits_to_regression(tt.test),
            })
        }
        Task::SyntheticF1 => Ok(cut(generate_synthetic(
            SyntheticFunction::F1,
            &SyntheticSpec::PAPER,
            seed,
        )?
        .split)),
        Task::SyntheticF2 => Ok(cut(generate_synthetic(
            SyntheticFunction::F2,
            &SyntheticSpec::PAPER,
            seed,
        )?
        .split)),
        Task::Iris => Ok(cut(iris_split(
            load_iris(datasets_dir, IrisFile::UciData)?,
            IRIS_TRAIN,
            seed,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip() {
        for &t in Task::all() {
            assert_eq!(Task::from_name(t.name()).unwrap(), t);
            assert_eq!(t.to_string().parse::<Task>().unwrap(), t);
        }
        assert_eq!(Task::from_name("Fashion_MNIST").unwrap(), Task::FashionMnist);
        let e = Task::from_name("cifar").unwrap_err().to_string();
        assert!(
            e.contains("cifar") && e.contains("mnist, fashion-mnist, mnist-regression"),
            "{e}"
        );
        assert_eq!(Task::all().iter().filter(|t| t.is_classification()).count(), 3);
    }

    #[test]
    fn regression_targets_span_minus_one_to_one() {
        let ds = Dataset {
            inputs: Mat::zeros(1, 10),
            targets: Targets::Classes {
                labels: (0..10).collect(),
                num_classes: 10,
            },
        };
        let r = digits_to_regression(ds);
        let v = r.values().unwrap();
        for d in 0..10 {
            assert!((v[(0, d)] - (d as f32 / 4.5 - 1.0)).abs() < 1e-7);
        }
        assert_eq!((v[(0, 0)], v[(0, 9)]), (-1.0, 1.0));
    }

    #[test]
    fn pixels_are_bytes_over_255() {
        let img = IdxImages {
            count: 2,
            rows: 1,
            cols: 3,
            pixels: vec![0, 128, 255, 1, 2, 3],
        };
        let m = images_to_matrix(&img, 5);
        assert_eq!(m.shape(), (3, 2));
        assert_eq!(m[(1, 0)], 128.0 / 255.0);
        assert_eq!(m[(2, 0)], 1.0);
        assert_eq!(m[(0, 1)], 1.0 / 255.0);
        assert_eq!(images_to_matrix(&img, 1).shape(), (3, 1));
    }
}
