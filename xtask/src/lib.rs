//! The commands of `cargo xtask`, as a library so that they can be tested; `src/main.rs` is the
//! thin command-line dispatcher. Each command is one module with a `clap::Args` struct, a
//! `main(args) -> ExitCode` entry point that prints, and plain functions that do the work and
//! return what happened.

pub mod datasets;
