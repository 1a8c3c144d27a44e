//! Gradient checks of every tape op against central finite differences.
//!
//! Two independent checks per op:
//! 1. the tape's (`f32`) gradient against `f64` central differences (h = 1e-6) of a naive `f64`
//!    re-implementation of the same function (tests/common): checks the hand-derived formulas
//!    to 1e-4 of the gradient's scale (see `common::TOL_F64_REF` for why that tolerance);
//! 2. for the losses, the tape's gradient against `f32`-input central differences (h = 1e-2) of
//!    the crate's own forward functions in [`insitu_autodiff::loss`]: checks that the tape
//!    differentiates exactly the function the forward-only trainers evaluate. `f32` rounding
//!    of the loss (~1e-7 relative) over a step of 1e-2 leaves ~1e-5 relative noise and the
//!    O(h²) truncation error is ~1e-4, so we require cosine similarity > 0.9999 of the whole
//!    gradient and a 1e-2 relative error.

mod common;

use common::*;
use insitu_autodiff::{loss, Tape};
use insitu_linalg::{rng, Mat, Mat64};
use rand::Rng;

const H: f64 = 1e-6;

fn labels(rng: &mut insitu_linalg::Rng64, batch: usize, classes: usize) -> Vec<u32> {
    (0..batch).map(|_| rng.random_range(0..classes as u32)).collect()
}

#[track_caller]
fn assert_fd_f32_close(name: &str, analytic: &Mat, fd: &Mat64) {
    let c = cosine(analytic, fd);
    let e = rel_err(analytic, fd);
    assert!(
        c > 0.9999 && e < 1e-2,
        "{name}: f32 finite differences disagree (cosine {c}, rel err {e:.3e})"
    );
}

#[test]
fn matmul_gradient_both_operands() {
    let mut r = rng(1);
    let w = rand_mat(&mut r, 3, 4);
    let x = rand_mat(&mut r, 4, 5);
    let t = rand_mat(&mut r, 3, 5);
    let mut tape = Tape::new();
    let wv = tape.param(&w);
    let xv = tape.param(&x);
    let y = tape.matmul(wv, xv);
    let l = tape.mse(y, &t);
    tape.backward(l);
    let (w64, x64, t64) = (to64(&w), to64(&x), to64(&t));
    let gw = fd_grad(&w64, H, |w| mse64(&(w * &x64), &t64));
    let gx = fd_grad(&x64, H, |x| mse64(&(&w64 * x), &t64));
    assert_grad_close("dW", tape.grad(wv).unwrap(), &gw);
    assert_grad_close("dx", tape.grad(xv).unwrap(), &gx);
}

#[test]
fn matmul_of_a_node_with_itself_accumulates() {
    // Y = A·A: dA receives both dY·Aᵀ and Aᵀ·dY (Replace, then Add).
    let mut r = rng(2);
    let a = rand_mat(&mut r, 4, 4);
    let t = rand_mat(&mut r, 4, 4);
    let mut tape = Tape::new();
    let av = tape.param(&a);
    let y = tape.matmul(av, av);
    let l = tape.mse(y, &t);
    tape.backward(l);
    let (a64, t64) = (to64(&a), to64(&t));
    let g = fd_grad(&a64, H, |a| mse64(&(a * a), &t64));
    assert_grad_close("d(A·A)", tape.grad(av).unwrap(), &g);
}

#[test]
fn relu_and_matmul_paths_accumulate_into_one_node() {
    // Y = relu(Z)·Z: Z's gradient is the sum of the ReLU path and the matmul path.
    let mut r = rng(3);
    let mut z = rand_mat(&mut r, 4, 4);
    z.iter_mut().for_each(|v| {
        if v.abs() < 0.05 {
            *v += 0.1
        }
    });
    let t = rand_mat(&mut r, 4, 4);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let rz = tape.relu(zv);
    let y = tape.matmul(rz, zv);
    let l = tape.mse(y, &t);
    tape.backward(l);
    let (z64, t64) = (to64(&z), to64(&t));
    let g = fd_grad(&z64, H, |z| mse64(&(relu64(z) * z), &t64));
    assert_grad_close("d relu(Z)·Z", tape.grad(zv).unwrap(), &g);
}

