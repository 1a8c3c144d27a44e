//! Haar-random orthogonal, special orthogonal and unitary matrices, and QR.
//!
//! Seed 000, Supplementary Information 1: the prototypes' random orientation is `T ∈ SO(d)`
//! drawn from the Haar measure: QR of a `d×d` matrix of i.i.d. standard normals,
//! `Q ← Q·diag(sign R_ii)` (Mezzadri 2007: without this correction Q is not Haar), and
//! rejection (resampling) while `det Q < 0`. The unitary sampler is the complex analogue with
//! `Q ← Q·diag(R_ii/|R_ii|)`.

use nalgebra::{ComplexField, DMatrix, RealField};
use num_complex::Complex;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A QR factorisation `A = Q·R` with `Q` (m×min(m,n)) having orthonormal columns and `R`
/// (min(m,n)×n) upper triangular.
#[derive(Clone, Debug)]
pub struct Qr<T: ComplexField> {
    /// Orthonormal (unitary) factor.
    pub q: DMatrix<T>,
    /// Upper-triangular factor.
    pub r: DMatrix<T>,
}

/// QR factorisation by Householder reflections (nalgebra), real or complex.
pub fn qr<T: ComplexField>(a: DMatrix<T>) -> Qr<T> {
    let f = a.qr();
    Qr { q: f.q(), r: f.r() }
}

fn gaussian_matrix<T: RealField + Copy, R: Rng + ?Sized>(d: usize, rng: &mut R) -> DMatrix<T>
where
    StandardNormal: Distribution<T>,
{
    DMatrix::from_fn(d, d, |_, _| rng.sample(StandardNormal))
}

/// A `d×d` orthogonal matrix drawn from the Haar measure on O(d).
pub fn haar_orthogonal<T: RealField + Copy, R: Rng + ?Sized>(d: usize, rng: &mut R) -> DMatrix<T>
where
    StandardNormal: Distribution<T>,
{
    let Qr { mut q, r } = qr(gaussian_matrix::<T, R>(d, rng));
    for j in 0..d {
        if r[(j, j)] < T::zero() {
            q.column_mut(j).neg_mut();
        }
    }
    q
}

/// A `d×d` rotation drawn from the Haar measure on SO(d) (seed 000, Supplementary 1):
/// Haar O(d) samples are drawn until one has `det > 0`.
pub fn haar_special_orthogonal<T: RealField + Copy, R: Rng + ?Sized>(d: usize, rng: &mut R) -> DMatrix<T>
where
    StandardNormal: Distribution<T>,
{
    loop {
        let q = haar_orthogonal::<T, R>(d, rng);
        if d == 0 || q.clone().determinant() > T::zero() {
            return q;
        }
    }
}

/// An `n×n` unitary matrix drawn from the Haar measure on U(n) (complex Gaussian QR with the
/// phases of `R`'s diagonal removed).
pub fn haar_unitary<T: RealField + Copy, R: Rng + ?Sized>(n: usize, rng: &mut R) -> DMatrix<Complex<T>>
where
    StandardNormal: Distribution<T>,
{
    let a = DMatrix::from_fn(n, n, |_, _| {
        Complex::new(rng.sample(StandardNormal), rng.sample(StandardNormal))
    });
    let Qr { mut q, r } = qr(a);
    for j in 0..n {
        let d = r[(j, j)];
        let m = ComplexField::modulus(d);
        if m > T::zero() {
            let phase = d / Complex::new(m, T::zero());
            for i in 0..n {
                q[(i, j)] *= phase;
            }
        }
    }
    q
}
