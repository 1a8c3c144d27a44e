//! `insitu ffm focus …`: focusing through a scattering medium (seed 002 Fig. 3).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use insitu_ffm::focusing::{bar_target, focus, scan_object, FocusMethod, FocusResult, FocusSpec, ScanResult};
use serde::Serialize;

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    /// FFM: Adam on the gradient from a data and an error run per step.
    Ffm,
    /// Particle-swarm optimisation of macro-pixels (one run per particle and generation).
    Pso,
}

#[derive(Args)]
pub struct FocusArgs {
    /// How the mask is learned.
    #[arg(long, value_enum, default_value = "ffm")]
    method: Method,
    /// Grid side n; the distances scale as 0.194 m · n/400 (the paper's NA at any n).
    #[arg(long, default_value_t = FocusSpec::default().grid_n)]
    grid: usize,
    /// Steps (FFM) or generations (PSO).
    #[arg(long, default_value_t = FocusSpec::default().iterations)]
    iterations: usize,
    /// FFM: Adam learning rate (radians).
    #[arg(long, default_value_t = 1.0)]
    lr: f32,
    /// PSO: swarm size.
    #[arg(long, default_value_t = 20)]
    particles: usize,
    /// PSO: macro-pixels per side (must divide the grid side).
    #[arg(long, default_value_t = 16)]
    segments: usize,
    /// Which scatterer (seed).
    #[arg(long, default_value_t = 0)]
    scatterer_seed: u64,
    /// Scatterer grain (pixels).
    #[arg(long, default_value_t = FocusSpec::default().scatterer_grain_px)]
    grain: f64,
    /// Target spot diameter (pixels).
    #[arg(long, default_value_t = FocusSpec::default().spot_diameter_px)]
    spot: f64,
    /// Spot centre relative to the grid centre: ROW,COL (pixels).
    #[arg(long, value_delimiter = ',', default_values_t = [0i64, 0])]
    focus: Vec<i64>,
    /// Scatterer → camera distance as a multiple of the modulator → scatterer one (1: the
    /// symmetric path FFM is exact for).
    #[arg(long, default_value_t = 1.0)]
    back_ratio: f64,
    /// Seed of the swarm.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of one focus: learn a POINTS × POINTS grid of foci --pitch pixels apart and scan
    /// a bar target behind the scatterer with them (seed 002 Fig. 3's imaging; the paper's grid
    /// is 20 × 20).
    #[arg(long, value_name = "POINTS")]
    scan: Option<usize>,
    /// Scan: distance between foci (pixels).
    #[arg(long, default_value_t = 3)]
    pitch: i64,
    /// Scan: width of the target's bars (pixels).
    #[arg(long, default_value_t = 8)]
    bar: usize,
    /// Run exactly this `FocusSpec` JSON instead of the options above.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Write the learned mask and the camera's intensity to DIR/mask.npy and DIR/intensity.npy
    /// (float32, n × n).
    #[arg(long, value_name = "DIR")]
    arrays: Option<PathBuf>,
    /// Write the result JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What `insitu ffm focus` produced: one focus, or a scan.
#[derive(Serialize)]
#[serde(untagged)]
pub enum FocusReport {
    /// One learned focus.
    Focus(Box<FocusResult>),
    /// A scan with a grid of learned foci.
    Scan(ScanResult),
}

/// Builds the spec, learns, writes the arrays if asked.
pub fn run(a: &FocusArgs) -> Result<FocusReport, String> {
    let spec = spec_of(a)?;
    if let Some(points) = a.scan {
        let object = bar_target(spec.grid_n, points * a.pitch.max(0) as usize, a.bar);
        let scan = scan_object(&spec, points, a.pitch, &object).map_err(|e| e.to_string())?;
        if let Some(dir) = &a.arrays {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for (name, values) in [("scan.npy", &scan.image), ("truth.npy", &scan.truth)] {
                let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
                insitu_data::write_atomically(&dir.join(name), &insitu_data::encode_npy_f32(&[points, points], &v))
                    .map_err(|e| e.to_string())?;
            }
        }
        return Ok(FocusReport::Scan(scan));
    }
    let trained = focus(&spec).map_err(|e| e.to_string())?;
    if let Some(dir) = &a.arrays {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let n = spec.grid_n;
        for (name, values) in [("mask.npy", &trained.phase), ("intensity.npy", &trained.intensity)] {
            insitu_data::write_atomically(&dir.join(name), &insitu_data::encode_npy_f32(&[n, n], values))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(FocusReport::Focus(Box::new(trained.result)))
}

fn spec_of(a: &FocusArgs) -> Result<FocusSpec, String> {
    Ok(match &a.spec {
        Some(path) => crate::interchange::read_json_as(path, "spec")?,
        None => {
            if a.focus.len() != 2 {
                return Err(format!("--focus takes ROW,COL, got {} numbers", a.focus.len()));
            }
            let distance = 0.194 * a.grid as f64 / 400.0;
            FocusSpec {
                grid_n: a.grid,
                distance,
                back_distance: (a.back_ratio != 1.0).then_some(distance * a.back_ratio),
                iterations: a.iterations,
                method: match a.method {
                    Method::Ffm => FocusMethod::Ffm { lr: a.lr },
                    Method::Pso => FocusMethod::Pso {
                        particles: a.particles,
                        segments: a.segments,
                    },
                },
                scatterer_seed: a.scatterer_seed,
                scatterer_grain_px: a.grain,
                spot_diameter_px: a.spot,
                focus: (a.focus[0], a.focus[1]),
                seed: a.seed,
                ..FocusSpec::default()
            }
        }
    })
}

/// The focus before and after against the diffraction limit, or the scan's agreement with
/// the target.
pub fn summary(report: &FocusReport) -> String {
    let r = match report {
        FocusReport::Focus(r) => r,
        FocusReport::Scan(s) => {
            let points = (s.positions.len() as f64).sqrt().round() as usize;
            let mean = s.image.iter().sum::<f64>() / s.image.len().max(1) as f64;
            let picture: Vec<String> = s
                .image
                .chunks(points.max(1))
                .map(|row| row.iter().map(|&v| if v > mean { '#' } else { '.' }).collect())
                .collect();
            return format!(
                "scan of a bar target with {points} × {points} learned foci ({} forward runs): correlation with the target {:.3}\n{}",
                s.forward_runs,
                s.correlation,
                picture.join("\n")
            );
        }
    };
    let um = |m: f64| m * 1e6;
    let q = &r.quality;
    format!(
        "focus after {} iterations ({} forward runs, {:.2} s): FWHM {:.1} × {:.1} µm (diffraction limit {:.1} µm), \
         peak {:.1} px from the target, spot/background {:.1} (unshaped {:.2}), PSNR {:.2} dB (unshaped {:.2}); \
         loss {:.2} → {:.2}, within 10 % of its final value after {} iterations",
        r.loss_curve.len() - 1,
        r.forward_runs,
        r.train_seconds,
        um(q.fwhm[0]),
        um(q.fwhm[1]),
        um(r.diffraction_limit),
        q.peak_offset_px,
        q.spot_to_background,
        r.unshaped.spot_to_background,
        q.psnr_db,
        r.unshaped.psnr_db,
        r.loss_curve[0],
        r.loss_curve[r.loss_curve.len() - 1],
        r.iterations_to_converge
    )
}