#[test]
fn add_bias_gradient() {
    let mut r = rng(4);
    let z = rand_mat(&mut r, 5, 3);
    let b = rand_mat(&mut r, 5, 1);
    let t = rand_mat(&mut r, 5, 3);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let bv = tape.param(&b);
    let y = tape.add_bias(zv, bv);
    let l = tape.mse(y, &t);
    tape.backward(l);
    let (z64, b64, t64) = (to64(&z), to64(&b), to64(&t));
    let gz = fd_grad(&z64, H, |z| mse64(&add_bias64(z, &b64), &t64));
    let gb = fd_grad(&b64, H, |b| mse64(&add_bias64(&z64, b), &t64));
    assert_grad_close("dz", tape.grad(zv).unwrap(), &gz);
    assert_grad_close("db", tape.grad(bv).unwrap(), &gb);
}

#[test]
fn relu_gradient_away_from_the_kink() {
    let mut r = rng(5);
    let mut z = rand_mat(&mut r, 6, 4);
    z.iter_mut().for_each(|v| {
        if v.abs() < 0.05 {
            *v = 0.05f32.copysign(*v)
        }
    });
    let t = rand_mat(&mut r, 6, 4);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let y = tape.relu(zv);
    let l = tape.mse(y, &t);
    tape.backward(l);
    let t64 = to64(&t);
    let g = fd_grad(&to64(&z), H, |z| mse64(&relu64(z), &t64));
    assert_grad_close("relu", tape.grad(zv).unwrap(), &g);
    assert!(
        g.iter().any(|v| *v == 0.0),
        "no negative entry: ReLU's zero branch untested"
    );
}

#[test]
fn cosine_goodness_gradient() {
    let mut r = rng(6);
    let z = rand_mat(&mut r, 6, 4);
    let p = rand_prototypes(&mut r, 6, 3);
    let t = rand_mat(&mut r, 3, 4);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let g = tape.cosine_goodness(zv, &p);
    let l = tape.mse(g, &t);
    tape.backward(l);
    let (p64, t64) = (to64(&p), to64(&t));
    let fd = fd_grad(&to64(&z), H, |z| mse64(&goodness_matrix64(z, &p64), &t64));
    assert_grad_close("cosine goodness", tape.grad(zv).unwrap(), &fd);
}

/// Finds a seed whose random margin problem keeps every hinge argument at least 1e-3 from the
/// ReLU kink (finite differences are meaningless across it) and has active and inactive terms.
fn margin_problem(width: usize, batch: usize, classes: usize, q: f32) -> (Mat, Mat, Vec<u32>) {
    for seed in 100..200 {
        let mut r = rng(seed);
        let z = rand_mat(&mut r, width, batch);
        let p = rand_prototypes(&mut r, width, classes);
        let y = labels(&mut r, batch, classes);
        let h = margin_terms64(&to64(&z), &to64(&p), &y, q as f64);
        let clear = h.iter().all(|v| v.abs() > 1e-3);
        let mixed = h.iter().any(|v| *v > 0.0) && h.iter().any(|v| *v < 0.0);
        if clear && mixed {
            return (z, p, y);
        }
    }
    panic!("no seed in 100..200 gave a margin problem clear of the kinks");
}

#[test]
fn margin_loss_gradient() {
    let q = 0.3;
    let (z, p, y) = margin_problem(6, 4, 4, q);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let l = tape.margin_loss(zv, &p, &y, q);
    tape.backward(l);
    let p64 = to64(&p);
    let fd = fd_grad(&to64(&z), H, |z| margin64(z, &p64, &y, q as f64));
    let g = tape.grad(zv).unwrap();
    assert_grad_close("margin", g, &fd);
    let fd32 = fd_grad_f32(&z, 1e-2, |z| loss::margin_loss(z, &p, &y, q));
    assert_fd_f32_close("margin (f32 forward)", g, &fd32);
}

