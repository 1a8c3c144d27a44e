//! Fisher's Iris data, from either of its two common files:
//!
//! - UCI's `iris.data`: no header, rows `sepal_length,sepal_width,petal_length,petal_width,species`
//!   with species `Iris-setosa`, `Iris-versicolor`, `Iris-virginica`. It has two known wrong rows
//!   (documented in `iris.names` and in `datasets/README.md`): samples 35 and 38 (1-based).
//!   [`parse_iris_data`] corrects them by default ([`UciErrata::Correct`]) so that it gives
//!   Fisher's 1936 values.
//! - scikit-learn's `iris.csv`: a header `150,4,setosa,versicolor,virginica` (rows, features,
//!   class names), then rows of four numbers and a class index. It already follows Fisher.
//!
//! Both give a [`Dataset`] with inputs 4 × 150 (features in the order above, in cm) and
//! labels 0 = setosa, 1 = versicolor, 2 = virginica. Blank lines are skipped; `\r\n` endings
//! are accepted.

use crate::{DataError, Dataset, Mat, Targets};

/// Class names in label order.
pub const IRIS_SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];
/// Number of samples in the Iris data set.
pub const IRIS_SAMPLES: usize = 150;
/// Number of features per sample.
pub const IRIS_FEATURES: usize = 4;

/// One UCI erratum: the 1-based sample number, the row as UCI's `iris.data` has it, and the row
/// as in Fisher (1936), scikit-learn's `iris.csv` and R's `iris`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IrisErratum {
    /// 1-based sample (row) number.
    pub sample: usize,
    /// The four features as UCI's `iris.data` lists them.
    pub uci: [f32; 4],
    /// The four features as Fisher published them.
    pub fisher: [f32; 4],
}

/// The two documented differences between UCI's `iris.data` and Fisher's paper (both setosa).
pub const UCI_ERRATA: [IrisErratum; 2] = [
    IrisErratum {
        sample: 35,
        uci: [4.9, 3.1, 1.5, 0.1],
        fisher: [4.9, 3.1, 1.5, 0.2],
    },
    IrisErratum {
        sample: 38,
        uci: [4.9, 3.1, 1.5, 0.1],
        fisher: [4.9, 3.6, 1.4, 0.1],
    },
];

/// Whether [`parse_iris_data`] applies [`UCI_ERRATA`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UciErrata {
    /// Replace samples 35 and 38 by Fisher's values when they hold UCI's known wrong values
    /// (the default: the result then equals `iris.csv`).
    #[default]
    Correct,
    /// Keep the file's values as they are.
    Keep,
}

/// The lines of a text file with their 1-based numbers, skipping blank lines; errors on non-UTF-8.
fn lines<'a>(bytes: &'a [u8], file: &'a str) -> impl Iterator<Item = Result<(usize, &'a str), DataError>> + 'a {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(i, raw)| match std::str::from_utf8(raw) {
            Err(_) => Some(Err(DataError::NotUtf8 {
                file: file.to_string(),
                line: i + 1,
            })),
            Ok(s) => {
                let s = s.trim();
                (!s.is_empty()).then_some(Ok((i + 1, s)))
            }
        })
}

/// Splits a CSV line into exactly `expected` fields.
fn fields<'a>(line: &'a str, expected: usize, file: &str, line_no: usize) -> Result<Vec<&'a str>, DataError> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() != expected {
        return Err(DataError::FieldCount {
            file: file.to_string(),
            line: line_no,
            expected,
            found: f.len(),
        });
    }
    Ok(f)
}

/// Parses a finite number from field `field` (1-based).
fn number(text: &str, file: &str, line: usize, field: usize) -> Result<f32, DataError> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(DataError::BadField {
            file: file.to_string(),
            line,
            field,
            text: text.to_string(),
            expected: "a finite number",
        }),
    }
}

fn build(features: Vec<f32>, labels: Vec<u32>) -> Dataset {
    let n = labels.len();
    Dataset {
        inputs: Mat::from_vec(IRIS_FEATURES, n, features),
        targets: Targets::Classes {
            labels,
            num_classes: IRIS_SPECIES.len(),
        },
    }
}

