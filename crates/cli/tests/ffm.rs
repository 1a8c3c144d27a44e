//! `insitu ffm gradient` and `insitu ffm train` as a user runs them.

use std::process::Command;

use serde_json::{json, Value};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_insitu")).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `insitu ffm SUBCOMMAND --spec FILE --json OUT` with `spec` written to FILE in `dir`: the
/// result JSON (the run must succeed).
fn run_spec(dir: &std::path::Path, subcommand: &str, spec: &Value) -> Value {
    let spec_path = dir.join(format!("{subcommand}-spec.json"));
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let json = dir.join(format!("{subcommand}-from-spec.json"));
    let (code, _, err) = run(&[
        "ffm",
        subcommand,
        "--spec",
        spec_path.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// Each command exits with code 2 and an error mentioning its needle.
fn refused(cases: &[(Vec<&str>, &str)]) {
    for (args, needle) in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

fn system(transfer_im_offdiag: [f64; 2], loss: &str) -> Value {
    // 2 modes, 2 layers; transfer 1 symmetric, transfer 2 symmetric iff both entries are equal
    let target = if loss == "field-mse" {
        json!({"re": [0.3, -0.1], "im": [0.2, 0.5]})
    } else {
        json!([0.4, 0.6])
    };
    json!({
        "x": {"re": [0.8, 0.3], "im": [0.1, -0.4]},
        "layers": [
            {"phase": [0.3, -1.2], "transfer": {"re": [[0.6, 0.2], [0.2, 0.7]], "im": [[0.1, 0.5], [0.5, -0.3]]}},
            {"phase": [2.0, 0.4], "transfer": {"re": [[0.5, 0.1], [0.1, 0.9]], "im": [[0.0, transfer_im_offdiag[0]], [transfer_im_offdiag[1], 0.2]]}}
        ],
        "loss": loss,
        "target": target
    })
}

fn gradient_of(v: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let (code, out, err) = run(&["ffm", "gradient", "--system", p.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).unwrap()
}

fn max_diff(a: &Value, b: &Value) -> f64 {
    let mut m: f64 = 0.0;
    for (la, lb) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for (x, y) in la.as_array().unwrap().iter().zip(lb.as_array().unwrap()) {
            m = m.max((x.as_f64().unwrap() - y.as_f64().unwrap()).abs());
        }
    }
    m
}

#[test]
fn symmetric_systems_give_equal_gradients_asymmetric_do_not() {
    for loss in ["field-mse", "intensity-mse"] {
        let sym = gradient_of(&system([0.4, 0.4], loss));
        assert!(sym["loss"].as_f64().unwrap() > 0.0);
        assert_eq!(sym["gradients"].as_array().unwrap().len(), 2);
        assert!(
            max_diff(&sym["gradients"], &sym["adjoint_gradients"]) < 1e-12,
            "{loss}: {sym}"
        );
        assert!(sym["asymmetry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.as_f64().unwrap() == 0.0));
        let asym = gradient_of(&system([0.4, -0.6], loss));
        assert!(asym["asymmetry"][1].as_f64().unwrap() > 0.1);
        assert!(
            max_diff(&asym["gradients"], &asym["adjoint_gradients"]) > 1e-3,
            "{loss}: {asym}"
        );
    }
}

#[test]
fn bad_systems_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = system([0.4, 0.4], "field-mse");
    v["loss"] = json!("l1");
    let p = dir.path().join("s.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let (code, _, err) = run(&["ffm", "gradient", "--system", p.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("loss"), "{err}");
}

#[test]
fn ffm_train_writes_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (code, out, err) = run(&[
        "ffm",
        "train",
        "--layers",
        "2",
        "--grid",
        "24",
        "--train-limit",
        "64",
        "--test-limit",
        "32",
        "--epochs",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let modes = v["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 3);
    let in_situ = &modes[2][1];
    assert_eq!(modes[2][0], "in-situ");
    assert_eq!(in_situ["spec"]["mode"], "in-situ");
    assert!(in_situ["physical_forward_propagations"].as_u64().unwrap() > 0);
    assert_eq!(modes[0][1]["physical_forward_propagations"], 0);
    let (code, _, err) = run(&["ffm", "train", "--imperfection-level=-1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--imperfection-level"), "{err}");

    // --spec runs exactly one stored spec (what xtask's Slurm arrays do)
    let v2 = run_spec(dir.path(), "train", &in_situ["spec"]);
    assert_eq!(v2["modes"].as_array().unwrap().len(), 1);
    assert_eq!(
        v2["modes"][0][1]["test_accuracy"], in_situ["test_accuracy"],
        "same spec, same result"
    );
}

/// A real kill (SIGKILL) in the middle of training, then the same command again: it resumes
/// from the checkpoint and writes the result an uninterrupted run writes.
#[test]
fn ffm_train_killed_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let args = |json: &std::path::Path, checkpoint: bool| {
        let mut a: Vec<String> = [
            "ffm",
            "train",
            "--layers",
            "2",
            "--grid",
            "48",
            "--train-limit",
            "600",
            "--test-limit",
            "50",
            "--epochs",
            "3",
            "--batch",
            "8",
            "--mode",
            "ideal,in-situ",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(json.to_str().unwrap().into());
        a.extend(["--masks".into(), json.with_extension("masks").to_str().unwrap().into()]);
        if checkpoint {
            a.extend([
                "--checkpoint".into(),
                ck.to_str().unwrap().into(),
                "--checkpoint-every".into(),
                "0".into(),
            ]);
        }
        a
    };
    let whole = dir.path().join("whole.json");
    let (code, _, err) = run(&args(&whole, false).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{err}");

    // kill it once the in-situ mode (the second) has written a checkpoint
    let resumed = dir.path().join("resumed.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_insitu"))
        .args(args(&resumed, true))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let in_situ = ck.join("in-situ.ckpt");
    let t0 = std::time::Instant::now();
    while !in_situ.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after two minutes");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!resumed.exists() && ck.join("ideal.json").exists());

    let (code, _, err) = run(&args(&resumed, true).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("ideal: finished before"), "{err}");
    assert!(
        err.contains("in-situ: resuming from") && err.contains("in-situ.ckpt"),
        "{err}"
    );
    assert!(!in_situ.exists(), "the checkpoint is removed once the result is stored");
    let read = |p: &std::path::Path| -> Value {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        for m in v["modes"].as_array_mut().unwrap() {
            m[1]["train_seconds"] = json!(0);
        }
        v
    };
    assert_eq!(read(&resumed), read(&whole));
    for mode in ["ideal", "in-situ"] {
        let masks =
            |json: &std::path::Path| std::fs::read(json.with_extension("masks").join(format!("{mode}.npy"))).unwrap();
        assert!(
            masks(&resumed) == masks(&whole),
            "{mode}: the resumed run's masks differ"
        );
    }

    // other options on the same directory: an error, not a wrong resume
    let mut other = args(&resumed, true);
    other.extend(["--lr".into(), "0.2".into()]);
    let (code, _, err) = run(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, Some(0));
    assert!(err.contains("ideal.json") && err.contains("other options"), "{err}");
}

/// Masks written by `train --masks`, tested again by `evaluate`: the run's accuracies, on the
/// model and on the bench; deployed on a bench of imperfection level 0 (the model, bar 8-bit
/// phases and 1 % noise) they give the model's; bad input is an error.
#[test]
fn ffm_evaluate_reproduces_the_run_from_its_masks() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let masks = dir.path().join("masks");
    let (code, _, err) = run(&[
        "ffm",
        "train",
        "--layers",
        "2",
        "--grid",
        "24",
        "--train-limit",
        "64",
        "--test-limit",
        "40",
        "--epochs",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--masks",
        masks.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let npy = std::fs::read(masks.join("in-situ.npy")).unwrap();
    assert!(
        npy.starts_with(b"\x93NUMPY\x01\x00") && String::from_utf8_lossy(&npy[..128]).contains("'shape': (2, 24, 24)")
    );
    let evaluate = |mode: &str, extra: &[&str]| -> Result<Value, String> {
        let m = masks.join(format!("{mode}.npy"));
        let mut args = vec![
            "ffm",
            "evaluate",
            "--run",
            json.to_str().unwrap(),
            "--mode",
            mode,
            "--masks",
            m.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        if code == Some(0) {
            Ok(serde_json::from_str(&out).unwrap())
        } else {
            Err(err)
        }
    };
    let modes = report["modes"].as_array().unwrap();
    let result = |k: usize| &modes[k][1];
    assert_eq!(
        evaluate("ideal", &["--on", "model"]).unwrap()["test_accuracy"],
        result(0)["test_accuracy"]
    );
    assert_eq!(
        evaluate("in-silico", &[]).unwrap()["test_accuracy"],
        result(1)["test_accuracy"]
    );
    assert_eq!(
        evaluate("in-silico", &["--on", "model"]).unwrap()["test_accuracy"],
        result(1)["model_test_accuracy"]
    );
    assert_eq!(
        evaluate("in-situ", &[]).unwrap()["test_accuracy"],
        result(2)["test_accuracy"]
    );
    let perfect = evaluate("in-silico", &["--imperfection-level", "0"]).unwrap();
    assert_eq!(perfect["spec"]["imperfections"]["misalignment_px"], 0.0);
    assert_eq!(
        perfect["test_accuracy"],
        result(1)["model_test_accuracy"],
        "a perfect bench is the model, bar 1 % noise"
    );
    // the shape of a result stored by `cargo xtask reproduce`, and a bare result
    for (name, run_json) in [
        (
            "stored.json",
            json!({"schema_version": 1, "spec": {"kind": "ffm"}, "result": result(2)}),
        ),
        ("result.json", result(2).clone()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, run_json.to_string()).unwrap();
        let m = masks.join("in-situ.npy");
        let (code, out, err) = run(&[
            "ffm",
            "evaluate",
            "--run",
            path.to_str().unwrap(),
            "--masks",
            m.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["test_accuracy"], result(2)["test_accuracy"], "{name}");
    }
    // errors
    let err = run(&[
        "ffm",
        "evaluate",
        "--run",
        json.to_str().unwrap(),
        "--masks",
        masks.join("ideal.npy").to_str().unwrap(),
    ])
    .2;
    assert!(err.contains("name one with --mode"), "{err}");
    assert!(evaluate("ideal", &["--test-limit", "0"]).unwrap_err().contains("empty"));
    let wrong = dir.path().join("wrong.npy");
    std::fs::write(&wrong, &npy[..npy.len() - 4]).unwrap();
    let (code, _, err) = run(&[
        "ffm",
        "evaluate",
        "--run",
        json.to_str().unwrap(),
        "--mode",
        "ideal",
        "--masks",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("wrong.npy") && err.contains("needs 4608 bytes of data, 4604 present"),
        "{err}"
    );
}

/// The spec fields with options reach the run (the defaults are FfmSpec's).
#[test]
fn ffm_train_options_reach_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec_of = |extra: &[&str]| -> Value {
        let json = dir.path().join("r.json");
        let mut args = vec![
            "ffm",
            "train",
            "--grid",
            "32",
            "--epochs",
            "1",
            "--train-limit",
            "16",
            "--test-limit",
            "8",
            "--mode",
            "ideal",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(0), "{err}");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        v["modes"][0][1]["spec"].clone()
    };
    let default = spec_of(&[]);
    let library: Value = serde_json::to_value(insitu_ffm::FfmSpec::default()).unwrap();
    for key in ["loss", "detector_fraction", "input_fraction", "padding"] {
        assert_eq!(default[key], library[key], "{key}");
    }
    let set = spec_of(&[
        "--loss",
        "max-normalized-mse",
        "--detector-fraction",
        "0.12",
        "--input-fraction",
        "0.5",
        "--padding",
        "3",
    ]);
    assert_eq!(set["loss"], "max-normalized-mse");
    assert_eq!(
        (set["detector_fraction"].as_f64(), set["input_fraction"].as_f64()),
        (Some(0.12), Some(0.5))
    );
    assert_eq!(set["padding"], 3);
    let (code, _, err) = run(&[
        "ffm",
        "train",
        "--grid",
        "16",
        "--padding",
        "0",
        "--train-limit",
        "4",
        "--test-limit",
        "4",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("padding"), "{err}");
}

#[test]
fn ffm_pic_runs_every_ratio_and_mode_writes_weights_and_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("pic.json");
    let weights = dir.path().join("w");
    let (code, out, err) = run(&[
        "ffm",
        "pic",
        "--ratio",
        "1,0.5",
        "--seeds",
        "0,1",
        "--epochs",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2 * 3, "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 * 3 * 2);
    let in_situ = runs.iter().find(|r| r["spec"]["mode"] == "in-situ").unwrap();
    assert_eq!(in_situ["physical_forward_runs"], 2 * 120 * 13);
    assert_eq!(in_situ["loss_curve"].as_array().unwrap().len(), 2);
    let bytes = std::fs::read(weights.join("pic-r0.5-in-situ-seed1.npy")).unwrap();
    let (shape, values) = insitu_data::decode_npy_f32(&bytes, "weights").unwrap();
    assert_eq!(shape, [32, 2]);
    assert!(values.iter().all(|w| (0.0..=1.0).contains(w)));

    // --spec runs exactly one stored spec (what xtask's Slurm arrays do), with the same result
    let v2 = run_spec(dir.path(), "pic", &in_situ["spec"]);
    assert_eq!(v2["runs"][0]["test_accuracy"], in_situ["test_accuracy"]);

    refused(&[
        (vec!["ffm", "pic", "--ratio", "2"], "ratio"),
        (vec!["ffm", "pic", "--batch", "0"], "batch"),
        (vec!["ffm", "pic", "--mode", "sideways"], "sideways"),
    ]);
}

#[test]
fn ffm_exceptional_crosses_the_exceptional_point_and_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ep.json");
    let (code, out, err) = run(&["ffm", "exceptional", "--json", json.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("crossed the exceptional point"), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["forward_runs"], 401);
    assert_eq!(v["trajectory"].as_array().unwrap().len(), 201);
    assert_eq!(v["transitions"].as_array().unwrap().len(), 1);
    refused(&[
        (vec!["ffm", "exceptional", "--start", "1"], "--start"),
        (vec!["ffm", "exceptional", "--lr", "0"], "lr"),
        (vec!["ffm", "exceptional", "--sections", "0"], "sections"),
        (vec!["ffm", "exceptional", "--target", "up"], "up"),
    ]);
}

#[test]
fn ffm_focus_learns_a_focus_writes_its_arrays_and_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("focus.json");
    let arrays = dir.path().join("arrays");
    let (code, out, err) = run(&[
        "ffm",
        "focus",
        "--grid",
        "64",
        "--iterations",
        "30",
        "--json",
        json.to_str().unwrap(),
        "--arrays",
        arrays.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("diffraction limit 64.5 µm"), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["forward_runs"], 60);
    assert_eq!(v["loss_curve"].as_array().unwrap().len(), 31);
    for name in ["mask.npy", "intensity.npy"] {
        let (shape, _) = insitu_data::decode_npy_f32(&std::fs::read(arrays.join(name)).unwrap(), name).unwrap();
        assert_eq!(shape, [64, 64]);
    }
    // a scan: one learned focus per grid point, the image and the target as arrays
    let scan_json = dir.path().join("scan.json");
    let (code, out, err) = run(&[
        "ffm",
        "focus",
        "--grid",
        "64",
        "--iterations",
        "20",
        "--scan",
        "3",
        "--pitch",
        "4",
        "--json",
        scan_json.to_str().unwrap(),
        "--arrays",
        arrays.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("3 × 3 learned foci (360 forward runs)"), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&scan_json).unwrap()).unwrap();
    assert_eq!(v["image"].as_array().unwrap().len(), 9);
    let (shape, _) = insitu_data::decode_npy_f32(&std::fs::read(arrays.join("scan.npy")).unwrap(), "scan").unwrap();
    assert_eq!(shape, [3, 3]);
    refused(&[
        (vec!["ffm", "focus", "--grid", "64", "--scan", "30"], "does not fit"),
        (vec!["ffm", "focus", "--method", "pso", "--segments", "5"], "divide"),
        (vec!["ffm", "focus", "--focus", "3"], "--focus"),
        (vec!["ffm", "focus", "--grid", "4"], "grid_n"),
    ]);
}

#[test]
fn ffm_nlos_images_the_letters_classifies_hidden_digits_and_refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("nlos.json");
    let arrays = dir.path().join("arrays");
    let (code, out, err) = run(&[
        "ffm",
        "nlos",
        "--grid",
        "64",
        "--iterations",
        "40",
        "--json",
        json.to_str().unwrap(),
        "--arrays",
        arrays.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imaging around the corner (720 forward runs"), "{out}");
    for letter in ["T:", "H:", "U:"] {
        assert!(out.contains(letter), "{out}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["outcome"]["imaging"]["letters"].as_array().unwrap().len(), 3);
    let (shape, _) = insitu_data::decode_npy_f32(&std::fs::read(arrays.join("images.npy")).unwrap(), "images").unwrap();
    assert_eq!(shape, [3, 64, 64]);
    // the same spec through --spec gives the same result
    let again = run_spec(dir.path(), "nlos", &v["spec"]);
    assert_eq!(again["outcome"], v["outcome"]);
    // classification of hidden digits from MNIST
    let (code, out, err) = run(&[
        "ffm",
        "nlos",
        "--task",
        "classification",
        "--grid",
        "64",
        "--train",
        "60",
        "--test",
        "20",
        "--epochs",
        "1",
        "--photons",
        "0.1,10",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hidden-object classification (120 forward runs"), "{out}");
    assert!(
        out.contains("sCMOS: photons per pixel") && out.contains("  CMOS: photons per pixel"),
        "{out}"
    );
    // Extended Data Fig. 4b: the same digits while the wall turns
    let (code, out, err) = run(&[
        "ffm",
        "nlos",
        "--task",
        "drift",
        "--grid",
        "32",
        "--train",
        "40",
        "--test",
        "10",
        "--batch",
        "10",
        "--iterations",
        "4",
        "--eval-every",
        "2",
        "--degrees-per-iteration",
        "2.5",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("classification while the wall turns (120 forward runs"),
        "{out}"
    );
    assert!(out.contains("4 (  10.0°): FFM"), "{out}");
    // Extended Data Fig. 4a: hidden phase digits imaged, read at two SNRs
    let (code, out, err) = run(&[
        "ffm",
        "nlos",
        "--task",
        "phase-imaging",
        "--grid",
        "32",
        "--iterations",
        "3",
        "--unseen",
        "1",
        "--snr=-10,15",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imaging hidden phase digits (24 forward runs"), "{out}");
    assert!(
        out.contains("unseen (4 images), noise-free: FFM") && out.contains("-10.0 dB: FFM"),
        "{out}"
    );
    refused(&[
        (
            vec!["ffm", "nlos", "--task", "phase-imaging", "--method", "flat"],
            "trains by FFM",
        ),
        (
            vec!["ffm", "nlos", "--task", "phase-imaging", "--digits", "0,0"],
            "distinct digit",
        ),
        (
            vec!["ffm", "nlos", "--task", "drift", "--eval-every", "0"],
            "eval_every",
        ),
        (vec!["ffm", "nlos", "--grid", "32", "--cell", "12"], "does not fit"),
        (vec!["ffm", "nlos", "--method", "pso", "--segments", "5"], "divide"),
        (
            vec!["ffm", "nlos", "--task", "classification", "--method", "pso"],
            "--task imaging",
        ),
        (
            vec!["ffm", "nlos", "--task", "classification", "--photons", "1,0.1"],
            "ascending",
        ),
        (
            vec!["ffm", "nlos", "--task", "classification", "--classes", "3"],
            "classes",
        ),
        (vec!["ffm", "nlos", "--grid", "8"], "grid_n"),
    ]);
}
