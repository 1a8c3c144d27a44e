//! Figures drawn like the papers': the numbers of a figure are gathered into [`Panel`]s (one
//! chart each: x, and one line per method or mode), drawn with plotters as PNG and SVG with the
//! embedded DejaVu Sans (`xtask/assets/DejaVuSans.ttf`, Bitstream Vera / DejaVu licence in
//! `xtask/assets/DejaVuSans-LICENSE.txt`), so no system font library is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::runspec::{RunResult, RunSpec};
use crate::store::StoredResult;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text (`FF+DD`, `in situ (FFM)`, `paper: ideal`, …).
    pub name: String,
    /// `(x, mean y, number of runs averaged)` sorted by x; x values without a result are absent.
    pub points: Vec<(f64, f64, usize)>,
    /// Drawn dashed (reference values from the paper).
    pub reference: bool,
}

/// One chart.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Caption.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// y range drawn (values outside are clamped onto the frame).
    pub y_range: (f64, f64),
    /// Every x of the figure's grid, found or not (table rows).
    pub xs: Vec<f64>,
}

fn method_label(name: &str) -> String {
    name.to_uppercase().replace('-', "+")
}

/// Per series: x (in thousandths) → (sum of y, count).
type SeriesSums = BTreeMap<String, BTreeMap<i64, (f64, usize)>>;

/// Points gathered per panel: (title, sums per series, series in first-seen order).
struct Acc {
    panels: Vec<(String, SeriesSums, Vec<String>)>,
    xs: BTreeMap<String, Vec<f64>>,
}

impl Acc {
    fn new() -> Self {
        Self {
            panels: Vec::new(),
            xs: BTreeMap::new(),
        }
    }
    fn add(&mut self, panel: &str, series: &str, x: f64, y: Option<f64>) {
        let idx = match self.panels.iter().position(|p| p.0 == panel) {
            Some(i) => i,
            None => {
                self.panels.push((panel.to_string(), BTreeMap::new(), Vec::new()));
                self.panels.len() - 1
            }
        };
        let entry = &mut self.panels[idx];
        if !entry.2.iter().any(|s| s == series) {
            entry.2.push(series.to_string());
        }
        let xs = self.xs.entry(panel.to_string()).or_default();
        if !xs.contains(&x) {
            xs.push(x);
        }
        let pts = entry.1.entry(series.to_string()).or_default();
        if let Some(y) = y.filter(|y| y.is_finite()) {
            let e = pts.entry((x * 1000.0).round() as i64).or_insert((0.0, 0));
            e.0 += y;
            e.1 += 1;
        }
    }
    fn finish(self, x_label: &str, y_label: &str, y_range: (f64, f64)) -> Vec<Panel> {
        self.panels
            .into_iter()
            .map(|(title, by_series, order)| {
                let mut xs = self.xs.get(&title).cloned().unwrap_or_default();
                xs.sort_by(f64::total_cmp);
                Panel {
                    series: order
                        .iter()
                        .map(|name| Series {
                            name: name.clone(),
                            reference: name.starts_with("paper"),
                            points: by_series[name]
                                .iter()
                                .map(|(&x, &(sum, n))| (x as f64 / 1000.0, sum / n as f64, n))
                                .collect(),
                        })
                        .collect(),
                    title,
                    x_label: x_label.into(),
                    y_label: y_label.into(),
                    y_range,
                    xs,
                }
            })
            .collect()
    }
}

fn accuracy_percent(r: Option<&StoredResult>) -> Option<f64> {
    match &r?.result {
        RunResult::Ffzero(t) => t.test_accuracy.map(|a| 100.0 * a),
        RunResult::Ffm(f) => Some(100.0 * f.test_accuracy),
        RunResult::Pic(p) => Some(100.0 * p.test_accuracy),
        RunResult::Exceptional(_) | RunResult::Focus(_) | RunResult::Nlos(_) => None,
    }
}

/// The test R²; none for a run that diverged (its parameters' R² can be −10⁴⁷: not a point
/// to plot).
fn r2(r: Option<&StoredResult>) -> Option<f64> {
    match &r?.result {
        RunResult::Ffzero(t) if t.status == insitu_ffzero::Status::Diverged => None,
        RunResult::Ffzero(t) => t.test_r2,
        RunResult::Ffm(_)
        | RunResult::Pic(_)
        | RunResult::Exceptional(_)
        | RunResult::Focus(_)
        | RunResult::Nlos(_) => None,
    }
}

