//! The crate's error type.

use thiserror::Error;

/// Bad input to an optics constructor or operation. Every public fallible function returns this;
/// no library function panics on bad parameters.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OpticsError {
    /// A grid, mesh or region has size zero.
    #[error("size must be positive, got {what} = 0")]
    ZeroSize {
        /// Which size was zero.
        what: &'static str,
    },
    /// A physical length or rate that must be strictly positive and finite was not.
    #[error("{what} must be positive and finite, got {value}")]
    NonPositive {
        /// The parameter's name.
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A parameter that must be finite was NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NotFinite {
        /// The parameter's name.
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A parameter lies outside its allowed range.
    #[error("{what} = {value} is outside its allowed range {range}")]
    OutOfRange {
        /// The parameter's name.
        what: &'static str,
        /// The rejected value.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// Two sizes that must agree do not.
    #[error("size mismatch for {what}: expected {expected}, got {got}")]
    SizeMismatch {
        /// What was being matched.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// The matrix handed to the Clements decomposition is not unitary within the tolerance.
    #[error("matrix is not unitary: max |U^H U - I| = {deviation:e} exceeds tolerance {tolerance:e}")]
    NotUnitary {
        /// The largest entry of |U^H U − I|.
        deviation: f64,
        /// The tolerance used.
        tolerance: f64,
    },
    /// A layout (e.g. detector regions) does not fit on the grid.
    #[error("layout does not fit: {0}")]
    DoesNotFit(String),
}

/// Checks that `value` is positive and finite.
pub(crate) fn positive(what: &'static str, value: f64) -> Result<f64, OpticsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(OpticsError::NonPositive { what, value })
    }
}

/// Checks that `value` is finite.
pub(crate) fn finite(what: &'static str, value: f64) -> Result<f64, OpticsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(OpticsError::NotFinite { what, value })
    }
}
