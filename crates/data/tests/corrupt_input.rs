//! Property tests: every parser, fed corrupted, truncated or arbitrary bytes, returns `Err`
//! (or, for harmless changes, `Ok`) and never panics; truncating a valid file is always an
//! error; valid random files round-trip.

use std::io::Write;

use insitu_data::idx::{
    encode_idx_images, encode_idx_labels, gunzip, parse_idx_images, parse_idx_images_gz, parse_idx_labels,
    parse_idx_labels_gz, IdxImages,
};
use insitu_data::iris::{parse_iris_csv, parse_iris_data, UciErrata};
use insitu_data::{DataError, Manifest};
use proptest::prelude::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

const IRIS_DATA: &str = "5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.1,1.5,0.1,Iris-setosa\n7.0,3.2,4.7,1.4,Iris-versicolor\n6.3,3.3,6.0,2.5,Iris-virginica\n\n";
const IRIS_CSV: &str =
    "4,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n4.9,3.1,1.5,0.1,0\n7.0,3.2,4.7,1.4,1\n6.3,3.3,6.0,2.5,2\n";
const SUMS: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a/b.gz\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  c\n";

/// Every parser on the same bytes; none may panic.
fn run_all(bytes: &[u8]) {
    let _ = parse_idx_images(bytes, "f");
    let _ = parse_idx_labels(bytes, "f", 10);
    let _ = parse_idx_images_gz(bytes, "f");
    let _ = parse_idx_labels_gz(bytes, "f", 10);
    let _ = gunzip(bytes, "f");
    let _ = parse_iris_data(bytes, "f", UciErrata::Correct);
    let _ = parse_iris_csv(bytes, "f");
    let _ = Manifest::parse(bytes, "f");
}

fn images_strategy() -> impl Strategy<Value = IdxImages> {
    (0usize..5, 1usize..6, 1usize..6).prop_flat_map(|(count, rows, cols)| {
        proptest::collection::vec(any::<u8>(), count * rows * cols).prop_map(move |pixels| IdxImages {
            count,
            rows,
            cols,
            pixels,
        })
    })
}

/// Applies `(position, xor mask)` edits to a copy of `bytes`.
fn mutate(bytes: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if !b.is_empty() {
        for &(pos, mask) in edits {
            let n = b.len();
            b[pos % n] ^= mask;
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        run_all(&bytes);
        // With a valid-looking IDX prefix the parsers go further into the data.
        let mut idx = vec![0, 0, 8, 3];
        idx.extend_from_slice(&bytes);
        run_all(&idx);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&bytes);
        run_all(&lab);
    }

    #[test]
    fn valid_idx_round_trips(images in images_strategy(), labels in proptest::collection::vec(0u8..10, 0..20)) {
        let raw = encode_idx_images(&images);
        prop_assert_eq!(&parse_idx_images(&raw, "f").unwrap(), &images);
        prop_assert_eq!(&parse_idx_images_gz(&gzip(&raw), "f").unwrap(), &images);
        let raw = encode_idx_labels(&labels);
        let expected: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        prop_assert_eq!(&parse_idx_labels(&raw, "f", 10).unwrap(), &expected);
        prop_assert_eq!(&parse_idx_labels_gz(&gzip(&raw), "f", 10).unwrap(), &expected);
    }

    #[test]
    fn truncated_idx_is_always_an_error(images in images_strategy(), cut in any::<prop::sample::Index>()) {
        let raw = encode_idx_images(&images);
        let keep = cut.index(raw.len()); // 0..len: strictly shorter
        let e = parse_idx_images(&raw[..keep], "img").unwrap_err();
        let is_truncated = matches!(e, DataError::Truncated { .. });
        prop_assert!(is_truncated, "{}", e);
        let gz = gzip(&raw);
        let keep = cut.index(gz.len());
        let e = parse_idx_images_gz(&gz[..keep], "img.gz").unwrap_err();
        prop_assert!(e.to_string().contains("img.gz"), "{}", e);
    }

    #[test]
    fn extended_idx_is_an_error(images in images_strategy(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut raw = encode_idx_images(&images);
        raw.extend_from_slice(&extra);
        let is_trailing = matches!(parse_idx_images(&raw, "f"), Err(DataError::TrailingBytes { .. }));
        prop_assert!(is_trailing);
    }

    #[test]
    fn corrupted_gzip_never_panics_and_never_yields_wrong_data(
        images in images_strategy(),
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let raw = encode_idx_images(&images);
        let gz = mutate(&gzip(&raw), &edits);
        // Either an error, or (if the edit hit an ignored header field such as mtime) the
        // original data: the CRC-32 trailer catches everything else.
        match parse_idx_images_gz(&gz, "f.gz") {
            Ok(parsed) => prop_assert_eq!(parsed, images),
            Err(e) => prop_assert!(e.to_string().starts_with("f.gz"), "{}", e),
        }
    }

    #[test]
    fn corrupted_text_files_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let base = [IRIS_DATA, IRIS_CSV, SUMS][which].as_bytes();
        let b = mutate(base, &edits);
        let b = &b[..cut.index(b.len() + 1)];
        run_all(b);
        // Errors on text files always name the file.
        if let Err(e) = parse_iris_data(b, "iris.data", UciErrata::Correct) {
            prop_assert!(e.to_string().starts_with("iris.data"), "{}", e);
        }
        if let Err(e) = parse_iris_csv(b, "iris.csv") {
            prop_assert!(e.to_string().starts_with("iris.csv"), "{}", e);
        }
    }
}
