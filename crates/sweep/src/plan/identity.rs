//! The identities a trial's spec defines, each once: its (model, task) pair, the pair of the
//! reports (that (model, task) at one value of every setting that varies), its family (the
//! trials that train stacked with it) and the base it starts from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;

use super::spec::{TrialSpec, digest};
use crate::config::{ModelConfig, Section, TaskConfig};

/// A (model, task) pair, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairName {
    /// The model's name.
    pub model: String,
    /// The downstream task's name.
    pub task: String,
}

impl fmt::Display for PairName {
    /// `model/task`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.model, self.task)
    }
}

/// One pair of the reports: a (model, task) at one value of every setting that varies among its
/// adapter trials (rank, batch size, ...). Its cells are (eta_A, ratio) points, each over seeds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairKey {
    /// The (model, task).
    pub name: PairName,
    /// The varying settings' values, e.g. `rank=4`; empty when nothing else varies.
    pub label: String,
}

impl fmt::Display for PairKey {
    /// `model/task`, then `[label]` if there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.label.is_empty() {
            write!(f, " [{}]", self.label)?;
        }
        Ok(())
    }
}

/// A trial's family: the trials that differ from it only in eta_A and ratio. They share
/// everything that shapes their computation (base, task, seed, so initial adapters, head,
/// batches and dropout masks; method and every other setting), so they train stacked and start
/// from the same model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FamilyKey(String);

/// The pretrained base a trial starts from: `<model>-<hash of architecture, recipe and task>`,
/// the same for every sweep that describes it the same way, whatever the model is called.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseKey(String);

impl BaseKey {
    /// The base of `model`, pretrained on `pretrain_task` (none for a checkpoint).
    pub fn of(model: &ModelConfig, pretrain_task: Option<&TaskConfig>) -> Self {
        let recipe = (&model.kind, &model.pretrain, pretrain_task.map(|t| &t.kind));
        Self(format!("{}-{}", model.name, digest(&recipe, 6)))
    }
}

impl fmt::Display for BaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TrialSpec {
    /// Its (model, task) pair.
    pub fn pair_name(&self) -> PairName {
        PairName {
            model: self.model.name.clone(),
            task: self.task.name.clone(),
        }
    }

    /// Its family.
    pub fn family(&self) -> FamilyKey {
        FamilyKey(digest(
            &TrialSpec {
                eta_a: 0.0,
                ratio: 0.0,
                ..self.clone()
            },
            8,
        ))
    }

    /// The base it starts from.
    pub fn base(&self) -> BaseKey {
        BaseKey::of(&self.model, self.pretrain_task.as_ref())
    }

    /// Whether numeric setting `key` is a training (not an adapter) setting, set or not.
    pub fn is_train_key(&self, key: &str) -> bool {
        !self.lora.settings().iter().any(|(k, _)| *k == key)
    }
}

/// The numeric settings (eta_A, ratio and seed are not settings) that take more than one value
/// among `specs`, sorted.
pub fn varying_keys<'a>(specs: impl IntoIterator<Item = &'a TrialSpec>) -> Vec<&'static str> {
    let mut values: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for spec in specs {
        for (key, value) in spec.numeric_keys() {
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

/// `spec`'s values of `keys`, e.g. `rank=4,batch_size=16`.
pub fn label(spec: &TrialSpec, keys: &[&str]) -> String {
    let values = spec.numeric_keys();
    keys.iter()
        .filter_map(|key| values.iter().find(|(k, _)| k == key).map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `items` (adapter trials, or their records) grouped into pairs, in the order the pairs first
/// appear: by (model, task), then by the values of the settings that vary among that (model,
/// task)'s items.
pub fn group_pairs<T>(items: &[T], spec: impl Fn(&T) -> &TrialSpec) -> Vec<(PairKey, Vec<&T>)> {
    let mut by_name: BTreeMap<PairName, Vec<&TrialSpec>> = BTreeMap::new();
    for item in items {
        by_name.entry(spec(item).pair_name()).or_default().push(spec(item));
    }
    let varying: BTreeMap<PairName, Vec<&'static str>> = by_name
        .into_iter()
        .map(|(name, specs)| (name, varying_keys(specs)))
        .collect();
    first_seen_groups(items, |item| {
        let spec = spec(item);
        let name = spec.pair_name();
        PairKey {
            label: label(spec, &varying[&name]),
            name,
        }
    })
}

/// Splits `trials` into groups that can run stacked (members of one family), each at most
/// `size(first trial)` long, families in the order they first appear. Groups keep the trials'
/// order within them; trials of different families are never grouped.
pub fn groups<'a>(trials: &[&'a TrialSpec], size: impl Fn(&TrialSpec) -> usize) -> Vec<Vec<&'a TrialSpec>> {
    first_seen_groups(trials, |trial| trial.family())
        .into_iter()
        .flat_map(|(_, members)| {
            let size = size(members[0]).max(1);
            members
                .chunks(size)
                .map(|chunk| chunk.iter().map(|t| **t).collect())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `items` grouped by `key`, the groups in the order their keys first appear, each in order.
fn first_seen_groups<'a, T, K: Clone + Eq + Hash>(items: &'a [T], key: impl Fn(&T) -> K) -> Vec<(K, Vec<&'a T>)> {
    let mut groups: Vec<(K, Vec<&'a T>)> = Vec::new();
    let mut position: HashMap<K, usize> = HashMap::new();
    for item in items {
        let key = key(item);
        match position.get(&key) {
            Some(&i) => groups[i].1.push(item),
            None => {
                position.insert(key.clone(), groups.len());
                groups.push((key, vec![item]));
            }
        }
    }
    groups
}
