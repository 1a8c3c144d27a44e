//! Resuming a classifier run after it was killed. At the paper's 400 × 400 grid one run of
//! seed 002 Fig. 2d takes 10 min to 2.1 h of one core (docs/ffm.md); a cluster's time limit or
//! a reboot must not cost it.
//!
//! Between two mini-batches a run is fully described by an [`FfmCheckpoint`]: the phase masks,
//! Adam's moments and step count, the position (epoch, batches done, global step), the partial
//! epoch loss, the finished epochs' losses and test accuracies, the training time and the forward
//! runs counted so far. Nothing else carries over: the batch order is drawn from
//! `(seed, epoch)`, every measurement's noise from `(seed, step, sample)`, and the bench's
//! cached mask transmissions are recomputed from the masks. So a run resumed from any checkpoint
//! gives the result the uninterrupted run gives, bit for bit, apart from its wall time (tested
//! for every checkpoint of a run, in every mode).
//!
//! The run hands each checkpoint to a [`CheckpointSink`] when the sink says one is due;
//! [`insitu_data::CheckpointFile`] is the sink that writes it to disk (atomically, checksummed),
//! and [`FfmCheckpoint::read_from`] reads it back.

use byteorder::{LittleEndian, ReadBytesExt, WriteBytesExt};
use insitu_data::CheckpointFile;
use insitu_optim::Adam;

use crate::classifier::FfmSpec;
use crate::FfmError;

/// The encoding [`FfmCheckpoint::to_bytes`] writes (the `kind` of its [`CheckpointFile`]).
pub const CHECKPOINT_KIND: &str = "insitu-ffm-classifier-v1";

/// The whole state of a classifier run between two mini-batches (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct FfmCheckpoint {
    /// The run's spec as `serde_json::to_string` writes it: a checkpoint resumes only the run
    /// that saved it.
    pub(crate) spec_json: String,
    /// The epoch in progress (0-based; `spec.epochs` when training is over).
    pub(crate) epoch: usize,
    /// Mini-batches of that epoch already applied.
    pub(crate) batches_done: usize,
    /// Mini-batches applied since the start (keys the measurement noise).
    pub(crate) step: u64,
    /// Sum of the per-sample losses of the epoch in progress so far.
    pub(crate) epoch_loss: f64,
    /// Mean training loss of each finished epoch.
    pub(crate) losses: Vec<f64>,
    /// Test accuracy after each finished epoch.
    pub(crate) accuracies: Vec<f64>,
    /// Training wall time so far (seconds).
    pub(crate) train_seconds: f64,
    /// Forward runs on the digital model so far (training and evaluation).
    pub(crate) model_runs: u64,
    /// Forward runs on the bench so far.
    pub(crate) bench_runs: u64,
    /// The phase masks, one `n²` vector per layer.
    pub(crate) phases: Vec<Vec<f32>>,
    /// One Adam per layer.
    pub(crate) adams: Vec<Adam>,
}

impl FfmCheckpoint {
    /// The state of a run of `spec` before its first step: zero masks, fresh Adam.
    pub(crate) fn start(spec: &FfmSpec) -> Self {
        let nn = spec.grid_n * spec.grid_n;
        Self {
            spec_json: spec_json(spec),
            epoch: 0,
            batches_done: 0,
            step: 0,
            epoch_loss: 0.0,
            losses: Vec::new(),
            accuracies: Vec::new(),
            train_seconds: 0.0,
            model_runs: 0,
            bench_runs: 0,
            phases: vec![vec![0.0; nn]; spec.layers],
            adams: (0..spec.layers).map(|_| Adam::new(nn, spec.lr)).collect(),
        }
    }

    /// The checkpoint of a run of `spec` in `file`; `None` when there is no file (a fresh
    /// start). A file that is truncated, corrupt, of another kind or of another spec is an
    /// error naming the file. Resume with [`crate::run_resumable`], giving it `file` as the
    /// sink so that it keeps the file up to date; remove the file
    /// ([`CheckpointFile::remove`]) once the result is stored.
    pub fn read_from(file: &CheckpointFile, spec: &FfmSpec) -> Result<Option<Self>, FfmError> {
        match file.read()? {
            Some(bytes) => Ok(Some(
                Self::from_bytes(&bytes, spec).map_err(|reason| file.unusable(reason))?,
            )),
            None => Ok(None),
        }
    }

