//! Forward-only loss functions shared by every training method (BP+AD, BP+DD, FF+AD, FF+DD).
//!
//! These are pure functions, no tape (a sample is one column of a `width × batch` [`Mat`], so its
//! vector is contiguous). The cosine-goodness losses are functions of the goodness matrix
//! `G = Ξᵀz / ‖z‖` (`classes × batch`), which [`cosine_goodness`] computes with one matrix
//! product; the `*_of_goodness` forms take `G` and allocate nothing (the tape keeps `G` from
//! its forward pass for the backward one), the forms taking `z` allocate `G` and are for cold
//! code and tests. The per-sample terms are computed in `f32` (the kernels' precision) and the
//! batch sum is accumulated in `f64`. The directional-derivative trainers evaluate these twice per step; the
//! reverse-mode [`Tape`](crate::Tape) evaluates the same functions for its forward values and
//! differentiates them with the `*_backward` kernels of this module (one concept, one place).
//!
//! **Zero columns.** The cosine goodness `G(c) = ξ_c·z/‖z‖` is undefined at `z = 0`; here it is
//! defined as `0` (SPEC A2: "a zero `z_m` gives goodness 0, not NaN"), and the gradient through
//! the norm at `z = 0` is taken as `0` as well (the loss is treated as locally constant there).
//!
//! **Panics.** Shape mismatches and out-of-range labels are programming errors of the caller
//! (user-facing input is validated long before a loss runs, e.g. with [`validate_labels`]), so
//! these functions assert them and panic with a message saying which shapes disagreed.

use insitu_linalg::{dot, matmul, set_shape, Accum, Mat, MatMut, MatRef, Par};

use crate::AutodiffError;

/// `1/‖z‖` for a sample column, or `0` for a zero (or underflowing) column: with this factor a
/// zero column has goodness 0 and zero gradient.
#[inline]
fn inv_norm(z: &[f32]) -> f32 {
    let n = dot(z, z).sqrt();
    if n > 0.0 {
        1.0 / n
    } else {
        0.0
    }
}

fn check_prototypes(z: &Mat, prototypes: &Mat, what: &str) {
    assert_eq!(
        z.nrows(),
        prototypes.nrows(),
        "{what}: activations have width {} but prototypes have width {}",
        z.nrows(),
        prototypes.nrows()
    );
}

fn check_labels(z: &Mat, labels: &[u32], classes: usize, what: &str) {
    assert_eq!(
        labels.len(),
        z.ncols(),
        "{what}: {} labels for a batch of {}",
        labels.len(),
        z.ncols()
    );
    if let Some(&bad) = labels.iter().find(|&&y| y as usize >= classes) {
        panic!("{what}: label {bad} out of range for {classes} classes");
    }
}

