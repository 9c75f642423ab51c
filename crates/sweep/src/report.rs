//! Reports, rebuilt from trial records alone: CSV tables, the printed summary, and (through
//! [`plots`](crate::plots)) the PNG figures.
//!
//! Trials are grouped into *pairs*: one (model, task) and one value of every other grid axis
//! (rank, batch size, ...). Within a pair, a *cell* is one (eta_A, lambda) point; its accuracy is
//! the mean over seeds. A cell with a diverged, failed or non-learning seed is shown as such and
//! never ranked; a best cell on the edge of its pair's grid is flagged wherever it is reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::adaptive::{self, Edge, Grid, StageKind};
use crate::config::{Metric, Protocol, SweepConfig};
use crate::grid::Method;
use crate::plots;
use crate::scaling;
use crate::stats::{self, Bootstrap, Estimate, Table};
use crate::store::{Outcome, Store, TrialRecord, make_atomic, write_atomic};
use crate::train::CurvePoint;

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
    /// How best cells are chosen.
    #[serde(default)]
    pub protocol: Protocol,
}

impl ReportSettings {
    /// The metric that ranks cells: the paper's protocol always ranks by test accuracy.
    pub fn ranking_metric(&self) -> Metric {
        match self.protocol {
            Protocol::SeedMean => self.metric,
            Protocol::Paper => Metric::TestAccuracy,
        }
    }
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

/// A cell's metric over its seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedSpread {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Lowest seed.
    pub min: f64,
    /// Highest seed.
    pub max: f64,
}

/// A ranked cell of a pair.
pub struct Ranked<'a> {
    /// The cell.
    pub cell: &'a Cell<'a>,
    /// Its seed-mean metric.
    pub mean: f64,
}

