//! The PNG figures of a report. Text is drawn with an embedded DejaVu Sans, so plots need no system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::analysis::scaling::WidthScaling;
use crate::analysis::{Cell, DEFAULT_RATIO, Edge, Findings, Pair, speedup};
use crate::config::{Metric, ReportSettings};
use crate::store::Outcome;

const FONT: &str = "sans-serif";

/// A seed-mean accuracy curve: (step, accuracy) points.
type Curve = Vec<(usize, f64)>;

fn register_embedded_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if register_font(FONT, FontStyle::Normal, bytes).is_err() {
            panic!("the embedded DejaVu Sans font is not a valid font");
        }
    });
}

fn plot_error<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// Viridis, by linear interpolation between five of its colours; `t` in [0, 1].
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Half the log10 distance to each neighbour of every value (the cell extent around it).
fn half_gaps(values: &[f64]) -> Vec<(f64, f64)> {
    let logs: Vec<f64> = values.iter().map(|v| v.log10()).collect();
    (0..logs.len())
        .map(|i| {
            let below = (i > 0).then(|| (logs[i] - logs[i - 1]) / 2.0);
            let above = (i + 1 < logs.len()).then(|| (logs[i + 1] - logs[i]) / 2.0);
            let fallback = below.or(above).unwrap_or(0.25);
            (below.unwrap_or(fallback), above.unwrap_or(fallback))
        })
        .collect()
}

fn sorted_unique(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    values
}

fn exp_label(v: &f64) -> String {
    format!("{:.0e}", 10f64.powf(*v))
}

/// A pair's cells on the heatmap: each a parallelogram in (log10 eta_A, log10 eta_B) reaching
/// halfway to its neighbours, and the plot's bounds.
struct CellShapes<'a> {
    shapes: Vec<(&'a Cell<'a>, Vec<(f64, f64)>)>,
    x: (f64, f64),
    y: (f64, f64),
}

impl<'a> CellShapes<'a> {
    fn of(pair: &'a Pair<'a>) -> Self {
        let etas = sorted_unique(pair.cells.iter().map(|c| c.eta_a));
        let ratios = sorted_unique(pair.cells.iter().map(|c| c.ratio));
        let (eta_gaps, ratio_gaps) = (half_gaps(&etas), half_gaps(&ratios));
        let shapes = pair
            .cells
            .iter()
            .map(|cell| {
                let i = etas.iter().position(|e| *e == cell.eta_a).expect("listed");
                let j = ratios.iter().position(|r| *r == cell.ratio).expect("listed");
                let (x, r) = (cell.eta_a.log10(), cell.ratio.log10());
                let (xl, xr) = (x - eta_gaps[i].0, x + eta_gaps[i].1);
                let (rl, rh) = (r - ratio_gaps[j].0, r + ratio_gaps[j].1);
                (cell, vec![(xl, xl + rl), (xr, xr + rl), (xr, xr + rh), (xl, xl + rh)])
            })
            .collect();
        let x0 = etas[0].log10() - eta_gaps[0].0;
        let x1 = etas[etas.len() - 1].log10() + eta_gaps[etas.len() - 1].1;
        let y0 = x0 + ratios[0].log10() - ratio_gaps[0].0;
        let y1 = x1 + ratios[ratios.len() - 1].log10() + ratio_gaps[ratios.len() - 1].1;
        Self {
            shapes,
            x: (x0, x1),
            y: (y0, y1),
        }
    }
}

/// A cell's text: its seed mean (dark text on light colours), or what kept it out of the ranking.
fn cell_label(cell: &Cell, metric: Metric, scale: impl Fn(f64) -> f64) -> (String, RGBColor) {
    match cell.metric(metric) {
        Some(spread) => (
            format!("{:.3}", spread.mean),
            if scale(spread.mean) > 0.6 { BLACK } else { WHITE },
        ),
        None => (cell.outcome().as_str().replace('_', " "), BLACK),
    }
}

