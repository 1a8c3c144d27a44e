//! # insitu-proto — maximally separated prototype vectors
//!
//! **What it is for.** The fixed class prototypes FFzero trains every layer against (seed 000,
//! "Classification" and "Regression" in Results, and Supplementary Information 1; SPEC A1):
//!
//! * [`simplex_prototypes`]: `c` unit vectors in `R^d` (`d ≥ c`) with pairwise cosine exactly
//!   `−1/(c−1)` — the centred, normalised simplex `X̂ = (I_c − 1/c)/sqrt(1 − 1/c)` (Suppl. 1
//!   eq. 5), padded with `d − c` zero rows (Suppl. 1 eq. 6) and rotated by a Haar-random
//!   `T ∈ SO(d)` (Suppl. 1 eq. 7).
//! * [`antipodal_pair`]: the regression pair `ξ^u = −ξ^l` (the same construction with `c = 2`).
//! * [`orthogonal_pairs`]: one antipodal pair per output of a multi-output regression, pairs
//!   mutually orthogonal (SPEC A1 **Reading**: the first `K` columns of one Haar rotation).
//!
//! Construction happens in f64; the result is handed out as f32 (`Mat`, one prototype per
//! column), the precision of the training kernels.
//!
//! **What it must not do.** Never truncate silently: `d < c` (or `d < K`) is an error. No
//! I/O; randomness only from the caller's seeded generator.
//!
//! # Example
//!
//! Ten class prototypes for a width-100 layer: unit vectors with pairwise cosine `−1/9`, the
//! most any ten directions can be pushed apart, in a random orientation fixed by the seed.
//!
//! ```
//! use insitu_proto::{antipodal_pair, simplex_prototypes, ProtoError};
//!
//! let mut rng = insitu_linalg::rng(7);
//! let prototypes = simplex_prototypes(10, 100, &mut rng)?; // 100 × 10, one prototype per column
//! for i in 0..10 {
//!     for j in 0..10 {
//!         let cosine = prototypes.column(i).dot(&prototypes.column(j));
//!         let expected = if i == j { 1.0 } else { -1.0 / 9.0 };
//!         assert!((cosine - expected).abs() < 1e-5, "({i}, {j}): {cosine}");
//!     }
//! }
//!
//! // A regression layer's pair ξ^u = −ξ^l (seed 000 eq. 7).
//! let (upper, lower) = antipodal_pair(100, &mut rng)?;
//! assert!(upper.iter().zip(&lower).all(|(u, l)| *u == -*l));
//!
//! // Ten prototypes do not fit in five dimensions: an error, never a silent truncation.
//! assert!(matches!(simplex_prototypes(10, 5, &mut rng), Err(ProtoError::DimensionTooSmall { .. })));
//! # Ok::<(), ProtoError>(())
//! ```

use insitu_linalg::{haar_special_orthogonal, Mat, Mat64};
use rand::Rng;

/// Why a prototype set cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// Fewer dimensions than classes (or outputs): the simplex does not fit.
    #[error("prototype dimension {dim} is smaller than the number of {what} {count}: a layer used with prototypes must be at least as wide as the number of {what}")]
    DimensionTooSmall {
        /// the requested dimension `d`
        dim: usize,
        /// the number of classes or outputs
        count: usize,
        /// "classes" or "regression outputs"
        what: &'static str,
    },
    /// Fewer than two classes: a simplex needs at least two vertices.
    #[error("at least 2 classes are needed for prototypes, got {0}")]
    TooFewClasses(usize),
}

/// The centred, normalised simplex of Supplementary 1 eq. 5–6, before rotation: `d × c`, f64.
pub fn simplex(classes: usize, dim: usize) -> Result<Mat64, ProtoError> {
    if classes < 2 {
        return Err(ProtoError::TooFewClasses(classes));
    }
    if dim < classes {
        return Err(ProtoError::DimensionTooSmall {
            dim,
            count: classes,
            what: "classes",
        });
    }
    let c = classes as f64;
    let scale = 1.0 / (1.0 - 1.0 / c).sqrt();
    Ok(Mat64::from_fn(dim, classes, |i, j| {
        if i >= classes {
            0.0
        } else {
            (if i == j { 1.0 } else { 0.0 } - 1.0 / c) * scale
        }
    }))
}

/// `c` maximally separated unit prototypes in `R^d` with a random orientation: columns of
/// `T·X̂`, `T` Haar on SO(d) (seed 000 Supplementary 1). Returns `d × c`.
pub fn simplex_prototypes<R: Rng + ?Sized>(classes: usize, dim: usize, rng: &mut R) -> Result<Mat, ProtoError> {
    let x = simplex(classes, dim)?;
    let t: Mat64 = haar_special_orthogonal(dim, rng);
    Ok((t * x).map(|v| v as f32))
}

