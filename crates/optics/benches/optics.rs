//! Benchmarks of the optics kernels (filled in below).
fn main() {
    divan::main();
}