/// Accuracy over (eta_A, eta_B) on log axes. Each (eta_A, lambda) cell is drawn where it lies in
/// that plane, so rows of constant lambda run parallel to the eta_B = eta_A diagonal (lambda = 1).
/// The best cell has a thick red border (orange, with the edge named in the legend, when it is
/// on the grid's edge); cells that did not learn, diverged or failed are grey and labelled.
pub fn heatmap(pair: &Pair, settings: &ReportSettings, progress: Progress, path: &Path) -> Result<()> {
    register_embedded_font();
    let metric = settings.ranking_metric();
    let values = pair.cells.iter().filter_map(|c| c.metric(metric).map(|m| m.mean));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let scale = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let best_cell = pair.ranked(settings).first().map(|r| r.cell);
    let is_best = |cell: &Cell| best_cell.is_some_and(|b| (b.eta_a, b.ratio) == (cell.eta_a, cell.ratio));
    let edges: Vec<Edge> = best_cell.map(|c| pair.edges(c)).unwrap_or_default();
    let CellShapes { shapes, x, y } = CellShapes::of(pair);

    let root = BitMapBackend::new(path, (1000, 760)).into_drawing_area();
    let err = plot_error(path);
    root.fill(&WHITE).map_err(&err)?;
    let (plot_area, legend_area) = root.split_horizontally(880);
    let title = format!("{}: {metric} over (eta_A, eta_B)", pair_title(pair, progress));
    let best_color = if edges.is_empty() { RED } else { RGBColor(255, 140, 0) };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("eta_A (log scale)")
        .y_desc("eta_B = lambda * eta_A (log scale)")
        .x_label_formatter(&exp_label)
        .y_label_formatter(&exp_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;

    // Cells first, then the diagonal, outlines (the best cell's last, so nothing covers it) and
    // labels on top.
    let fill = |cell: &Cell| match (cell.metric(metric), cell.outcome()) {
        (Some(spread), _) => viridis(scale(spread.mean)),
        (None, Outcome::NoLearning) => RGBColor(225, 225, 225),
        (None, _) => RGBColor(170, 170, 170),
    };
    let polygons = shapes
        .iter()
        .map(|(cell, corners)| Polygon::new(corners.clone(), fill(cell).filled()));
    chart.draw_series(polygons).map_err(&err)?;
    chart
        .draw_series(LineSeries::new(vec![(x.0, x.0), (x.1, x.1)], BLACK.stroke_width(2)))
        .map_err(&err)?
        .label("eta_B = eta_A (plain LoRA)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    let outline = |corners: &Vec<(f64, f64)>| corners.iter().chain(&corners[..1]).copied().collect::<Vec<_>>();
    let others = shapes.iter().filter(|(c, _)| !is_best(c));
    chart
        .draw_series(others.map(|(_, k)| PathElement::new(outline(k), WHITE)))
        .map_err(&err)?;
    let best = shapes.iter().filter(|(c, _)| is_best(c));
    chart
        .draw_series(best.map(|(_, k)| PathElement::new(outline(k), best_color.stroke_width(4))))
        .map_err(&err)?
        .label(if edges.is_empty() {
            "best cell".to_string()
        } else {
            let edges: Vec<&str> = edges.iter().map(|e| e.as_str()).collect();
            format!("best cell, on the grid's edge: {}", edges.join(", "))
        })
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], best_color.stroke_width(3)));
    let centered = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    let labels = pair.cells.iter().map(|cell| {
        let (text, color) = cell_label(cell, metric, scale);
        let (x, r) = (cell.eta_a.log10(), cell.ratio.log10());
        Text::new(text, (x, x + r), (FONT, 13).into_font().color(&color).pos(centered))
    });
    chart.draw_series(labels).map_err(&err)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 14).map_err(&err)?;
    colorbar(&legend_area, lo, hi, metric).map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

type DrawResult<'a> = Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>;

fn colorbar<'a>(area: &DrawingArea<BitMapBackend<'a>, Shift>, lo: f64, hi: f64, metric: Metric) -> DrawResult<'a> {
    let (top, bottom, left, width) = (80i32, 640i32, 20i32, 30i32);
    for y in top..bottom {
        let t = (bottom - y) as f64 / (bottom - top) as f64;
        area.draw(&Rectangle::new([(left, y), (left + width, y + 1)], viridis(t).filled()))?;
    }
    let style = (FONT, 13).into_font();
    if lo.is_finite() {
        area.draw(&Text::new(format!("{hi:.3}"), (left, top - 22), style.clone()))?;
        area.draw(&Text::new(format!("{lo:.3}"), (left, bottom + 8), style.clone()))?;
    }
    area.draw(&Text::new(metric.to_string(), (4, bottom + 30), style))?;
    Ok(())
}

/// The series legend every plot draws: framed, on a near-opaque white box, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, font_size))
        .draw()
}

/// How many of a pair's planned trials have records: `Some((recorded, planned))` while some
/// are still to come, so its plots say they may change.
pub type Progress = Option<(usize, usize)>;