#[test]
fn eq5_loss_gradient() {
    let mut r = rng(8);
    let z = rand_mat(&mut r, 6, 4);
    let p = rand_prototypes(&mut r, 6, 5);
    let y = labels(&mut r, 4, 5);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let l = tape.eq5_loss(zv, &p, &y);
    tape.backward(l);
    let p64 = to64(&p);
    let fd = fd_grad(&to64(&z), H, |z| eq5_64(z, &p64, &y));
    let g = tape.grad(zv).unwrap();
    assert_grad_close("eq5", g, &fd);
    let fd32 = fd_grad_f32(&z, 1e-2, |z| loss::eq5_loss(z, &p, &y));
    assert_fd_f32_close("eq5 (f32 forward)", g, &fd32);
}

#[test]
fn squared_cosine_loss_gradient() {
    let mut r = rng(9);
    let z = rand_mat(&mut r, 5, 4);
    let p = rand_prototypes(&mut r, 5, 1);
    let t: Vec<f32> = (0..4).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let l = tape.squared_cosine_loss(zv, p.as_slice(), &t);
    tape.backward(l);
    let p64: Vec<f64> = p.iter().map(|v| *v as f64).collect();
    let t64: Vec<f64> = t.iter().map(|v| *v as f64).collect();
    let fd = fd_grad(&to64(&z), H, |z| sqcos64(z, &p64, &t64));
    let g = tape.grad(zv).unwrap();
    assert_grad_close("squared cosine", g, &fd);
    let fd32 = fd_grad_f32(&z, 1e-2, |z| loss::squared_cosine_loss(z, p.as_slice(), &t));
    assert_fd_f32_close("squared cosine (f32 forward)", g, &fd32);
}

#[test]
fn softmax_cross_entropy_gradient() {
    let mut r = rng(10);
    let z = rand_mat(&mut r, 4, 3) * 3.0;
    let y = labels(&mut r, 3, 4);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let l = tape.softmax_cross_entropy(zv, &y);
    tape.backward(l);
    let fd = fd_grad(&to64(&z), H, |z| ce64(z, &y));
    let g = tape.grad(zv).unwrap();
    assert_grad_close("cross-entropy", g, &fd);
    let fd32 = fd_grad_f32(&z, 1e-2, |z| loss::softmax_cross_entropy(z, &y));
    assert_fd_f32_close("cross-entropy (f32 forward)", g, &fd32);
}

#[test]
fn mse_gradient_multi_output() {
    let mut r = rng(11);
    let z = rand_mat(&mut r, 3, 4);
    let t = rand_mat(&mut r, 3, 4);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let l = tape.mse(zv, &t);
    tape.backward(l);
    let t64 = to64(&t);
    let fd = fd_grad(&to64(&z), H, |z| mse64(z, &t64));
    let g = tape.grad(zv).unwrap();
    assert_grad_close("mse", g, &fd);
    let fd32 = fd_grad_f32(&z, 1e-2, |z| loss::mse(z, &t));
    assert_fd_f32_close("mse (f32 forward)", g, &fd32);
}

#[test]
fn zero_column_has_zero_goodness_gradient() {
    let mut r = rng(12);
    let mut z = rand_mat(&mut r, 5, 3);
    z.column_mut(1).fill(0.0);
    let p = rand_prototypes(&mut r, 5, 4);
    let y = vec![0, 1, 2];
    for which in 0..2 {
        let mut tape = Tape::new();
        let zv = tape.param(&z);
        let l = if which == 0 {
            tape.margin_loss(zv, &p, &y, 0.3)
        } else {
            tape.eq5_loss(zv, &p, &y)
        };
        assert!(tape.scalar(l).is_finite());
        tape.backward(l);
        let g = tape.grad(zv).unwrap();
        assert!(g.iter().all(|v| v.is_finite()));
        assert!(g.column(1).iter().all(|v| *v == 0.0), "zero column got gradient {g}");
        assert!(g.column(0).iter().any(|v| *v != 0.0));
    }
}

