//! A run of the experiment matrix ([`RunSpec`]), its result ([`RunResult`]) and its identity: a
//! stable hash of the resolved spec and [`RESULTS_SCHEMA_VERSION`] — not of the commit, so a new
//! commit neither invalidates the store nor breaks resuming and collecting across commits.

use insitu_ffm::exceptional::{ExceptionalResult, ExceptionalSpec};
use insitu_ffm::focusing::{FocusResult, FocusSpec};
use insitu_ffm::nlos::{NlosResult, NlosSpec, NlosTask};
use insitu_ffm::pic::{PicResult, PicSpec};
use insitu_ffm::{FfmResult, FfmSpec};
use insitu_ffzero::{TrainResult, TrainSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the stored-result format and of the meaning of a spec. Bump it when a change
/// makes old results wrong for their spec (every hash changes, so everything is redone).
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// Number of hex digits of the SHA-256 kept as a spec's identity (64 bits).
pub const HASH_HEX_DIGITS: usize = 16;

/// One run of the matrix, fully resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunSpec {
    /// Seed 000: an MLP trained by `insitu_ffzero::train` (what `insitu train --spec` runs).
    Ffzero(TrainSpec),
    /// Seed 002: a deep free-space classifier run by `insitu_ffm::run` (what
    /// `insitu ffm train --spec` runs).
    Ffm(FfmSpec),
    /// Seed 002: the integrated photonic network on Iris run by `insitu_ffm::pic::run_pic`
    /// (what `insitu ffm pic --spec` runs).
    Pic(PicSpec),
    /// Seed 002: the exceptional-point search run by
    /// `insitu_ffm::exceptional::learn_exceptional_point` (no data set).
    Exceptional(ExceptionalSpec),
    /// Seed 002: focusing through a scattering medium run by `insitu_ffm::focusing::focus`
    /// (what `insitu ffm focus --spec` runs; no data set).
    Focus(FocusSpec),
    /// Seed 002: imaging or classifying hidden objects around a corner run by
    /// `insitu_ffm::nlos::run_nlos` (what `insitu ffm nlos --spec` runs; classification reads
    /// MNIST).
    Nlos(NlosSpec),
}

/// What a run produced (the JSON `insitu train --json` / `insitu ffm train --json` writes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunResult {
    /// An `insitu_ffzero::TrainResult`.
    Ffzero(TrainResult),
    /// An `insitu_ffm::FfmResult`.
    Ffm(FfmResult),
    /// An `insitu_ffm::pic::PicResult`.
    Pic(PicResult),
    /// An `insitu_ffm::exceptional::ExceptionalResult`.
    Exceptional(ExceptionalResult),
    /// An `insitu_ffm::focusing::FocusResult`.
    Focus(FocusResult),
    /// An `insitu_ffm::nlos::NlosResult`.
    Nlos(NlosResult),
}

