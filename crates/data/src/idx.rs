//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.), and gzip decoding.
//!
//! An IDX file is big-endian: two zero bytes, a type code (`0x08` = unsigned byte), the number of
//! dimensions, one `u32` per dimension, then the data in row-major order. Images are
//! `0x00000803` (count, rows, columns, then one `u8` per pixel); labels are `0x00000801`
//! (count, then one `u8` per label).
//!
//! The parsers take byte slices so they can be tested (and fuzzed) on in-memory data; every
//! malformed input is an [`DataError`] naming the file and the byte offset, never a panic.

use std::io::Read;

use crate::DataError;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Images as stored in an IDX file: `count` images of `rows × cols` bytes, row-major, one image
/// after the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count · rows · cols` pixels; image `i` is `pixels[i·rows·cols .. (i+1)·rows·cols]`.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels per image (`rows · cols`).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }
}

fn truncated(file: &str, offset: usize, what: &'static str, needed: usize, available: usize) -> DataError {
    DataError::Truncated {
        file: file.to_string(),
        offset: offset as u64,
        what,
        needed: needed as u64,
        available: available as u64,
    }
}

/// Reads the big-endian `u32` at `offset`, or reports truncation of `what`.
fn be_u32(bytes: &[u8], offset: usize, file: &str, what: &'static str) -> Result<u32, DataError> {
    match bytes.get(offset..offset + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(truncated(file, offset, what, 4, bytes.len().saturating_sub(offset))),
    }
}

/// Checks the magic number and returns the header length and dimensions.
fn parse_header(bytes: &[u8], file: &str, magic: u32) -> Result<(usize, Vec<usize>), DataError> {
    if bytes.len() < 4 {
        return Err(truncated(file, 0, "IDX magic number", 4, bytes.len()));
    }
    let found = be_u32(bytes, 0, file, "IDX magic number")?;
    if found != magic {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            expected: magic,
            found,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let v = be_u32(bytes, 4 + 4 * d, file, "IDX header dimension")?;
        dims.push(v as usize);
    }
    Ok((4 + 4 * ndim, dims))
}

/// Checks that exactly `len` data bytes follow the header and returns them.
fn body<'a>(bytes: &'a [u8], header: usize, len: usize, file: &str, what: &'static str) -> Result<&'a [u8], DataError> {
    let available = bytes.len() - header;
    if available < len {
        return Err(truncated(file, header, what, len, available));
    }
    if available > len {
        return Err(DataError::TrailingBytes {
            file: file.to_string(),
            offset: (header + len) as u64,
            extra: (available - len) as u64,
        });
    }
    Ok(&bytes[header..])
}

/// Parses an uncompressed IDX image file (magic `0x00000803`). `file` names it in errors.
///
/// Rejects: a wrong magic number, a header or pixel block shorter than announced, trailing
/// bytes, images with zero rows or columns, and sizes that overflow `usize`.
pub fn parse_idx_images(bytes: &[u8], file: &str) -> Result<IdxImages, DataError> {
    let (header, dims) = parse_header(bytes, file, IDX_IMAGES_MAGIC)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::BadHeader {
            file: file.to_string(),
            offset: 8,
            reason: format!("images of {rows}×{cols} pixels"),
        });
    }
    let len = count
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .ok_or_else(|| DataError::BadHeader {
            file: file.to_string(),
            offset: 4,
            reason: format!("{count} images of {rows}×{cols} pixels overflow the address space"),
        })?;
    let data = body(bytes, header, len, file, "pixel data")?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: data.to_vec(),
    })
}

/// Parses an uncompressed IDX label file (magic `0x00000801`) whose labels must all be below
/// `num_classes`. `file` names it in errors.
pub fn parse_idx_labels(bytes: &[u8], file: &str, num_classes: usize) -> Result<Vec<u32>, DataError> {
    let (header, dims) = parse_header(bytes, file, IDX_LABELS_MAGIC)?;
    let data = body(bytes, header, dims[0], file, "label data")?;
    data.iter()
        .enumerate()
        .map(|(i, &b)| {
            if (b as usize) < num_classes {
                Ok(u32::from(b))
            } else {
                Err(DataError::LabelOutOfRange {
                    file: file.to_string(),
                    offset: (header + i) as u64,
                    value: u32::from(b),
                    num_classes,
                })
            }
        })
        .collect()
}

/// Decompresses a gzip file held in memory. `file` names it in errors.
///
/// The whole stream is decoded and its CRC-32 and length trailer are checked (flate2 does
/// this), so a corrupted or truncated `.gz` is always an error. Concatenated gzip members are
/// decoded one after the other, as `gunzip` does.
pub fn gunzip(bytes: &[u8], file: &str) -> Result<Vec<u8>, DataError> {
    // The trailer's ISIZE (length mod 2^32) is a capacity hint; deflate cannot expand by more than
    // ~1032:1, which bounds a hostile hint.
    let hint = if bytes.len() >= 4 {
        let t = &bytes[bytes.len() - 4..];
        (u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize).min(bytes.len().saturating_mul(1032))
    } else {
        0
    };
    let mut out = Vec::with_capacity(hint);
    let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes);
    match decoder.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => {
            let consumed = bytes.len() - decoder.get_ref().len();
            Err(DataError::Gzip {
                file: file.to_string(),
                offset: consumed as u64,
                reason: e.to_string(),
            })
        }
    }
}

