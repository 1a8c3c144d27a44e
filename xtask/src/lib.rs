//! The commands of `cargo xtask`, as a library so that they can be tested; `src/main.rs` is the
//! thin command-line dispatcher. Each command is one module with a `clap::Args` struct, a
//! `main(args) -> ExitCode` entry point that prints, and plain functions that do the work and
//! return what happened.
//!
//! `reproduce` and `collect` (issue 7) regenerate the papers' figures: the matrix of runs per
//! figure ([`matrix`]: seed 000 Fig. 4, Fig. 6, Supplementary Fig. 1 — SPEC A7/A8 — and seed
//! 002 Fig. 2d — SPEC B3), each run a serialisable [`runspec::RunSpec`] identified by a stable
//! hash, stored atomically ([`store`]), run in parallel ([`runner`]) or on a cluster
//! ([`slurm`]), then drawn ([`figures`]) and reported ([`report`]). They add no method of their
//! own: every number comes from `insitu_ffzero::train` or `insitu_ffm::run`.
//!
//! `bench` (issue 8) measures throughput: training epochs, optics kernels and allocations per
//! step (`docs/performance.md`).

pub mod bench;
pub mod datasets;
pub mod figures;
pub mod matrix;
pub mod report;
pub mod reproduce;
pub mod runner;
pub mod runspec;
pub mod slurm;
pub mod store;
