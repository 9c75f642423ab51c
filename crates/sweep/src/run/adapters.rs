//! A trial's trained adapter on disk: saved beside its record in PEFT's layout
//! (`trials/<id>/adapter_model.safetensors` and `adapter_config.json`, with the head among
//! `modules_to_save`) and the task's class names in order (`labels.json`).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use loraplus_model::models::CONFIG_FILE;
use loraplus_model::{init, peft};

use super::trial::attach_config;
use super::zoo::{self, Classifier};
use crate::config::{CheckpointSpec, Features, InputShape, ModelKind, SaveAdapters};
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

/// The class names saved beside the adapter in `dir`.
pub fn labels(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(LABELS_FILE);
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a list of class names", path.display()))
}

/// The checkpoint a text model starts from, or why `record`'s model has none.
pub fn checkpoint(record: &TrialRecord) -> Result<&CheckpointSpec> {
    let model = &record.spec.model;
    match &model.kind {
        ModelKind::BertCheckpoint(checkpoint) => {
            let config = checkpoint.path.join(CONFIG_FILE);
            anyhow::ensure!(
                config.is_file(),
                "the base checkpoint {} of trial {} is missing (no {}); run from the directory the sweep \
                 ran in, or fetch the checkpoint (scripts/fetch-data.sh)",
                checkpoint.path.display(),
                record.trial_id,
                config.display()
            );
            Ok(checkpoint)
        }
        _ => anyhow::bail!(
            "trial {} trained model `{}`, whose base is this project's own (a pretrained record under \
             bases/), not a Hugging Face checkpoint: only adapters of `bert_checkpoint` models load in \
             transformers and read text",
            record.trial_id,
            model.name
        ),
    }
}

/// The model `record`'s trial trained, rebuilt for inference: its base checkpoint with the
/// adapter and head saved in `dir` attached. Fails, naming the files, when the base is missing or
/// of another shape than the adapter.
pub fn load(record: &TrialRecord, dir: &Path, device: &Device) -> Result<(Classifier, Vec<String>)> {
    let checkpoint = checkpoint(record)?;
    let labels = labels(dir)?;
    let shape = InputShape {
        features: Features::Text,
        n_classes: labels.len(),
    };
    let base = zoo::build(&record.spec.model.kind, &shape, true, &mut init::rng(0), device)?;
    let (model, _) = peft::load(base, dir).with_context(|| {
        format!(
            "the adapter in {} does not fit the base checkpoint {}",
            dir.display(),
            checkpoint.path.display()
        )
    })?;
    Ok((model, labels))
}