/// An FF+AD layer step: margin loss of `W·x + b` with `x` a constant.
#[test]
fn local_layer_margin_gradient_and_constant_input() {
    let q = 0.3;
    let mut r = rng(13);
    let x = rand_mat(&mut r, 5, 4);
    let w = rand_mat(&mut r, 6, 5);
    let b = rand_mat(&mut r, 6, 1);
    let p = rand_prototypes(&mut r, 6, 3);
    let y = labels(&mut r, 4, 3);
    let (x64, w64, b64, p64) = (to64(&x), to64(&w), to64(&b), to64(&p));
    let hinge = margin_terms64(&add_bias64(&(&w64 * &x64), &b64), &p64, &y, q as f64);
    assert!(hinge.iter().all(|h| h.abs() > 1e-3), "seed puts a hinge on its kink");
    let mut tape = Tape::new();
    let xv = tape.constant(&x);
    let wv = tape.param(&w);
    let bv = tape.param(&b);
    let zw = tape.matmul(wv, xv);
    let z = tape.add_bias(zw, bv);
    let l = tape.margin_loss(z, &p, &y, q);
    tape.backward(l);
    assert!(tape.grad(xv).is_none(), "a constant must not get a gradient");
    let gw = fd_grad(&w64, H, |w| {
        margin64(&add_bias64(&(w * &x64), &b64), &p64, &y, q as f64)
    });
    let gb = fd_grad(&b64, H, |b| {
        margin64(&add_bias64(&(&w64 * &x64), b), &p64, &y, q as f64)
    });
    assert_grad_close("layer dW", tape.grad(wv).unwrap(), &gw);
    assert_grad_close("layer db", tape.grad(bv).unwrap(), &gb);
}

/// A 2-hidden-layer MLP `5 → 6 → 6 → 3` with ReLU and softmax cross-entropy (BP+AD).
struct Mlp {
    x: Mat,
    params: Vec<Mat>, // W1, b1, W2, b2, W3, b3
    y: Vec<u32>,
}

fn mlp_problem() -> Mlp {
    let mut r = rng(14);
    let x = rand_mat(&mut r, 5, 4);
    let dims = [(6, 5), (6, 6), (3, 6)];
    let mut params = Vec::new();
    for (o, i) in dims {
        params.push(rand_mat(&mut r, o, i));
        params.push(rand_mat(&mut r, o, 1) * 0.5);
    }
    let y = labels(&mut r, 4, 3);
    Mlp { x, params, y }
}

/// `f64` forward of the MLP; also returns the pre-activations of the hidden layers.
fn mlp64(x: &Mat64, p: &[Mat64], y: &[u32]) -> (f64, Vec<Mat64>) {
    let z1 = add_bias64(&(&p[0] * x), &p[1]);
    let h1 = relu64(&z1);
    let z2 = add_bias64(&(&p[2] * &h1), &p[3]);
    let h2 = relu64(&z2);
    let z3 = add_bias64(&(&p[4] * &h2), &p[5]);
    (ce64(&z3, y), vec![z1, z2])
}

fn record_mlp(tape: &mut Tape, m: &Mlp) -> (insitu_autodiff::Var, Vec<insitu_autodiff::Var>) {
    let xv = tape.constant(&m.x);
    let pv: Vec<_> = m.params.iter().map(|p| tape.param(p)).collect();
    let mut h = xv;
    for layer in 0..3 {
        let z = tape.matmul(pv[2 * layer], h);
        let z = tape.add_bias(z, pv[2 * layer + 1]);
        h = if layer < 2 { tape.relu(z) } else { z };
    }
    let l = tape.softmax_cross_entropy(h, &m.y);
    (l, pv)
}

