//! The forward-only loss functions against naive `f64` implementations of the equations
//! (tests/common), at the shapes the experiments use as well as tiny ones.

mod common;

use common::*;
use insitu_autodiff::loss;
use insitu_linalg::{rng, Mat, Mat64};
use rand::Rng;

/// `f32` per-sample terms summed in `f64`: relative agreement to 1e-5 with an all-`f64`
/// computation (per-sample rounding ~1e-7 · width); a wrong sign or index is off by O(1).
const TOL: f64 = 1e-5;

#[track_caller]
fn close(name: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL * want.abs().max(1.0),
        "{name}: {got} vs reference {want}"
    );
}

fn labels(r: &mut insitu_linalg::Rng64, batch: usize, classes: usize) -> Vec<u32> {
    (0..batch).map(|_| r.random_range(0..classes as u32)).collect()
}

#[test]
fn cosine_goodness_matches_reference_and_zero_column_is_zero() {
    for (width, batch, classes, seed) in [(6, 4, 3, 1), (100, 37, 10, 2), (17, 5, 17, 3)] {
        let mut r = rng(seed);
        let mut z = rand_mat(&mut r, width, batch);
        z.column_mut(batch / 2).fill(0.0);
        let p = rand_prototypes(&mut r, width, classes);
        let mut g = Mat::zeros(classes, batch);
        loss::cosine_goodness(&z, &p, &mut g);
        let want = goodness_matrix64(&to64(&z), &to64(&p));
        for (a, b) in g.iter().zip(want.iter()) {
            assert!((*a as f64 - b).abs() < 1e-6, "goodness {a} vs {b}");
        }
        assert!(g.column(batch / 2).iter().all(|v| *v == 0.0));
    }
}

#[test]
fn margin_and_eq5_losses_match_reference() {
    for (width, batch, classes, seed) in [(6, 4, 3, 4), (100, 256, 10, 5), (12, 9, 12, 6)] {
        let mut r = rng(seed);
        let mut z = rand_mat(&mut r, width, batch);
        z.column_mut(0).fill(0.0); // zero column: goodness 0, per-sample margin loss (C−1)·q
        let p = rand_prototypes(&mut r, width, classes);
        let y = labels(&mut r, batch, classes);
        let (z64, p64) = (to64(&z), to64(&p));
        for q in [0.0f32, 0.3, 1.0] {
            close(
                "margin",
                loss::margin_loss(&z, &p, &y, q),
                margin64(&z64, &p64, &y, q as f64),
            );
        }
        close("eq5", loss::eq5_loss(&z, &p, &y), eq5_64(&z64, &p64, &y));
    }
}

#[test]
fn margin_loss_of_zero_batch_member_is_margin_times_other_classes() {
    let p = Mat::identity(4, 4);
    let z = Mat::zeros(4, 1);
    let l = loss::margin_loss(&z, &p, &[2], 0.25);
    assert!((l - 3.0 * 0.25).abs() < 1e-7, "{l}");
}

#[test]
fn squared_cosine_loss_matches_reference() {
    let mut r = rng(7);
    let z = rand_mat(&mut r, 30, 64);
    let p = rand_prototypes(&mut r, 30, 1);
    let t: Vec<f32> = (0..64).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let p64: Vec<f64> = p.iter().map(|v| *v as f64).collect();
    let t64: Vec<f64> = t.iter().map(|v| *v as f64).collect();
    close(
        "squared cosine",
        loss::squared_cosine_loss(&z, p.as_slice(), &t),
        sqcos64(&to64(&z), &p64, &t64),
    );
}

#[test]
fn softmax_cross_entropy_matches_reference_and_is_shift_stable() {
    let mut r = rng(8);
    let logits = rand_mat(&mut r, 10, 50) * 4.0;
    let y = labels(&mut r, 50, 10);
    let l = loss::softmax_cross_entropy(&logits, &y);
    close("cross-entropy", l, ce64(&to64(&logits), &y));
    // Softmax is shift-invariant per column; a naive exp would overflow at +1000.
    let shifted = logits.map(|v| v + 1000.0);
    let ls = loss::softmax_cross_entropy(&shifted, &y);
    assert!(ls.is_finite());
    assert!((ls - l).abs() < 1e-3, "{ls} vs {l}");
}

#[test]
fn mse_is_batch_mean_of_summed_squares() {
    let mut r = rng(9);
    let pred = rand_mat(&mut r, 3, 20);
    let t = rand_mat(&mut r, 3, 20);
    let want: f64 = (to64(&pred) - to64(&t)).iter().map(|e| e * e).sum::<f64>() / 20.0;
    close("mse", loss::mse(&pred, &t), want);
    let one = Mat64::from_row_slice(1, 2, &[1.0, 3.0]);
    let l = loss::mse(&one.map(|v| v as f32), &Mat::zeros(1, 2));
    assert_eq!(l, 5.0); // (1² + 3²)/2
}

#[test]
fn predict_classes_takes_argmax_with_lowest_index_on_ties() {
    let mut r = rng(10);
    let g = rand_mat(&mut r, 7, 30);
    let mut out = vec![0u32; 30];
    loss::predict_classes(&g, &mut out);
    for (j, &o) in out.iter().enumerate() {
        let col = g.column(j);
        let best = col.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(col[o as usize], best);
    }
    let tie = Mat::from_column_slice(4, 2, &[0.1, 0.5, 0.5, 0.2, 1.0, 1.0, 1.0, 1.0]);
    let mut out = vec![9u32; 2];
    loss::predict_classes(&tie, &mut out);
    assert_eq!(out, vec![1, 0]);
}
