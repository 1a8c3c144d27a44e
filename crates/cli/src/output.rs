//! Printing a result, writing it to disk atomically, and the trained parameters' `.npy` files
//! out and back in.

use std::path::Path;

use insitu_data::Mat;
use insitu_data::{decode_npy_f32, encode_npy_f32, write_atomically};
use insitu_ffzero::cnn::{KERNEL, REDUCED};
use insitu_ffzero::{
    split_dense, Cnn, DepthSweep, Evaluation, LayerPrototypes, Mlp, Model, PhotonicNetwork, Status, TrainResult,
    TrainedCnn, TrainedNetwork, TrainedPhotonic,
};
use insitu_optics::RectangularMesh;

/// One human-readable line per result.
pub fn summary(r: &TrainResult) -> String {
    let s = &r.spec;
    let metric = match (r.test_accuracy, r.test_r2) {
        (Some(a), _) => format!("test accuracy {:.2} %", 100.0 * a),
        (_, Some(r2)) => format!("test R² {r2:.4}"),
        _ => "no metric".into(),
    };
    let layers = r
        .per_layer_test_accuracy
        .as_ref()
        .map(|v| {
            let parts: Vec<String> = v.iter().map(|a| format!("{:.1}", 100.0 * a)).collect();
            format!(" (layers: {})", parts.join(" / "))
        })
        .unwrap_or_default();
    let status = match (r.status, r.divergence) {
        (Status::Ok, _) => String::new(),
        // Counted from 1 here, as a reader counts (the JSON's `divergence` counts from 0).
        (Status::Diverged, Some(d)) => format!(
            " — DIVERGED in {}, epoch {}, step {}",
            d.layer
                .map(|l| format!("layer {}", l + 1))
                .unwrap_or_else(|| "the network (global schedule)".into()),
            d.epoch + 1,
            d.step + 1
        ),
        (Status::Diverged, None) => " — DIVERGED".into(),
    };
    let shape = match s.model {
        Model::Mlp => format!("w{} d{}", s.width, s.depth),
        Model::Photonic => format!("photonic {} modes × {} meshes", s.width, s.depth),
        Model::Cnn => {
            let fc: String = s.fc_hidden.iter().map(|w| format!(", FC {w}")).collect();
            let dropout = if s.dropout > 0.0 {
                format!(", dropout {}", s.dropout)
            } else {
                String::new()
            };
            format!("cnn {} channels{fc}{dropout}", s.width)
        }
    };
    format!(
        "{} {} {shape} {:?}: {metric}{layers}; {:.1} s training, {} forward passes{status}",
        s.task,
        s.method.name(),
        s.optimizer,
        r.train_seconds,
        r.forward_passes
    )
}

/// One line per depth of a sweep, then the sweep's own training time.
pub fn sweep_summary(s: &DepthSweep) -> String {
    let mut lines: Vec<String> = s.results.iter().map(summary).collect();
    lines.push(format!(
        "depth sweep: {:.1} s training in all (each line above: its network's own layers)",
        s.train_seconds
    ));
    lines.join("\n")
}

/// Write `value` as pretty JSON to `path` atomically (`insitu_data::write_atomically`), so a
/// reader never sees a half-written file.
pub fn write_json_atomically<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| format!("cannot serialise result: {e}"))?;
    text.push(b'\n');
    insitu_data::write_atomically(path, &text).map_err(|e| e.to_string())
}

/// Writes a trained network's layers as `.npy` files in `dir` (`insitu train --weights`):
/// `layerL.weight.npy` (outputs × inputs, row-major), `layerL.bias.npy`, and each FF layer's
/// `layerL.prototypes.npy` (one row per class; regression: the label +1 vector).
pub fn write_network(dir: &Path, trained: &TrainedNetwork) -> Result<(), String> {
    let write = |name: String, shape: &[usize], values: &[f32]| write_npy(dir, name, shape, values);
    let mlp = &trained.mlp;
    for (l, &shape) in mlp.shapes().iter().enumerate() {
        let (w, b) = split_dense(shape, mlp.layer_params(l));
        // stored by columns; NumPy and PyTorch read C (row) order
        let rows: Vec<f32> = (0..shape.outputs)
            .flat_map(|i| (0..shape.inputs).map(move |j| w.get(i, j)))
            .collect();
        write(
            format!("layer{}.weight.npy", l + 1),
            &[shape.outputs, shape.inputs],
            &rows,
        )?;
        write(format!("layer{}.bias.npy", l + 1), &[shape.outputs], b)?;
    }
    for (l, p) in trained.prototypes.iter().enumerate() {
        let name = format!("layer{}.prototypes.npy", l + 1);
        match p {
            // one column per class, stored by columns: row-major classes × width
            LayerPrototypes::Classes(m) => write(name, &[m.ncols(), m.nrows()], m.as_slice())?,
            LayerPrototypes::Regression(up) => write(name, &[up.len()], up)?,
        }
    }
    Ok(())
}

