//! The width-scaling check of the LoRA+ paper's Theorem 1: in a network of width `n`, the best
//! `eta_B / eta_A` grows as `Theta(n)`, so `log2(best ratio)` against `log2(n)` has slope 1.
//!
//! A sweep whose pairs include the toy network at two or more widths on one task gets, per task,
//! each width's best cell (ranked as the rest of the report ranks) and the least-squares slope of
//! `log2(best ratio)` on `log2(width)`, with a bootstrap interval that resamples widths and,
//! within each, seeds (the best cell is chosen again in every resample).

use std::collections::BTreeMap;

use crate::analysis::pairs::Pair;
use crate::analysis::stats::{self, Bootstrap, Estimate, Table};
use crate::config::{ModelKind, Protocol, ReportSettings};

/// One width's best cell.
#[derive(Debug, Clone, PartialEq)]
pub struct WidthPoint {
    /// The toy network's width `n`.
    pub width: usize,
    /// The best cell's eta_A.
    pub eta_a: f64,
    /// The best cell's ratio.
    pub ratio: f64,
    /// Its seed-mean metric.
    pub mean: f64,
}

/// The best ratio across widths on one task.
#[derive(Debug, Clone, PartialEq)]
pub struct WidthScaling {
    /// The task.
    pub task: String,
    /// One point per width, narrowest first.
    pub points: Vec<WidthPoint>,
    /// Slope of `log2(best ratio)` on `log2(width)`, with its interval.
    pub slope: Option<Estimate>,
}

/// The toy network's width, if `pair` is one.
fn width(pair: &Pair) -> Option<usize> {
    match &pair.cells.first()?.trials.first()?.spec.model.kind {
        ModelKind::Toy(toy) => Some(toy.width),
        _ => None,
    }
}

/// `log2(best ratio)` of `table` over `seeds`.
fn best_log2_ratio(table: &Table, seeds: &[usize]) -> Option<f64> {
    let (cell, _) = *table.ranked(seeds, |_| true).first()?;
    Some(table.cells[cell].1.log2())
}

/// Width scaling for every task on which the toy network ran at two or more widths.
pub fn width_scaling(pairs: &[Pair], settings: &ReportSettings) -> Vec<WidthScaling> {
    let mut by_task: BTreeMap<&str, Vec<(usize, &Pair)>> = BTreeMap::new();
    for pair in pairs.iter().filter(|p| p.label().is_empty()) {
        if let Some(width) = width(pair) {
            by_task.entry(pair.task()).or_default().push((width, pair));
        }
    }
    let bootstrap = Bootstrap::default();
    by_task
        .into_iter()
        .filter_map(|(task, mut widths)| {
            widths.sort_by_key(|(width, _)| *width);
            widths.dedup_by_key(|(width, _)| *width);
            if widths.len() < 2 {
                return None;
            }
            let points = widths
                .iter()
                .filter_map(|(width, pair)| {
                    let best = pair.ranked(settings).into_iter().next()?;
                    Some(WidthPoint {
                        width: *width,
                        eta_a: best.cell.eta_a,
                        ratio: best.cell.ratio,
                        mean: best.mean,
                    })
                })
                .collect();
            let items: Vec<(f64, Table)> = widths
                .iter()
                .map(|(width, pair)| ((*width as f64).log2(), pair.table(settings.ranking_metric())))
                .collect();
            let slope = bootstrap.estimate_over(
                &items,
                |(_, table)| table,
                |picked, seeds| {
                    let points: Option<Vec<(f64, f64)>> = picked
                        .iter()
                        .zip(seeds)
                        .map(|((x, table), seeds)| {
                            // The paper's protocol ranks on the first seed alone.
                            let seeds = match settings.protocol {
                                Protocol::SeedMean => seeds.as_slice(),
                                Protocol::Paper => &[0],
                            };
                            Some((*x, best_log2_ratio(table, seeds)?))
                        })
                        .collect();
                    stats::ols_slope(&points?)
                },
            );
            Some(WidthScaling {
                task: task.to_string(),
                points,
                slope,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two seeds; the best ratio of `table(best)` is `2^best`.
    fn table(best: f64) -> Table {
        let ratios: Vec<f64> = (0..12).map(|i| (i as f64).exp2()).collect();
        Table {
            cells: ratios.iter().map(|r| (1e-3, *r)).collect(),
            values: ratios
                .iter()
                .map(|r| {
                    let score = 0.9 - 0.01 * (r.log2() - best).powi(2);
                    vec![Some(score), Some(score - 0.001)]
                })
                .collect(),
        }
    }

    #[test]
    fn best_ratios_proportional_to_width_give_slope_one() {
        let widths = [64.0f64, 256.0, 1024.0];
        let items: Vec<(f64, Table)> = widths.iter().map(|w| (w.log2(), table(w.log2() - 3.0))).collect();
        let all: Vec<Vec<usize>> = vec![vec![0, 1]; 3];
        let refs: Vec<&(f64, Table)> = items.iter().collect();
        let points: Vec<(f64, f64)> = refs
            .iter()
            .zip(&all)
            .map(|((x, t), s)| (*x, best_log2_ratio(t, s).unwrap()))
            .collect();
        assert_eq!(points, vec![(6.0, 3.0), (8.0, 5.0), (10.0, 7.0)]);
        assert_eq!(stats::ols_slope(&points), Some(1.0));
        // A constant best ratio has slope 0; one width has none.
        assert_eq!(stats::ols_slope(&[(6.0, 4.0), (8.0, 4.0)]), Some(0.0));
        assert_eq!(stats::ols_slope(&[(6.0, 4.0), (6.0, 5.0)]), None);
    }
}