/// The regression prototypes `(ξ^u, ξ^l)`, `ξ^l = −ξ^u`, unit vectors in `R^d` (seed 000
/// eq. 7; the construction above with `c = 2`). `ξ^u` encodes the label `+1`.
pub fn antipodal_pair<R: Rng + ?Sized>(dim: usize, rng: &mut R) -> Result<(Vec<f32>, Vec<f32>), ProtoError> {
    let p = simplex_prototypes(2, dim, rng).map_err(|e| match e {
        ProtoError::DimensionTooSmall { dim, count, .. } => ProtoError::DimensionTooSmall {
            dim,
            count,
            what: "regression outputs (an antipodal pair needs 2)",
        },
        other => other,
    })?;
    // Column 0 is ξ^u; column 1 is exactly −ξ^u by construction (up to f32 rounding of the same
    // f64 values, which are negatives of each other), so take it as the negation to make the
    // antipodality exact.
    let upper: Vec<f32> = p.column(0).iter().copied().collect();
    let lower = upper.iter().map(|v| -v).collect();
    Ok((upper, lower))
}

/// `K` mutually orthogonal upper prototypes `ξ^u_k` (columns of the returned `d × K` matrix) for
/// a `K`-output regression; each output's lower prototype is `−ξ^u_k` (SPEC A1 Reading).
pub fn orthogonal_pairs<R: Rng + ?Sized>(outputs: usize, dim: usize, rng: &mut R) -> Result<Mat, ProtoError> {
    if dim < outputs {
        return Err(ProtoError::DimensionTooSmall {
            dim,
            count: outputs,
            what: "regression outputs",
        });
    }
    let t: Mat64 = haar_special_orthogonal(dim, rng);
    Ok(t.columns(0, outputs).map(|v| v as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_linalg::rng;

    fn cos(a: &[f64], b: &[f64]) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        d / (na * nb)
    }

    #[test]
    fn simplex_geometry_for_many_sizes() {
        for c in 2..=12 {
            for d in c..=c + 5 {
                let x = simplex(c, d).unwrap();
                for j in 0..c {
                    assert!((x.column(j).norm() - 1.0).abs() < 1e-14, "unit norm");
                    for k in 0..j {
                        let a: Vec<f64> = x.column(j).iter().copied().collect();
                        let b: Vec<f64> = x.column(k).iter().copied().collect();
                        assert!((cos(&a, &b) + 1.0 / (c as f64 - 1.0)).abs() < 1e-14, "cosine −1/(c−1)");
                    }
                }
                let sum = x.column_sum();
                assert!(sum.amax() < 1e-14, "columns sum to zero");
            }
        }
    }

    #[test]
    fn rotated_prototypes_keep_geometry() {
        let mut g = rng(3);
        for (c, d) in [(10, 10), (10, 50), (10, 100), (3, 7), (2, 2)] {
            let p = simplex_prototypes(c, d, &mut g).unwrap();
            assert_eq!(p.shape(), (d, c));
            let p64 = p.map(|v| v as f64);
            for j in 0..c {
                assert!((p64.column(j).norm() - 1.0).abs() < 1e-6);
                for k in 0..j {
                    let cjk = p64.column(j).dot(&p64.column(k));
                    assert!((cjk + 1.0 / (c as f64 - 1.0)).abs() < 1e-6, "c={c} d={d}: {cjk}");
                }
            }
            assert!(p64.column_sum().amax() < 1e-5);
            // a rotation: the padded rows were mixed in, so the prototypes are not axis-aligned
            if d > c {
                assert!(
                    p64.rows(c, d - c).amax() > 1e-3,
                    "the random rotation must use all d dimensions"
                );
            }
        }
    }

    #[test]
    fn rotation_is_special_orthogonal() {
        // The rotation used is reproducible from the seed: check det T = +1 directly.
        for seed in 0..20 {
            let t: Mat64 = haar_special_orthogonal(6, &mut rng(seed));
            assert!((t.determinant() - 1.0).abs() < 1e-10);
        }
    }

    #[test]
    fn same_seed_same_prototypes_and_errors() {
        let a = simplex_prototypes(10, 20, &mut rng(5)).unwrap();
        let b = simplex_prototypes(10, 20, &mut rng(5)).unwrap();
        let c = simplex_prototypes(10, 20, &mut rng(6)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(matches!(
            simplex_prototypes(10, 9, &mut rng(0)),
            Err(ProtoError::DimensionTooSmall { dim: 9, .. })
        ));
        assert_eq!(simplex(1, 5), Err(ProtoError::TooFewClasses(1)));
        assert!(antipodal_pair(1, &mut rng(0)).is_err());
        assert!(orthogonal_pairs(4, 3, &mut rng(0)).is_err());
    }

    #[test]
    fn antipodal_and_orthogonal_pairs() {
        let (u, l) = antipodal_pair(10, &mut rng(1)).unwrap();
        assert!(u.iter().zip(&l).all(|(a, b)| *a == -*b));
        assert!((u.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() - 1.0).abs() < 1e-6);
        let p = orthogonal_pairs(3, 8, &mut rng(2)).unwrap().map(|v| v as f64);
        let gram = p.transpose() * &p;
        assert!((gram - Mat64::identity(3, 3)).amax() < 1e-6);
    }
}
