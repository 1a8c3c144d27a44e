//! The product meter: what it counts, and that it changes no result.
//!
//! One test function: the meter is process-wide, so tests running beside it in this binary
//! would have their products counted.

use insitu_linalg::{
    matmul, matmul_sparse, meter_products, Accum, Complex32, Layout, Mat, MatMut, MatRef, MeterBusy, Par, SparseColumns,
};

/// `C ← A·B` at one thread, column-major operands (`b` possibly a transposed view).
fn product(c: &mut Mat, a: &Mat, b: MatRef<'_, f32>) {
    matmul(MatMut::from(c), Accum::Replace, MatRef::from(a), b, 1.0, Par::Seq);
}

fn filled(rows: usize, cols: usize, salt: usize) -> Mat {
    Mat::from_fn(rows, cols, |i, j| ((i * 31 + j * 7 + salt) % 13) as f32 / 13.0 - 0.4)
}

#[test]
fn the_meter_counts_each_product_kind_and_changes_no_bit() {
    let (a, b) = (filled(10, 100, 1), filled(100, 64, 2));
    let mut unmetered = Mat::zeros(10, 64);
    product(&mut unmetered, &a, MatRef::from(&b));

    // A third of B's entries zero, for the sparse product.
    let sparse_b = Mat::from_fn(100, 64, |i, j| if (i + j) % 3 == 0 { 0.0 } else { b[(i, j)] });
    let sparse = SparseColumns::from_dense(MatRef::from(&sparse_b));
    let nnz = sparse.nnz();

    let mut metered = Mat::zeros(10, 64);
    let mut gradient = Mat::zeros(10, 100);
    let mut complex = insitu_linalg::CMat::zeros(3, 3);
    let unit = insitu_linalg::CMat::identity(3, 3);
    let ((), tallies) = meter_products(|| {
        for _ in 0..3 {
            product(&mut metered, &a, MatRef::from(&b));
        }
        // dZ·Xᵀ: B read transposed, its rows contiguous.
        product(&mut gradient, &metered, MatRef::from(&b).t());
        matmul_sparse(
            MatMut::from(&mut metered),
            Accum::Replace,
            MatRef::from(&a),
            sparse.columns(0, 64),
        );
        matmul(
            MatMut::from(&mut complex),
            Accum::Replace,
            MatRef::from(&unit),
            MatRef::from(&unit),
            Complex32::new(1.0, 0.0),
            Par::Seq,
        );
        // A second meter while this one runs is refused, without running its closure.
        assert_eq!(meter_products(|| panic!("must not run")).err(), Some(MeterBusy));
    })
    .expect("no other meter runs in this test binary");

    assert_eq!(tallies.len(), 4, "{tallies:#?}");
    let forward = &tallies[0];
    assert_eq!(
        (forward.element, forward.shape, forward.calls),
        ("f32", (10, 100, 64), 3)
    );
    assert_eq!(forward.layouts, [Layout::Columns; 3]);
    assert_eq!(forward.flops, 3.0 * 2.0 * 10.0 * 100.0 * 64.0);
    assert_eq!(forward.dense_flops, forward.flops);
    assert!(forward.seconds > 0.0 && forward.gflops().is_finite());
    let weight_gradient = &tallies[1];
    assert_eq!((weight_gradient.shape, weight_gradient.calls), ((10, 64, 100), 1));
    assert_eq!(
        weight_gradient.layouts,
        [Layout::Columns, Layout::Columns, Layout::Rows]
    );
    let sparse_tally = &tallies[2];
    assert_eq!(sparse_tally.layouts[2], Layout::Sparse);
    assert_eq!(sparse_tally.flops, 2.0 * 10.0 * nnz as f64);
    assert_eq!(sparse_tally.dense_flops, 2.0 * 10.0 * 100.0 * 64.0);
    assert_eq!((tallies[3].element, tallies[3].flops), ("Complex32", 8.0 * 27.0));

    // The meter's last product overwrote `metered` with the sparse one: recompute and compare.
    product(&mut metered, &a, MatRef::from(&b));
    assert_eq!(metered.as_slice(), unmetered.as_slice());

    // Off again: a new meter starts from nothing.
    let ((), none) = meter_products(|| ()).expect("the first meter has stopped");
    assert!(none.is_empty());
    // A panic inside the closure stops the meter too.
    assert!(std::panic::catch_unwind(|| meter_products(|| panic!("inside"))).is_err());
    assert!(meter_products(|| ()).is_ok());
}
