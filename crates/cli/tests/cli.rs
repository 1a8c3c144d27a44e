//! The binary as a user meets it: bad options are refused with a clear message and exit code
//! 2 before any work; a small run writes the documented JSON fields.

use std::process::Command;

fn insitu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_insitu"))
        .args(args)
        .output()
        .expect("run the insitu binary")
}

#[test]
fn refuses_bad_options_with_a_clear_message() {
    for (args, needle) in [
        (vec!["train", "--task", "cifar"], "unknown task"),
        (vec!["train", "--width", "0"], "--width"),
        (vec!["train", "--depth", "0"], "--depth"),
        (vec!["train", "--eps", "0"], "--eps"),
        (vec!["train", "--directions", "0"], "--directions"),
        (
            vec!["train", "--width", "5", "--method", "ff-dd"],
            "at least as wide as the number of classes",
        ),
        (vec!["train", "--method", "ff-zero"], "unknown method"),
        (vec!["train", "--optimizer", "rmsprop"], "unknown optimizer"),
        (vec!["train", "--threads", "0"], "--threads"),
        (vec!["train", "--method", "bp-ad", "--depths", "1,2"], "--depths"),
        (vec!["train", "--depths", "1,0"], "--depth"),
        (vec!["train", "--direction-kind", "sobol"], "unknown direction kind"),
        (vec!["train", "--difference", "backward"], "unknown difference"),
        (
            vec!["train", "--method", "ff-ad", "--difference", "forward"],
            "--difference",
        ),
    ] {
        let out = insitu(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
    }
}

#[test]
fn writes_the_result_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = insitu(&[
        "train",
        "--task",
        "synthetic-f1",
        "--method",
        "ff-dd",
        "--width",
        "10",
        "--depth",
        "2",
        "--epochs",
        "2",
        "--direction-kind",
        "rademacher",
        "--difference",
        "forward",
        "--directions",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["spec", "test_r2", "train_seconds", "forward_passes", "status"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["status"], "ok");
    assert_eq!(v["spec"]["width"], 10);
    assert_eq!(v["spec"]["direction_kind"], "rademacher");
    assert_eq!(v["spec"]["difference"], "forward");
    assert!(v["test_r2"].is_number());
    // no temporary file left behind
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_depth_sweep_writes_one_result_per_depth_equal_to_its_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "train",
        "--task",
        "synthetic-f1",
        "--method",
        "ff-dd",
        "--width",
        "10",
        "--epochs",
        "2",
    ];
    let sweep_json = dir.path().join("sweep.json");
    let mut args = common.to_vec();
    args.extend(["--depths", "2,1", "--json", sweep_json.to_str().unwrap()]);
    let out = insitu(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sweep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sweep_json).unwrap()).unwrap();
    assert!(sweep["train_seconds"].is_number());
    let results = sweep["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, depth) in results.iter().zip(["2", "1"]) {
        let alone_json = dir.path().join(format!("d{depth}.json"));
        let mut args = common.to_vec();
        args.extend(["--depth", depth, "--json", alone_json.to_str().unwrap()]);
        assert!(insitu(&args).status.success());
        let alone: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&alone_json).unwrap()).unwrap();
        assert_eq!(r["spec"]["depth"].to_string(), depth);
        for key in ["spec", "test_r2", "forward_passes", "status", "loss_curve"] {
            assert_eq!(r[key], alone[key], "depth {depth}: {key}");
        }
    }
}

#[test]
fn a_diverged_run_is_reported_where_it_stopped_counted_from_one() {
    let out = insitu(&[
        "train",
        "--task",
        "synthetic-f1",
        "--method",
        "bp-ad",
        "--width",
        "10",
        "--depth",
        "1",
        "--epochs",
        "1",
        "--lr",
        "1e30",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    // The JSON counts from 0 (epoch 0, step 1); the line for a reader from 1.
    assert!(
        line.contains("DIVERGED in the network (global schedule), epoch 1, step 2"),
        "{line}"
    );
}