impl Cell<'_> {
    /// The cell's outcome: the worst of its seeds'.
    pub fn outcome(&self) -> Outcome {
        self.trials.iter().map(|t| t.outcome()).max().unwrap_or(Outcome::Failed)
    }

    /// Whether every seed trained to the end and learned.
    pub fn is_ok(&self) -> bool {
        self.outcome() == Outcome::Ok
    }

    /// Seed mean, (population) standard deviation, minimum and maximum of the final metric, if
    /// every seed is ok.
    pub fn metric(&self, metric: Metric) -> Option<SeedSpread> {
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
        Some(SeedSpread {
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
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

    /// The pair's seeds, sorted.
    pub fn seeds(&self) -> Vec<u64> {
        let mut seeds: Vec<u64> = self
            .cells
            .iter()
            .flat_map(|c| c.trials.iter().map(|t| t.spec.seed))
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds
    }

    /// The final `metric` of every (cell, seed), `None` where that trial is not ok.
    pub fn table(&self, metric: Metric) -> Table {
        let seeds = self.seeds();
        Table {
            cells: self.cells.iter().map(|c| (c.eta_a, c.ratio)).collect(),
            values: self
                .cells
                .iter()
                .map(|cell| {
                    seeds
                        .iter()
                        .map(|&seed| {
                            let trial = cell.trials.iter().find(|t| t.spec.seed == seed)?;
                            (trial.outcome() == Outcome::Ok).then(|| metric_of(trial.last()?, metric))?
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// The seed indices `settings`' protocol ranks on: every seed, or the first alone.
    fn ranking_seeds(&self, settings: &ReportSettings) -> Vec<usize> {
        match settings.protocol {
            Protocol::SeedMean => (0..self.seeds().len()).collect(),
            Protocol::Paper => vec![0],
        }
    }

    /// The cells left out of the ranking only because a seed it ranks on has no record yet (a
    /// running or interrupted sweep), as opposed to a seed that failed or did not learn.
    pub fn cells_awaiting_seeds(&self, settings: &ReportSettings) -> usize {
        let seeds = self.seeds();
        let ranked_seeds: Vec<u64> = self.ranking_seeds(settings).iter().map(|&s| seeds[s]).collect();
        self.cells
            .iter()
            .filter(|cell| {
                cell.is_ok()
                    && ranked_seeds
                        .iter()
                        .any(|seed| cell.trials.iter().all(|t| t.spec.seed != *seed))
            })
            .count()
    }

    /// The pair's cells ranked as `settings` says, best first; cells with a seed that did not
    /// train to the end or did not learn, or has no record yet, are left out.
    pub fn ranked(&'a self, settings: &ReportSettings) -> Vec<Ranked<'a>> {
        let table = self.table(settings.ranking_metric());
        table
            .ranked(&self.ranking_seeds(settings), |_| true)
            .into_iter()
            .map(|(cell, mean)| Ranked {
                cell: &self.cells[cell],
                mean,
            })
            .collect()
    }

    /// The best plain-LoRA (ratio 1) cell and the best LoRA+ (ratio > 1) cell.
    pub fn best_lora_and_loraplus(&'a self, settings: &ReportSettings) -> (Option<Ranked<'a>>, Option<Ranked<'a>>) {
        let mut lora = None;
        let mut plus = None;
        for ranked in self.ranked(settings) {
            if ranked.cell.ratio == 1.0 {
                lora = lora.or(Some(ranked));
            } else {
                plus = plus.or(Some(ranked));
            }
        }
        (lora, plus)
    }

    /// The best cell at exactly `ratio` (eta_A tuned alone).
    pub fn best_at_ratio(&'a self, settings: &ReportSettings, ratio: f64) -> Option<Ranked<'a>> {
        self.ranked(settings).into_iter().find(|r| r.cell.ratio == ratio)
    }

    /// The pair's grid lines.
    pub fn grid(&self) -> Grid {
        Grid::of(self.cells.iter().map(|c| (c.eta_a, c.ratio)))
    }

    /// The grid edges `cell` lies on.
    pub fn edges(&self, cell: &Cell) -> Vec<Edge> {
        self.grid().edges((cell.eta_a, cell.ratio))
    }

    /// The best head-only baseline mean.
    pub fn best_baseline(&self, metric: Metric) -> Option<f64> {
        self.baseline
            .iter()
            .filter_map(|c| c.metric(metric).map(|m| m.mean))
            .max_by(f64::total_cmp)
    }
}

/// The ratio the LoRA+ paper recommends when it cannot be tuned (`2^4`); reports compare LoRA+
/// at this ratio, with eta_A tuned, against plain LoRA.
pub const DEFAULT_RATIO: f64 = 16.0;

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
    let findings = Findings::of(&pairs, settings);
    write_best_ratios_csv(&pairs, settings, &findings, &dir.join("best_ratios.csv"))?;
    write_gains_csv(&pairs, settings, &findings, &dir.join("gains.csv"))?;
    make_atomic(&dir.join("ratio_distribution.png"), |tmp| {
        plots::ratio_distribution(&findings, settings.top_k, tmp)
    })?;
    let planned = planned(store);
    let recorded = planned
        .as_ref()
        .map(|(_, stages)| recorded_by_pair(store, stages))
        .unwrap_or_default();
    for pair in &pairs {
        let slug = pair.slug();
        let progress = recorded
            .get(&format!("{}/{}", pair.model, pair.task))
            .copied()
            .filter(|(recorded, planned)| recorded < planned);
        make_atomic(&dir.join(format!("heatmap_{slug}.png")), |tmp| {
            plots::heatmap(pair, settings, progress, tmp)
        })?;
        make_atomic(&dir.join(format!("curves_{slug}.png")), |tmp| {
            plots::curves(pair, settings, progress, tmp)
        })?;
    }
    let mut summary = summary(&pairs, &findings, settings, records.len());
    summary.insert_str(summary.find('\n').map_or(0, |i| i + 1), &provenance_summary(&records));
    summary.push_str(&by_model_summary(&records, settings));
    let scalings = scaling::width_scaling(&pairs, settings);
    if !scalings.is_empty() {
        scaling::write_csv(&scalings, &dir.join("width_scaling.csv"))?;
        for scaling in &scalings {
            make_atomic(&dir.join(format!("width_scaling_{}.png", scaling.task)), |tmp| {
                plots::width_scaling(scaling, tmp)
            })?;
            let _ = writeln!(
                summary,
                "\nwidth scaling on {} (Theta(n) predicts slope 1)",
                scaling.task
            );
            for p in &scaling.points {
                let _ = writeln!(
                    summary,
                    "  width {:<6} best eta_A {:.2e}  ratio {:<6}  mean {:.4}",
                    p.width, p.eta_a, p.ratio, p.mean
                );
            }
            if let Some(slope) = scaling.slope {
                let _ = writeln!(
                    summary,
                    "  slope of log2(best ratio) on log2(width): {:.2}, {:.0}% interval {}",
                    slope.value,
                    slope.level * 100.0,
                    interval(&slope, 2)
                );
            }
        }
    }
    if let Some((config, stages)) = planned {
        summary.push_str(&adaptive_summary(&config, &stages));
        summary.push_str(&incomplete_summary(&recorded));
    }
    write_atomic(&dir.join("summary.txt"), summary.as_bytes()).context("summary.txt")?;
    Ok(summary)
}

/// The sweep's findings again for each model's pairs alone, when there are several models: a
/// pooled figure over a mixed study (an in-house MLP beside a pretrained transformer) hides
/// whether one family carries it.
fn by_model_summary(records: &[TrialRecord], settings: &ReportSettings) -> String {
    let mut models: Vec<&str> = records.iter().map(|r| r.spec.model.name.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    if models.len() < 2 {
        return String::new();
    }
    let mut out = String::from("\nby model (the same estimates over each model's pairs alone)\n");
    for model in models {
        let own: Vec<TrialRecord> = records.iter().filter(|r| r.spec.model.name == model).cloned().collect();
        let pairs = pairs(&own);
        let findings = Findings::of(&pairs, settings);
        let median = findings
            .median
            .as_ref()
            .map_or("-".into(), |m| format!("{:.2} {}", m.value, interval(m, 2)));
        let gain = findings
            .gain
            .as_ref()
            .map_or("-".into(), |g| format!("{:+.4} {}", g.value, interval(g, 4)));
        let test = findings
            .gain_test
            .map_or(String::new(), |(p, n)| format!(", p = {p:.3} over {n}"));
        let _ = writeln!(
            out,
            "  {model:<14} {} pair(s)  median log2 ratio {median}  LoRA+ - LoRA {gain}{test}",
            pairs.len()
        );
    }
    out
}

/// Where the records came from, counted from the records themselves (a study run over several
/// sessions, some of them killed, has no single run that saw it all): code versions, backends,
/// hosts, CPUs, and the compute the trials took.
fn provenance_summary(records: &[TrialRecord]) -> String {
    let count = |key: fn(&TrialRecord) -> &str| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for record in records {
            let value = Some(key(record)).filter(|v| !v.is_empty()).unwrap_or("unrecorded");
            *counts.entry(value).or_default() += 1;
        }
        counts
            .iter()
            .map(|(value, n)| format!("{value} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let seconds: f64 = records.iter().map(|r| r.wall_seconds).sum();
    // Hours for a study, minutes for a quick sweep whose hours would round to 0.0.
    let compute = if seconds >= 3600.0 {
        format!("{:.1} trial-hours", seconds / 3600.0)
    } else {
        format!("{:.1} trial-minutes", seconds / 60.0)
    };
    format!(
        "records from code {}; backend {}; host {}; cpu {}; {compute} (the trials' own wall times, summed)\n",
        count(|r| &r.provenance.code_version),
        count(|r| &r.provenance.backend),
        count(|r| &r.provenance.host),
        count(|r| &r.provenance.cpu),
    )
}

/// What the directory's config plans, stage by stage, as its records replan it; `None` without a
/// readable `config.toml`.
fn planned(store: &Store) -> Option<(SweepConfig, Vec<adaptive::Stage>)> {
    let (config, _) = SweepConfig::load(&store.dir().join("config.toml")).ok()?;
    let stages = adaptive::stages(&config, |t| store.finished(&t.id()));
    Some((config, stages))
}

/// For an adaptive sweep, how far its grid was extended.
fn adaptive_summary(config: &SweepConfig, stages: &[adaptive::Stage]) -> String {
    if !config.adaptive.as_ref().is_some_and(|a| a.enabled) {
        return String::new();
    }
    let rounds = stages
        .iter()
        .filter(|s| matches!(s.kind, StageKind::Extension(_)))
        .count();
    let added: usize = stages.iter().skip(1).map(|s| s.trials.len()).sum();
    let listed: Vec<String> = stages
        .iter()
        .map(|s| format!("{} {}", s.kind, s.trials.len()))
        .collect();
    format!(
        "adaptive: the grid was extended in {rounds} round(s), {added} trials added (stages: {})\n",
        listed.join(", ")
    )
}

/// Per pair (`model/task`), how many of its planned trials (`stages`) have a finished record:
/// `(recorded, planned)`.
fn recorded_by_pair(store: &Store, stages: &[adaptive::Stage]) -> BTreeMap<String, (usize, usize)> {
    let mut by_pair: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for trial in stages.iter().flat_map(|s| &s.trials) {
        let entry = by_pair
            .entry(format!("{}/{}", trial.model.name, trial.task.name))
            .or_default();
        entry.1 += 1;
        if store.finished(&trial.id()).is_some() {
            entry.0 += 1;
        }
    }
    by_pair
}

/// The pairs whose planned trials are not all recorded yet (a running or interrupted sweep): the
/// report covers only the records present, so their best cells and ratios may still change.
fn incomplete_summary(recorded: &BTreeMap<String, (usize, usize)>) -> String {
    let missing: Vec<String> = recorded
        .iter()
        .filter(|(_, (recorded, planned))| recorded < planned)
        .map(|(pair, (recorded, planned))| {
            format!(
                "  {pair}: {} of {planned} planned trials have no record yet",
                planned - recorded
            )
        })
        .collect();
    if missing.is_empty() {
        return String::new();
    }
    format!(
        "INCOMPLETE: this report covers the records present; these pairs may still change:\n{}\n",
        missing.join("\n")
    )
}

/// What a sweep says as a whole: the best ratios and the LoRA+ gain, with their uncertainty.
pub struct Findings {
    /// One entry per top-k cell of every pair: (pair slug, log2 ratio).
    pub log2_ratios: Vec<(String, f64)>,
    /// The median log2 ratio over those cells, with a bootstrap interval that resamples pairs
    /// and, within them, seeds (the top-k cells are chosen again in every resample).
    pub median: Option<Estimate>,
    /// The mean over pairs of best LoRA+ minus best plain LoRA, with the same kind of interval.
    pub gain: Option<Estimate>,
    /// Per pair (by slug): the per-seed differences between its best LoRA+ and best LoRA cells
    /// (chosen on seed means) and their sign-flip p-value.
    pub paired: Vec<(String, Vec<f64>, Option<f64>)>,
    /// The sign-flip p-value over every pair's differences pooled, and how many there are.
    pub gain_test: Option<(f64, usize)>,
    /// The resampling used.
    pub bootstrap: Bootstrap,
}

impl Findings {
    /// The findings of `pairs` under `settings`' protocol.
    pub fn of(pairs: &[Pair], settings: &ReportSettings) -> Self {
        let bootstrap = Bootstrap::default();
        let tables: Vec<Table> = pairs.iter().map(|p| p.table(settings.ranking_metric())).collect();
        let refs: Vec<&Table> = tables.iter().collect();
        // The paper's protocol ranks on one seed: resamples draw pairs only.
        let protocol_seeds = |seeds: &[Vec<usize>]| -> Vec<Vec<usize>> {
            match settings.protocol {
                Protocol::SeedMean => seeds.to_vec(),
                Protocol::Paper => vec![vec![0]; seeds.len()],
            }
        };
        let top_k = settings.top_k;
        let median = bootstrap.estimate(&refs, |t, s| stats::median_log2_ratio(t, &protocol_seeds(s), top_k));
        let gain = bootstrap.estimate(&refs, |t, s| stats::mean_gain(t, &protocol_seeds(s)));
        let log2_ratios = pairs
            .iter()
            .flat_map(|pair| {
                pair.ranked(settings)
                    .iter()
                    .take(top_k)
                    .map(|r| (pair.slug(), r.cell.ratio.log2()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut paired = Vec::new();
        for (pair, table) in pairs.iter().zip(&tables) {
            let all: Vec<usize> = (0..table.n_seeds()).collect();
            let Some((_, lora, plus)) = table.gain(&all) else {
                continue;
            };
            let differences: Vec<f64> = all
                .iter()
                .filter_map(|&s| Some(table.values[plus][s]? - table.values[lora][s]?))
                .collect();
            let p = stats::sign_flip_test(&differences, 10_000, bootstrap.seed);
            paired.push((pair.slug(), differences, p));
        }
        let pooled: Vec<f64> = paired.iter().flat_map(|(_, d, _)| d.iter().copied()).collect();
        let gain_test = stats::sign_flip_test(&pooled, 10_000, bootstrap.seed).map(|p| (p, pooled.len()));
        Self {
            log2_ratios,
            median,
            gain,
            paired,
            gain_test,
            bootstrap,
        }
    }
}

/// `[low, high]` of an estimate to `digits` decimals, as the summary shows it.
fn interval(estimate: &Estimate, digits: usize) -> String {
    format!("[{:.digits$}, {:.digits$}]", estimate.low, estimate.high)
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
        let status = r.outcome().word().to_string();
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

fn write_best_ratios_csv(pairs: &[Pair], settings: &ReportSettings, findings: &Findings, path: &Path) -> Result<()> {
    let metric = serde_json::to_value(settings.ranking_metric())?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let protocol = serde_json::to_value(settings.protocol)?
        .as_str()
        .unwrap_or_default()
        .to_string();
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
                pair.model.clone(),
                pair.task.clone(),
                pair.label.clone(),
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

/// `gains.csv`: per pair, best plain LoRA vs best LoRA+ (cells chosen on the protocol's
/// ranking), the per-seed differences and their paired test; then all pairs together.
fn write_gains_csv(pairs: &[Pair], settings: &ReportSettings, findings: &Findings, path: &Path) -> Result<()> {
    let metric = settings.ranking_metric();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
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
    ])?;
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
            pair.model.clone(),
            pair.task.clone(),
            pair.label.clone(),
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
        let mut row = vec![String::new(); 21];
        row[0] = "all pairs".to_string();
        row[10] = gain.value.to_string();
        row[11] = gain.low.to_string();
        row[12] = gain.high.to_string();
        row[14] = p.map(|p| p.to_string()).unwrap_or_default();
        out.write_record(row)?;
    }
    write_atomic(path, &out.into_inner()?).context("gains.csv")
}

fn summary(pairs: &[Pair], findings: &Findings, settings: &ReportSettings, n_records: usize) -> String {
    let metric = match settings.ranking_metric() {
        Metric::TestAccuracy => "test accuracy",
        Metric::ValAccuracy => "val accuracy",
    };
    let protocol = match settings.protocol {
        Protocol::SeedMean => "seed means; a cell counts only if every seed trained and learned",
        Protocol::Paper => "the LoRA+ paper's protocol: the first seed alone",
    };
    let mut out = format!(
        "{}: {n_records} trial records, {} pairs, ranked by {metric} ({protocol})\n",
        settings.name,
        pairs.len()
    );
    let mut on_edge = Vec::new();
    for pair in pairs {
        let name = if pair.label.is_empty() {
            format!("{}/{}", pair.model, pair.task)
        } else {
            format!("{}/{} [{}]", pair.model, pair.task, pair.label)
        };
        let _ = writeln!(out, "\n{name}");
        let ranked = pair.ranked(settings);
        if let Some(best) = ranked.first() {
            let _ = writeln!(
                out,
                "  best cell       eta_A {:.2e}  ratio {:<6}  {metric} {:.4}",
                best.cell.eta_a, best.cell.ratio, best.mean
            );
            if let Some(spread) = best.cell.metric(settings.ranking_metric()) {
                let _ = writeln!(
                    out,
                    "  seed spread     {:.4} to {:.4} over {} seed(s) (std {:.4})",
                    spread.min,
                    spread.max,
                    best.cell.trials.len(),
                    spread.std
                );
            }
            let edges = pair.edges(best.cell);
            let top_on_edge = ranked
                .iter()
                .take(settings.top_k)
                .filter(|r| !pair.edges(r.cell).is_empty())
                .count();
            if !edges.is_empty() {
                let edges: Vec<String> = edges.iter().map(Edge::to_string).collect();
                let _ = writeln!(
                    out,
                    "  WARNING         the best cell is on the grid's edge ({}): the optimum may lie outside the grid",
                    edges.join(", ")
                );
                on_edge.push(name.clone());
            } else if top_on_edge > 0 {
                let _ = writeln!(
                    out,
                    "  note            {top_on_edge} of the top-{} cells are on the grid's edge",
                    settings.top_k
                );
            }
        }
        let (lora, plus) = pair.best_lora_and_loraplus(settings);
        if let (Some(lora), Some(plus)) = (&lora, &plus) {
            let _ = writeln!(
                out,
                "  LoRA (ratio 1)  eta_A {:.2e}  {metric} {:.4}",
                lora.cell.eta_a, lora.mean
            );
            let p = findings
                .paired
                .iter()
                .find(|(slug, ..)| *slug == pair.slug())
                .and_then(|(_, d, p)| Some(format!(", paired over {} seed(s): p = {:.3}", d.len(), (*p)?)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  LoRA+           eta_A {:.2e}  ratio {:<6}  {metric} {:.4}  gain {:+.4}{p}",
                plus.cell.eta_a,
                plus.cell.ratio,
                plus.mean,
                plus.mean - lora.mean
            );
            match speedup(
                &lora.cell.mean_curve(settings.ranking_metric()),
                &plus.cell.mean_curve(settings.ranking_metric()),
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
            if let Some(default) = pair.best_at_ratio(settings, DEFAULT_RATIO) {
                let speed = speedup(
                    &lora.cell.mean_curve(settings.ranking_metric()),
                    &default.cell.mean_curve(settings.ranking_metric()),
                )
                .map_or("never reaches LoRA's final accuracy".to_string(), |(s, ..)| {
                    format!("speed-up {s:.2}x")
                });
                let _ = writeln!(
                    out,
                    "  LoRA+ ratio {DEFAULT_RATIO:<4}eta_A {:.2e}  {metric} {:.4}  gain {:+.4}  {speed}",
                    default.cell.eta_a,
                    default.mean,
                    default.mean - lora.mean
                );
            }
        }
        if let Some(baseline) = pair.best_baseline(settings.ranking_metric()) {
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
        let count = |outcome| pair.cells.iter().filter(|c| c.outcome() == outcome).count();
        let (no_learning, diverged, failed) = (
            count(Outcome::NoLearning),
            count(Outcome::Diverged),
            count(Outcome::Failed),
        );
        let awaiting = pair.cells_awaiting_seeds(settings);
        if no_learning + diverged + failed + awaiting > 0 {
            let _ = writeln!(
                out,
                "  not ranked      of {} cells: {no_learning} did not learn, {diverged} diverged, {failed} failed, {awaiting} await a seed's record",
                pair.cells.len()
            );
        }
    }
    let resampling = format!(
        "{:.0}% bootstrap interval, {} resamples of pairs{}",
        findings.bootstrap.level * 100.0,
        findings.bootstrap.samples,
        match settings.protocol {
            Protocol::SeedMean => " and seeds",
            Protocol::Paper => "",
        }
    );
    match &findings.median {
        Some(median) => {
            let _ = writeln!(
                out,
                "\nmedian log2(eta_B / eta_A) over the top-{} cells of every pair: {:.2} {} ({resampling}); ratio {:.1}; the LoRA+ paper reports about 4",
                settings.top_k,
                median.value,
                interval(median, 2),
                median.value.exp2()
            );
        }
        None => out.push_str("\nno cell finished and learned on every seed: no ratio distribution\n"),
    }
    if let Some(gain) = &findings.gain {
        let test = findings
            .gain_test
            .map(|(p, n)| format!("; paired sign-flip test over {n} (pair, seed) differences: p = {p:.3}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "LoRA+ - LoRA, best vs best, mean over pairs: {:+.4} {}{test}",
            gain.value,
            interval(gain, 4)
        );
    }
    if !on_edge.is_empty() {
        let _ = writeln!(
            out,
            "WARNING: {} of {} pairs have their best cell on the grid's edge ({}); widen the grid or set [adaptive]",
            on_edge.len(),
            pairs.len(),
            on_edge.join(", ")
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Accuracies;
    use crate::train::Status;

    /// A finished record of the tiny config's first trial moved to (eta_A, ratio, seed), with a
    /// final test (and validation) accuracy of `accuracy` and a majority class of `majority`.
    pub(crate) fn record(eta_a: f64, ratio: f64, seed: u64, accuracy: f64, majority: f64) -> TrialRecord {
        let mut spec = crate::grid::expand(&crate::config::tiny_config(1)).remove(0);
        (spec.eta_a, spec.ratio, spec.seed) = (eta_a, ratio, seed);
        let curve = vec![CurvePoint {
            step: 10,
            train_loss: Some(0.5),
            val_accuracy: accuracy,
            test_accuracy: accuracy,
        }];
        let mut record = crate::trial::failed_record(&spec, String::new(), &burn::tensor::Device::flex(), 1);
        record.status = Status::Ok;
        record.message = None;
        record.accuracy = Accuracies::of(&curve);
        record.curve = curve;
        record.majority_test_accuracy = Some(majority);
        record
    }

    /// A 3 x 3 grid (eta_A 1e-4..1e-2, ratios 1, 4, 16) over two seeds whose accuracy peaks at
    /// `peak` and falls off with log distance from it.
    fn grid_peaking_at(peak: (f64, f64)) -> Vec<TrialRecord> {
        let mut records = Vec::new();
        for eta_a in [1e-4, 1e-3, 1e-2] {
            for ratio in [1.0, 4.0, 16.0] {
                for seed in [0, 1] {
                    let distance = (eta_a / peak.0).log10().abs() + (ratio / peak.1).log2().abs() / 2.0;
                    records.push(record(
                        eta_a,
                        ratio,
                        seed,
                        0.9 - 0.05 * distance + 0.001 * seed as f64,
                        0.3,
                    ));
                }
            }
        }
        records
    }

    fn settings() -> ReportSettings {
        ReportSettings {
            name: "t".into(),
            metric: Metric::TestAccuracy,
            top_k: 1,
            protocol: Protocol::SeedMean,
        }
    }

    #[test]
    fn best_cells_on_each_boundary_are_flagged_and_interior_ones_are_not() {
        for (peak, expected) in [
            ((1e-4, 4.0), vec![Edge::EtaAMin]),
            ((1e-2, 4.0), vec![Edge::EtaAMax]),
            ((1e-3, 1.0), vec![Edge::RatioMin]),
            ((1e-3, 16.0), vec![Edge::RatioMax]),
            ((1e-3, 4.0), vec![]),
        ] {
            let records = grid_peaking_at(peak);
            let pairs = pairs(&records);
            let best = pairs[0].ranked(&settings())[0].cell;
            assert_eq!((best.eta_a, best.ratio), peak);
            assert_eq!(pairs[0].edges(best), expected, "peak at {peak:?}");
        }
    }

    #[test]
    fn no_learning_follows_the_test_split_class_balance() {
        let at = |accuracy, majority| record(1e-3, 4.0, 0, accuracy, majority).outcome();
        assert_eq!(at(0.60, 0.60), Outcome::NoLearning, "at the majority class");
        assert_eq!(at(0.55, 0.60), Outcome::NoLearning, "below it");
        assert_eq!(at(0.61, 0.60), Outcome::Ok);
        assert_eq!(at(0.34, 1.0 / 3.0), Outcome::Ok, "balanced: the bar is chance");
        let mut diverged = record(1e-3, 4.0, 0, 0.2, 0.6);
        diverged.status = Status::Diverged;
        assert_eq!(diverged.outcome(), Outcome::Diverged, "diverged stays diverged");

        // A cell with a seed that did not learn is not ranked, and the heatmap says why.
        let mut records = grid_peaking_at((1e-3, 4.0));
        records[0].accuracy.final_test = Some(0.3);
        let pairs = pairs(&records);
        let cell = &pairs[0].cells[0];
        assert_eq!(cell.outcome(), Outcome::NoLearning);
        assert!(pairs[0].ranked(&settings()).iter().all(|r| !std::ptr::eq(r.cell, cell)));
    }

    #[test]
    fn the_paper_protocol_ranks_the_first_seed_alone() {
        let mut records = grid_peaking_at((1e-3, 4.0));
        // Seed 1 of (1e-2, 16) is excellent; its seed 0 is not, so on seed means it loses.
        for r in records
            .iter_mut()
            .filter(|r| r.spec.eta_a == 1e-2 && r.spec.ratio == 16.0)
        {
            let accuracy = if r.spec.seed == 1 { 0.99 } else { 0.5 };
            r.curve[0].test_accuracy = accuracy;
            r.accuracy = Accuracies::of(&r.curve);
        }
        let pairs = pairs(&records);
        let best = |protocol| {
            let settings = ReportSettings { protocol, ..settings() };
            let cell = pairs[0].ranked(&settings)[0].cell;
            (cell.eta_a, cell.ratio)
        };
        assert_eq!(best(Protocol::SeedMean), (1e-3, 4.0));
        assert_eq!(best(Protocol::Paper), (1e-3, 4.0), "seed 0 alone agrees");
        for r in records
            .iter_mut()
            .filter(|r| r.spec.eta_a == 1e-2 && r.spec.ratio == 16.0)
        {
            r.curve[0].test_accuracy = if r.spec.seed == 0 { 0.99 } else { 0.5 };
            r.accuracy = Accuracies::of(&r.curve);
        }
        let pairs = super::pairs(&records);
        let settings = ReportSettings {
            protocol: Protocol::Paper,
            ..settings()
        };
        let cell = pairs[0].ranked(&settings)[0].cell;
        assert_eq!(
            (cell.eta_a, cell.ratio),
            (1e-2, 16.0),
            "one lucky seed wins under the paper's protocol"
        );
    }

    #[test]
    fn compute_under_an_hour_is_counted_in_minutes() {
        let mut records = vec![record(1e-3, 4.0, 0, 0.9, 0.3), record(1e-3, 4.0, 1, 0.9, 0.3)];
        records[0].wall_seconds = 90.0;
        records[1].wall_seconds = 60.0;
        assert!(provenance_summary(&records).contains("; 2.5 trial-minutes ("));
        records[1].wall_seconds = 5310.0;
        assert!(provenance_summary(&records).contains("; 1.5 trial-hours ("));
    }

    #[test]
    fn each_model_gets_the_findings_of_its_own_pairs() {
        let mut records = grid_peaking_at((1e-3, 16.0));
        let mut other = grid_peaking_at((1e-3, 1.0));
        for r in &mut other {
            r.spec.model.name = "other".into();
        }
        records.extend(other);
        let text = by_model_summary(&records, &settings());
        let line = |model: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(model))
                .unwrap()
                .to_string()
        };
        // Top-1 cells: log2 16 = 4 for one model, plain LoRA (log2 1 = 0) for the other. At the
        // peak's eta_A, accuracy falls 0.05 per factor 4 of ratio away from the peak's: the
        // first model's plain LoRA is two factors below (-0.10), the other's best LoRA+ (ratio
        // 4) one factor above (-0.05), on both seeds.
        assert!(
            line("mlp").contains("1 pair(s)  median log2 ratio 4.00 [4.00, 4.00]"),
            "{text}"
        );
        assert!(line("mlp").contains("LoRA+ - LoRA +0.1000 [0.1000, 0.1000]"), "{text}");
        assert!(line("other").contains("median log2 ratio 0.00 [0.00, 0.00]"), "{text}");
        assert!(
            line("other").contains("LoRA+ - LoRA -0.0500 [-0.0500, -0.0500]"),
            "{text}"
        );
        assert_eq!(
            by_model_summary(&records[..18], &settings()),
            "",
            "one model: nothing to split"
        );
    }

    #[test]
    fn a_cell_missing_a_seed_is_counted_as_awaiting_it_not_ranked() {
        let mut records = grid_peaking_at((1e-3, 4.0));
        // The best cell's seed 1 and another cell's seed 0 are still to run.
        records.retain(|r| {
            !((r.spec.eta_a, r.spec.ratio, r.spec.seed) == (1e-3, 4.0, 1)
                || (r.spec.eta_a, r.spec.ratio, r.spec.seed) == (1e-2, 16.0, 0))
        });
        let pairs = pairs(&records);
        let seed_mean = settings();
        let paper = ReportSettings {
            protocol: Protocol::Paper,
            ..settings()
        };
        assert_eq!(pairs[0].cells_awaiting_seeds(&seed_mean), 2);
        assert_eq!(pairs[0].ranked(&seed_mean).len(), 7);
        assert_ne!(
            pairs[0].ranked(&seed_mean)[0].cell.ratio,
            4.0,
            "the half-run best cell is not ranked"
        );
        assert_eq!(pairs[0].cells_awaiting_seeds(&paper), 1, "the paper ranks seed 0 alone");
        assert_eq!(pairs[0].ranked(&paper).len(), 8);
        let text = summary(&pairs, &Findings::of(&pairs, &seed_mean), &seed_mean, records.len());
        assert!(
            text.contains("of 9 cells: 0 did not learn, 0 diverged, 0 failed, 2 await a seed's record"),
            "{text}"
        );
    }
}
