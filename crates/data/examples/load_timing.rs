//! Times loading MNIST (the papers' split, train + test) and, separately, the SHA-256 check of
//! its four files. Run: `cargo run --release -p insitu-data --example load_timing`.

use std::time::Instant;

use insitu_data::{default_datasets_dir, load_task, ImageSet, Manifest, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = default_datasets_dir();
    let manifest = Manifest::load_from_dir(&dir)?.ok_or("no SHA256SUMS")?;
    let reps = 5;
    let mut best_load = f64::INFINITY;
    let mut best_hash = f64::INFINITY;
    let mut best_gunzip = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let tt = load_task(Task::Mnist, &dir, 0)?;
        best_load = best_load.min(t.elapsed().as_secs_f64());
        assert_eq!(tt.train.len() + tt.test.len(), 60_000);

        let files: Vec<Vec<u8>> = ImageSet::Mnist
            .files()
            .iter()
            .map(|f| std::fs::read(dir.join(f)))
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        for (f, b) in ImageSet::Mnist.files().iter().zip(&files) {
            insitu_data::verify_bytes(b, manifest.get(f).ok_or("not listed")?, f)?;
        }
        best_hash = best_hash.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (f, b) in ImageSet::Mnist.files().iter().zip(&files) {
            insitu_data::idx::gunzip(b, f)?;
        }
        best_gunzip = best_gunzip.min(t.elapsed().as_secs_f64());
    }
    println!(
        "load_task(mnist) [50,000 + 10,000, verified]: {:.1} ms (best of {reps})",
        best_load * 1e3
    );
    println!(
        "  SHA-256 of the 4 MNIST files (11.6 MB):     {:.1} ms",
        best_hash * 1e3
    );
    println!(
        "  gunzip of the 4 MNIST files (single thread): {:.1} ms",
        best_gunzip * 1e3
    );
    Ok(())
}
