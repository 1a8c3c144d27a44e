//! NumPy's `.npy` format (version 1.0) for `f32` arrays: how trained parameters (phase masks,
//! weights) leave insitu for NumPy, PyTorch or an SLM driver, and come back.
//!
//! The format (numpy.org, "NEP 1" / `numpy.lib.format`): the bytes `\x93NUMPY`, version
//! `1 0`, a little-endian `u16` header length, an ASCII Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and ending
//! in `\n` so that the data start at a multiple of 64 bytes, then the values, little-endian, in
//! C (row-major) order. [`encode_npy_f32`] writes exactly what `numpy.save` writes for a C-order
//! `float32` array; [`decode_npy_f32`] reads that (and versions 2.0 / 3.0, whose header length is
//! a `u32`), refusing anything else by name: another dtype, Fortran order, a truncated file.

use crate::DataError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The `.npy` (version 1.0) bytes of a C-order `f32` array of `shape` holding `values`.
/// Panics if the shape's product differs from `values.len()` (a programming error, not input).
pub fn encode_npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "encode_npy_f32: shape {shape:?} for {} values",
        values.len()
    );
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' ≡ 0 (mod 64)
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads a C-order little-endian `f32` `.npy` array: `(shape, values)`. `file` names the source
/// in errors.
pub fn decode_npy_f32(bytes: &[u8], file: &str) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let bad = |reason: String| DataError::Npy {
        file: file.to_string(),
        reason,
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("not a .npy file (it does not start with \\x93NUMPY)".into()))?;
    let (header_len, start) = match rest {
        [1, 0, a, b, ..] => (u16::from_le_bytes([*a, *b]) as usize, 10),
        [2 | 3, 0, a, b, c, d, ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, 12),
        [major, minor, ..] => return Err(bad(format!("unknown .npy version {major}.{minor}"))),
        _ => return Err(bad("truncated in its preamble".into())),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad(format!("truncated: a header of {header_len} bytes from byte {start}")))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the header is not text".into()))?;
    let field = |key: &str| -> Result<&str, DataError> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| bad(format!("the header has no '{key}' ({header:?})")))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    if !(descr.starts_with("'<f4'") || descr.starts_with("'float32'")) {
        return Err(bad(format!(
            "holds {}, not little-endian float32 ('<f4')",
            descr.split(',').next().unwrap_or(descr)
        )));
    }
    if !field("fortran_order")?.starts_with("False") {
        return Err(bad("is in Fortran (column-major) order; save it in C order".into()));
    }
    let shape = field("shape")?;
    let close = shape
        .find(')')
        .filter(|_| shape.starts_with('('))
        .ok_or_else(|| bad(format!("cannot read its shape ({shape:?})")))?;
    let shape: Vec<usize> = shape[1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad(format!("shape entry {d:?} is not a size"))))
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let data = &bytes[start + header_len..];
    if data.len() as u128 != 4 * count as u128 {
        return Err(bad(format!(
            "shape {shape:?} needs {} bytes of data, {} present",
            4 * count as u128,
            data.len()
        )));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_numpy_save_writes() {
        // `np.save(f, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))`: a 128-byte preamble
        // and header, then the six values
        let bytes = encode_npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut expected = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        expected.extend_from_slice(header.as_bytes());
        expected.extend(std::iter::repeat_n(b' ', 128 - 10 - header.len() - 1));
        expected.push(b'\n');
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(bytes, expected);
        // one dimension is written `(n,)`, as Python does
        let one = encode_npy_f32(&[3], &[0.5, -1.0, f32::MIN_POSITIVE]);
        assert!(String::from_utf8_lossy(&one).contains("'shape': (3,), }"));
        assert_eq!(
            decode_npy_f32(&one, "x").unwrap(),
            (vec![3], vec![0.5, -1.0, f32::MIN_POSITIVE])
        );
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let values: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let bytes = encode_npy_f32(&[2, 3, 4], &values);
        assert_eq!(bytes.len() % 64, 96 % 64);
        assert_eq!(decode_npy_f32(&bytes, "m.npy").unwrap(), (vec![2, 3, 4], values));
        for cut in 0..bytes.len() {
            let e = decode_npy_f32(&bytes[..cut], "m.npy").unwrap_err().to_string();
            assert!(e.contains("m.npy"), "{e}");
        }
        let swap = |from: &str, to: &str| {
            let text = std::str::from_utf8(&bytes[10..128]).unwrap().replace(from, to);
            let mut b = bytes[..10].to_vec();
            b.extend_from_slice(text.as_bytes());
            b.extend_from_slice(&bytes[128..]);
            decode_npy_f32(&b, "m.npy").unwrap_err().to_string()
        };
        let e = swap("'<f4'", "'<f8'");
        assert!(e.contains("not little-endian float32"), "{e}");
        assert!(swap("False", "True ").contains("Fortran"));
        assert!(swap("(2, 3, 4)", "(2, 3, 5)").contains("needs 120 bytes of data, 96 present"));
        assert!(swap("(2, 3, 4)", "(2, x, 4)").contains("not a size"));
        let mut v9 = bytes.clone();
        v9[6] = 9;
        assert!(decode_npy_f32(&v9, "m.npy")
            .unwrap_err()
            .to_string()
            .contains("version 9.0"));
    }
}