/// `model/task`, its other axes' values, and whether it is partial.
fn pair_title(pair: &Pair, progress: Progress) -> String {
    let mut title = pair.key.to_string();
    if let Some((recorded, planned)) = progress {
        title.push_str(&format!(" (partial: {recorded} of {planned} trials)"));
    }
    title
}

/// The curves of a pair's figure, as (legend, seed-mean curve, colour): the best plain LoRA,
/// the best LoRA+, LoRA+ at the default ratio with eta_A tuned (when it is another cell) and the
/// best head-only baseline.
fn curve_series(pair: &Pair, settings: &ReportSettings) -> Vec<(String, Curve, RGBColor)> {
    let metric = settings.ranking_metric();
    let (lora, plus) = pair.best_lora_and_loraplus(settings);
    let baseline = pair
        .baseline
        .iter()
        .filter_map(|c| c.metric(metric).map(|m| (c, m.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c);
    let mut series = Vec::new();
    if let Some(l) = &lora {
        series.push((
            format!("LoRA: ratio 1, eta_A {:.1e}", l.cell.eta_a),
            l.cell.mean_curve(metric),
            RGBColor(31, 119, 180),
        ));
    }
    if let Some(p) = &plus {
        series.push((
            format!("LoRA+: ratio {}, eta_A {:.1e}", p.cell.ratio, p.cell.eta_a),
            p.cell.mean_curve(metric),
            RGBColor(214, 39, 40),
        ));
    }
    if let Some(d) = pair
        .best_at_ratio(settings, DEFAULT_RATIO)
        .filter(|d| plus.as_ref().is_none_or(|p| !std::ptr::eq(p.cell, d.cell)))
    {
        series.push((
            format!("LoRA+: ratio {DEFAULT_RATIO} (default), eta_A {:.1e}", d.cell.eta_a),
            d.cell.mean_curve(metric),
            RGBColor(255, 127, 14),
        ));
    }
    if let Some(b) = baseline {
        series.push((
            format!("head only (frozen base), eta_A {:.1e}", b.eta_a),
            b.mean_curve(metric),
            RGBColor(127, 127, 127),
        ));
    }
    series
}

/// The best plain-LoRA cell against the best LoRA+ cell (and the best head-only baseline):
/// seed-mean accuracy over steps, with the speed-up.
pub fn curves(pair: &Pair, settings: &ReportSettings, progress: Progress, path: &Path) -> Result<()> {
    register_embedded_font();
    let metric = settings.ranking_metric();
    let (lora, plus) = pair.best_lora_and_loraplus(settings);
    let series = curve_series(pair, settings);
    let max_step = series
        .iter()
        .flat_map(|(_, c, _)| c.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let accs: Vec<f64> = series.iter().flat_map(|(_, c, _)| c.iter().map(|p| p.1)).collect();
    let y_lo = accs.iter().copied().fold(1.0, f64::min).min(0.9);
    let y_lo = (y_lo - 0.05).max(0.0);

    let speed = match (&lora, &plus) {
        (Some(l), Some(p)) => speedup(&l.cell.mean_curve(metric), &p.cell.mean_curve(metric)),
        _ => None,
    };
    let title = match speed {
        Some((s, _, _)) => format!("{}: speed-up {s:.2}x", pair_title(pair, progress)),
        None => format!("{}: LoRA vs LoRA+", pair_title(pair, progress)),
    };
    let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
    let err = plot_error(path);
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0..max_step, y_lo..1.0)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(format!("{metric} (mean over seeds)"))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;
    for (name, curve, color) in &series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(curve.clone(), color.stroke_width(3)))
            .map_err(&err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    if let (Some(l), Some((_, _, plus_steps))) = (&lora, speed)
        && let Some(&(_, target)) = l.cell.mean_curve(metric).last()
    {
        chart
            .draw_series(LineSeries::new(
                vec![(0, target), (max_step, target)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(&err)?
            .label(format!("LoRA's final accuracy, reached by LoRA+ at step {plus_steps}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
        chart
            .draw_series(std::iter::once(Circle::new(
                (plus_steps, target),
                6,
                RGBColor(214, 39, 40).filled(),
            )))
            .map_err(&err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 14).map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// The paper's figure: the distribution of log2(eta_B / eta_A) over every pair's top-k cells,
/// with the median and its bootstrap interval marked.
pub fn ratio_distribution(distribution: &Findings, top_k: usize, path: &Path) -> Result<()> {
    register_embedded_font();
    let values: Vec<f64> = distribution.log2_ratios.iter().map(|(_, r)| *r).collect();
    let lo = values.iter().copied().fold(0.0, f64::min).floor();
    let hi = values.iter().copied().fold(1.0, f64::max).ceil() + 1.0;
    let n_bins = (hi - lo) as usize;
    // Bins of width 1 centred on whole log2 values (the usual power-of-two ratio grids).
    let mut counts = vec![0usize; n_bins + 1];
    for v in &values {
        counts[((v - lo).round() as usize).min(n_bins)] += 1;
    }
    let max_count = counts.iter().copied().max().unwrap_or(1).max(1);
    let pairs = {
        let mut p: Vec<&String> = distribution.log2_ratios.iter().map(|(p, _)| p).collect();
        p.dedup();
        p.len()
    };
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    let err = plot_error(path);
    root.fill(&WHITE).map_err(&err)?;
    let title = format!("log2(eta_B / eta_A) of the top-{top_k} cells of {pairs} pairs");
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo - 0.5)..(hi + 0.5), 0.0..(max_count as f64 * 1.15))
        .map_err(&err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("log2(eta_B / eta_A)")
        .y_desc("cells")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
            let x = lo + i as f64;
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, *c as f64)], RGBColor(31, 119, 180).filled())
        }))
        .map_err(&err)?;
    if let Some(estimate) = distribution.median {
        let (median, top) = (estimate.value, max_count as f64 * 1.1);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(estimate.low, 0.0), (estimate.high, top)],
                RED.mix(0.12).filled(),
            )))
            .map_err(&err)?
            .label(format!(
                "{:.0}% bootstrap interval [{:.2}, {:.2}]",
                estimate.level * 100.0,
                estimate.low,
                estimate.high
            ))
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], RED.mix(0.12).filled()));
        chart
            .draw_series(LineSeries::new(vec![(median, 0.0), (median, top)], RED.stroke_width(3)))
            .map_err(&err)?
            .label(format!("median {median:.2} (ratio {:.1})", median.exp2()))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 15).map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

