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
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, in_situ["spec"].to_string()).unwrap();
    let json2 = dir.path().join("r2.json");
    let (code, _, err) = run(&[
        "ffm",
        "train",
        "--spec",
        spec_path.to_str().unwrap(),
        "--json",
        json2.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v2: Value = serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(v2["modes"].as_array().unwrap().len(), 1);
    assert_eq!(
        v2["modes"][0][1]["test_accuracy"], in_situ["test_accuracy"],
        "same spec, same result"
    );
}