/// One float32 `.npy` file `dir/name`, written atomically.
fn write_npy(dir: &Path, name: String, shape: &[usize], values: &[f32]) -> Result<(), String> {
    write_atomically(&dir.join(name), &encode_npy_f32(shape, values)).map_err(|e| e.to_string())
}

/// `insitu train --model photonic --weights DIR`: every mesh's phases (flat, in
/// `RectangularMesh::params`' layout: θ of every MZI, φ of every MZI, γ of every mode) as
/// `meshL.phases.npy` and, for FF+DD, its prototypes as `meshL.prototypes.npy`
/// (classes × modes), L = 1, 2, ….
pub fn write_photonic(dir: &Path, trained: &TrainedPhotonic) -> Result<(), String> {
    for (l, mesh) in trained.network.meshes().iter().enumerate() {
        write_npy(
            dir,
            format!("mesh{}.phases.npy", l + 1),
            &[mesh.num_params()],
            mesh.params(),
        )?;
    }
    for (l, p) in trained.prototypes.iter().enumerate() {
        // one column per class, stored by columns: row-major classes × modes
        write_npy(
            dir,
            format!("mesh{}.prototypes.npy", l + 1),
            &[p.ncols(), p.nrows()],
            p.as_slice(),
        )?;
    }
    Ok(())
}

/// `insitu train --model cnn --weights DIR`, in PyTorch's layouts: `convL.weight.npy`
/// (`C × C_in × 6 × 6`), `convL.bias.npy`, `fcL.weight.npy` (outputs × inputs, row-major),
/// `fcL.bias.npy`, L = 1, 2, …; for the FF methods each unit's prototypes (`convL` / `fcL`
/// `.prototypes.npy`: classes × width, or the width-vector `ξ^u` in regression) and each
/// convolution channel's fixed reduction (`convL.reductions.npy`: `C × 10 × H_out·W_out`).
pub fn write_cnn(dir: &Path, trained: &TrainedCnn) -> Result<(), String> {
    let net = &trained.network;
    for (l, shape) in net.shapes().iter().enumerate() {
        let k = shape.kernel_len();
        let (kernels, biases): (Vec<&[f32]>, Vec<f32>) = (0..shape.channels)
            .map(|c| {
                let p = net.channel_params(l, c);
                (&p[..k], p[k])
            })
            .unzip();
        write_npy(
            dir,
            format!("conv{}.weight.npy", l + 1),
            &[shape.channels, shape.in_channels, KERNEL, KERNEL],
            &kernels.concat(),
        )?;
        write_npy(dir, format!("conv{}.bias.npy", l + 1), &[shape.channels], &biases)?;
    }
    for (i, w) in net.fc_widths().windows(2).enumerate() {
        let (inputs, outputs) = (w[0], w[1]);
        let (w, b) = net.fc_params(i).split_at(outputs * inputs);
        write_npy(dir, format!("fc{}.weight.npy", i + 1), &[outputs, inputs], w)?;
        write_npy(dir, format!("fc{}.bias.npy", i + 1), &[outputs], b)?;
    }
    for (unit, p) in trained.prototypes.iter().enumerate() {
        let name = cnn_prototypes_file(unit);
        if p.ncols() == 1 {
            write_npy(dir, name, &[p.nrows()], p.as_slice())?;
        } else {
            // one column per class, stored by columns: row-major classes × width
            write_npy(dir, name, &[p.ncols(), p.nrows()], p.as_slice())?;
        }
    }
    for (l, reductions) in trained.reductions.iter().enumerate() {
        let plane = reductions.first().map_or(0, |a| a.ncols());
        let rows: Vec<f32> = reductions
            .iter()
            .flat_map(|a| (0..a.nrows()).flat_map(move |r| (0..a.ncols()).map(move |j| a[(r, j)])))
            .collect();
        write_npy(
            dir,
            format!("conv{}.reductions.npy", l + 1),
            &[reductions.len(), REDUCED, plane],
            &rows,
        )?;
    }
    Ok(())
}