/// Checks that every label is a valid class index (`< classes`): the typed error for user-facing
/// input, to call before the asserting loss functions.
pub fn validate_labels(labels: &[u32], classes: usize) -> Result<(), AutodiffError> {
    match labels.iter().position(|&y| y as usize >= classes) {
        Some(index) => Err(AutodiffError::LabelOutOfRange {
            index,
            label: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}

/// Seed 000 Methods eq. 16 for **one** sample, from its goodness values `g(c)`,
/// `c = 0..classes`: `Σ_{c≠y} ReLU(g(c) − g(y) + q)`. The one place the margin loss's formula
/// lives: [`margin_loss`] and the fused line evaluation of FF+DD (`insitu-ffzero`) both call it.
#[inline]
pub fn margin_sample_loss(classes: usize, label: usize, margin: f64, g: impl Fn(usize) -> f64) -> f64 {
    let gy = g(label);
    (0..classes)
        .filter(|&c| c != label)
        .map(|c| hinge(g(c) - gy + margin))
        .sum()
}

/// `max(0, v)` that keeps a NaN: `f64::max` returns the other operand, which would turn a
/// non-finite sample (a NaN input, an overflow) into a zero loss and hide the divergence that
/// training must stop at (SPEC A7).
#[inline]
fn hinge(v: f64) -> f64 {
    if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

/// Seed 000 eq. 5 as a loss to minimise, for **one** sample from its goodness values:
/// `Σ_{c≠y} g(c) − α·g(y)` with `α = classes − 1`.
#[inline]
pub fn eq5_sample_loss(classes: usize, label: usize, g: impl Fn(usize) -> f64) -> f64 {
    let alpha = classes as f64 - 1.0;
    let mut others = 0.0;
    let mut gy = 0.0;
    for c in 0..classes {
        if c == label {
            gy = g(c);
        } else {
            others += g(c);
        }
    }
    others - alpha * gy
}

/// Seed 000 eq. 8 for **one** sample: `(G − y)²` with `G = ξ^u·z/‖z‖`.
#[inline]
pub fn squared_cosine_sample_loss(goodness: f64, target: f64) -> f64 {
    let e = goodness - target;
    e * e
}

/// Cosine goodness `G(c) = ξ_c·z/‖z‖` of every sample column of `z` (`width × batch`) against
/// every prototype column of `prototypes` (`width × classes`), written into `out`
/// (`classes × batch`). Seed 000 eq. 4, SPEC A2. A zero column has goodness 0.
///
/// # Panics
/// If the widths differ or `out` is not `classes × batch`.
pub fn cosine_goodness(z: &Mat, prototypes: &Mat, out: &mut Mat) {
    check_prototypes(z, prototypes, "cosine_goodness");
    let (classes, batch) = (prototypes.ncols(), z.ncols());
    assert_eq!(
        out.shape(),
        (classes, batch),
        "cosine_goodness: output is {:?}, expected {classes}×{batch}",
        out.shape()
    );
    // Ξᵀ·z by one product, then each column scaled by 1/‖z_j‖.
    matmul(
        MatMut::from(&mut *out),
        Accum::Replace,
        MatRef::from(prototypes).t(),
        MatRef::from(z),
        1.0,
        Par::Seq,
    );
    for j in 0..batch {
        let inv_n = inv_norm(z.column(j).as_slice());
        out.column_mut(j).iter_mut().for_each(|g| *g *= inv_n);
    }
}

/// The goodness matrix of `z` against `prototypes`, allocated (for the `z`-level conveniences).
fn goodness_of(z: &Mat, prototypes: &Mat) -> Mat {
    let mut g = Mat::zeros(prototypes.ncols(), z.ncols());
    cosine_goodness(z, prototypes, &mut g);
    g
}

/// Margin loss of seed 000 Methods eq. 16 (SPEC A2): per sample
/// `Σ_{c≠y} ReLU(G(c) − G(y) + q)` with `q = margin`, averaged over the batch (sum in `f64`).
/// `z` is `width × batch`, `prototypes` `width × classes`, `labels[j]` the class of column `j`.
///
/// # Panics
/// On mismatched shapes or a label `≥ classes`.
pub fn margin_loss(z: &Mat, prototypes: &Mat, labels: &[u32], margin: f32) -> f64 {
    check_prototypes(z, prototypes, "margin_loss");
    margin_loss_of_goodness(&goodness_of(z, prototypes), labels, margin)
}

/// [`margin_loss`] from the goodness matrix `G` (`classes × batch`, [`cosine_goodness`]).
///
/// # Panics
/// On a label count other than the batch size or a label `≥ classes`.
pub fn margin_loss_of_goodness(goodness: &Mat, labels: &[u32], margin: f32) -> f64 {
    let classes = goodness.nrows();
    check_labels(goodness, labels, classes, "margin_loss");
    batch_mean(goodness, |j, g| {
        margin_sample_loss(classes, labels[j] as usize, margin as f64, g)
    })
}

/// `(1/B) Σ_j ℓ(j, c ↦ G(c, j))` in f64 (0 for an empty batch).
#[inline]
fn batch_mean(goodness: &Mat, sample_loss: impl Fn(usize, &dyn Fn(usize) -> f64) -> f64) -> f64 {
    let batch = goodness.ncols();
    if batch == 0 {
        return 0.0;
    }
    let sum: f64 = (0..batch)
        .map(|j| {
            let col = &goodness.as_slice()[j * goodness.nrows()..(j + 1) * goodness.nrows()];
            sample_loss(j, &|c| col[c] as f64)
        })
        .sum();
    sum / batch as f64
}

/// Seed 000 eq. 5 written as a loss to **minimise**: per sample `−(α·G(y) − Σ_{c≠y} G(c))` with
/// `α = C − 1` (`C` = number of prototypes), averaged over the batch (sum in `f64`).
///
/// # Panics
/// On mismatched shapes or a label `≥ classes`.
pub fn eq5_loss(z: &Mat, prototypes: &Mat, labels: &[u32]) -> f64 {
    check_prototypes(z, prototypes, "eq5_loss");
    eq5_loss_of_goodness(&goodness_of(z, prototypes), labels)
}

/// [`eq5_loss`] from the goodness matrix `G` (`classes × batch`).
///
/// # Panics
/// On a label count other than the batch size or a label `≥ classes`.
pub fn eq5_loss_of_goodness(goodness: &Mat, labels: &[u32]) -> f64 {
    let classes = goodness.nrows();
    check_labels(goodness, labels, classes, "eq5_loss");
    batch_mean(goodness, |j, g| eq5_sample_loss(classes, labels[j] as usize, g))
}

/// Regression loss of seed 000 eq. 7–8: `G = ξ^u·z/‖z‖` per sample, loss `(G − y)²` averaged over
/// the batch (sum in `f64`). `prototype` is `ξ^u` (length = width), `targets[j] ∈ [-1, 1]` the
/// target of column `j`.
///
/// # Panics
/// If `prototype.len()` is not the width of `z` or `targets.len()` is not the batch size.
pub fn squared_cosine_loss(z: &Mat, prototype: &[f32], targets: &[f32]) -> f64 {
    assert_eq!(
        prototype.len(),
        z.nrows(),
        "squared_cosine_loss: prototype of length {} for width {}",
        prototype.len(),
        z.nrows()
    );
    let prototype = Mat::from_column_slice(prototype.len(), 1, prototype);
    squared_cosine_loss_of_goodness(&goodness_of(z, &prototype), targets)
}

/// [`squared_cosine_loss`] from the goodness `G` (`1 × batch`).
///
/// # Panics
/// If `G` has more than one row or `targets.len()` is not the batch size.
pub fn squared_cosine_loss_of_goodness(goodness: &Mat, targets: &[f32]) -> f64 {
    assert_eq!(
        goodness.nrows(),
        1,
        "squared_cosine_loss: one prototype, one goodness row"
    );
    assert_eq!(
        targets.len(),
        goodness.ncols(),
        "squared_cosine_loss: {} targets for a batch of {}",
        targets.len(),
        goodness.ncols()
    );
    batch_mean(goodness, |j, g| squared_cosine_sample_loss(g(0), targets[j] as f64))
}

/// `log Σ_c exp(l_c)` of one column, stable (shifted by the maximum).
#[inline]
fn log_sum_exp(l: &[f32]) -> f32 {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = l.iter().map(|&v| (v - m).exp()).sum();
    m + s.ln()
}

/// Softmax cross-entropy of `logits` (`classes × batch`) against `labels`, averaged over the
/// batch: per sample `log Σ_c exp(l_c) − l_y`, computed with the log-sum-exp shift (stable for
/// large logits); batch sum in `f64`.
///
/// # Panics
/// On a label count different from the batch size or a label `≥ classes`.
pub fn softmax_cross_entropy(logits: &Mat, labels: &[u32]) -> f64 {
    check_labels(logits, labels, logits.nrows(), "softmax_cross_entropy");
    let batch = logits.ncols();
    if batch == 0 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    for (j, &y) in labels.iter().enumerate() {
        let lj = logits.column(j);
        let lj = lj.as_slice();
        let lse = log_sum_exp(lj);
        sum += (lse - lj[y as usize]) as f64;
    }
    sum / batch as f64
}

/// [`softmax_cross_entropy`] with every step in `f64` (the logits are widened first): for
/// logits so small that a per-sample loss of about `ln C` in `f32` cannot resolve how they
/// change under a perturbation. Seed 000's photonic network (SPEC A9) reads the intensities of
/// 10 ports behind the electro-optic activation: on 7 × 7 pooled MNIST 2·10⁻⁵ per port on
/// average (measured at initialisation: 7·10⁻⁴ of an image's 3.06 units of power leave the
/// second mesh), and a ±10⁻³ phase perturbation changes a batch's loss by about 10⁻⁹, while
/// `f32` resolves a loss of `ln 10` to 2.4·10⁻⁷: every directional derivative read exactly
/// zero (`insitu_ffzero::photonic`'s tests). The MLPs keep the `f32` form (their
/// logits are of order 1 and their loss differences of order 10⁻⁴).
///
/// # Panics
/// As [`softmax_cross_entropy`].
pub fn softmax_cross_entropy_f64(logits: &Mat, labels: &[u32]) -> f64 {
    check_labels(logits, labels, logits.nrows(), "softmax_cross_entropy_f64");
    let batch = logits.ncols();
    if batch == 0 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    for (j, &y) in labels.iter().enumerate() {
        let lj = logits.column(j);
        let m = lj.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = lj.iter().map(|&v| (v as f64 - m).exp()).sum();
        sum += m + s.ln() - lj[y as usize] as f64;
    }
    sum / batch as f64
}

/// Squared error summed over the outputs and **averaged over the batch**:
/// `(1/B) Σ_j Σ_k (pred_kj − t_kj)²` for `pred`, `targets` of shape `outputs × batch`. For a
/// one-output regression network this is the usual mean squared error; for `K` outputs it is `K`
/// times the mean over all entries.
///
/// # Panics
/// If the shapes differ.
pub fn mse(pred: &Mat, targets: &Mat) -> f64 {
    assert_eq!(
        pred.shape(),
        targets.shape(),
        "mse: prediction is {:?} but targets are {:?}",
        pred.shape(),
        targets.shape()
    );
    let batch = pred.ncols();
    if batch == 0 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    for j in 0..batch {
        let p = pred.column(j);
        let t = targets.column(j);
        let per_sample: f32 = p
            .as_slice()
            .iter()
            .zip(t.as_slice())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        sum += per_sample as f64;
    }
    sum / batch as f64
}

/// Index of the largest entry of every column of `goodness_or_logits` (`classes × batch`),
/// written into `out` (length = batch). Ties go to the **lowest** index; NaN entries never win
/// (a column of NaNs gives 0).
///
/// # Panics
/// If `out.len()` is not the number of columns.
pub fn predict_classes(goodness_or_logits: &Mat, out: &mut [u32]) {
    assert_eq!(
        out.len(),
        goodness_or_logits.ncols(),
        "predict_classes: output of length {} for {} columns",
        out.len(),
        goodness_or_logits.ncols()
    );
    for (j, o) in out.iter_mut().enumerate() {
        let col = goodness_or_logits.column(j);
        let mut best = 0usize;
        let mut best_v = f32::NEG_INFINITY;
        for (c, &v) in col.iter().enumerate() {
            if v > best_v {
                best = c;
                best_v = v;
            }
        }
        *o = best as u32;
    }
}

// ---------------------------------------------------------------------------------------------
// Vector-Jacobian products (used by the tape). Each writes `dz` (first contribution, `first`)
// or adds to it; `scale` is the upstream gradient of the scalar loss.
// ---------------------------------------------------------------------------------------------

/// What the per-sample goodness gradient `∂ℓ/∂G(c)` is, for [`cosine_backward`].
#[derive(Clone, Copy)]
pub(crate) enum GoodnessGrad<'a> {
    /// Eq. 16: `∂ℓ/∂G(c) = 1[G(c) − G(y) + q > 0]` for `c ≠ y`, `∂ℓ/∂G(y) = −#active`.
    /// ReLU'(0) is taken as 0.
    Margin { labels: &'a [u32], margin: f32 },
    /// Eq. 5: `∂ℓ/∂G(y) = −α`, `∂ℓ/∂G(c) = 1` for `c ≠ y`.
    Eq5 { labels: &'a [u32] },
    /// Eq. 7–8 (one prototype): `∂ℓ/∂G = 2(G − t)`.
    SquaredCosine { targets: &'a [f32] },
    /// An upstream `classes × batch` gradient of the goodness matrix itself.
    Upstream { dg: &'a Mat },
}

#[inline]
fn write_or_add<const FIRST: bool>(d: &mut f32, v: f32) {
    if FIRST {
        *d = v;
    } else {
        *d += v;
    }
}

/// Scratch of [`cosine_backward`], kept by the tape between steps (no allocation once sized).
#[derive(Debug, Default)]
pub(crate) struct CosineScratch {
    /// `g_c = ∂ℓ/∂G(c)` per sample (`classes × batch`).
    coef: Mat,
    /// `Ξ·coef` (`width × batch`).
    v: Mat,
    /// `1/‖z_j‖` and `s_j = Σ_c g_c G(c)` per sample.
    inv_norm: Vec<f32>,
    s: Vec<f32>,
}

/// `dz (=|+=) scale · ∂L/∂z` where `L = (1/B) Σ_j ℓ_j(G_j)` (or, for [`GoodnessGrad::Upstream`],
/// `L = Σ dG ⊙ G`, no `1/B`), with `G(c) = ξ_c·z/‖z‖` given as `goodness` (`classes × batch`,
/// from the forward pass).
///
/// Per column: `∂G(c)/∂z = (ξ_c − G(c)·ẑ)/‖z‖ = (I − ẑẑᵀ)ξ_c/‖z‖`, so with `v = Σ_c g_c ξ_c` and
/// `s = Σ_c g_c G(c)` (`g_c = ∂ℓ/∂G(c)`) the column gradient is `(v − s·z/‖z‖)/‖z‖`; `v` for all
/// columns is one product `Ξ·[g]`. A zero column gets zero gradient.
pub(crate) fn cosine_backward(
    z: &Mat,
    prototypes: &Mat,
    goodness: &Mat,
    kind: GoodnessGrad<'_>,
    scale: f32,
    dz: &mut Mat,
    first: bool,
    scratch: &mut CosineScratch,
) {
    if first {
        cosine_backward_impl::<true>(z, prototypes, goodness, kind, scale, dz, scratch)
    } else {
        cosine_backward_impl::<false>(z, prototypes, goodness, kind, scale, dz, scratch)
    }
}

fn cosine_backward_impl<const FIRST: bool>(
    z: &Mat,
    prototypes: &Mat,
    goodness: &Mat,
    kind: GoodnessGrad<'_>,
    scale: f32,
    dz: &mut Mat,
    scratch: &mut CosineScratch,
) {
    let (width, batch) = z.shape();
    let classes = prototypes.ncols();
    assert_eq!(prototypes.nrows(), width, "cosine_backward: prototype width");
    assert_eq!(dz.shape(), (width, batch), "cosine_backward: gradient shape");
    assert_eq!(goodness.shape(), (classes, batch), "cosine_backward: goodness shape");
    let per_sample = match kind {
        GoodnessGrad::Upstream { .. } => scale,
        _ if batch == 0 => 0.0,
        _ => scale / batch as f32,
    };
    let alpha = classes as f32 - 1.0;
    let CosineScratch {
        coef,
        v,
        inv_norm: inv_norms,
        s: sums,
    } = scratch;
    // Every entry of both is written below (`coef` column by column, `v` by the product).
    set_shape(coef, classes, batch);
    set_shape(v, width, batch);
    inv_norms.resize(batch, 0.0);
    sums.resize(batch, 0.0);
    let zs = z.as_slice();
    for j in 0..batch {
        let inv_n = inv_norm(&zs[j * width..(j + 1) * width]);
        inv_norms[j] = inv_n;
        let g = &goodness.as_slice()[j * classes..(j + 1) * classes];
        let d = &mut coef.as_mut_slice()[j * classes..(j + 1) * classes];
        let mut s = 0.0f32;
        if inv_n == 0.0 {
            d.iter_mut().for_each(|d| *d = 0.0);
            sums[j] = 0.0;
            continue;
        }
        match kind {
            GoodnessGrad::Margin { labels, margin } => {
                let y = labels[j] as usize;
                let gy = g[y];
                let mut active = 0.0f32;
                for c in 0..classes {
                    if c == y {
                        continue;
                    }
                    let on = if g[c] - gy + margin > 0.0 { 1.0 } else { 0.0 };
                    active += on;
                    s += on * g[c];
                    d[c] = on;
                }
                s -= active * gy;
                d[y] = -active;
            }
            GoodnessGrad::Eq5 { labels } => {
                let y = labels[j] as usize;
                for c in 0..classes {
                    let dc = if c == y { -alpha } else { 1.0 };
                    s += dc * g[c];
                    d[c] = dc;
                }
            }
            GoodnessGrad::SquaredCosine { targets } => {
                let dc = 2.0 * (g[0] - targets[j]);
                s = dc * g[0];
                d[0] = dc;
            }
            GoodnessGrad::Upstream { dg } => {
                let dgj = dg.column(j);
                for c in 0..classes {
                    s += dgj[c] * g[c];
                    d[c] = dgj[c];
                }
            }
        }
        sums[j] = s;
    }
    // v = Ξ·coef: every column's Σ_c g_c ξ_c in one product.
    matmul(
        MatMut::from(&mut *v),
        Accum::Replace,
        MatRef::from(prototypes),
        MatRef::from(&*coef),
        1.0,
        Par::Seq,
    );
    let (vs, dzs) = (v.as_slice(), dz.as_mut_slice());
    for j in 0..batch {
        let a = per_sample * inv_norms[j];
        let b = a * sums[j] * inv_norms[j];
        let range = j * width..(j + 1) * width;
        for ((d, &vi), &zi) in dzs[range.clone()].iter_mut().zip(&vs[range.clone()]).zip(&zs[range]) {
            write_or_add::<FIRST>(d, a * vi - b * zi);
        }
    }
}

/// `dl (=|+=) scale · ∂L/∂logits` for [`softmax_cross_entropy`]: `(softmax(l) − onehot(y))/B`.
pub(crate) fn softmax_cross_entropy_backward(logits: &Mat, labels: &[u32], scale: f32, dl: &mut Mat, first: bool) {
    let batch = logits.ncols();
    assert_eq!(
        dl.shape(),
        logits.shape(),
        "softmax_cross_entropy_backward: gradient shape"
    );
    if batch == 0 {
        return;
    }
    let per_sample = scale / batch as f32;
    for (j, &y) in labels.iter().enumerate() {
        let lj = logits.column(j);
        let lj = lj.as_slice();
        let lse = log_sum_exp(lj);
        let dj = dl.column_mut(j);
        let dj = dj.data.into_slice_mut();
        for (c, (d, &l)) in dj.iter_mut().zip(lj).enumerate() {
            let p = (l - lse).exp() - if c == y as usize { 1.0 } else { 0.0 };
            if first {
                *d = per_sample * p;
            } else {
                *d += per_sample * p;
            }
        }
    }
}

/// `dp (=|+=) scale · ∂L/∂pred` for [`mse`]: `2(pred − t)/B`.
pub(crate) fn mse_backward(pred: &Mat, targets: &Mat, scale: f32, dp: &mut Mat, first: bool) {
    assert_eq!(dp.shape(), pred.shape(), "mse_backward: gradient shape");
    let batch = pred.ncols();
    if batch == 0 {
        return;
    }
    let k = 2.0 * scale / batch as f32;
    for ((d, &p), &t) in dp
        .as_mut_slice()
        .iter_mut()
        .zip(pred.as_slice())
        .zip(targets.as_slice())
    {
        if first {
            *d = k * (p - t);
        } else {
            *d += k * (p - t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_tail_lengths() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.91).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-5, "n = {n}");
        }
    }

    #[test]
    fn cross_entropy_in_f64_resolves_what_f32_cannot() {
        // Ordinary logits: both forms agree to f32 rounding.
        let logits = Mat::from_fn(10, 6, |i, j| ((3 * i + 7 * j) % 11) as f32 * 0.37 - 1.5);
        let labels = [0, 3, 9, 2, 5, 5];
        let (a, b) = (
            softmax_cross_entropy(&logits, &labels),
            softmax_cross_entropy_f64(&logits, &labels),
        );
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        // Logits of 10⁻⁷ moved by 10⁻¹⁰ (smaller than the photonic network's BP readout): the f64 form gives
        // the first-order change Σ_j (mean_c δ − δ_y)/B exactly enough; the f32 form reads none.
        let tiny = Mat::from_fn(10, 6, |i, j| 1e-7 * (1.0 + ((i + 2 * j) % 5) as f32));
        let moved = Mat::from_fn(10, 6, |i, j| {
            tiny[(i, j)] + if i == labels[j] as usize { 1e-10 } else { 0.0 }
        });
        let exact: f64 = (0..6)
            .map(|j| {
                let (a, b) = (
                    tiny[(labels[j] as usize, j)] as f64,
                    moved[(labels[j] as usize, j)] as f64,
                );
                -(b - a) * 0.9 // −δ_y + δ_y/10 to first order
            })
            .sum::<f64>()
            / 6.0;
        let d64 = softmax_cross_entropy_f64(&moved, &labels) - softmax_cross_entropy_f64(&tiny, &labels);
        assert!((d64 - exact).abs() < 1e-3 * exact.abs(), "{d64} vs {exact}");
        let d32 = softmax_cross_entropy(&moved, &labels) - softmax_cross_entropy(&tiny, &labels);
        assert!(
            d32.abs() < 1e-3 * exact.abs() || (d32 - exact).abs() > 0.5 * exact.abs(),
            "f32: {d32}"
        );
    }

    #[test]
    fn validate_labels_reports_first_bad_label() {
        assert!(validate_labels(&[0, 1, 2], 3).is_ok());
        let err = validate_labels(&[0, 3, 7], 3).unwrap_err();
        assert_eq!(
            err,
            AutodiffError::LabelOutOfRange {
                index: 1,
                label: 3,
                classes: 3
            }
        );
    }

    #[test]
    fn the_margin_loss_keeps_non_finite_samples_visible() {
        let g = [0.9, 0.1, f64::NAN];
        assert!(margin_sample_loss(3, 0, 0.3, |c| g[c]).is_nan());
        let g = [f64::NAN, 0.1, 0.2];
        assert!(margin_sample_loss(3, 0, 0.3, |c| g[c]).is_nan());
        // Finite samples: Σ_{c≠y} max(0, g(c) − g(y) + q).
        let g = [0.9, 0.1, 0.8];
        assert!((margin_sample_loss(3, 0, 0.3, |c| g[c]) - 0.2).abs() < 1e-12);
        // A NaN column of z gives NaN goodness, hence a NaN batch loss.
        let mut z = Mat::from_element(3, 2, 1.0);
        z[(1, 1)] = f32::NAN;
        assert!(margin_loss(&z, &Mat::identity(3, 3), &[0, 1], 0.3).is_nan());
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn margin_loss_panics_on_bad_label() {
        let z = Mat::from_element(3, 2, 1.0);
        let p = Mat::identity(3, 3);
        margin_loss(&z, &p, &[0, 3], 0.3);
    }
}
