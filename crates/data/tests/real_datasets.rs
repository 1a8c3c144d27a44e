//! Loads the real data sets tracked in the repository's `datasets/` and checks facts published
//! about them (counts, first label, class histograms), the papers' split, the Iris errata, and
//! that damaged or missing files give the documented errors.

use std::path::{Path, PathBuf};

use insitu_data::{
    default_datasets_dir, load_image_set, load_iris, load_task, load_task_first, DataError, ImageSet, IrisFile,
    Manifest, Task,
};

fn datasets() -> PathBuf {
    let dir = default_datasets_dir();
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "datasets not found at {}",
        dir.display()
    );
    dir
}

fn histogram(labels: &[u32]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

#[test]
fn mnist_official_counts_and_papers_split() {
    let dir = datasets();
    let full = load_image_set(ImageSet::Mnist, &dir, None).unwrap();
    assert_eq!(
        (full.train.features(), full.train.len(), full.test.len()),
        (784, 60_000, 10_000)
    );
    assert_eq!(full.train.label(0), Some(5), "the first MNIST training digit is a 5");
    assert_eq!(full.test.label(0), Some(7), "the first MNIST test digit is a 7");
    // LeCun's published test-set class counts.
    assert_eq!(
        histogram(full.test.labels().unwrap()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    for ds in [&full.train, &full.test] {
        let (lo, hi) = (ds.inputs.min(), ds.inputs.max());
        assert_eq!((lo, hi), (0.0, 1.0));
        assert!(
            ds.inputs
                .iter()
                .all(|&p| (p * 255.0 - (p * 255.0).round()).abs() < 1e-4),
            "pixels are u8 / 255"
        );
    }
    // The papers' split is the first 50,000 of the same training set and the same test set.
    let paper = load_task(Task::Mnist, &dir, 0).unwrap();
    assert_eq!(paper.train.len(), 50_000);
    assert_eq!(paper.test, full.test);
    assert_eq!(paper.train, full.train.clone().take_first(50_000));

    let reg = load_task(Task::MnistRegression, &dir, 0).unwrap();
    assert_eq!(reg.train.inputs, paper.train.inputs);
    let v = reg.train.values().unwrap();
    assert_eq!(v.shape(), (1, 50_000));
    for (j, &d) in paper.train.labels().unwrap().iter().enumerate().take(1000) {
        assert!((v[(0, j)] - (d as f32 / 4.5 - 1.0)).abs() < 1e-7);
    }

    let evens = full.test.filter_classes(&[0, 2, 4, 6, 8]).unwrap();
    assert_eq!(evens.len(), 980 + 1032 + 982 + 958 + 974);
    assert_eq!(histogram(evens.labels().unwrap())[..5], [980, 1032, 982, 958, 974]);
}

#[test]
fn fashion_mnist_is_balanced() {
    let tt = load_task(Task::FashionMnist, &datasets(), 0).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (50_000, 10_000));
    assert_eq!(
        histogram(tt.test.labels().unwrap()),
        [1000; 10],
        "Fashion-MNIST's test set has 1000 per class"
    );
    assert_eq!((tt.train.inputs.min(), tt.train.inputs.max()), (0.0, 1.0));
}

#[test]
fn iris_files_agree_after_the_uci_errata() {
    let dir = datasets();
    let uci = load_iris(&dir, IrisFile::UciData).unwrap();
    let sk = load_iris(&dir, IrisFile::SklearnCsv).unwrap();
    assert_eq!((uci.features(), uci.len()), (4, 150));
    assert_eq!(uci, sk, "UCI's iris.data, corrected, equals scikit-learn's iris.csv");
    assert_eq!(insitu_data::Dataset::num_classes(&uci), Some(3));

    // Without the correction they differ in samples 35 and 38 only.
    let bytes = std::fs::read(dir.join("iris/iris.data")).unwrap();
    let raw = insitu_data::iris::parse_iris_data(&bytes, "iris.data", insitu_data::iris::UciErrata::Keep).unwrap();
    let differing: Vec<usize> = (0..150)
        .filter(|&j| raw.inputs.column(j) != sk.inputs.column(j))
        .map(|j| j + 1)
        .collect();
    assert_eq!(differing, [35, 38]);
    // Fisher's published class means of petal length: 1.462, 4.260, 5.552.
    for (c, mean) in [1.462f32, 4.260, 5.552].into_iter().enumerate() {
        let cols: Vec<usize> = (0..150).filter(|&j| sk.label(j) == Some(c as u32)).collect();
        let m = cols.iter().map(|&j| sk.inputs[(2, j)]).sum::<f32>() / cols.len() as f32;
        assert!((m - mean).abs() < 1e-4, "class {c}: {m}");
    }

    let split = load_task(Task::Iris, &dir, 3).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (120, 30));
}

/// A temporary datasets directory holding copies of `files` and the real manifest.
fn copy_of(files: &[&str]) -> tempfile::TempDir {
    let src = datasets();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("SHA256SUMS"), tmp.path().join("SHA256SUMS")).unwrap();
    for f in files {
        let dst = tmp.path().join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), dst).unwrap();
    }
    tmp
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_corrupted_file_gives_a_checksum_mismatch_naming_it() {
    let tmp = copy_of(&["iris/iris.data", "iris/iris.csv"]);
    flip_byte(&tmp.path().join("iris/iris.csv"), 100);
    let e = load_iris(tmp.path(), IrisFile::SklearnCsv).unwrap_err();
    let expected = Manifest::load_from_dir(tmp.path())
        .unwrap()
        .unwrap()
        .get("iris/iris.csv")
        .unwrap()
        .to_hex();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "checksum mismatch for iris/iris.csv: expected {expected}, found "
        )),
        "{msg}"
    );
    assert!(load_iris(tmp.path(), IrisFile::UciData).is_ok());

    // Without a manifest the same damage is caught by the parser (or goes through if harmless).
    std::fs::remove_file(tmp.path().join("SHA256SUMS")).unwrap();
    flip_byte(&tmp.path().join("iris/iris.data"), 2); // "5.1," → "5.q,"
    let e = load_iris(tmp.path(), IrisFile::UciData).unwrap_err();
    assert!(matches!(e, DataError::BadField { line: 1, field: 1, .. }), "{e}");
}