#[test]
fn two_hidden_layer_mlp_gradient() {
    let m = mlp_problem();
    let x64 = to64(&m.x);
    let p64: Vec<Mat64> = m.params.iter().map(to64).collect();
    let (l64, pre) = mlp64(&x64, &p64, &m.y);
    for z in &pre {
        assert!(
            z.iter().all(|v| v.abs() > 1e-3),
            "seed puts a pre-activation on the ReLU kink"
        );
    }
    let mut tape = Tape::new();
    let (l, pv) = record_mlp(&mut tape, &m);
    assert!((tape.scalar(l) - l64).abs() < 1e-5 * l64.abs().max(1.0));
    tape.backward(l);
    for (k, v) in pv.iter().enumerate() {
        let fd = fd_grad(&p64[k], H, |pk| {
            let mut ps = p64.clone();
            ps[k] = pk.clone();
            mlp64(&x64, &ps, &m.y).0
        });
        assert_grad_close(&format!("MLP parameter {k}"), tape.grad(*v).unwrap(), &fd);
    }
}

#[test]
fn reset_reuses_buffers_and_reproduces_gradients() {
    let m = mlp_problem();
    let mut tape = Tape::new();
    let (l, pv) = record_mlp(&mut tape, &m);
    tape.backward(l);
    let first: Vec<Mat> = pv.iter().map(|v| tape.grad(*v).unwrap().clone()).collect();
    let ptrs: Vec<*const f32> = pv.iter().map(|v| tape.grad(*v).unwrap().as_ptr()).collect();
    let vptr = tape.value(l).as_ptr();
    let loss1 = tape.scalar(l);
    tape.reset();
    assert!(tape.is_empty());
    let (l2, pv2) = record_mlp(&mut tape, &m);
    assert_eq!(tape.scalar(l2), loss1);
    tape.backward(l2);
    for (k, v) in pv2.iter().enumerate() {
        let g = tape.grad(*v).unwrap();
        assert_eq!(g, &first[k], "gradient {k} changed after reset");
        assert_eq!(g.as_ptr(), ptrs[k], "gradient buffer {k} was reallocated");
    }
    assert_eq!(tape.value(l2).as_ptr(), vptr, "value buffer was reallocated");
}

#[test]
fn smaller_batch_after_reset_is_correct() {
    // Buffers sized for batch 4 reused for batch 2: gradients must match a fresh tape's.
    let m = mlp_problem();
    let small = Mlp {
        x: m.x.columns(0, 2).into_owned(),
        params: m.params.clone(),
        y: m.y[..2].to_vec(),
    };
    let mut tape = Tape::new();
    let (l, _) = record_mlp(&mut tape, &m);
    tape.backward(l);
    tape.reset();
    let (l, pv) = record_mlp(&mut tape, &small);
    tape.backward(l);
    let mut fresh = Tape::new();
    let (lf, pvf) = record_mlp(&mut fresh, &small);
    fresh.backward(lf);
    for (a, b) in pv.iter().zip(&pvf) {
        assert_eq!(tape.grad(*a).unwrap(), fresh.grad(*b).unwrap());
    }
}

#[test]
fn unused_parameter_gets_zero_gradient() {
    let mut r = rng(15);
    let z = rand_mat(&mut r, 3, 2);
    let t = rand_mat(&mut r, 3, 2);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let unused = tape.param(&t);
    let l = tape.mse(zv, &t);
    tape.backward(l);
    assert!(tape.grad(unused).unwrap().iter().all(|v| *v == 0.0));
    assert_eq!(tape.grad(unused).unwrap().shape(), (3, 2));
}

#[test]
#[should_panic(expected = "1×1")]
fn backward_from_a_matrix_panics() {
    let mut tape = Tape::new();
    let z = tape.param(&Mat::zeros(2, 2));
    let y = tape.relu(z);
    tape.backward(y);
}

