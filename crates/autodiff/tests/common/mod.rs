//! Naive `f64` reference implementations of the losses and small helpers shared by the tests.
//! They are written directly from the equations (SPEC A2, seed 000 eq. 4, 5, 7–8, 16), with no
//! code shared with the crate, so a wrong index or transpose in the crate cannot hide in both.
#![allow(dead_code)]

use insitu_linalg::{Mat, Mat64, Rng64};
use rand::Rng;

/// Uniform entries in `[-1, 1]`.
pub fn rand_mat(rng: &mut Rng64, rows: usize, cols: usize) -> Mat {
    Mat::from_fn(rows, cols, |_, _| rng.random_range(-1.0f32..1.0))
}

/// Random unit-norm columns (prototypes).
pub fn rand_prototypes(rng: &mut Rng64, width: usize, classes: usize) -> Mat {
    let mut p = rand_mat(rng, width, classes);
    for mut c in p.column_iter_mut() {
        let n = c.norm();
        c /= n;
    }
    p
}

pub fn to64(m: &Mat) -> Mat64 {
    m.map(|v| v as f64)
}

/// Column `j` of `z`'s goodness against every prototype: `ξ_c·z/‖z‖`, 0 for a zero column.
pub fn goodness64(z: &Mat64, p: &Mat64, j: usize) -> Vec<f64> {
    let zj: Vec<f64> = z.column(j).iter().copied().collect();
    let n = zj.iter().map(|v| v * v).sum::<f64>().sqrt();
    (0..p.ncols())
        .map(|c| {
            if n == 0.0 {
                0.0
            } else {
                (0..z.nrows()).map(|i| p[(i, c)] * zj[i]).sum::<f64>() / n
            }
        })
        .collect()
}

pub fn goodness_matrix64(z: &Mat64, p: &Mat64) -> Mat64 {
    let mut g = Mat64::zeros(p.ncols(), z.ncols());
    for j in 0..z.ncols() {
        for (c, v) in goodness64(z, p, j).into_iter().enumerate() {
            g[(c, j)] = v;
        }
    }
    g
}

/// The hinge arguments `G(c) − G(y) + q` of every (sample, c ≠ y).
pub fn margin_terms64(z: &Mat64, p: &Mat64, labels: &[u32], q: f64) -> Vec<f64> {
    let mut out = Vec::new();
    for (j, &y) in labels.iter().enumerate() {
        let g = goodness64(z, p, j);
        for c in 0..p.ncols() {
            if c != y as usize {
                out.push(g[c] - g[y as usize] + q);
            }
        }
    }
    out
}

pub fn margin64(z: &Mat64, p: &Mat64, labels: &[u32], q: f64) -> f64 {
    margin_terms64(z, p, labels, q).iter().map(|h| h.max(0.0)).sum::<f64>() / labels.len() as f64
}

pub fn eq5_64(z: &Mat64, p: &Mat64, labels: &[u32]) -> f64 {
    let alpha = p.ncols() as f64 - 1.0;
    let mut s = 0.0;
    for (j, &y) in labels.iter().enumerate() {
        let g = goodness64(z, p, j);
        let others: f64 = (0..p.ncols()).filter(|&c| c != y as usize).map(|c| g[c]).sum();
        s += -(alpha * g[y as usize] - others);
    }
    s / labels.len() as f64
}

pub fn sqcos64(z: &Mat64, proto: &[f64], targets: &[f64]) -> f64 {
    let p = Mat64::from_column_slice(proto.len(), 1, proto);
    let mut s = 0.0;
    for (j, &t) in targets.iter().enumerate() {
        let g = goodness64(z, &p, j)[0];
        s += (g - t) * (g - t);
    }
    s / targets.len() as f64
}

pub fn ce64(logits: &Mat64, labels: &[u32]) -> f64 {
    let mut s = 0.0;
    for (j, &y) in labels.iter().enumerate() {
        let col = logits.column(j);
        let lse = col.iter().map(|v| v.exp()).sum::<f64>().ln();
        s += lse - col[y as usize];
    }
    s / labels.len() as f64
}

