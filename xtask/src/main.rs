//! `cargo xtask <command>`: the workspace's build system (the cargo-xtask pattern; the alias in
//! `.cargo/config.toml` runs this binary in release mode).
//!
//! This file only parses the command line and dispatches; each command lives in its own module
//! of the `xtask` library (`src/lib.rs`). To add a command (`reproduce`, `collect`, `bench`):
//! write `src/<command>.rs` with a `clap::Args` struct and a `pub fn main(args) -> ExitCode`,
//! declare it in `src/lib.rs`, and add one variant to [`Command`] and one arm to `main`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Counts allocation calls so that `bench` can report allocations per training step.
#[global_allocator]
static ALLOCATOR: xtask::bench::CountingAllocator = xtask::bench::CountingAllocator;
use xtask::{bench, datasets, reproduce};

/// insitu's build system.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Verify every file of datasets/SHA256SUMS and fetch what is missing or corrupt.
    Datasets(datasets::DatasetsArgs),
    /// Run the experiment matrix of the papers' figures (resumable, parallel), draw the
    /// figures and write docs/reproduction.md.
    Reproduce(reproduce::ReproduceArgs),
    /// Merge results produced elsewhere (a Slurm array from `reproduce --emit-slurm`, another
    /// machine's store or `--shard`) into the store, then redraw.
    Collect(reproduce::CollectArgs),
    /// Throughput benchmarks of issue 8: training epochs, optics kernels, allocations per
    /// step; a table, and JSON with --json.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Datasets(args) => datasets::main(args),
        Command::Reproduce(args) => reproduce::main(args),
        Command::Collect(args) => reproduce::collect_main(args),
        Command::Bench(args) => bench::main(args),
    }
}
