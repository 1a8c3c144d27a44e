//! Checkpoints of classifier runs: a run resumed from any of its checkpoints gives the result of
//! the run that was never stopped, bit for bit; damaged or foreign checkpoints are errors.

use std::time::Duration;

mod common;

use common::toy_dataset;
use insitu_data::{CheckpointFile, Dataset};
use insitu_ffm::{
    run, run_resumable, CheckpointSink, FfmCheckpoint, FfmError, FfmSpec, FfmTrained, NoCheckpoints, TrainingMode,
    CHECKPOINT_KIND,
};
use insitu_optim::NoProgress;

/// Three epochs of five mini-batches, the last one short (36 = 4 × 8 + 4).
fn spec(mode: TrainingMode) -> FfmSpec {
    FfmSpec {
        layers: 2,
        grid_n: 24,
        distance: 0.388 * 24.0 / 400.0,
        epochs: 3,
        batch: 8,
        lr: 0.1,
        train_limit: Some(36),
        test_limit: Some(20),
        mode,
        ..FfmSpec::default()
    }
}

/// A run's result and masks with its wall time cleared (the one thing a resumed run may change).
fn timeless(mut t: FfmTrained) -> FfmTrained {
    t.result.train_seconds = 0.0;
    t
}

/// The run that is never stopped.
fn uninterrupted(spec: &FfmSpec, train: &Dataset, test: &Dataset) -> FfmTrained {
    let t = timeless(run_resumable(spec, train, test, &mut NoProgress, None, &mut NoCheckpoints).unwrap());
    let mut plain = run(spec, train, test).unwrap();
    plain.train_seconds = 0.0;
    assert_eq!(t.result, plain);
    t
}

/// What a caller with a checkpoint file does: resume from it if it holds one, keep it up to date.
fn run_checkpointed(
    spec: &FfmSpec,
    train: &Dataset,
    test: &Dataset,
    file: &mut CheckpointFile,
) -> Result<(FfmTrained, Option<(usize, usize)>), FfmError> {
    let resume = FfmCheckpoint::read_from(file, spec)?;
    let from = resume.as_ref().map(|c| (c.epoch(), c.batches_done()));
    Ok((run_resumable(spec, train, test, &mut NoProgress, resume, file)?, from))
}

/// Keeps every checkpoint it is offered (always due), as bytes; fails on the `fail_at`-th save
/// (1-based), the way a killed process stops writing.
struct Recorder {
    saved: Vec<Vec<u8>>,
    fail_at: Option<usize>,
}

impl CheckpointSink for Recorder {
    fn due(&mut self) -> bool {
        true
    }
    fn save(&mut self, checkpoint: &FfmCheckpoint) -> Result<(), String> {
        if Some(self.saved.len() + 1) == self.fail_at {
            return Err("killed".into());
        }
        self.saved.push(checkpoint.to_bytes());
        Ok(())
    }
}

#[test]
fn resuming_from_every_checkpoint_gives_the_uninterrupted_result() {
    let (train, test) = (toy_dataset(36, 1), toy_dataset(20, 2));
    for mode in [TrainingMode::Ideal, TrainingMode::InSilico, TrainingMode::InSitu] {
        let spec = spec(mode);
        let whole = uninterrupted(&spec, &train, &test);
        let mut rec = Recorder {
            saved: Vec::new(),
            fail_at: None,
        };
        let recorded = run_resumable(&spec, &train, &test, &mut NoProgress, None, &mut rec).unwrap();
        assert_eq!(timeless(recorded), whole, "{mode:?}: checkpointing changed the run");
        // after each of the 15 mini-batches, and after the first two epochs' evaluations
        assert_eq!(rec.saved.len(), 15 + 2, "{mode:?}");
        let mut positions = Vec::new();
        for (k, bytes) in rec.saved.iter().enumerate() {
            let checkpoint = FfmCheckpoint::from_bytes(bytes, &spec).unwrap();
            positions.push((checkpoint.epoch(), checkpoint.batches_done()));
            assert!(
                checkpoint.to_bytes() == *bytes,
                "{mode:?}: checkpoint {k} does not re-encode to its bytes"
            );
            let threads = 1 + k % 2;
            let resumed = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    run_resumable(
                        &spec,
                        &train,
                        &test,
                        &mut NoProgress,
                        Some(checkpoint),
                        &mut NoCheckpoints,
                    )
                })
                .unwrap();
            assert_eq!(
                timeless(resumed),
                whole,
                "{mode:?}: resumed from checkpoint {k} ({:?}) on {threads} threads",
                positions[k]
            );
        }
        assert_eq!(positions[..6], [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 0)]);
        assert_eq!(positions[16], (2, 5));
    }
}

