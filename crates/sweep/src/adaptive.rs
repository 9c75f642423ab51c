//! Trustworthy optima, opt-in: a sweep whose config has `[adaptive]` extends each pair's grid
//! while its best cell sits on the grid's edge ([`crate::analysis::edges`]).
//!
//! The sweep adds the next grid line beyond that edge (at the same log spacing as the last two
//! lines), crossed with every value of the other axis, runs those trials, and repeats until the
//! best cell is interior or a bound stops it; optionally it then refines once around the
//! optimum, halving the log step. Every added trial is an ordinary trial with a stable id: the
//! stages are replayed from the records, so they resume and shard like the first grid.

use std::fmt;

use crate::analysis::{self, Edge, Grid};
use crate::config::{AdaptiveConfig, ReportSettings, SweepConfig};
use crate::plan::{self, Method, TrialSpec};
use crate::store::{Outcome, RecordState, Store, TrialRecord};

impl AdaptiveConfig {
    /// The next grid line beyond `edge` of `grid`: one log step (that of the two outermost
    /// lines) further out, if the axis has two lines and the line is within bounds.
    pub fn next_line(&self, grid: &Grid, edge: Edge) -> Option<f64> {
        let (values, min, max) = match edge {
            Edge::EtaAMin | Edge::EtaAMax => (&grid.eta_a, self.eta_a_min, self.eta_a_max),
            Edge::RatioMin | Edge::RatioMax => (&grid.ratio, self.ratio_min, self.ratio_max),
        };
        let n = values.len();
        if n < 2 {
            return None;
        }
        let line = match edge {
            Edge::EtaAMin | Edge::RatioMin => values[0] * values[0] / values[1],
            Edge::EtaAMax | Edge::RatioMax => values[n - 1] * values[n - 1] / values[n - 2],
        };
        // A relative tolerance, so a bound that is itself a grid line (e.g. ratio 4096) counts.
        (line >= min * (1.0 - 1e-9) && line <= max * (1.0 + 1e-9)).then(|| round_sig(line))
    }

    /// The cells to add when the best cell is `best`: the next line beyond each edge it lies
    /// on, crossed with every line of the other axis (and the two new lines crossed with each
    /// other). Empty when it is interior or every such line is out of bounds.
    pub fn extension(&self, grid: &Grid, best: (f64, f64)) -> Vec<(f64, f64)> {
        self.extend(grid, &grid.edges(best))
    }

    /// The cells of the next grid line beyond each of `edges` (within bounds), crossed with
    /// every line of the other axis.
    pub fn extend(&self, grid: &Grid, edges: &[Edge]) -> Vec<(f64, f64)> {
        let mut new_eta = Vec::new();
        let mut new_ratio = Vec::new();
        for &edge in edges {
            let Some(line) = self.next_line(grid, edge) else {
                continue;
            };
            match edge {
                Edge::EtaAMin | Edge::EtaAMax => new_eta.push(line),
                Edge::RatioMin | Edge::RatioMax => new_ratio.push(line),
            }
        }
        let etas: Vec<f64> = grid.eta_a.iter().chain(&new_eta).copied().collect();
        let ratios: Vec<f64> = grid.ratio.iter().chain(&new_ratio).copied().collect();
        let mut cells = Vec::new();
        for &eta_a in &etas {
            for &ratio in &ratios {
                if new_eta.contains(&eta_a) || new_ratio.contains(&ratio) {
                    cells.push((eta_a, ratio));
                }
            }
        }
        cells
    }

    /// The cells around `best` at half the log step to its neighbouring lines (up to 8), that
    /// the grid does not hold yet.
    pub fn refinement(&self, grid: &Grid, best: (f64, f64), existing: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let around = |values: &[f64], value: f64| {
            let i = values.iter().position(|v| *v == value).expect("best is on the grid");
            let mut points = vec![value];
            if i > 0 {
                points.insert(0, round_sig((values[i - 1] * value).sqrt()));
            }
            if i + 1 < values.len() {
                points.push(round_sig((values[i + 1] * value).sqrt()));
            }
            points
        };
        let mut cells = Vec::new();
        for eta_a in around(&grid.eta_a, best.0) {
            for ratio in around(&grid.ratio, best.1) {
                if !existing.contains(&(eta_a, ratio)) {
                    cells.push((eta_a, ratio));
                }
            }
        }
        cells
    }
}