impl RunSpec {
    /// The spec's identity: the first [`HASH_HEX_DIGITS`] hex digits of
    /// `SHA-256("insitu-results/v{RESULTS_SCHEMA_VERSION}\n" + canonical JSON)`.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("insitu-results/v{RESULTS_SCHEMA_VERSION}\n").as_bytes());
        h.update(self.canonical_json().as_bytes());
        let mut s = hex::encode(h.finalize());
        s.truncate(HASH_HEX_DIGITS);
        s
    }

    /// Compact JSON with every object's keys sorted, whatever order the structs declare.
    pub fn canonical_json(&self) -> String {
        // through text, not `to_value`: an f32 field then reads as its shortest decimal
        // (`0.001`), not as the f64 widening of the f32 (`0.0010000000474974513`)
        let text = serde_json::to_string(self).expect("specs are plain data");
        let value: serde_json::Value = serde_json::from_str(&text).expect("serde_json reads what it writes");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// The `insitu_data::Task` name of the data set the run reads.
    pub fn task(&self) -> &str {
        match self {
            RunSpec::Ffzero(s) => &s.task,
            RunSpec::Ffm(f) => f.task.data_task().name(),
            RunSpec::Pic(_) => insitu_data::Task::Iris.name(),
            RunSpec::Nlos(n) if n.task.needs_data() => insitu_data::Task::Mnist.name(),
            RunSpec::Exceptional(_) | RunSpec::Focus(_) | RunSpec::Nlos(_) => "none",
        }
    }

    /// A short human label, e.g. `mnist ff-dd w100 d3 P1 e100 seed0`.
    pub fn label(&self) -> String {
        match self {
            RunSpec::Ffzero(s) if s.model == insitu_ffzero::Model::Cnn => {
                let fc: String = s.fc_hidden.iter().map(|w| format!(" fc{w}")).collect();
                let dropout = if s.dropout > 0.0 {
                    format!(" dropout{}", s.dropout)
                } else {
                    String::new()
                };
                format!(
                    "{} cnn {} C{}{fc}{dropout} P{} e{}",
                    s.task,
                    s.method.name(),
                    s.width,
                    s.directions,
                    s.epochs
                )
            }
            RunSpec::Ffzero(s) if s.model == insitu_ffzero::Model::Photonic => format!(
                "{} photonic {} N{} meshes{} P{} e{}",
                s.task,
                s.method.name(),
                s.width,
                s.depth,
                s.directions,
                s.epochs
            ),
            RunSpec::Ffzero(s) => format!(
                "{} {} w{} d{} P{} e{}",
                s.task,
                s.method.name(),
                s.width,
                s.depth,
                s.directions,
                s.epochs
            ),
            RunSpec::Ffm(f) => format!(
                "{:?} ffm {:?} L{} n{} e{} seed{}",
                f.task, f.mode, f.layers, f.grid_n, f.epochs, f.seed
            ),
            RunSpec::Pic(p) => format!("iris pic {:?} ratio {} e{} seed{}", p.mode, p.ratio, p.epochs, p.seed),
            RunSpec::Focus(f) => format!(
                "scattering focus {:?} n{} scatterer{} back{:?} it{}",
                f.method, f.grid_n, f.scatterer_seed, f.back_distance, f.iterations
            ),
            RunSpec::Nlos(n) => match &n.task {
                NlosTask::Imaging(t) => format!(
                    "nlos imaging {:?} {:?} n{} wall{} it{}",
                    t.method, t.loss, n.scene.grid_n, n.scene.wall_seed, t.iterations
                ),
                NlosTask::Classification(t) => format!(
                    "nlos classification {:?} n{} wall{} e{} train{}",
                    t.classes, n.scene.grid_n, n.scene.wall_seed, t.epochs, t.train_samples
                ),
                NlosTask::Drift(t) => format!(
                    "nlos turning wall {}°/it {:?} n{} wall{} grain{} it{}",
                    t.degrees_per_iteration,
                    t.classification.classes,
                    n.scene.grid_n,
                    n.scene.wall_seed,
                    n.scene.wall_grain_px,
                    t.iterations
                ),
                NlosTask::PhaseImaging(t) => format!(
                    "nlos phase imaging {:?}×{} n{} wall{} it{}",
                    t.digits, t.learned_per_digit, n.scene.grid_n, n.scene.wall_seed, t.iterations
                ),
            },
            RunSpec::Exceptional(e) => format!(
                "waveguide pair {:?} κ{} start {},{} noise {} steps {}",
                e.target, e.bench.kappa, e.start.gain, e.start.loss, e.bench.measurement_noise, e.steps
            ),
        }
    }

    /// Whether `result` is a result of this spec (same kind, same embedded spec).
    pub fn matches(&self, result: &RunResult) -> bool {
        match (self, result) {
            (RunSpec::Ffzero(s), RunResult::Ffzero(r)) => r.spec == *s,
            (RunSpec::Ffm(f), RunResult::Ffm(r)) => r.spec == *f,
            (RunSpec::Pic(p), RunResult::Pic(r)) => r.spec == *p,
            (RunSpec::Exceptional(e), RunResult::Exceptional(r)) => r.spec == *e,
            (RunSpec::Focus(f), RunResult::Focus(r)) => r.spec == *f,
            (RunSpec::Nlos(n), RunResult::Nlos(r)) => r.spec == *n,
            _ => false,
        }
    }
}

