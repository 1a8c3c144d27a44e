//! `insitu optics …` interchange commands: JSON in, JSON out, checked against properties a
//! Python user would check (unitarity, the written activation formula, energy conservation).

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

fn write(dir: &tempfile::TempDir, name: &str, v: &Value) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.to_str().unwrap().to_string()
}

fn cplx(v: &Value, i: usize, j: Option<usize>) -> (f64, f64) {
    let get = |part: &str| match j {
        Some(j) => v[part][i][j].as_f64().unwrap(),
        None => v[part][i].as_f64().unwrap(),
    };
    (get("re"), get("im"))
}

#[test]
fn mesh_unitary_is_unitary_and_layout_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    // n = 5: layers alternate 2 and 2 MZIs (even layers (0,1),(2,3); odd layers (1,2),(3,4)).
    let phases = json!({"n": 5,
        "theta": [[0.3, 1.2], [2.0, 0.1], [1.5, 2.5], [0.7, 0.9], [3.0, 0.2]],
        "phi": [[0.5, 4.0], [0.7, 1.0], [0.2, 6.0], [3.3, 0.1], [1.0, 2.0]],
        "gamma": [0.1, 0.2, 0.3, 0.4, 0.5]});
    let (code, out, err) = run(&["optics", "mesh-unitary", "--phases", &write(&dir, "p.json", &phases)]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let u = &v["unitary"];
    for a in 0..5 {
        for b in 0..5 {
            // (U†U)_ab = Σ_i conj(U_ia) U_ib
            let (mut re, mut im) = (0.0, 0.0);
            for i in 0..5 {
                let (xr, xi) = cplx(u, i, Some(a));
                let (yr, yi) = cplx(u, i, Some(b));
                re += xr * yr + xi * yi;
                im += xr * yi - xi * yr;
            }
            let expect = if a == b { 1.0 } else { 0.0 };
            assert!(
                (re - expect).abs() < 1e-6 && im.abs() < 1e-6,
                "U†U[{a}][{b}] = {re} + {im}i"
            );
        }
    }
    let short = json!({"n": 4, "theta": [[0.1]], "phi": [[0.1]], "gamma": [0.0, 0.0, 0.0, 0.0]});
    let (code, _, err) = run(&["optics", "mesh-unitary", "--phases", &write(&dir, "s.json", &short)]);
    assert_eq!(code, Some(2));
    assert!(err.contains("theta[0] has 1 entries"), "{err}");
}

#[test]
fn activation_follows_the_written_formula() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir, "z.json", &json!({"re": [0.7, -0.2], "im": [0.4, 1.1]}));
    let (code, out, err) = run(&[
        "optics",
        "activation",
        "--kind",
        "electro-optic",
        "--alpha",
        "0.2",
        "--g",
        "0.5",
        "--phi-b",
        "1.0",
        "--input",
        &input,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    // f(z) = i·sqrt(1−α)·exp(−i(g|z|² + φ_b)/2)·cos((g|z|² + φ_b)/2)·z
    let (zr, zi) = (0.7f64, 0.4f64);
    let a = 0.5 * (zr * zr + zi * zi) + 1.0;
    let k = (0.8f64).sqrt() * (a / 2.0).cos();
    // i·exp(−ia/2) = sin(a/2) + i cos(a/2)
    let (pr, pi) = ((a / 2.0).sin() * k, (a / 2.0).cos() * k);
    let (fr, fi) = (pr * zr - pi * zi, pr * zi + pi * zr);
    let (gr, gi) = cplx(&v["f"], 0, None);
    // the activation evaluates in f64 but holds α, g, φ_b in f32 (the crate's parameter
    // precision), hence 1e-7 rather than 1e-15
    assert!(
        (fr - gr).abs() < 1e-7 && (fi - gi).abs() < 1e-7,
        "f = {gr}+{gi}i, expected {fr}+{fi}i"
    );
    // ∂f/∂Re z by a central difference of the same formula
    let f = |x: f64, y: f64| {
        let a = 0.5 * (x * x + y * y) + 1.0;
        let k = (0.8f64).sqrt() * (a / 2.0).cos();
        let (pr, pi) = ((a / 2.0).sin() * k, (a / 2.0).cos() * k);
        (pr * x - pi * y, pr * y + pi * x)
    };
    let h = 1e-6;
    let (p, m) = (f(zr + h, zi), f(zr - h, zi));
    let (dr, di) = cplx(&v["df_dre"], 0, None);
    assert!(((p.0 - m.0) / (2.0 * h) - dr).abs() < 1e-6 && ((p.1 - m.1) / (2.0 * h) - di).abs() < 1e-6);
    let (code, _, err) = run(&[
        "optics",
        "activation",
        "--kind",
        "electro-optic",
        "--alpha",
        "1.5",
        "--input",
        &input,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--alpha"), "{err}");
}

#[test]
fn propagate_keeps_shape_and_energy() {
    let dir = tempfile::tempdir().unwrap();
    let n = 16;
    let re: Vec<Vec<f64>> = (0..n)
        .map(|r| {
            (0..n)
                .map(|c| {
                    if (5..11).contains(&r) && (5..11).contains(&c) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let im = vec![vec![0.0; n]; n];
    let input = write(&dir, "f.json", &json!({"re": re, "im": im}));
    for method in ["asm", "fresnel", "bl-asm"] {
        let (code, out, err) = run(&[
            "optics",
            "propagate",
            "--input",
            &input,
            "--wavelength",
            "532e-9",
            "--dx",
            "8e-6",
            "--z",
            "1e-3",
            "--method",
            method,
            "--pad",
            "1",
        ]);
        assert_eq!(code, Some(0), "{method}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["re"].as_array().unwrap().len(), n);
        let energy: f64 = (0..n)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| {
                let (a, b) = cplx(&v, r, Some(c));
                a * a + b * b
            })
            .sum();
        // without padding the propagators are unitary on the periodic grid (all 16² frequencies
        // propagate at this pitch and wavelength), so the 36 units of energy are kept
        assert!((energy - 36.0).abs() < 1e-3, "{method}: energy {energy}");
    }
    let bad = write(&dir, "b.json", &json!({"re": [[1.0, 0.0]], "im": [[0.0, 0.0]]}));
    let (code, _, err) = run(&[
        "optics",
        "propagate",
        "--input",
        &bad,
        "--wavelength",
        "1e-6",
        "--dx",
        "1e-6",
        "--z",
        "1",
        "--method",
        "asm",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("square"), "{err}");
}