/// What a stage of a sweep is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// The config's grid.
    Grid,
    /// Extension round `n` (from 1): grid lines beyond the edge holding a pair's best cell.
    Extension(usize),
    /// Cells around a pair's optimum at half the log step.
    Refinement,
}

/// The trials of one stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// What the stage is.
    pub kind: StageKind,
    /// Its trials.
    pub trials: Vec<TrialSpec>,
}

impl fmt::Display for Stage {
    /// Its kind and size: `extension 2 28`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.trials.len())
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageKind::Grid => f.write_str("grid"),
            StageKind::Extension(n) => write!(f, "extension {n}"),
            StageKind::Refinement => f.write_str("refinement"),
        }
    }
}

/// The stages of `config` as the finished records in `store` (if any) plan them; corrupt records
/// count as missing, without a warning (the sweep that reruns them gives one).
pub fn stages_in(config: &SweepConfig, store: Option<&Store>) -> Vec<Stage> {
    stages(config, |t| match store?.state(&t.id()) {
        RecordState::Finished(record) => Some(*record),
        _ => None,
    })
}

/// A pair being extended: its trials so far and where it stands.
struct PairPlan {
    trials: Vec<TrialSpec>,
    rounds: usize,
    added: usize,
    finished: bool,
}

/// The trials of `config`, stage by stage: the grid, then (with `[adaptive]`) the extensions
/// of every pair whose best cell is on its grid's edge, planned from `record` (the finished
/// record of a trial, if any). A pair is extended only once every trial it has so far is
/// recorded, so the stages grow as results arrive; the same records always give the same
/// stages, in any process.
pub fn stages(config: &SweepConfig, record: impl Fn(&TrialSpec) -> Option<TrialRecord>) -> Vec<Stage> {
    let grid = plan::expand(config);
    let mut stages = vec![Stage {
        kind: StageKind::Grid,
        trials: grid.clone(),
    }];
    let Some(adaptive) = config.adaptive.as_ref().filter(|a| a.enabled) else {
        return stages;
    };
    let settings = ReportSettings::from(config);
    // The pairs of the reports, in grid order.
    let lora: Vec<&TrialSpec> = grid.iter().filter(|t| t.method == Method::Lora).collect();
    let mut pairs: Vec<PairPlan> = plan::group_pairs(&lora, |t| t)
        .into_iter()
        .map(|(_, trials)| PairPlan {
            trials: trials.into_iter().map(|t| (*t).clone()).collect(),
            rounds: 0,
            added: 0,
            finished: false,
        })
        .collect();
    loop {
        let mut extension = Vec::new();
        let mut refinement = Vec::new();
        for plan in pairs.iter_mut().filter(|p| !p.finished) {
            let Some(records) = plan.trials.iter().map(&record).collect::<Option<Vec<_>>>() else {
                continue; // waits for its results
            };
            let (new_cells, refining) = next_cells(adaptive, &settings, plan, &records);
            let template = &plan.trials[0];
            let new_trials: Vec<TrialSpec> = new_cells
                .iter()
                .flat_map(|&(eta_a, ratio)| {
                    config.seeds.iter().map(move |&seed| TrialSpec {
                        eta_a,
                        ratio,
                        seed,
                        ..template.clone()
                    })
                })
                .collect();
            if new_trials.is_empty() || plan.added + new_trials.len() > adaptive.max_trials {
                plan.finished = true;
                continue;
            }
            plan.added += new_trials.len();
            plan.rounds += 1;
            plan.finished = refining;
            plan.trials.extend(new_trials.iter().cloned());
            if refining { &mut refinement } else { &mut extension }.extend(new_trials);
        }
        if extension.is_empty() && refinement.is_empty() {
            return stages;
        }
        // Stages are numbered by round across pairs; a pair's refinement follows its last
        // extension, so one round may hold both kinds.
        let round = stages
            .iter()
            .filter(|s| matches!(s.kind, StageKind::Extension(_)))
            .count()
            + 1;
        if !extension.is_empty() {
            stages.push(Stage {
                kind: StageKind::Extension(round),
                trials: extension,
            });
        }
        if !refinement.is_empty() {
            stages.push(Stage {
                kind: StageKind::Refinement,
                trials: refinement,
            });
        }
    }
}

