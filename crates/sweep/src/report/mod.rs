//! Reports, rebuilt from trial records alone: the CSV tables ([`tables`]), the printed summary
//! ([`summary`]) and the PNG figures ([`plots`]). Every file is written atomically, so a report
//! being rewritten (a running sweep's) is never read half-made.

pub mod plots;
pub mod summary;
pub mod tables;

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::adaptive::{self, Stage};
use crate::analysis::{self, Findings, Pair, scaling};
use crate::config::{ConfigFile, ReportSettings, SweepConfig};
use crate::store::{Store, make_atomic, write_atomic};

/// Writes every CSV and PNG for the records in `store`, and returns the printed summary.
pub fn write_reports(store: &Store, settings: &ReportSettings) -> Result<String> {
    let records = store.records()?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no finished trial records",
        store.dir().display()
    );
    let dir = store.dir();
    tables::write_results_csv(&records, &dir.join("results.csv"))?;
    tables::write_curves_csv(&records, &dir.join("curves.csv"))?;
    let pairs = analysis::pairs(&records);
    let findings = Findings::of(&pairs, settings);
    tables::write_best_ratios_csv(&pairs, settings, &findings, &dir.join("best_ratios.csv"))?;
    tables::write_gains_csv(&pairs, settings, &findings, &dir.join("gains.csv"))?;
    make_atomic(&dir.join("ratio_distribution.png"), |tmp| {
        plots::ratio_distribution(&findings, settings.top_k, tmp)
    })?;
    let planned = planned(store);
    let recorded = planned
        .as_ref()
        .map(|(_, stages)| recorded_by_pair(store, stages))
        .unwrap_or_default();
    write_pair_plots(store, &pairs, settings, &recorded)?;

    let mut summary = summary::summary(&pairs, &findings, settings, records.len());
    summary.insert_str(summary.find('\n').map_or(0, |i| i + 1), &summary::provenance(&records));
    summary.push_str(&summary::by_model(&records, settings));
    let scalings = scaling::width_scaling(&pairs, settings);
    if !scalings.is_empty() {
        tables::write_width_scaling_csv(&scalings, &dir.join("width_scaling.csv"))?;
        for scaling in &scalings {
            make_atomic(&dir.join(format!("width_scaling_{}.png", scaling.task)), |tmp| {
                plots::width_scaling(scaling, tmp)
            })?;
        }
        summary.push_str(&summary::width_scaling(&scalings));
    }
    if let Some((config, stages)) = planned {
        summary.push_str(&summary::adaptive(&config, &stages));
        summary.push_str(&summary::incomplete(&recorded));
    }
    write_atomic(&dir.join("summary.txt"), summary.as_bytes()).context("summary.txt")?;
    Ok(summary)
}

/// Each pair's heatmap and curves, their titles marked partial while some of the pair's
/// planned trials have no record.
fn write_pair_plots(
    store: &Store,
    pairs: &[Pair],
    settings: &ReportSettings,
    recorded: &BTreeMap<String, (usize, usize)>,
) -> Result<()> {
    for pair in pairs {
        let slug = pair.slug();
        let progress = recorded
            .get(&pair.key.name.to_string())
            .copied()
            .filter(|(recorded, planned)| recorded < planned);
        make_atomic(&store.dir().join(format!("heatmap_{slug}.png")), |tmp| {
            plots::heatmap(pair, settings, progress, tmp)
        })?;
        make_atomic(&store.dir().join(format!("curves_{slug}.png")), |tmp| {
            plots::curves(pair, settings, progress, tmp)
        })?;
    }
    Ok(())
}

/// What the directory's config plans, stage by stage, as its records replan it; `None` without a
/// readable `config.toml`.
fn planned(store: &Store) -> Option<(SweepConfig, Vec<Stage>)> {
    let config = ConfigFile::load(&store.config_path()).ok()?.config;
    let stages = adaptive::stages_in(&config, Some(store));
    Some((config, stages))
}

/// Per (model, task), by its `model/task` name, how many of its planned trials (`stages`) have a
/// finished record: `(recorded, planned)`.
fn recorded_by_pair(store: &Store, stages: &[Stage]) -> BTreeMap<String, (usize, usize)> {
    let mut by_pair: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for trial in stages.iter().flat_map(|s| &s.trials) {
        let entry = by_pair.entry(trial.pair_name().to_string()).or_default();
        entry.1 += 1;
        if store.finished(&trial.id()).is_some() {
            entry.0 += 1;
        }
    }
    by_pair
}

#[cfg(test)]
mod tests;
