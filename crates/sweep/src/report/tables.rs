//! The CSV tables of a report, each rebuilt whole from the records and written atomically.

use std::path::Path;

use anyhow::{Context, Result};

use crate::analysis::scaling::WidthScaling;
use crate::analysis::stats::Estimate;
use crate::analysis::{DEFAULT_RATIO, Edge, Findings, Pair, Ranked, speedup};
use crate::config::ReportSettings;
use crate::store::{TrialRecord, write_atomic};

pub fn write_results_csv(records: &[TrialRecord], path: &Path) -> Result<()> {
    let keys: Vec<&str> = records[0].spec.numeric_keys().into_iter().map(|(k, _)| k).collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "trial_id",
        "model",
        "task",
        "method",
        "seed",
        "eta_a",
        "ratio",
        "eta_b",
        "status",
        "val_accuracy",
        "test_accuracy",
        "best_val_accuracy",
        "best_test_accuracy",
        "final_train_loss",
        "majority_test_accuracy",
        "steps_run",
        "steps_planned",
        "trainable_params",
        "wall_seconds",
        "backend",
        "code_version",
    ]
    .map(String::from)
    .to_vec();
    header.extend(keys.iter().map(|k| k.to_string()));
    header.push("message".into());
    out.write_record(&header)?;
    for r in records {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut row = vec![
            r.trial_id.clone(),
            r.spec.model.name.clone(),
            r.spec.task.name.clone(),
            r.spec.method.as_str().to_string(),
            r.spec.seed.to_string(),
            r.spec.eta_a.to_string(),
            r.spec.ratio.to_string(),
            r.spec.eta_b().to_string(),
            r.outcome().as_str().to_string(),
            opt(r.accuracy.final_val),
            opt(r.accuracy.final_test),
            opt(r.accuracy.best_val),
            opt(r.accuracy.best_test),
            opt(r.accuracy.final_train_loss),
            opt(r.majority_test_accuracy),
            r.steps_run.to_string(),
            r.steps_planned.to_string(),
            r.trainable_params.to_string(),
            format!("{:.3}", r.wall_seconds),
            r.provenance.backend.clone(),
            r.provenance.code_version.clone(),
        ];
        let values = r.spec.numeric_keys();
        row.extend(keys.iter().map(|k| {
            values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        }));
        row.push(r.message.clone().unwrap_or_default());
        out.write_record(&row)?;
    }
    write_atomic(path, &out.into_inner()?)
}

pub fn write_curves_csv(records: &[TrialRecord], path: &Path) -> Result<()> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["trial_id", "step", "train_loss", "val_accuracy", "test_accuracy"])?;
    for r in records {
        for p in &r.curve {
            let loss = p.train_loss.map(|l| l.to_string()).unwrap_or_default();
            out.write_record([
                &r.trial_id,
                &p.step.to_string(),
                &loss,
                &p.val_accuracy.to_string(),
                &p.test_accuracy.to_string(),
            ])?;
        }
    }
    write_atomic(path, &out.into_inner()?)
}

pub fn write_best_ratios_csv(
    pairs: &[Pair],
    settings: &ReportSettings,
    findings: &Findings,
    path: &Path,
) -> Result<()> {
    let metric = settings.ranking_metric().as_str().to_string();
    let protocol = settings.protocol.as_str().to_string();
    let median = findings.median;
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "model",
        "task",
        "axes",
        "protocol",
        "rank",
        "eta_a",
        "ratio",
        "eta_b",
        "log2_ratio",
        "metric",
        "metric_mean",
        "metric_std",
        "metric_min",
        "metric_max",
        "n_seeds",
        "grid_edges",
        "median_log2_ratio_all_pairs",
        "median_ci_low",
        "median_ci_high",
    ])?;
    for pair in pairs {
        for (rank, ranked) in pair.ranked(settings).iter().take(settings.top_k).enumerate() {
            let spread = ranked
                .cell
                .metric(settings.ranking_metric())
                .expect("ranked cells are ok");
            let edges: Vec<String> = pair.edges(ranked.cell).iter().map(Edge::to_string).collect();
            out.write_record([
                pair.model().to_string(),
                pair.task().to_string(),
                pair.label().to_string(),
                protocol.clone(),
                (rank + 1).to_string(),
                ranked.cell.eta_a.to_string(),
                ranked.cell.ratio.to_string(),
                (ranked.cell.eta_a * ranked.cell.ratio).to_string(),
                ranked.cell.ratio.log2().to_string(),
                metric.clone(),
                ranked.mean.to_string(),
                spread.std.to_string(),
                spread.min.to_string(),
                spread.max.to_string(),
                ranked.cell.trials.len().to_string(),
                edges.join(";"),
                median.map(|m| m.value.to_string()).unwrap_or_default(),
                median.map(|m| m.low.to_string()).unwrap_or_default(),
                median.map(|m| m.high.to_string()).unwrap_or_default(),
            ])?;
        }
    }
    write_atomic(path, &out.into_inner()?).context("best_ratios.csv")
}