/// The cells to add to a pair whose trials so far have `records`, and whether they refine.
fn next_cells(
    adaptive: &AdaptiveConfig,
    settings: &ReportSettings,
    plan: &PairPlan,
    records: &[TrialRecord],
) -> (Vec<(f64, f64)>, bool) {
    let cells: Vec<(f64, f64)> = plan.trials.iter().map(|t| (t.eta_a, t.ratio)).collect();
    let grid = Grid::of(cells.iter().copied());
    let pairs = analysis::pairs(records);
    let best = pairs
        .first()
        .and_then(|p| p.ranked(settings).first().map(|r| (r.cell.eta_a, r.cell.ratio)));
    match best {
        Some(best) => {
            let extension = if plan.rounds < adaptive.max_rounds {
                adaptive.extension(&grid, best)
            } else {
                Vec::new()
            };
            if extension.is_empty() && adaptive.refine {
                (adaptive.refinement(&grid, best, &cells), true)
            } else {
                (extension, false)
            }
        }
        // No cell learned on every seed: there is no optimum yet, only a direction. Rates too
        // small to learn call for larger ones, diverging rates for smaller ones; with both, the
        // window lies inside the grid but no cell hit it.
        None if plan.rounds < adaptive.max_rounds => {
            let outcomes: Vec<Outcome> = records.iter().map(TrialRecord::outcome).collect();
            let diverged = outcomes.contains(&Outcome::Diverged);
            let no_learning = outcomes.iter().any(|o| *o == Outcome::NoLearning || *o == Outcome::Ok);
            let cells = match (no_learning, diverged) {
                (true, false) => adaptive.extend(&grid, &[Edge::EtaAMax]),
                (false, true) => adaptive.extend(&grid, &[Edge::EtaAMin]),
                _ => Vec::new(),
            };
            (cells, false)
        }
        None => (Vec::new(), false),
    }
}

