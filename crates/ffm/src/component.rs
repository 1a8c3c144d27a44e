//! Fixed linear propagation components `T` (seed 002 Methods, "Free-space neural network":
//! `Y = T(M·X)`), behind one small trait so the FFM core does not care whether `T` is a dense
//! matrix (tests, small integrated circuits) or an FFT-based free-space propagator.

use insitu_linalg::{matmul, Accum, GemmScalar, MatMut, MatRef, Par};
use nalgebra::DMatrix;
use num_complex::Complex;

use crate::scalar::Real;

/// A fixed linear map applied to a field in place: `field ← T·field`.
///
/// FFM needs nothing else from a component: the error propagation is a *forward* application
/// of the same `T`, which equals the adjoint's job exactly when `T = Tᵀ` (reciprocity).
pub trait Propagation<F: Real>: Send {
    /// Number of complex entries of the fields this component maps (`n·n` for an `n×n` grid).
    fn field_len(&self) -> usize;
    /// `field ← T·field`.
    fn propagate(&mut self, field: &mut [Complex<F>]);
}

/// A component whose adjoint `Tᴴ` the *digital model* can apply: what reverse-mode
/// differentiation (the baseline FFM replaces) needs. Physical systems never offer this.
pub trait AdjointPropagation<F: Real>: Propagation<F> {
    /// `field ← Tᴴ·field`.
    fn propagate_adjoint(&mut self, field: &mut [Complex<F>]);
}

/// A dense complex transfer matrix `T` (`n × n`), for tests and small systems.
#[derive(Clone, Debug)]
pub struct DenseTransfer<F: Real> {
    matrix: DMatrix<Complex<F>>,
    scratch: Vec<Complex<F>>,
}

impl<F: Real> DenseTransfer<F>
where
    Complex<F>: GemmScalar,
{
    /// Wraps a square matrix. Returns `None` when it is not square.
    pub fn new(matrix: DMatrix<Complex<F>>) -> Option<Self> {
        if matrix.nrows() != matrix.ncols() {
            return None;
        }
        let n = matrix.nrows();
        Some(Self {
            matrix,
            scratch: vec![Complex::new(F::zero(), F::zero()); n],
        })
    }

    /// The matrix `T`.
    pub fn matrix(&self) -> &DMatrix<Complex<F>> {
        &self.matrix
    }

    /// Largest `|T_ij − T_ji|` divided by the largest `|T_ij|`: zero for a reciprocal component.
    pub fn asymmetry(&self) -> F {
        let n = self.matrix.nrows();
        let mut num = F::zero();
        let mut den = F::zero();
        for i in 0..n {
            for j in 0..n {
                num = num.max((self.matrix[(i, j)] - self.matrix[(j, i)]).norm_sqr().sqrt());
                den = den.max(self.matrix[(i, j)].norm_sqr().sqrt());
            }
        }
        if den > F::zero() {
            num / den
        } else {
            F::zero()
        }
    }

    fn apply(&mut self, field: &mut [Complex<F>], adjoint: bool) {
        let n = self.matrix.nrows();
        assert_eq!(
            field.len(),
            n,
            "DenseTransfer: field of {} entries for a {n}×{n} matrix",
            field.len()
        );
        let a = MatRef::from(&self.matrix);
        let a = if adjoint { a.adjoint() } else { a };
        matmul(
            MatMut::from_col_major(&mut self.scratch, n, 1),
            Accum::Replace,
            a,
            MatRef::from_col_major(field, n, 1),
            <Complex<F> as GemmScalar>::one(),
            Par::Seq,
        );
        field.copy_from_slice(&self.scratch);
    }
}

impl<F: Real> Propagation<F> for DenseTransfer<F>
where
    Complex<F>: GemmScalar,
{
    fn field_len(&self) -> usize {
        self.matrix.nrows()
    }
    fn propagate(&mut self, field: &mut [Complex<F>]) {
        self.apply(field, false);
    }
}

impl<F: Real> AdjointPropagation<F> for DenseTransfer<F>
where
    Complex<F>: GemmScalar,
{
    fn propagate_adjoint(&mut self, field: &mut [Complex<F>]) {
        self.apply(field, true);
    }
}

/// Free-space propagation (band-limited angular spectrum etc., insitu-optics): symmetric on the
/// grid (`T = Tᵀ`, SPEC B1), so FFM's forward error pass is exact for it.
impl Propagation<f32> for insitu_optics::FreeSpace {
    fn field_len(&self) -> usize {
        self.grid().n * self.grid().n
    }
    fn propagate(&mut self, field: &mut [Complex<f32>]) {
        insitu_optics::FreeSpace::propagate(self, field);
    }
}
