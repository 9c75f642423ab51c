//! A trial's trained adapter on disk: saved beside its record in PEFT's layout
//! (`trials/<id>/adapter_model.safetensors` and `adapter_config.json`, with the head among
//! `modules_to_save`) and the task's class names in order (`labels.json`).

use std::fs;

use anyhow::{Context, Result};
use loraplus_model::peft;

use super::trial::attach_config;
use super::zoo::Classifier;
use crate::config::{ModelKind, SaveAdapters};
use crate::plan::Method;
use crate::store::{ADAPTER_WEIGHTS, Status, Store, TrialRecord, sha256};

/// The class names, in class-index order, beside an adapter.
pub const LABELS_FILE: &str = "labels.json";

/// PEFT's task type of a classifier.
pub const TASK_TYPE: &str = "SEQ_CLS";

/// Whether `record`'s trial keeps its adapter: an adapter trial that trained to the end, when
/// the sweep saves them.
pub fn keeps(save: SaveAdapters, record: &TrialRecord) -> bool {
    save == SaveAdapters::All && record.status == Status::Ok && record.spec.method == Method::Lora
}

/// Saves `model`, the trial of `record` as it trained, into the trial's folder, and notes the
/// weights' digest in the record (to be saved after it).
pub fn save(store: &Store, record: &mut TrialRecord, model: &Classifier, labels: &[String]) -> Result<()> {
    let spec = &record.spec;
    let base = match &spec.model.kind {
        ModelKind::BertCheckpoint(checkpoint) => Some(checkpoint.path.display().to_string()),
        _ => None,
    };
    store
        .save_trial_dir(&record.trial_id, |dir| {
            peft::save(model, &attach_config(spec), Some(TASK_TYPE), base.as_deref(), dir)?;
            fs::write(dir.join(LABELS_FILE), serde_json::to_vec_pretty(labels)?)?;
            Ok(())
        })
        .with_context(|| format!("the adapter of trial {}", record.trial_id))?;
    let weights = store.trial_dir(&record.trial_id).join(ADAPTER_WEIGHTS);
    let bytes = fs::read(&weights).with_context(|| format!("cannot read {}", weights.display()))?;
    record.adapter_sha256 = Some(sha256(&bytes));
    Ok(())
}