#[test]
fn tape_forward_values_equal_the_loss_functions_exactly() {
    let mut r = rng(16);
    let z = rand_mat(&mut r, 7, 9);
    let p = rand_prototypes(&mut r, 7, 4);
    let y = labels(&mut r, 9, 4);
    let t: Vec<f32> = (0..9).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let tm = rand_mat(&mut r, 7, 9);
    let mut tape = Tape::new();
    let zv = tape.param(&z);
    let checks = [
        (tape.margin_loss(zv, &p, &y, 0.3), loss::margin_loss(&z, &p, &y, 0.3)),
        (tape.eq5_loss(zv, &p, &y), loss::eq5_loss(&z, &p, &y)),
        (
            tape.squared_cosine_loss(zv, p.column(0).as_slice(), &t),
            loss::squared_cosine_loss(&z, p.column(0).as_slice(), &t),
        ),
        (tape.mse(zv, &tm), loss::mse(&z, &tm)),
    ];
    for (v, expected) in checks {
        assert_eq!(tape.scalar(v), expected);
        assert_eq!(tape.value(v)[(0, 0)], expected as f32);
    }
    let logits = rand_mat(&mut r, 4, 9);
    let lv = tape.param(&logits);
    let ce = tape.softmax_cross_entropy(lv, &y);
    assert_eq!(tape.scalar(ce), loss::softmax_cross_entropy(&logits, &y));
    let g = tape.cosine_goodness(zv, &p);
    let mut expected = Mat::zeros(4, 9);
    loss::cosine_goodness(&z, &p, &mut expected);
    assert_eq!(tape.value(g), &expected);
}

/// `constant_swap` records the same constant as `constant` (same loss, same gradients) without
/// copying: the caller's matrix comes back holding the leaf's previous buffer, and reusing the
/// tape swaps the two buffers back and forth.
#[test]
fn constant_swap_is_constant_without_the_copy() {
    let mut r = rng(31);
    let w = rand_mat(&mut r, 3, 4);
    let (x1, x2) = (rand_mat(&mut r, 4, 5), rand_mat(&mut r, 4, 5));
    let t = rand_mat(&mut r, 3, 5);
    // Records loss(W·x) with x as a copied constant or, given `swap`, as a swapped-in one.
    let run = |tape: &mut Tape, x: &Mat, swap: Option<&mut Mat>| {
        tape.reset();
        let xv = match swap {
            Some(m) => tape.constant_swap(m),
            None => tape.constant(x),
        };
        let wv = tape.param(&w);
        let y = tape.matmul(wv, xv);
        let l = tape.mse(y, &t);
        let value = tape.scalar(l);
        tape.backward(l);
        (value, tape.grad(wv).unwrap().clone(), tape.value(xv).clone())
    };
    let mut tape = Tape::new();
    let mut batch = x1.clone();
    assert_eq!(run(&mut tape, &x1, Some(&mut batch)), run(&mut Tape::new(), &x1, None));
    assert_eq!(batch.shape(), (0, 0), "the caller gets the fresh leaf's empty buffer");
    // The next step: the caller refills its buffer; the tape hands back the first batch.
    batch = x2.clone();
    assert_eq!(run(&mut tape, &x2, Some(&mut batch)), run(&mut Tape::new(), &x2, None));
    assert_eq!(batch, x1, "the previous leaf's buffer comes back");
}

/// `Tape::params` lists the parameter leaves in the order they were made, never a constant,
/// and forgets them on reset (a network reads its gradients back through it).
#[test]
fn params_lists_the_parameters_in_order_until_reset() {
    let mut tape = Tape::new();
    let m = Mat::from_fn(2, 3, |i, j| (i + j) as f32);
    let w0 = tape.param(&m);
    let x = tape.constant(&Mat::zeros(3, 1));
    let w1 = tape.param_slice(&[1.0, 2.0], 2, 1);
    let z = tape.matmul(w0, x);
    let _ = tape.add_bias(z, w1);
    assert_eq!(tape.params(), &[w0, w1]);
    tape.reset();
    assert!(tape.params().is_empty());
    let w2 = tape.param(&m);
    assert_eq!(tape.params(), &[w2]);
}
