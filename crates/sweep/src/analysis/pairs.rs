//! Records grouped as the reports read them: *pairs* (one (model, task) at one value of every
//! other varying setting), and within a pair, *cells*: one (eta_A, lambda) point, its accuracy
//! the mean over seeds. A cell with a diverged, failed or non-learning seed is never ranked.

use crate::analysis::edges::{Edge, Grid};
use crate::analysis::stats::Table;
use crate::config::{Metric, Protocol, ReportSettings};
use crate::plan::{Method, PairKey, group_pairs, label, varying_keys};
use crate::store::{CurvePoint, Outcome, TrialRecord};

/// One pair of a sweep's records: a (model, task) at one value of every other varying setting.
pub struct Pair<'a> {
    /// Which pair.
    pub key: PairKey,
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
    /// The model's name.
    pub fn model(&self) -> &str {
        &self.key.name.model
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.key.name.task
    }

    /// The other varying settings' values, e.g. `rank=4`; empty when nothing else varies.
    pub fn label(&self) -> &str {
        &self.key.label
    }

    /// The pair's name in file names and tables: `model_task` (plus the axes label).
    pub fn slug(&self) -> String {
        let mut slug = format!("{}_{}", self.model(), self.task());
        if !self.label().is_empty() {
            slug.push('_');
            slug.push_str(self.label());
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

/// Groups records into pairs, sorted by (model, task) and label. Adapter records are split by
/// every numeric setting that varies within their (model, task) ([`group_pairs`]); head-only
/// baselines attach to the pairs whose training settings they share.
pub fn pairs(records: &[TrialRecord]) -> Vec<Pair<'_>> {
    let (lora, baseline): (Vec<&TrialRecord>, Vec<&TrialRecord>) =
        records.iter().partition(|r| r.spec.method == Method::Lora);
    let mut grouped = group_pairs(&lora, |r| &r.spec);
    grouped.sort_by(|a, b| a.0.cmp(&b.0));
    grouped
        .into_iter()
        .map(|(key, members)| {
            let members: Vec<&TrialRecord> = members.into_iter().copied().collect();
            let of_pair = |r: &&&TrialRecord| r.spec.pair_name() == key.name;
            let axes = varying_keys(lora.iter().filter(of_pair).map(|r| &r.spec));
            let train_axes: Vec<&str> = axes.into_iter().filter(|k| members[0].spec.is_train_key(k)).collect();
            let train_label = label(&members[0].spec, &train_axes);
            let base: Vec<&TrialRecord> = baseline
                .iter()
                .filter(of_pair)
                .filter(|r| label(&r.spec, &train_axes) == train_label)
                .copied()
                .collect();
            Pair {
                key,
                cells: cells(&members),
                baseline: cells(&base),
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Accuracies, Status};
    use crate::test_support::{grid_peaking_at, record, settings};

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
}