/// A network read back from the files [`write_network`], [`write_photonic`] or [`write_cnn`]
/// wrote.
pub enum Exported {
    /// The MLP and, for FF methods, each layer's prototypes.
    Mlp(Mlp, Vec<LayerPrototypes>),
    /// The photonic network and, for FF+DD, each mesh's prototypes (modes × classes).
    Photonic(PhotonicNetwork, Vec<Mat>),
    /// The CNN and, for the FF methods, each unit's prototypes and each convolution layer's
    /// reductions ([`insitu_ffzero::evaluate_cnn`]'s arguments).
    Cnn(Cnn, Vec<Mat>, Vec<Vec<Mat>>),
}

/// The prototypes file of CNN unit `unit` (conv 1, conv 2, then the FC layers).
fn cnn_prototypes_file(unit: usize) -> String {
    match unit {
        0 | 1 => format!("conv{}.prototypes.npy", unit + 1),
        _ => format!("fc{}.prototypes.npy", unit - 1),
    }
}

/// `name` in `dir`, which must exist.
fn required_npy(dir: &Path, name: &str) -> Result<NpyArray, String> {
    read_npy(dir, name)?.ok_or_else(|| format!("{} is missing", dir.join(name).display()))
}

/// Reads what [`write_cnn`] wrote, checking every size against the network's.
fn read_cnn(dir: &Path) -> Result<Exported, String> {
    let at = |name: &str| format!("{}: {name}", dir.display());
    let mut conv = Vec::new();
    for l in 1..=2 {
        let (shape, w) = required_npy(dir, &format!("conv{l}.weight.npy"))?;
        if shape.len() != 4 || shape[2] != KERNEL || shape[3] != KERNEL {
            return Err(format!(
                "{}: shape {shape:?}, expected (channels, input channels, {KERNEL}, {KERNEL})",
                at(&format!("conv{l}.weight.npy"))
            ));
        }
        let (_, b) = required_npy(dir, &format!("conv{l}.bias.npy"))?;
        conv.push((w, b));
    }
    let mut fc = Vec::new();
    for i in 1.. {
        let name = format!("fc{i}.weight.npy");
        let Some((shape, w)) = read_npy(dir, &name)? else { break };
        if shape.len() != 2 {
            return Err(format!("{}: shape {shape:?}, expected (outputs, inputs)", at(&name)));
        }
        let (_, b) = required_npy(dir, &format!("fc{i}.bias.npy"))?;
        fc.push((w, b));
    }
    let fc_refs: Vec<(&[f32], &[f32])> = fc.iter().map(|(w, b)| (w.as_slice(), b.as_slice())).collect();
    let network = Cnn::from_parts([(&conv[0].0, &conv[0].1), (&conv[1].0, &conv[1].1)], &fc_refs)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // FF: prototypes of conv 1, conv 2 (in R^10) and each FC layer (in R^its outputs), and
    // the reductions
    let mut widths = vec![REDUCED, REDUCED];
    widths.extend_from_slice(&network.fc_widths()[1..]);
    let mut prototypes = Vec::new();
    for (unit, &width) in widths.iter().enumerate() {
        let name = &cnn_prototypes_file(unit);
        let Some((shape, values)) = read_npy(dir, name)? else {
            break;
        };
        let p = match shape[..] {
            [w] => Mat::from_column_slice(w, 1, &values),
            _ => prototypes_of(&shape, &values, name)?,
        };
        if p.nrows() != width {
            return Err(format!(
                "{}: prototypes in R^{}, the unit has {width} outputs",
                at(name),
                p.nrows()
            ));
        }
        prototypes.push(p);
    }
    if prototypes.is_empty() {
        return Ok(Exported::Cnn(network, prototypes, Vec::new()));
    }
    if prototypes.len() != widths.len() {
        return Err(format!(
            "{}: {} prototypes files for {} units (a run that diverged exports only the units that trained; insitu evaluate needs them all)",
            dir.display(),
            prototypes.len(),
            widths.len()
        ));
    }
    let mut reductions = Vec::new();
    for (l, shape) in network.shapes().iter().enumerate() {
        let name = format!("conv{}.reductions.npy", l + 1);
        let (dims, values) = required_npy(dir, &name)?;
        let plane = shape.out_side().pow(2);
        if dims != [shape.channels, REDUCED, plane] {
            return Err(format!(
                "{}: shape {dims:?}, expected ({}, {REDUCED}, {plane})",
                at(&name),
                shape.channels
            ));
        }
        reductions.push(
            values
                .chunks_exact(REDUCED * plane)
                .map(|a| Mat::from_row_slice(REDUCED, plane, a))
                .collect(),
        );
    }
    Ok(Exported::Cnn(network, prototypes, reductions))
}

/// An `.npy` array: its shape and its values in C order.
type NpyArray = (Vec<usize>, Vec<f32>);