/// Parses UCI's `iris.data` (see the module docs), applying or keeping [`UCI_ERRATA`].
/// Any number of rows is accepted here; [`crate::load_iris`] insists on 150.
pub fn parse_iris_data(bytes: &[u8], file: &str, errata: UciErrata) -> Result<Dataset, DataError> {
    const VALID: &str = "Iris-setosa, Iris-versicolor, Iris-virginica";
    let mut features = Vec::with_capacity(IRIS_FEATURES * IRIS_SAMPLES);
    let mut labels = Vec::with_capacity(IRIS_SAMPLES);
    for item in lines(bytes, file) {
        let (line_no, line) = item?;
        let f = fields(line, IRIS_FEATURES + 1, file, line_no)?;
        for (j, text) in f[..IRIS_FEATURES].iter().enumerate() {
            features.push(number(text, file, line_no, j + 1)?);
        }
        let species = f[IRIS_FEATURES];
        let label = species
            .strip_prefix("Iris-")
            .and_then(|s| IRIS_SPECIES.iter().position(|&name| name == s))
            .ok_or_else(|| DataError::UnknownSpecies {
                file: file.to_string(),
                line: line_no,
                name: species.to_string(),
                valid: VALID,
            })?;
        labels.push(label as u32);
    }
    let mut ds = build(features, labels);
    if errata == UciErrata::Correct {
        apply_uci_errata(&mut ds);
    }
    Ok(ds)
}

/// Replaces the samples listed in [`UCI_ERRATA`] by Fisher's values where they hold exactly
/// UCI's wrong values (and are setosa). Returns how many rows were corrected (2 for UCI's file,
/// 0 for a file that already follows Fisher).
pub fn apply_uci_errata(ds: &mut Dataset) -> usize {
    let mut corrected = 0;
    for e in UCI_ERRATA {
        let j = e.sample - 1;
        if j >= ds.len() || ds.inputs.nrows() != IRIS_FEATURES || ds.label(j) != Some(0) {
            continue;
        }
        let mut col = ds.inputs.column_mut(j);
        if col.iter().zip(e.uci).all(|(&a, b)| a == b) {
            for (a, b) in col.iter_mut().zip(e.fisher) {
                *a = b;
            }
            corrected += 1;
        }
    }
    corrected
}

