//! The trials a config means: every grid list resolved, each trial with a stable id, grouped
//! into the pairs the reports are about and the families that train stacked, and cut into the
//! shards of a job array.

mod identity;
pub mod shard;
mod spec;

pub use identity::{BaseKey, FamilyKey, PairKey, PairName, group_pairs, groups, label, varying_keys};
pub use spec::{Method, TrialSpec};

use crate::config::{LoraSection, Section, SweepConfig};

/// Every trial of `config`, in a fixed order: pairs as listed, then train/lora axis
/// combinations, seeds, eta_A, and ratio (head-only baselines after the ratios of each eta_A).
pub fn expand(config: &SweepConfig) -> Vec<TrialSpec> {
    let eta_a = config.grid.eta_a.values();
    let ratios = config.grid.ratios();
    let trains = config.train.expand();
    let loras = config.lora.expand();
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

#[cfg(test)]
mod tests;