    /// The epoch in progress (0-based).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Mini-batches of that epoch already applied.
    pub fn batches_done(&self) -> usize {
        self.batches_done
    }

    /// Where the run stands, for a person: `epoch E, after B of its mini-batches` (E from 1).
    pub fn position(&self) -> String {
        format!(
            "epoch {}, after {} of its mini-batches",
            self.epoch + 1,
            self.batches_done
        )
    }

    /// Mini-batches applied since the start of the run.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The phase masks at this point, one `n²` vector per layer.
    pub fn phases(&self) -> &[Vec<f32>] {
        &self.phases
    }

    /// The stable binary encoding (little-endian; the spec as JSON, then the numbers bit for
    /// bit), read back by [`FfmCheckpoint::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let nn = self.phases.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(self.spec_json.len() + 128 + self.phases.len() * (12 * nn + 4));
        // Writing into a Vec cannot fail.
        let mut put = || -> std::io::Result<()> {
            let w = &mut out;
            w.write_u64::<LittleEndian>(self.spec_json.len() as u64)?;
            w.extend_from_slice(self.spec_json.as_bytes());
            for v in [self.epoch as u64, self.batches_done as u64, self.step] {
                w.write_u64::<LittleEndian>(v)?;
            }
            w.write_f64::<LittleEndian>(self.epoch_loss)?;
            w.write_f64::<LittleEndian>(self.train_seconds)?;
            w.write_u64::<LittleEndian>(self.model_runs)?;
            w.write_u64::<LittleEndian>(self.bench_runs)?;
            for curve in [&self.losses, &self.accuracies] {
                w.write_u64::<LittleEndian>(curve.len() as u64)?;
                curve.iter().try_for_each(|&x| w.write_f64::<LittleEndian>(x))?;
            }
            w.write_u64::<LittleEndian>(self.phases.len() as u64)?;
            w.write_u64::<LittleEndian>(nn as u64)?;
            for (phase, adam) in self.phases.iter().zip(&self.adams) {
                let (m, v, t) = adam.moments();
                w.write_i32::<LittleEndian>(t)?;
                for values in [phase.as_slice(), m, v] {
                    values.iter().try_for_each(|&x| w.write_f32::<LittleEndian>(x))?;
                }
            }
            Ok(())
        };
        put().expect("writing to memory");
        out
    }

    /// Decodes [`FfmCheckpoint::to_bytes`] for a run of `spec`. A checkpoint saved by a run of
    /// another spec (the differing fields are named), a truncated or over-long encoding, or
    /// numbers that cannot be a run's state are errors, never a silent fresh start.
    pub fn from_bytes(bytes: &[u8], spec: &FfmSpec) -> Result<Self, String> {
        let mut r = bytes;
        let truncated = |e: std::io::Error| format!("the state is cut short ({e})");
        let len = r.read_u64::<LittleEndian>().map_err(truncated)? as usize;
        if len > r.len() {
            return Err(format!("the spec of {len} bytes is cut short"));
        }
        let saved = std::str::from_utf8(&r[..len]).map_err(|_| "the saved spec is not UTF-8".to_string())?;
        r = &r[len..];
        let expected = spec_json(spec);
        if saved != expected {
            return Err(format!(
                "it was saved by a run of another spec ({})",
                spec_difference(saved, &expected)
            ));
        }
        let mut u64s = [0u64; 3];
        for v in &mut u64s {
            *v = r.read_u64::<LittleEndian>().map_err(truncated)?;
        }
        let [epoch, batches_done, step] = u64s;
        let epoch_loss = r.read_f64::<LittleEndian>().map_err(truncated)?;
        let train_seconds = r.read_f64::<LittleEndian>().map_err(truncated)?;
        let model_runs = r.read_u64::<LittleEndian>().map_err(truncated)?;
        let bench_runs = r.read_u64::<LittleEndian>().map_err(truncated)?;
        let mut curves = [Vec::new(), Vec::new()];
        for curve in &mut curves {
            let n = r.read_u64::<LittleEndian>().map_err(truncated)?;
            if n != epoch {
                return Err(format!("{n} per-epoch values for {epoch} finished epochs"));
            }
            for _ in 0..n {
                curve.push(r.read_f64::<LittleEndian>().map_err(truncated)?);
            }
        }
        let [losses, accuracies] = curves;
        let layers = r.read_u64::<LittleEndian>().map_err(truncated)?;
        let nn = r.read_u64::<LittleEndian>().map_err(truncated)?;
        let n2 = (spec.grid_n * spec.grid_n) as u64;
        if layers != spec.layers as u64 || nn != n2 {
            return Err(format!(
                "{layers} layers of {nn} pixels; the spec has {} of {n2}",
                spec.layers
            ));
        }
        let nn = nn as usize;
        let need = spec.layers * (4 + 12 * nn);
        if r.len() != need {
            return Err(format!("the masks and moments take {need} bytes, {} are left", r.len()));
        }
        let mut phases = Vec::with_capacity(spec.layers);
        let mut adams = Vec::with_capacity(spec.layers);
        for l in 0..spec.layers {
            let t = r.read_i32::<LittleEndian>().map_err(truncated)?;
            let mut arrays = [vec![0.0f32; nn], vec![0.0f32; nn], vec![0.0f32; nn]];
            for a in &mut arrays {
                r.read_f32_into::<LittleEndian>(a).map_err(truncated)?;
            }
            let [phase, m, v] = arrays;
            if let Some(i) = phase.iter().position(|x| !x.is_finite()) {
                return Err(format!("layer {}: phase {i} is {}", l + 1, phase[i]));
            }
            let mut adam = Adam::new(nn, spec.lr);
            adam.restore_moments(&m, &v, t)
                .map_err(|e| format!("layer {}: {e}", l + 1))?;
            phases.push(phase);
            adams.push(adam);
        }
        if epoch > spec.epochs as u64 || (epoch == spec.epochs as u64 && batches_done > 0) {
            return Err(format!("epoch {epoch} of a run of {} epochs", spec.epochs));
        }
        if ![epoch_loss, train_seconds].iter().all(|x| x.is_finite()) {
            return Err("a non-finite loss sum or time".into());
        }
        Ok(Self {
            spec_json: saved.to_string(),
            epoch: epoch as usize,
            batches_done: batches_done as usize,
            step,
            epoch_loss,
            losses,
            accuracies,
            train_seconds,
            model_runs,
            bench_runs,
            phases,
            adams,
        })
    }
}

