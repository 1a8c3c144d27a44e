//! The check shared by the tests of the kernels that promise faer's bits (`rows_to_columns`,
//! `short_k`): every element of `C` one fused multiply-add chain over `p` in order from zero.

use insitu_linalg::{matmul, Accum, MatMut, MatRef, Par};
use rand::Rng;

/// `len` values uniform in [−1, 1).
pub fn random(len: usize, g: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| g.random_range(-1.0f32..1.0)).collect()
}

/// `C (m × n) ← A (m × k) · B (k × n)` (or `C + …`) through `matmul` with α = 1 on random
/// operands, then [`assert_chains`]. `A` column-major, or (if `a_by_rows`) a transposed view
/// with contiguous rows; `B` stored by rows (`b_by_rows`: e.g. `Xᵀ` of a weight gradient) or by
/// columns, its contiguous lines `ldb` apart; `C` column-major with leading dimension `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn check_product(
    (m, k, n): (usize, usize, usize),
    ldc: usize,
    ldb: usize,
    a_by_rows: bool,
    b_by_rows: bool,
    accum: Accum,
    par: Par,
    g: &mut impl Rng,
) {
    let a = random(m * k, g);
    let b = random(ldb * if b_by_rows { k } else { n }, g);
    let before = random(ldc * n, g);
    let a_view = if a_by_rows {
        MatRef::from_col_major(&a, k, m).t()
    } else {
        MatRef::from_col_major(&a, m, k)
    };
    let b_view = if b_by_rows {
        MatRef::from_row_major_strided(&b, k, n, ldb)
    } else {
        // k × n with columns ldb apart: a transposed by-rows view of an n × k matrix.
        MatRef::from_row_major_strided(&b, n, k, ldb).t()
    };
    let mut c = before.clone();
    // C: m × n, columns ldc apart (a transposed by-rows view of an n × m matrix).
    matmul(
        MatMut::from_row_major_strided(&mut c, n, m, ldc).t(),
        accum,
        a_view,
        b_view,
        1.0,
        par,
    );
    let case =
        format!("({m}, {k}, {n}) ldc {ldc} ldb {ldb} A by rows {a_by_rows} B by rows {b_by_rows} {accum:?} {par:?}");
    assert_chains(&c, &before, ldc, a_view, b_view, accum, &case);
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
