//! `matmul` with a short inner dimension (`k < 16`) and `B` stored by columns — a layer's
//! backward `Wᵀ·dY` or the goodness gradient `Ξ·dP` against 10 prototypes — at every row count:
//! every element must be one fused multiply-add chain over `p` in order from zero, stored
//! (`Replace`) or added to `C` (`Add`), for `α = 1`. Fixed seed; many shapes, strides and
//! thread counts.

mod common;

use common::{assert_chains, random};
use insitu_linalg::{matmul, rng, Accum, MatMut, MatRef, Par};
use rand::Rng;

/// The shapes: row counts around the kernels' boundaries (up to 12 rows the few-row kernel's
/// rows in lanes, 13 and more the short-`k` panels of 1 to 4 registers, 100 = 4 + 3 registers),
/// every `k` from 2 to 15 that matters (10: the classes), column counts below, at and past one
/// panel; `A` by columns (`Ξ`) and by rows (`Wᵀ`, packed by gathers); `C` and `B` with leading
/// dimensions past their row counts.
///
/// `C (m × n) ← A (m × k) · B (k × n)` (or `C + …`), `B` column-major with leading dimension
/// `ldb`, `C` column-major with leading dimension `ldc`, `A` column-major or (if `a_by_rows`)
/// a transposed view; every element checked against the chain, the padding rows unchanged.
#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    k: usize,
    n: usize,
    ldc: usize,
    ldb: usize,
    a_by_rows: bool,
    accum: Accum,
    par: Par,
    g: &mut impl Rng,
) {
    let a = random(m * k, g);
    let b = random(ldb * n, g);
    let before = random(ldc * n, g);
    let a_view = if a_by_rows {
        MatRef::from_col_major(&a, k, m).t()
    } else {
        MatRef::from_col_major(&a, m, k)
    };
    // B: k × n, columns ldb apart (a transposed by-rows view of an n × k matrix).
    let b_view = MatRef::from_row_major_strided(&b, n, k, ldb).t();
    let mut c = before.clone();
    matmul(
        MatMut::from_row_major_strided(&mut c, n, m, ldc).t(),
        accum,
        a_view,
        b_view,
        1.0,
        par,
    );
    let case = format!("({m}, {k}, {n}) ldc {ldc} ldb {ldb} A by rows {a_by_rows} {accum:?} {par:?}");
    assert_chains(&c, &before, ldc, a_view, b_view, accum, &case);
}

#[test]
fn every_element_is_one_chain_in_p_order() {
    let mut g = rng(31);
    for m in [1usize, 4, 10, 12, 13, 16, 17, 31, 32, 48, 50, 63, 64, 65, 100, 128, 130] {
        for k in [2usize, 3, 7, 10, 15] {
            for n in [2usize, 5, 16, 37, 256] {
                for (accum, a_by_rows) in [
                    (Accum::Replace, false),
                    (Accum::Add, true),
                    (Accum::Replace, true),
                    (Accum::Add, false),
                ] {
                    let par = if n == 256 && m >= 100 { Par::Rayon(2) } else { Par::Seq };
                    check(m, k, n, m + (n % 3), k + (m % 2), a_by_rows, accum, par, &mut g);
                }
            }
        }
    }
}