/// The spec as a checkpoint records it.
pub(crate) fn spec_json(spec: &FfmSpec) -> String {
    serde_json::to_string(spec).expect("a spec is plain data")
}

/// The top-level fields in which two spec JSONs differ, for the error message.
fn spec_difference(saved: &str, expected: &str) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::from_str(saved), serde_json::from_str(expected))
    else {
        return "the saved spec is not an FFM spec".into();
    };
    let differ: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, v)| match a.get(k) {
            Some(old) => format!("{k}: {old} there, {v} here"),
            None => format!("{k}: absent there"),
        })
        .chain(
            a.keys()
                .filter(|k| !b.contains_key(*k))
                .map(|k| format!("{k}: absent here")),
        )
        .collect();
    if differ.is_empty() {
        "the same fields, written differently".into()
    } else {
        differ.join("; ")
    }
}

/// Where a run puts its checkpoints. The run asks [`CheckpointSink::due`] after every
/// mini-batch and after every epoch's evaluation, and hands over its state when the answer is
/// yes; an error from [`CheckpointSink::save`] stops the run with that error.
pub trait CheckpointSink {
    /// Whether a checkpoint is wanted now.
    fn due(&mut self) -> bool;
    /// Keeps `checkpoint` (for a file: replaces the previous one).
    fn save(&mut self, checkpoint: &FfmCheckpoint) -> Result<(), String>;
}

/// Takes no checkpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheckpoints;

impl CheckpointSink for NoCheckpoints {
    fn due(&mut self) -> bool {
        false
    }
    fn save(&mut self, _: &FfmCheckpoint) -> Result<(), String> {
        Ok(())
    }
}

impl CheckpointSink for CheckpointFile {
    fn due(&mut self) -> bool {
        CheckpointFile::due(self)
    }
    fn save(&mut self, checkpoint: &FfmCheckpoint) -> Result<(), String> {
        self.write(&checkpoint.to_bytes()).map_err(|e| e.to_string())
    }
}
