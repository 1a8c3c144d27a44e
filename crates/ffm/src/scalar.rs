//! The real scalar the FFM core is generic over: `f32` for training kernels, `f64` for
//! gradient checks (the adjoint-equality tests run at 1e-10 relative).

use nalgebra::RealField;
use num_complex::Complex;

/// `f32` or `f64`: the real type of a field's components.
pub trait Real: RealField + Copy + Send + Sync + sealed::Sealed {
    /// Conversion from a literal or an `f64` computation.
    fn of(x: f64) -> Self;
    /// Conversion to `f64` (for sums and reports).
    fn to_f64(self) -> f64;
    /// Whether `a` and `b` are the same value bit for bit (`0.0` and `−0.0` differ; a NaN
    /// equals only its own bits).
    fn same_bits(a: Self, b: Self) -> bool;
    /// `e^{iθ}`.
    fn cis(theta: Self) -> Complex<Self> {
        let (s, c) = theta.sin_cos();
        Complex::new(c, s)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    fn same_bits(a: Self, b: Self) -> bool {
        a.to_bits() == b.to_bits()
    }
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn same_bits(a: Self, b: Self) -> bool {
        a.to_bits() == b.to_bits()
    }
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}