/// The columns of `gains.csv`.
const GAINS_COLUMNS: [&str; 21] = [
    "model",
    "task",
    "axes",
    "lora_eta_a",
    "lora_mean",
    "lora_std",
    "loraplus_eta_a",
    "loraplus_ratio",
    "loraplus_mean",
    "loraplus_std",
    "gain",
    "gain_ci_low",
    "gain_ci_high",
    "seed_differences",
    "sign_flip_p",
    "loraplus_speedup",
    "default_ratio_eta_a",
    "default_ratio_mean",
    "default_ratio_std",
    "default_ratio_gain",
    "default_ratio_speedup",
];

/// `gains.csv`: per pair, best plain LoRA vs best LoRA+ (cells chosen on the protocol's
/// ranking), the per-seed differences and their paired test; then all pairs together.
pub fn write_gains_csv(pairs: &[Pair], settings: &ReportSettings, findings: &Findings, path: &Path) -> Result<()> {
    let metric = settings.ranking_metric();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(GAINS_COLUMNS)?;
    let std = |r: &Ranked| r.cell.metric(metric).map(|m| m.std.to_string()).unwrap_or_default();
    // Plain LoRA's final accuracy (on its mean curve) over the steps `other` takes to reach it.
    let speedup_over = |lora: &Ranked, other: &Ranked| {
        speedup(&lora.cell.mean_curve(metric), &other.cell.mean_curve(metric))
            .map(|(s, ..)| s.to_string())
            .unwrap_or_default()
    };
    for pair in pairs {
        let (Some(lora), Some(plus)) = pair.best_lora_and_loraplus(settings) else {
            continue;
        };
        let (differences, p) = findings
            .paired
            .iter()
            .find(|(slug, ..)| *slug == pair.slug())
            .map(|(_, d, p)| (d.clone(), *p))
            .unwrap_or_default();
        let default = pair.best_at_ratio(settings, DEFAULT_RATIO);
        let default_field = |f: &dyn Fn(&Ranked) -> String| default.as_ref().map(f).unwrap_or_default();
        out.write_record([
            pair.model().to_string(),
            pair.task().to_string(),
            pair.label().to_string(),
            lora.cell.eta_a.to_string(),
            lora.mean.to_string(),
            std(&lora),
            plus.cell.eta_a.to_string(),
            plus.cell.ratio.to_string(),
            plus.mean.to_string(),
            std(&plus),
            (plus.mean - lora.mean).to_string(),
            String::new(),
            String::new(),
            differences
                .iter()
                .map(|d| format!("{d:.6}"))
                .collect::<Vec<_>>()
                .join(";"),
            p.map(|p| p.to_string()).unwrap_or_default(),
            speedup_over(&lora, &plus),
            default_field(&|d| d.cell.eta_a.to_string()),
            default_field(&|d| d.mean.to_string()),
            default_field(&|d| std(d)),
            default_field(&|d| (d.mean - lora.mean).to_string()),
            default_field(&|d| speedup_over(&lora, d)),
        ])?;
    }
    if let Some(gain) = findings.gain {
        let (p, _) = findings.gain_test.unzip();
        let mut row = vec![String::new(); GAINS_COLUMNS.len()];
        let mut set = |column: &str, value: String| {
            row[GAINS_COLUMNS.iter().position(|c| *c == column).expect("a column")] = value;
        };
        set("model", "all pairs".into());
        set("gain", gain.value.to_string());
        set("gain_ci_low", gain.low.to_string());
        set("gain_ci_high", gain.high.to_string());
        set("sign_flip_p", p.map(|p| p.to_string()).unwrap_or_default());
        out.write_record(row)?;
    }
    write_atomic(path, &out.into_inner()?).context("gains.csv")
}

/// `width_scaling.csv`: one row per (task, width), the task's slope and interval on each.
pub fn write_width_scaling_csv(scalings: &[WidthScaling], path: &Path) -> Result<()> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "task",
        "width",
        "best_eta_a",
        "best_ratio",
        "log2_best_ratio",
        "metric_mean",
        "slope",
        "slope_ci_low",
        "slope_ci_high",
    ])?;
    for scaling in scalings {
        let slope = |f: fn(&Estimate) -> f64| scaling.slope.as_ref().map(f).map(|v| v.to_string()).unwrap_or_default();
        for point in &scaling.points {
            out.write_record([
                scaling.task.clone(),
                point.width.to_string(),
                point.eta_a.to_string(),
                point.ratio.to_string(),
                point.ratio.log2().to_string(),
                point.mean.to_string(),
                slope(|e| e.value),
                slope(|e| e.low),
                slope(|e| e.high),
            ])?;
        }
    }
    write_atomic(path, &out.into_inner()?).context("width_scaling.csv")
}
