//! The bases trials start from: pretrained checkpoints, loaded and checked against their data,
//! and random-init models pretrained once on their recipe's task and cached in the store.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use loraplus_data::TaskData;
use loraplus_model::{init, with_dropout_seed};
use loraplus_optim::LoraPlusConfig;
use serde::{Deserialize, Serialize};

use super::data::{DataCache, input_shape};
use super::train::{FitPlan, fit};
use super::zoo::{self, Classifier};
use crate::config::{ModelConfig, TaskConfig};
use crate::plan::{BaseKey, TrialSpec};
use crate::store::{Status, Store, with_lock, write_atomic};

/// The bases of a sweep's trials, by key.
pub type Bases = BTreeMap<BaseKey, Classifier>;

/// How a pretrained base was made: its cache key, and what is written beside it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BaseInfo {
    /// The model (architecture and pretraining recipe).
    pub model: ModelConfig,
    /// The pretraining task (none for a checkpoint).
    pub task: Option<TaskConfig>,
    /// Validation accuracy on the pretraining task after pretraining.
    pub pretrain_val_accuracy: Option<f64>,
    /// How pretraining ended.
    pub status: Option<Status>,
}

impl BaseInfo {
    /// The base a trial starts from.
    pub fn of(spec: &TrialSpec) -> Self {
        Self {
            model: spec.model.clone(),
            task: spec.pretrain_task.clone(),
            pretrain_val_accuracy: None,
            status: None,
        }
    }

    /// Its key: where it is cached.
    pub fn key(&self) -> BaseKey {
        BaseKey::of(&self.model, self.task.as_ref())
    }
}

/// Adds to `bases` the checkpoints `trials` start from, loaded and checked against the data
/// their tasks read (token ids within the vocabulary, sequences within the position table).
/// Needs no output folder, so a sweep calls it before writing anything: a corrupt checkpoint or
/// a mismatched tokenizer leaves results untouched.
pub fn load_checkpoints(
    trials: &[TrialSpec],
    data: &DataCache,
    device: &Device,
    log: &dyn Fn(String),
    bases: &mut Bases,
) -> Result<()> {
    for spec in trials.iter().filter(|spec| spec.model.pretrain.is_none()) {
        let task_data = data.get(&spec.task, &spec.model);
        zoo::check_data(&spec.model.kind, task_data)
            .with_context(|| format!("model `{}` on task `{}`", spec.model.name, spec.task.name))?;
        if let Entry::Vacant(entry) = bases.entry(spec.base()) {
            log(format!("loading checkpoint `{}`", spec.model.name));
            let shape = input_shape(&spec.task.kind, task_data);
            entry.insert(zoo::build(&spec.model.kind, &shape, true, &mut init::rng(0), device)?);
        }
    }
    Ok(())
}

/// Adds to `bases` the random-init bases `trials` need: pretrained once and cached in the
/// store, or loaded from there. Processes sharing a store (shards of one sweep) take turns
/// through a lock per base, so each base is pretrained once and every trial starts from the
/// same weights.
pub fn pretrain_bases(
    trials: &[TrialSpec],
    store: &Store,
    data: &DataCache,
    device: &Device,
    log: &dyn Fn(String),
    bases: &mut Bases,
) -> Result<()> {
    for spec in trials {
        let info = BaseInfo::of(spec);
        let key = info.key();
        let (Some(task), Some(recipe)) = (&info.task, &info.model.pretrain) else {
            continue;
        };
        if bases.contains_key(&key) {
            continue;
        }
        let task_data = data.get(task, &info.model);
        let shape = input_shape(&task.kind, task_data);
        let skeleton = zoo::build(&info.model.kind, &shape, true, &mut init::rng(recipe.seed), device)?;
        std::fs::create_dir_all(store.bases_dir())?;
        let path = store.bases_dir().join(format!("{key}.bpk"));
        let base = with_lock(&path.with_extension("lock"), || {
            if path.exists() {
                return skeleton
                    .try_load_file(&path)
                    .with_context(|| format!("cannot load the cached base {}", path.display()));
            }
            log(format!(
                "pretraining base {key} on `{}` ({} steps)",
                task.name, recipe.steps
            ));
            let started = Instant::now();
            let (base, info) = pretrain(skeleton, info.clone(), task_data, device)?;
            log(format!(
                "pretrained base {key}: val accuracy {:.4} on `{}` in {:.1}s",
                info.pretrain_val_accuracy.unwrap_or(f64::NAN),
                task.name,
                started.elapsed().as_secs_f64()
            ));
            save_base(&base, &info, &path)?;
            Ok(base)
        })?;
        bases.insert(key, base);
    }
    Ok(())
}

fn pretrain(model: Classifier, mut info: BaseInfo, data: &TaskData, device: &Device) -> Result<(Classifier, BaseInfo)> {
    let recipe = info.model.pretrain.clone().expect("only recipes are pretrained");
    let task_name = info.task.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let optim = LoraPlusConfig::new(recipe.lr, 1.0).init(&model, recipe.steps)?;
    let plan = FitPlan {
        steps: recipe.steps,
        batch_size: recipe.batch_size,
        eval_interval: recipe.steps,
        diverge_factor: f64::INFINITY,
        data_seed: recipe.seed,
        start: None,
    };
    let outcome = with_dropout_seed(recipe.seed, || fit(model, optim, data, &plan, device));
    let [run] = &outcome.members[..] else {
        unreachable!("one model, one member")
    };
    anyhow::ensure!(
        run.status == Some(Status::Ok),
        "pretraining of `{}` on `{task_name}` diverged: {}; lower its pretrain.lr",
        info.model.name,
        run.message.clone().unwrap_or_default()
    );
    info.pretrain_val_accuracy = run.curve.last().map(|p| p.val_accuracy);
    info.status = run.status;
    Ok((outcome.model, info))
}

fn save_base(base: &Classifier, info: &BaseInfo, path: &Path) -> Result<()> {
    let bytes = base
        .clone()
        .into_record()
        .into_bytes()
        .context("cannot serialise a base")?;
    write_atomic(path, &bytes)?;
    write_atomic(&path.with_extension("json"), &serde_json::to_vec_pretty(info)?)
}