pub fn mse64(pred: &Mat64, t: &Mat64) -> f64 {
    (pred - t).iter().map(|e| e * e).sum::<f64>() / pred.ncols() as f64
}

pub fn relu64(m: &Mat64) -> Mat64 {
    m.map(|v| v.max(0.0))
}

pub fn add_bias64(z: &Mat64, b: &Mat64) -> Mat64 {
    Mat64::from_fn(z.nrows(), z.ncols(), |i, j| z[(i, j)] + b[(i, 0)])
}

/// Central finite differences of `f` with respect to every entry of `x`, in `f64`.
pub fn fd_grad(x: &Mat64, h: f64, f: impl Fn(&Mat64) -> f64) -> Mat64 {
    let mut g = Mat64::zeros(x.nrows(), x.ncols());
    let mut xp = x.clone();
    for k in 0..x.len() {
        let orig = xp[k];
        xp[k] = orig + h;
        let fp = f(&xp);
        xp[k] = orig - h;
        let fm = f(&xp);
        xp[k] = orig;
        g[k] = (fp - fm) / (2.0 * h);
    }
    g
}

/// Central finite differences in `f32` inputs (the crate's own forward functions), step `h`.
pub fn fd_grad_f32(x: &Mat, h: f32, f: impl Fn(&Mat) -> f64) -> Mat64 {
    let mut g = Mat64::zeros(x.nrows(), x.ncols());
    let mut xp = x.clone();
    for k in 0..x.len() {
        let orig = xp[k];
        xp[k] = orig + h;
        let fp = f(&xp);
        xp[k] = orig - h;
        let fm = f(&xp);
        xp[k] = orig;
        // the actual step, as rounded in f32
        let step = ((orig + h) as f64) - ((orig - h) as f64);
        g[k] = (fp - fm) / step;
    }
    g
}

/// Tolerance for the tape's `f32` gradients against `f64` finite differences of an `f64`
/// reference (step 1e-6, truncation error ~1e-12, rounding ~1e-10): what remains is the tape's
/// own `f32` rounding — a few ulps (6e-8 each) accumulated over sums of ≤ ~20 terms; measured
/// 3e-8 … 1.6e-7 on these tests — so agreement to 1e-5 of the gradient's largest entry leaves
/// a margin of ~60× over rounding, while any wrong index, sign, transpose or missing term of
/// the formula gives errors of order 1e-1 … 1 (checked by mutating the cosine VJP: 8e-2 … 3e-1).
pub const TOL_F64_REF: f64 = 1e-5;

/// `max |a − r| / max |r|`, the error measure used with [`TOL_F64_REF`].
pub fn rel_err(analytic: &Mat, reference: &Mat64) -> f64 {
    assert_eq!(analytic.shape(), reference.shape(), "gradient shapes differ");
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let diff = analytic
        .iter()
        .zip(reference.iter())
        .fold(0.0f64, |m, (a, r)| m.max((*a as f64 - r).abs()));
    diff / scale
}

/// Cosine similarity of two gradients viewed as vectors.
pub fn cosine(a: &Mat, r: &Mat64) -> f64 {
    let dot: f64 = a.iter().zip(r.iter()).map(|(x, y)| *x as f64 * y).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nr = r.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nr)
}

#[track_caller]
pub fn assert_grad_close(name: &str, analytic: &Mat, reference: &Mat64) {
    let e = rel_err(analytic, reference);
    assert!(
        e < TOL_F64_REF,
        "{name}: relative gradient error {e:.3e} ≥ {TOL_F64_REF:e}\nanalytic {analytic}\nreference {reference}"
    );
    assert!(
        reference.iter().any(|v| v.abs() > 1e-6),
        "{name}: reference gradient is zero, the check proves nothing"
    );
}
