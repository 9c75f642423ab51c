//! Reports, rebuilt from trial records alone: CSV tables, the printed summary, and (through
//! [`plots`](crate::plots)) the PNG figures.
//!
//! Trials are grouped into *pairs*: one (model, task) and one value of every other grid axis
//! (rank, batch size, ...). Within a pair, a *cell* is one (eta_A, lambda) point; its accuracy is
//! the mean over seeds. A cell with a diverged or failed seed is shown as such and never ranked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::Metric;
use crate::grid::Method;
use crate::plots;
use crate::store::{Store, TrialRecord, make_atomic, write_atomic};
use crate::train::{CurvePoint, Status};

/// Report settings, stored beside the records (`sweep.json`) so `loraplus report DIR` needs no
/// config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReportSettings {
    /// The sweep's name.
    pub name: String,
    /// The metric that ranks cells.
    pub metric: Metric,
    /// Cells per pair in the ratio distribution.
    pub top_k: usize,
}

/// One (model, task, other-axes) pair.
pub struct Pair<'a> {
    /// Model name.
    pub model: String,
    /// Task name.
    pub task: String,
    /// The other axes' values, e.g. `rank=4`; empty when nothing else varies.
    pub label: String,
    /// Adapter cells, by (eta_A, ratio), in grid order.
    pub cells: Vec<Cell<'a>>,
    /// Head-only baseline cells, by eta_A.
    pub baseline: Vec<Cell<'a>>,
}

/// One grid point of a pair and its seeds.
pub struct Cell<'a> {
    /// Rate of group A.
    pub eta_a: f64,
    /// `eta_B / eta_A`.
    pub ratio: f64,
    /// One record per seed.
    pub trials: Vec<&'a TrialRecord>,
}

/// A ranked cell of a pair.
pub struct Ranked<'a> {
    /// The cell.
    pub cell: &'a Cell<'a>,
    /// Its seed-mean metric.
    pub mean: f64,
}

impl Cell<'_> {
    /// Whether every seed trained to the end.
    pub fn is_ok(&self) -> bool {
        self.trials.iter().all(|t| t.status == Status::Ok)
    }

    /// The status shown for the cell: ok, or the worst of its seeds.
    pub fn status(&self) -> Status {
        if self.trials.iter().any(|t| t.status == Status::Failed) {
            Status::Failed
        } else if self.trials.iter().any(|t| t.status == Status::Diverged) {
            Status::Diverged
        } else {
            Status::Ok
        }
    }

    /// Seed mean and (population) standard deviation of the final metric, if every seed is ok.
    pub fn metric(&self, metric: Metric) -> Option<(f64, f64)> {
        if !self.is_ok() || self.trials.is_empty() {
            return None;
        }
        let values: Vec<f64> = self
            .trials
            .iter()
            .filter_map(|t| metric_of(t.last()?, metric))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        Some((mean, var.sqrt()))
    }

    /// The seed-mean curve of `metric` over evaluation steps common to every seed.
    pub fn mean_curve(&self, metric: Metric) -> Vec<(usize, f64)> {
        let Some(first) = self.trials.first() else {
            return Vec::new();
        };
        first
            .curve
            .iter()
            .filter_map(|point| {
                let at_step: Vec<f64> = self
                    .trials
                    .iter()
                    .filter_map(|t| {
                        t.curve
                            .iter()
                            .find(|p| p.step == point.step)
                            .and_then(|p| metric_of(p, metric))
                    })
                    .collect();
                (at_step.len() == self.trials.len())
                    .then(|| (point.step, at_step.iter().sum::<f64>() / at_step.len() as f64))
            })
            .collect()
    }
}

/// The metric's value at an evaluation point.
pub fn metric_of(point: &CurvePoint, metric: Metric) -> Option<f64> {
    Some(match metric {
        Metric::TestAccuracy => point.test_accuracy,
        Metric::ValAccuracy => point.val_accuracy,
    })
}

impl<'a> Pair<'a> {
    /// The pair's name in file names and tables: `model_task` (plus the axes label).
    pub fn slug(&self) -> String {
        let mut slug = format!("{}_{}", self.model, self.task);
        if !self.label.is_empty() {
            slug.push('_');
            slug.push_str(&self.label);
        }
        slug.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }

