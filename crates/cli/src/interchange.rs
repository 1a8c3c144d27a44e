//! The JSON interchange format for cross-checking against Python tools (issue 5 item 6,
//! issue 6 item 5): complex arrays as `{"re": [...], "im": [...]}` with the same nesting,
//! 2-D arrays as `[row][col]`. Only (de)serialisation lives here; the physics is in the
//! library crates.

use serde_json::{json, Value};

use insitu_optics::Complex64;

fn reals_1d(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what}: expected an array of numbers"))?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| format!("{what}[{i}]: expected a number, found {x}"))
        })
        .collect()
}

fn reals_2d(v: &Value, what: &str) -> Result<Vec<Vec<f64>>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what}: expected an array of rows"))?
        .iter()
        .enumerate()
        .map(|(i, row)| reals_1d(row, &format!("{what}[{i}]")))
        .collect()
}

fn parts<'a>(v: &'a Value, what: &str) -> Result<(&'a Value, &'a Value), String> {
    match (v.get("re"), v.get("im")) {
        (Some(re), Some(im)) => Ok((re, im)),
        _ => Err(format!(
            "{what}: expected a complex array {{\"re\": [...], \"im\": [...]}}"
        )),
    }
}

/// A real vector (a plain array of numbers).
pub fn real_vector(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    reals_1d(v, what)
}

/// A real matrix (array of rows).
pub fn real_matrix(v: &Value, what: &str) -> Result<Vec<Vec<f64>>, String> {
    reals_2d(v, what)
}

/// A complex vector `{"re": [...], "im": [...]}`.
pub fn complex_vector(v: &Value, what: &str) -> Result<Vec<Complex64>, String> {
    let (re, im) = parts(v, what)?;
    let (re, im) = (
        reals_1d(re, &format!("{what}.re"))?,
        reals_1d(im, &format!("{what}.im"))?,
    );
    if re.len() != im.len() {
        return Err(format!("{what}: re has {} entries, im has {}", re.len(), im.len()));
    }
    Ok(re.into_iter().zip(im).map(|(r, i)| Complex64::new(r, i)).collect())
}

/// A complex matrix `{"re": [[...]], "im": [[...]]}`, rectangular, returned row-major with its
/// shape.
pub fn complex_matrix(v: &Value, what: &str) -> Result<(usize, usize, Vec<Complex64>), String> {
    let (re, im) = parts(v, what)?;
    let (re, im) = (
        reals_2d(re, &format!("{what}.re"))?,
        reals_2d(im, &format!("{what}.im"))?,
    );
    let rows = re.len();
    let cols = re.first().map_or(0, Vec::len);
    if im.len() != rows {
        return Err(format!("{what}: re has {rows} rows, im has {}", im.len()));
    }
    let mut out = Vec::with_capacity(rows * cols);
    for (i, (r, m)) in re.iter().zip(&im).enumerate() {
        if r.len() != cols || m.len() != cols {
            return Err(format!(
                "{what}: row {i} has {} (re) / {} (im) entries, expected {cols}",
                r.len(),
                m.len()
            ));
        }
        out.extend(r.iter().zip(m).map(|(&a, &b)| Complex64::new(a, b)));
    }
    Ok((rows, cols, out))
}

/// `{"re": [...], "im": [...]}` of a vector.
pub fn complex_vector_json(z: &[Complex64]) -> Value {
    json!({"re": z.iter().map(|c| c.re).collect::<Vec<_>>(), "im": z.iter().map(|c| c.im).collect::<Vec<_>>()})
}

/// `{"re": [[...]], "im": [[...]]}` of a row-major `rows × cols` matrix.
pub fn complex_matrix_json(rows: usize, cols: usize, z: &[Complex64]) -> Value {
    let part = |f: fn(&Complex64) -> f64| -> Vec<Vec<f64>> {
        (0..rows)
            .map(|r| z[r * cols..(r + 1) * cols].iter().map(f).collect())
            .collect()
    };
    json!({"re": part(|c| c.re), "im": part(|c| c.im)})
}

/// Read and parse a JSON file.
/// A `T` from the JSON file `path`; `what` names the file in errors ("cannot read spec …",
/// "invalid spec …").
pub fn read_json_as<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid {what} {}: {e}", path.display()))
}

/// The JSON value in the file `path`.
pub fn read_json(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let z = vec![Complex64::new(1.0, -2.0), Complex64::new(0.5, 0.25)];
        assert_eq!(complex_vector(&complex_vector_json(&z), "x").unwrap(), z);
        let m = vec![
            Complex64::new(1.0, 0.0),
            Complex64::new(2.0, 1.0),
            Complex64::new(3.0, -1.0),
            Complex64::new(4.0, 0.0),
        ];
        assert_eq!(complex_matrix(&complex_matrix_json(2, 2, &m), "m").unwrap(), (2, 2, m));
        assert!(complex_vector(&json!({"re": [1.0], "im": [1.0, 2.0]}), "x")
            .unwrap_err()
            .contains("im has 2"));
        assert!(complex_vector(&json!([1.0]), "x").is_err());
        assert!(complex_matrix(&json!({"re": [[1.0], [1.0, 2.0]], "im": [[0.0], [0.0, 0.0]]}), "m").is_err());
        assert!(real_vector(&json!([1.0, "a"]), "p").unwrap_err().contains("p[1]"));
    }
}