/// Decompresses then parses a gzip IDX image file.
pub fn parse_idx_images_gz(bytes: &[u8], file: &str) -> Result<IdxImages, DataError> {
    parse_idx_images(&gunzip(bytes, file)?, file)
}

/// Decompresses then parses a gzip IDX label file.
pub fn parse_idx_labels_gz(bytes: &[u8], file: &str, num_classes: usize) -> Result<Vec<u32>, DataError> {
    parse_idx_labels(&gunzip(bytes, file)?, file, num_classes)
}

/// Builds an uncompressed IDX image file (for tests and tools).
pub fn encode_idx_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    out.extend_from_slice(&IDX_IMAGES_MAGIC.to_be_bytes());
    for d in [images.count, images.rows, images.cols] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Builds an uncompressed IDX label file (for tests and tools).
pub fn encode_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Two 2×3 images written byte by byte, independent of `encode_idx_images`.
    fn hand_made_images() -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
        b
    }

    #[test]
    fn parses_hand_made_images() {
        let img = parse_idx_images(&hand_made_images(), "t").unwrap();
        assert_eq!((img.count, img.rows, img.cols), (2, 2, 3));
        assert_eq!(img.pixels[..6], [0, 1, 2, 3, 4, 5]);
        assert_eq!(img.pixels[6..], [250, 251, 252, 253, 254, 255]);
        assert_eq!(encode_idx_images(&img), hand_made_images());
    }

    #[test]
    fn parses_hand_made_labels_and_round_trips() {
        let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9];
        assert_eq!(parse_idx_labels(&bytes, "t", 10).unwrap(), vec![7, 0, 9]);
        assert_eq!(encode_idx_labels(&[7, 0, 9]), bytes);
    }

    #[test]
    fn gzip_round_trip() {
        let raw = hand_made_images();
        assert_eq!(
            parse_idx_images_gz(&gzip(&raw), "t").unwrap(),
            parse_idx_images(&raw, "t").unwrap()
        );
    }

    #[test]
    fn wrong_magic_is_reported() {
        let mut b = hand_made_images();
        b[3] = 1; // a label magic in an images file
        let e = parse_idx_images(&b, "imgs").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("imgs") && e.to_string().contains("offset 0"),
            "{e}"
        );
    }

    #[test]
    fn truncation_is_reported_with_offset() {
        let b = hand_made_images();
        let e = parse_idx_images(&b[..b.len() - 1], "imgs").unwrap_err();
        match e {
            DataError::Truncated {
                offset,
                needed,
                available,
                ..
            } => {
                assert_eq!((offset, needed, available), (16, 12, 11));
            }
            other => panic!("{other}"),
        }
        let e = parse_idx_images(&b[..10], "imgs").unwrap_err();
        assert!(matches!(e, DataError::Truncated { offset: 8, .. }), "{e}");
        let e = parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 5, 1], "labs", 10).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    offset: 8,
                    needed: 5,
                    available: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("labs"), "{e}");
    }

    #[test]
    fn trailing_bytes_and_bad_labels_are_reported() {
        let mut b = hand_made_images();
        b.push(0);
        assert!(matches!(
            parse_idx_images(&b, "t").unwrap_err(),
            DataError::TrailingBytes {
                offset: 28,
                extra: 1,
                ..
            }
        ));
        let e = parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 2, 3, 10], "labs", 10).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    offset: 9,
                    value: 10,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn zero_sized_images_and_overflow_are_rejected() {
        let b = [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3];
        assert!(matches!(
            parse_idx_images(&b, "t").unwrap_err(),
            DataError::BadHeader { .. }
        ));
        let b = [0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255];
        // On 64-bit targets this does not overflow, so it is a truncation.
        assert!(parse_idx_images(&b, "t").is_err());
    }

    #[test]
    fn bad_gzip_is_reported() {
        let raw = hand_made_images();
        let gz = gzip(&raw);
        let e = gunzip(&gz[..gz.len() - 3], "f.gz").unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
        let mut flipped = gz.clone();
        let n = flipped.len();
        flipped[n - 6] ^= 0xff; // inside the CRC-32
        assert!(matches!(gunzip(&flipped, "f.gz").unwrap_err(), DataError::Gzip { .. }));
        let e = gunzip(b"not gzip at all", "f.gz").unwrap_err();
        assert!(e.to_string().contains("f.gz"), "{e}");
    }
}