    /// The pair's cells ranked by seed-mean metric, best first; cells not fully ok are left out.
    pub fn ranked(&'a self, metric: Metric) -> Vec<Ranked<'a>> {
        let mut ranked: Vec<Ranked> = self
            .cells
            .iter()
            .filter_map(|cell| cell.metric(metric).map(|(mean, _)| Ranked { cell, mean }))
            .collect();
        ranked.sort_by(|a, b| b.mean.total_cmp(&a.mean).then(a.cell.ratio.total_cmp(&b.cell.ratio)));
        ranked
    }

    /// The best plain-LoRA (ratio 1) cell and the best LoRA+ (ratio > 1) cell.
    pub fn best_lora_and_loraplus(&'a self, metric: Metric) -> (Option<Ranked<'a>>, Option<Ranked<'a>>) {
        let mut lora = None;
        let mut plus = None;
        for ranked in self.ranked(metric) {
            if ranked.cell.ratio == 1.0 {
                lora = lora.or(Some(ranked));
            } else {
                plus = plus.or(Some(ranked));
            }
        }
        (lora, plus)
    }

    /// The best head-only baseline mean.
    pub fn best_baseline(&self, metric: Metric) -> Option<f64> {
        self.baseline
            .iter()
            .filter_map(|c| c.metric(metric).map(|(m, _)| m))
            .max_by(f64::total_cmp)
    }
}

/// Steps plain LoRA took to its final accuracy, divided by the steps LoRA+ takes to reach it
/// (the LoRA+ paper's speed-up: the same accuracy in fewer steps). `None` if LoRA+ never gets
/// there.
pub fn speedup(lora: &[(usize, f64)], plus: &[(usize, f64)]) -> Option<(f64, usize, usize)> {
    let &(lora_steps, target) = lora.last()?;
    let plus_steps = plus.iter().find(|(_, acc)| *acc >= target)?.0;
    Some((lora_steps as f64 / plus_steps.max(1) as f64, lora_steps, plus_steps))
}

/// Groups records into pairs. Records of method `lora` are split by every numeric setting that
/// varies within their (model, task); baselines attach to the pairs whose training settings
/// they share.
pub fn pairs(records: &[TrialRecord]) -> Vec<Pair<'_>> {
    let mut by_model_task: BTreeMap<(String, String), Vec<&TrialRecord>> = BTreeMap::new();
    for record in records {
        let key = (record.spec.model.name.clone(), record.spec.task.name.clone());
        by_model_task.entry(key).or_default().push(record);
    }
    let mut pairs = Vec::new();
    for ((model, task), records) in by_model_task {
        let (lora, baseline): (Vec<&TrialRecord>, Vec<&TrialRecord>) =
            records.into_iter().partition(|r| r.spec.method == Method::Lora);
        let axes = varying_keys(&lora);
        let mut groups: BTreeMap<String, Vec<&TrialRecord>> = BTreeMap::new();
        for record in &lora {
            groups.entry(label(record, &axes)).or_default().push(record);
        }
        for (label, members) in groups {
            let train_axes: Vec<String> = axes.iter().filter(|k| is_train_key(members[0], k)).cloned().collect();
            let train_label = self::label(members[0], &train_axes);
            let base: Vec<&TrialRecord> = baseline
                .iter()
                .copied()
                .filter(|r| self::label(r, &train_axes) == train_label)
                .collect();
            pairs.push(Pair {
                model: model.clone(),
                task: task.clone(),
                label,
                cells: cells(&members),
                baseline: cells(&base),
            });
        }
    }
    pairs
}

fn cells<'a>(records: &[&'a TrialRecord]) -> Vec<Cell<'a>> {
    let mut cells: Vec<Cell> = Vec::new();
    for record in records {
        let (eta_a, ratio) = (record.spec.eta_a, record.spec.ratio);
        match cells.iter_mut().find(|c| c.eta_a == eta_a && c.ratio == ratio) {
            Some(cell) => cell.trials.push(record),
            None => cells.push(Cell {
                eta_a,
                ratio,
                trials: vec![record],
            }),
        }
    }
    cells.sort_by(|a, b| a.eta_a.total_cmp(&b.eta_a).then(a.ratio.total_cmp(&b.ratio)));
    for cell in &mut cells {
        cell.trials.sort_by_key(|t| t.spec.seed);
    }
    cells
}

