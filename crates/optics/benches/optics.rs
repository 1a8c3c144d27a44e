//! Benchmarks: a 784-mode Clements mesh applied to a batch of 128 fields (SPEC A9's photonic
//! layer), and one 400×400 band-limited angular-spectrum propagation with 2× padding (SPEC B1).
//! Run: `CARGO_TARGET_DIR=/work/target-optics cargo bench -p insitu-optics`.

use divan::Bencher;
use insitu_linalg::{rng, CMat};
use insitu_optics::{Complex32, FreeSpace, Grid, PropagationMethod, RectangularMesh};
use rand::Rng;

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn mesh_784_batch_128(bencher: Bencher) {
    let mut r = rng(1);
    let mesh = RectangularMesh::haar_rect(784, &mut r).unwrap();
    let x = CMat::from_fn(784, 128, |_, _| Complex32::new(r.random::<f32>(), 0.0));
    let mut y = x.clone();
    bencher.bench_local(|| {
        y.copy_from(&x);
        mesh.apply_batch(&mut y).unwrap();
        divan::black_box(&y);
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn freespace_400_band_limited_pad2(bencher: Bencher) {
    let grid = Grid { n: 400, dx: 8e-6 };
    let mut fs = FreeSpace::new(grid, 532e-9, 0.388, PropagationMethod::BandLimitedAngularSpectrum, 2).unwrap();
    let mut r = rng(2);
    let field: Vec<Complex32> = (0..400 * 400).map(|_| Complex32::new(r.random::<f32>(), 0.0)).collect();
    let mut f = field.clone();
    bencher.bench_local(|| {
        f.copy_from_slice(&field);
        fs.propagate(&mut f);
        divan::black_box(&f);
    });
}
