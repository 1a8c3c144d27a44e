//! The check shared by the tests of the kernels that promise faer's bits (`rows_to_columns`,
//! `short_k`): every element of `C` one fused multiply-add chain over `p` in order from zero.

use insitu_linalg::{Accum, MatRef};
use rand::Rng;

/// `len` values uniform in [−1, 1).
pub fn random(len: usize, g: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| g.random_range(-1.0f32..1.0)).collect()
}

/// Asserts that every element `(i, j)` of the `m × n` product in `c` (column-major, columns
/// `ldc` apart) is `chain = fma(A[i, k−1], B[k−1, j], … fma(A[i, 0], B[0, j], 0))`, stored as is
/// (`Replace`) or added to the element of `before` (`Add`: `before + chain`), and that the rows
/// between `m` and `ldc` still hold `before`'s values. `case` names the case in a failure.
pub fn assert_chains(
    c: &[f32],
    before: &[f32],
    ldc: usize,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    accum: Accum,
    case: &str,
) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    for j in 0..n {
        for i in 0..m {
            let mut chain = 0.0f32;
            for p in 0..k {
                chain = a.get(i, p).mul_add(b.get(p, j), chain);
            }
            let expected = match accum {
                Accum::Replace => chain,
                Accum::Add => before[j * ldc + i] + chain,
            };
            let got = c[j * ldc + i];
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{case}: C[{i}, {j}] = {got}, chain {expected}"
            );
        }
        for i in m..ldc.min(c.len() - j * ldc) {
            assert_eq!(
                c[j * ldc + i].to_bits(),
                before[j * ldc + i].to_bits(),
                "{case}: padding row {i} of column {j}"
            );
        }
    }
}