/// `log2(best ratio)` against `log2(width)` with the fitted slope, its interval, and the slope-1
/// line that `Theta(n)` predicts (both through the points' centre).
pub fn width_scaling(scaling: &WidthScaling, path: &Path) -> Result<()> {
    register_embedded_font();
    let points: Vec<(f64, f64)> = scaling
        .points
        .iter()
        .map(|p| ((p.width as f64).log2(), p.ratio.log2()))
        .collect();
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (x_lo, x_hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
    let through_centre = |slope: f64| vec![(x_lo, my + slope * (x_lo - mx)), (x_hi, my + slope * (x_hi - mx))];
    let mut ys: Vec<f64> = points.iter().map(|(_, y)| *y).collect();
    ys.extend(through_centre(1.0).iter().map(|(_, y)| *y));
    let (y_lo, y_hi) = ys.iter().fold((0.0f64, 1.0f64), |(lo, hi), y| (lo.min(*y), hi.max(*y)));

    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    let err = plot_error(path);
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("best eta_B / eta_A against width, task {}", scaling.task),
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((x_lo - 0.5)..(x_hi + 0.5), (y_lo - 1.0)..(y_hi + 1.0))
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("log2(width)")
        .y_desc("log2(best eta_B / eta_A)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(LineSeries::new(through_centre(1.0), BLACK.mix(0.5).stroke_width(2)))
        .map_err(&err)?
        .label("Theta(n): slope 1")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(2)));
    if let Some(slope) = scaling.slope {
        chart
            .draw_series(LineSeries::new(through_centre(slope.value), RED.stroke_width(3)))
            .map_err(&err)?
            .label(format!(
                "fitted slope {:.2}, {:.0}% bootstrap interval [{:.2}, {:.2}]",
                slope.value,
                slope.level * 100.0,
                slope.low,
                slope.high
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
    }
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new(*p, 6, RGBColor(31, 119, 180).filled())),
        )
        .map_err(&err)?
        .label("best cell per width")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RGBColor(31, 119, 180).filled()));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 15).map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_and_gaps() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        let gaps = half_gaps(&[1e-4, 1e-3, 1e-1]);
        assert!((gaps[0].0 - 0.5).abs() < 1e-12 && (gaps[1].1 - 1.0).abs() < 1e-12 && (gaps[2].1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_partial_pairs_plots_say_how_many_of_its_trials_are_in() {
        let records = [crate::test_support::record(1e-3, 4.0, 0, 0.8, 0.3)];
        let pair = &crate::analysis::pairs(&records)[0];
        assert_eq!(pair_title(pair, None), "mlp/down");
        assert_eq!(pair_title(pair, Some((53, 96))), "mlp/down (partial: 53 of 96 trials)");
    }
}
