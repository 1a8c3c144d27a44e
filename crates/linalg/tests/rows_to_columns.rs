//! `matmul` with `B` stored by rows and `C` by columns — a weight gradient `dZ·Xᵀ` — at few
//! rows (the `rows_to_columns` kernel) and at more rows (faer): both must give every element
//! as one fused multiply-add chain over `p` in order from zero, stored (`Replace`) or added to
//! `C` (`Add`), for `k ≤ 512`. That shared order is why sending the few-row products to the
//! kernel changed no trained number. Fixed seed; many shapes, strides and thread counts.

mod common;

use common::check_product;
use insitu_linalg::{rng, Accum, Par};

// Each case: `C (m × n) ← dZ (m × k) · Xᵀ` (or `C + …`), `Xᵀ` stored by rows (`X`'s columns,
// `ldx` apart), `C` by columns (`ldc` apart), `dZ` by columns or rows (`common::check_product`).

#[test]
fn few_rows_by_rows_into_columns_are_single_chains() {
    let mut g = rng(20261124);
    // Every row count the kernel takes, tails of n (16 lanes, 48-column panels) and k.
    let mut cases = 0;
    for m in 2..=24 {
        for &(k, n) in &[
            (2, 16),
            (3, 17),
            (16, 31),
            (64, 48),
            (100, 49),
            (256, 100),
            (300, 130),
            (512, 20),
        ] {
            let accum = if (m + k) % 2 == 0 { Accum::Replace } else { Accum::Add };
            let (ldc, ldx) = if m % 3 == 0 { (m + 5, n + 3) } else { (m, n) };
            check_product((m, k, n), ldc, ldx, m % 4 == 1, true, accum, Par::Seq, &mut g);
            cases += 1;
        }
    }
    assert_eq!(cases, 23 * 8);
}

#[test]
fn more_rows_go_through_faer_with_the_same_chains() {
    // The premise of routing few rows to the kernel: faer's sums for this layout are the same
    // chains (up to k = 512; at k = 1000 they are not, and the kernel does not apply there).
    let mut g = rng(7);
    for &(m, k, n) in &[
        (25, 256, 100),
        (50, 256, 784),
        (100, 256, 784),
        (100, 512, 100),
        (100, 80, 784),
        (33, 17, 40),
    ] {
        for accum in [Accum::Replace, Accum::Add] {
            check_product((m, k, n), m, n, false, true, accum, Par::Seq, &mut g);
        }
    }
}

#[test]
fn threads_do_not_change_the_bits() {
    // 2·24·512·1700 ≈ 42 MFLOP: above the kernel's threshold for splitting its panels.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let mut g = rng(3);
    pool.install(|| {
        check_product(
            (24, 512, 1700),
            24,
            1700,
            false,
            true,
            Accum::Replace,
            Par::Rayon(2),
            &mut g,
        )
    });
}