/// Parses scikit-learn's `iris.csv` (see the module docs). The header's row count must match the
/// rows present, its feature count must be 4, and its class names must be Iris's three.
pub fn parse_iris_csv(bytes: &[u8], file: &str) -> Result<Dataset, DataError> {
    let mut it = lines(bytes, file);
    let (hline, header) = match it.next() {
        Some(item) => item?,
        None => {
            return Err(DataError::SampleCount {
                file: file.to_string(),
                expected: IRIS_SAMPLES,
                found: 0,
            })
        }
    };
    let h = fields(header, 2 + IRIS_SPECIES.len(), file, hline)?;
    let declared: usize = h[0].parse().map_err(|_| DataError::BadField {
        file: file.to_string(),
        line: hline,
        field: 1,
        text: h[0].to_string(),
        expected: "the number of samples",
    })?;
    if h[1] != "4" {
        return Err(DataError::BadField {
            file: file.to_string(),
            line: hline,
            field: 2,
            text: h[1].to_string(),
            expected: "the number of features, 4",
        });
    }
    for (k, name) in IRIS_SPECIES.iter().enumerate() {
        if h[2 + k] != *name {
            return Err(DataError::UnknownSpecies {
                file: file.to_string(),
                line: hline,
                name: h[2 + k].to_string(),
                valid: "setosa, versicolor, virginica (in this order)",
            });
        }
    }
    let mut features = Vec::with_capacity(IRIS_FEATURES * declared.min(IRIS_SAMPLES));
    let mut labels = Vec::with_capacity(declared.min(IRIS_SAMPLES));
    for item in it {
        let (line_no, line) = item?;
        let f = fields(line, IRIS_FEATURES + 1, file, line_no)?;
        for (j, text) in f[..IRIS_FEATURES].iter().enumerate() {
            features.push(number(text, file, line_no, j + 1)?);
        }
        let class = f[IRIS_FEATURES];
        match class.parse::<u32>() {
            Ok(c) if (c as usize) < IRIS_SPECIES.len() => labels.push(c),
            _ => {
                return Err(DataError::BadField {
                    file: file.to_string(),
                    line: line_no,
                    field: IRIS_FEATURES + 1,
                    text: class.to_string(),
                    expected: "a class index 0, 1 or 2",
                })
            }
        }
    }
    if labels.len() != declared {
        return Err(DataError::SampleCount {
            file: file.to_string(),
            expected: declared,
            found: labels.len(),
        });
    }
    Ok(build(features, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UCI_SNIPPET: &str =
        "5.1,3.5,1.4,0.2,Iris-setosa\r\n7.0,3.2,4.7,1.4,Iris-versicolor\n\n6.3,3.3,6.0,2.5,Iris-virginica\n\n";

    #[test]
    fn parses_uci_rows() {
        let ds = parse_iris_data(UCI_SNIPPET.as_bytes(), "iris.data", UciErrata::Correct).unwrap();
        assert_eq!((ds.features(), ds.len()), (4, 3));
        assert_eq!(ds.inputs.column(1).as_slice(), &[7.0, 3.2, 4.7, 1.4]);
        assert_eq!(ds.labels().unwrap(), &[0, 1, 2]);
    }

    #[test]
    fn parses_sklearn_rows() {
        let text = "3,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n7.0,3.2,4.7,1.4,1\n6.3,3.3,6.0,2.5,2\n";
        let a = parse_iris_csv(text.as_bytes(), "iris.csv").unwrap();
        let b = parse_iris_data(UCI_SNIPPET.as_bytes(), "iris.data", UciErrata::Keep).unwrap();
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.labels(), b.labels());
    }

    #[test]
    fn errata_are_applied_only_to_the_known_wrong_rows() {
        // 38 setosa rows, all equal to UCI's wrong value: only rows 35 and 38 change.
        let text = "4.9,3.1,1.5,0.1,Iris-setosa\n".repeat(38);
        let kept = parse_iris_data(text.as_bytes(), "f", UciErrata::Keep).unwrap();
        let mut fixed = parse_iris_data(text.as_bytes(), "f", UciErrata::Correct).unwrap();
        for j in 0..38 {
            let expected: [f32; 4] = match j + 1 {
                35 => [4.9, 3.1, 1.5, 0.2],
                38 => [4.9, 3.6, 1.4, 0.1],
                _ => [4.9, 3.1, 1.5, 0.1],
            };
            assert_eq!(fixed.inputs.column(j).as_slice(), &expected, "sample {}", j + 1);
            assert_eq!(kept.inputs.column(j).as_slice(), &[4.9, 3.1, 1.5, 0.1]);
        }
        // Idempotent: corrected data has nothing left to correct.
        assert_eq!(apply_uci_errata(&mut fixed), 0);
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        type Check = fn(&DataError) -> bool;
        let cases: [(&str, Check); 5] = [
            ("5.1,3.5,1.4,0.2,Iris-setosa\n5.1,3.5,1.4,Iris-setosa\n", |e| {
                matches!(
                    e,
                    DataError::FieldCount {
                        line: 2,
                        expected: 5,
                        found: 4,
                        ..
                    }
                )
            }),
            ("5.1,3.5,x,0.2,Iris-setosa\n", |e| {
                matches!(e, DataError::BadField { line: 1, field: 3, .. })
            }),
            ("5.1,3.5,1.4,NaN,Iris-setosa\n", |e| {
                matches!(e, DataError::BadField { line: 1, field: 4, .. })
            }),
            ("\n5.1,3.5,1.4,0.2,Iris-rosa\n", |e| {
                matches!(e, DataError::UnknownSpecies { line: 2, .. })
            }),
            ("5.1,3.5,1.4,0.2,Iris-setosa\n\u{0}\u{ff}\n", |_| true),
        ];
        for (text, ok) in cases {
            let e = parse_iris_data(text.as_bytes(), "iris.data", UciErrata::Correct).unwrap_err();
            assert!(ok(&e), "{text:?}: {e}");
            assert!(e.to_string().starts_with("iris.data, line"), "{e}");
        }
        let e = parse_iris_data(b"5.1,3.5,1.4,0.2,Iris-setosa\n\xff\n", "iris.data", UciErrata::Correct).unwrap_err();
        assert!(matches!(e, DataError::NotUtf8 { line: 2, .. }), "{e}");
    }

    #[test]
    fn malformed_sklearn_files_are_rejected() {
        let header = "2,4,setosa,versicolor,virginica\n";
        for text in [
            format!("{header}5.1,3.5,1.4,0.2,0\n"),
            format!("{header}5.1,3.5,1.4,0.2,3\n5.1,3.5,1.4,0.2,0\n"),
            format!("{header}5.1,3.5,1.4,0.2\n"),
            "x,4,setosa,versicolor,virginica\n".to_string(),
            "1,5,setosa,versicolor,virginica\n".to_string(),
            "1,4,setosa,virginica,versicolor\n".to_string(),
            String::new(),
        ] {
            let e = parse_iris_csv(text.as_bytes(), "iris.csv").unwrap_err();
            assert!(e.to_string().starts_with("iris.csv"), "{text:?}: {e}");
        }
        let e = parse_iris_csv(format!("{header}5.1,3.5,1.4,0.2,0\n").as_bytes(), "iris.csv").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::SampleCount {
                    expected: 2,
                    found: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_iris_csv(format!("{header}5.1,3.5,1.4,0.2,3\n").as_bytes(), "iris.csv").unwrap_err();
        assert!(matches!(e, DataError::BadField { line: 2, field: 5, .. }), "{e}");
    }
}