#[test]
fn missing_files_point_to_xtask() {
    let tmp = copy_of(&["mnist/t10k-labels-idx1-ubyte.gz"]);
    let e = load_task(Task::Mnist, tmp.path(), 0).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("cargo xtask datasets"), "{e}");
}

#[test]
fn damaged_gzip_without_manifest_is_a_gzip_error_naming_the_file() {
    let tmp = copy_of(&[
        "mnist/train-labels-idx1-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
        "mnist/train-images-idx3-ubyte.gz",
        "mnist/t10k-images-idx3-ubyte.gz",
    ]);
    std::fs::remove_file(tmp.path().join("SHA256SUMS")).unwrap();
    let p = tmp.path().join("mnist/train-labels-idx1-ubyte.gz");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = load_task(Task::Mnist, tmp.path(), 0).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains("mnist/train-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn image_and_label_count_mismatch_is_reported() {
    use std::io::Write;
    let gz = |raw: Vec<u8>| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        enc.finish().unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("mnist")).unwrap();
    let images = insitu_data::idx::IdxImages {
        count: 3,
        rows: 28,
        cols: 28,
        pixels: vec![7; 3 * 784],
    };
    let files = ImageSet::Mnist.files();
    std::fs::write(
        tmp.path().join(files[0]),
        gz(insitu_data::idx::encode_idx_images(&images)),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join(files[1]),
        gz(insitu_data::idx::encode_idx_labels(&[1, 2])),
    )
    .unwrap();
    let e = load_image_set(ImageSet::Mnist, tmp.path(), None).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 3,
                n_labels: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(files[0]) && e.to_string().contains(files[1]),
        "{e}"
    );
}

#[test]
fn loading_only_the_first_samples_gives_the_first_samples_of_the_whole_set() {
    let dir = datasets();
    for task in [Task::Mnist, Task::MnistRegression, Task::SyntheticF1, Task::Iris] {
        let whole = load_task(task, &dir, 3).unwrap();
        for (train, test) in [
            (Some(1000), Some(300)),
            (None, Some(7)),
            (Some(60_000), None),
            (None, None),
        ] {
            let first = load_task_first(task, &dir, 3, train, test).unwrap();
            let expected_train = whole.train.first(train.unwrap_or(usize::MAX));
            let expected_test = whole.test.first(test.unwrap_or(usize::MAX));
            assert_eq!(first.train, expected_train, "{task:?} train {train:?}");
            assert_eq!(first.test, expected_test, "{task:?} test {test:?}");
        }
    }
}
