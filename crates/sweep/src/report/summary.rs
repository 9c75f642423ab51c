//! The printed summary (also `summary.txt`): per pair, the best cell, LoRA against LoRA+, the
//! baselines and what was not ranked; then the sweep's findings, where the records came from,
//! the same findings per model, width scaling and how far the grid was extended.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::adaptive::{Stage, StageKind};
use crate::analysis::scaling::WidthScaling;
use crate::analysis::stats::Estimate;
use crate::analysis::{self, DEFAULT_RATIO, Findings, Pair, speedup};
use crate::config::{Protocol, ReportSettings, SweepConfig};
use crate::store::{Outcome, TrialRecord};

/// `[low, high]` of an estimate to `digits` decimals, as the summary shows it.
pub fn interval(estimate: &Estimate, digits: usize) -> String {
    format!("[{:.digits$}, {:.digits$}]", estimate.low, estimate.high)
}

/// The summary of `pairs` (from `n_records` records) and their findings.
pub fn summary(pairs: &[Pair], findings: &Findings, settings: &ReportSettings, n_records: usize) -> String {
    let protocol = match settings.protocol {
        Protocol::SeedMean => "seed means; a cell counts only if every seed trained and learned",
        Protocol::Paper => "the LoRA+ paper's protocol: the first seed alone",
    };
    let mut out = format!(
        "{}: {n_records} trial records, {} pairs, ranked by {} ({protocol})\n",
        settings.name,
        pairs.len(),
        settings.ranking_metric()
    );
    let mut on_edge = Vec::new();
    for pair in pairs {
        let _ = writeln!(out, "\n{}", pair.key);
        if best_cell(&mut out, pair, settings) {
            on_edge.push(pair.key.to_string());
        }
        lora_against_loraplus(&mut out, pair, findings, settings);
        baselines_and_unranked(&mut out, pair, settings);
    }
    out.push_str(&overall(findings, settings));
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

/// The pair's best cell, its seed spread and whether it (or another top-k cell) lies on the
/// grid's edge; returns whether the best one does.
fn best_cell(out: &mut String, pair: &Pair, settings: &ReportSettings) -> bool {
    let metric = settings.ranking_metric();
    let ranked = pair.ranked(settings);
    let Some(best) = ranked.first() else {
        return false;
    };
    let _ = writeln!(
        out,
        "  best cell       eta_A {:.2e}  ratio {:<6}  {metric} {:.4}",
        best.cell.eta_a, best.cell.ratio, best.mean
    );
    if let Some(spread) = best.cell.metric(metric) {
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
        let edges: Vec<&str> = edges.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(
            out,
            "  WARNING         the best cell is on the grid's edge ({}): the optimum may lie outside the grid",
            edges.join(", ")
        );
        return true;
    }
    if top_on_edge > 0 {
        let _ = writeln!(
            out,
            "  note            {top_on_edge} of the top-{} cells are on the grid's edge",
            settings.top_k
        );
    }
    false
}

/// The best plain LoRA and LoRA+ cells, the gain and speed-up, and LoRA+ at the default ratio.
fn lora_against_loraplus(out: &mut String, pair: &Pair, findings: &Findings, settings: &ReportSettings) {
    let metric = settings.ranking_metric();
    let (Some(lora), Some(plus)) = pair.best_lora_and_loraplus(settings) else {
        return;
    };
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
    let lora_curve = lora.cell.mean_curve(metric);
    match speedup(&lora_curve, &plus.cell.mean_curve(metric)) {
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
        let speed = speedup(&lora_curve, &default.cell.mean_curve(metric))
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

/// The head-only baseline, the majority class, and the cells left out of the ranking.
fn baselines_and_unranked(out: &mut String, pair: &Pair, settings: &ReportSettings) {
    let metric = settings.ranking_metric();
    if let Some(baseline) = pair.best_baseline(metric) {
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

/// The median ratio and the mean gain over every pair, with their intervals.
fn overall(findings: &Findings, settings: &ReportSettings) -> String {
    let mut out = String::new();
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
    out
}

/// The sweep's findings again for each model's pairs alone, when there are several models: a
/// pooled figure over a mixed study (an in-house MLP beside a pretrained transformer) hides
/// whether one family carries it.
pub fn by_model(records: &[TrialRecord], settings: &ReportSettings) -> String {
    let mut models: Vec<&str> = records.iter().map(|r| r.spec.model.name.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    if models.len() < 2 {
        return String::new();
    }
    let mut out = String::from("\nby model (the same estimates over each model's pairs alone)\n");
    for model in models {
        let own: Vec<TrialRecord> = records.iter().filter(|r| r.spec.model.name == model).cloned().collect();
        let pairs = analysis::pairs(&own);
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
pub fn provenance(records: &[TrialRecord]) -> String {
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

/// Each width's best cell and the fitted slope, per task.
pub fn width_scaling(scalings: &[WidthScaling]) -> String {
    let mut out = String::new();
    for scaling in scalings {
        let _ = writeln!(out, "\nwidth scaling on {} (Theta(n) predicts slope 1)", scaling.task);
        for p in &scaling.points {
            let _ = writeln!(
                out,
                "  width {:<6} best eta_A {:.2e}  ratio {:<6}  mean {:.4}",
                p.width, p.eta_a, p.ratio, p.mean
            );
        }
        if let Some(slope) = scaling.slope {
            let _ = writeln!(
                out,
                "  slope of log2(best ratio) on log2(width): {:.2}, {:.0}% interval {}",
                slope.value,
                slope.level * 100.0,
                interval(&slope, 2)
            );
        }
    }
    out
}

/// For an adaptive sweep, how far its grid was extended.
pub fn adaptive(config: &SweepConfig, stages: &[Stage]) -> String {
    if !config.adaptive.as_ref().is_some_and(|a| a.enabled) {
        return String::new();
    }
    let rounds = stages
        .iter()
        .filter(|s| matches!(s.kind, StageKind::Extension(_)))
        .count();
    let added: usize = stages.iter().skip(1).map(|s| s.trials.len()).sum();
    let listed: Vec<String> = stages.iter().map(Stage::to_string).collect();
    format!(
        "adaptive: the grid was extended in {rounds} round(s), {added} trials added (stages: {})\n",
        listed.join(", ")
    )
}

/// The pairs whose planned trials are not all recorded yet (a running or interrupted sweep): the
/// report covers only the records present, so their best cells and ratios may still change.
pub fn incomplete(recorded: &BTreeMap<String, (usize, usize)>) -> String {
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