/// `x` to 12 significant digits: grid lines computed by products and square roots land on
/// clean values (`1e-3 * 1e-3 / 1e-4` is `0.01`, not `0.010000000000000002`), so the trial
/// ids of an extension are the same whichever way it was computed.
fn round_sig(x: f64) -> f64 {
    format!("{x:.11e}").parse().expect("a formatted float parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        let etas = [1e-4, 1e-3, 1e-2];
        let ratios = [1.0, 4.0, 16.0];
        Grid::of(etas.iter().flat_map(|&e| ratios.iter().map(move |&r| (e, r))))
    }

    #[test]
    fn the_extension_is_exactly_the_next_grid_line_and_stops_at_the_bounds() {
        let grid = grid();
        let adaptive = AdaptiveConfig::default();
        assert_eq!(
            adaptive.extension(&grid, (1e-2, 4.0)),
            [(0.1, 1.0), (0.1, 4.0), (0.1, 16.0)],
            "one new eta_A line a decade up, at every ratio"
        );
        assert_eq!(
            adaptive.extension(&grid, (1e-3, 16.0)),
            [(1e-4, 64.0), (1e-3, 64.0), (1e-2, 64.0)]
        );
        assert_eq!(adaptive.extension(&grid, (1e-4, 4.0))[0], (1e-5, 1.0));
        let corner = adaptive.extension(&grid, (1e-2, 16.0));
        assert_eq!(corner.len(), 3 + 3 + 1, "a new row, a new column and their corner");
        assert!(corner.contains(&(0.1, 64.0)));
        assert!(
            adaptive.extension(&grid, (1e-3, 4.0)).is_empty(),
            "interior: nothing to add"
        );
        // Ratio 1 is the default lower bound: plain LoRA as best cannot be extended below.
        assert!(adaptive.extension(&grid, (1e-3, 1.0)).is_empty());
        let tight = AdaptiveConfig {
            eta_a_max: 0.05,
            ratio_max: 64.0,
            ..AdaptiveConfig::default()
        };
        assert!(tight.extension(&grid, (1e-2, 4.0)).is_empty(), "0.1 is above eta_a_max");
        assert_eq!(tight.extension(&grid, (1e-3, 16.0)).len(), 3, "64 is within ratio_max");
        let wider = Grid::of(tight.extension(&grid, (1e-3, 16.0)).into_iter().chain([(1e-3, 16.0)]));
        assert_eq!(
            tight.next_line(
                &Grid {
                    ratio: vec![16.0, 64.0],
                    ..wider
                },
                Edge::RatioMax
            ),
            None
        );
    }

    #[test]
    fn each_pair_has_its_own_budget_of_added_trials() {
        let text = r#"
            name = "t"
            [grid]
            eta_a = [1e-3, 1e-2]
            ratio = [4]
            baseline = false
            [adaptive]
            max_trials = 2
            [train]
            steps = 1
            [lora]
            rank = 2
            [[task]]
            name = "base"
            kind = "teacher"
            d_input = 4
            n_classes = 2
            n_train = 8
            n_val = 2
            n_test = 2
            [[task]]
            name = "down-1"
            kind = "teacher"
            d_input = 4
            n_classes = 2
            n_train = 8
            n_val = 2
            n_test = 2
            [[task]]
            name = "down-2"
            kind = "teacher"
            d_input = 4
            n_classes = 2
            n_train = 8
            n_val = 2
            n_test = 2
            shift_seed = 5
            [[model]]
            name = "mlp"
            kind = "mlp"
            hidden = [4]
            pretrain = { task = "base", steps = 1 }
        "#;
        let config = SweepConfig::parse(text, std::path::Path::new("t.toml")).unwrap();
        // Both pairs' grids are done, best at eta_A 1e-2 and ratio 1: each wants the eta_A = 0.1
        // line at ratios 1 and 4, two trials, the whole budget.
        let grid = plan::expand(&config);
        let record = |spec: &TrialSpec| {
            grid.iter().any(|t| t.id() == spec.id()).then(|| {
                let accuracy = 0.5 + 10.0 * spec.eta_a - 1e-4 * spec.ratio;
                let mut record = crate::test_support::record(spec.eta_a, spec.ratio, spec.seed, accuracy, 0.1);
                (record.spec, record.trial_id) = (spec.clone(), spec.id());
                record
            })
        };
        let stages = stages(&config, record);
        assert_eq!(stages.len(), 2);
        let added: Vec<(&str, f64)> = stages[1]
            .trials
            .iter()
            .map(|t| (t.task.name.as_str(), t.eta_a))
            .collect();
        assert_eq!(
            added,
            [("down-1", 0.1), ("down-1", 0.1), ("down-2", 0.1), ("down-2", 0.1)]
        );
    }

    #[test]
    fn refinement_halves_the_log_step_around_the_optimum() {
        let grid = grid();
        let existing: Vec<(f64, f64)> = grid
            .eta_a
            .iter()
            .flat_map(|&e| grid.ratio.iter().map(move |&r| (e, r)))
            .collect();
        let cells = AdaptiveConfig::default().refinement(&grid, (1e-3, 4.0), &existing);
        assert_eq!(cells.len(), 8);
        assert!(cells.contains(&(round_sig(1e-3 * 10f64.sqrt()), 8.0)));
        assert!(cells.contains(&(round_sig(1e-3 / 10f64.sqrt()), 2.0)));
    }
}
