//! `insitu optics …`: the interchange commands for cross-checking insitu-optics against the
//! Python tools users know (neurophox, diffractsim, LightPipes). JSON in, JSON out.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use insitu_optics::{
    mzi::mzis_in_layer, Complex32, Complex64, ElectroOptic, FreeSpace, Grid, Optoelectronic, Photorefractive,
    PropagationMethod, RectangularMesh,
};
use serde_json::{json, Value};

use crate::interchange::{
    complex_matrix, complex_matrix_json, complex_vector, complex_vector_json, read_json, real_matrix, real_vector,
};

#[derive(Subcommand)]
pub enum OpticsCommand {
    /// Print the unitary U (column convention y = U x) of a rectangular MZI mesh.
    MeshUnitary(MeshArgs),
    /// Print an activation f(z) and its derivatives along Re z and Im z.
    Activation(ActivationArgs),
    /// Propagate a complex 2-D field through free space and print it.
    Propagate(PropagateArgs),
}

#[derive(Args)]
pub struct MeshArgs {
    /// JSON `{"n": N, "theta": [[...]], "phi": [[...]], "gamma": [...]}`, theta and phi shaped
    /// (L, N//2); entries of slots without an MZI are ignored.
    #[arg(long)]
    phases: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ActivationKind {
    /// Williamson et al. 2019 (seed 000's photonic network).
    ElectroOptic,
    /// z·e^{i|z|²} (seed 002).
    Optoelectronic,
    /// z·e^{iπ|z|²/(1+|z|²)} (seed 002).
    Photorefractive,
}

#[derive(Args)]
pub struct ActivationArgs {
    /// Which activation.
    #[arg(long, value_enum)]
    kind: ActivationKind,
    /// Tapped power fraction α (electro-optic).
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// Gain g (electro-optic).
    #[arg(long, default_value_t = 0.05 * std::f64::consts::PI)]
    g: f64,
    /// Bias phase φ_b (electro-optic).
    #[arg(long, default_value_t = std::f64::consts::PI)]
    phi_b: f64,
    /// JSON complex vector `{"re": [...], "im": [...]}`.
    #[arg(long)]
    input: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    /// Exact angular spectrum.
    Asm,
    /// Fresnel transfer function.
    Fresnel,
    /// Band-limited angular spectrum (Matsushima & Shimobaba 2009).
    BlAsm,
}

#[derive(Args)]
pub struct PropagateArgs {
    /// JSON complex 2-D field `{"re": [[...]], "im": [[...]]}` (square, `[row][col]`).
    #[arg(long)]
    input: PathBuf,
    /// Wavelength in metres.
    #[arg(long)]
    wavelength: f64,
    /// Pixel pitch in metres.
    #[arg(long)]
    dx: f64,
    /// Propagation distance in metres.
    #[arg(long)]
    z: f64,
    /// Transfer function.
    #[arg(long, value_enum)]
    method: Method,
    /// Zero-padding factor (1 = none).
    #[arg(long, default_value_t = 2)]
    pad: usize,
}

pub fn run(cmd: &OpticsCommand) -> Result<Value, String> {
    match cmd {
        OpticsCommand::MeshUnitary(a) => mesh_unitary(a),
        OpticsCommand::Activation(a) => activation(a),
        OpticsCommand::Propagate(a) => propagate(a),
    }
}

fn mesh_unitary(a: &MeshArgs) -> Result<Value, String> {
    let v = read_json(&a.phases)?;
    let n = v
        .get("n")
        .and_then(Value::as_u64)
        .ok_or("phases: missing integer field \"n\"")? as usize;
    let theta = real_matrix(v.get("theta").ok_or("phases: missing \"theta\"")?, "theta")?;
    let phi = real_matrix(v.get("phi").ok_or("phases: missing \"phi\"")?, "phi")?;
    let gamma = real_vector(v.get("gamma").ok_or("phases: missing \"gamma\"")?, "gamma")?;
    let layers = theta.len();
    if phi.len() != layers {
        return Err(format!("theta has {layers} layers, phi has {}", phi.len()));
    }
    if gamma.len() != n {
        return Err(format!("gamma has {} entries, expected n = {n}", gamma.len()));
    }
    let mut mesh = RectangularMesh::new(n, layers).map_err(|e| e.to_string())?;
    let (mut thetas, mut phis) = (Vec::new(), Vec::new());
    for l in 0..layers {
        let m = mzis_in_layer(n, l);
        for (name, rows, out) in [("theta", &theta, &mut thetas), ("phi", &phi, &mut phis)] {
            if rows[l].len() < m {
                return Err(format!(
                    "{name}[{l}] has {} entries; layer {l} of an {n}-mode mesh has {m} MZIs",
                    rows[l].len()
                ));
            }
            out.extend(rows[l][..m].iter().map(|&x| x as f32));
        }
    }
    let params: Vec<f32> = thetas
        .into_iter()
        .chain(phis)
        .chain(gamma.iter().map(|&g| g as f32))
        .collect();
    mesh.set_params(&params).map_err(|e| e.to_string())?;
    let u = mesh.matrix64();
    let row_major: Vec<Complex64> = (0..n)
        .flat_map(|r| (0..n).map(move |c| (r, c)))
        .map(|(r, c)| u[(r, c)])
        .collect();
    Ok(json!({"n": n, "layers": layers, "unitary": complex_matrix_json(n, n, &row_major)}))
}

fn activation(a: &ActivationArgs) -> Result<Value, String> {
    let z = complex_vector(&read_json(&a.input)?, "input")?;
    let eval = |f: &dyn Fn(Complex64) -> (Complex64, (Complex64, Complex64))| {
        let (mut fv, mut dre, mut dim) = (Vec::new(), Vec::new(), Vec::new());
        for &x in &z {
            let (y, (r, i)) = f(x);
            fv.push(y);
            dre.push(r);
            dim.push(i);
        }
        json!({"f": complex_vector_json(&fv), "df_dre": complex_vector_json(&dre), "df_dim": complex_vector_json(&dim)})
    };
    Ok(match a.kind {
        ActivationKind::ElectroOptic => {
            if !(0.0..1.0).contains(&a.alpha) {
                return Err(format!(
                    "invalid --alpha = {}: the tapped fraction must be in [0, 1)",
                    a.alpha
                ));
            }
            let f = ElectroOptic {
                alpha: a.alpha as f32,
                g: a.g as f32,
                phi_b: a.phi_b as f32,
            };
            eval(&|x| (f.apply_f64(x), f.real_partials_f64(x)))
        }
        ActivationKind::Optoelectronic => eval(&|x| (Optoelectronic.apply_f64(x), Optoelectronic.real_partials_f64(x))),
        ActivationKind::Photorefractive => {
            eval(&|x| (Photorefractive.apply_f64(x), Photorefractive.real_partials_f64(x)))
        }
    })
}

fn propagate(a: &PropagateArgs) -> Result<Value, String> {
    let (rows, cols, field) = complex_matrix(&read_json(&a.input)?, "input")?;
    if rows != cols || rows == 0 {
        return Err(format!(
            "input: the field must be square and non-empty, got {rows}×{cols}"
        ));
    }
    let method = match a.method {
        Method::Asm => PropagationMethod::AngularSpectrum,
        Method::Fresnel => PropagationMethod::Fresnel,
        Method::BlAsm => PropagationMethod::BandLimitedAngularSpectrum,
    };
    let grid = Grid::new(rows, a.dx).map_err(|e| e.to_string())?;
    let mut fs = FreeSpace::new(grid, a.wavelength, a.z, method, a.pad).map_err(|e| e.to_string())?;
    let mut f32_field: Vec<Complex32> = field.iter().map(|c| Complex32::new(c.re as f32, c.im as f32)).collect();
    fs.propagate(&mut f32_field);
    let out: Vec<Complex64> = f32_field
        .iter()
        .map(|c| Complex64::new(c.re as f64, c.im as f64))
        .collect();
    Ok(complex_matrix_json(rows, cols, &out))
}