fn dataset_label(task: &str) -> &str {
    match task {
        "mnist" => "MNIST",
        "fashion-mnist" => "Fashion-MNIST",
        "mnist-regression" => "MNIST regression",
        "synthetic-f1" => "synthetic f1",
        "synthetic-f2" => "synthetic f2",
        other => other,
    }
}

/// The panels of figure `id` from its runs (`(spec, stored result if done)`), and the number of
/// columns to lay them out in.
pub fn panels(id: &str, runs: &[(RunSpec, Option<&StoredResult>)]) -> (Vec<Panel>, usize) {
    let mut acc = Acc::new();
    match id {
        "seed000-fig4" => {
            for (spec, r) in runs {
                if let RunSpec::Ffzero(s) = spec {
                    let panel = format!("{}, width {}", dataset_label(&s.task), s.width);
                    acc.add(
                        &panel,
                        &method_label(s.method.name()),
                        s.depth as f64,
                        accuracy_percent(*r),
                    );
                }
            }
            let cols = acc.panels.iter().filter(|p| p.0.starts_with("MNIST")).count().max(1);
            (
                acc.finish("hidden layers (depth)", "test accuracy (%)", (0.0, 100.0)),
                cols,
            )
        }
        "seed000-fig6" => {
            for (spec, r) in runs {
                if let RunSpec::Ffzero(s) = spec {
                    acc.add(
                        dataset_label(&s.task),
                        &method_label(s.method.name()),
                        s.width as f64,
                        r2(*r),
                    );
                }
            }
            let n = acc.panels.len().max(1);
            (acc.finish("hidden width (2 hidden layers)", "test R²", (-0.2, 1.0)), n)
        }
        "seed000-suppfig1" => {
            for (spec, r) in runs {
                if let RunSpec::Ffzero(s) = spec {
                    let panel = format!("{} depth {}, width {}", dataset_label(&s.task), s.depth, s.width);
                    acc.add(
                        &panel,
                        &method_label(s.method.name()),
                        s.directions as f64,
                        accuracy_percent(*r),
                    );
                }
            }
            let n = acc.panels.len().max(1);
            (acc.finish("directions P", "test accuracy (%)", (0.0, 100.0)), n)
        }
        "seed000-photonic" => {
            let panel = "MNIST, two MZI meshes".to_string();
            for (spec, r) in runs {
                if let RunSpec::Ffzero(s) = spec {
                    acc.add(
                        &panel,
                        &method_label(s.method.name()),
                        s.width as f64,
                        accuracy_percent(*r),
                    );
                }
            }
            (
                acc.finish("modes N (pooled pixels)", "test accuracy (%)", (0.0, 100.0)),
                1,
            )
        }
        "seed000-cnn" => {
            let mut regression = Acc::new();
            for (spec, r) in runs {
                if let RunSpec::Ffzero(s) = spec {
                    let method = method_label(s.method.name());
                    match s.task.as_str() {
                        "mnist-regression" => regression.add("MNIST regression, CNN", &method, s.width as f64, r2(*r)),
                        "fashion-mnist" => acc.add(
                            "Fashion-MNIST, CNN (FC 100, dropout 0.1)",
                            &method,
                            s.width as f64,
                            accuracy_percent(*r),
                        ),
                        _ => acc.add("MNIST, CNN", &method, s.width as f64, accuracy_percent(*r)),
                    }
                }
            }
            let mut panels = acc.finish("channels per convolution layer", "test accuracy (%)", (0.0, 100.0));
            panels.extend(regression.finish("channels per convolution layer", "test R²", (-0.5, 1.0)));
            let columns = panels.len().min(3);
            (panels, columns)
        }
        "seed002-fig2d" => {
            let panel = "Fashion-MNIST, free-space ONN".to_string();
            for (spec, r) in runs {
                if let RunSpec::Ffm(f) = spec {
                    acc.add(&panel, mode_label(f.mode), f.layers as f64, accuracy_percent(*r));
                }
            }
            for (name, values) in PAPER_FIG2D {
                for (l, v) in [2.0, 4.0, 6.0, 8.0].into_iter().zip(values) {
                    acc.add(&panel, name, l, Some(v));
                }
            }
            (
                acc.finish("layers", "test accuracy (%), mean over seeds", (0.0, 100.0)),
                1,
            )
        }
        "seed002-fig5" => {
            let panel = "Iris, integrated photonic network".to_string();
            for (spec, r) in runs {
                if let RunSpec::Pic(p) = spec {
                    acc.add(&panel, mode_label(p.mode), f64::from(p.ratio), accuracy_percent(*r));
                }
            }
            for (name, values) in PAPER_FIG5 {
                for (ratio, v) in [1.0, 0.75, 0.5].into_iter().zip(values) {
                    acc.add(&panel, name, ratio, Some(v));
                }
            }
            (
                acc.finish(
                    "symmetry ratio w2/w1",
                    "test accuracy (%), mean over seeds",
                    (0.0, 100.0),
                ),
                1,
            )
        }
        "seed002-fig3" => {
            let (mut curves, mut ratio, mut width) = (Acc::new(), Acc::new(), Acc::new());
            for (spec, r) in runs {
                let (RunSpec::Focus(f), Some(stored)) = (spec, r) else {
                    continue;
                };
                let RunResult::Focus(result) = &stored.result else {
                    continue;
                };
                let name = match (f.method, f.back_distance) {
                    (insitu_ffm::focusing::FocusMethod::Ffm { .. }, None) => "FFM".to_string(),
                    (insitu_ffm::focusing::FocusMethod::Ffm { .. }, Some(_)) => "FFM, unequal distances".to_string(),
                    (insitu_ffm::focusing::FocusMethod::Pso { particles, segments }, _) => {
                        format!("PSO ({particles} particles, {segments}² segments)")
                    }
                };
                for (i, &l) in result.loss_curve.iter().enumerate().step_by(20) {
                    curves.add("loss (mean over scatterers)", &name, i as f64, Some(l));
                }
                let s = f.scatterer_seed as f64;
                ratio.add(
                    "spot / background intensity",
                    &name,
                    s,
                    Some(result.quality.spot_to_background),
                );
                let q = &result.quality;
                width.add(
                    "FWHM of the brightest spot (µm)",
                    &name,
                    s,
                    Some((q.fwhm[0] + q.fwhm[1]) / 2.0 * 1e6),
                );
                if f.back_distance.is_none() {
                    width.add(
                        "FWHM of the brightest spot (µm)",
                        "diffraction limit 0.5 λ/NA",
                        s,
                        Some(result.diffraction_limit * 1e6),
                    );
                }
            }
            let mut panels = curves.finish("iteration", "max-normalised intensity MSE", (0.0, 300.0));
            panels.extend(ratio.finish("scatterer", "mean intensity in the spot / outside", (0.0, 400.0)));
            panels.extend(width.finish("scatterer", "µm", (0.0, 150.0)));
            (panels, 3)
        }
        "seed002-fig4" => {
            use insitu_ffm::nlos::{ImagingLoss, NlosMethod, NlosOutcome, NlosTask};
            let (mut similarity, mut contrast, mut photons) = (Acc::new(), Acc::new(), Acc::new());
            for (spec, r) in runs {
                let (RunSpec::Nlos(n), Some(stored)) = (spec, r) else {
                    continue;
                };
                let RunResult::Nlos(result) = &stored.result else {
                    continue;
                };
                match (&n.task, &result.outcome) {
                    (NlosTask::Imaging(t), NlosOutcome::Imaging(o)) => {
                        let name = match (t.method, t.loss) {
                            (NlosMethod::Ffm { .. }, ImagingLoss::Image) => "FFM".to_string(),
                            (NlosMethod::Ffm { .. }, ImagingLoss::CellFraction) => {
                                "FFM, cell-fraction loss".to_string()
                            }
                            (NlosMethod::Pso { particles, segments }, _) => {
                                format!("PSO ({particles} particles, {segments}² segments)")
                            }
                            (NlosMethod::Flat, _) => "flat mask (raw)".to_string(),
                        };
                        for (i, l) in o.letters.iter().enumerate() {
                            similarity.add(
                                "letters T, H, U: SSIM of the cell read-out",
                                &name,
                                i as f64,
                                Some(l.ssim),
                            );
                            contrast.add(
                                "letters T, H, U: dimmest reflecting / brightest dark cell",
                                &name,
                                i as f64,
                                Some(l.contrast.min(100.0)),
                            );
                        }
                    }
                    (NlosTask::Classification(t), NlosOutcome::Classification(o)) => {
                        for c in &o.curves {
                            let panel = format!("hidden digits {:?}, {}: accuracy (%)", t.classes, c.sensor);
                            for (level, (f, (a, at))) in t
                                .photons_per_pixel
                                .iter()
                                .zip(c.ffm.iter().zip(c.ann.iter().zip(&c.ann_noise_trained)))
                            {
                                // the tables key x by thousandths
                                let x = (level.log10() * 1000.0).round() / 1000.0;
                                photons.add(&panel, "FFM", x, Some(100.0 * f));
                                photons.add(&panel, "ANN (softmax, flat mask)", x, Some(100.0 * a));
                                photons.add(&panel, "ANN-t (trained on noisy images)", x, Some(100.0 * at));
                            }
                        }
                    }
                    _ => {}
                }
            }
            let mut panels = similarity.finish("letter (0 T, 1 H, 2 U)", "SSIM, mean over walls", (0.0, 1.0));
            panels.extend(contrast.finish("letter (0 T, 1 H, 2 U)", "ratio (capped at 100)", (0.0, 40.0)));
            panels.extend(photons.finish("log10 photons per pixel", "test accuracy (%)", (40.0, 100.0)));
            (panels, 2)
        }
        "seed002-ext4" => {
            use insitu_ffm::nlos::{NlosOutcome, NlosTask};
            let mut similarity = Acc::new();
            for (spec, r) in runs {
                let (RunSpec::Nlos(n), Some(stored)) = (spec, r) else {
                    continue;
                };
                let RunResult::Nlos(result) = &stored.result else {
                    continue;
                };
                if let (NlosTask::PhaseImaging(t), NlosOutcome::PhaseImaging(o)) = (&n.task, &result.outcome) {
                    for (set, c) in [("learned", &o.learned), ("unseen", &o.unseen)] {
                        let panel = format!("4a: {} learned per digit, SSIM on the {set}", t.learned_per_digit);
                        for (i, &snr) in o.snr_db.iter().enumerate() {
                            similarity.add(&panel, "FFM (mask learned in situ)", snr, Some(c.ffm[i]));
                            similarity.add(&panel, "ANN (ridge, flat-mask camera)", snr, Some(c.ann[i]));
                            similarity.add(
                                &panel,
                                "ANN-t (trained on noisy images)",
                                snr,
                                Some(c.ann_noise_trained[i]),
                            );
                        }
                    }
                    continue;
                }
                let (NlosTask::Drift(t), NlosOutcome::Drift(o)) = (&n.task, &result.outcome) else {
                    continue;
                };
                let panel = format!(
                    "4b: wall turning {}°/it (grain {} px, {} λ)",
                    t.degrees_per_iteration, n.scene.wall_grain_px, n.scene.wall_roughness
                );
                for (i, &it) in o.iterations.iter().enumerate() {
                    acc.add(
                        &panel,
                        "FFM (mask learned in situ)",
                        it as f64,
                        Some(100.0 * o.ffm_accuracy[i]),
                    );
                    acc.add(
                        &panel,
                        "electronic (softmax on the flat-mask camera)",
                        it as f64,
                        Some(100.0 * o.ann_accuracy[i]),
                    );
                }
            }
            let mut panels = similarity.finish("camera SNR (dB)", "SSIM against the binarised digit", (0.0, 1.0));
            panels.extend(acc.finish("iteration", "test accuracy (%), mean over walls", (0.0, 100.0)));
            (panels, 2)
        }
        "seed002-ext1" => {
            // every 5th step: the report's tables stay readable
            let (mut contrast, mut half_sum) = (Acc::new(), Acc::new());
            for (spec, r) in runs {
                let (RunSpec::Exceptional(e), Some(stored)) = (spec, r) else {
                    continue;
                };
                let RunResult::Exceptional(result) = &stored.result else {
                    continue;
                };
                let name = format!(
                    "{} κ={} from {}{}",
                    match e.target {
                        insitu_ffm::exceptional::ContrastTarget::Asymmetric => "asymmetric,",
                        insitu_ffm::exceptional::ContrastTarget::Symmetric => "symmetric,",
                    },
                    e.bench.kappa / e.unit,
                    e.start.gain,
                    if e.bench.measurement_noise > 0.0 {
                        format!(", noise {}", e.bench.measurement_noise)
                    } else {
                        String::new()
                    }
                );
                for (i, s) in result.trajectory.iter().enumerate().step_by(5) {
                    contrast.add("output contrast", &name, i as f64, Some(s.contrast));
                    half_sum.add(
                        "(gain + loss)/2 — the exceptional point is at κ",
                        &name,
                        i as f64,
                        Some((s.gain + s.loss) / 2.0),
                    );
                }
            }
            let mut panels = contrast.finish("step", "(P₁ − P₂)/(P₁ + P₂)", (-1.0, 1.0));
            panels.extend(half_sum.finish("step", "(g + l)/2 in units of 1 mm⁻¹", (0.0, 3.0)));
            (panels, 2)
        }
        _ => (Vec::new(), 1),
    }
}