#[test]
fn a_killed_run_resumes_from_its_file() {
    let (train, test) = (toy_dataset(36, 1), toy_dataset(20, 2));
    let spec = spec(TrainingMode::InSitu);
    let whole = uninterrupted(&spec, &train, &test);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in-situ.ckpt");

    // A run that writes its file at every step and is killed at the 9th save: the file holds
    // the 8th checkpoint (epoch 2, 2 batches done).
    struct KilledAfter(CheckpointFile, usize);
    impl CheckpointSink for KilledAfter {
        fn due(&mut self) -> bool {
            true
        }
        fn save(&mut self, checkpoint: &FfmCheckpoint) -> Result<(), String> {
            self.1 -= 1;
            if self.1 == 0 {
                return Err("killed".into());
            }
            self.0.save(checkpoint)
        }
    }
    let mut killed = KilledAfter(CheckpointFile::new(&path, CHECKPOINT_KIND, Duration::ZERO), 9);
    let e = run_resumable(&spec, &train, &test, &mut NoProgress, None, &mut killed).unwrap_err();
    assert!(matches!(&e, FfmError::Checkpoint(m) if m == "killed"), "{e}");

    let mut file = CheckpointFile::new(&path, CHECKPOINT_KIND, Duration::from_secs(3600));
    let (resumed, from) = run_checkpointed(&spec, &train, &test, &mut file).unwrap();
    assert_eq!(from, Some((1, 2)));
    assert_eq!(timeless(resumed), whole);
    // no file: a fresh start, same result
    file.remove().unwrap();
    let (fresh, from) = run_checkpointed(&spec, &train, &test, &mut file).unwrap();
    assert_eq!((timeless(fresh), from), (whole, None));
}

#[test]
fn foreign_and_damaged_checkpoints_are_errors_that_say_why() {
    let (train, test) = (toy_dataset(36, 1), toy_dataset(20, 2));
    let spec = spec(TrainingMode::InSitu);
    let mut rec = Recorder {
        saved: Vec::new(),
        fail_at: Some(4),
    };
    run_resumable(&spec, &train, &test, &mut NoProgress, None, &mut rec).unwrap_err();
    let bytes = rec.saved.pop().unwrap();

    // another run's checkpoint: the differing fields are named
    let other = FfmSpec {
        lr: 0.2,
        ..spec.clone()
    };
    let e = FfmCheckpoint::from_bytes(&bytes, &other).unwrap_err();
    assert!(
        e.contains("another spec") && e.contains("lr: 0.1 there, 0.2 here"),
        "{e}"
    );
    // every truncation, and one byte too many
    for cut in 0..bytes.len() {
        assert!(FfmCheckpoint::from_bytes(&bytes[..cut], &spec).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(FfmCheckpoint::from_bytes(&longer, &spec)
        .unwrap_err()
        .contains("are left"));
    // numbers that cannot be a run's state
    let mut nan_phase = bytes.clone();
    let phase_at = bytes.len() - 2 * (4 + 12 * 24 * 24) + 4;
    nan_phase[phase_at..phase_at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = FfmCheckpoint::from_bytes(&nan_phase, &spec).unwrap_err();
    assert!(e.contains("layer 1: phase 0 is NaN"), "{e}");

    // through a file: the error names it and says what to do
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let mut file = CheckpointFile::new(&path, CHECKPOINT_KIND, Duration::ZERO);
    file.save(&FfmCheckpoint::from_bytes(&bytes, &spec).unwrap()).unwrap();
    let e = run_checkpointed(&other, &train, &test, &mut file)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("run.ckpt") && e.contains("delete it") && e.contains("lr:"),
        "{e}"
    );
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    let e = run_checkpointed(&spec, &train, &test, &mut file)
        .unwrap_err()
        .to_string();
    assert!(e.contains("run.ckpt") && e.contains("truncated"), "{e}");
    // a checkpoint of the same spec on other data: more batches done than the data have
    let fewer = toy_dataset(12, 1);
    let e = run_resumable(
        &spec,
        &fewer,
        &test,
        &mut NoProgress,
        // epoch 1, 3 batches done; 12 samples make 2
        Some(FfmCheckpoint::from_bytes(&bytes, &spec).unwrap()),
        &mut NoCheckpoints,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not belong to this run of 2 batches"), "{e}");
}
