//! FFM and adjoint gradients of a small dense system given as plain data — what
//! `insitu ffm gradient --system FILE` prints (issue 6, SPEC B2).
//!
//! Layer `l` applies its phase mask, then its transfer matrix: `y = T_L M_L ⋯ T_1 M_1 x`. The
//! FFM gradient is computed by the physical procedure (data pass, then `conj(∂L/∂ȳ)` sent
//! *forward* through `T_l` itself) whether or not `T_l` is symmetric, so a non-reciprocal
//! transfer shows what symmetry buys: the FFM gradient then differs from the reverse-mode
//! (adjoint, `T_lᴴ`) one. Everything is f64.

use nalgebra::DMatrix;
use num_complex::Complex64;

use crate::component::DenseTransfer;
use crate::gradient::{adjoint_gradient, ffm_gradient, FfmWorkspace};
use crate::loss::FieldLoss;
use crate::system::DigitalChain;
use crate::FfmError;

/// One layer of a dense system: a phase mask, then a transfer matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// Phase of the mask, one entry per field entry (radians).
    pub phase: Vec<f64>,
    /// The `n × n` transfer matrix `T`, row-major (`transfer[i·n + j] = T_ij`).
    pub transfer: Vec<Complex64>,
}

/// The loss on the output `y` of a dense system (sums over entries, not means).
#[derive(Clone, Debug, PartialEq)]
pub enum DenseLoss {
    /// `L = Σ |y − t|²` against a complex target field.
    FieldMse(Vec<Complex64>),
    /// `L = Σ (|y|² − I)²` against a real target intensity.
    IntensityMse(Vec<f64>),
}

/// Loss and both gradients of a dense system, one list per mask in data-pass order.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSystemGradients {
    /// The loss at the given phases.
    pub loss: f64,
    /// `∂L/∂φ_l` as the FFM procedure measures it (forward error propagation through `T_l`).
    pub ffm: Vec<Vec<f64>>,
    /// `∂L/∂φ_l` by reverse mode (`T_lᴴ`): the true gradient.
    pub adjoint: Vec<Vec<f64>>,
    /// Per layer `‖T − Tᵀ‖_F / ‖T‖_F` (0 for a zero matrix): 0 exactly when FFM is exact there.
    pub asymmetry: Vec<f64>,
}

/// `‖T − Tᵀ‖_F / ‖T‖_F` of a row-major `n × n` matrix (0 when `T = 0`).
pub fn transpose_asymmetry(transfer: &[Complex64], n: usize) -> f64 {
    assert_eq!(transfer.len(), n * n, "transpose_asymmetry: n·n entries");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for i in 0..n {
        for j in 0..n {
            num += (transfer[i * n + j] - transfer[j * n + i]).norm_sqr();
            den += transfer[i * n + j].norm_sqr();
        }
    }
    if den > 0.0 {
        (num / den).sqrt()
    } else {
        0.0
    }
}

/// The loss, the FFM gradient, the adjoint gradient and the per-layer asymmetry of the dense
/// system `layers` at input `x`.
///
/// Errors ([`FfmError::InvalidSpec`]) on: no layer, an empty input, a mask or target whose
/// length is not `n = x.len()`, a transfer with other than `n²` entries, or a non-finite value.
pub fn gradients_of_dense_system(
    x: &[Complex64],
    layers: &[DenseLayer],
    loss: &DenseLoss,
) -> Result<DenseSystemGradients, FfmError> {
    let bad = |m: String| Err(FfmError::InvalidSpec(m));
    let n = x.len();
    if n == 0 {
        return bad("the input field x is empty".into());
    }
    if layers.is_empty() {
        return bad("the system has no layer".into());
    }
    let finite_c = |v: &[Complex64]| v.iter().all(|z| z.re.is_finite() && z.im.is_finite());
    if !finite_c(x) {
        return bad("the input field x has a non-finite entry".into());
    }
    for (l, layer) in layers.iter().enumerate() {
        if layer.phase.len() != n {
            return bad(format!(
                "layer {l}: phase has {} entries, the field has {n}",
                layer.phase.len()
            ));
        }
        if layer.transfer.len() != n * n {
            return bad(format!(
                "layer {l}: transfer has {} entries, a {n}×{n} matrix needs {}",
                layer.transfer.len(),
                n * n
            ));
        }
        if !layer.phase.iter().all(|p| p.is_finite()) || !finite_c(&layer.transfer) {
            return bad(format!("layer {l}: non-finite phase or transfer entry"));
        }
    }
    let target_ok = match loss {
        DenseLoss::FieldMse(t) => t.len() == n && finite_c(t),
        DenseLoss::IntensityMse(t) => t.len() == n && t.iter().all(|v| v.is_finite()),
    };
    if !target_ok {
        return bad(format!("the target must have {n} finite entries"));
    }
    let field_loss = match loss {
        DenseLoss::FieldMse(t) => FieldLoss::FieldMse(t),
        DenseLoss::IntensityMse(t) => FieldLoss::IntensityMse(t),
    };
    let transfers: Vec<DenseTransfer<f64>> = layers
        .iter()
        .map(|l| DenseTransfer::new(DMatrix::from_row_slice(n, n, &l.transfer)).expect("square by construction"))
        .collect();
    let mut chain = DigitalChain::new(transfers).expect("non-empty, equal field lengths");
    let phases: Vec<Vec<f64>> = layers.iter().map(|l| l.phase.clone()).collect();
    let mut ws = FfmWorkspace::new(layers.len(), n);
    let mut ffm = vec![vec![0.0; n]; layers.len()];
    let mut adjoint = vec![vec![0.0; n]; layers.len()];
    let value = ffm_gradient(&mut chain, &phases, &[], x, &field_loss, &mut ws, &mut ffm, 0);
    adjoint_gradient(&mut chain, &phases, &[], x, &field_loss, &mut ws, &mut adjoint);
    let asymmetry = layers.iter().map(|l| transpose_asymmetry(&l.transfer, n)).collect();
    Ok(DenseSystemGradients {
        loss: value,
        ffm,
        adjoint,
        asymmetry,
    })
}