impl RunResult {
    /// Training wall time in seconds, as the library measured it.
    pub fn train_seconds(&self) -> f64 {
        match self {
            RunResult::Ffzero(r) => r.train_seconds,
            RunResult::Ffm(r) => r.train_seconds,
            RunResult::Pic(r) => r.train_seconds,
            RunResult::Exceptional(r) => r.train_seconds,
            RunResult::Focus(r) => r.train_seconds,
            RunResult::Nlos(r) => r.train_seconds,
        }
    }

    /// The result with every timing field zeroed (for comparing runs).
    pub fn without_timings(&self) -> RunResult {
        let mut r = self.clone();
        match &mut r {
            RunResult::Ffzero(t) => t.train_seconds = 0.0,
            RunResult::Ffm(t) => t.train_seconds = 0.0,
            RunResult::Pic(t) => t.train_seconds = 0.0,
            RunResult::Exceptional(t) => t.train_seconds = 0.0,
            RunResult::Focus(t) => t.train_seconds = 0.0,
            RunResult::Nlos(t) => t.train_seconds = 0.0,
        }
        r
    }
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string"));
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insitu_ffzero::Method;

    fn base() -> RunSpec {
        RunSpec::Ffzero(TrainSpec::default())
    }

    #[test]
    fn same_spec_same_hash_and_any_field_change_changes_it() {
        assert_eq!(base().hash(), base().hash());
        assert_eq!(base().hash().len(), HASH_HEX_DIGITS);
        let mut changed = Vec::new();
        for edit in [
            |s: &mut TrainSpec| s.width = 50,
            |s: &mut TrainSpec| s.depth = 4,
            |s: &mut TrainSpec| s.method = Method::BpDd,
            |s: &mut TrainSpec| s.lr = 2e-3,
            |s: &mut TrainSpec| s.seed = 1,
            |s: &mut TrainSpec| s.train_limit = Some(1000),
            |s: &mut TrainSpec| s.task = "fashion-mnist".into(),
        ] {
            let mut s = TrainSpec::default();
            edit(&mut s);
            changed.push(RunSpec::Ffzero(s).hash());
        }
        changed.push(base().hash());
        let n = changed.len();
        changed.sort();
        changed.dedup();
        assert_eq!(changed.len(), n, "every edit gives a distinct hash");
    }

    #[test]
    fn canonical_json_sorts_keys_and_round_trips() {
        let c = base().canonical_json();
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(!c.contains(' ') && !c.contains('\n'));
        let back: RunSpec = serde_json::from_str(&c).unwrap();
        assert_eq!(back, base());
    }

    /// The known vector: the canonical JSON written out by hand from Supplementary Table 1's
    /// defaults, and its hash computed independently with `sha256sum` (coreutils):
    /// `printf 'insitu-results/v1\n%s' "$JSON" | sha256sum`.
    #[test]
    fn known_vector() {
        let json = r#"{"batch":256,"depth":3,"directions":1,"epochs":100,"eps":0.001,"kind":"ffzero","loss":"margin","lr":0.001,"margin":0.3,"method":"ff-dd","model":"mlp","optimizer":"sgd","seed":0,"task":"mnist","test_limit":null,"train_limit":null,"width":100}"#;
        assert_eq!(base().canonical_json(), json);
        assert_eq!(base().hash(), KNOWN_HASH);
    }

    const KNOWN_HASH: &str = "4ffe480ea6a39a68";

    #[test]
    fn ffm_specs_hash_and_match_their_results() {
        let a = RunSpec::Ffm(FfmSpec::default());
        let mut b = a.clone();
        if let RunSpec::Ffm(f) = &mut b {
            f.layers = 4;
        }
        assert_ne!(a.hash(), b.hash());
        assert_ne!(a.hash(), base().hash());
        let back: RunSpec = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
