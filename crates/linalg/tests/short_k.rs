//! `matmul` with a short inner dimension (`k < 16`) and `B` stored by columns — a layer's
//! backward `Wᵀ·dY` or the goodness gradient `Ξ·dP` against 10 prototypes — at every row count:
//! every element must be one fused multiply-add chain over `p` in order from zero, stored
//! (`Replace`) or added to `C` (`Add`), for `α = 1`. Fixed seed; many shapes, strides and
//! thread counts.

mod common;

use common::check_product;
use insitu_linalg::{rng, Accum, Par};

/// The shapes: row counts around the kernels' boundaries (up to 12 rows the few-row kernel's
/// rows in lanes, 13 and more the short-`k` panels of 1 to 4 registers, 100 = 4 + 3 registers),
/// every `k` from 2 to 15 that matters (10: the classes), column counts below, at and past one
/// panel; `A` by columns (`Ξ`) and by rows (`Wᵀ`, packed by gathers); `C` and `B` with leading
/// dimensions past their row counts (`common::check_product`: every element checked against the
/// chain, the padding rows unchanged).

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
                    check_product(
                        (m, k, n),
                        m + (n % 3),
                        k + (m % 2),
                        a_by_rows,
                        false,
                        accum,
                        par,
                        &mut g,
                    );
                }
            }
        }
    }
}