/// One `.npy` file of `dir`, or `None` when it does not exist.
fn read_npy(dir: &Path, name: &str) -> Result<Option<NpyArray>, String> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => decode_npy_f32(&bytes, &path.display().to_string())
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The `k × width` row-major prototypes file as a `width × k` matrix (one column per class).
fn prototypes_of(shape: &[usize], values: &[f32], name: &str) -> Result<Mat, String> {
    match shape {
        [classes, width] => Ok(Mat::from_column_slice(*width, *classes, values)),
        _ => Err(format!("{name}: shape {shape:?}, expected (classes, width)")),
    }
}

/// Reads what `insitu train --weights DIR` wrote: `layer1.weight.npy`, … (an MLP),
/// `mesh1.phases.npy`, … (the photonic network) or `conv1.weight.npy`, … (the CNN), with the
/// prototypes files when they exist.
pub fn read_exported(dir: &Path) -> Result<Exported, String> {
    if read_npy(dir, "conv1.weight.npy")?.is_some() {
        return read_cnn(dir);
    }
    if read_npy(dir, "mesh1.phases.npy")?.is_some() {
        let mut meshes = Vec::new();
        let mut prototypes = Vec::new();
        for l in 1.. {
            let name = format!("mesh{l}.phases.npy");
            let Some((shape, phases)) = read_npy(dir, &name)? else {
                break;
            };
            // N² phases: N(N−1)/2 MZIs with θ and φ each, and N screen phases
            let n = phases.len().isqrt();
            if shape.len() != 1 || n * n != phases.len() {
                return Err(format!(
                    "{name}: {} phases are not those of a Clements mesh (N² of them)",
                    phases.len()
                ));
            }
            let mut mesh = RectangularMesh::clements(n).map_err(|e| format!("{name}: {e}"))?;
            mesh.set_params(&phases).map_err(|e| format!("{name}: {e}"))?;
            meshes.push(mesh);
            let name = format!("mesh{l}.prototypes.npy");
            if let Some((shape, values)) = read_npy(dir, &name)? {
                prototypes.push(prototypes_of(&shape, &values, &name)?);
            }
        }
        if !prototypes.is_empty() && prototypes.len() != meshes.len() {
            return Err(format!(
                "{}: {} meshes but {} prototypes files",
                dir.display(),
                meshes.len(),
                prototypes.len()
            ));
        }
        let network = PhotonicNetwork::from_meshes(meshes).map_err(|e| e.to_string())?;
        return Ok(Exported::Photonic(network, prototypes));
    }
    let mut layers = Vec::new();
    let mut prototypes = Vec::new();
    for l in 1.. {
        let name = format!("layer{l}.weight.npy");
        let Some((shape, w)) = read_npy(dir, &name)? else { break };
        let [outputs, inputs] = shape[..] else {
            return Err(format!("{name}: shape {shape:?}, expected (outputs, inputs)"));
        };
        // written row by row (nn.Linear), the MLP keeps it by columns
        let weight = Mat::from_row_slice(outputs, inputs, &w);
        let name = format!("layer{l}.bias.npy");
        let (_, bias) = read_npy(dir, &name)?.ok_or_else(|| format!("{} is missing", dir.join(&name).display()))?;
        layers.push((weight, bias));
        let name = format!("layer{l}.prototypes.npy");
        if let Some((shape, values)) = read_npy(dir, &name)? {
            prototypes.push(match shape[..] {
                [_] => LayerPrototypes::Regression(values),
                _ => LayerPrototypes::Classes(prototypes_of(&shape, &values, &name)?),
            });
        }
    }
    if layers.is_empty() {
        return Err(format!(
            "{} holds none of layer1.weight.npy, mesh1.phases.npy and conv1.weight.npy (what insitu train --weights writes)",
            dir.display()
        ));
    }
    let mlp = Mlp::from_layers(&layers).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Exported::Mlp(mlp, prototypes))
}

/// One line: the metrics of `insitu evaluate`.
pub fn evaluation_summary(e: &Evaluation) -> String {
    let mut parts = Vec::new();
    if let Some(a) = e.test_accuracy {
        parts.push(format!("test accuracy {:.2} %", 100.0 * a));
    }
    if let Some(v) = &e.per_layer_test_accuracy {
        let layers: Vec<String> = v.iter().map(|a| format!("{:.1}", 100.0 * a)).collect();
        parts.push(format!("layers: {}", layers.join(" / ")));
    }
    if let Some(r2) = e.test_r2 {
        parts.push(format!("test R² {r2:.4}"));
    }
    parts.join("; ")
}