/// Numeric settings (other than eta_A, ratio and seed, which are not settings) that take more
/// than one value among `records`.
fn varying_keys(records: &[&TrialRecord]) -> Vec<String> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for record in records {
        for (key, value) in record.spec.numeric_keys() {
            let seen = values.entry(key).or_default();
            if !seen.contains(&value) {
                seen.push(value);
            }
        }
    }
    values
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect()
}

fn is_train_key(record: &TrialRecord, key: &str) -> bool {
    serde_json::to_value(&record.spec.train).is_ok_and(|v| v.get(key).is_some())
}

fn label(record: &TrialRecord, axes: &[String]) -> String {
    let keys = record.spec.numeric_keys();
    axes.iter()
        .filter_map(|axis| keys.iter().find(|(k, _)| k == axis).map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes every CSV and PNG for the records in `store`, and returns the printed summary.
pub fn write_reports(store: &Store, settings: &ReportSettings) -> Result<String> {
    let records = store.records()?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no finished trial records",
        store.dir().display()
    );
    let dir = store.dir();
    write_results_csv(&records, &dir.join("results.csv"))?;
    write_curves_csv(&records, &dir.join("curves.csv"))?;
    let pairs = pairs(&records);
    let distribution = write_best_ratios_csv(&pairs, settings, &dir.join("best_ratios.csv"))?;
    make_atomic(&dir.join("ratio_distribution.png"), |tmp| {
        plots::ratio_distribution(&distribution, settings.top_k, tmp)
    })?;
    for pair in &pairs {
        let (metric, slug) = (settings.metric, pair.slug());
        make_atomic(&dir.join(format!("heatmap_{slug}.png")), |tmp| {
            plots::heatmap(pair, metric, tmp)
        })?;
        make_atomic(&dir.join(format!("curves_{slug}.png")), |tmp| {
            plots::curves(pair, metric, tmp)
        })?;
    }
    Ok(summary(&pairs, &distribution, settings, records.len()))
}

/// The log2 ratios of every pair's top-k cells (the paper's distribution).
pub struct Distribution {
    /// One entry per top-k cell: (pair slug, log2 ratio).
    pub log2_ratios: Vec<(String, f64)>,
}

impl Distribution {
    /// The median log2 ratio over all top-k cells of all pairs.
    pub fn median(&self) -> Option<f64> {
        median(self.log2_ratios.iter().map(|(_, r)| *r).collect())
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn write_results_csv(records: &[TrialRecord], path: &Path) -> Result<()> {
    let keys: Vec<String> = records[0].spec.numeric_keys().into_iter().map(|(k, _)| k).collect();
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
    header.extend(keys.iter().cloned());
    header.push("message".into());
    out.write_record(&header)?;
    for r in records {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let method = serde_json::to_value(r.spec.method)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status = serde_json::to_value(r.status)?.as_str().unwrap_or_default().to_string();
        let mut row = vec![
            r.trial_id.clone(),
            r.spec.model.name.clone(),
            r.spec.task.name.clone(),
            method,
            r.spec.seed.to_string(),
            r.spec.eta_a.to_string(),
            r.spec.ratio.to_string(),
            r.spec.eta_b().to_string(),
            status,
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

fn write_curves_csv(records: &[TrialRecord], path: &Path) -> Result<()> {
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

fn write_best_ratios_csv(pairs: &[Pair], settings: &ReportSettings, path: &Path) -> Result<Distribution> {
    let mut distribution = Distribution {
        log2_ratios: Vec::new(),
    };
    let mut rows = Vec::new();
    for pair in pairs {
        for (rank, ranked) in pair.ranked(settings.metric).iter().take(settings.top_k).enumerate() {
            let (mean, std) = ranked.cell.metric(settings.metric).expect("ranked cells have a metric");
            let log2 = ranked.cell.ratio.log2();
            distribution.log2_ratios.push((pair.slug(), log2));
            rows.push((pair, rank + 1, ranked.cell, mean, std, log2));
        }
    }
    let overall = distribution.median();
    let metric = serde_json::to_value(settings.metric)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "model",
        "task",
        "axes",
        "rank",
        "eta_a",
        "ratio",
        "eta_b",
        "log2_ratio",
        "metric",
        "metric_mean",
        "metric_std",
        "n_seeds",
        "median_log2_ratio_all_pairs",
    ])?;
    for (pair, rank, cell, mean, std, log2) in rows {
        out.write_record([
            pair.model.clone(),
            pair.task.clone(),
            pair.label.clone(),
            rank.to_string(),
            cell.eta_a.to_string(),
            cell.ratio.to_string(),
            (cell.eta_a * cell.ratio).to_string(),
            log2.to_string(),
            metric.clone(),
            mean.to_string(),
            std.to_string(),
            cell.trials.len().to_string(),
            overall.map(|m| m.to_string()).unwrap_or_default(),
        ])?;
    }
    write_atomic(path, &out.into_inner()?).context("best_ratios.csv")?;
    Ok(distribution)
}

fn summary(pairs: &[Pair], distribution: &Distribution, settings: &ReportSettings, n_records: usize) -> String {
    let metric = match settings.metric {
        Metric::TestAccuracy => "test accuracy",
        Metric::ValAccuracy => "val accuracy",
    };
    let mut out = format!(
        "{}: {n_records} trial records, {} pairs, ranked by {metric} (seed means)\n",
        settings.name,
        pairs.len()
    );
    for pair in pairs {
        let name = if pair.label.is_empty() {
            format!("{}/{}", pair.model, pair.task)
        } else {
            format!("{}/{} [{}]", pair.model, pair.task, pair.label)
        };
        let _ = writeln!(out, "\n{name}");
        let not_ok = pair.cells.iter().filter(|c| !c.is_ok()).count();
        let ranked = pair.ranked(settings.metric);
        if let Some(best) = ranked.first() {
            let _ = writeln!(
                out,
                "  best cell       eta_A {:.2e}  ratio {:<6}  {metric} {:.4}",
                best.cell.eta_a, best.cell.ratio, best.mean
            );
        }
        let (lora, plus) = pair.best_lora_and_loraplus(settings.metric);
        if let (Some(lora), Some(plus)) = (&lora, &plus) {
            let _ = writeln!(
                out,
                "  LoRA (ratio 1)  eta_A {:.2e}  {metric} {:.4}",
                lora.cell.eta_a, lora.mean
            );
            let _ = writeln!(
                out,
                "  LoRA+           eta_A {:.2e}  ratio {:<6}  {metric} {:.4}  gain {:+.4}",
                plus.cell.eta_a,
                plus.cell.ratio,
                plus.mean,
                plus.mean - lora.mean
            );
            match speedup(
                &lora.cell.mean_curve(settings.metric),
                &plus.cell.mean_curve(settings.metric),
            ) {
                Some((s, lora_steps, plus_steps)) => {
                    let _ = writeln!(
                        out,
                        "  speed-up        {s:.2}x (LoRA+ reaches LoRA's final accuracy at step {plus_steps} of {lora_steps})"
                    );
                }
                None => {
                    let _ = writeln!(out, "  speed-up        LoRA+ never reaches LoRA's final accuracy");
                }
            }
        }
        if let Some(baseline) = pair.best_baseline(settings.metric) {
            let _ = writeln!(
                out,
                "  head only       {metric} {baseline:.4} (frozen base, best eta_A)"
            );
        }
        if let Some(majority) = pair
            .cells
            .first()
            .and_then(|c| c.trials.first())
            .and_then(|t| t.majority_test_accuracy)
        {
            let _ = writeln!(out, "  majority class  test accuracy {majority:.4}");
        }
        if not_ok > 0 {
            let _ = writeln!(out, "  {not_ok} of {} cells diverged or failed", pair.cells.len());
        }
    }
    match distribution.median() {
        Some(median) => {
            let _ = writeln!(
                out,
                "\nmedian log2(eta_B / eta_A) over the top-{} cells of every pair: {median:.2} (ratio {:.1}); the LoRA+ paper reports about 4",
                settings.top_k,
                median.exp2()
            );
        }
        None => out.push_str("\nno cell finished on every seed: no ratio distribution\n"),
    }
    out
}
