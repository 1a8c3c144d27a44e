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
        (vec!["train", "--dropout", "0.1"], "only the CNN"),
        (vec!["train", "--fc-hidden", "100"], "only the CNN"),
        (vec!["train", "--model", "cnn", "--dropout", "1"], "--dropout"),
        (
            vec!["train", "--model", "cnn", "--fc-hidden", "100,4"],
            "cannot hold the task's 10",
        ),
        (vec!["train", "--model", "cnn", "--fc-hidden", "x"], "--fc-hidden"),
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

/// `--weights` writes the trained network as `.npy` arrays that an independent forward pass
/// (f64, written here from the documented meaning) turns back into the run's accuracies.
#[test]
fn exported_weights_give_back_the_run_accuracy() {
    use insitu_data::{decode_npy_f32, default_datasets_dir, load_task_first, Targets, Task};
    let data = load_task_first(Task::Mnist, &default_datasets_dir(), 0, Some(0), Some(400)).unwrap();
    let Targets::Classes { labels, .. } = &data.test.targets else {
        unreachable!()
    };
    // FF+AD: the FF layout (prototypes) with exact gradients, so that a short run learns
    for method in ["ff-ad", "bp-ad"] {
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = (dir.path().join("r.json"), dir.path().join("w"));
        let out = insitu(&[
            "train",
            "--task",
            "mnist",
            "--method",
            method,
            "--width",
            "24",
            "--depth",
            "2",
            "--epochs",
            "2",
            "--train-limit",
            "3000",
            "--test-limit",
            "400",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--json",
            json.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        // read back by `insitu evaluate`: the run's own metrics, exactly
        let metrics = dir.path().join("m.json");
        let out = insitu(&[
            "evaluate",
            "--weights",
            weights.to_str().unwrap(),
            "--test-limit",
            "400",
            "--json",
            metrics.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
        for key in ["test_accuracy", "per_layer_test_accuracy", "test_r2"] {
            assert_eq!(metrics[key], result[key], "{method}: {key}");
        }
        let load = |name: String| decode_npy_f32(&std::fs::read(weights.join(&name)).unwrap(), &name).unwrap();
        let layers = 3;
        let mut per_layer_correct = vec![0usize; layers];
        let mut output_correct = 0usize;
        for (j, &label) in labels.iter().enumerate() {
            let mut a: Vec<f64> = data.test.inputs.column(j).iter().map(|&v| v as f64).collect();
            for l in 1..=layers {
                let (shape, w) = load(format!("layer{l}.weight.npy"));
                let (_, b) = load(format!("layer{l}.bias.npy"));
                let (rows, cols) = (shape[0], shape[1]);
                assert_eq!(cols, a.len(), "{method}: layer {l} takes the previous layer's width");
                let z: Vec<f64> = (0..rows)
                    .map(|i| b[i] as f64 + (0..cols).map(|k| w[i * cols + k] as f64 * a[k]).sum::<f64>())
                    .collect();
                let argmax = |v: &[f64]| (0..v.len()).max_by(|&x, &y| v[x].total_cmp(&v[y])).unwrap();
                if method == "ff-ad" {
                    let (pshape, p) = load(format!("layer{l}.prototypes.npy"));
                    assert_eq!(pshape, [10, rows]);
                    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    let cosines: Vec<f64> = p
                        .chunks_exact(rows)
                        .map(|pc| {
                            let pc: Vec<f64> = pc.iter().map(|&x| x as f64).collect();
                            z.iter().zip(&pc).map(|(x, y)| x * y).sum::<f64>() / (norm(&z) * norm(&pc))
                        })
                        .collect();
                    per_layer_correct[l - 1] += usize::from(argmax(&cosines) == label as usize);
                } else if l == layers {
                    output_correct += usize::from(argmax(&z) == label as usize);
                }
                a = z.iter().map(|&v| v.max(0.0)).collect();
            }
        }
        let n = labels.len() as f64;
        // f32 in the run, f64 here: a near-tie may fall the other way for a sample or two
        let close =
            |ours: usize, theirs: &serde_json::Value| (ours as f64 / n - theirs.as_f64().unwrap()).abs() <= 2.0 / n;
        if method == "ff-ad" {
            for l in 0..layers {
                let theirs = &result["per_layer_test_accuracy"][l];
                assert!(
                    close(per_layer_correct[l], theirs),
                    "layer {}: {} vs {theirs}",
                    l + 1,
                    per_layer_correct[l]
                );
            }
            assert!(
                per_layer_correct[0] as f64 / n > 0.6,
                "layer 1 learned: {}",
                per_layer_correct[0]
            );
        } else {
            assert!(
                close(output_correct, &result["test_accuracy"]),
                "{output_correct} vs {}",
                result["test_accuracy"]
            );
            assert!(output_correct as f64 / n > 0.6, "the network learned: {output_correct}");
            assert!(!weights.join("layer1.prototypes.npy").exists());
        }
    }
    let out = insitu(&["train", "--depths", "1,2", "--weights", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `--model photonic --weights` writes every mesh's phases and prototypes; loaded into meshes
/// of insitu-optics and run through their f64 unitaries (not the batch kernel the run used),
/// with the pooling and the activation written out here, they give back the run's per-mesh
/// accuracies.
#[test]
fn exported_photonic_phases_give_back_the_run_accuracy() {
    use insitu_data::{decode_npy_f32, default_datasets_dir, load_image_set_first, ImageSet, Targets};
    use insitu_optics::{Complex64, ElectroOptic, RectangularMesh};
    let data = load_image_set_first(ImageSet::Mnist, &default_datasets_dir(), Some(0), Some(300)).unwrap();
    let Targets::Classes { labels, .. } = &data.test.targets else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let (json, weights) = (dir.path().join("r.json"), dir.path().join("w"));
    let out = insitu(&[
        "train",
        "--model",
        "photonic",
        "--pool",
        "4",
        "--width",
        "49",
        "--depth",
        "2",
        "--batch",
        "128",
        "--epochs",
        "3",
        "--train-limit",
        "20000",
        "--test-limit",
        "300",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--json",
        json.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["spec"]["model"], "photonic");
    // read back by `insitu evaluate`: the run's own metrics, exactly
    let metrics = dir.path().join("m.json");
    let out = insitu(&[
        "evaluate",
        "--weights",
        weights.to_str().unwrap(),
        "--test-limit",
        "300",
        "--json",
        metrics.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    for key in ["test_accuracy", "per_layer_test_accuracy"] {
        assert_eq!(metrics[key], result[key], "{key}");
    }
    let load = |name: &str| decode_npy_f32(&std::fs::read(weights.join(name)).unwrap(), name).unwrap();
    let modes = 49;
    let unitaries: Vec<_> = (1..=2)
        .map(|l| {
            let (shape, phases) = load(&format!("mesh{l}.phases.npy"));
            assert_eq!(shape, [modes * modes]);
            let mut mesh = RectangularMesh::clements(modes).unwrap();
            mesh.set_params(&phases).unwrap();
            mesh.matrix64()
        })
        .collect();
    let activation = ElectroOptic::default();
    let mut correct = [0usize; 2];
    for (j, &label) in labels.iter().enumerate() {
        // 4 × 4 average pooling of the 28 × 28 image, row by row
        let image = data.test.inputs.column(j);
        let mut field: Vec<Complex64> = (0..modes)
            .map(|p| {
                let (r, c) = (p / 7, p % 7);
                let sum: f64 = (0..16)
                    .map(|k| image[(4 * r + k / 4) * 28 + 4 * c + k % 4] as f64)
                    .sum();
                Complex64::new(sum / 16.0, 0.0)
            })
            .collect();
        for l in 0..2 {
            let u = &unitaries[l];
            field = (0..modes)
                .map(|i| (0..modes).map(|k| u[(i, k)] * field[k]).sum())
                .collect();
            let intensity: Vec<f64> = field.iter().map(|f| f.norm_sqr()).collect();
            let (pshape, p) = load(&format!("mesh{}.prototypes.npy", l + 1));
            assert_eq!(pshape, [10, modes]);
            let cosine = |c: usize| {
                let pc = &p[c * modes..(c + 1) * modes];
                let dot: f64 = intensity.iter().zip(pc).map(|(x, &y)| x * y as f64).sum();
                let norm: f64 = pc.iter().map(|&y| (y as f64).powi(2)).sum::<f64>().sqrt();
                dot / norm
            };
            let best = (0..10).max_by(|&a, &b| cosine(a).total_cmp(&cosine(b))).unwrap();
            correct[l] += usize::from(best == label as usize);
            field.iter_mut().for_each(|f| *f = activation.apply_f64(*f));
        }
    }
    let n = labels.len() as f64;
    for l in 0..2 {
        let theirs = result["per_layer_test_accuracy"][l].as_f64().unwrap();
        // f32 in the run, f64 here: a near-tie may fall the other way for a sample or two
        assert!(
            (correct[l] as f64 / n - theirs).abs() <= 2.0 / n,
            "mesh {}: {} of {n} vs {theirs}",
            l + 1,
            correct[l]
        );
    }
    assert!(correct[1] as f64 / n > 0.3, "the network learned: {correct:?}");
}

/// `insitu evaluate` refuses what it cannot read, naming the file, with exit code 2.
#[test]
fn evaluate_refuses_missing_and_damaged_exports() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let refused = |dir: &std::path::Path, extra: &[&str], needle: &str| {
        let mut args = vec!["evaluate", "--weights", dir.to_str().unwrap(), "--test-limit", "10"];
        args.extend_from_slice(extra);
        let out = insitu(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
    };
    refused(
        &w,
        &[],
        "holds none of layer1.weight.npy, mesh1.phases.npy and conv1.weight.npy",
    );
    let npy = |shape: &[usize], n: usize| insitu_data::encode_npy_f32(shape, &vec![0.5; n]);
    std::fs::write(w.join("layer1.weight.npy"), npy(&[10, 784], 7840)).unwrap();
    refused(&w, &[], "layer1.bias.npy is missing");
    std::fs::write(w.join("layer1.bias.npy"), npy(&[9], 9)).unwrap();
    refused(&w, &[], "a bias of 9 values for 10 outputs");
    std::fs::write(w.join("layer1.bias.npy"), npy(&[10], 10)).unwrap();
    refused(&w, &["--task", "synthetic-f1"], "takes 784 inputs");
    let bytes = npy(&[10], 10);
    std::fs::write(w.join("layer1.bias.npy"), &bytes[..bytes.len() - 3]).unwrap();
    refused(&w, &[], "layer1.bias.npy");
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("mesh1.phases.npy"), npy(&[50], 50)).unwrap();
    refused(&m, &[], "not those of a Clements mesh");
    // a CNN export: conv 2's kernels must read conv 1's channels, the FC layer their pooled values
    let c = dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    std::fs::write(c.join("conv1.weight.npy"), npy(&[3, 1, 6, 6], 108)).unwrap();
    std::fs::write(c.join("conv1.bias.npy"), npy(&[3], 3)).unwrap();
    refused(&c, &[], "conv2.weight.npy is missing");
    std::fs::write(c.join("conv2.weight.npy"), npy(&[3, 2, 6, 6], 216)).unwrap();
    std::fs::write(c.join("conv2.bias.npy"), npy(&[3], 3)).unwrap();
    std::fs::write(c.join("fc1.weight.npy"), npy(&[10, 108], 1080)).unwrap();
    std::fs::write(c.join("fc1.bias.npy"), npy(&[10], 10)).unwrap();
    refused(&c, &[], "conv 2: 216 kernel values");
    std::fs::write(c.join("conv2.weight.npy"), npy(&[3, 3, 6, 6], 324)).unwrap();
    std::fs::write(c.join("fc1.weight.npy"), npy(&[10, 100], 1000)).unwrap();
    refused(&c, &[], "it reads 108 values");
    std::fs::write(c.join("fc1.weight.npy"), npy(&[10, 108], 1080)).unwrap();
    refused(
        &c,
        &["--task", "mnist-regression"],
        "was not trained for mnist-regression",
    );
    std::fs::write(c.join("conv1.prototypes.npy"), npy(&[10, 9], 90)).unwrap();
    refused(&c, &[], "prototypes in R^9");
}

/// `--model cnn --weights` writes PyTorch-shaped arrays (and, for FF, the prototypes and the
/// reductions); `insitu evaluate` reads them back into the network and gives the run's metrics
/// exactly: MNIST's network by FF+DD, Fashion-MNIST's (FC 100, dropout) by BP+AD, and FF
/// regression.
#[test]
fn exported_cnn_gives_back_the_run_metrics() {
    use insitu_data::decode_npy_f32;
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("ff", &["--task", "mnist", "--method", "ff-dd"][..]),
        (
            "bp",
            &[
                "--task",
                "fashion-mnist",
                "--method",
                "bp-ad",
                "--fc-hidden",
                "12",
                "--dropout",
                "0.1",
            ][..],
        ),
        ("reg", &["--task", "mnist-regression", "--method", "ff-ad"][..]),
    ] {
        let (json, weights, metrics) = (
            dir.path().join(format!("{name}.json")),
            dir.path().join(name),
            dir.path().join(format!("{name}-eval.json")),
        );
        let mut args = vec![
            "train",
            "--model",
            "cnn",
            "--width",
            "3",
            "--epochs",
            "1",
            "--batch",
            "50",
            "--train-limit",
            "400",
            "--test-limit",
            "200",
            "--json",
            json.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = insitu(&args);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(weights.join("conv2.weight.npy")).unwrap();
        let (shape, _) = decode_npy_f32(&bytes, "conv2.weight.npy").unwrap();
        assert_eq!(shape, [3, 3, 6, 6], "{name}: PyTorch's Conv2d layout");
        assert_eq!(weights.join("conv1.reductions.npy").exists(), name != "bp");
        let task = extra[1];
        let out = insitu(&[
            "evaluate",
            "--weights",
            weights.to_str().unwrap(),
            "--task",
            task,
            "--test-limit",
            "200",
            "--json",
            metrics.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let read = |p: &std::path::Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let (run, again) = (read(&json), read(&metrics));
        for field in [
            "test_accuracy",
            "per_layer_test_accuracy",
            "test_r2",
            "per_layer_test_r2",
        ] {
            assert_eq!(run[field], again[field], "{name}: {field}");
        }
        assert!(!run["test_accuracy"].is_null() || !run["test_r2"].is_null());
    }
}