/// Seed 002 Fig. 5 as the main text gives it (symmetry ratios 1.0 / 0.75 / 0.5).
const PAPER_FIG5: [(&str, [f64; 3]); 3] = [
    ("paper: simulation", [94.7, 89.2, 89.0]),
    ("paper: in silico", [71.7, 65.8, 55.0]),
    ("paper: FFM", [94.2, 89.2, 88.7]),
];

/// A training mode's legend label.
fn mode_label(mode: insitu_ffm::TrainingMode) -> &'static str {
    match mode {
        insitu_ffm::TrainingMode::Ideal => "ideal",
        insitu_ffm::TrainingMode::InSilico => "in silico (deployed)",
        insitu_ffm::TrainingMode::InSitu => "in situ (FFM)",
    }
}

/// Seed 002 Fig. 2d as SPEC B3 quotes it (2/4/6/8 layers).
const PAPER_FIG2D: [(&str, [f64; 4]); 3] = [
    ("paper: ideal", [92.2, 93.8, 96.0, 96.0]),
    ("paper: in silico", [44.0, 52.4, 58.4, 58.8]),
    ("paper: FFM", [86.5, 91.0, 92.3, 92.5]),
];

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font("sans-serif", style, bytes)
                .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
        }
    });
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(e)?;
    let rows = panels.len().div_ceil(cols.max(1)).max(1);
    let areas = root.split_evenly((rows, cols.max(1)));
    for (area, p) in areas.iter().zip(panels) {
        let (mut x0, mut x1) = (
            p.xs.first().copied().unwrap_or(0.0),
            p.xs.last().copied().unwrap_or(1.0),
        );
        let pad = ((x1 - x0) * 0.05).max(0.5);
        x0 -= pad;
        x1 += pad;
        let (y0, y1) = p.y_range;
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(38)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(p.x_label.as_str())
            .y_desc(p.y_label.as_str())
            .label_style(("sans-serif", 12))
            .x_label_formatter(&|x| {
                if x.fract().abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y:.1}"))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(e)?;
        let measured = p.series.iter().filter(|s| !s.reference).count();
        for (k, s) in p.series.iter().enumerate() {
            // a paper reference line takes the colour of the measured line it stands beside
            let color = COLORS[if s.reference { k - measured } else { k } % COLORS.len()];
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y, _)| (x, y.clamp(y0, y1))).collect();
            if s.reference {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, color.stroke_width(2)))
                    .map_err(e)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart
                    .draw_series(pts.iter().map(|&q| TriangleMarker::new(q, 4, color.filled())))
                    .map_err(e)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(e)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart
                    .draw_series(pts.iter().map(|&q| Circle::new(q, 3, color.filled())))
                    .map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 11))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Draws `panels` as `<dir>/<id>.png` and `<dir>/<id>.svg`; returns the PNG's path.
pub fn render(dir: &Path, id: &str, title: &str, panels: &[Panel], cols: usize) -> Result<PathBuf, String> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let size = ((380 * cols as u32 + 20).max(640), 300 * rows as u32 + 50);
    let png = dir.join(format!("{id}.png"));
    let svg = dir.join(format!("{id}.svg"));
    draw(BitMapBackend::new(&png, size).into_drawing_area(), title, panels, cols)
        .map_err(|e| format!("{}: {e}", png.display()))?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), title, panels, cols)
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(png)
}
