//! Grid expansion: a config becomes a deterministic list of fully resolved trials, each with a
//! stable id derived from everything that determines its result.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{LoraSection, ModelConfig, SweepConfig, TaskConfig, TrainConfig};

/// What a trial trains.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Adapters (plus the head) with the LoRA+ optimizer; `ratio = 1` is plain LoRA.
    Lora,
    /// The frozen-base baseline: only the head trains.
    HeadOnly,
}

/// One trial, fully resolved: every list in the config has been replaced by one of its values.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TrialSpec {
    /// The model (with its pretraining recipe).
    pub model: ModelConfig,
    /// The downstream task.
    pub task: TaskConfig,
    /// The pretraining task of `model` (none for a pretrained checkpoint).
    pub pretrain_task: Option<TaskConfig>,
    /// Adapters or the head-only baseline.
    pub method: Method,
    /// Seed of the head init, adapter init and data order.
    pub seed: u64,
    /// Rate of group A.
    pub eta_a: f64,
    /// `eta_B / eta_A`.
    pub ratio: f64,
    /// Training settings, every key single-valued.
    pub train: TrainConfig,
    /// Adapter settings, every key single-valued.
    pub lora: LoraSection,
}

impl TrialSpec {
    /// A 16-hex-digit id: the SHA-256 of the spec's canonical JSON. Struct fields serialise in
    /// declaration order and floats in shortest round-trip form, so the id is the same on every
    /// machine and in every run.
    pub fn id(&self) -> String {
        let json = serde_json::to_string(self).expect("a spec serialises");
        let digest = Sha256::digest(json.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// `eta_B = eta_A * ratio`.
    pub fn eta_b(&self) -> f64 {
        self.eta_a * self.ratio
    }

    /// Optimizer updates: `steps`, or `epochs` passes of `batch_size`.
    pub fn steps(&self) -> usize {
        match (&self.train.steps, &self.train.epochs) {
            (Some(steps), _) => steps.get(),
            (None, Some(epochs)) => {
                let n_train = self.task.kind.n_train().expect("validated: epochs need n_train");
                epochs.get() * n_train.div_ceil(self.train.batch_size.get())
            }
            (None, None) => unreachable!("validated: steps or epochs"),
        }
    }

    /// The adapter targets of this trial's model.
    pub fn targets(&self) -> Vec<String> {
        self.model
            .targets
            .clone()
            .unwrap_or_else(|| self.model.kind.default_targets())
    }

    /// Numeric training and adapter keys with their values (for tables and grouping).
    pub fn numeric_keys(&self) -> Vec<(String, f64)> {
        let mut keys = Vec::new();
        for section in [serde_json::to_value(&self.train), serde_json::to_value(&self.lora)] {
            let section = section.expect("sections serialise");
            for (key, value) in section.as_object().expect("sections are tables") {
                if let Some(number) = value.as_f64() {
                    keys.push((key.clone(), number));
                }
            }
        }
        keys
    }
}

/// The most trials a config may declare. Each trains a model, so a larger grid is a slip (a log
/// range of 10^7 points, say) rather than a sweep, and expanding it would exhaust memory before
/// the first trial ran.
pub const MAX_TRIALS: usize = 100_000;

/// The sizes, by key, whose product bounds how many trials [`expand`] makes: (model, task) pairs,
/// seeds, eta_A values, ratios (counting the ratio 1 that expansion adds and the head-only
/// baseline), and every list-valued training and adapter key. Nothing is expanded to count them.
pub fn sizes(config: &SweepConfig) -> Vec<(String, usize)> {
    let ratios = config
        .grid
        .ratio
        .n_values()
        .saturating_add(1 + usize::from(config.grid.baseline));
    let mut sizes = vec![
        ("pairs".to_string(), config.pairs().len()),
        ("seeds".to_string(), config.seeds.len()),
        ("eta_a".to_string(), config.grid.eta_a.n_values()),
        ("ratio".to_string(), ratios),
    ];
    for section in [serde_json::to_value(&config.train), serde_json::to_value(&config.lora)] {
        for (key, value) in section.expect("sections serialise").as_object().expect("tables") {
            if let Some(list) = value.as_array() {
                sizes.push((key.clone(), list.len()));
            }
        }
    }
    sizes
}

/// Every trial of `config`, in a fixed order: pairs as listed, then train/lora axis
/// combinations, seeds, eta_A, and ratio (head-only baselines after the ratios of each eta_A).
pub fn expand(config: &SweepConfig) -> Vec<TrialSpec> {
    let eta_a = config.grid.eta_a.values();
    let mut ratios = config.grid.ratio.values();
    if !ratios.contains(&1.0) {
        ratios.insert(0, 1.0);
    }
    let trains: Vec<TrainConfig> = expand_lists(&config.train);
    let loras: Vec<LoraSection> = expand_lists(&config.lora);
    let mut trials = Vec::new();
    for (model, task) in config.pairs() {
        let pretrain_task = model
            .pretrain
            .as_ref()
            .map(|p| config.task(&p.task).expect("validated").clone());
        for train in &trains {
            for lora in &loras {
                for &seed in &config.seeds {
                    for &eta_a in &eta_a {
                        let trial = |method, ratio| TrialSpec {
                            model: model.clone(),
                            task: task.clone(),
                            pretrain_task: pretrain_task.clone(),
                            method,
                            seed,
                            eta_a,
                            ratio,
                            train: train.clone(),
                            // The baseline attaches no adapter: one per eta_A, whatever the
                            // adapter axes, so its spec carries the default adapter settings.
                            lora: if method == Method::HeadOnly {
                                LoraSection::default()
                            } else {
                                lora.clone()
                            },
                        };
                        trials.extend(ratios.iter().map(|&ratio| trial(Method::Lora, ratio)));
                        if config.grid.baseline {
                            trials.push(trial(Method::HeadOnly, 1.0));
                        }
                    }
                }
            }
        }
    }
    // Baselines repeat across adapter axes: keep the first of each.
    let mut seen = std::collections::HashSet::new();
    trials.retain(|t| seen.insert(t.id()));
    trials
}

/// Every combination of the list-valued numeric keys of `section`, each as a section whose keys
/// are single-valued. Works on any section through its JSON form, so a new numeric key becomes a
/// possible axis by existing.
fn expand_lists<T: Serialize + for<'de> Deserialize<'de>>(section: &T) -> Vec<T> {
    let table = serde_json::to_value(section).expect("sections serialise");
    let mut combos = vec![table.clone()];
    for (key, value) in table.as_object().expect("sections are tables") {
        let Some(list) = value.as_array().filter(|l| l.iter().all(|v| v.is_number())) else {
            continue;
        };
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                list.iter().map(move |v| {
                    let mut combo = combo.clone();
                    combo[key] = v.clone();
                    combo
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|c| serde_json::from_value(c).expect("a resolved section parses"))
        .collect()
}

/// Whether a key is a grid axis: a list in the config.
pub fn axes(config: &SweepConfig) -> Vec<String> {
    let mut axes = Vec::new();
    for section in [serde_json::to_value(&config.train), serde_json::to_value(&config.lora)] {
        for (key, value) in section.expect("sections serialise").as_object().expect("tables") {
            if value.is_array() && key != "targets" {
                axes.push(key.clone());
            }
        }
    }
    axes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
        name = "t"
        seeds = [0, 1]
        [grid]
        eta_a = { from = 1e-4, to = 1e-2, points = 3 }
        ratio = [4, 16]
        [train]
        steps = 10
        batch_size = [8, 16]
        [lora]
        rank = [2, 4]
        [[task]]
        name = "base"
        kind = "teacher"
        d_input = 4
        n_classes = 2
        n_train = 20
        n_val = 5
        n_test = 5
        [[task]]
        name = "down"
        kind = "teacher"
        d_input = 4
        n_classes = 2
        shift_rank = 1
        shift_scale = 1.0
        n_train = 20
        n_val = 5
        n_test = 5
        [[model]]
        name = "mlp"
        kind = "mlp"
        hidden = [8]
        pretrain = { task = "base", steps = 5 }
    "#;

    fn config() -> SweepConfig {
        SweepConfig::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn expansion_is_the_full_product_with_ratio_one_added() {
        let trials = expand(&config());
        // 1 pair x 2 batch sizes x 2 seeds x 3 eta_a x (3 ratios incl. 1) x 2 ranks LoRA trials,
        // plus head-only baselines, which do not depend on the rank: 2 x 2 x 3.
        let lora = trials.iter().filter(|t| t.method == Method::Lora).count();
        let head_only = trials.iter().filter(|t| t.method == Method::HeadOnly).count();
        assert_eq!((lora, head_only), (2 * 2 * 3 * 3 * 2, 2 * 2 * 3));
        assert!(
            trials.iter().any(|t| t.ratio == 1.0),
            "plain LoRA is always in the grid"
        );
        let etas: Vec<f64> = trials.iter().map(|t| t.eta_a).collect();
        assert!(etas.iter().any(|e| (e - 1e-3).abs() < 1e-12), "log-spaced midpoint");
        assert_eq!(
            trials[0].task.name, "down",
            "the pretraining task is not a downstream task"
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let (a, b) = (expand(&config()), expand(&config()));
        let ids: Vec<String> = a.iter().map(TrialSpec::id).collect();
        assert_eq!(ids, b.iter().map(TrialSpec::id).collect::<Vec<_>>());
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(ids[0].len(), 16);
        let first = &a[0];
        assert_eq!(
            first.id(),
            TrialSpec {
                seed: first.seed,
                ..first.clone()
            }
            .id()
        );
        assert_ne!(
            first.id(),
            TrialSpec {
                seed: first.seed + 7,
                ..first.clone()
            }
            .id()
        );
    }
}
